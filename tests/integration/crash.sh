#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Crash consistency: what a FLUSH covered survives SIGKILL. Each iteration formats a new
# array, writes 256 random 4 KiB blocks at random offsets, sends FLUSH and records them
# (crash_writes.py). It then keeps unflushed writes in flight, some in the same stripes as
# the recorded blocks, and kills the server with SIGKILL in the middle of them. After the
# restart (which resyncs the dirty regions), every recorded block must read back exactly,
# and the whole export must read without an error, since unflushed blocks may hold old or
# new data but never fail. The same checks run again with one member failed, so that
# parity left inconsistent by the crash would show as wrong data.
# Usage: crash.sh ECRAID_BINARY CONFIG [ITERATIONS]   (default 3)
source "$(dirname "$0")/lib.sh"
init_test "$1" "$2"
require_tools nbdcopy nbdinfo
require_python_nbd

iterations=${3:-3}
member_size=64M
# Regions of 8 MiB give each member several write-intent bits, so that the resync has
# clean regions to skip.
level_args+=(--region 8M)
writer=$TEST_SOURCE_DIR/crash_writes.py

for ((iteration = 1; iteration <= iterations; iteration++)); do
    note "iteration $iteration of $iterations"
    rm -f "${members[@]}"
    create_array
    start_server
    iteration_seed=$test_seed-$iteration
    record=$test_dir/record.$iteration
    ready=$test_dir/ready.$iteration
    timeout --kill-after=10 120 "$PYTHON" "$writer" flushed "$export_uri" "$capacity_bytes" \
        "$iteration_seed" "$record" || fail_with_server_log "the flushed writes failed"

    timeout --kill-after=10 120 "$PYTHON" "$writer" unflushed "$export_uri" "$capacity_bytes" \
        "$iteration_seed" "$record" "$ready" >"$test_dir/unflushed.$iteration.out" 2>&1 &
    writer_pid=$!
    deadline=$((SECONDS + 60))
    until [[ -e $ready ]]; do
        process_running "$writer_pid" || {
            cat "$test_dir/unflushed.$iteration.out" >&2
            fail_with_server_log "the unflushed writer ended before it was ready"
        }
        ((SECONDS < deadline)) || fail_with_server_log "the unflushed writer was not ready within 60 s"
        sleep 0.02
    done
    # A random moment within the next 200 ms, with 32 writes in flight.
    sleep "0.$(printf '%03d' $((RANDOM % 200)))"
    kill_server
    writer_status=0
    wait "$writer_pid" || writer_status=$?
    cat "$test_dir/unflushed.$iteration.out" >&2
    ((writer_status == 0)) || fail "the unflushed writer exited with status $writer_status"

    start_server
    expect_log_line "resync done" >/dev/null
    timeout --kill-after=10 120 "$PYTHON" "$writer" verify "$export_uri" "$capacity_bytes" \
        "$iteration_seed" "$record" ||
        fail_with_server_log "flushed blocks were lost in the crash (iteration $iteration)"
    timeout --kill-after=10 120 nbdcopy "$export_uri" null: ||
        fail_with_server_log "reading the whole export after the crash failed (iteration $iteration)"

    failed_role=$((RANDOM % member_count))
    run_admin fail "${members[failed_role]}"
    timeout --kill-after=10 120 "$PYTHON" "$writer" verify "$export_uri" "$capacity_bytes" \
        "$iteration_seed" "$record" ||
        fail_with_server_log "flushed blocks read wrong with member $failed_role failed after the crash (iteration $iteration)"
    timeout --kill-after=10 120 nbdcopy "$export_uri" null: ||
        fail_with_server_log "reading the whole export with member $failed_role failed after the crash failed (iteration $iteration)"
    expect_server_running
    stop_server
done
note "passed"
