// SPDX-License-Identifier: Apache-2.0
#include "layout/geometry.h"

#include <algorithm>
#include <cassert>
#include <cctype>
#include <cstdint>
#include <utility>

#include <fmt/format.h>

#include "common/units.h"

namespace ecraid {
namespace {

// Largest capacity accepted: offsets in the virtual disk must fit in a signed 64-bit off_t.
constexpr uint64_t kCapacityBytesMax = static_cast<uint64_t>(INT64_MAX);

struct Shape {
    uint32_t group_count = 0;
    uint32_t data_per_group = 0;
    uint32_t parity_per_group = 0;
};

Status invalid(std::string message) {
    return Status::error(Code::kInvalidArgument, std::move(message));
}

Status check_member_count(Level level, uint32_t member_count, uint32_t minimum) {
    if (member_count < minimum) {
        return invalid(fmt::format("{} needs at least {} members, got {}", level_name(level),
                                   minimum, member_count));
    }
    if (member_count > kMemberCountMax) {
        return invalid(fmt::format("{} supports at most {} members, got {}", level_name(level),
                                   kMemberCountMax, member_count));
    }
    return Status::ok_status();
}

Result<Shape> derive_rs_shape(const GeometryConfig& config) {
    uint32_t k = config.data_count;
    uint32_t m = config.parity_count;
    if (k < 1 || k > kRsDataMax) {
        return invalid(fmt::format("rs needs k between 1 and {} data chunks, got {}", kRsDataMax,
                                   k));
    }
    if (m < 1 || m > kRsParityMax) {
        return invalid(fmt::format("rs needs m between 1 and {} parity chunks, got {}",
                                   kRsParityMax, m));
    }
    if (config.member_count != k + m) {
        return invalid(fmt::format("rs {}+{} needs {} members, got {}", k, m, k + m,
                                   config.member_count));
    }
    return Shape{1, k, m};
}

// Derives groups, k and m from the level and member count for every level but rs.
Result<Shape> derive_fixed_shape(const GeometryConfig& config) {
    assert(config.level != Level::kRs);
    uint32_t n = config.member_count;
    Shape shape;
    switch (config.level) {
        case Level::kRaid0:
            ECRAID_RETURN_IF_ERROR(check_member_count(config.level, n, 2));
            shape = Shape{1, n, 0};
            break;
        case Level::kRaid1:
            ECRAID_RETURN_IF_ERROR(check_member_count(config.level, n, 2));
            shape = Shape{1, 1, n - 1};
            break;
        case Level::kRaid10:
            ECRAID_RETURN_IF_ERROR(check_member_count(config.level, n, 4));
            if (n % 2 != 0) {
                return invalid(fmt::format("raid10 needs an even number of members, got {}", n));
            }
            shape = Shape{n / 2, 1, 1};
            break;
        case Level::kRaid5:
            ECRAID_RETURN_IF_ERROR(check_member_count(config.level, n, 3));
            shape = Shape{1, n - 1, 1};
            break;
        case Level::kRaid6:
            ECRAID_RETURN_IF_ERROR(check_member_count(config.level, n, 4));
            shape = Shape{1, n - 2, 2};
            break;
        case Level::kRs:
            break;
    }

    // k and m are derived here, so a caller may leave them 0 or repeat the derived values.
    bool k_matches = config.data_count == 0 || config.data_count == shape.data_per_group;
    bool m_matches = config.parity_count == 0 || config.parity_count == shape.parity_per_group;
    if (!k_matches || !m_matches) {
        return invalid(fmt::format(
            "{} with {} members has k+m = {}+{} per group, but the configuration requests {}+{}. "
            "Set data_count and parity_count to 0 to derive them",
            level_name(config.level), n, shape.data_per_group, shape.parity_per_group,
            config.data_count, config.parity_count));
    }
    return shape;
}

Result<Shape> derive_shape(const GeometryConfig& config) {
    switch (config.level) {
        case Level::kRaid0:
        case Level::kRaid1:
        case Level::kRaid10:
        case Level::kRaid5:
        case Level::kRaid6:
            return derive_fixed_shape(config);
        case Level::kRs:
            return derive_rs_shape(config);
    }
    return invalid(fmt::format("unknown level value {}", static_cast<unsigned>(config.level)));
}

bool is_power_of_two(uint64_t value) { return value != 0 && (value & (value - 1)) == 0; }

}  // namespace

std::string_view level_name(Level level) {
    switch (level) {
        case Level::kRaid0: return "raid0";
        case Level::kRaid1: return "raid1";
        case Level::kRaid10: return "raid10";
        case Level::kRaid5: return "raid5";
        case Level::kRaid6: return "raid6";
        case Level::kRs: return "rs";
    }
    return "unknown";
}

Result<Level> parse_level(std::string_view name) {
    std::string lowered(name);
    for (char& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));

    for (Level level : {Level::kRaid0, Level::kRaid1, Level::kRaid10, Level::kRaid5,
                        Level::kRaid6, Level::kRs}) {
        if (lowered == level_name(level)) return level;
    }
    return invalid(fmt::format(
        "unknown level '{}': expected raid0, raid1, raid10, raid5, raid6 or rs", name));
}

