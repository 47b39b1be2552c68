// SPDX-License-Identifier: Apache-2.0
#include "array/create.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "io/member_file.h"
#include "meta/superblock_io.h"
#include "meta_test_support.h"

namespace ecraid {
namespace {

using testing::TempDirectory;

constexpr uint64_t kMiB = 1u << 20;

bool mentions(const Status& status, const std::string& text) {
    return status.message().find(text) != std::string::npos;
}

void make_file(const std::string& path, uint64_t size_bytes, uint8_t fill = 0) {
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY | O_TRUNC, 0600);
    ASSERT_GE(fd, 0) << path;
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size_bytes)), 0);
    if (fill != 0) {
        std::vector<uint8_t> bytes(kMiB, fill);
        for (uint64_t offset = 0; offset < size_bytes; offset += bytes.size()) {
            size_t length = static_cast<size_t>(std::min<uint64_t>(bytes.size(), size_bytes - offset));
            ASSERT_EQ(::pwrite(fd, bytes.data(), length, static_cast<off_t>(offset)),
                      static_cast<ssize_t>(length));
        }
    }
    ::close(fd);
}

Result<SuperblockPair> read_member(const std::string& path) {
    MemberOpenOptions options;
    options.read_only = true;
    Result<MemberFile> file = MemberFile::open(path, options);
    if (!file.ok()) return file.status();
    return read_superblock_pair(file.value());
}

CreateOptions raid5_options(const TempDirectory& directory, int member_count) {
    CreateOptions options;
    options.level = Level::kRaid5;
    options.name = "test-array";
    for (int i = 0; i < member_count; ++i) {
        options.member_paths.push_back(directory.file("member" + std::to_string(i)));
    }
    return options;
}

TEST(CreateArray, CreatesSparseMembersWithSize) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.create_size_bytes = 64 * kMiB;
    Result<CreateSummary> summary = create_array(options);
    ASSERT_TRUE(summary.ok()) << summary.status().to_string();

    EXPECT_EQ(summary->member_count, 3u);
    EXPECT_EQ(summary->data_count, 2u);
    EXPECT_EQ(summary->parity_count, 1u);
    ASSERT_EQ(summary->members.size(), 3u);
    uint64_t data_bytes = summary->members[0].layout.data_bytes;
    EXPECT_EQ(summary->member_data_bytes_used, data_bytes / options.chunk_bytes * options.chunk_bytes);
    EXPECT_EQ(summary->capacity_bytes, 2 * summary->member_data_bytes_used);

    for (uint32_t role = 0; role < 3; ++role) {
        const std::string& path = options.member_paths[role];
        EXPECT_TRUE(summary->members[role].created);
        struct stat info {};
        ASSERT_EQ(::stat(path.c_str(), &info), 0);
        EXPECT_EQ(static_cast<uint64_t>(info.st_size), 64 * kMiB);
        EXPECT_LT(static_cast<uint64_t>(info.st_blocks) * 512, kMiB) << path << " is not sparse";

        Result<SuperblockPair> pair = read_member(path);
        ASSERT_TRUE(pair.ok()) << pair.status().to_string();
        EXPECT_TRUE(pair->other_status.ok()) << pair->other_status.to_string();
        const Superblock& superblock = pair->superblock;
        EXPECT_EQ(superblock.role, role);
        EXPECT_EQ(superblock.array_uuid, summary->array_uuid);
        EXPECT_EQ(superblock.member_uuid, summary->members[role].uuid);
        EXPECT_EQ(superblock.array_name, "test-array");
        EXPECT_EQ(superblock.level, Level::kRaid5);
        EXPECT_EQ(superblock.capacity_bytes, summary->capacity_bytes);
        EXPECT_EQ(superblock.shutdown_state, ShutdownState::kClean);
        EXPECT_EQ(superblock.event_counter, 0u);
        ASSERT_EQ(superblock.members.size(), 3u);
        for (const MemberEntry& entry : superblock.members) {
            EXPECT_EQ(entry.state, MemberState::kActive);
            EXPECT_EQ(entry.rebuilt_up_to_stripe, superblock.stripe_count());
        }
        EXPECT_TRUE(validate_member_size(superblock, 64 * kMiB).ok());
    }
}

TEST(CreateArray, MissingFileWithoutSizeNamesFix) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    Result<CreateSummary> summary = create_array(options);
    ASSERT_FALSE(summary.ok());
    EXPECT_EQ(summary.status().code(), Code::kNotFound);
    EXPECT_TRUE(mentions(summary.status(), options.member_paths[0])) << summary.status().message();
    EXPECT_TRUE(mentions(summary.status(), "--size")) << summary.status().message();
}

