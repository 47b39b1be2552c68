#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Spares: a spare given with --spare takes over a failed member by itself, and status shows
# the rebuild onto it while it runs. A spare added with `ecraid add-spare` while serving
# takes over the next failed member. `ecraid remove` takes out an unused spare and rejects
# a member in service. The export must equal the image throughout.
# Usage: spares.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
first_failed_role=2
second_failed_role=0

create_array
first_spare=$test_dir/spare-1
make_member_file "$first_spare"
# At 20 MB/s a rebuild takes about 3.3 s, long enough to see it in status. `--` ends the
# list of spares, because --spare takes every argument up to the next option.
start_server --rebuild-rate 20 --spare "$first_spare" --
write_random_image
save_status
expect_member_state "$first_spare" spare
expect_array_state optimal

# A failed member: the rebuild onto the spare starts without any command.
run_admin fail "${members[first_failed_role]}"
wait_for_rebuild_start >/dev/null
[[ $(json_get "$status_file" rebuild member) == "$first_spare" ]] ||
    fail "status shows a rebuild onto $(json_get "$status_file" rebuild member), expected the spare $first_spare"
[[ $(json_get "$status_file" rebuild role) == "$first_failed_role" ]] ||
    fail "status shows a rebuild of role $(json_get "$status_file" rebuild role), expected $first_failed_role"
expect_member_state "$first_spare" rebuilding
expect_export_equals "$image" "while member $first_failed_role is rebuilt onto the spare"
wait_for_array_state optimal
expect_member_state "$first_spare" active
expect_member_state "${members[first_failed_role]}" absent
expect_export_equals "$image" "after member $first_failed_role was rebuilt onto the spare"
members[first_failed_role]=$first_spare

# Spares added while serving; one of them removed again.
second_spare=$test_dir/spare-2
third_spare=$test_dir/spare-3
make_member_file "$second_spare"
make_member_file "$third_spare"
run_admin add-spare "$second_spare"
run_admin add-spare "$third_spare"
save_status
expect_member_state "$second_spare" spare
expect_member_state "$third_spare" spare
run_admin remove "$third_spare"
save_status
expect_member_state "$third_spare" absent
expect_member_state "$second_spare" spare

# remove must reject a member in service and leave it there.
if "$ecraid" remove --control "$control_socket_path" "$first_spare" >"$test_dir/remove-active.out" 2>&1; then
    cat "$test_dir/remove-active.out" >&2
    fail "ecraid remove took out $first_spare, an active member"
fi
note "ecraid remove of an active member failed as expected: $(head -n 1 "$test_dir/remove-active.out")"
save_status
expect_member_state "$first_spare" active
expect_array_state optimal

# The spare added while serving takes over the next failed member.
run_admin fail "${members[second_failed_role]}"
wait_for_rebuild_start >/dev/null
[[ $(json_get "$status_file" rebuild member) == "$second_spare" ]] ||
    fail "status shows a rebuild onto $(json_get "$status_file" rebuild member), expected the added spare $second_spare"
wait_for_array_state optimal
expect_member_state "$second_spare" active
expect_member_state "$third_spare" absent
expect_export_equals "$image" "after member $second_failed_role was rebuilt onto the added spare"
members[second_failed_role]=$second_spare

# Both rebuilt members must hold their roles' data: fail another member.
for role in "${!members[@]}"; do
    if ((role != first_failed_role && role != second_failed_role)); then
        run_admin fail "${members[role]}"
        break
    fi
done
expect_export_equals "$image" "with a third member failed, reading both rebuilt spares"
expect_server_running
stop_server
note "passed"
