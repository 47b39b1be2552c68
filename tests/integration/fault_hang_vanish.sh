#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A member that stops responding and a member that vanishes while the server runs, through
# fault-injecting members (see "Fault-injecting members" in lib.sh) on raid6, which
# tolerates both. Member 1's requests hang (nbdkit's pause filter) during a whole-export
# read: the server, started with --io-timeout 1, must mark member 1 faulty within a few
# seconds and serve its data from the others. Member 4's nbdkit stops during another
# read, so every later request to member 4 fails, and the server must mark it faulty as
# well. Throughout, the export must equal the image and the server must stay up.
# Usage: fault_hang_vanish.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd
require_fault_injection

member_size=64M
hanging_role=1
vanishing_role=4
io_timeout_seconds=1
# Seconds member 1 may hang before the test gives up waiting for the server to fail it.
hang_limit_seconds=$((io_timeout_seconds + 9))
[[ $test_config == raid6 ]] || fail "fault_hang_vanish runs on raid6, not $test_config"

start_fault_member "$hanging_role"
start_fault_member "$vanishing_role"
hanging_path=${members[hanging_role]}
vanishing_path=${members[vanishing_role]}
create_array
start_server --io-timeout "$io_timeout_seconds"
write_random_image

# Runs nbdcopy of the whole export into a file in the background. Sets copy and copy_pid.
start_background_copy() {
    copy=$test_dir/$1
    timeout --kill-after=10 300 nbdcopy "$export_uri" "$copy" 2>"$copy.err" &
    copy_pid=$!
}

# Waits for the background nbdcopy and fails unless it copied the image.
expect_background_copy_equals_image() {
    local when=$1 copy_status=0
    wait "$copy_pid" || copy_status=$?
    if ((copy_status != 0)); then
        cat "$copy.err" >&2
        fail_with_server_log "nbdcopy failed $when"
    fi
    cmp "$image" "$copy" >&2 || fail_with_server_log "the export read $when differs from the image"
    rm -f "$copy"
    note "the export equals the image $when"
}

# Member 1 hangs. The test resumes it after hang_limit_seconds at the latest, so that the
# read finishes even if the server waits for member 1. The check on its state comes last.
pause_fault_member "$hanging_role"
start_background_copy copy-while-hanging
hang_start=$SECONDS
hanging_state=active
while ((SECONDS - hang_start < hang_limit_seconds)); do
    save_status
    hanging_state=$(member_field "$hanging_path" state)
    [[ $hanging_state == faulty ]] && break
    sleep 0.2
done
note "member $hanging_role is $hanging_state after $((SECONDS - hang_start)) s of hanging requests"
resume_fault_member "$hanging_role"
expect_background_copy_equals_image "while member $hanging_role hung"

# Member 4 vanishes during a whole-export read.
start_background_copy copy-while-vanishing
sleep 0.2
vanish_fault_member "$vanishing_role"
expect_background_copy_equals_image "while member $vanishing_role vanished"

# Reads and writes that reach member 4 now fail on it, so it must end up faulty.
new_data=$test_dir/new-data
make_random_file "$new_data" 4
write_export_range "$new_data" $((8 * 1024 * 1024)) "$image"
expect_export_equals "$image" "after a write with member $vanishing_role gone"
save_status
expect_member_state "$vanishing_path" faulty
expect_array_state degraded
expect_server_running
nbdinfo --size "$export_uri" >/dev/null || fail_with_server_log "a new connection fails"

[[ $hanging_state == faulty ]] ||
    fail_with_server_log "member $hanging_role hung for $hang_limit_seconds s with --io-timeout $io_timeout_seconds, but the server did not mark it faulty"
stop_server
note "passed"
