// SPDX-License-Identifier: Apache-2.0
#include "integrity/checksum.h"

#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "layout/geometry.h"
#include "test_seed.h"

namespace ecraid {
namespace {

struct alignas(64) Block {
    uint8_t bytes[kBlockBytes];
};

std::vector<Block> random_blocks(size_t count, uint64_t seed) {
    std::vector<Block> blocks(count);
    std::mt19937_64 random(seed);
    for (Block& block : blocks) {
        for (size_t i = 0; i < kBlockBytes; i += sizeof(uint64_t)) {
            uint64_t word = random();
            std::memcpy(block.bytes + i, &word, sizeof(word));
        }
    }
    return blocks;
}

TEST(BlockChecksum, MatchesPortableXxh3WithAddressSeed) {
    // The engine calls the dispatched (AVX2 or AVX-512) XXH3. It must agree with the plain
    // SSE2 XXH3_64bits_withSeed for every block and seed.
    const uint64_t seed = testing::test_seed();
    std::vector<Block> blocks = random_blocks(64, seed);
    for (size_t i = 0; i < blocks.size(); ++i) {
        uint64_t address = i * 0x9e3779b97f4a7c15u;
        EXPECT_EQ(block_checksum(blocks[i].bytes, address),
                  XXH3_64bits_withSeed(blocks[i].bytes, kBlockBytes, address))
            << "block " << i << ", ECRAID_TEST_SEED=" << seed;
    }
}

TEST(BlockChecksum, IsStableAcrossBuilds) {
    // Checksums are stored on disk, so the function must never change. This value was
    // computed with libxxhash 0.8.1, and the XXH3 specification fixes its output.
    Block block;
    for (size_t i = 0; i < kBlockBytes; ++i) block.bytes[i] = static_cast<uint8_t>(i % 251);
    EXPECT_EQ(block_checksum(block.bytes, 7), UINT64_C(0x83cc3ece121c17c5));
}

TEST(BlockChecksum, DependsOnAddress) {
    std::vector<Block> blocks = random_blocks(1, testing::test_seed());
    uint64_t at_zero = block_checksum(blocks[0].bytes, 0);
    EXPECT_NE(at_zero, block_checksum(blocks[0].bytes, 1));
    EXPECT_NE(at_zero, block_checksum(blocks[0].bytes, uint64_t{1} << 40));
}

TEST(BlockChecksums, MatchSingleBlockChecksums) {
    const uint64_t seed = testing::test_seed();
    std::vector<Block> blocks = random_blocks(33, seed);
    std::vector<uint64_t> checksums(blocks.size(), 0);
    block_checksums(blocks.data(), blocks.size(), 1000, checksums.data());
    for (size_t i = 0; i < blocks.size(); ++i) {
        EXPECT_EQ(checksums[i], block_checksum(blocks[i].bytes, 1000 + i))
            << "block " << i << ", ECRAID_TEST_SEED=" << seed;
    }
}

TEST(BlockChecksums, ZeroCountWritesNothing) {
    uint64_t checksum = 42;
    block_checksums(nullptr, 0, 0, &checksum);
    EXPECT_EQ(checksum, 42u);
}

TEST(BlockVerify, AcceptsMatchingChecksum) {
    std::vector<Block> blocks = random_blocks(1, testing::test_seed());
    uint64_t stored = block_checksum(blocks[0].bytes, 77);
    EXPECT_TRUE(block_verify(blocks[0].bytes, 77, stored));
}

TEST(BlockVerify, RejectsFlippedBit) {
    std::vector<Block> blocks = random_blocks(1, testing::test_seed());
    uint64_t stored = block_checksum(blocks[0].bytes, 77);
    for (size_t byte : {size_t{0}, size_t{1}, size_t{2047}, size_t{4095}}) {
        for (int bit = 0; bit < 8; ++bit) {
            blocks[0].bytes[byte] ^= static_cast<uint8_t>(1 << bit);
            EXPECT_FALSE(block_verify(blocks[0].bytes, 77, stored))
                << "byte " << byte << " bit " << bit;
            blocks[0].bytes[byte] ^= static_cast<uint8_t>(1 << bit);
        }
    }
}

TEST(BlockVerify, RejectsMisdirectedBlock) {
    std::vector<Block> blocks = random_blocks(1, testing::test_seed());
    uint64_t stored = block_checksum(blocks[0].bytes, 77);
    EXPECT_FALSE(block_verify(blocks[0].bytes, 78, stored));
    EXPECT_FALSE(block_verify(blocks[0].bytes, 76, stored));
}

TEST(BlockVerify, ZeroEntryAcceptsZeroBlock) {
    Block zero = {};
    EXPECT_TRUE(block_verify(zero.bytes, 0, kZeroBlockChecksum));
    EXPECT_TRUE(block_verify(zero.bytes, 123456789, kZeroBlockChecksum));
}

TEST(BlockVerify, ZeroEntryRejectsDataBlock) {
    Block block = {};
    block.bytes[4095] = 1;
    EXPECT_FALSE(block_verify(block.bytes, 0, kZeroBlockChecksum));
}

TEST(BlockVerify, ZeroBlockAlsoMatchesItsRealChecksum) {
    // A zero block written through the normal path stores its XXH3 value, not 0.
    Block zero = {};
    uint64_t stored = block_checksum(zero.bytes, 5);
    EXPECT_NE(stored, kZeroBlockChecksum);
    EXPECT_TRUE(block_verify(zero.bytes, 5, stored));
    EXPECT_FALSE(block_verify(zero.bytes, 6, stored));
}

TEST(BlockIsZero, AcceptsZeroBlock) {
    Block zero = {};
    EXPECT_TRUE(block_is_zero(zero.bytes));
}

TEST(BlockIsZero, RejectsAnySingleNonZeroByte) {
    Block block = {};
    for (size_t i = 0; i < kBlockBytes; ++i) {
        block.bytes[i] = 0x80;
        EXPECT_FALSE(block_is_zero(block.bytes)) << "byte " << i;
        block.bytes[i] = 0;
    }
    EXPECT_TRUE(block_is_zero(block.bytes));
}

TEST(BlockIsZero, AcceptsUnalignedBlock) {
    std::vector<uint8_t> bytes(kBlockBytes + 1, 0);
    EXPECT_TRUE(block_is_zero(bytes.data() + 1));
    bytes[kBlockBytes] = 1;
    EXPECT_FALSE(block_is_zero(bytes.data() + 1));
}

}  // namespace
}  // namespace ecraid
