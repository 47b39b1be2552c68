// SPDX-License-Identifier: Apache-2.0
#include "io/member_file.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/magic.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstdlib>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace ecraid {
namespace {

constexpr size_t kZeroWriteBytes = 1u << 20;

[[maybe_unused]] bool is_aligned(uint64_t value) { return value % kDirectAlignment == 0; }

[[maybe_unused]] bool is_aligned(const void* pointer) {
    return reinterpret_cast<uintptr_t>(pointer) % kDirectAlignment == 0;
}

// Creates `path` as a sparse regular file of `size_bytes`. Fails with EEXIST rather than
// touching a file that appeared in the meantime.
Status create_sparse_file(const std::string& path, uint64_t size_bytes) {
    int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        return Status::from_errno(errno, fmt::format("{}: creating the member file failed", path));
    }
    if (::ftruncate(fd, static_cast<off_t>(size_bytes)) != 0) {
        int saved_errno = errno;
        ::close(fd);
        ::unlink(path.c_str());
        return Status::from_errno(
            saved_errno, fmt::format("{}: setting the size of the new member file to {} bytes "
                                     "failed", path, size_bytes));
    }
    if (::close(fd) != 0) {
        int saved_errno = errno;
        ::unlink(path.c_str());
        return Status::from_errno(saved_errno,
                                  fmt::format("{}: closing the new member file failed", path));
    }
    return Status::ok_status();
}

// Opens with O_DIRECT when `try_direct`, and without it when the filesystem rejects O_DIRECT
// at open time (EINVAL). Sets *direct to what was used.
int open_preferring_direct(const std::string& path, int flags, bool try_direct, bool* direct) {
    *direct = false;
    if (try_direct) {
        int fd = ::open(path.c_str(), flags | O_DIRECT);
        if (fd >= 0) {
            *direct = true;
            return fd;
        }
        if (errno != EINVAL) return -1;
        // NOTE: the tests reach buffered I/O only through try_direct = false, because tmpfs
        // accepts O_DIRECT since Linux 6.6 and no filesystem at hand rejects it.
        spdlog::debug("{}: open: O_DIRECT rejected (EINVAL), using buffered I/O", path);
    }
    return ::open(path.c_str(), flags);
}

Result<uint64_t> storage_size(int fd, const struct stat& info, const std::string& path) {
    if (S_ISREG(info.st_mode)) return static_cast<uint64_t>(info.st_size);
    uint64_t size_bytes = 0;
    if (::ioctl(fd, BLKGETSIZE64, &size_bytes) != 0) {
        return Status::from_errno(errno, fmt::format("{}: BLKGETSIZE64 failed", path));
    }
    return size_bytes;
}

}  // namespace

AlignedBuffer::AlignedBuffer(size_t size_bytes) {
    size_t rounded = (size_bytes + kDirectAlignment - 1) / kDirectAlignment * kDirectAlignment;
    if (rounded == 0) return;
    void* pointer = std::aligned_alloc(kDirectAlignment, rounded);
    if (pointer == nullptr) {
        spdlog::critical("allocating an aligned buffer of {} bytes failed", rounded);
        std::abort();
    }
    std::fill_n(static_cast<uint8_t*>(pointer), rounded, uint8_t{0});
    data_.reset(static_cast<uint8_t*>(pointer));
    size_bytes_ = rounded;
}

void AlignedBuffer::FreeDeleter::operator()(uint8_t* pointer) const { std::free(pointer); }

