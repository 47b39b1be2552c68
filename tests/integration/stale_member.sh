#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A stale member offered again at assembly is never trusted. Member 1's file is moved
# away, the array serves degraded and gets a new image, and after a clean stop member 1's
# old file comes back. Its superblock event counter is behind the others', so a server
# given all members must log it as stale, keep it out of service and return the new image,
# never the old data it holds.
# Usage: stale_member.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
stale_role=1
stale_member=${members[stale_role]}

create_array
start_server
write_random_image old-image
old_image=$image
stop_server

mv "$stale_member" "$test_dir/moved-away"
serve_members=()
for path in "${members[@]}"; do
    [[ $path == "$stale_member" ]] || serve_members+=("$path")
done
start_server
expect_contains "$server_log" "is degraded"
expect_array_state degraded
write_random_image new-image
new_image=$image
expect_export_equals "$new_image" "served degraded without member $stale_role"
stop_server

mv "$test_dir/moved-away" "$stale_member"
shuffle "${members[@]}"
serve_members=("${shuffled[@]}")
start_server
expect_log_line "stale" >/dev/null
expect_log_line "$(basename "$stale_member").*stale|stale.*(member $stale_role|$(basename "$stale_member"))" >/dev/null
save_status
stale_state=$(member_field "$stale_member" state)
case $stale_state in
    missing | faulty | absent) note "the stale member $stale_member is $stale_state" ;;
    *)
        cat "$status_file" >&2
        fail_with_server_log "the stale member $stale_member is $stale_state, expected missing, faulty or absent"
        ;;
esac
[[ $(json_get "$status_file" state) == degraded ]] ||
    fail_with_server_log "array state is $(json_get "$status_file" state) with a stale member, expected degraded"
expect_export_equals "$new_image" "with the stale member $stale_member given again"
cmp -s "$old_image" "$new_image" && fail "the old and the new image are equal, so the check proves nothing"
expect_server_running
stop_server
note "passed"