TEST(CreateArray, RejectsExistingMemberWithoutForce) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.create_size_bytes = 32 * kMiB;
    Result<CreateSummary> first = create_array(options);
    ASSERT_TRUE(first.ok()) << first.status().to_string();

    options.create_size_bytes = 0;
    options.name = "second";
    Result<CreateSummary> second = create_array(options);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), Code::kExists);
    EXPECT_TRUE(mentions(second.status(), options.member_paths[0])) << second.status().message();
    EXPECT_TRUE(mentions(second.status(), first->array_uuid.to_string()))
        << second.status().message();
    EXPECT_TRUE(mentions(second.status(), "test-array")) << second.status().message();
    EXPECT_TRUE(mentions(second.status(), "--force")) << second.status().message();
    // The existing array is untouched.
    Result<SuperblockPair> pair = read_member(options.member_paths[2]);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->superblock.array_uuid, first->array_uuid);

    options.force = true;
    Result<CreateSummary> forced = create_array(options);
    ASSERT_TRUE(forced.ok()) << forced.status().to_string();
    EXPECT_NE(forced->array_uuid, first->array_uuid);
    EXPECT_TRUE(forced->members[0].overwritten);
    pair = read_member(options.member_paths[2]);
    ASSERT_TRUE(pair.ok());
    EXPECT_EQ(pair->superblock.array_uuid, forced->array_uuid);
    EXPECT_EQ(pair->superblock.array_name, "second");
    EXPECT_TRUE(pair->other_status.ok()) << pair->other_status.to_string();
}

TEST(CreateArray, RejectsDamagedSuperblocksWithoutForce) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.create_size_bytes = 32 * kMiB;
    ASSERT_TRUE(create_array(options).ok());

    // Flip a byte in both copies of member 1: still ecraid metadata, but unreadable.
    int fd = ::open(options.member_paths[1].c_str(), O_RDWR);
    ASSERT_GE(fd, 0);
    for (off_t offset : {off_t{100}, off_t{4096 + 100}}) {
        uint8_t byte = 0;
        ASSERT_EQ(::pread(fd, &byte, 1, offset), 1);
        byte ^= 0x40;
        ASSERT_EQ(::pwrite(fd, &byte, 1, offset), 1);
    }
    ::close(fd);

    options.create_size_bytes = 0;
    Result<CreateSummary> again = create_array(options);
    ASSERT_FALSE(again.ok());
    EXPECT_EQ(again.status().code(), Code::kExists);
    EXPECT_TRUE(mentions(again.status(), "--force")) << again.status().message();
}

TEST(CreateArray, RejectsSameMemberTwice) {
    TempDirectory directory;
    std::filesystem::create_directory(directory.path() / "sub");
    make_file(directory.file("a"), 32 * kMiB);
    make_file(directory.file("b"), 32 * kMiB);
    std::filesystem::create_symlink(directory.file("a"), directory.file("link"));

    for (const std::string& alias : {directory.path().string() + "/./a",
                                     directory.path().string() + "/sub/../a",
                                     directory.file("link")}) {
        CreateOptions options;
        options.level = Level::kRaid1;
        options.member_paths = {directory.file("a"), directory.file("b"), alias};
        Result<CreateSummary> summary = create_array(options);
        ASSERT_FALSE(summary.ok()) << alias;
        EXPECT_EQ(summary.status().code(), Code::kInvalidArgument);
        EXPECT_TRUE(mentions(summary.status(), "same member")) << summary.status().message();
        EXPECT_TRUE(mentions(summary.status(), alias)) << summary.status().message();
    }
}

TEST(CreateArray, RejectsRelativeAndAbsoluteSpellings) {
    TempDirectory directory;
    make_file(directory.file("a"), 32 * kMiB);
    make_file(directory.file("b"), 32 * kMiB);
    std::filesystem::path saved = std::filesystem::current_path();
    std::filesystem::current_path(directory.path());

    CreateOptions options;
    options.level = Level::kRaid1;
    options.member_paths = {"./a", "b", "a"};
    Result<CreateSummary> summary = create_array(options);
    std::filesystem::current_path(saved);
    ASSERT_FALSE(summary.ok());
    EXPECT_EQ(summary.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(mentions(summary.status(), "./a and a")) << summary.status().message();
}

TEST(CreateArray, CapacityFromSmallestMember) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    make_file(options.member_paths[0], 100 * kMiB);
    make_file(options.member_paths[1], 64 * kMiB);
    make_file(options.member_paths[2], 80 * kMiB);
    Result<CreateSummary> summary = create_array(options);
    ASSERT_TRUE(summary.ok()) << summary.status().to_string();

    Result<MemberLayout> smallest = compute_member_layout(64 * kMiB, options.chunk_bytes,
                                                          options.region_bytes);
    ASSERT_TRUE(smallest.ok());
    uint64_t used = smallest->data_bytes / options.chunk_bytes * options.chunk_bytes;
    EXPECT_EQ(summary->member_data_bytes_used, used);
    EXPECT_EQ(summary->capacity_bytes, 2 * used);
    EXPECT_GT(summary->members[0].layout.data_bytes, summary->members[1].layout.data_bytes);
    for (const std::string& path : options.member_paths) {
        Result<SuperblockPair> pair = read_member(path);
        ASSERT_TRUE(pair.ok()) << pair.status().to_string();
        EXPECT_EQ(pair->superblock.member_data_bytes_used, used) << path;
        EXPECT_EQ(pair->superblock.capacity_bytes, summary->capacity_bytes) << path;
    }
    Result<SuperblockPair> largest = read_member(options.member_paths[0]);
    ASSERT_TRUE(largest.ok());
    EXPECT_EQ(largest->superblock.layout.member_bytes, 100 * kMiB);
}

