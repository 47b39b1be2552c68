// SPDX-License-Identifier: Apache-2.0
#include "nbd/request_buffer.h"

#include <sys/mman.h>

#include <bit>
#include <cassert>
#include <cstdlib>

#include "io/ring.h"
#include "nbd/protocol.h"

namespace ecraid::nbd {
namespace {

constexpr uint64_t kAlignmentBytes = 4096;
constexpr uint32_t kSmallestClassShift = 12;  // 4 KiB
constexpr uint32_t kLargestClassShift = 25;   // 32 MiB, the largest payload
constexpr uint32_t kClassCount = kLargestClassShift - kSmallestClassShift + 1;
// Buffers of at least this size are mapped directly, so that freeing them returns the
// memory to the kernel instead of leaving it in the malloc heap.
constexpr uint64_t kMappedBytesMin = 256 * 1024;
// Free buffers each thread keeps for reuse. Memory held by the server is bounded by the
// budget plus this cache on each worker thread.
constexpr uint64_t kCachedBytesMax = 64ull * 1024 * 1024;
constexpr uint32_t kCachedPerClassMax = 64;

static_assert(uint64_t{1} << kLargestClassShift == kPayloadBytesMax);

uint32_t class_index(uint64_t capacity) {
    uint32_t index = static_cast<uint32_t>(std::countr_zero(capacity)) - kSmallestClassShift;
    // Capacities come from capacity_for(), so this is a programmer error.
    if (index >= kClassCount) std::abort();
    return index;
}

uint8_t* allocate(uint64_t capacity) {
    if (capacity >= kMappedBytesMin) {
        void* memory = mmap(nullptr, capacity, PROT_READ | PROT_WRITE,
                            MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        return memory == MAP_FAILED ? nullptr : static_cast<uint8_t*>(memory);
    }
    return static_cast<uint8_t*>(std::aligned_alloc(kAlignmentBytes, capacity));
}

void deallocate(uint8_t* data, uint64_t capacity) {
    if (capacity >= kMappedBytesMin) {
        munmap(data, capacity);
    } else {
        std::free(data);
    }
}

// Per-thread free lists, one per size class. The free buffer's first bytes link the list.
class BufferPool {
public:
    ~BufferPool() {
        for (uint32_t i = 0; i < kClassCount; ++i) {
            while (heads_[i] != nullptr) {
                FreeBuffer* buffer = heads_[i];
                heads_[i] = buffer->next;
                deallocate(reinterpret_cast<uint8_t*>(buffer), uint64_t{1}
                                                                   << (i + kSmallestClassShift));
            }
        }
    }

    uint8_t* take(uint64_t capacity) {
        uint32_t index = class_index(capacity);
        FreeBuffer* buffer = heads_[index];
        if (buffer == nullptr) return allocate(capacity);
        heads_[index] = buffer->next;
        --counts_[index];
        cached_bytes_ -= capacity;
        return reinterpret_cast<uint8_t*>(buffer);
    }

    void give_back(uint8_t* data, uint64_t capacity) {
        uint32_t index = class_index(capacity);
        if (cached_bytes_ + capacity > kCachedBytesMax || counts_[index] >= kCachedPerClassMax) {
            deallocate(data, capacity);
            return;
        }
        auto* buffer = reinterpret_cast<FreeBuffer*>(data);
        buffer->next = heads_[index];
        heads_[index] = buffer;
        ++counts_[index];
        cached_bytes_ += capacity;
    }

private:
    struct FreeBuffer {
        FreeBuffer* next;
    };
    FreeBuffer* heads_[kClassCount] = {};
    uint32_t counts_[kClassCount] = {};
    uint64_t cached_bytes_ = 0;
};

BufferPool& thread_pool() {
    thread_local BufferPool pool;
    return pool;
}

}  // namespace

bool BufferBudget::try_acquire_unfair(uint64_t bytes) {
    uint64_t available = available_.load();
    while (available >= bytes) {
        if (available_.compare_exchange_weak(available, available - bytes)) return true;
    }
    return false;
}

bool BufferBudget::try_acquire(uint64_t bytes) {
    // Queued waiters go first, so that a stream of small requests cannot starve a large one.
    if (waiter_count_.load() != 0) return false;
    return try_acquire_unfair(bytes);
}

bool BufferBudget::Awaiter::await_suspend(std::coroutine_handle<> handle) {
    std::lock_guard lock(budget_->mutex_);
    // Count this waiter before the second attempt: release() adds bytes before it reads the
    // count, so either this attempt finds the bytes or release() finds the waiter.
    budget_->waiter_count_.fetch_add(1);
    if (budget_->head_ == nullptr && budget_->try_acquire_unfair(waiter_.bytes)) {
        budget_->waiter_count_.fetch_sub(1);
        return false;
    }
    waiter_.ring = Ring::current();
    assert(waiter_.ring != nullptr);
    waiter_.handle = handle;
    waiter_.next = nullptr;
    if (budget_->tail_ != nullptr) {
        budget_->tail_->next = &waiter_;
    } else {
        budget_->head_ = &waiter_;
    }
    budget_->tail_ = &waiter_;
    return true;
}

void BufferBudget::release(uint64_t bytes) {
    available_.fetch_add(bytes);
    if (waiter_count_.load() == 0) return;
    std::lock_guard lock(mutex_);
    while (head_ != nullptr && try_acquire_unfair(head_->bytes)) {
        Waiter* waiter = head_;
        head_ = waiter->next;
        if (head_ == nullptr) tail_ = nullptr;
        waiter_count_.fetch_sub(1);
        // Resume on the waiter's own ring: its connection state belongs to that thread.
        waiter->ring->post(waiter->handle);
    }
}

RequestBuffer& RequestBuffer::operator=(RequestBuffer&& other) noexcept {
    if (this != &other) {
        reset();
        data_ = std::exchange(other.data_, nullptr);
        capacity_ = std::exchange(other.capacity_, 0);
        budget_ = std::exchange(other.budget_, nullptr);
    }
    return *this;
}

uint64_t RequestBuffer::capacity_for(uint32_t bytes) {
    assert(bytes <= kPayloadBytesMax);
    return std::max<uint64_t>(std::bit_ceil(uint64_t{bytes}), uint64_t{1} << kSmallestClassShift);
}

RequestBuffer RequestBuffer::take(uint32_t bytes, BufferBudget* budget) {
    RequestBuffer buffer;
    buffer.capacity_ = capacity_for(bytes);
    buffer.data_ = thread_pool().take(buffer.capacity_);
    if (buffer.data_ == nullptr) {
        if (budget != nullptr) budget->release(buffer.capacity_);
        buffer.capacity_ = 0;
        return buffer;
    }
    buffer.budget_ = budget;
    return buffer;
}

void RequestBuffer::detach_budget() {
    if (budget_ != nullptr) budget_->release(capacity_);
    budget_ = nullptr;
}

void RequestBuffer::reset() {
    if (data_ == nullptr) return;
    thread_pool().give_back(data_, capacity_);
    if (budget_ != nullptr) budget_->release(capacity_);
    data_ = nullptr;
    capacity_ = 0;
    budget_ = nullptr;
}

}  // namespace ecraid::nbd
