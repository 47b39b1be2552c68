#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Silent corruption located by the per-block checksums. Member files are overwritten with
# O_DIRECT while the array is served (checksum table entries only while it is stopped), each
# case in its own stripe, with m = the parity count of the level:
#     1. one data chunk: reads return the image, the checksum error is counted on that
#        member and the chunk is rewritten;
#     2. m chunks of one stripe (m >= 2): reads return the image, the read chunks are rewritten;
#     3. only a parity chunk: reads are unaffected, a scrub repairs it;
#     4. m + 1 chunks of one stripe: reads of the lost blocks fail with EIO and never return
#        other bytes, while the rest of the export reads back. The scrub and `ecraid check`
#        report the loss. Rewriting the stripe through NBD makes the array consistent again;
#     5. a wrong checksum table entry: the data is not changed to match it, and the read
#        path, the scrub and `check --repair` each rewrite the entry;
#     6. one member failed with `ecraid fail` and a chunk of another member corrupt
#        (m >= 2): reads still return the image.
# Usage: silent_corruption.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp dd
require_python_nbd
require_xxhash

member_size=64M
create_array
load_member_layout
start_server
write_random_image

# Saves chunk STRIPE of ROLE as $test_dir/chunk.STRIPE.ROLE, then corrupts every block of it.
corrupt_chunk() {
    local role=$1 stripe=$2 offset
    offset=$(chunk_offset "$role" "$stripe")
    save_member_range "$role" "$offset" "$chunk_bytes" "chunk.$stripe.$role" >/dev/null
    corrupt_member_range "$role" "$offset" "$chunk_bytes"
}

# Fails unless chunk STRIPE of ROLE contains its bytes from before corrupt_chunk again.
# Usage: expect_chunk_restored ROLE STRIPE WHEN.
expect_chunk_restored() {
    local role=$1 stripe=$2 when=$3
    expect_member_range_equals "$role" "$(chunk_offset "$role" "$stripe")" \
        "$test_dir/chunk.$stripe.$role" "$when"
}

expect_stripe_reads_back() {
    expect_export_range_equals "$image" $(($1 * stripe_data_bytes)) "$stripe_data_bytes"
}

# Saves every member's checksum error count in checksum_counts_before.
save_checksum_counts() {
    save_status
    checksum_counts_before=()
    local role
    for ((role = 0; role < member_count; role++)); do
        checksum_counts_before[role]=$(member_field "${members[role]}" errors checksum)
    done
}

# Fails unless the checksum error count of ROLE rose since save_checksum_counts.
expect_checksum_count_rose() {
    local role=$1 when=$2 count
    count=$(member_error_count "$role" checksum)
    ((count > checksum_counts_before[role])) ||
        fail_with_server_log "member $role counts $count checksum errors $when, no more than the ${checksum_counts_before[role]} before"
    note "member $role: checksum errors ${checksum_counts_before[role]} -> $count $when"
}

# Fails unless the checksum error count of ROLE is the same as at save_checksum_counts.
expect_checksum_count_unchanged() {
    local role=$1 when=$2 count
    count=$(member_error_count "$role" checksum)
    ((count == checksum_counts_before[role])) ||
        fail_with_server_log "member $role counts $count checksum errors $when, expected still ${checksum_counts_before[role]}"
}

# Prints entry ^ 1 as 0x and 16 hex digits: a wrong value for a checksum table entry.
flip_entry() {
    printf '0x%016x' $(($1 ^ 1))
}

m=$parity_count
k=$data_count

# ----- Case 1: one corrupt data chunk -----
stripe=10
positions=($(positions_in_read_order $stripe))
role=$(role_of_position $stripe "${positions[k - 1]}")
save_checksum_counts
corrupt_chunk "$role" $stripe
expect_stripe_reads_back $stripe
expect_checksum_count_rose "$role" "after reading stripe $stripe"
for ((other = 0; other < member_count; other++)); do
    ((other == role)) || expect_checksum_count_unchanged "$other" "after reading stripe $stripe"