TEST(CreateArray, ZeroesExistingContents) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    for (const std::string& path : options.member_paths) make_file(path, 16 * kMiB, 0xee);
    Result<CreateSummary> summary = create_array(options);
    ASSERT_TRUE(summary.ok()) << summary.status().to_string();

    const MemberLayout& layout = summary->members[0].layout;
    int fd = ::open(options.member_paths[0].c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    std::vector<uint8_t> bytes(layout.data_offset + layout.data_bytes - kSuperblockOffsetB - kSuperblockBytes);
    ASSERT_EQ(::pread(fd, bytes.data(), bytes.size(), kSuperblockOffsetB + kSuperblockBytes),
              static_cast<ssize_t>(bytes.size()));
    ::close(fd);
    auto nonzero = std::find_if(bytes.begin(), bytes.end(), [](uint8_t b) { return b != 0; });
    EXPECT_TRUE(nonzero == bytes.end())
        << "non-zero byte at member offset "
        << (nonzero - bytes.begin()) + kSuperblockOffsetB + kSuperblockBytes;
}

TEST(CreateArray, ForeignDataIsNotAMember) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    for (const std::string& path : options.member_paths) make_file(path, 16 * kMiB, 0x5a);
    Result<CreateSummary> summary = create_array(options);
    ASSERT_TRUE(summary.ok()) << summary.status().to_string();
    EXPECT_FALSE(summary->members[0].overwritten);
}

TEST(CreateArray, RejectsTooSmallMember) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    make_file(options.member_paths[0], 16 * kMiB);
    make_file(options.member_paths[1], 512 * 1024);
    make_file(options.member_paths[2], 16 * kMiB);
    Result<CreateSummary> summary = create_array(options);
    ASSERT_FALSE(summary.ok());
    EXPECT_EQ(summary.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(mentions(summary.status(), options.member_paths[1])) << summary.status().message();
    EXPECT_TRUE(mentions(summary.status(), "at least")) << summary.status().message();
}

TEST(CreateArray, InvalidGeometryCreatesNoFiles) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.level = Level::kRaid6;
    options.create_size_bytes = 16 * kMiB;
    Result<CreateSummary> summary = create_array(options);
    ASSERT_FALSE(summary.ok());
    EXPECT_TRUE(mentions(summary.status(), "raid6")) << summary.status().message();
    for (const std::string& path : options.member_paths) {
        EXPECT_FALSE(std::filesystem::exists(path)) << path;
    }
}

TEST(CreateArray, FailureRemovesCreatedFiles) {
    TempDirectory directory;
    CreateOptions existing = raid5_options(directory, 3);
    existing.create_size_bytes = 16 * kMiB;
    ASSERT_TRUE(create_array(existing).ok());

    CreateOptions options;
    options.level = Level::kRaid5;
    options.create_size_bytes = 16 * kMiB;
    options.member_paths = {directory.file("new0"), directory.file("new1"),
                            existing.member_paths[0]};
    Result<CreateSummary> summary = create_array(options);
    ASSERT_FALSE(summary.ok());
    EXPECT_EQ(summary.status().code(), Code::kExists);
    EXPECT_FALSE(std::filesystem::exists(directory.file("new0")));
    EXPECT_FALSE(std::filesystem::exists(directory.file("new1")));
}

