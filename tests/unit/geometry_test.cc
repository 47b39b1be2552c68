// SPDX-License-Identifier: Apache-2.0
#include "layout/geometry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <random>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/units.h"
#include "test_seed.h"

namespace ecraid {
namespace {

GeometryConfig make_config(Level level, uint32_t member_count, uint64_t chunk_bytes = 64 * kKiB,
                           uint64_t member_data_bytes = kGiB) {
    GeometryConfig config;
    config.level = level;
    config.member_count = member_count;
    config.chunk_bytes = chunk_bytes;
    config.member_data_bytes = member_data_bytes;
    return config;
}

GeometryConfig make_rs_config(uint32_t k, uint32_t m, uint64_t chunk_bytes = 64 * kKiB,
                              uint64_t member_data_bytes = kGiB) {
    GeometryConfig config = make_config(Level::kRs, k + m, chunk_bytes, member_data_bytes);
    config.data_count = k;
    config.parity_count = m;
    return config;
}

Geometry create_or_die(const GeometryConfig& config) {
    Result<Geometry> geometry = Geometry::create(config);
    EXPECT_TRUE(geometry.ok()) << geometry.status().message();
    return std::move(geometry).value();
}

struct ShapeCase {
    GeometryConfig config;
    uint32_t group_count;
    uint32_t k;
    uint32_t m;
    bool rotates;
};

TEST(GeometryCreate, DerivesShapeForEveryLevel) {
    const ShapeCase cases[] = {
        {make_config(Level::kRaid0, 2), 1, 2, 0, false},
        {make_config(Level::kRaid0, 5), 1, 5, 0, false},
        {make_config(Level::kRaid1, 2), 1, 1, 1, false},
        {make_config(Level::kRaid1, 3), 1, 1, 2, false},
        {make_config(Level::kRaid10, 4), 2, 1, 1, false},
        {make_config(Level::kRaid10, 8), 4, 1, 1, false},
        {make_config(Level::kRaid5, 3), 1, 2, 1, true},
        {make_config(Level::kRaid5, 64), 1, 63, 1, true},
        {make_config(Level::kRaid6, 4), 1, 2, 2, true},
        {make_config(Level::kRaid6, 10), 1, 8, 2, true},
        {make_rs_config(1, 1), 1, 1, 1, true},
        {make_rs_config(10, 4), 1, 10, 4, true},
        {make_rs_config(32, 8), 1, 32, 8, true},
    };
    for (const ShapeCase& c : cases) {
        Geometry geometry = create_or_die(c.config);
        SCOPED_TRACE(geometry.describe());
        EXPECT_EQ(geometry.level(), c.config.level);
        EXPECT_EQ(geometry.member_count(), c.config.member_count);
        EXPECT_EQ(geometry.group_count(), c.group_count);
        EXPECT_EQ(geometry.data_per_group(), c.k);
        EXPECT_EQ(geometry.parity_per_group(), c.m);
        EXPECT_EQ(geometry.group_width() * geometry.group_count(), c.config.member_count);
        EXPECT_EQ(geometry.failures_tolerated(), c.m);
        EXPECT_EQ(geometry.rotates(), c.rotates);
        EXPECT_EQ(geometry.stripe_count(), kGiB / (64 * kKiB));
        EXPECT_EQ(geometry.stripe_data_bytes(), uint64_t{c.group_count} * c.k * 64 * kKiB);
        EXPECT_EQ(geometry.capacity_bytes(), uint64_t{c.group_count} * c.k * kGiB);
    }
}

TEST(GeometryCreate, AcceptsDerivedDataAndParityCounts) {
    GeometryConfig config = make_config(Level::kRaid6, 6);
    config.data_count = 4;
    config.parity_count = 2;
    EXPECT_TRUE(Geometry::create(config).ok());
}

TEST(GeometryCreate, AcceptsEveryChunkSizeInRange) {
    for (uint64_t chunk = kChunkBytesMin; chunk <= kChunkBytesMax; chunk *= 2) {
        Result<Geometry> geometry = Geometry::create(make_config(Level::kRaid5, 4, chunk));
        ASSERT_TRUE(geometry.ok()) << chunk << ": " << geometry.status().message();
        EXPECT_EQ(geometry->chunk_bytes(), chunk);
        EXPECT_EQ(geometry->stripe_count(), kGiB / chunk);
    }
}

TEST(GeometryCreate, DefaultChunkIs64KiB) {
    GeometryConfig config;
    EXPECT_EQ(config.chunk_bytes, 64 * kKiB);
}

TEST(GeometryCapacity, ComesFromSmallestMemberInWholeChunks) {
    // 10 whole chunks and a partial one: the partial chunk is left unused.
    GeometryConfig config = make_config(Level::kRaid6, 6, 64 * kKiB, 10 * 64 * kKiB + 1000);
    Geometry geometry = create_or_die(config);
    EXPECT_EQ(geometry.stripe_count(), 10u);
    EXPECT_EQ(geometry.stripe_data_bytes(), 4 * 64 * kKiB);
    EXPECT_EQ(geometry.capacity_bytes(), 10 * 4 * 64 * kKiB);
}

TEST(GeometryCapacity, OneChunkMemberHoldsOneStripe) {
    Geometry geometry = create_or_die(make_config(Level::kRaid1, 2, 4 * kKiB, 4 * kKiB));
    EXPECT_EQ(geometry.stripe_count(), 1u);
    EXPECT_EQ(geometry.capacity_bytes(), 4 * kKiB);
}

struct RejectCase {
    GeometryConfig config;
    const char* message;
};

GeometryConfig with_counts(GeometryConfig config, uint32_t k, uint32_t m) {
    config.data_count = k;
    config.parity_count = m;
    return config;
}

GeometryConfig with_level_value(uint8_t value) {
    GeometryConfig config = make_config(Level::kRaid5, 4);
    config.level = static_cast<Level>(value);
    return config;
}

TEST(GeometryCreate, RejectsInvalidConfigurations) {
    const RejectCase cases[] = {
        {make_config(Level::kRaid0, 1), "raid0 needs at least 2 members, got 1"},
        {make_config(Level::kRaid0, 65), "raid0 supports at most 64 members, got 65"},
        {make_config(Level::kRaid1, 1), "raid1 needs at least 2 members, got 1"},
        {make_config(Level::kRaid1, 65), "raid1 supports at most 64 members, got 65"},
        {make_config(Level::kRaid10, 2), "raid10 needs at least 4 members, got 2"},
        {make_config(Level::kRaid10, 5), "raid10 needs an even number of members, got 5"},
        {make_config(Level::kRaid10, 66), "raid10 supports at most 64 members, got 66"},
        {make_config(Level::kRaid5, 2), "raid5 needs at least 3 members, got 2"},
        {make_config(Level::kRaid5, 65), "raid5 supports at most 64 members, got 65"},
        {make_config(Level::kRaid6, 3), "raid6 needs at least 4 members, got 3"},
        {make_config(Level::kRaid6, 0), "raid6 needs at least 4 members, got 0"},
        {make_config(Level::kRaid6, 100), "raid6 supports at most 64 members, got 100"},
        {make_rs_config(0, 2), "rs needs k between 1 and 32 data chunks, got 0"},
        {make_rs_config(33, 2), "rs needs k between 1 and 32 data chunks, got 33"},
        {make_rs_config(4, 0), "rs needs m between 1 and 8 parity chunks, got 0"},
        {make_rs_config(4, 9), "rs needs m between 1 and 8 parity chunks, got 9"},
        {with_counts(make_config(Level::kRs, 5), 4, 2), "rs 4+2 needs 6 members, got 5"},
        {with_counts(make_config(Level::kRaid5, 4), 2, 2),
         "raid5 with 4 members has k+m = 3+1 per group, but the configuration requests 2+2. "
         "Set data_count and parity_count to 0 to derive them"},
        {with_counts(make_config(Level::kRaid10, 4), 2, 0),
         "raid10 with 4 members has k+m = 1+1 per group, but the configuration requests 2+0. "
         "Set data_count and parity_count to 0 to derive them"},
        {with_level_value(9), "unknown level value 9"},
        {make_config(Level::kRaid5, 4, 12288),
         "chunk size 12288 is not a power of two between 4 KiB and 16 MiB"},
        {make_config(Level::kRaid5, 4, 2048),
         "chunk size 2048 is not a power of two between 4 KiB and 16 MiB"},
        {make_config(Level::kRaid5, 4, 32 * kMiB),
         "chunk size 33554432 is not a power of two between 4 KiB and 16 MiB"},
        {make_config(Level::kRaid5, 4, 0),
         "chunk size 0 is not a power of two between 4 KiB and 16 MiB"},
        {make_config(Level::kRaid5, 4, 64 * kKiB, 64 * kKiB - 1),
         "member data area of 65535 bytes is smaller than one chunk of 65536 bytes. Use larger "
         "members or a smaller chunk size"},
        {make_config(Level::kRaid5, 4, 64 * kKiB, 0),
         "member data area of 0 bytes is smaller than one chunk of 65536 bytes. Use larger "
         "members or a smaller chunk size"},
        {make_config(Level::kRaid0, 64, 64 * kKiB, UINT64_MAX),
         "capacity of 281474976710655 stripes of 4194304 data bytes exceeds the maximum of "
         "9223372036854775807 bytes"},
    };
    for (const RejectCase& c : cases) {
        Result<Geometry> geometry = Geometry::create(c.config);
        ASSERT_FALSE(geometry.ok()) << c.message;
        EXPECT_EQ(geometry.status().code(), Code::kInvalidArgument) << c.message;
        EXPECT_EQ(geometry.status().message(), c.message);
    }
}

TEST(GeometryCreate, AcceptsCapacityJustBelowMaximum) {
    // raid0 on 2 members of 4 EiB - 1 MiB: 8 EiB - 2 MiB of capacity still fits an off_t.
    uint64_t member_bytes = (uint64_t{1} << 62) - kMiB;
    Geometry geometry = create_or_die(make_config(Level::kRaid0, 2, kMiB, member_bytes));
    EXPECT_EQ(geometry.capacity_bytes(), 2 * member_bytes);
}

TEST(GeometryRotation, Raid5MatchesLayoutDiagram) {
    // Position stored on each member, where position 3 is P. Stripe 4 repeats stripe 0.
    const uint32_t expected[5][4] = {
        {0, 1, 2, 3}, {1, 2, 3, 0}, {2, 3, 0, 1}, {3, 0, 1, 2}, {0, 1, 2, 3},
    };
    Geometry geometry = create_or_die(make_config(Level::kRaid5, 4));
    for (uint64_t stripe = 0; stripe < 5; ++stripe) {
        for (uint32_t member = 0; member < 4; ++member) {
            uint32_t group = 99;
            uint32_t position = 99;
            geometry.position_of(stripe, member, &group, &position);
            EXPECT_EQ(group, 0u);
            EXPECT_EQ(position, expected[stripe][member]) << "stripe " << stripe << " member "
                                                          << member;
            EXPECT_EQ(geometry.member_of(stripe, 0, position), member);
        }
    }
}

TEST(GeometryRotation, RotatingLevelsPlacePositionMinusStripe) {
    const GeometryConfig configs[] = {
        make_config(Level::kRaid5, 3), make_config(Level::kRaid5, 7),
        make_config(Level::kRaid6, 4), make_config(Level::kRaid6, 9),
        make_rs_config(4, 2),          make_rs_config(10, 4),
        make_rs_config(1, 1),
    };
    for (const GeometryConfig& config : configs) {
        Geometry geometry = create_or_die(config);
        SCOPED_TRACE(geometry.describe());
        int64_t n = geometry.member_count();
        // Includes stripes far past n and near the end of the array.
        std::vector<uint64_t> stripes;
        for (uint64_t s = 0; s < 3 * static_cast<uint64_t>(n); ++s) stripes.push_back(s);
        stripes.push_back(geometry.stripe_count() - 1);
        stripes.push_back(1000003);
        for (uint64_t stripe : stripes) {
            for (int64_t p = 0; p < n; ++p) {
                int64_t expected = ((p - static_cast<int64_t>(stripe % n)) % n + n) % n;
                EXPECT_EQ(geometry.member_of(stripe, 0, static_cast<uint32_t>(p)), expected)
                    << "stripe " << stripe << " position " << p;
            }
        }
    }
}

TEST(GeometryRotation, FixedLevelsDoNotRotate) {
    Geometry raid0 = create_or_die(make_config(Level::kRaid0, 4));
    Geometry raid1 = create_or_die(make_config(Level::kRaid1, 3));
    Geometry raid10 = create_or_die(make_config(Level::kRaid10, 6));
    for (uint64_t stripe : {uint64_t{0}, uint64_t{1}, uint64_t{5}, uint64_t{12345}}) {
        for (uint32_t p = 0; p < 4; ++p) EXPECT_EQ(raid0.member_of(stripe, 0, p), p);
        for (uint32_t p = 0; p < 3; ++p) EXPECT_EQ(raid1.member_of(stripe, 0, p), p);
        for (uint32_t g = 0; g < 3; ++g) {
            EXPECT_EQ(raid10.member_of(stripe, g, 0), 2 * g);
            EXPECT_EQ(raid10.member_of(stripe, g, 1), 2 * g + 1);
        }
    }
}

TEST(GeometryRotation, PositionOfInvertsMemberOf) {
    const GeometryConfig configs[] = {
        make_config(Level::kRaid0, 3),  make_config(Level::kRaid1, 4),
        make_config(Level::kRaid10, 8), make_config(Level::kRaid5, 5),
        make_config(Level::kRaid6, 6),  make_rs_config(8, 3),
    };
    for (const GeometryConfig& config : configs) {
        Geometry geometry = create_or_die(config);
        SCOPED_TRACE(geometry.describe());
        for (uint64_t stripe = 0; stripe < 2 * geometry.member_count() + 1; ++stripe) {
            std::set<uint32_t> members_seen;
            for (uint32_t g = 0; g < geometry.group_count(); ++g) {
                for (uint32_t p = 0; p < geometry.group_width(); ++p) {
                    uint32_t member = geometry.member_of(stripe, g, p);
                    ASSERT_LT(member, geometry.member_count());
                    members_seen.insert(member);
                    uint32_t group = 99;
                    uint32_t position = 99;
                    geometry.position_of(stripe, member, &group, &position);
                    EXPECT_EQ(group, g);
                    EXPECT_EQ(position, p);
                }
            }
            EXPECT_EQ(members_seen.size(), geometry.member_count()) << "stripe " << stripe;
        }
    }
}

TEST(GeometryMap, Raid5WorkedExample) {
    // Data chunk 3 is stripe 1, position 0, on member (0 - 1) mod 4 = 3. Chunk 4 is
    // stripe 1, position 1, on member 0.
    Geometry geometry = create_or_die(make_config(Level::kRaid5, 4));
    std::vector<Extent> extents;
    geometry.map(200 * kKiB, 100 * kKiB, &extents);
    ASSERT_EQ(extents.size(), 2u);

    EXPECT_EQ(extents[0].member, 3u);
    EXPECT_EQ(extents[0].member_offset, 64 * kKiB + 8 * kKiB);
    EXPECT_EQ(extents[0].length, 56 * kKiB);
    EXPECT_EQ(extents[0].array_offset, 200 * kKiB);
    EXPECT_EQ(extents[0].stripe, 1u);
    EXPECT_EQ(extents[0].group, 0u);
    EXPECT_EQ(extents[0].position, 0u);

    EXPECT_EQ(extents[1].member, 0u);
    EXPECT_EQ(extents[1].member_offset, 64 * kKiB);
    EXPECT_EQ(extents[1].length, 44 * kKiB);
    EXPECT_EQ(extents[1].array_offset, 256 * kKiB);
    EXPECT_EQ(extents[1].stripe, 1u);
    EXPECT_EQ(extents[1].group, 0u);
    EXPECT_EQ(extents[1].position, 1u);
}

TEST(GeometryMap, Raid10StripesOverGroups) {
    Geometry geometry = create_or_die(make_config(Level::kRaid10, 6, 4 * kKiB));
    std::vector<Extent> extents;
    geometry.map(0, 4 * 4 * kKiB, &extents);
    ASSERT_EQ(extents.size(), 4u);
    const uint32_t members[] = {0, 2, 4, 0};
    const uint32_t groups[] = {0, 1, 2, 0};
    for (size_t i = 0; i < 4; ++i) {
        EXPECT_EQ(extents[i].member, members[i]) << i;
        EXPECT_EQ(extents[i].group, groups[i]) << i;
        EXPECT_EQ(extents[i].position, 0u) << i;
        EXPECT_EQ(extents[i].stripe, i / 3) << i;
        EXPECT_EQ(extents[i].member_offset, (i / 3) * 4 * kKiB) << i;
    }
}

TEST(GeometryMap, EmptyRangeHasNoExtents) {
    Geometry geometry = create_or_die(make_config(Level::kRaid6, 5));
    std::vector<Extent> extents = {Extent{}};
    geometry.map(12345, 0, &extents);
    EXPECT_TRUE(extents.empty());
    geometry.map(geometry.capacity_bytes(), 0, &extents);
    EXPECT_TRUE(extents.empty());
}

TEST(GeometryMap, ReplacesPreviousExtents) {
    Geometry geometry = create_or_die(make_config(Level::kRaid0, 2));
    std::vector<Extent> extents;
    geometry.map(0, 256 * kKiB, &extents);
    ASSERT_EQ(extents.size(), 4u);
    geometry.map(0, 4096, &extents);
    ASSERT_EQ(extents.size(), 1u);
    EXPECT_EQ(extents[0].length, 4096u);
}

TEST(GeometryMap, LastByteOfArray) {
    Geometry geometry = create_or_die(make_rs_config(4, 2, 64 * kKiB, 64 * kMiB));
    std::vector<Extent> extents;
    geometry.map(geometry.capacity_bytes() - 1, 1, &extents);
    ASSERT_EQ(extents.size(), 1u);
    EXPECT_EQ(extents[0].stripe, geometry.stripe_count() - 1);
    EXPECT_EQ(extents[0].position, 3u);
    EXPECT_EQ(extents[0].member_offset, 64 * kMiB - 1);
    EXPECT_EQ(extents[0].length, 1u);
}

// Location of one array byte, found the slow way: scan the stripe's members with
// position_of to find the member that stores the byte's data chunk.
Extent locate_byte(const Geometry& geometry, uint64_t array_offset) {
    uint64_t chunk = geometry.chunk_bytes();
    uint64_t data_chunks_per_stripe = geometry.stripe_data_bytes() / chunk;
    uint64_t chunk_index = array_offset / chunk;
    uint64_t stripe = chunk_index / data_chunks_per_stripe;
    uint64_t index_in_stripe = chunk_index % data_chunks_per_stripe;

    for (uint32_t member = 0; member < geometry.member_count(); ++member) {
        uint32_t group = 0;
        uint32_t position = 0;
        geometry.position_of(stripe, member, &group, &position);
        if (position >= geometry.data_per_group()) continue;  // Parity or copy.
        if (uint64_t{group} * geometry.data_per_group() + position != index_in_stripe) continue;

        Extent extent;
        extent.member = member;
        extent.member_offset = stripe * chunk + array_offset % chunk;
        extent.length = 1;
        extent.array_offset = array_offset;
        extent.stripe = stripe;
        extent.group = group;
        extent.position = position;
        return extent;
    }
    ADD_FAILURE() << "no member holds array byte " << array_offset;
    return Extent{};
}

// Walks the range byte by byte, starting a new extent at every chunk boundary.
std::vector<Extent> reference_map(const Geometry& geometry, uint64_t offset, uint64_t length) {
    std::vector<Extent> extents;
    for (uint64_t a = offset; a < offset + length; ++a) {
        Extent byte = locate_byte(geometry, a);
        bool chunk_start = a % geometry.chunk_bytes() == 0;
        if (!extents.empty() && !chunk_start) {
            Extent& last = extents.back();
            EXPECT_EQ(byte.member, last.member);
            EXPECT_EQ(byte.member_offset, last.member_offset + last.length);
            ++last.length;
            continue;
        }
        extents.push_back(byte);
    }
    return extents;
}

std::string describe_extent(const Extent& e) {
    return "member " + std::to_string(e.member) + " offset " + std::to_string(e.member_offset) +
           " length " + std::to_string(e.length) + " array offset " +
           std::to_string(e.array_offset) + " stripe " + std::to_string(e.stripe) + " group " +
           std::to_string(e.group) + " position " + std::to_string(e.position);
}

TEST(GeometryMap, MatchesByteWalkOnRandomRanges) {
    const GeometryConfig configs[] = {
        make_config(Level::kRaid0, 3, 4 * kKiB, 5 * 4 * kKiB),
        make_config(Level::kRaid1, 3, 4 * kKiB, 9 * 4 * kKiB),
        make_config(Level::kRaid10, 6, 4 * kKiB, 5 * 4 * kKiB),
        make_config(Level::kRaid5, 4, 4 * kKiB, 5 * 4 * kKiB + 100),
        make_config(Level::kRaid6, 7, 4 * kKiB, 4 * 4 * kKiB),
        make_rs_config(10, 4, 4 * kKiB, 3 * 4 * kKiB),
        make_rs_config(3, 2, 8 * kKiB, 4 * 8 * kKiB),
    };
    const uint64_t seed = testing::test_seed();
    std::mt19937_64 random(seed);
    std::vector<Extent> extents;
    for (const GeometryConfig& config : configs) {
        Geometry geometry = create_or_die(config);
        uint64_t capacity = geometry.capacity_bytes();
        for (int round = 0; round < 40; ++round) {
            uint64_t offset = random() % capacity;
            // Half the ranges are short, so chunk edges get exercised closely.
            uint64_t length_max = round % 2 == 0 ? 3 * geometry.chunk_bytes() : capacity;
            uint64_t length = random() % (std::min(length_max, capacity - offset) + 1);
            SCOPED_TRACE(geometry.describe() + ", offset " + std::to_string(offset) +
                         ", length " + std::to_string(length) + ", ECRAID_TEST_SEED=" +
                         std::to_string(seed));

            geometry.map(offset, length, &extents);
            std::vector<Extent> expected = reference_map(geometry, offset, length);
            ASSERT_EQ(extents.size(), expected.size());
            for (size_t i = 0; i < expected.size(); ++i) {
                ASSERT_EQ(describe_extent(extents[i]), describe_extent(expected[i]))
                    << "extent " << i;
            }
        }
    }
}

TEST(GeometryStripeRange, CoversTouchedStripes) {
    // raid6 on 6 members with 64 KiB chunks: 256 KiB of data per stripe.
    Geometry geometry = create_or_die(make_config(Level::kRaid6, 6));
    const uint64_t stripe_bytes = 256 * kKiB;
    struct Case {
        uint64_t offset;
        uint64_t length;
        uint64_t first;
        uint64_t end;
    };
    const Case cases[] = {
        {0, 0, 0, 0},
        {0, 1, 0, 1},
        {0, stripe_bytes, 0, 1},
        {0, stripe_bytes + 1, 0, 2},
        {stripe_bytes - 1, 2, 0, 2},
        {stripe_bytes, stripe_bytes, 1, 2},
        {3 * stripe_bytes + 5, 0, 3, 3},
        {stripe_bytes / 2, 3 * stripe_bytes, 0, 4},
        {geometry.capacity_bytes() - 1, 1, geometry.stripe_count() - 1, geometry.stripe_count()},
        {0, geometry.capacity_bytes(), 0, geometry.stripe_count()},
    };
    for (const Case& c : cases) {
        uint64_t first = 99;
        uint64_t end = 99;
        geometry.stripe_range(c.offset, c.length, &first, &end);
        EXPECT_EQ(first, c.first) << "offset " << c.offset << " length " << c.length;
        EXPECT_EQ(end, c.end) << "offset " << c.offset << " length " << c.length;
    }
}

TEST(GeometryDescribe, NamesShapeAndSizes) {
    EXPECT_EQ(create_or_die(make_rs_config(4, 2, 64 * kKiB, 256 * kMiB)).describe(),
              "rs 4+2, 6 members, 64 KiB chunks, 1 GiB");
    EXPECT_EQ(create_or_die(make_config(Level::kRaid5, 4, 4 * kKiB, kGiB)).describe(),
              "raid5 3+1, 4 members, 4 KiB chunks, 3 GiB");
    EXPECT_EQ(create_or_die(make_config(Level::kRaid10, 6, kMiB, kGiB)).describe(),
              "raid10 3 groups of 1+1, 6 members, 1 MiB chunks, 3 GiB");
    EXPECT_EQ(create_or_die(make_config(Level::kRaid0, 2, 16 * kMiB, kGiB)).describe(),
              "raid0 2+0, 2 members, 16 MiB chunks, 2 GiB");
}

TEST(LevelName, RoundTripsThroughParseLevel) {
    for (Level level : {Level::kRaid0, Level::kRaid1, Level::kRaid10, Level::kRaid5,
                        Level::kRaid6, Level::kRs}) {
        Result<Level> parsed = parse_level(level_name(level));
        ASSERT_TRUE(parsed.ok()) << level_name(level);
        EXPECT_EQ(*parsed, level);
    }
    Result<Level> upper = parse_level("RAID6");
    ASSERT_TRUE(upper.ok());
    EXPECT_EQ(*upper, Level::kRaid6);
}

TEST(LevelName, ParseRejectsUnknownName) {
    Result<Level> parsed = parse_level("raid7");
    ASSERT_FALSE(parsed.ok());
    EXPECT_EQ(parsed.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(parsed.status().message(),
              "unknown level 'raid7': expected raid0, raid1, raid10, raid5, raid6 or rs");
}

}  // namespace
}  // namespace ecraid