Result<MemberFile> MemberFile::open(const std::string& path, const MemberOpenOptions& options) {
    struct stat info {};
    bool created = false;
    if (::stat(path.c_str(), &info) != 0) {
        if (errno != ENOENT) return Status::from_errno(errno, fmt::format("{}: stat failed", path));
        if (options.create_size_bytes == 0 || options.read_only) {
            return Status::error(Code::kNotFound, fmt::format("{}: no such file or device", path),
                                 ENOENT);
        }
        ECRAID_RETURN_IF_ERROR(create_sparse_file(path, options.create_size_bytes));
        created = true;
    }

    MemberFile file;
    file.path_ = path;
    file.read_only_ = options.read_only;
    file.created_ = created;

    // O_EXCL without O_CREAT is defined only for block devices (open(2), Linux 2.6 and later).
    // It fails with EBUSY while the device is mounted or held by another O_EXCL opener.
    bool block_device = !created && S_ISBLK(info.st_mode);
    int flags = (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
    if (block_device && !options.read_only) flags |= O_EXCL;
    file.fd_ = open_preferring_direct(path, flags, options.try_direct, &file.direct_);
    if (file.fd_ < 0) {
        int saved_errno = errno;
        if (created) ::unlink(path.c_str());
        if (saved_errno == EBUSY) {
            return Status::from_errno(saved_errno,
                                      fmt::format("{}: device is in use (mounted, or claimed "
                                                  "by another program)", path));
        }
        return Status::from_errno(saved_errno, fmt::format("{}: open failed", path));
    }

    // fstat the descriptor: the path may have been replaced since the stat above.
    if (::fstat(file.fd_, &info) != 0) {
        return Status::from_errno(errno, fmt::format("{}: fstat failed", path));
    }
    if (!S_ISREG(info.st_mode) && !S_ISBLK(info.st_mode)) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("{}: not a regular file or block device", path));
    }
    file.block_device_ = S_ISBLK(info.st_mode);
    file.device_ = file.block_device_ ? info.st_rdev : info.st_dev;
    file.inode_ = file.block_device_ ? 0 : info.st_ino;
    Result<uint64_t> size_bytes = storage_size(file.fd_, info, path);
    if (!size_bytes.ok()) return size_bytes.status();
    file.size_bytes_ = size_bytes.value();

    // Some filesystems accept O_DIRECT at open time and reject the first aligned read with
    // EINVAL. Probe one block so that such a member falls back to buffered I/O here instead of
    // failing on the serve path.
    if (file.direct_ && file.size_bytes_ >= kDirectAlignment) {
        AlignedBuffer probe(kDirectAlignment);
        ssize_t done = ::pread(file.fd_, probe.data(), kDirectAlignment, 0);
        if (done < 0 && errno == EINVAL) {
            spdlog::debug("{}: open: O_DIRECT read rejected (EINVAL), using buffered I/O", path);
            ::close(file.fd_);
            file.fd_ = open_preferring_direct(path, flags, false, &file.direct_);
            if (file.fd_ < 0) return Status::from_errno(errno, fmt::format("{}: open failed", path));
        }
    }
    return file;
}

bool inline_issue_may_block(int fd) {
    struct stat info {};
    if (::fstat(fd, &info) == 0 && S_ISBLK(info.st_mode)) return false;
    struct statfs filesystem {};
    if (::fstatfs(fd, &filesystem) != 0) return true;
    switch (static_cast<uint64_t>(filesystem.f_type)) {
        case EXT4_SUPER_MAGIC:  // ext2 and ext3 share it
        case XFS_SUPER_MAGIC:
        case BTRFS_SUPER_MAGIC:
        case F2FS_SUPER_MAGIC:
        case TMPFS_MAGIC:
        case OVERLAYFS_SUPER_MAGIC:
            return false;
        default:
            return true;
    }
}

bool file_in_memory(int fd) {
    struct statfs filesystem {};
    if (::fstatfs(fd, &filesystem) != 0) return false;
    uint64_t type = static_cast<uint64_t>(filesystem.f_type);
    return type == TMPFS_MAGIC || type == RAMFS_MAGIC;
}

MemberFile::MemberFile(MemberFile&& other) noexcept { *this = std::move(other); }

MemberFile& MemberFile::operator=(MemberFile&& other) noexcept {
    if (this == &other) return *this;
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    direct_ = other.direct_;
    block_device_ = other.block_device_;
    read_only_ = other.read_only_;
    created_ = other.created_;
    size_bytes_ = other.size_bytes_;
    device_ = other.device_;
    inode_ = other.inode_;
    return *this;
}

MemberFile::~MemberFile() {
    if (fd_ >= 0) ::close(fd_);
}

bool MemberFile::same_storage(const MemberFile& other) const {
    return block_device_ == other.block_device_ && device_ == other.device_ &&
           inode_ == other.inode_;
}

