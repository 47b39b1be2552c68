// SPDX-License-Identifier: Apache-2.0
// Mutation test of superblock decoding: thousands of random changes to valid encoded copies.
// Copies with a stale checksum must never decode. Copies whose checksum was recomputed after
// the change decode only when every field is still valid, and then exactly as the encoder
// would write them. Run it under the ASan build as well: nothing may crash or read out of
// bounds, whatever the bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "meta/superblock.h"
#include "meta/superblock_io.h"
#include "meta_test_support.h"
#include "test_seed.h"

namespace ecraid {
namespace {

using testing::make_sample_superblock;
using testing::SampleShape;
namespace offsets = superblock_offsets;

constexpr int kIterations = 20000;

struct Field {
    size_t offset;
    size_t width;
};

// Every decoded field, including the first three member table entries and the name.
std::vector<Field> mutable_fields() {
    std::vector<Field> fields = {
        {offsets::kFormatMajor, 2},     {offsets::kFormatMinor, 2},
        {offsets::kCoveredBytes, 4},    {offsets::kSequence, 8},
        {offsets::kEventCounter, 8},    {offsets::kArrayUuid, 8},
        {offsets::kArrayUuid + 8, 8},   {offsets::kMemberUuid, 8},
        {offsets::kMemberUuid + 8, 8},  {offsets::kCreatedUnixSeconds, 8},
        {offsets::kLevel, 1},           {offsets::kShutdownState, 1},
        {offsets::kReserved146, 2},     {offsets::kMemberCount, 4},
        {offsets::kDataCount, 4},       {offsets::kParityCount, 4},
        {offsets::kRole, 4},            {offsets::kMemberEntryCount, 4},
        {offsets::kChunkBytes, 8},      {offsets::kCapacityBytes, 8},
        {offsets::kMemberDataBytesUsed, 8}, {offsets::kMemberBytes, 8},
        {offsets::kRegionBytes, 8},     {offsets::kBitmapOffset, 8},
        {offsets::kBitmapBytes, 8},     {offsets::kChecksumTableOffset, 8},
        {offsets::kChecksumTableBytes, 8}, {offsets::kDataOffset, 8},
        {offsets::kDataBytes, 8},       {offsets::kRebuildRole, 4},
        {offsets::kScrubState, 4},      {offsets::kRebuildPositionStripes, 8},
        {offsets::kScrubPositionStripes, 8}, {offsets::kReserved280, 8},
        {offsets::kMemberTableEnd, 8},
    };
    for (size_t name_byte = 0; name_byte < kArrayNameBytes; name_byte += 8) {
        fields.push_back({offsets::kArrayName + name_byte, 8});
    }
    for (size_t index = 0; index < 3; ++index) {
        size_t entry = offsets::kMemberTable + index * offsets::kMemberEntryBytes;
        fields.push_back({entry + offsets::kEntryUuid, 8});
        fields.push_back({entry + offsets::kEntryUuid + 8, 8});
        fields.push_back({entry + offsets::kEntryState, 1});
        fields.push_back({entry + offsets::kEntryReserved, 4});
        fields.push_back({entry + offsets::kEntryRebuiltUpToStripe, 8});
    }
    return fields;
}

// Valid encoded copies covering every level, spares and checkpoints.
std::vector<SuperblockBytes> base_copies() {
    const std::vector<SampleShape> shapes = {
        {Level::kRaid0, 3, 0, 0}, {Level::kRaid1, 2, 0, 0}, {Level::kRaid10, 6, 0, 0},
        {Level::kRaid5, 5, 0, 0}, {Level::kRaid6, 4, 0, 0}, {Level::kRs, 7, 4, 3},
    };
    std::vector<SuperblockBytes> copies;
    for (const SampleShape& shape : shapes) {
        copies.push_back(encode_superblock(make_sample_superblock(shape, 1)));
    }

    Superblock busy = make_sample_superblock({Level::kRaid6, 5, 0, 0}, 0, 3ull << 30, 1u << 20);
    busy.members[3].state = MemberState::kRebuilding;
    busy.members[3].rebuilt_up_to_stripe = 100;
    busy.rebuild_role = 3;
    busy.rebuild_position_stripes = 100;
    busy.scrub_state = ScrubState::kRunning;
    busy.scrub_position_stripes = 7;
    MemberEntry spare;
    spare.uuid.bytes[9] = 0x99;
    spare.state = MemberState::kSpare;
    busy.members.push_back(spare);
    copies.push_back(encode_superblock(busy));

    busy.role = kRoleSpare;
    busy.member_uuid = spare.uuid;
    busy.array_name = "";
    copies.push_back(encode_superblock(busy));
    return copies;
}

void put_le(SuperblockBytes& bytes, size_t offset, uint64_t value, size_t width) {
    for (size_t i = 0; i < width; ++i) bytes[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t get_le(const SuperblockBytes& bytes, size_t offset, size_t width) {
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value |= uint64_t{bytes[offset + i]} << (8 * i);
    return value;
}

// A new value for a field: boundary values and near misses are likelier to pass some checks
// and fail others than uniform random ones.
uint64_t mutated_value(std::mt19937_64& random, uint64_t old_value, size_t width) {
    uint64_t mask = width == 8 ? UINT64_MAX : (uint64_t{1} << (8 * width)) - 1;
    switch (random() % 8) {
        case 0: return 0;
        case 1: return mask;
        case 2: return (old_value + 1) & mask;
        case 3: return (old_value - 1) & mask;
        case 4: return old_value ^ (uint64_t{1} << (random() % (8 * width)));
        case 5: return (uint64_t{1} << (random() % (8 * width))) & mask;
        case 6: return random() % 70;  // Small counts, roles and states.
        default: return random() & mask;
    }
}

enum class Mutation { kByteFlip, kBitFlip, kTruncate, kField, kFieldStale, kBytesRecomputed };

struct Stats {
    int rejected_stale = 0;
    int accepted_recomputed = 0;
    int rejected_recomputed = 0;
};

class SuperblockMutation : public ::testing::Test {
protected:
    void check_stale_copy(const SuperblockBytes& base, std::span<const uint8_t> mutated);
    void check_recomputed_copy(const SuperblockBytes& mutated);
    void check_pair(const SuperblockBytes& base, std::span<const uint8_t> mutated);

    Stats stats_;
};

// A copy changed without a new checksum, or cut short, must never decode.
void SuperblockMutation::check_stale_copy(const SuperblockBytes& base,
                                          std::span<const uint8_t> mutated) {
    if (mutated.size() == base.size() && std::equal(mutated.begin(), mutated.end(), base.begin())) {
        return;  // The mutation happened to change nothing.
    }
    Result<Superblock> decoded = decode_superblock(mutated);
    ASSERT_FALSE(decoded.ok()) << "a copy with a stale checksum or truncated to "
                               << mutated.size() << " bytes was accepted";
    ++stats_.rejected_stale;
}

// A copy with a recomputed checksum decodes only when valid, and then re-encodes exactly.
void SuperblockMutation::check_recomputed_copy(const SuperblockBytes& mutated) {
    Result<Superblock> decoded = decode_superblock(mutated);
    if (!decoded.ok()) {
        ++stats_.rejected_recomputed;
        EXPECT_TRUE(decoded.status().code() == Code::kCorruption ||
                    decoded.status().code() == Code::kUnsupported)
            << decoded.status().to_string();
        EXPECT_FALSE(decoded.status().message().empty());
        return;
    }
    ++stats_.accepted_recomputed;
    ASSERT_TRUE(validate_superblock(decoded.value()).ok());
    SuperblockBytes reencoded = encode_superblock(decoded.value());
    Result<Superblock> again = decode_superblock(reencoded);
    ASSERT_TRUE(again.ok()) << again.status().to_string();
    ASSERT_EQ(again.value(), decoded.value());
    if (decoded->format_minor <= kFormatMinor) {
        // Every byte this version reads is either checked or a field, so an accepted copy is
        // byte for byte what the encoder writes.
        auto difference = std::mismatch(reencoded.begin(), reencoded.end(), mutated.begin());
        ASSERT_TRUE(difference.first == reencoded.end())
            << "accepted copy differs from its re-encoding at byte "
            << (difference.first - reencoded.begin());
    }
}

// A damaged copy A next to a valid copy B: the pair must fall back to B.
void SuperblockMutation::check_pair(const SuperblockBytes& base, std::span<const uint8_t> mutated) {
    Result<Superblock> base_decoded = decode_superblock(base);
    ASSERT_TRUE(base_decoded.ok());
    Superblock copy_b = base_decoded.value();
    copy_b.sequence = copy_b.sequence | 1;  // Odd: belongs in copy B.
    SuperblockBytes b = encode_superblock(copy_b);

    Result<SuperblockPair> pair = select_superblock(mutated, b);
    ASSERT_TRUE(pair.ok()) << pair.status().to_string();
    if (!decode_superblock(mutated).ok()) {
        EXPECT_EQ(pair->used, SuperblockCopy::kB);
        EXPECT_FALSE(pair->other_status.ok());
    }
}

TEST_F(SuperblockMutation, RandomMutationsNeverAcceptInvalidCopies) {
    uint64_t seed = testing::test_seed();
    std::cout << "superblock mutation seed: " << seed << " (set ECRAID_TEST_SEED to repeat)\n";
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 random(seed);
    const std::vector<SuperblockBytes> bases = base_copies();
    const std::vector<Field> fields = mutable_fields();

    for (int iteration = 0; iteration < kIterations; ++iteration) {
        SCOPED_TRACE("iteration " + std::to_string(iteration));
        const SuperblockBytes& base = bases[random() % bases.size()];
        SuperblockBytes mutated = base;
        auto mutation = static_cast<Mutation>(random() % 6);
        switch (mutation) {
            case Mutation::kByteFlip:
                mutated[random() % mutated.size()] ^= static_cast<uint8_t>(1 + random() % 255);
                check_stale_copy(base, mutated);
                break;
            case Mutation::kBitFlip:
                mutated[random() % mutated.size()] ^= static_cast<uint8_t>(1u << (random() % 8));
                check_stale_copy(base, mutated);
                break;
            case Mutation::kTruncate:
                check_stale_copy(base, std::span(mutated).first(random() % mutated.size()));
                break;
            case Mutation::kField:
            case Mutation::kFieldStale: {
                const Field& field = fields[random() % fields.size()];
                uint64_t old_value = get_le(mutated, field.offset, field.width);
                put_le(mutated, field.offset, mutated_value(random, old_value, field.width),
                       field.width);
                if (mutation == Mutation::kFieldStale) {
                    check_stale_copy(base, mutated);
                    break;
                }
                put_le(mutated, offsets::kChecksum, compute_superblock_checksum(mutated), 8);
                check_recomputed_copy(mutated);
                break;
            }
            case Mutation::kBytesRecomputed: {
                int changes = 1 + static_cast<int>(random() % 4);
                for (int change = 0; change < changes; ++change) {
                    // Mostly the fixed fields and the table, where decoding has most to check.
                    size_t limit = random() % 4 == 0 ? mutated.size() : offsets::kMemberTable + 128;
                    mutated[random() % limit] = static_cast<uint8_t>(random());
                }
                put_le(mutated, offsets::kChecksum, compute_superblock_checksum(mutated), 8);
                check_recomputed_copy(mutated);
                break;
            }
        }
        if (iteration % 4 == 0 && mutation != Mutation::kTruncate) check_pair(base, mutated);
        if (HasFatalFailure()) return;
    }

    std::cout << "rejected with a stale checksum: " << stats_.rejected_stale
              << ", recomputed and accepted: " << stats_.accepted_recomputed
              << ", recomputed and rejected: " << stats_.rejected_recomputed << "\n";
    // Both outcomes must occur, or the test is not exercising the validation.
    EXPECT_GT(stats_.accepted_recomputed, 100);
    EXPECT_GT(stats_.rejected_recomputed, 1000);
    EXPECT_GT(stats_.rejected_stale, 5000);
}

}  // namespace
}  // namespace ecraid
