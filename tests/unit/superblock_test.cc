// SPDX-License-Identifier: Apache-2.0
#include "meta/superblock.h"

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "meta/superblock_io.h"
#include "meta_test_support.h"

namespace ecraid {
namespace {

using testing::make_sample_superblock;
using testing::SampleShape;
namespace offsets = superblock_offsets;

const std::vector<SampleShape> kShapes = {
    {Level::kRaid0, 2, 0, 0},  {Level::kRaid1, 3, 0, 0}, {Level::kRaid10, 4, 0, 0},
    {Level::kRaid5, 4, 0, 0},  {Level::kRaid6, 6, 0, 0}, {Level::kRs, 14, 10, 4},
    {Level::kRs, 40, 32, 8},
};

void put_le(SuperblockBytes& bytes, size_t offset, uint64_t value, size_t width) {
    for (size_t i = 0; i < width; ++i) bytes[offset + i] = static_cast<uint8_t>(value >> (8 * i));
}

uint64_t get_le(const SuperblockBytes& bytes, size_t offset, size_t width) {
    uint64_t value = 0;
    for (size_t i = 0; i < width; ++i) value |= uint64_t{bytes[offset + i]} << (8 * i);
    return value;
}

void recompute_checksum(SuperblockBytes& bytes) {
    put_le(bytes, offsets::kChecksum, compute_superblock_checksum(bytes), 8);
}

bool mentions(const Status& status, const std::string& text) {
    return status.message().find(text) != std::string::npos;
}

TEST(Superblock, RoundTripEveryLevel) {
    for (const SampleShape& shape : kShapes) {
        Superblock original = make_sample_superblock(shape, shape.member_count - 1);
        ASSERT_TRUE(validate_superblock(original).ok())
            << level_name(shape.level) << ": " << validate_superblock(original).to_string();
        SuperblockBytes bytes = encode_superblock(original);
        Result<Superblock> decoded = decode_superblock(bytes);
        ASSERT_TRUE(decoded.ok()) << level_name(shape.level) << ": "
                                  << decoded.status().to_string();
        EXPECT_EQ(decoded.value(), original) << level_name(shape.level);
        EXPECT_EQ(encode_superblock(decoded.value()), bytes) << level_name(shape.level);
    }
}

TEST(Superblock, RoundTripCheckpointsAndSpares) {
    Superblock original = make_sample_superblock({Level::kRaid6, 5, 0, 0}, 0);
    uint64_t stripes = original.stripe_count();
    original.members[2].state = MemberState::kRebuilding;
    original.members[2].rebuilt_up_to_stripe = stripes / 3;
    original.members[4].state = MemberState::kFaulty;
    original.members[4].rebuilt_up_to_stripe = 0;
    original.rebuild_role = 2;
    original.rebuild_position_stripes = stripes / 3;
    original.scrub_state = ScrubState::kPaused;
    original.scrub_position_stripes = stripes - 1;
    original.array_name = std::string(kArrayNameLengthMax, 'n');
    MemberEntry spare;
    spare.uuid.bytes[3] = 0x77;
    spare.state = MemberState::kSpare;
    original.members.push_back(spare);
    original.role = kRoleSpare;
    original.member_uuid = spare.uuid;

    Result<Superblock> decoded = decode_superblock(encode_superblock(original));
    ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
    EXPECT_EQ(decoded.value(), original);
}

TEST(Superblock, FieldsAtDocumentedOffsetsLittleEndian) {
    Superblock superblock = make_sample_superblock({Level::kRs, 6, 4, 2}, 5);
    superblock.sequence = 0x0102030405060708;
    superblock.event_counter = 0x1112131415161718;
    SuperblockBytes bytes = encode_superblock(superblock);

    EXPECT_EQ(std::string(bytes.begin(), bytes.begin() + 8), "ECRAIDSB");
    EXPECT_EQ(bytes[offsets::kFormatMajor], 1);
    EXPECT_EQ(bytes[offsets::kFormatMajor + 1], 0);
    EXPECT_EQ(get_le(bytes, offsets::kCoveredBytes, 4), 4096u);
    EXPECT_EQ(bytes[offsets::kSequence], 0x08);
    EXPECT_EQ(bytes[offsets::kSequence + 7], 0x01);
    EXPECT_EQ(get_le(bytes, offsets::kEventCounter, 8), 0x1112131415161718u);
    EXPECT_EQ(bytes[offsets::kArrayUuid], 0xa0);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(&bytes[offsets::kArrayName])),
              "sample-array");
    EXPECT_EQ(bytes[offsets::kLevel], 7);
    EXPECT_EQ(bytes[offsets::kShutdownState], 1);
    EXPECT_EQ(get_le(bytes, offsets::kMemberCount, 4), 6u);
    EXPECT_EQ(get_le(bytes, offsets::kDataCount, 4), 4u);
    EXPECT_EQ(get_le(bytes, offsets::kParityCount, 4), 2u);
    EXPECT_EQ(get_le(bytes, offsets::kRole, 4), 5u);
    EXPECT_EQ(get_le(bytes, offsets::kMemberEntryCount, 4), 6u);
    EXPECT_EQ(get_le(bytes, offsets::kChunkBytes, 8), 65536u);
    EXPECT_EQ(get_le(bytes, offsets::kDataOffset, 8), 3u << 20);
    EXPECT_EQ(get_le(bytes, offsets::kRebuildRole, 4), 0xffffffffu);
    size_t entry5 = offsets::kMemberTable + 5 * offsets::kMemberEntryBytes;
    EXPECT_EQ(bytes[entry5 + offsets::kEntryUuid], 6);
    EXPECT_EQ(bytes[entry5 + offsets::kEntryState], 1);
    EXPECT_EQ(get_le(bytes, entry5 + offsets::kEntryRebuiltUpToStripe, 8),
              superblock.stripe_count());
    EXPECT_EQ(get_le(bytes, offsets::kChecksum, 8), compute_superblock_checksum(bytes));
}

