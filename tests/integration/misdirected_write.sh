#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Misdirected writes: a valid 4 KiB block of a member copied over another block address of
# the same member. The block checksum is seeded with the block's address. So the copy fails
# verification at its new address, even when its checksum table entry is copied with it.
#     1. A data block overwritten while the array is stopped: `ecraid check` finds it, a
#        client read rebuilds and rewrites it.
#     2. A data block and its checksum table entry overwritten together: `check` finds it
#        and `check --repair` restores both.
#     3. A parity block overwritten while the array is served: the scrub repairs it.
# Usage: misdirected_write.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd
require_xxhash

member_size=64M
create_array
load_member_layout
start_server
write_random_image
stop_server

# Sets target_role, target_offset, target_index and source_offset: the target is a block of
# codeword position read-order INDEX in STRIPE, the source a block of the same member in
# the stripe SOURCE_STRIPE. Usage: choose_blocks STRIPE INDEX SOURCE_STRIPE.
choose_blocks() {
    local stripe=$1 index=$2 source_stripe=$3 row positions
    positions=($(positions_in_read_order "$stripe"))
    target_role=$(role_of_position "$stripe" "${positions[index]}")
    row=$((RANDOM % rows_per_chunk))
    target_offset=$(chunk_offset "$target_role" "$stripe" "$row")
    target_index=$(block_index "$stripe" "$row")
    source_offset=$(chunk_offset "$target_role" "$source_stripe" $((RANDOM % rows_per_chunk)))
    note "copying the block at $source_offset of member $target_role over the one at $target_offset (stripe $stripe)"
}

# ----- Case 1: a data block, found by check and repaired by a read -----
choose_blocks 20 0 21
good_block=$(save_member_range "$target_role" "$target_offset" "$BLOCK_BYTES" block.1)
"${MEMBER_IO[@]}" copy-block "${members[target_role]}" "$source_offset" "$target_offset" ||
    fail "could not copy a block of ${members[target_role]}"
run_check 1
expect_check_field bad_blocks -eq 1
expect_check_field unrecoverable_blocks -eq 0
start_server
expect_export_equals "$image" "after a misdirected write to member $target_role"
count=$(member_error_count "$target_role" checksum)
((count >= 1)) || fail_with_server_log "member $target_role counts $count checksum errors after a read of the misdirected block"
expect_member_range_equals "$target_role" "$target_offset" "$good_block" "after a read rebuilt it"
stop_server
run_check 0

# ----- Case 2: a data block with its checksum entry, found by check -----
choose_blocks 40 0 47
source_index=$(block_index 47 $(((source_offset - data_offsets[target_role] - 47 * chunk_bytes) / BLOCK_BYTES)))
good_block=$(save_member_range "$target_role" "$target_offset" "$BLOCK_BYTES" block.2)
good_entry=$(checksum_entry "$target_role" "$target_index")
"${MEMBER_IO[@]}" copy-block "${members[target_role]}" "$source_offset" "$target_offset" ||
    fail "could not copy a block of ${members[target_role]}"
set_checksum_entry "$target_role" "$target_index" "$(checksum_entry "$target_role" "$source_index")"
run_check 1
expect_check_field bad_blocks -eq 1
run_check 1 --repair
expect_check_field repaired_blocks -eq 1
expect_member_range_equals "$target_role" "$target_offset" "$good_block" "after check --repair"
actual_entry=$(checksum_entry "$target_role" "$target_index")
[[ $actual_entry == "$good_entry" ]] ||
    fail "entry $target_index of member $target_role is $actual_entry after check --repair, expected $good_entry"
run_check 0

# ----- Case 3: a parity block while served, repaired by the scrub -----
choose_blocks 60 "$data_count" 63
good_block=$(save_member_range "$target_role" "$target_offset" "$BLOCK_BYTES" block.3)
start_server
"${MEMBER_IO[@]}" copy-block "${members[target_role]}" "$source_offset" "$target_offset" ||
    fail "could not copy a block of ${members[target_role]}"
expect_export_equals "$image" "after a misdirected write to a parity block of member $target_role"
run_scrub
expect_scrub_field repaired -ge 1
expect_scrub_field unrecoverable -eq 0
expect_member_range_equals "$target_role" "$target_offset" "$good_block" "after the scrub"
stop_server
run_check 0
note "passed"
