#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Latent sector errors: reads of one 4 KiB block of member 1 fail with EIO until the block
# is written, as on a disk that remaps a sector on write (see "Members with latent sector
# errors" in lib.sh).
#     1. A client read that covers the block returns the image. The block is rebuilt and
#        rewritten, so the member's file contains the right bytes again, member 1 stays active
#        with exactly one read error, and a second read meets no error.
#     2. The same repair done by a scrub instead of a client read.
#     3. More bad blocks than the server tolerates on one member (1024 read errors): member
#        1 is failed, and reads still return the image from the other members.
# Usage: latent_sector_error.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd
require_bad_sector_member

# The server fails a member at its 1024th read error (kReadErrorsBeforeFailing in
# src/array/group_io.cc).
readonly READ_ERRORS_BEFORE_FAILING=1024

member_size=64M
bad_role=1
start_bad_sector_member $bad_role
create_array
load_member_layout
start_server
write_random_image
backing=$fault_dir/$bad_role.backing

# Fails unless the backing file of the bad-sector member contains FILE at OFFSET, read there
# directly rather than through the member. Usage: expect_backing_equals OFFSET FILE WHEN.
expect_backing_equals() {
    local offset=$1 expected=$2 when=$3 actual=$test_dir/backing-range.actual
    "${MEMBER_IO[@]}" read "$backing" "$offset" "$(stat -c %s "$expected")" "$actual" ||
        fail "could not read offset $offset of $backing"
    cmp "$expected" "$actual" >&2 ||
        fail_with_server_log "the backing file of member $bad_role at offset $offset differs from $(basename "$expected") $when"
}

expect_no_bad_blocks_left() {
    local count
    count=$(bad_block_count $bad_role)
    ((count == 0)) ||
        fail_with_server_log "member $bad_role still has $count unwritten bad block(s) $1"
}

# Fails unless member 1 counts exactly COUNT read errors and is still active.
expect_read_errors() {
    local expected=$1 when=$2 count
    save_status
    expect_member_state "${members[bad_role]}" active
    count=$(member_field "${members[bad_role]}" errors read)
    ((count == expected)) ||
        fail_with_server_log "member $bad_role counts $count read errors $when, expected $expected"
}

# ----- Case 1: a client read repairs the bad block -----
read -r stripe position < <(stripe_read_from_role $bad_role 30)
offset=$(chunk_offset $bad_role "$stripe" 5)
good_block=$(save_member_range $bad_role "$offset" "$BLOCK_BYTES" block.1)
add_bad_blocks $bad_role "$offset"
stripe_offset=$((stripe * stripe_data_bytes))
expect_export_range_equals "$image" "$stripe_offset" "$stripe_data_bytes"
expect_backing_equals "$offset" "$good_block" "after a read rebuilt the bad block"
expect_no_bad_blocks_left "after a read rebuilt the bad block"
expect_read_errors 1 "after one bad block was read"
repaired=$(member_field "${members[bad_role]}" errors repaired)
((repaired >= 1)) || fail_with_server_log "member $bad_role counts $repaired repaired blocks after its bad block was rewritten"
expect_export_range_equals "$image" "$stripe_offset" "$stripe_data_bytes"
expect_read_errors 1 "after a second read of the rewritten block"
note "case 1 passed: the bad block at $offset of member $bad_role (stripe $stripe, position $position) was rebuilt and rewritten by a read"

# ----- Case 2: the scrub repairs the bad block -----
stripe=$((stripe_count / 2))
offset=$(chunk_offset $bad_role $stripe 9)
good_block=$(save_member_range $bad_role "$offset" "$BLOCK_BYTES" block.2)
add_bad_blocks $bad_role "$offset"
run_scrub
expect_scrub_field repaired -ge 1
expect_scrub_field unrecoverable -eq 0
expect_backing_equals "$offset" "$good_block" "after the scrub"
expect_no_bad_blocks_left "after the scrub"
expect_read_errors 2 "after the scrub met one bad block"
note "case 2 passed: the bad block at $offset of member $bad_role was rebuilt and rewritten by the scrub"

# ----- Case 3: too many bad blocks fail the member -----
# Every block of the chunks of member 1 that reads load, from stripe 40 on, until there are
# more bad blocks than the server tolerates.
offsets=()
stripe=40
while ((${#offsets[@]} < READ_ERRORS_BEFORE_FAILING + 2 * rows_per_chunk)); do
    read -r stripe position < <(stripe_read_from_role $bad_role $stripe)
    for ((row = 0; row < rows_per_chunk; row++)); do
        offsets+=("$(chunk_offset $bad_role "$stripe" $row)")
    done
    stripe=$((stripe + 1))
done
add_bad_blocks $bad_role "${offsets[@]}"
expect_export_equals "$image" "while member $bad_role has ${#offsets[@]} bad blocks"
save_status
expect_member_state "${members[bad_role]}" faulty
count=$(member_field "${members[bad_role]}" errors read)
((count >= READ_ERRORS_BEFORE_FAILING)) ||
    fail_with_server_log "member $bad_role is faulty after $count read errors, expected at least $READ_ERRORS_BEFORE_FAILING"
expect_array_state degraded
expect_export_equals "$image" "after member $bad_role was failed for its read errors"
expect_server_running
stop_server
note "case 3 passed: member $bad_role was failed after $count read errors"
note "passed"
