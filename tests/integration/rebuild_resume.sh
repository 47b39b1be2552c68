#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A rebuild interrupted by SIGKILL resumes from its checkpoint. Member 1 fails and is
# replaced, the rebuild runs slowly (rate limit), and the server is killed part of the way
# through. A new server, given every path including the old failed member, must report the
# old member as replaced and resume the rebuild at a stripe after 0 and before the end.
# The checkpoint is persisted about once a second, so that stripe must also be no earlier
# than the progress seen 2.5 s before the kill. After the rebuild the export must equal the image, also
# with another member failed, so that role 1 is read from the rebuilt member.
# Usage: rebuild_resume.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
failed_role=1
later_failed_role=$((member_count - 1))
# At 10 MB/s a member's 63 MiB of data take about 6.6 s to rebuild.
rebuild_rate=10

create_array
chunk_bytes=$(json_get "$test_dir/inspect.json" superblock chunk_bytes)
start_server --rebuild-rate "$rebuild_rate"
write_random_image

old_member=${members[failed_role]}
new_member=$test_dir/new1
make_member_file "$new_member"
run_admin fail "$old_member"
run_admin replace "$old_member" "$new_member"
wait_for_rebuild_start >/dev/null

# Take a progress reading at about 20 %, then kill the server 2.5 s later.
while true; do
    save_status
    [[ $(json_get "$status_file" state) == rebuilding ]] ||
        fail_with_server_log "the rebuild ended before it reached 20 %"
    progress=$(json_get "$status_file" rebuild progress)
    "$PYTHON" -c "import sys; sys.exit(0 if $progress >= 0.2 else 1)" && break
    sleep 0.1
done
early_done_bytes=$(json_get "$status_file" rebuild done_bytes)
total_bytes=$(json_get "$status_file" rebuild total_bytes)
early_stripe=$((early_done_bytes / chunk_bytes))
sleep 2.5
save_status
[[ $(json_get "$status_file" state) == rebuilding ]] ||
    fail_with_server_log "the rebuild finished before the kill; lower rebuild_rate"
killed_done_bytes=$(json_get "$status_file" rebuild done_bytes)
kill_server
note "killed at about $killed_done_bytes of $total_bytes bytes; $early_done_bytes bytes were done 2.5 s earlier"

# Restart with every path: the old failed member too, in a shuffled order.
shuffle "${members[@]}" "$new_member"
serve_members=("${shuffled[@]}")
start_server --rebuild-rate "$rebuild_rate"
expect_log_line "$(basename "$old_member"): member .* was replaced by member" >/dev/null
resume_line=$(expect_log_line "resuming the rebuild of member $failed_role .* at stripe [0-9]+ of [0-9]+")
[[ $resume_line =~ at\ stripe\ ([0-9]+)\ of\ ([0-9]+) ]] ||
    fail "cannot parse the resume line: $resume_line"
resume_stripe=${BASH_REMATCH[1]}
stripe_count=${BASH_REMATCH[2]}
note "resumed at stripe $resume_stripe of $stripe_count"
((stripe_count == total_bytes / chunk_bytes)) ||
    fail "the resume line counts $stripe_count stripes, status counted $((total_bytes / chunk_bytes))"
((resume_stripe > 0)) || fail "the rebuild restarted from stripe 0 instead of its checkpoint"
((resume_stripe < stripe_count)) || fail "the rebuild resumed at stripe $resume_stripe, at or past the end"
((resume_stripe >= early_stripe)) ||
    fail "the rebuild resumed at stripe $resume_stripe, before stripe $early_stripe that was done 2.5 s before the kill"
((resume_stripe * chunk_bytes <= killed_done_bytes + 2 * 1024 * 1024)) ||
    fail "the rebuild resumed at stripe $resume_stripe, past the progress $killed_done_bytes bytes seen at the kill"

# While it runs, status shows the resumed progress, not a restart from 0.
save_status
if [[ $(json_get "$status_file" state) == rebuilding ]]; then
    expect_member_state "$new_member" rebuilding
    resumed_done_bytes=$(json_get "$status_file" rebuild done_bytes)
    ((resumed_done_bytes >= resume_stripe * chunk_bytes)) ||
        fail "status shows $resumed_done_bytes bytes rebuilt, below the resume point $((resume_stripe * chunk_bytes))"
fi
wait_for_array_state optimal
expect_member_state "$new_member" active
expect_member_state "$old_member" absent
expect_export_equals "$image" "after the resumed rebuild"

run_admin fail "${members[later_failed_role]}"
expect_array_state degraded
expect_export_equals "$image" "after the resumed rebuild, with member $later_failed_role failed"
expect_server_running
stop_server
note "passed"
