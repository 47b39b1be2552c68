#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Degraded reads: with as many members destroyed as the level tolerates (deleted or zeroed)
# and the remaining paths given in a shuffled order, the array still returns the image
# written before. With one member more destroyed, serve must fail and name every missing
# member.
# Usage: degraded.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp dd

image_mib=256
image_bytes=$((image_mib * 1024 * 1024))
destroyed_count=0

# Destroys the member of each given role, alternating between deleting the file and
# overwriting all of it with zeros.
destroy_members() {
    local role path
    for role in "$@"; do
        path=${members[role]}
        [[ -e $path ]] || fail "member $path of role $role is already gone"
        if ((destroyed_count % 2 == 0)); then
            rm -f "$path"
            note "deleted member $path (role $role)"
        else
            dd if=/dev/zero of="$path" bs=1M count=$(($(stat -c %s "$path") / 1048576)) \
                conv=notrunc status=none
            note "zeroed member $path (role $role)"
        fi
        destroyed_count=$((destroyed_count + 1))
    done
}

create_array
((capacity_bytes >= image_bytes)) ||
    fail "capacity $capacity_bytes is below the $image_mib MiB image; raise member_size in lib.sh"
start_server
image=$test_dir/image
make_random_file "$image" "$image_mib"
timeout --kill-after=10 300 nbdcopy --flush "$image" "$export_uri" ||
    fail_with_server_log "nbdcopy into the export failed"
stop_server

# Within the tolerance: every byte must still read back.
destroy_members "${tolerated_roles[@]}"
shuffle "${members[@]}"
serve_members=("${shuffled[@]}")
note "serving members in the order ${serve_members[*]##*/}"
start_server
if ((${#tolerated_roles[@]} > 0)); then
    expect_contains "$server_log" "is degraded"
    for role in "${tolerated_roles[@]}"; do
        expect_contains "$server_log" "member $role: "
    done
fi
copy=$test_dir/copy
timeout --kill-after=10 300 nbdcopy "$export_uri" "$copy" ||
    fail_with_server_log "nbdcopy out of the degraded export failed"
cmp -n "$image_bytes" "$image" "$copy" ||
    fail "the degraded export does not return the image written before ${tolerated_roles[*]:-no} members were destroyed"
cmp -n $((capacity_bytes - image_bytes)) --ignore-initial="$image_bytes:0" "$copy" /dev/zero ||
    fail "the degraded export past the image is not zeros"
rm -f "$copy"
expect_server_running
stop_server

# One member more than tolerated: serve must not start, and its message names the roles.
extra_roles=()
for role in "${fatal_roles[@]}"; do
    [[ " ${tolerated_roles[*]} " == *" $role "* ]] || extra_roles+=("$role")
done
destroy_members "${extra_roles[@]}"
shuffle "${members[@]}"
failed_log=$test_dir/serve.too-many-missing.err
status=0
timeout --kill-after=10 60 "$ecraid" serve --socket "$socket_path" \
    --control "$control_socket_path" "${shuffled[@]}" \
    >"$test_dir/serve.too-many-missing.out" 2>"$failed_log" || status=$?
if ((status == 0 || status == 124)); then
    cat "$failed_log" >&2
    fail "ecraid serve started with members of roles ${fatal_roles[*]} destroyed (exit status $status)"
fi
if ((${#fatal_roles[@]} == member_count)); then
    # Nothing identifies the array any more, so serve can only name the paths.
    expect_contains "$failed_log" "no valid ecraid member"
    for path in "${members[@]}"; do
        expect_contains "$failed_log" "$path: "
    done
else
    expect_contains "$failed_log" "cannot serve array $array_name"
    expect_contains "$failed_log" "${#fatal_roles[@]} of $member_count members are missing"
    for role in "${fatal_roles[@]}"; do
        expect_contains "$failed_log" "member $role: "
    done
fi
note "serve exited with status $status and named the missing roles ${fatal_roles[*]}"
note "passed"
