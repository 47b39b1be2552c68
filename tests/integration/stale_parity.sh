#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Stale parity behind valid checksums: a parity block (a copy for mirrors) overwritten with
# other bytes and its checksum table entry rewritten to match, as when a crash lands
# between a data write and its parity write. No block fails its checksum, so only the
# comparison of parity with data finds it. Each parity position gets its own stripe:
# `ecraid check` reports one parity mismatch per stripe and exits 1, `check --repair`
# recomputes the parity from the data and a second check exits 0. The scrub of a served
# array does the same.
# Usage: stale_parity.sh ECRAID_BINARY CONFIG   (raid1, raid5, raid6 or rs_4_2)
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

# Overwrites block ROW of parity position k + PARITY_INDEX of STRIPE with random bytes and
# stores their checksum in its table entry, after saving the block as $test_dir/NAME and the
# entry in stale_entries[NAME]. Sets stale_role and stale_offset.
# Usage: make_parity_stale STRIPE PARITY_INDEX ROW NAME.
declare -A stale_entries=()
make_parity_stale() {
    local stripe=$1 parity_index=$2 row=$3 name=$4 index random_block=$test_dir/random-block
    stale_role=$(role_of_position "$stripe" $((data_count + parity_index)))
    stale_offset=$(chunk_offset "$stale_role" "$stripe" "$row")
    index=$(block_index "$stripe" "$row")
    save_member_range "$stale_role" "$stale_offset" "$BLOCK_BYTES" "$name" >/dev/null
    stale_entries[$name]=$(checksum_entry "$stale_role" "$index")
    head -c "$BLOCK_BYTES" /dev/urandom >"$random_block"
    "${MEMBER_IO[@]}" write "${members[stale_role]}" "$stale_offset" "$random_block" ||
        fail "could not write over the parity block at $stale_offset of member $stale_role"
    set_checksum_entry "$stale_role" "$index" "$(member_block_checksum "$stale_role" "$index")"
    note "parity position $((data_count + parity_index)) of stripe $stripe (member $stale_role, block $index) is stale with a valid checksum"
}

# Fails unless the parity block saved as NAME and its checksum entry are back.
# Usage: expect_parity_restored ROLE STRIPE ROW NAME WHEN.
expect_parity_restored() {
    local role=$1 stripe=$2 row=$3 name=$4 when=$5 index entry
    expect_member_range_equals "$role" "$(chunk_offset "$role" "$stripe" "$row")" "$test_dir/$name" "$when"
    index=$(block_index "$stripe" "$row")
    entry=$(checksum_entry "$role" "$index")
    [[ $entry == "${stale_entries[$name]}" ]] ||
        fail "entry $index of member $role is $entry $when, expected ${stale_entries[$name]}"
}

# Stripes are multiples of the group width, so that mirrors serve their reads from copy 0
# and a stale copy is never what a client reads.
stale_roles=() stale_stripes=() stale_rows=()
for ((parity_index = 0; parity_index < parity_count; parity_index++)); do
    stripe=$((group_width * (3 + 2 * parity_index)))
    row=$((RANDOM % rows_per_chunk))
    make_parity_stale $stripe $parity_index $row "parity.$parity_index"
    stale_roles+=("$stale_role") stale_stripes+=("$stripe") stale_rows+=("$row")
done

run_check 1
expect_check_field bad_blocks -eq 0
expect_check_field parity_mismatches -eq "$parity_count"
expect_check_field unrecoverable_blocks -eq 0
run_check 1 --repair
expect_check_field parity_mismatches -eq "$parity_count"
expect_check_field parity_rewritten -ge "$parity_count"
for ((parity_index = 0; parity_index < parity_count; parity_index++)); do
    expect_parity_restored "${stale_roles[parity_index]}" "${stale_stripes[parity_index]}" \
        "${stale_rows[parity_index]}" "parity.$parity_index" "after check --repair"
done
run_check 0

# ----- The scrub of a served array -----
stripe=$((group_width * 9))
row=$((RANDOM % rows_per_chunk))
make_parity_stale $stripe 0 $row parity.served
start_server
expect_export_equals "$image" "with stale parity in stripe $stripe"
run_scrub
expect_scrub_field repaired -ge 1
expect_scrub_field unrecoverable -eq 0
expect_server_running
stop_server
expect_parity_restored "$stale_role" $stripe $row parity.served "after the scrub"
run_check 0
note "passed"