Result<Geometry> Geometry::create(const GeometryConfig& config) {
    Result<Shape> shape = derive_shape(config);
    if (!shape.ok()) return shape.status();

    uint64_t chunk = config.chunk_bytes;
    if (!is_power_of_two(chunk) || chunk < kChunkBytesMin || chunk > kChunkBytesMax) {
        return invalid(fmt::format("chunk size {} is not a power of two between {} and {}", chunk,
                                   format_size(kChunkBytesMin), format_size(kChunkBytesMax)));
    }

    // A partial chunk at the end of the smallest member is left unused.
    uint64_t stripe_count = config.member_data_bytes / chunk;
    if (stripe_count == 0) {
        return invalid(fmt::format(
            "member data area of {} bytes is smaller than one chunk of {} bytes. Use larger "
            "members or a smaller chunk size",
            config.member_data_bytes, chunk));
    }

    uint64_t data_chunks_per_stripe = uint64_t{shape->group_count} * shape->data_per_group;
    uint64_t stripe_data_bytes = data_chunks_per_stripe * chunk;
    uint64_t capacity = 0;
    if (__builtin_mul_overflow(stripe_count, stripe_data_bytes, &capacity) ||
        capacity > kCapacityBytesMax) {
        return invalid(fmt::format(
            "capacity of {} stripes of {} data bytes exceeds the maximum of {} bytes",
            stripe_count, stripe_data_bytes, kCapacityBytesMax));
    }

    Geometry geometry;
    geometry.level_ = config.level;
    geometry.member_count_ = config.member_count;
    geometry.group_count_ = shape->group_count;
    geometry.data_per_group_ = shape->data_per_group;
    geometry.parity_per_group_ = shape->parity_per_group;
    geometry.chunk_bytes_ = chunk;
    geometry.stripe_count_ = stripe_count;
    geometry.stripe_data_bytes_ = stripe_data_bytes;
    return geometry;
}

bool Geometry::rotates() const {
    return level_ == Level::kRaid5 || level_ == Level::kRaid6 || level_ == Level::kRs;
}

uint32_t Geometry::member_of(uint64_t stripe, uint32_t group, uint32_t position) const {
    assert(group < group_count_);
    assert(position < group_width());

    if (rotates()) {
        uint32_t shift = static_cast<uint32_t>(stripe % member_count_);
        return (position + member_count_ - shift) % member_count_;
    }
    // raid10 puts group g on members 2g and 2g + 1; raid0 and raid1 have one group.
    return group * group_width() + position;
}

void Geometry::position_of(uint64_t stripe, uint32_t member, uint32_t* group,
                           uint32_t* position) const {
    assert(member < member_count_);

    if (rotates()) {
        uint32_t shift = static_cast<uint32_t>(stripe % member_count_);
        *group = 0;
        *position = (member + shift) % member_count_;
        return;
    }
    *group = member / group_width();
    *position = member % group_width();
}

void Geometry::map(uint64_t offset, uint64_t length, std::vector<Extent>* extents) const {
    assert(offset <= capacity_bytes());
    assert(length <= capacity_bytes() - offset);
    extents->clear();

    uint64_t end = offset + length;
    while (offset < end) {
        Extent extent = extent_at(offset, end);
        extents->push_back(extent);
        offset += extent.length;
    }
}

Extent Geometry::extent_at(uint64_t offset, uint64_t end) const {
    assert(offset < end);
    assert(end <= capacity_bytes());
    // Example: raid5 on 4 members, 64 KiB chunks, offset 200 KiB. Data chunk 3 is
    // stripe 1, position 0, which lives on member (0 - 1) mod 4 = 3 at 64 KiB + 8 KiB.
    uint64_t data_chunks_per_stripe = stripe_data_bytes_ / chunk_bytes_;
    uint64_t chunk_index = offset / chunk_bytes_;
    uint64_t within_chunk = offset % chunk_bytes_;
    uint64_t within_stripe = chunk_index % data_chunks_per_stripe;

    Extent extent;
    extent.stripe = chunk_index / data_chunks_per_stripe;
    extent.group = static_cast<uint32_t>(within_stripe / data_per_group_);
    extent.position = static_cast<uint32_t>(within_stripe % data_per_group_);
    extent.member = member_of(extent.stripe, extent.group, extent.position);
    extent.member_offset = extent.stripe * chunk_bytes_ + within_chunk;
    extent.length = std::min(end - offset, chunk_bytes_ - within_chunk);
    extent.array_offset = offset;
    return extent;
}

void Geometry::stripe_range(uint64_t offset, uint64_t length, uint64_t* first,
                            uint64_t* end) const {
    assert(offset <= capacity_bytes());
    assert(length <= capacity_bytes() - offset);

    *first = offset / stripe_data_bytes_;
    if (length == 0) {
        *end = *first;
        return;
    }
    *end = (offset + length - 1) / stripe_data_bytes_ + 1;
}

std::string Geometry::describe() const {
    std::string shape = fmt::format("{}+{}", data_per_group_, parity_per_group_);
    if (group_count_ > 1) shape = fmt::format("{} groups of {}", group_count_, shape);
    return fmt::format("{} {}, {} members, {} chunks, {}", level_name(level_), shape,
                       member_count_, format_size(chunk_bytes_), format_size(capacity_bytes()));
}

}  // namespace ecraid
