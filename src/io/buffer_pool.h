// SPDX-License-Identifier: Apache-2.0
// BufferPool: 4 KiB-aligned I/O buffers reused per thread, so the request path does not
// call malloc once warm.
//
// Buffers come in power-of-two size classes from 4 KiB to 64 MiB. A released buffer returns
// to the free list of the thread that releases it; each thread caches at most
// kCachedBytesMaxPerThread and frees the rest. Requests above 64 MiB are rounded up to a
// multiple of 4 KiB, allocated directly and freed on release. A thread's cached buffers are
// freed when the thread exits. Contents of an acquired buffer are undefined.
#pragma once

#include <cstddef>
#include <cstdint>
#include <utility>

namespace ecraid {

class Buffer {
public:
    Buffer() = default;
    // Acquires a buffer of at least `bytes` bytes (rounded up to a size class). Buffer(0)
    // acquires 4 KiB. Running out of memory aborts, like a failed operator new would.
    explicit Buffer(size_t bytes);
    Buffer(Buffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)), capacity_(std::exchange(other.capacity_, 0)) {}
    Buffer& operator=(Buffer&& other) noexcept;
    Buffer(const Buffer&) = delete;
    Buffer& operator=(const Buffer&) = delete;
    ~Buffer() { release(); }

    uint8_t* data() const { return data_; }
    size_t capacity() const { return capacity_; }
    explicit operator bool() const { return data_ != nullptr; }
    // Returns the memory to the calling thread's free list (or frees it) and empties the
    // Buffer. Does nothing on an empty Buffer.
    void release();

private:
    uint8_t* data_ = nullptr;
    size_t capacity_ = 0;
};

inline constexpr size_t kBufferAlignment = 4096;
inline constexpr size_t kBufferClassBytesMin = 4096;
inline constexpr size_t kBufferClassBytesMax = 64u << 20;
inline constexpr size_t kCachedBytesMaxPerThread = 256u << 20;

// The calling thread's buffer cache.
struct BufferPool {
    // Bytes of released buffers that the calling thread keeps for reuse.
    static size_t cached_bytes();
    // Frees every buffer cached by the calling thread.
    static void trim();
};

}  // namespace ecraid
