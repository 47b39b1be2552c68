// SPDX-License-Identifier: Apache-2.0
// Request buffers: 4 KiB-aligned data buffers for READ and WRITE payloads, reused from a
// per-thread pool and counted against a byte budget shared by every connection of a server.
//
// The budget bounds the memory that clients can make the server hold: 64 connections that
// each announce a 32 MiB write get buffers only while the budget lasts, and the rest wait
// (without reading their sockets) until buffers are returned.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <utility>

namespace ecraid {
class Ring;
}

namespace ecraid::nbd {

// Bytes of request buffers in use across threads. Coroutines that find the budget exhausted
// wait in FIFO order and are resumed on their own ring when enough bytes are released.
class BufferBudget {
public:
    explicit BufferBudget(uint64_t capacity_bytes) : available_(capacity_bytes) {}
    BufferBudget(const BufferBudget&) = delete;
    BufferBudget& operator=(const BufferBudget&) = delete;

    struct Waiter {
        uint64_t bytes = 0;
        Ring* ring = nullptr;
        std::coroutine_handle<> handle;
        Waiter* next = nullptr;
    };

    class Awaiter {
    public:
        Awaiter(BufferBudget* budget, uint64_t bytes) : budget_(budget) { waiter_.bytes = bytes; }
        bool await_ready() { return budget_->try_acquire(waiter_.bytes); }
        bool await_suspend(std::coroutine_handle<> handle);
        void await_resume() const noexcept {}

    private:
        BufferBudget* budget_;
        Waiter waiter_;
    };

    // Waits until `bytes` are available and takes them. Requires a worker thread (a Ring).
    Awaiter acquire(uint64_t bytes) { return Awaiter(this, bytes); }
    void release(uint64_t bytes);
    uint64_t available_bytes() const { return available_.load(std::memory_order_relaxed); }

private:
    bool try_acquire(uint64_t bytes);
    bool try_acquire_unfair(uint64_t bytes);

    std::atomic<uint64_t> available_;
    std::atomic<uint32_t> waiter_count_{0};
    std::mutex mutex_;
    Waiter* head_ = nullptr;  // Guarded by mutex_.
    Waiter* tail_ = nullptr;  // Guarded by mutex_.
};

// An owned buffer of `capacity()` bytes, 4 KiB-aligned, returned to the calling thread's pool
// and to its budget when destroyed. It must be destroyed on the thread that took it.
class RequestBuffer {
public:
    RequestBuffer() = default;
    RequestBuffer(RequestBuffer&& other) noexcept
        : data_(std::exchange(other.data_, nullptr)),
          capacity_(std::exchange(other.capacity_, 0)),
          budget_(std::exchange(other.budget_, nullptr)) {}
    RequestBuffer& operator=(RequestBuffer&& other) noexcept;
    RequestBuffer(const RequestBuffer&) = delete;
    RequestBuffer& operator=(const RequestBuffer&) = delete;
    ~RequestBuffer() { reset(); }

    // Returns the pool's size class for a request of `bytes` (a power of two from 4 KiB).
    static uint64_t capacity_for(uint32_t bytes);
    // Takes a buffer of capacity_for(bytes) from the pool. The caller must already hold that
    // many bytes of `budget`; the buffer gives them back when it is destroyed. Returns an
    // empty buffer, with the bytes given back, when memory cannot be allocated.
    static RequestBuffer take(uint32_t bytes, BufferBudget* budget);

    uint8_t* data() const { return data_; }
    uint64_t capacity() const { return capacity_; }
    explicit operator bool() const { return data_ != nullptr; }
    // Gives the buffer's bytes back to its budget now, for a buffer that may outlive the
    // budget's owner (a read buffer the ring keeps for a hung member).
    void detach_budget();
    void reset();

private:
    uint8_t* data_ = nullptr;
    uint64_t capacity_ = 0;
    BufferBudget* budget_ = nullptr;
};

}  // namespace ecraid::nbd
