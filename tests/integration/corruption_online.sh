#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Random bytes written over member blocks with O_DIRECT while the array is served, so the
# server's own O_DIRECT reads meet them. A corrupt data block is rebuilt by the read that
# meets it, returned correctly and written back. A corrupt parity block does not affect
# reads, and the scrub repairs it. Then random blocks in many stripes, on any member and
# position, are all repaired by one scrub, which repairs exactly those blocks. Afterwards
# `ecraid check` of the stopped array exits 0.
# Usage: corruption_online.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp
require_python_nbd

member_size=64M
create_array
load_member_layout
start_server
write_random_image

# ----- A data block, repaired by a read -----
stripe=$((RANDOM % stripe_count))
positions=($(positions_in_read_order $stripe))
data_role=$(role_of_position $stripe "${positions[RANDOM % data_count]}")
data_offset=$(chunk_offset "$data_role" $stripe $((RANDOM % rows_per_chunk)))
note "data block at $data_offset of member $data_role (stripe $stripe)"
good_data_block=$(save_member_range "$data_role" "$data_offset" "$BLOCK_BYTES" data-block)
corrupt_member_range "$data_role" "$data_offset" "$BLOCK_BYTES"
expect_export_equals "$image" "with a corrupt data block on member $data_role"
save_status
for ((role = 0; role < member_count; role++)); do
    count=$(member_field "${members[role]}" errors checksum)
    if ((role == data_role)); then
        ((count >= 1)) || fail_with_server_log "member $role counts $count checksum errors after a read of its corrupt block"
    else
        ((count == 0)) || fail_with_server_log "member $role counts $count checksum errors, but only member $data_role is corrupt"
    fi
done
expect_member_range_equals "$data_role" "$data_offset" "$good_data_block" "after a read rebuilt it"
expect_member_state "${members[data_role]}" active

# ----- A parity block, repaired by the scrub -----
stripe=$(((stripe + stripe_count / 2) % stripe_count))
positions=($(positions_in_read_order $stripe))
parity_role=$(role_of_position $stripe "${positions[data_count + RANDOM % parity_count]}")
parity_offset=$(chunk_offset "$parity_role" $stripe $((RANDOM % rows_per_chunk)))
note "parity block at $parity_offset of member $parity_role (stripe $stripe)"
good_parity_block=$(save_member_range "$parity_role" "$parity_offset" "$BLOCK_BYTES" parity-block)
parity_count_before=$(member_error_count "$parity_role" checksum)
corrupt_member_range "$parity_role" "$parity_offset" "$BLOCK_BYTES"
expect_export_equals "$image" "with a corrupt parity block on member $parity_role"
[[ $(member_error_count "$parity_role" checksum) == "$parity_count_before" ]] ||
    fail_with_server_log "member $parity_role counts more checksum errors after client reads, which never load parity"
run_scrub
expect_scrub_field repaired -ge 1
expect_scrub_field unrecoverable -eq 0
count=$(member_error_count "$parity_role" checksum)
((count > parity_count_before)) ||
    fail_with_server_log "member $parity_role counts $count checksum errors after the scrub found its corrupt block"
expect_member_range_equals "$parity_role" "$parity_offset" "$good_parity_block" "after the scrub"

# ----- Blocks in many stripes, repaired by one scrub -----
declare -A used_stripes=()
corrupt_block_count=8
for ((block = 0; block < corrupt_block_count; block++)); do
    stripe=$((RANDOM % stripe_count))
    while [[ -n ${used_stripes[$stripe]:-} ]]; do
        stripe=$((RANDOM % stripe_count))
    done
    used_stripes[$stripe]=1
    role=$((RANDOM % member_count))
    corrupt_member_range "$role" "$(chunk_offset "$role" $stripe $((RANDOM % rows_per_chunk)))" "$BLOCK_BYTES"
done
run_scrub
expect_scrub_field repaired -eq "$corrupt_block_count"
expect_scrub_field unrecoverable -eq 0
expect_export_equals "$image" "after the scrub repaired $corrupt_block_count blocks"
expect_array_state optimal
stop_server
run_check 0
note "passed"
