#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A member that completes I/O slowly but within --io-timeout must stay active. Member 1 is a
# fault-injecting member (see "Fault-injecting members" in lib.sh) whose every read and write
# takes delay_ms through nbdkit's delay filter. Many requests queue on it at once, so some
# wait longer than the timeout in all, but the member keeps completing requests, so the
# server must not fail it. The export must equal the image after a whole write, a whole read
# and a flush.
# Usage: fault_slow_member.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd
require_fault_injection

member_size=16M
slow_role=1
delay_ms=300
io_timeout_seconds=1
[[ $test_config == raid6 ]] || fail "fault_slow_member runs on raid6, not $test_config"

start_fault_member "$slow_role" "$delay_ms"
slow_path=${members[slow_role]}
create_array
start_server --io-timeout "$io_timeout_seconds"

write_random_image
expect_export_equals "$image" "with member $slow_role answering in $delay_ms ms"
flush_export
save_status
expect_member_state "$slow_path" active
expect_array_state optimal
expect_server_running
stop_server
note "passed"
