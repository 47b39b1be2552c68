// SPDX-License-Identifier: Apache-2.0
// Geometry: where every byte of the virtual disk lives on the members.
//
// A stripe is one chunk on each member at the same member offset. The members of a stripe
// form one or more codewords ("groups"): raid0, raid5, raid6 and rs have one group spanning
// all members, raid1 has one group of 1 data chunk and n-1 copies, raid10 has n/2 groups of
// one data chunk and one copy each. Within a group, positions 0..k-1 hold data and
// positions k..k+m-1 hold parity (or copies).
//
// For raid5, raid6 and rs the group rotates by one member per stripe, left-symmetric like
// md: in stripe s, position p lives on member (p - s) mod n. With n = 4 (raid5):
//     stripe 0:  D0 D1 D2 P     stripe 1:  D1 D2 P  D0     stripe 2:  D2 P  D0 D1
// raid0, raid1 and raid10 do not rotate.
//
// Offsets returned here are relative to the start of each member's data area; the on-disk
// format adds the data area offset.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace ecraid {

enum class Level : uint8_t { kRaid0 = 0, kRaid1 = 1, kRaid10 = 10, kRaid5 = 5, kRaid6 = 6, kRs = 7 };

std::string_view level_name(Level level);
Result<Level> parse_level(std::string_view name);

inline constexpr uint32_t kBlockBytes = 4096;
inline constexpr uint64_t kChunkBytesMin = 4096;
inline constexpr uint64_t kChunkBytesMax = 16u << 20;
inline constexpr uint64_t kChunkBytesDefault = 64u << 10;
inline constexpr uint32_t kRsDataMax = 32;
inline constexpr uint32_t kRsParityMax = 8;
// Members in one array. rs arrays are smaller still: at most kRsDataMax + kRsParityMax.
inline constexpr uint32_t kMemberCountMax = 64;

// What the user asks for; Geometry::create validates it.
struct GeometryConfig {
    Level level = Level::kRaid5;
    uint32_t member_count = 0;
    uint32_t data_count = 0;    // rs only: k. Derived for the other levels.
    uint32_t parity_count = 0;  // rs only: m. Derived for the other levels.
    uint64_t chunk_bytes = kChunkBytesDefault;
    uint64_t member_data_bytes = 0;  // Usable bytes of the smallest member's data area.
};

// One contiguous piece of a request on one member.
struct Extent {
    uint32_t member = 0;         // Member index (role) 0..n-1.
    uint64_t member_offset = 0;  // Byte offset within the member's data area.
    uint64_t length = 0;         // Bytes.
    uint64_t array_offset = 0;   // Byte offset of this piece in the virtual disk.
    uint64_t stripe = 0;
    uint32_t group = 0;
    uint32_t position = 0;  // Data position within the group, 0..k-1.
};

class Geometry {
public:
    // Validates the configuration. Errors name the value and the allowed range, for example
    // "raid6 needs at least 4 members, got 3".
    static Result<Geometry> create(const GeometryConfig& config);

    Level level() const { return level_; }
    uint32_t member_count() const { return member_count_; }
    uint32_t group_count() const { return group_count_; }
    uint32_t data_per_group() const { return data_per_group_; }      // k
    uint32_t parity_per_group() const { return parity_per_group_; }  // m
    uint32_t group_width() const { return data_per_group_ + parity_per_group_; }
    uint64_t chunk_bytes() const { return chunk_bytes_; }
    uint64_t stripe_count() const { return stripe_count_; }
    // Data bytes in one stripe: groups * k * chunk.
    uint64_t stripe_data_bytes() const { return stripe_data_bytes_; }
    // Size of the virtual disk: stripe_count * stripe_data_bytes.
    uint64_t capacity_bytes() const { return stripe_count_ * stripe_data_bytes_; }
    // Member failures that never lose data (m for every level but raid0, which has 0).
    uint32_t failures_tolerated() const { return parity_per_group_; }
    bool rotates() const;

    // Member holding codeword position `position` (0..k+m-1) of `group` in `stripe`.
    uint32_t member_of(uint64_t stripe, uint32_t group, uint32_t position) const;
    // Inverse of member_of: the group and position that `member` holds in `stripe`.
    void position_of(uint64_t stripe, uint32_t member, uint32_t* group, uint32_t* position) const;

    // Splits [offset, offset + length) of the virtual disk into per-member data extents in
    // array order, replacing the contents of *extents. Each extent stays within one chunk.
    // Requires offset + length <= capacity.
    void map(uint64_t offset, uint64_t length, std::vector<Extent>* extents) const;
    // The first extent of [offset, end): the part of it within the chunk that contains
    // `offset`. Requires offset < end <= capacity.
    Extent extent_at(uint64_t offset, uint64_t end) const;

    // Stripes touched by [offset, offset + length): first and one past the last.
    void stripe_range(uint64_t offset, uint64_t length, uint64_t* first, uint64_t* end) const;

    std::string describe() const;  // "rs 4+2, 6 members, 64 KiB chunks, 1 GiB"

private:
    Level level_ = Level::kRaid0;
    uint32_t member_count_ = 0;
    uint32_t group_count_ = 0;
    uint32_t data_per_group_ = 0;
    uint32_t parity_per_group_ = 0;
    uint64_t chunk_bytes_ = 0;
    uint64_t stripe_count_ = 0;
    uint64_t stripe_data_bytes_ = 0;
};

}  // namespace ecraid
