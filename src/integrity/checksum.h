// SPDX-License-Identifier: Apache-2.0
// Block checksums: XXH3-64 of each 4 KiB block, seeded with the block's address.
//
// The seed is the block's index within its member's data area (member data offset / 4096),
// so a correct block written to, or read from, the wrong address fails verification.
//
// A stored value of 0 means "this block is all zeros": a new sparse member, a trimmed range
// and a punched hole have all-zero checksum table entries and all-zero data, so they verify
// without any table writes. A real XXH3 value of exactly 0 for a non-zero block would then be
// reported as a mismatch; the chance is 2^-64 per block.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ecraid {

inline constexpr uint64_t kZeroBlockChecksum = 0;

// Checksum of one 4 KiB block at block index `block_address` of a member's data area.
uint64_t block_checksum(const void* block, uint64_t block_address);

// Checksums of `count` consecutive blocks starting at `first_block_address`.
void block_checksums(const void* blocks, size_t count, uint64_t first_block_address,
                     uint64_t* checksums);

// True when `block` matches the stored table entry (see kZeroBlockChecksum).
bool block_verify(const void* block, uint64_t block_address, uint64_t stored_checksum);

// True when all 4096 bytes are zero.
bool block_is_zero(const void* block);

}  // namespace ecraid
