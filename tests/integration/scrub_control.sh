#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Scrub control of a served array:
#     - a scrub started with a low --rate is still running seconds later, and it moves;
#     - `scrub start` while a scrub runs or is paused fails with a message and changes
#       nothing, not even the rate;
#     - pause stops the progress and resume continues it;
#     - a paused scrub stays paused across a restart, at the same stripe;
#     - after SIGKILL, and after a clean stop, the next serve resumes the scrub at its
#       checkpoint (a stripe above 0), logs "resuming the scrub at stripe N" and then checks
#       only the stripes from N on.
# Usage: scrub_control.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo
require_python_nbd

# Slow enough that no pass finishes during the steps below (the smallest array, raid1 with
# 63 MiB, takes about 16 s at this rate), fast enough that progress shows within a second.
readonly SLOW_RATE_MB_PER_SECOND=4

member_size=64M
create_array
load_member_layout
start_server
write_random_image

# Runs `ecraid scrub ACTION [ARGS...]` and fails unless it exits with status 1 and prints
# MESSAGE. Usage: expect_scrub_command_fails MESSAGE ACTION [ARGS...].
expect_scrub_command_fails() {
    local message=$1 output=$test_dir/scrub-command.out status=0
    shift
    "$ecraid" scrub "$@" --control "$control_socket_path" >"$output" 2>&1 || status=$?
    ((status == 1)) || {
        cat "$output" >&2
        fail_with_server_log "ecraid scrub $* exited with status $status, expected 1"
    }
    expect_contains "$output" "$message"
    note "ecraid scrub $* failed as expected: $(head -n 1 "$output")"
}

# Saves the scrub status and fails unless its state is STATE. Usage: expect_scrub_state STATE WHEN.
expect_scrub_state() {
    local expected=$1 when=$2 actual
    save_scrub_status
    actual=$(scrub_field state)
    if [[ $actual != "$expected" ]]; then
        cat "$scrub_file" >&2
        fail_with_server_log "the scrub is $actual $when, expected $expected"
    fi
}

# Prints the stripe N of the last "PHRASE N" line of the server log, failing unless there is
# one with 0 < N < stripe_count. Usage: resumed_stripe [PHRASE], where PHRASE defaults to
# "resuming the scrub at stripe", the line of a scrub resumed at startup.
resumed_stripe() {
    local phrase=${1:-resuming the scrub at stripe} line stripe
    line=$(expect_log_line "$phrase [0-9]+" | tail -n 1)
    stripe=$(sed -E "s/.*$phrase ([0-9]+).*/\\1/" <<<"$line")
    ((stripe > 0 && stripe < stripe_count)) ||
        fail_with_server_log "the server resumed the scrub at stripe $stripe, expected a stripe in 1..$((stripe_count - 1))"
    echo "$stripe"
}

# Waits for the resumed scrub to finish and fails unless it checked exactly the stripes from
# RESUMED_STRIPE on, so that it continued rather than starting over.
expect_resumed_pass_from() {
    local resumed_stripe=$1 expected_bytes
    wait_for_scrub_state idle
    expected_bytes=$(((stripe_count - resumed_stripe) * stripe_data_bytes))
    expect_scrub_field checked_bytes -eq "$expected_bytes"
    expect_scrub_field unrecoverable -eq 0
    [[ $(scrub_field last_completed) != null ]] ||
        fail_with_server_log "the resumed scrub is idle but reports no completed pass"
}

# ----- Nothing to pause or resume while idle -----
expect_scrub_state idle "before any scrub"
expect_scrub_command_fails "no scrub is running" pause
expect_scrub_command_fails "no scrub is paused" resume

# ----- A slow scrub runs, moves, and rejects a second start -----
run_admin scrub start --rate "$SLOW_RATE_MB_PER_SECOND"
expect_scrub_state running "right after scrub start"
sleep 1
expect_scrub_state running "1 s after scrub start --rate $SLOW_RATE_MB_PER_SECOND"
first_checked=$(scrub_field checked_bytes)
((first_checked < capacity_bytes)) ||
    fail_with_server_log "the scrub checked $first_checked bytes in 1 s at $SLOW_RATE_MB_PER_SECOND MB/s"