done
expect_chunk_restored "$role" $stripe "after a read of stripe $stripe rebuilt it"
# The member stays in the array, and a second read finds the rewritten chunk good.
save_status
expect_member_state "${members[role]}" active
save_checksum_counts
expect_stripe_reads_back $stripe
expect_checksum_count_unchanged "$role" "after a second read of stripe $stripe"
note "case 1 passed: one corrupt chunk of member $role located and rewritten"

# ----- Case 2: m corrupt chunks in one stripe -----
stripe=11
positions=($(positions_in_read_order $stripe))
case2_roles=()
if ((m >= 2)); then
    save_checksum_counts
    for ((index = 0; index < m; index++)); do
        case2_roles+=("$(role_of_position $stripe "${positions[index]}")")
        corrupt_chunk "${case2_roles[index]}" $stripe
    done
    expect_stripe_reads_back $stripe
    # Reads load the data positions, or one copy of a mirror, so those chunks are rewritten now.
    read_count=$((k < m ? k : m))
    for ((index = 0; index < read_count; index++)); do
        expect_checksum_count_rose "${case2_roles[index]}" "after reading stripe $stripe"
        expect_chunk_restored "${case2_roles[index]}" $stripe "after a read of stripe $stripe"
    done
    note "case 2 passed: $m corrupt chunks of stripe $stripe (members ${case2_roles[*]}) rebuilt"
else
    note "case 2 skipped: $level_name tolerates one bad chunk per stripe"
fi

# ----- Case 3: only a parity chunk corrupt -----
stripe=13
positions=($(positions_in_read_order $stripe))
parity_role=$(role_of_position $stripe "${positions[k]}")
save_checksum_counts
corrupt_chunk "$parity_role" $stripe
expect_stripe_reads_back $stripe
# A client read of an optimal array loads only what it returns, never the parity.
expect_checksum_count_unchanged "$parity_role" "after reading stripe $stripe, whose parity alone is corrupt"
run_scrub
expect_scrub_field repaired -ge 1
expect_scrub_field unrecoverable -eq 0
expect_checksum_count_rose "$parity_role" "after the scrub"
expect_chunk_restored "$parity_role" $stripe "after the scrub"
for role in "${case2_roles[@]}"; do
    expect_chunk_restored "$role" 11 "after the scrub"
done
expect_export_equals "$image" "after the scrub"
note "case 3 passed: corrupt parity of stripe $stripe repaired by the scrub"

# ----- Case 4: m + 1 corrupt chunks in one stripe -----
stripe=14
positions=($(positions_in_read_order $stripe))
lost_positions=()
for ((index = 0; index <= m; index++)); do
    corrupt_chunk "$(role_of_position $stripe "${positions[index]}")" $stripe
    lost_positions+=("${positions[index]}")
done
stripe_offset=$((stripe * stripe_data_bytes))
for ((position = 0; position < k; position++)); do
    if [[ " ${lost_positions[*]} " == *" $position "* ]]; then
        expect_export_range_eio "$(export_offset $stripe "$position")" "$chunk_bytes"
    else
        expect_export_range_equals "$image" "$(export_offset $stripe "$position")" "$chunk_bytes"
    fi
done
note "reads of the $((m + 1)) corrupt chunks of stripe $stripe fail with EIO"
expect_export_range_equals "$image" 0 "$stripe_offset"
expect_export_range_equals "$image" $((stripe_offset + stripe_data_bytes)) \
    $((capacity_bytes - stripe_offset - stripe_data_bytes))
run_scrub
expect_scrub_field unrecoverable -ge 1
# Damage confined to some blocks costs those blocks, not the members that hold them.
expect_array_state optimal
stop_server
run_check 2
expect_check_field unrecoverable_blocks -ge 1
expect_check_field result == unrecoverable

# Writing the whole stripe again replaces every chunk, parity included.
start_server
stripe_image=$test_dir/stripe.$stripe
dd if="$image" of="$stripe_image" bs="$stripe_data_bytes" skip=$stripe count=1 status=none
write_export_range "$stripe_image" "$stripe_offset" "$image"
expect_stripe_reads_back $stripe
stop_server
run_check 0
note "case 4 passed: $((m + 1)) corrupt chunks of stripe $stripe are reported lost, never returned"