TEST(Superblock, RejectsRandomBytes) {
    std::mt19937_64 random(1234);
    SuperblockBytes bytes;
    for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(random());
    Result<Superblock> decoded = decode_superblock(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(decoded.status(), "not an ecraid member")) << decoded.status().message();
}

TEST(Superblock, RejectsAnotherMagic) {
    SuperblockBytes bytes = encode_superblock(make_sample_superblock({Level::kRaid5, 3, 0, 0}));
    bytes[7] = 'X';
    recompute_checksum(bytes);
    Result<Superblock> decoded = decode_superblock(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(decoded.status(), "not an ecraid member")) << decoded.status().message();
}

TEST(Superblock, RejectsTruncatedInput) {
    SuperblockBytes bytes = encode_superblock(make_sample_superblock({Level::kRaid5, 3, 0, 0}));
    for (size_t length : {size_t{0}, size_t{8}, size_t{512}, size_t{4095}}) {
        Result<Superblock> decoded = decode_superblock(std::span(bytes).first(length));
        ASSERT_FALSE(decoded.ok()) << length;
        EXPECT_EQ(decoded.status().code(), Code::kCorruption);
        EXPECT_TRUE(mentions(decoded.status(), "truncated")) << decoded.status().message();
    }
}

TEST(Superblock, RejectsNewerMajorVersion) {
    SuperblockBytes bytes = encode_superblock(make_sample_superblock({Level::kRaid6, 4, 0, 0}));
    put_le(bytes, offsets::kFormatMajor, kFormatMajor + 1, 2);
    recompute_checksum(bytes);
    Result<Superblock> decoded = decode_superblock(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kUnsupported);
    EXPECT_TRUE(mentions(decoded.status(), "2.0")) << decoded.status().message();

    // Also without recomputing: the version decides before the checksum.
    put_le(bytes, offsets::kChecksum, 0, 8);
    EXPECT_EQ(decode_superblock(bytes).status().code(), Code::kUnsupported);
}

