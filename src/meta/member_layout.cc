// SPDX-License-Identifier: Apache-2.0
#include "meta/member_layout.h"

#include <bit>

#include <fmt/format.h>

#include "common/units.h"

namespace ecraid {
namespace {

uint64_t round_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

uint64_t round_down(uint64_t value, uint64_t alignment) { return value / alignment * alignment; }

// First byte after the bitmap and table sized for `data_bytes`, rounded up to the data
// alignment: the lowest possible data offset for a data area of that size.
uint64_t data_offset_for(uint64_t data_bytes, uint64_t region_bytes) {
    uint64_t metadata_end =
        kBitmapOffset + bitmap_bytes_for(data_bytes, region_bytes) + checksum_table_bytes_for(data_bytes);
    return round_up(metadata_end, kDataAlignment);
}

Status layout_error(std::string message) {
    return Status::error(Code::kCorruption, "invalid member layout: " + std::move(message));
}

// True when [offset, offset + bytes) fits below `limit` without overflow.
bool fits_below(uint64_t offset, uint64_t bytes, uint64_t limit) {
    return offset <= limit && bytes <= limit - offset;
}

}  // namespace

uint64_t bitmap_bytes_for(uint64_t data_bytes, uint64_t region_bytes) {
    uint64_t region_count = (data_bytes + region_bytes - 1) / region_bytes;
    return round_up((region_count + 7) / 8, kMetadataAlignment);
}

uint64_t checksum_table_bytes_for(uint64_t data_bytes) {
    uint64_t block_count = data_bytes / kChecksumBlockBytes;
    return round_up(block_count * kChecksumEntryBytes, kMetadataAlignment);
}

Status validate_region_bytes(uint64_t region_bytes, uint64_t chunk_bytes) {
    if (!std::has_single_bit(region_bytes) || region_bytes < kRegionBytesMin ||
        region_bytes > kRegionBytesMax) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid write-intent region size {} bytes: expected a "
                                         "power of two from {} to {}",
                                         region_bytes, format_size(kRegionBytesMin),
                                         format_size(kRegionBytesMax)));
    }
    if (region_bytes < chunk_bytes) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("write-intent region size {} is smaller than the chunk "
                                         "size {}: a region must hold whole chunks",
                                         format_size(region_bytes), format_size(chunk_bytes)));
    }
    return Status::ok_status();
}

uint64_t member_bytes_min(uint64_t chunk_bytes, uint64_t region_bytes) {
    return data_offset_for(chunk_bytes, region_bytes) + chunk_bytes;
}

Result<MemberLayout> compute_member_layout(uint64_t member_bytes, uint64_t chunk_bytes,
                                           uint64_t region_bytes) {
    if (chunk_bytes == 0 || chunk_bytes % kChecksumBlockBytes != 0) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("invalid chunk size {} bytes: expected a multiple of 4 KiB",
                                         chunk_bytes));
    }
    ECRAID_RETURN_IF_ERROR(validate_region_bytes(region_bytes, chunk_bytes));
    uint64_t minimum = member_bytes_min(chunk_bytes, region_bytes);
    if (member_bytes < minimum) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("member size {} bytes is too small: with {} chunks it "
                                         "must be at least {} bytes ({})",
                                         member_bytes, format_size(chunk_bytes), minimum,
                                         format_size(minimum)));
    }
    if (member_bytes > kMemberBytesMax) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("member size {} bytes is too large: the maximum is {} "
                                         "bytes ({})", member_bytes, kMemberBytesMax,
                                         format_size(kMemberBytesMax)));
    }

    // Tables sized for the largest conceivable data area give an offset that always fits.
    // Larger offsets mean smaller data areas and tables, so every offset above a feasible one
    // is feasible too. Step down 1 MiB at a time while the next lower offset still fits. This
    // ends within a step or two because the tables are about 1/512 of the data area.
    uint64_t data_offset = data_offset_for(round_down(member_bytes, kChecksumBlockBytes), region_bytes);
    while (data_offset > kDataAlignment) {
        uint64_t candidate = data_offset - kDataAlignment;
        uint64_t data_bytes = round_down(member_bytes - candidate, kChecksumBlockBytes);
        if (data_offset_for(data_bytes, region_bytes) > candidate) break;
        data_offset = candidate;
    }

    MemberLayout layout;
    layout.member_bytes = member_bytes;
    layout.region_bytes = region_bytes;
    layout.data_offset = data_offset;
    layout.data_bytes = round_down(member_bytes - data_offset, kChecksumBlockBytes);
    layout.bitmap_offset = kBitmapOffset;
    layout.bitmap_bytes = bitmap_bytes_for(layout.data_bytes, region_bytes);
    layout.checksum_table_offset = layout.bitmap_offset + layout.bitmap_bytes;
    layout.checksum_table_bytes = checksum_table_bytes_for(layout.data_bytes);
    return layout;
}

