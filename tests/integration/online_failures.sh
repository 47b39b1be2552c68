#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Members fail while the server runs and are replaced one by one. `ecraid fail` takes out
# as many members as the level tolerates, one at a time, and the export must equal the
# image after each. `ecraid replace` then rebuilds each onto a new file, with the export
# checked after each rebuild. At the end, a new server must serve the same image with two
# other members deleted, so that the data comes from the rebuilt members.
# Usage: online_failures.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
((${#tolerated_roles[@]} > 0)) || fail "configuration $test_config tolerates no failed member"

create_array
start_server
write_random_image

for role in "${tolerated_roles[@]}"; do
    run_admin fail "${members[role]}"
    save_status
    expect_member_state "${members[role]}" faulty
    expect_export_equals "$image" "after member $role failed"
done
expect_array_state degraded

for role in "${tolerated_roles[@]}"; do
    new_member=$test_dir/new$role
    make_member_file "$new_member"
    run_admin replace "${members[role]}" "$new_member"
    # Until the last replace the array stays degraded, so wait for this member instead.
    wait_for_member_state "$new_member" active
    expect_member_state "${members[role]}" absent
    members[role]=$new_member
    expect_export_equals "$image" "after member $role was rebuilt onto $new_member"
done
expect_array_state optimal
expect_server_running
stop_server

# The rebuilt members must hold the right data: a new server gets the members of roles 1
# and 2 deleted, which every level here tolerates. raid1 is then left with the rebuilt
# role 0 only, raid10 with one rebuilt member per pair, and raid6 with both rebuilt roles
# among the four it needs.
deleted_roles=(1 2)
for role in "${deleted_roles[@]}"; do
    rm -f "${members[role]}"
    note "deleted member ${members[role]} (role $role)"
done
serve_members=()
for role in "${!members[@]}"; do
    [[ -e ${members[role]} ]] && serve_members+=("${members[role]}")
done
start_server
expect_contains "$server_log" "is degraded"
expect_array_state degraded
expect_export_equals "$image" "served with the members of roles ${deleted_roles[*]} deleted"
expect_server_running
stop_server
note "passed"