TEST(Superblock, AcceptsNewerMinorVersion) {
    Superblock original = make_sample_superblock({Level::kRaid1, 2, 0, 0});
    SuperblockBytes bytes = encode_superblock(original);
    put_le(bytes, offsets::kFormatMinor, kFormatMinor + 3, 2);
    bytes[offsets::kReserved280] = 0x5a;  // A field this build does not know.
    bytes[4000] = 0xa5;
    recompute_checksum(bytes);
    Result<Superblock> decoded = decode_superblock(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status().to_string();
    EXPECT_EQ(decoded->format_minor, kFormatMinor + 3);
    original.format_minor = kFormatMinor + 3;
    EXPECT_EQ(decoded.value(), original);
}

TEST(Superblock, RejectsReservedBytesInCurrentMinor) {
    SuperblockBytes bytes = encode_superblock(make_sample_superblock({Level::kRaid1, 2, 0, 0}));
    for (size_t offset : {offsets::kReserved146, offsets::kReserved280, size_t{511},
                          offsets::kMemberTable + offsets::kEntryReserved,
                          offsets::kMemberTable + 2 * offsets::kMemberEntryBytes,
                          offsets::kMemberTableEnd, kSuperblockBytes - 1}) {
        SuperblockBytes mutated = bytes;
        mutated[offset] = 1;
        recompute_checksum(mutated);
        Result<Superblock> decoded = decode_superblock(mutated);
        ASSERT_FALSE(decoded.ok()) << "offset " << offset;
        EXPECT_EQ(decoded.status().code(), Code::kCorruption);
    }
}

TEST(Superblock, RejectsChecksumMismatch) {
    SuperblockBytes bytes = encode_superblock(make_sample_superblock({Level::kRaid5, 3, 0, 0}));
    bytes[offsets::kEventCounter] ^= 1;
    Result<Superblock> decoded = decode_superblock(bytes);
    ASSERT_FALSE(decoded.ok());
    EXPECT_EQ(decoded.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(decoded.status(), "checksum mismatch")) << decoded.status().message();
}

struct FieldCase {
    const char* name;
    std::function<void(SuperblockBytes&)> mutate;
    const char* expected_text;
};

TEST(Superblock, RejectsInvalidFieldsWithValidChecksum) {
    const SuperblockBytes good = encode_superblock(make_sample_superblock({Level::kRaid5, 4, 0, 0}, 1));
    size_t entry1 = offsets::kMemberTable + offsets::kMemberEntryBytes;
    const std::vector<FieldCase> cases = {
        {"major 0", [](auto& b) { put_le(b, offsets::kFormatMajor, 0, 2); }, "major version 0"},
        {"covered length", [](auto& b) { put_le(b, offsets::kCoveredBytes, 2048, 4); },
         "covered length"},
        {"unknown level", [](auto& b) { b[offsets::kLevel] = 4; }, "unknown level"},
        {"raid5 with k=2", [](auto& b) { put_le(b, offsets::kDataCount, 2, 4); }, "k+m"},
        {"raid5 with m=2", [](auto& b) { put_le(b, offsets::kParityCount, 2, 4); }, "k+m"},
        {"member count 2", [](auto& b) { put_le(b, offsets::kMemberCount, 2, 4); },
         "at least 3 members"},
        {"chunk not a power of two", [](auto& b) { put_le(b, offsets::kChunkBytes, 3 << 12, 8); },
         "power of two"},
        {"chunk too large", [](auto& b) { put_le(b, offsets::kChunkBytes, 32u << 20, 8); },
         "power of two"},
        {"capacity off by one chunk",
         [](auto& b) {
             put_le(b, offsets::kCapacityBytes, get_le(b, offsets::kCapacityBytes, 8) - 65536, 8);
         },
         "capacity"},
        {"role equals member count", [](auto& b) { put_le(b, offsets::kRole, 4, 4); },
         "role 4"},
        {"role of another member", [](auto& b) { put_le(b, offsets::kRole, 2, 4); }, "differs"},
        {"name not NUL-terminated",
         [](auto& b) { std::fill_n(b.begin() + offsets::kArrayName, kArrayNameBytes, 'a'); },
         "NUL"},
        {"name with a slash", [](auto& b) { b[offsets::kArrayName + 2] = '/'; }, "invalid byte"},
        {"bytes after the name NUL", [](auto& b) { b[offsets::kArrayName + 40] = 'x'; },
         "after its terminating NUL"},
        {"shutdown state 2", [](auto& b) { b[offsets::kShutdownState] = 2; }, "shutdown state"},
        {"zero array UUID",
         [](auto& b) { std::fill_n(b.begin() + offsets::kArrayUuid, 16, uint8_t{0}); },
         "array UUID is zero"},
        {"table overlapping bitmap",
         [](auto& b) { put_le(b, offsets::kChecksumTableOffset, 64u << 10, 8); }, "overlaps"},
        {"data beyond the member",
         [](auto& b) { put_le(b, offsets::kMemberBytes, 512u << 20, 8); }, "past the end"},
        {"data offset unaligned",
         [](auto& b) { put_le(b, offsets::kDataOffset, (3u << 20) + 4096, 8); }, "1 MiB"},
        {"region not a power of two",
         [](auto& b) { put_le(b, offsets::kRegionBytes, 48u << 20, 8); }, "power of two"},
        {"member state 0", [=](auto& b) { b[entry1 + offsets::kEntryState] = 0; }, "state value 0"},
        {"member state 6", [=](auto& b) { b[entry1 + offsets::kEntryState] = 6; }, "state value 6"},
        {"spare state for a role",
         [=](auto& b) { b[entry1 + offsets::kEntryState] = 4; }, "state value 4"},
        {"duplicate member UUID",
         [=](auto& b) {
             std::copy_n(b.begin() + offsets::kMemberTable, 16, b.begin() + entry1 + 2 * 32);
         },
         "same UUID"},
        {"rebuilt beyond the end",
         [=](auto& b) { put_le(b, entry1 + offsets::kEntryRebuiltUpToStripe, 1u << 30, 8); },
         "beyond"},
        {"entry count below member count",
         [](auto& b) { put_le(b, offsets::kMemberEntryCount, 3, 4); },
         "unused member table entry 3"},
        {"entry count above 64", [](auto& b) { put_le(b, offsets::kMemberEntryCount, 65, 4); },
         "above the maximum"},
        {"rebuild of an active member", [](auto& b) { put_le(b, offsets::kRebuildRole, 0, 4); },
         "not in the rebuilding state"},
        {"rebuild position without rebuild",
         [](auto& b) { put_le(b, offsets::kRebuildPositionStripes, 5, 8); }, "rebuild position"},
        {"scrub state 3", [](auto& b) { put_le(b, offsets::kScrubState, 3, 4); }, "scrub state"},
        {"idle scrub with a position",
         [](auto& b) { put_le(b, offsets::kScrubPositionStripes, 5, 8); }, "scrub position"},
    };
    for (const FieldCase& field_case : cases) {
        SuperblockBytes bytes = good;
        field_case.mutate(bytes);
        recompute_checksum(bytes);
        Result<Superblock> decoded = decode_superblock(bytes);
        ASSERT_FALSE(decoded.ok()) << field_case.name;
        EXPECT_NE(decoded.status().code(), Code::kOk) << field_case.name;
        EXPECT_TRUE(mentions(decoded.status(), field_case.expected_text))
            << field_case.name << ": " << decoded.status().message();
    }
}

TEST(Superblock, ArrayNameRules) {
    EXPECT_TRUE(validate_array_name("").ok());
    EXPECT_TRUE(validate_array_name("backup-2024.v1_a").ok());
    EXPECT_TRUE(validate_array_name(std::string(63, 'x')).ok());
    EXPECT_FALSE(validate_array_name(std::string(64, 'x')).ok());
    EXPECT_FALSE(validate_array_name("-leading-dash").ok());
    EXPECT_FALSE(validate_array_name("with space").ok());
    EXPECT_FALSE(validate_array_name("slash/name").ok());
    EXPECT_FALSE(validate_array_name(std::string("nul\0name", 8)).ok());
}

// Two copies as written by consecutive writes: copy A with an even sequence, copy B odd.
struct CopyPair {
    SuperblockBytes a;
    SuperblockBytes b;
};

CopyPair make_copy_pair(uint64_t sequence_a, uint64_t sequence_b) {
    Superblock superblock = make_sample_superblock({Level::kRaid6, 4, 0, 0}, 2);
    superblock.sequence = sequence_a;
    CopyPair pair;
    pair.a = encode_superblock(superblock);
    superblock.sequence = sequence_b;
    pair.b = encode_superblock(superblock);
    return pair;
}

TEST(SuperblockPair, NewerCopyWins) {
    CopyPair copies = make_copy_pair(10, 11);
    Result<SuperblockPair> pair = select_superblock(copies.a, copies.b);
    ASSERT_TRUE(pair.ok()) << pair.status().to_string();
    EXPECT_EQ(pair->used, SuperblockCopy::kB);
    EXPECT_EQ(pair->superblock.sequence, 11u);
    EXPECT_TRUE(pair->other_status.ok());
    ASSERT_TRUE(pair->other.has_value());
    EXPECT_EQ(pair->other->sequence, 10u);

    copies = make_copy_pair(12, 11);
    pair = select_superblock(copies.a, copies.b);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->used, SuperblockCopy::kA);
}

