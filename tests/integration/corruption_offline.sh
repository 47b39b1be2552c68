#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Random bytes written over one data block and one parity block of member files while the
# array is stopped. `ecraid check` finds both and exits 1, `check --repair` rewrites both
# and exits 1, and a second check exits 0. Served again with the same damage, the array
# returns the image. A read rebuilds the data block, writes it back and counts the checksum
# error on its member. Reads never load the parity block, so a scrub repairs that one.
# Usage: corruption_offline.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
create_array
load_member_layout
start_server
write_random_image
stop_server

# A data block and a parity block in two stripes, chosen from the test seed. For mirrors
# the "data" block is the copy that reads use and the "parity" block one they do not.
data_stripe=$((RANDOM % (stripe_count / 2)))
parity_stripe=$((stripe_count / 2 + RANDOM % (stripe_count / 2)))
positions=($(positions_in_read_order $data_stripe))
data_role=$(role_of_position $data_stripe "${positions[RANDOM % data_count]}")
data_offset=$(chunk_offset "$data_role" $data_stripe $((RANDOM % rows_per_chunk)))
positions=($(positions_in_read_order $parity_stripe))
parity_role=$(role_of_position $parity_stripe "${positions[data_count + RANDOM % parity_count]}")
parity_offset=$(chunk_offset "$parity_role" $parity_stripe $((RANDOM % rows_per_chunk)))
note "data block at $data_offset of member $data_role, parity block at $parity_offset of member $parity_role"
good_data_block=$(save_member_range "$data_role" "$data_offset" "$BLOCK_BYTES" data-block)
good_parity_block=$(save_member_range "$parity_role" "$parity_offset" "$BLOCK_BYTES" parity-block)

# ----- check, check --repair, check -----
corrupt_member_range "$data_role" "$data_offset" "$BLOCK_BYTES"
corrupt_member_range "$parity_role" "$parity_offset" "$BLOCK_BYTES"
bad_data_block=$(save_member_range "$data_role" "$data_offset" "$BLOCK_BYTES" data-block.corrupt)
text_output=$test_dir/check.text.out
status=0
"$ecraid" check "${members[@]}" >"$text_output" 2>"$test_dir/check.text.err" || status=$?
((status == 1)) || fail "ecraid check exited with status $status on two corrupt blocks, expected 1"
grep -qE '^ *bad blocks: +2$' "$text_output" || {
    cat "$text_output" >&2
    fail "ecraid check does not report 2 bad blocks"
}

run_check 1
expect_check_field bad_blocks -eq 2
expect_check_field repairable_blocks -eq 2
expect_check_field unrecoverable_blocks -eq 0
expect_check_field parity_mismatches -eq 0
# Without --repair the members stay as they are.
expect_member_range_equals "$data_role" "$data_offset" "$bad_data_block" "after check without --repair"
run_check 1 --repair
expect_check_field bad_blocks -eq 2
expect_check_field repaired_blocks -eq 2
expect_check_field unrecoverable_blocks -eq 0
expect_member_range_equals "$data_role" "$data_offset" "$good_data_block" "after check --repair"
expect_member_range_equals "$parity_role" "$parity_offset" "$good_parity_block" "after check --repair"
run_check 0

# ----- A read repairs the data block -----
corrupt_member_range "$data_role" "$data_offset" "$BLOCK_BYTES"
start_server
expect_export_equals "$image" "with a corrupt data block on member $data_role"
save_status
for ((role = 0; role < member_count; role++)); do
    count=$(member_field "${members[role]}" errors checksum)
    if ((role == data_role)); then
        ((count >= 1)) || fail_with_server_log "member $role counts $count checksum errors after a read of its corrupt block"
        repaired=$(member_field "${members[role]}" errors repaired)
        ((repaired >= 1)) || fail_with_server_log "member $role counts $repaired repaired blocks after a read rebuilt its block"
    else
        ((count == 0)) || fail_with_server_log "member $role counts $count checksum errors, but only member $data_role is corrupt"
    fi
done
expect_member_range_equals "$data_role" "$data_offset" "$good_data_block" "after a read rebuilt it"
expect_member_state "${members[data_role]}" active
stop_server

# ----- The scrub repairs the parity block -----
corrupt_member_range "$parity_role" "$parity_offset" "$BLOCK_BYTES"
start_server
expect_export_equals "$image" "with a corrupt parity block on member $parity_role"
[[ $(member_error_count "$parity_role" checksum) == 0 ]] ||
    fail_with_server_log "member $parity_role counts checksum errors after client reads, which never load parity"
run_scrub
expect_scrub_field repaired -ge 1
expect_scrub_field unrecoverable -eq 0
count=$(member_error_count "$parity_role" checksum)
((count >= 1)) || fail_with_server_log "member $parity_role counts $count checksum errors after the scrub found its corrupt block"
expect_member_range_equals "$parity_role" "$parity_offset" "$good_parity_block" "after the scrub"
expect_array_state optimal
stop_server
run_check 0
note "passed"
