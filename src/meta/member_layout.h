// SPDX-License-Identifier: Apache-2.0
// MemberLayout: where the superblocks, the write-intent bitmap, the checksum table and the
// data area sit on one member. All offsets and sizes are in bytes from the start of the member.
//
//   0          superblock copy A (4 KiB)
//   4 KiB      superblock copy B (4 KiB)
//   64 KiB     write-intent bitmap: 1 bit per region of the data area, rounded up to 4 KiB
//   after it   checksum table: 8 bytes per 4 KiB block of the data area, rounded up to 4 KiB
//   1 MiB-aligned, after the table: the data area, to the end of the member (whole blocks)
//
// Example: a 1 GiB member with 64 MiB regions. Its bitmap is 4 KiB at 64 KiB (16 regions).
// Its data area starts at 3 MiB, because a 2 MiB offset leaves 1022 MiB of data, whose 2044 KiB
// table would end at 64 + 4 + 2044 = 2112 KiB, past 2 MiB. The data area is then 1021 MiB
// (261376 blocks), and its table is 2044 KiB (261376 * 8 bytes, rounded up to 4 KiB) at 68 KiB.
// docs/format.md works through this example.
#pragma once

#include <cstdint>

#include "common/status.h"

namespace ecraid {

inline constexpr uint64_t kSuperblockBytes = 4096;
inline constexpr uint64_t kSuperblockOffsetA = 0;
inline constexpr uint64_t kSuperblockOffsetB = 4096;
inline constexpr uint64_t kBitmapOffset = 64u << 10;
inline constexpr uint64_t kMetadataAlignment = 4096;
inline constexpr uint64_t kDataAlignment = 1u << 20;
inline constexpr uint64_t kChecksumEntryBytes = 8;
inline constexpr uint64_t kChecksumBlockBytes = 4096;

inline constexpr uint64_t kRegionBytesDefault = 64u << 20;
inline constexpr uint64_t kRegionBytesMin = 1u << 20;
inline constexpr uint64_t kRegionBytesMax = uint64_t{1} << 40;
// Largest member accepted (1 EiB), so that offset arithmetic never overflows 64 bits.
inline constexpr uint64_t kMemberBytesMax = uint64_t{1} << 60;

struct MemberLayout {
    uint64_t member_bytes = 0;  // Size of the member when it was formatted.
    uint64_t region_bytes = 0;  // Bytes of the data area covered by one bitmap bit.
    uint64_t bitmap_offset = 0;
    uint64_t bitmap_bytes = 0;
    uint64_t checksum_table_offset = 0;
    uint64_t checksum_table_bytes = 0;
    uint64_t data_offset = 0;
    uint64_t data_bytes = 0;  // A multiple of 4 KiB, up to the end of the member.

    uint64_t region_count() const { return (data_bytes + region_bytes - 1) / region_bytes; }
    uint64_t data_block_count() const { return data_bytes / kChecksumBlockBytes; }
    // Byte offset on the member of the checksum table entry for data block `block_index`.
    uint64_t checksum_entry_offset(uint64_t block_index) const {
        return checksum_table_offset + block_index * kChecksumEntryBytes;
    }

    friend bool operator==(const MemberLayout&, const MemberLayout&) = default;
};

// Bitmap bytes for a data area: one bit per region, rounded up to 4 KiB.
uint64_t bitmap_bytes_for(uint64_t data_bytes, uint64_t region_bytes);
// Checksum table bytes for a data area: 8 bytes per 4 KiB block, rounded up to 4 KiB.
uint64_t checksum_table_bytes_for(uint64_t data_bytes);

// Checks a region size: a power of two from kRegionBytesMin to kRegionBytesMax, and at least
// one chunk, so that every chunk lies within one region.
Status validate_region_bytes(uint64_t region_bytes, uint64_t chunk_bytes);

// Returns the size of the smallest member whose data area fits one chunk.
// Requires: chunk_bytes is a multiple of 4 KiB and region_bytes is valid.
uint64_t member_bytes_min(uint64_t chunk_bytes, uint64_t region_bytes);

// Computes the layout of a member of `member_bytes`. The data area starts at the lowest 1 MiB
// boundary after tables sized for it, and its size is rounded down to whole 4 KiB blocks.
// Errors (kInvalidArgument) name the value: a member smaller than member_bytes_min() or
// larger than kMemberBytesMax, an invalid region size, or a chunk size that is zero or not a
// multiple of 4 KiB.
Result<MemberLayout> compute_member_layout(uint64_t member_bytes, uint64_t chunk_bytes,
                                           uint64_t region_bytes);

// Checks a stored layout: every region 4 KiB aligned and in order without overlap, the bitmap
// and table large enough for the data area, the data area 1 MiB aligned, at least one chunk
// long and within member_bytes. Returns kCorruption naming the first field that is wrong.
Status validate_member_layout(const MemberLayout& layout, uint64_t chunk_bytes);

}  // namespace ecraid