TEST(CreateArray, ReedSolomonShape) {
    TempDirectory directory;
    CreateOptions options;
    options.level = Level::kRs;
    options.data_count = 4;
    options.parity_count = 2;
    options.chunk_bytes = 128 * 1024;
    options.create_size_bytes = 16 * kMiB;
    for (int i = 0; i < 6; ++i) options.member_paths.push_back(directory.file(std::to_string(i)));
    Result<CreateSummary> summary = create_array(options);
    ASSERT_TRUE(summary.ok()) << summary.status().to_string();
    EXPECT_EQ(summary->data_count, 4u);
    EXPECT_EQ(summary->parity_count, 2u);
    EXPECT_EQ(summary->capacity_bytes, 4 * summary->member_data_bytes_used);

    options.member_paths.pop_back();
    options.force = true;
    Result<CreateSummary> wrong = create_array(options);
    ASSERT_FALSE(wrong.ok());
    EXPECT_TRUE(mentions(wrong.status(), "needs 6 members")) << wrong.status().message();
}

TEST(CreateArray, RejectsInvalidName) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.create_size_bytes = 16 * kMiB;
    options.name = "bad name";
    Result<CreateSummary> summary = create_array(options);
    ASSERT_FALSE(summary.ok());
    EXPECT_EQ(summary.status().code(), Code::kInvalidArgument);
    EXPECT_FALSE(std::filesystem::exists(options.member_paths[0]));
}

TEST(CreateArray, SuperblockWritesAlternateCopies) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.create_size_bytes = 16 * kMiB;
    ASSERT_TRUE(create_array(options).ok());

    Result<MemberFile> file = MemberFile::open(options.member_paths[0], MemberOpenOptions{});
    ASSERT_TRUE(file.ok());
    Result<SuperblockPair> pair = read_superblock_pair(file.value());
    ASSERT_TRUE(pair.ok());
    Superblock superblock = pair->superblock;
    SuperblockCopy previous = pair->used;
    for (int write = 0; write < 4; ++write) {
        superblock.event_counter += 1;
        ASSERT_TRUE(write_superblock(file.value(), &superblock).ok());
        pair = read_superblock_pair(file.value());
        ASSERT_TRUE(pair.ok());
        EXPECT_NE(pair->used, previous) << "write " << write;
        EXPECT_EQ(pair->superblock, superblock);
        EXPECT_TRUE(pair->other_status.ok());
        previous = pair->used;
    }

    // Tear the newest copy: reading falls back to the previous version and reports it.
    AlignedBuffer garbage(kSuperblockBytes);
    std::memset(garbage.data(), 0x33, garbage.size());
    ASSERT_TRUE(file->pwrite_full(garbage.data(), garbage.size(),
                                  superblock_copy_offset(previous)).ok());
    pair = read_superblock_pair(file.value());
    ASSERT_TRUE(pair.ok()) << pair.status().to_string();
    EXPECT_NE(pair->used, previous);
    EXPECT_EQ(pair->superblock.sequence, superblock.sequence - 1);
    EXPECT_FALSE(pair->other_status.ok());
    EXPECT_TRUE(mentions(pair->other_status, options.member_paths[0]) ||
                mentions(pair->other_status, "copy"))
        << pair->other_status.message();

    // The next write repairs the torn copy.
    Superblock repaired = pair->superblock;
    ASSERT_TRUE(write_superblock(file.value(), &repaired).ok());
    pair = read_superblock_pair(file.value());
    ASSERT_TRUE(pair.ok());
    EXPECT_TRUE(pair->other_status.ok()) << pair->other_status.to_string();
}

TEST(CreateArray, RejectsInvalidSuperblockWrite) {
    TempDirectory directory;
    CreateOptions options = raid5_options(directory, 3);
    options.create_size_bytes = 16 * kMiB;
    ASSERT_TRUE(create_array(options).ok());
    Result<MemberFile> file = MemberFile::open(options.member_paths[0], MemberOpenOptions{});
    ASSERT_TRUE(file.ok());
    Result<SuperblockPair> pair = read_superblock_pair(file.value());
    ASSERT_TRUE(pair.ok());

    Superblock invalid = pair->superblock;
    invalid.rebuild_role = 1;  // Member 1 is active, not rebuilding.
    Status status = write_superblock(file.value(), &invalid);
    EXPECT_EQ(status.code(), Code::kInvalidArgument);
    EXPECT_EQ(invalid.sequence, pair->superblock.sequence);
    Result<SuperblockPair> after = read_superblock_pair(file.value());
    ASSERT_TRUE(after.ok());
    EXPECT_EQ(after->superblock, pair->superblock);
}

TEST(CreateArray, TruncatedMemberReportsBothCopies) {
    TempDirectory directory;
    make_file(directory.file("short"), 6000);
    Result<SuperblockPair> pair = read_member(directory.file("short"));
    ASSERT_FALSE(pair.ok());
    EXPECT_EQ(pair.status().code(), Code::kCorruption);
    EXPECT_TRUE(mentions(pair.status(), "truncated")) << pair.status().message();
}

}  // namespace
}  // namespace ecraid