Status validate_member_layout(const MemberLayout& layout, uint64_t chunk_bytes) {
    if (layout.member_bytes > kMemberBytesMax) {
        return layout_error(fmt::format("member size {} bytes is above the maximum {}",
                                        layout.member_bytes, kMemberBytesMax));
    }
    Status region_status = validate_region_bytes(layout.region_bytes, chunk_bytes);
    if (!region_status.ok()) return layout_error(region_status.message());

    // The data area first: its bounds keep the size arithmetic below from overflowing.
    if (layout.data_offset % kDataAlignment != 0 || layout.data_offset == 0) {
        return layout_error(fmt::format("data offset {} is not a non-zero multiple of 1 MiB",
                                        layout.data_offset));
    }
    if (layout.data_bytes % kChecksumBlockBytes != 0 || layout.data_bytes < chunk_bytes) {
        return layout_error(fmt::format("data area of {} bytes is not a multiple of 4 KiB or "
                                        "smaller than one {}-byte chunk",
                                        layout.data_bytes, chunk_bytes));
    }
    if (!fits_below(layout.data_offset, layout.data_bytes, layout.member_bytes)) {
        return layout_error(fmt::format("data area of {} bytes at offset {} reaches past the end "
                                        "of the {}-byte member",
                                        layout.data_bytes, layout.data_offset,
                                        layout.member_bytes));
    }

    if (layout.bitmap_offset % kMetadataAlignment != 0 ||
        layout.bitmap_offset < kSuperblockOffsetB + kSuperblockBytes) {
        return layout_error(fmt::format("bitmap offset {} is not 4 KiB aligned after the "
                                        "superblocks", layout.bitmap_offset));
    }
    if (layout.bitmap_bytes % kMetadataAlignment != 0 ||
        layout.bitmap_bytes < bitmap_bytes_for(layout.data_bytes, layout.region_bytes)) {
        return layout_error(fmt::format("bitmap size {} bytes is not 4 KiB aligned or too small "
                                        "for {} data bytes in {}-byte regions",
                                        layout.bitmap_bytes, layout.data_bytes,
                                        layout.region_bytes));
    }
    if (layout.checksum_table_offset % kMetadataAlignment != 0 ||
        !fits_below(layout.bitmap_offset, layout.bitmap_bytes, layout.checksum_table_offset)) {
        return layout_error(fmt::format("checksum table offset {} is not 4 KiB aligned or "
                                        "overlaps the bitmap", layout.checksum_table_offset));
    }
    if (layout.checksum_table_bytes % kMetadataAlignment != 0 ||
        layout.checksum_table_bytes < checksum_table_bytes_for(layout.data_bytes)) {
        return layout_error(fmt::format("checksum table size {} bytes is not 4 KiB aligned or too "
                                        "small for {} data bytes",
                                        layout.checksum_table_bytes, layout.data_bytes));
    }
    if (!fits_below(layout.checksum_table_offset, layout.checksum_table_bytes,
                    layout.data_offset)) {
        return layout_error(fmt::format("checksum table of {} bytes at offset {} overlaps the "
                                        "data area at offset {}",
                                        layout.checksum_table_bytes, layout.checksum_table_offset,
                                        layout.data_offset));
    }
    return Status::ok_status();
}

}  // namespace ecraid
