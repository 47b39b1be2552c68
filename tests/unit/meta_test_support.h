// SPDX-License-Identifier: Apache-2.0
// Helpers shared by the superblock, member file and create tests: valid sample superblocks
// and a temporary directory that removes itself.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "layout/geometry.h"
#include "meta/member_layout.h"
#include "meta/superblock.h"

namespace ecraid::testing {

struct SampleShape {
    Level level;
    uint32_t member_count;
    uint32_t data_count;  // Only read for rs.
    uint32_t parity_count;
};

// A valid superblock of role `role` for a member of `member_bytes`, every member active.
inline Superblock make_sample_superblock(const SampleShape& shape, uint32_t role = 0,
                                         uint64_t member_bytes = 1ull << 30,
                                         uint64_t chunk_bytes = 64u << 10) {
    Result<MemberLayout> layout =
        compute_member_layout(member_bytes, chunk_bytes, kRegionBytesDefault);
    EXPECT_TRUE(layout.ok()) << layout.status().to_string();

    GeometryConfig config;
    config.level = shape.level;
    config.member_count = shape.member_count;
    if (shape.level == Level::kRs) {
        config.data_count = shape.data_count;
        config.parity_count = shape.parity_count;
    }
    config.chunk_bytes = chunk_bytes;
    config.member_data_bytes = layout->data_bytes;
    Result<Geometry> geometry = Geometry::create(config);
    EXPECT_TRUE(geometry.ok()) << geometry.status().to_string();

    Superblock superblock;
    superblock.sequence = 7;
    superblock.event_counter = 3;
    for (size_t i = 0; i < 16; ++i) {
        superblock.array_uuid.bytes[i] = static_cast<uint8_t>(0xa0 + i);
    }
    superblock.array_name = "sample-array";
    superblock.created_unix_seconds = 1'700'000'000;
    superblock.level = shape.level;
    superblock.shutdown_state = ShutdownState::kDirty;
    superblock.member_count = shape.member_count;
    superblock.data_count = geometry->data_per_group();
    superblock.parity_count = geometry->parity_per_group();
    superblock.role = role;
    superblock.chunk_bytes = chunk_bytes;
    superblock.capacity_bytes = geometry->capacity_bytes();
    superblock.member_data_bytes_used = geometry->stripe_count() * chunk_bytes;
    superblock.layout = layout.value();
    for (uint32_t index = 0; index < shape.member_count; ++index) {
        MemberEntry entry;
        entry.uuid.bytes[0] = static_cast<uint8_t>(index + 1);
        entry.uuid.bytes[15] = 0x55;
        entry.state = MemberState::kActive;
        entry.rebuilt_up_to_stripe = geometry->stripe_count();
        superblock.members.push_back(entry);
    }
    superblock.member_uuid = superblock.members[role].uuid;
    return superblock;
}

// A temporary directory under the test temp dir, removed with everything in it.
class TempDirectory {
public:
    TempDirectory() {
        std::string pattern = ::testing::TempDir() + "ecraid-test-XXXXXX";
        char* created = ::mkdtemp(pattern.data());
        EXPECT_NE(created, nullptr) << "mkdtemp failed for " << pattern;
        path_ = pattern;
    }
    ~TempDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    TempDirectory(const TempDirectory&) = delete;
    TempDirectory& operator=(const TempDirectory&) = delete;

    const std::filesystem::path& path() const { return path_; }
    std::string file(const std::string& name) const { return (path_ / name).string(); }

private:
    std::filesystem::path path_;
};

}  // namespace ecraid::testing