Status MemberFile::pread_full(void* buffer, size_t length, uint64_t offset) const {
    assert(fd_ >= 0);
    assert(!direct_ || (is_aligned(buffer) && is_aligned(length) && is_aligned(offset)));
    auto* bytes = static_cast<uint8_t*>(buffer);
    size_t done = 0;
    while (done < length) {
        ssize_t count = ::pread(fd_, bytes + done, length - done, static_cast<off_t>(offset + done));
        if (count < 0) {
            if (errno == EINTR) continue;
            return Status::from_errno(errno, fmt::format("{}: read of {} bytes at offset {} failed",
                                                         path_, length, offset));
        }
        // A short O_DIRECT read happens only at the end of the file. It leaves an unaligned
        // position, where the next read would fail with EINVAL, so report the end of file now.
        if (count == 0 || (direct_ && !is_aligned(done + static_cast<size_t>(count)) &&
                           done + static_cast<size_t>(count) < length)) {
            done += static_cast<size_t>(count);
            return Status::error(Code::kIoError,
                                 fmt::format("{}: unexpected end of file at offset {} while "
                                             "reading {} bytes at offset {}",
                                             path_, offset + done, length, offset));
        }
        done += static_cast<size_t>(count);
    }
    return Status::ok_status();
}

Status MemberFile::pwrite_full(const void* buffer, size_t length, uint64_t offset) {
    assert(fd_ >= 0);
    assert(!direct_ || (is_aligned(buffer) && is_aligned(length) && is_aligned(offset)));
    const auto* bytes = static_cast<const uint8_t*>(buffer);
    size_t done = 0;
    while (done < length) {
        ssize_t count =
            ::pwrite(fd_, bytes + done, length - done, static_cast<off_t>(offset + done));
        if (count < 0) {
            if (errno == EINTR) continue;
            return Status::from_errno(errno, fmt::format("{}: write of {} bytes at offset {} "
                                                         "failed", path_, length, offset));
        }
        if (count == 0) {
            return Status::error(Code::kIoError,
                                 fmt::format("{}: write of {} bytes at offset {} made no "
                                             "progress at offset {}",
                                             path_, length, offset, offset + done));
        }
        done += static_cast<size_t>(count);
    }
    return Status::ok_status();
}

Status MemberFile::sync() {
    assert(fd_ >= 0);
    if (::fdatasync(fd_) != 0) {
        return Status::from_errno(errno, fmt::format("{}: fdatasync failed", path_));
    }
    return Status::ok_status();
}

Status MemberFile::zero_range(uint64_t offset, uint64_t length) {
    assert(fd_ >= 0);
    assert(is_aligned(offset));
    assert(is_aligned(length));
    assert(offset <= size_bytes_);
    assert(length <= size_bytes_ - offset);
    if (length == 0) return Status::ok_status();

    if (block_device_) {
        uint64_t range[2] = {offset, length};
        if (::ioctl(fd_, BLKZEROOUT, range) == 0) return Status::ok_status();
        // EOPNOTSUPP and ENOTTY: the device or driver has no zeroing ioctl.
        if (errno != EOPNOTSUPP && errno != ENOTTY) {
            return Status::from_errno(errno, fmt::format("{}: BLKZEROOUT of {} bytes at offset "
                                                         "{} failed", path_, length, offset));
        }
        spdlog::debug("{}: zero_range: BLKZEROOUT unsupported, writing zeros", path_);
        return write_zeros(offset, length);
    }

    while (::fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                       static_cast<off_t>(offset), static_cast<off_t>(length)) != 0) {
        if (errno == EINTR) continue;
        if (errno != EOPNOTSUPP && errno != ENOSYS) {
            return Status::from_errno(errno, fmt::format("{}: punching a hole of {} bytes at "
                                                         "offset {} failed", path_, length, offset));
        }
        spdlog::debug("{}: zero_range: hole punching unsupported, writing zeros", path_);
        return write_zeros(offset, length);
    }
    return Status::ok_status();
}

Status MemberFile::write_zeros(uint64_t offset, uint64_t length) {
    AlignedBuffer zeros(static_cast<size_t>(std::min<uint64_t>(length, kZeroWriteBytes)));
    uint64_t done = 0;
    while (done < length) {
        size_t piece = static_cast<size_t>(std::min<uint64_t>(length - done, zeros.size()));
        ECRAID_RETURN_IF_ERROR(pwrite_full(zeros.data(), piece, offset + done));
        done += piece;
    }
    return Status::ok_status();
}

Status MemberFile::close() {
    if (fd_ < 0) return Status::ok_status();
    int fd = std::exchange(fd_, -1);
    // Linux releases the descriptor even when close fails, so it is never retried.
    if (::close(fd) != 0) return Status::from_errno(errno, fmt::format("{}: close failed", path_));
    return Status::ok_status();
}

}  // namespace ecraid
