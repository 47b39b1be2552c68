// SPDX-License-Identifier: Apache-2.0
// MemberFile: one open member (a regular file or a block device) and synchronous I/O on it.
//
// Opening tries O_DIRECT first. When the filesystem rejects it (open fails with EINVAL, as on
// tmpfs before Linux 6.6), the member falls back to buffered I/O, and is_direct() records which
// one was used. With O_DIRECT, every buffer, offset and length must be a multiple of
// kDirectAlignment; AlignedBuffer provides such buffers. The io_uring serve path reuses fd(),
// is_direct() and size(); the helpers here are for metadata, create and tests.
//
// Faults handled here: short transfers and EINTR are retried, a read that reaches the end of
// the file is an error (never silently zero-filled), and fdatasync errors are returned to the
// caller, which must treat them as sticky (a failed flush is never retried).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace ecraid {

// Alignment of O_DIRECT buffers, offsets and lengths. 4 KiB covers devices with 512-byte and
// 4 KiB logical blocks.
inline constexpr size_t kDirectAlignment = 4096;

// A zero-filled heap buffer aligned to kDirectAlignment.
class AlignedBuffer {
public:
    AlignedBuffer() = default;
    // Allocates `size_bytes` rounded up to kDirectAlignment. Aborts when memory runs out,
    // because src/ uses no exceptions.
    explicit AlignedBuffer(size_t size_bytes);

    uint8_t* data() { return data_.get(); }
    const uint8_t* data() const { return data_.get(); }
    size_t size() const { return size_bytes_; }

private:
    struct FreeDeleter {
        void operator()(uint8_t* pointer) const;
    };
    std::unique_ptr<uint8_t, FreeDeleter> data_;
    size_t size_bytes_ = 0;
};

// True unless `fd` is a block device or a file on a local filesystem that answers io_uring's
// nonblocking inline attempt at a read or write with -EAGAIN rather than by blocking: ext2/3/4,
// XFS, btrfs, F2FS, tmpfs and overlayfs (which passes I/O to the filesystem below it). FUSE
// blocks there (its O_DIRECT path waits for a free request slot), and network filesystems are
// treated the same. Their I/O goes to the kernel's worker threads, so a hung server cannot
// stop a ring (see DeviceIo::issue_async).
bool inline_issue_may_block(int fd);

// True when `fd` is a file on tmpfs or ramfs, whose data is in memory, so a read or write of
// it is a copy that waits for no device (unless the memory was swapped out).
bool file_in_memory(int fd);

struct MemberOpenOptions {
    bool read_only = false;
    // Try O_DIRECT first. When false, the member is opened for buffered I/O only.
    bool try_direct = true;
    // When the path does not exist, create a sparse regular file of this many bytes
    // (0: a missing path is a kNotFound error).
    uint64_t create_size_bytes = 0;
};

class MemberFile {
public:
    // Opens `path`, which must be a regular file or a block device. Block devices opened
    // read-write get O_EXCL, so a mounted device, or one held by another O_EXCL opener, fails
    // with EBUSY.
    // Errors: kNotFound (missing path and no create size), kInvalidArgument (another file
    // type), kIoError (the system call that failed, with its errno).
    static Result<MemberFile> open(const std::string& path, const MemberOpenOptions& options);

    MemberFile() = default;
    MemberFile(MemberFile&& other) noexcept;
    MemberFile& operator=(MemberFile&& other) noexcept;
    MemberFile(const MemberFile&) = delete;
    MemberFile& operator=(const MemberFile&) = delete;
    ~MemberFile();

    bool is_open() const { return fd_ >= 0; }
    int fd() const { return fd_; }
    const std::string& path() const { return path_; }
    bool is_direct() const { return direct_; }
    bool is_block_device() const { return block_device_; }
    bool is_read_only() const { return read_only_; }
    // True when open() created the file.
    bool was_created() const { return created_; }
    // Size in bytes at open time (st_size, or BLKGETSIZE64 for block devices).
    uint64_t size() const { return size_bytes_; }
    // Identity of the underlying storage: (st_dev, st_ino) for files, st_rdev for block
    // devices. Two paths naming the same member compare equal.
    bool same_storage(const MemberFile& other) const;

    // Reads exactly `length` bytes at `offset`. Retries short reads and EINTR. Reaching the
    // end of the file before `length` bytes is a kIoError naming the offset.
    // Requires: with is_direct(), buffer, offset and length aligned to kDirectAlignment.
    Status pread_full(void* buffer, size_t length, uint64_t offset) const;

    // Writes exactly `length` bytes at `offset`. Retries short writes and EINTR.
    // Requires: the same alignment as pread_full.
    Status pwrite_full(const void* buffer, size_t length, uint64_t offset);

    // Makes completed writes durable (fdatasync). An error here is sticky: the data written
    // since the last successful sync may be lost, so callers must not retry and assume success.
    Status sync();

    // Makes [offset, offset + length) read as zeros. Regular files get a punched hole
    // (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, so the size does not change), falling back to
    // writing zeros where the filesystem does not support it; block devices get BLKZEROOUT,
    // falling back to writing zeros. Not durable until sync().
    // Requires: offset and length aligned to kDirectAlignment and within size().
    Status zero_range(uint64_t offset, uint64_t length);

    // Closes the descriptor. Reports the close error, which the destructor would drop.
    Status close();

private:
    Status write_zeros(uint64_t offset, uint64_t length);

    int fd_ = -1;
    std::string path_;
    bool direct_ = false;
    bool block_device_ = false;
    bool read_only_ = false;
    bool created_ = false;
    uint64_t size_bytes_ = 0;
    dev_t device_ = 0;   // st_dev for files, st_rdev for block devices.
    ino_t inode_ = 0;    // st_ino for files, 0 for block devices.
};

}  // namespace ecraid