TEST(SuperblockPair, HigherEventCounterWinsOverSequence) {
    Superblock superblock = make_sample_superblock({Level::kRaid5, 3, 0, 0});
    superblock.sequence = 20;
    superblock.event_counter = 9;
    SuperblockBytes a = encode_superblock(superblock);
    superblock.sequence = 21;
    superblock.event_counter = 8;
    SuperblockBytes b = encode_superblock(superblock);
    Result<SuperblockPair> pair = select_superblock(a, b);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->used, SuperblockCopy::kA);
    EXPECT_EQ(pair->superblock.event_counter, 9u);
}

TEST(SuperblockPair, FallsBackWhenNewerCopyDamaged) {
    CopyPair copies = make_copy_pair(10, 11);
    copies.b[300] ^= 0x10;
    Result<SuperblockPair> pair = select_superblock(copies.a, copies.b);
    ASSERT_TRUE(pair.ok()) << pair.status().to_string();
    EXPECT_EQ(pair->used, SuperblockCopy::kA);
    EXPECT_EQ(pair->superblock.sequence, 10u);
    EXPECT_EQ(pair->other_status.code(), Code::kCorruption);
    EXPECT_TRUE(mentions(pair->other_status, "copy B")) << pair->other_status.message();
    EXPECT_TRUE(mentions(pair->other_status, "checksum mismatch")) << pair->other_status.message();
    EXPECT_FALSE(pair->other.has_value());
}