expect_scrub_command_fails "already running" start
# A rejected start must not change the rate of the running scrub either.
expect_scrub_command_fails "already running" start --rate 100000
sleep 1
expect_scrub_state running "1 s after a rejected scrub start --rate 100000"
second_checked=$(scrub_field checked_bytes)
((second_checked > first_checked)) ||
    fail_with_server_log "the scrub progress did not move in 1 s: $first_checked then $second_checked bytes checked"
note "scrub progress: $first_checked then $second_checked bytes checked, $(scrub_field progress) done"

# ----- Pause and resume -----
run_admin scrub pause
wait_for_scrub_state paused 10
paused_checked=$(scrub_field checked_bytes)
paused_progress=$(scrub_field progress)
sleep 1
expect_scrub_state paused "1 s after scrub pause"
expect_scrub_field checked_bytes -eq "$paused_checked"
expect_scrub_command_fails "paused" start
run_admin scrub resume
expect_scrub_state running "after scrub resume"
sleep 1
expect_scrub_state running "1 s after scrub resume"
resumed_checked=$(scrub_field checked_bytes)
((resumed_checked > paused_checked)) ||
    fail_with_server_log "the resumed scrub did not move in 1 s: $paused_checked then $resumed_checked bytes checked"

# ----- A paused scrub stays paused across a restart -----
run_admin scrub pause
wait_for_scrub_state paused 10
paused_progress=$(scrub_field progress)
stop_server
start_server
expect_scrub_state paused "after a restart of the server with a paused scrub"
expect_scrub_field progress == "$paused_progress"
# NOTE: the rate limit of a scrub is not kept across a restart, so the resumed scrub runs
# unthrottled and may finish before the next status request.
run_admin scrub resume
stripe=$(resumed_stripe "scrub resumed at stripe")
paused_stripe=$(awk -v progress="$paused_progress" -v count="$stripe_count" \
    'BEGIN { printf "%d", progress * count + 0.5 }')
((stripe == paused_stripe)) ||
    fail_with_server_log "the scrub paused at stripe $paused_stripe resumed at stripe $stripe after a restart"
expect_resumed_pass_from "$stripe"
note "the scrub paused across a restart at stripe $stripe ($paused_progress) finished"

# ----- SIGKILL during a slow scrub -----
run_admin scrub start --rate "$SLOW_RATE_MB_PER_SECOND"
# The server persists the scrub checkpoint once a second.
sleep 2.5
expect_scrub_state running "2.5 s after scrub start --rate $SLOW_RATE_MB_PER_SECOND"
killed_checked=$(scrub_field checked_bytes)
kill_server
start_server
stripe=$(resumed_stripe)
((stripe * stripe_data_bytes <= killed_checked + stripe_data_bytes * 16)) ||
    fail_with_server_log "the scrub resumed at stripe $stripe, past the $killed_checked bytes it had checked when it was killed"
note "after SIGKILL the scrub resumed at stripe $stripe of $stripe_count"
save_scrub_status
note "first scrub status after the restart: $(scrub_field state), $(scrub_field checked_bytes) bytes checked"
[[ $(scrub_field state) == running || $(scrub_field last_completed) != null ]] ||
    fail_with_server_log "the scrub is $(scrub_field state) after the restart, expected running or finished"
expect_resumed_pass_from "$stripe"

# ----- A clean stop during a slow scrub -----
run_admin scrub start --rate "$SLOW_RATE_MB_PER_SECOND"
sleep 1.5
expect_scrub_state running "1.5 s after scrub start --rate $SLOW_RATE_MB_PER_SECOND"
stop_server
start_server
stripe=$(resumed_stripe)
note "after a clean stop the scrub resumed at stripe $stripe of $stripe_count"
expect_resumed_pass_from "$stripe"
expect_export_equals "$image" "after the scrubs"
stop_server
note "passed"
