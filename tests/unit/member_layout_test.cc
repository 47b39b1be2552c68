// SPDX-License-Identifier: Apache-2.0
#include "meta/member_layout.h"

#include <gtest/gtest.h>

#include <cstdint>

namespace ecraid {
namespace {

constexpr uint64_t kChunk = 64u << 10;

// Every property a computed layout must have, whatever the member size.
void expect_consistent(const MemberLayout& layout, uint64_t member_bytes) {
    EXPECT_EQ(layout.member_bytes, member_bytes);
    EXPECT_EQ(layout.bitmap_offset, kBitmapOffset);
    EXPECT_EQ(layout.bitmap_bytes, bitmap_bytes_for(layout.data_bytes, layout.region_bytes));
    EXPECT_EQ(layout.checksum_table_offset, layout.bitmap_offset + layout.bitmap_bytes);
    EXPECT_EQ(layout.checksum_table_bytes, checksum_table_bytes_for(layout.data_bytes));
    EXPECT_EQ(layout.data_offset % kDataAlignment, 0u);
    EXPECT_GE(layout.data_offset, layout.checksum_table_offset + layout.checksum_table_bytes);
    // The data offset is the lowest 1 MiB boundary after the tables.
    EXPECT_LT(layout.data_offset - kDataAlignment,
              layout.checksum_table_offset + layout.checksum_table_bytes);
    EXPECT_EQ(layout.data_bytes % kChecksumBlockBytes, 0u);
    EXPECT_LE(layout.data_offset + layout.data_bytes, member_bytes);
    EXPECT_LT(member_bytes - (layout.data_offset + layout.data_bytes), kChecksumBlockBytes);
    EXPECT_GE(layout.checksum_table_bytes, layout.data_block_count() * kChecksumEntryBytes);
    EXPECT_GE(layout.bitmap_bytes * 8, layout.region_count());
    EXPECT_TRUE(validate_member_layout(layout, kChunk).ok());
}

TEST(MemberLayout, OneGibibyteExample) {
    Result<MemberLayout> layout = compute_member_layout(1ull << 30, kChunk, kRegionBytesDefault);
    ASSERT_TRUE(layout.ok()) << layout.status().to_string();
    EXPECT_EQ(layout->bitmap_offset, 64u << 10);
    EXPECT_EQ(layout->bitmap_bytes, 4096u);
    EXPECT_EQ(layout->checksum_table_offset, 68u << 10);
    EXPECT_EQ(layout->checksum_table_bytes, 2044u << 10);
    EXPECT_EQ(layout->data_offset, 3u << 20);
    EXPECT_EQ(layout->data_bytes, 1021u << 20);
    EXPECT_EQ(layout->data_block_count(), 261376u);
    EXPECT_EQ(layout->region_count(), 16u);
    expect_consistent(layout.value(), 1ull << 30);
}

TEST(MemberLayout, SmallestMember) {
    uint64_t minimum = member_bytes_min(kChunk, kRegionBytesDefault);
    EXPECT_EQ(minimum, (1u << 20) + kChunk);
    Result<MemberLayout> layout = compute_member_layout(minimum, kChunk, kRegionBytesDefault);
    ASSERT_TRUE(layout.ok()) << layout.status().to_string();
    EXPECT_EQ(layout->data_offset, 1u << 20);
    EXPECT_EQ(layout->data_bytes, kChunk);
    expect_consistent(layout.value(), minimum);
}

TEST(MemberLayout, TooSmallMemberNamesMinimum) {
    uint64_t minimum = member_bytes_min(kChunk, kRegionBytesDefault);
    Result<MemberLayout> layout = compute_member_layout(minimum - 1, kChunk, kRegionBytesDefault);
    ASSERT_FALSE(layout.ok());
    EXPECT_EQ(layout.status().code(), Code::kInvalidArgument);
    EXPECT_NE(layout.status().message().find(std::to_string(minimum - 1)), std::string::npos)
        << layout.status().message();
    EXPECT_NE(layout.status().message().find(std::to_string(minimum)), std::string::npos)
        << layout.status().message();
}

TEST(MemberLayout, EmptyMemberRejected) {
    EXPECT_FALSE(compute_member_layout(0, kChunk, kRegionBytesDefault).ok());
    EXPECT_FALSE(compute_member_layout(4096, kChunk, kRegionBytesDefault).ok());
}

TEST(MemberLayout, LargeMembers) {
    for (uint64_t member_bytes :
         {uint64_t{1} << 40, uint64_t{16} << 40, (uint64_t{1} << 50) + 12345, kMemberBytesMax}) {
        Result<MemberLayout> layout =
            compute_member_layout(member_bytes, kChunk, kRegionBytesDefault);
        ASSERT_TRUE(layout.ok()) << member_bytes << ": " << layout.status().to_string();
        expect_consistent(layout.value(), member_bytes);
    }
    // 1 TiB: 2 GiB of table, a 2 KiB bitmap for 16384 regions of 64 MiB.
    Result<MemberLayout> tebibyte = compute_member_layout(1ull << 40, kChunk, kRegionBytesDefault);
    ASSERT_TRUE(tebibyte.ok());
    EXPECT_EQ(tebibyte->bitmap_bytes, 4096u);
    EXPECT_EQ(tebibyte->checksum_table_bytes, checksum_table_bytes_for(tebibyte->data_bytes));
    EXPECT_LT(tebibyte->checksum_table_bytes, 2ull << 30);
}

TEST(MemberLayout, TooLargeMemberRejected) {
    Result<MemberLayout> layout =
        compute_member_layout(kMemberBytesMax + 1, kChunk, kRegionBytesDefault);
    ASSERT_FALSE(layout.ok());
    EXPECT_EQ(layout.status().code(), Code::kInvalidArgument);
}

TEST(MemberLayout, EverySizeNearBoundariesIsConsistent) {
    // Sizes around the points where the table crosses a 1 MiB step exercise the search for
    // the lowest data offset.
    for (uint64_t base : {uint64_t{1} << 30, uint64_t{500} << 20, uint64_t{4} << 30, uint64_t{513} << 20}) {
        for (uint64_t delta = 0; delta < 3 * 4096 + 7; delta += 511) {
            uint64_t member_bytes = base + delta;
            Result<MemberLayout> layout =
                compute_member_layout(member_bytes, kChunk, kRegionBytesDefault);
            ASSERT_TRUE(layout.ok()) << member_bytes;
            expect_consistent(layout.value(), member_bytes);
        }
    }
}

TEST(MemberLayout, RegionSizeRules) {
    EXPECT_TRUE(validate_region_bytes(kRegionBytesDefault, kChunk).ok());
    EXPECT_TRUE(validate_region_bytes(kRegionBytesMin, kChunk).ok());
    EXPECT_FALSE(validate_region_bytes(kRegionBytesMin / 2, kChunk).ok());
    EXPECT_FALSE(validate_region_bytes(kRegionBytesMax * 2, kChunk).ok());
    EXPECT_FALSE(validate_region_bytes(3u << 20, kChunk).ok());
    EXPECT_FALSE(validate_region_bytes(1u << 20, 2u << 20).ok());
}

TEST(MemberLayout, SmallRegionsGrowTheBitmap) {
    Result<MemberLayout> layout = compute_member_layout(64ull << 30, kChunk, kRegionBytesMin);
    ASSERT_TRUE(layout.ok());
    EXPECT_EQ(layout->region_count(), (layout->data_bytes + kRegionBytesMin - 1) / kRegionBytesMin);
    // About 65400 regions of 1 MiB: 8176 bytes of bits, rounded up to 8 KiB.
    EXPECT_EQ(layout->bitmap_bytes, 8u << 10);
    expect_consistent(layout.value(), 64ull << 30);
}

TEST(MemberLayout, ValidateRejectsOverlaps) {
    Result<MemberLayout> computed = compute_member_layout(1ull << 30, kChunk, kRegionBytesDefault);
    ASSERT_TRUE(computed.ok());
    const MemberLayout good = computed.value();

    MemberLayout layout = good;
    layout.checksum_table_offset = layout.bitmap_offset;
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());

    layout = good;
    layout.data_offset -= kDataAlignment;
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());

    layout = good;
    layout.data_bytes += kChecksumBlockBytes * 1024;
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());

    layout = good;
    layout.bitmap_offset = 4096;
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());

    layout = good;
    layout.checksum_table_bytes -= 4096;
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());

    layout = good;
    layout.data_offset = UINT64_MAX - (kDataAlignment - 1);
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());

    layout = good;
    layout.member_bytes = layout.data_offset + layout.data_bytes - 1;
    EXPECT_FALSE(validate_member_layout(layout, kChunk).ok());
}

}  // namespace
}  // namespace ecraid