# ----- Case 5: wrong checksum table entries, data intact -----
# 5a: a data block's entry, found by a client read.
stripe=15 row=4
positions=($(positions_in_read_order $stripe))
role=$(role_of_position $stripe "${positions[0]}")
index=$(block_index $stripe $row)
offset=$(chunk_offset "$role" $stripe $row)
good_block=$(save_member_range "$role" "$offset" "$BLOCK_BYTES" "block.5a")
good_entry=$(checksum_entry "$role" "$index")
[[ $good_entry == "$(member_block_checksum "$role" "$index")" ]] ||
    fail "entry $index of member $role is $good_entry before the test changed it, not the block's XXH3"
set_checksum_entry "$role" "$index" "$(flip_entry "$good_entry")"

# 5b: a parity block's entry, found by the scrub.
parity_stripe=16 parity_row=2
parity_positions=($(positions_in_read_order $parity_stripe))
parity_role=$(role_of_position $parity_stripe "${parity_positions[k]}")
parity_index=$(block_index $parity_stripe $parity_row)
parity_offset=$(chunk_offset "$parity_role" $parity_stripe $parity_row)
good_parity_block=$(save_member_range "$parity_role" "$parity_offset" "$BLOCK_BYTES" "block.5b")
good_parity_entry=$(checksum_entry "$parity_role" "$parity_index")
set_checksum_entry "$parity_role" "$parity_index" "$(flip_entry "$good_parity_entry")"

start_server
save_checksum_counts
expect_stripe_reads_back $stripe
expect_checksum_count_rose "$role" "after reading the block whose checksum entry is wrong"
expect_member_range_equals "$role" "$offset" "$good_block" "after a read through a wrong checksum entry"
run_scrub
expect_scrub_field unrecoverable -eq 0
expect_member_range_equals "$parity_role" "$parity_offset" "$good_parity_block" \
    "after a scrub through a wrong checksum entry"
expect_export_equals "$image" "after the scrub of the wrong checksum entries"
stop_server
actual_entry=$(checksum_entry "$role" "$index")
[[ $actual_entry == "$good_entry" ]] ||
    fail "entry $index of member $role is $actual_entry after a read through it, expected it rewritten to $good_entry"
actual_entry=$(checksum_entry "$parity_role" "$parity_index")
[[ $actual_entry == "$good_parity_entry" ]] ||
    fail "entry $parity_index of member $parity_role is $actual_entry after the scrub, expected it rewritten to $good_parity_entry"
run_check 0

# 5c: a data block's entry, found by `ecraid check`.
set_checksum_entry "$role" "$index" "$(flip_entry "$good_entry")"
run_check 1
expect_check_field bad_blocks -eq 1
run_check 1 --repair
expect_check_field repaired_blocks -eq 1
expect_member_range_equals "$role" "$offset" "$good_block" "after check --repair of a wrong checksum entry"
actual_entry=$(checksum_entry "$role" "$index")
[[ $actual_entry == "$good_entry" ]] ||
    fail "entry $index of member $role is $actual_entry after check --repair, expected $good_entry"
run_check 0
note "case 5 passed: wrong checksum entries rewritten by a read, the scrub and check --repair; data unchanged"

# ----- Case 6: one member failed, a chunk of another corrupt -----
if ((m >= 2)); then
    stripe=12
    positions=($(positions_in_read_order $stripe))
    failed_role=$(role_of_position $stripe "${positions[0]}")
    role=$(role_of_position $stripe "${positions[1]}")
    start_server
    run_admin fail "${members[failed_role]}"
    save_status
    expect_member_state "${members[failed_role]}" faulty
    save_checksum_counts
    corrupt_chunk "$role" $stripe
    expect_stripe_reads_back $stripe
    expect_checksum_count_rose "$role" "after reading stripe $stripe with member $failed_role failed"
    expect_chunk_restored "$role" $stripe "after a degraded read of stripe $stripe"
    expect_export_equals "$image" "with member $failed_role failed"
    run_scrub
    expect_scrub_field unrecoverable -eq 0
    expect_server_running
    stop_server
    note "case 6 passed: member $failed_role failed and a corrupt chunk of member $role read back correctly"
else
    note "case 6 skipped: $level_name cannot lose a member and a chunk of another"
fi
note "passed"