TEST(SuperblockPair, FallsBackWhenCopyZeroed) {
    CopyPair copies = make_copy_pair(10, 11);
    copies.a.fill(0);
    Result<SuperblockPair> pair = select_superblock(copies.a, copies.b);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->used, SuperblockCopy::kB);
    EXPECT_TRUE(mentions(pair->other_status, "not an ecraid member"))
        << pair->other_status.message();
}

TEST(SuperblockPair, FallsBackWhenCopyTruncated) {
    CopyPair copies = make_copy_pair(10, 11);
    Result<SuperblockPair> pair = select_superblock(copies.a, std::span(copies.b).first(1000));
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->used, SuperblockCopy::kA);
    EXPECT_TRUE(mentions(pair->other_status, "truncated")) << pair->other_status.message();
}

TEST(SuperblockPair, RejectsCopyInWrongSlot) {
    CopyPair copies = make_copy_pair(10, 11);
    // Copy B's bytes written over copy A: valid checksum, odd sequence in the even slot.
    Result<SuperblockPair> pair = select_superblock(copies.b, copies.b);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->used, SuperblockCopy::kB);
    EXPECT_TRUE(mentions(pair->other_status, "misdirected")) << pair->other_status.message();
}

TEST(SuperblockPair, ReportsCopiesOfDifferentMembers) {
    Superblock superblock = make_sample_superblock({Level::kRaid5, 3, 0, 0}, 0);
    superblock.sequence = 4;
    SuperblockBytes a = encode_superblock(superblock);
    Superblock other_member = make_sample_superblock({Level::kRaid5, 3, 0, 0}, 1);
    other_member.sequence = 3;
    SuperblockBytes b = encode_superblock(other_member);
    Result<SuperblockPair> pair = select_superblock(a, b);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->used, SuperblockCopy::kA);
    EXPECT_EQ(pair->other_status.code(), Code::kCorruption);
}

TEST(SuperblockPair, BothForeignIsNotAMember) {
    SuperblockBytes zeros{};
    Result<SuperblockPair> pair = select_superblock(zeros, zeros);
    ASSERT_FALSE(pair.ok());
    EXPECT_EQ(pair.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(pair.status(), "not an ecraid member")) << pair.status().message();
}

TEST(SuperblockPair, BothDamagedNamesBothCopies) {
    CopyPair copies = make_copy_pair(10, 11);
    copies.a[100] ^= 1;
    copies.b[200] ^= 1;
    Result<SuperblockPair> pair = select_superblock(copies.a, copies.b);
    ASSERT_FALSE(pair.ok());
    EXPECT_EQ(pair.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(pair.status(), "copy A")) << pair.status().message();
    EXPECT_TRUE(mentions(pair.status(), "copy B")) << pair.status().message();
}

TEST(SuperblockPair, NewerMajorIsUnsupported) {
    CopyPair copies = make_copy_pair(10, 11);
    put_le(copies.a, offsets::kFormatMajor, 2, 2);
    put_le(copies.b, offsets::kFormatMajor, 2, 2);
    Result<SuperblockPair> pair = select_superblock(copies.a, copies.b);
    ASSERT_FALSE(pair.ok());
    EXPECT_EQ(pair.status().code(), Code::kUnsupported);
}

}  // namespace
}  // namespace ecraid
