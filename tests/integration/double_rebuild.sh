#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Reed-Solomon 4+2 loses two members and gets both back, twice: first onto two spares
# given with --spare, which the server rebuilds one after the other by itself, then onto
# two new files with two `ecraid replace` commands in a row. The export must equal the
# image after every step, and at the end with two other members failed, so that the data
# comes from the rebuilt members.
# Usage: double_rebuild.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
case $test_config in
    rs_4_2 | raid6) ;;
    *) fail "double_rebuild needs a level that tolerates two failed members, not $test_config" ;;
esac

create_array
spares=("$test_dir/spare-a" "$test_dir/spare-b")
for spare in "${spares[@]}"; do
    make_member_file "$spare"
done
# `--` ends the list of spares, because --spare takes every argument up to the next option.
start_server --spare "${spares[0]}" --spare "${spares[1]}" --
write_random_image
save_status
for spare in "${spares[@]}"; do
    expect_member_state "$spare" spare
done

# Step 1: two members fail, and the two spares take their roles, one rebuild after the other.
for role in 1 4; do
    run_admin fail "${members[role]}"
done
expect_export_equals "$image" "with members 1 and 4 failed and rebuilding onto spares"
wait_for_array_state optimal
for spare in "${spares[@]}"; do
    expect_member_state "$spare" active
done
expect_member_state "${members[1]}" absent
expect_member_state "${members[4]}" absent
expect_export_equals "$image" "after members 1 and 4 were rebuilt onto spares"
# One rebuild after the other: the log shows start, end, start, end.
rebuild_events=$(grep -oE "rebuilding member [0-9]+ onto|member [0-9]+ rebuilt onto" "$server_log" |
    sed -E 's/rebuilding member ([0-9]+) onto/start \1/; s/member ([0-9]+) rebuilt onto/end \1/' |
    tr '\n' ' ')
[[ $rebuild_events =~ ^start\ ([14])\ end\ ([14])\ start\ ([14])\ end\ ([14])\ $ ]] &&
    [[ ${BASH_REMATCH[1]} == "${BASH_REMATCH[2]}" && ${BASH_REMATCH[3]} == "${BASH_REMATCH[4]}" ]] &&
    [[ ${BASH_REMATCH[1]} != "${BASH_REMATCH[3]}" ]] ||
    fail_with_server_log "expected the rebuilds of members 1 and 4 one after the other, the log shows: $rebuild_events"
for role in 1 4; do
    expect_log_line "using spare .* for member $role\$" >/dev/null
done
members[1]=${spares[0]}
members[4]=${spares[1]}
save_status
[[ $(member_path_of_role 1) == "${spares[0]}" || $(member_path_of_role 1) == "${spares[1]}" ]] ||
    fail "role 1 is $(member_path_of_role 1), expected one of the spares"

# Step 2: two other members fail and are replaced, one after the other.
run_admin fail "${members[0]}"
run_admin fail "${members[2]}"
expect_array_state degraded
expect_export_equals "$image" "with members 0 and 2 failed"
for role in 0 2; do
    new_member=$test_dir/new$role
    make_member_file "$new_member"
    run_admin replace "${members[role]}" "$new_member"
    # The second replace waits for the first rebuild, after which the array is degraded
    # again, because member 2 is still faulty.
    if ((role == 0)); then
        wait_for_member_state "$new_member" active
        expect_array_state degraded
        expect_export_equals "$image" "after member 0 was rebuilt, with member 2 still failed"
    fi
    members[role]=$new_member
done
wait_for_array_state optimal
expect_export_equals "$image" "after members 0 and 2 were replaced"

# Step 3: the data of the rebuilt roles must be right on the rebuilt members themselves.
run_admin fail "${members[3]}"
run_admin fail "${members[5]}"
expect_array_state degraded
expect_export_equals "$image" "with members 3 and 5 failed, reading the rebuilt members"
expect_server_running
stop_server
note "passed"
