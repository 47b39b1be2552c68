#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Member I/O errors while the server runs: member 2 sits behind nbdkit's error filter (see
# "Fault-injecting members" in lib.sh). Reads that member 2 fails are rebuilt from the
# other members, return the right data and count read errors against member 2, which
# stays active. A client write that member 2 fails still succeeds and makes member 2
# faulty, and the array keeps returning the right data degraded.
# Usage: fault_member.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp dd
require_python_nbd
require_fault_injection

member_size=64M
fault_role=2
((fault_role < member_count)) || fail "configuration $test_config has no member $fault_role"
start_fault_member "$fault_role"
fault_path=${members[fault_role]}
create_array
start_server
write_random_image
save_status
expect_member_state "$fault_path" active
mib=$((1024 * 1024))

# Phase 1: reads fail on member 2. The first 2 MiB of the export cover chunks of every
# member, member 2's included: about 128 blocks of member 2, which stays under the read
# error count at which the server fails a member.
inject_faults "$fault_role" read
expect_export_range_equals "$image" 0 $((2 * mib))
save_status
expect_member_state "$fault_path" active
read_errors=$(member_field "$fault_path" errors read)
repaired=$(member_field "$fault_path" errors repaired)
((read_errors > 0)) || fail "member 2 failed reads but status counts $read_errors read errors"
((repaired > 0)) || fail "member 2's failed blocks were rebuilt but status counts $repaired repaired"
note "member $fault_role after failed reads: active, $read_errors read errors, $repaired repaired"
for path in "${members[@]}"; do
    [[ $path == "$fault_path" ]] && continue
    [[ $(member_field "$path" errors read) == 0 ]] ||
        fail "member $path has read errors, but only member $fault_role failed reads"
done
clear_faults "$fault_role"

# Phase 2: writes fail on member 2. A client write that covers chunks of every member must
# still succeed, because the other members hold the data and the parity. The flush before
# it leaves the region clean, so the write first sets its write-intent bit on every member,
# and that bitmap write is the first to fail on member 2.
flush_export
inject_faults "$fault_role" write
new_data=$test_dir/new-data
make_random_file "$new_data" 4
write_export_range "$new_data" $((16 * mib)) "$image"
save_status
expect_member_state "$fault_path" faulty
write_errors=$(member_field "$fault_path" errors write)
expect_array_state degraded
expect_export_equals "$image" "after member $fault_role failed a write"

# Member 2 stays faulty once its faults are gone: it missed a write. Reads that would
# fail on it do not matter any more.
inject_faults "$fault_role" read
expect_export_equals "$image" "with member $fault_role faulty and failing reads"
clear_faults "$fault_role"
expect_export_equals "$image" "after the faults on member $fault_role were cleared"
save_status
expect_member_state "$fault_path" faulty
((write_errors > 0)) || fail "member 2 failed a write but status counted $write_errors write errors"
expect_server_running
stop_server
note "passed"
