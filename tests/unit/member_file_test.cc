// SPDX-License-Identifier: Apache-2.0
#include "io/member_file.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>

#include "meta_test_support.h"

namespace ecraid {
namespace {

using testing::TempDirectory;

constexpr uint64_t kMiB = 1u << 20;

// Bytes actually allocated to a file, to tell sparse files from written ones.
uint64_t allocated_bytes(const std::string& path) {
    struct stat info {};
    EXPECT_EQ(::stat(path.c_str(), &info), 0);
    return static_cast<uint64_t>(info.st_blocks) * 512;
}

TEST(MemberFile, CreatesSparseFile) {
    TempDirectory directory;
    std::string path = directory.file("member");
    MemberOpenOptions options;
    options.create_size_bytes = 64 * kMiB;
    Result<MemberFile> file = MemberFile::open(path, options);
    ASSERT_TRUE(file.ok()) << file.status().to_string();
    EXPECT_TRUE(file->was_created());
    EXPECT_EQ(file->size(), 64 * kMiB);
    EXPECT_FALSE(file->is_block_device());
    EXPECT_LT(allocated_bytes(path), kMiB);
}

TEST(MemberFile, MissingFileWithoutSizeIsNotFound) {
    TempDirectory directory;
    Result<MemberFile> file = MemberFile::open(directory.file("absent"), MemberOpenOptions{});
    ASSERT_FALSE(file.ok());
    EXPECT_EQ(file.status().code(), Code::kNotFound);
    EXPECT_FALSE(std::filesystem::exists(directory.file("absent")));
}

TEST(MemberFile, RejectsDirectory) {
    TempDirectory directory;
    Result<MemberFile> file = MemberFile::open(directory.path().string(), MemberOpenOptions{});
    ASSERT_FALSE(file.ok());
    EXPECT_NE(file.status().code(), Code::kOk);
}

TEST(MemberFile, ReadWriteRoundTripDirectAndBuffered) {
    for (bool try_direct : {true, false}) {
        TempDirectory directory;
        MemberOpenOptions options;
        options.create_size_bytes = 4 * kMiB;
        options.try_direct = try_direct;
        Result<MemberFile> file = MemberFile::open(directory.file("member"), options);
        ASSERT_TRUE(file.ok()) << file.status().to_string();
        if (!try_direct) {
            EXPECT_FALSE(file->is_direct());
        }

        AlignedBuffer written(3 * kDirectAlignment);
        for (size_t i = 0; i < written.size(); ++i) written.data()[i] = static_cast<uint8_t>(i * 7);
        ASSERT_TRUE(file->pwrite_full(written.data(), written.size(), kMiB).ok());
        ASSERT_TRUE(file->sync().ok());

        AlignedBuffer read_back(written.size());
        ASSERT_TRUE(file->pread_full(read_back.data(), read_back.size(), kMiB).ok());
        EXPECT_EQ(std::memcmp(written.data(), read_back.data(), written.size()), 0)
            << "try_direct=" << try_direct;
    }
}

TEST(MemberFile, ReadPastEndIsError) {
    TempDirectory directory;
    MemberOpenOptions options;
    options.create_size_bytes = 64 * 1024;
    Result<MemberFile> file = MemberFile::open(directory.file("member"), options);
    ASSERT_TRUE(file.ok());
    AlignedBuffer buffer(2 * kDirectAlignment);
    Status status = file->pread_full(buffer.data(), buffer.size(), 60 * 1024);
    ASSERT_FALSE(status.ok());
    EXPECT_EQ(status.code(), Code::kIoError);
    EXPECT_NE(status.message().find("end of file"), std::string::npos) << status.message();
}

TEST(MemberFile, ShortFileTailReadIsErrorBuffered) {
    TempDirectory directory;
    std::string path = directory.file("member");
    int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::ftruncate(fd, 6000), 0);
    ::close(fd);
    MemberOpenOptions options;
    options.try_direct = false;
    Result<MemberFile> file = MemberFile::open(path, options);
    ASSERT_TRUE(file.ok());
    EXPECT_EQ(file->size(), 6000u);
    AlignedBuffer buffer(8192);
    Status status = file->pread_full(buffer.data(), 8192, 0);
    EXPECT_EQ(status.code(), Code::kIoError);
}

TEST(MemberFile, ZeroRangePunchesHole) {
    TempDirectory directory;
    std::string path = directory.file("member");
    MemberOpenOptions options;
    options.create_size_bytes = 8 * kMiB;
    Result<MemberFile> file = MemberFile::open(path, options);
    ASSERT_TRUE(file.ok());

    AlignedBuffer ones(4 * kMiB);
    std::memset(ones.data(), 0xff, ones.size());
    ASSERT_TRUE(file->pwrite_full(ones.data(), ones.size(), 2 * kMiB).ok());
    ASSERT_TRUE(file->sync().ok());
    uint64_t allocated_before = allocated_bytes(path);
    EXPECT_GE(allocated_before, 4 * kMiB);

    ASSERT_TRUE(file->zero_range(3 * kMiB, 2 * kMiB).ok());
    ASSERT_TRUE(file->sync().ok());
    EXPECT_EQ(file->size(), 8 * kMiB);
    EXPECT_LE(allocated_bytes(path), allocated_before - 2 * kMiB);

    AlignedBuffer read_back(4 * kMiB);
    ASSERT_TRUE(file->pread_full(read_back.data(), read_back.size(), 2 * kMiB).ok());
    for (uint64_t offset = 0; offset < read_back.size(); offset += 4096) {
        uint8_t expected = (offset >= kMiB && offset < 3 * kMiB) ? 0x00 : 0xff;
        ASSERT_EQ(read_back.data()[offset], expected) << "offset " << offset;
        ASSERT_EQ(read_back.data()[offset + 4095], expected) << "offset " << offset;
    }
}

TEST(MemberFile, SameStorageThroughDifferentPaths) {
    TempDirectory directory;
    MemberOpenOptions options;
    options.create_size_bytes = kMiB;
    Result<MemberFile> first = MemberFile::open(directory.file("member"), options);
    ASSERT_TRUE(first.ok());
    std::filesystem::create_directory(directory.path() / "sub");
    Result<MemberFile> second =
        MemberFile::open((directory.path() / "sub" / ".." / "member").string(), MemberOpenOptions{});
    ASSERT_TRUE(second.ok()) << second.status().to_string();
    std::filesystem::create_symlink(directory.file("member"), directory.file("link"));
    Result<MemberFile> third = MemberFile::open(directory.file("link"), MemberOpenOptions{});
    ASSERT_TRUE(third.ok());
    Result<MemberFile> other = MemberFile::open(directory.file("other"), options);
    ASSERT_TRUE(other.ok());

    EXPECT_TRUE(first->same_storage(second.value()));
    EXPECT_TRUE(first->same_storage(third.value()));
    EXPECT_FALSE(first->same_storage(other.value()));
}

TEST(MemberFile, ReadOnlyRejectsWrites) {
    TempDirectory directory;
    MemberOpenOptions options;
    options.create_size_bytes = kMiB;
    ASSERT_TRUE(MemberFile::open(directory.file("member"), options).ok());
    MemberOpenOptions read_only;
    read_only.read_only = true;
    Result<MemberFile> file = MemberFile::open(directory.file("member"), read_only);
    ASSERT_TRUE(file.ok());
    EXPECT_TRUE(file->is_read_only());
    AlignedBuffer buffer(kDirectAlignment);
    EXPECT_FALSE(file->pwrite_full(buffer.data(), buffer.size(), 0).ok());
}

TEST(MemberFile, CloseReportsAndIsIdempotent) {
    TempDirectory directory;
    MemberOpenOptions options;
    options.create_size_bytes = kMiB;
    Result<MemberFile> file = MemberFile::open(directory.file("member"), options);
    ASSERT_TRUE(file.ok());
    EXPECT_TRUE(file->close().ok());
    EXPECT_FALSE(file->is_open());
    EXPECT_TRUE(file->close().ok());
}

TEST(MemberFile, FileInMemoryMatchesTheFilesystem) {
    // /dev/shm is tmpfs on most Linux systems, and the test is skipped where it is not.
    struct statfs shm {};
    if (statfs("/dev/shm", &shm) != 0 || static_cast<uint64_t>(shm.f_type) != TMPFS_MAGIC) {
        GTEST_SKIP() << "/dev/shm is not tmpfs here";
    }
    char name[] = "/dev/shm/ecraid-member-XXXXXX";
    int in_memory = mkstemp(name);
    ASSERT_GE(in_memory, 0);
    unlink(name);
    EXPECT_TRUE(file_in_memory(in_memory));
    close(in_memory);

    int proc_file = open("/proc/self/cmdline", O_RDONLY);
    ASSERT_GE(proc_file, 0);
    EXPECT_FALSE(file_in_memory(proc_file));
    close(proc_file);
    EXPECT_FALSE(file_in_memory(-1));
}

}  // namespace
}  // namespace ecraid
