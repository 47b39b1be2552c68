#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `ecraid replace` of a healthy member copies it while it stays in service. During the
# copy the array state is "rebuilding", the old member is active and the new one is
# rebuilding, reads return the image and a client write lands on both. After the copy the
# old member is out of the array: a new server given its path as well reports it as
# replaced and is optimal without it.
# Usage: replace_healthy.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp dd
require_python_nbd

member_size=64M
replaced_role=1
later_failed_role=$((member_count - 1))
mib=$((1024 * 1024))

create_array
# At 10 MB/s the copy of 63 MiB takes about 6.6 s, long enough to check it mid-way.
start_server --rebuild-rate 10
write_random_image

old_member=${members[replaced_role]}
new_member=$test_dir/new$replaced_role
make_member_file "$new_member"
run_admin replace "$old_member" "$new_member"
wait_for_rebuild_start >/dev/null
expect_member_state "$old_member" active
expect_member_state "$new_member" rebuilding
[[ $(json_get "$status_file" rebuild replacing_healthy) == true ]] ||
    fail "status does not mark the rebuild of a healthy member as replacing_healthy"
for path in "${members[@]}"; do
    expect_member_state "$path" active
done

# A write during the copy must reach the new member as well, wherever the copy is. The
# status taken after it shows that it landed before the copy ended. Then the whole export
# is read while the copy goes on.
new_data=$test_dir/new-data
make_random_file "$new_data" 8
write_export_range "$new_data" $((32 * mib)) "$image"
save_status
[[ $(json_get "$status_file" state) == rebuilding ]] ||
    fail_with_server_log "the copy ended before the write; lower the rebuild rate"
expect_member_state "$old_member" active
expect_member_state "$new_member" rebuilding
expect_export_equals "$image" "during the copy of member $replaced_role, after a write"

wait_for_array_state optimal
expect_member_state "$new_member" active
expect_member_state "$old_member" absent
expect_export_equals "$image" "after the copy of member $replaced_role"
members[replaced_role]=$new_member

expect_server_running
stop_server

# The old member is out for good, even when it is given again.
serve_members=("${members[@]}" "$old_member")
shuffle "${serve_members[@]}"
serve_members=("${shuffled[@]}")
start_server
expect_log_line "$(basename "$old_member"): member .* was replaced by member" >/dev/null
expect_array_state optimal
expect_member_state "$old_member" absent
expect_member_state "$new_member" active
expect_export_equals "$image" "served again with the old member $old_member given too"

# Role 1 is now read from the new member alone: fail another member, so that every
# stripe needs it.
run_admin fail "${members[later_failed_role]}"
expect_export_equals "$image" "with member $later_failed_role failed after the copy"
expect_server_running
stop_server
note "passed"
