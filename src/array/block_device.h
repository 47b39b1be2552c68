// SPDX-License-Identifier: Apache-2.0
// BlockDevice: the virtual disk as the NBD server sees it.
//
// The array implements it; tests implement it in memory. Every call runs on the calling
// worker's ring and returns 0 or a negative errno:
//   -EINVAL  the range is out of bounds (reads, trims) or malformed
//   -ENOSPC  a write or write-zeroes reaches past the end
//   -EPERM   a write to a read-only device
//   -EIO     the data cannot be read or made durable (more failures than the level tolerates)
// Callers validate ranges before calling; the device checks again and never trusts them.
#pragma once

#include <cerrno>
#include <cstdint>
#include <memory>
#include <vector>

#include "io/task.h"

namespace ecraid {

// A byte range of a read that could not be served, with the reason.
struct ReadFailure {
    uint64_t offset = 0;
    uint64_t length = 0;
    int error = 0;  // Positive errno.
};

// The memory a read fills, when the device may place member data in it directly. A member
// read that hangs past the I/O timeout is abandoned, but the kernel may still write into its
// memory later. The device then takes the memory with hand_over() and the read returns
// kReadAgain: the caller must not touch or free the old memory, and reads again into new
// memory.
class ReadTarget {
public:
    virtual ~ReadTarget() = default;
    // Takes ownership of the memory, which the result keeps alive. The array calls it at most
    // once per read.
    virtual std::shared_ptr<void> hand_over() = 0;
};

// The result of a read whose memory was handed over (see ReadTarget).
inline constexpr int kReadAgain = -EAGAIN;

class BlockDevice {
public:
    virtual ~BlockDevice() = default;

    virtual uint64_t size_bytes() const = 0;
    virtual bool read_only() const = 0;

    // Reads [offset, offset + length) into `buffer`. On failure, returns the negative errno
    // of the first failure and, when `failures` is not null, appends every failed range;
    // the bytes of the ranges not listed are valid. With a `target` for `buffer`, member
    // reads may land in it directly, and the read may return kReadAgain.
    virtual Task<int> read(uint64_t offset, uint32_t length, uint8_t* buffer,
                           std::vector<ReadFailure>* failures, ReadTarget* target = nullptr) = 0;
    // Writes `length` bytes. With `fua`, the data is durable when the call returns 0.
    virtual Task<int> write(uint64_t offset, uint32_t length, const uint8_t* data, bool fua) = 0;
    // Makes every write that completed before this call durable on every member.
    virtual Task<int> flush() = 0;
    // Discards a range: afterwards it reads as zeros.
    virtual Task<int> trim(uint64_t offset, uint64_t length, bool fua) = 0;
    // Writes zeros; `may_punch` allows freeing the space (NBD's NO_HOLE flag clear).
    virtual Task<int> write_zeroes(uint64_t offset, uint64_t length, bool may_punch,
                                   bool fua) = 0;
};

}  // namespace ecraid
