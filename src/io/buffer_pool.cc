// SPDX-License-Identifier: Apache-2.0
#include "io/buffer_pool.h"

#include <bit>
#include <cassert>
#include <cstdlib>

#include <spdlog/spdlog.h>

namespace ecraid {
namespace {

constexpr int kClassShiftMin = std::countr_zero(kBufferClassBytesMin);
constexpr int kClassShiftMax = std::countr_zero(kBufferClassBytesMax);
constexpr size_t kClassCount = kClassShiftMax - kClassShiftMin + 1;
static_assert(std::has_single_bit(kBufferClassBytesMin));
static_assert(std::has_single_bit(kBufferClassBytesMax));
static_assert(kBufferClassBytesMin % kBufferAlignment == 0);

// A cached buffer stores the free-list link in its own first bytes.
struct FreeBuffer {
    FreeBuffer* next;
};

struct ThreadCache {
    FreeBuffer* head[kClassCount] = {};
    size_t cached_bytes = 0;

    void trim() {
        for (FreeBuffer*& list : head) {
            while (list != nullptr) {
                FreeBuffer* buffer = list;
                list = buffer->next;
                std::free(buffer);
            }
        }
        cached_bytes = 0;
    }
    ~ThreadCache();
};

// Set once the calling thread's cache has been destroyed at thread exit. A Buffer released
// later (by another thread_local's destructor) is then freed directly. A plain bool has no
// destructor, so it stays readable for the whole of thread exit.
thread_local bool thread_cache_destroyed = false;

ThreadCache::~ThreadCache() {
    trim();
    thread_cache_destroyed = true;
}

ThreadCache* thread_cache() {
    if (thread_cache_destroyed) return nullptr;
    thread_local ThreadCache cache;
    return &cache;
}

size_t class_index(size_t capacity) {
    return static_cast<size_t>(std::countr_zero(capacity) - kClassShiftMin);
}

uint8_t* allocate_aligned(size_t bytes) {
    assert(bytes % kBufferAlignment == 0);
    void* memory = std::aligned_alloc(kBufferAlignment, bytes);
    if (memory == nullptr) {
        spdlog::critical("buffer pool: aligned_alloc of {} bytes failed", bytes);
        std::abort();
    }
    return static_cast<uint8_t*>(memory);
}

}  // namespace

Buffer::Buffer(size_t bytes) {
    if (bytes > kBufferClassBytesMax) {
        if (bytes > SIZE_MAX - (kBufferAlignment - 1)) {
            spdlog::critical("buffer pool: request of {} bytes is too large", bytes);
            std::abort();
        }
        capacity_ = (bytes + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
        data_ = allocate_aligned(capacity_);
        return;
    }

    capacity_ = std::bit_ceil(bytes < kBufferClassBytesMin ? kBufferClassBytesMin : bytes);
    ThreadCache* cache = thread_cache();
    if (cache != nullptr) {
        FreeBuffer*& list = cache->head[class_index(capacity_)];
        if (list != nullptr) {
            FreeBuffer* buffer = list;
            list = buffer->next;
            cache->cached_bytes -= capacity_;
            data_ = reinterpret_cast<uint8_t*>(buffer);
            return;
        }
    }
    data_ = allocate_aligned(capacity_);
}

Buffer& Buffer::operator=(Buffer&& other) noexcept {
    if (this != &other) {
        release();
        data_ = std::exchange(other.data_, nullptr);
        capacity_ = std::exchange(other.capacity_, 0);
    }
    return *this;
}

void Buffer::release() {
    if (data_ == nullptr) return;
    uint8_t* data = std::exchange(data_, nullptr);
    size_t capacity = std::exchange(capacity_, 0);

    ThreadCache* cache = capacity <= kBufferClassBytesMax ? thread_cache() : nullptr;
    if (cache == nullptr || cache->cached_bytes + capacity > kCachedBytesMaxPerThread) {
        std::free(data);
        return;
    }
    assert(std::has_single_bit(capacity));
    auto* buffer = reinterpret_cast<FreeBuffer*>(data);
    FreeBuffer*& list = cache->head[class_index(capacity)];
    buffer->next = list;
    list = buffer;
    cache->cached_bytes += capacity;
}

size_t BufferPool::cached_bytes() {
    ThreadCache* cache = thread_cache();
    return cache != nullptr ? cache->cached_bytes : 0;
}

void BufferPool::trim() {
    if (ThreadCache* cache = thread_cache()) cache->trim();
}

}  // namespace ecraid
