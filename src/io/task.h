// SPDX-License-Identifier: Apache-2.0
// Task<T>: a small lazy coroutine type for request handling over io_uring.
//
// A Task starts when it is awaited and resumes its awaiter when it finishes (symmetric
// transfer, so long chains do not grow the stack). spawn() runs a Task<void> to completion
// without an awaiter. Tasks never migrate between threads by themselves: a coroutine resumes
// on the thread whose ring completed its I/O, which is the thread that started it.
//
// Coroutine frames come from a per-thread pool of size classes, so the request hot path does
// not call malloc once the pool is warm. Exceptions are not used: an escaping one terminates.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <new>
#include <optional>
#include <utility>

namespace ecraid {
namespace detail {

// Per-thread free lists of coroutine frames in 256-byte size classes up to 8 KiB. Larger
// frames go to operator new. A frame freed on another thread joins that thread's list, which
// is safe because each list is only touched by its own thread.
class FramePool {
public:
    static void* allocate(size_t bytes);
    static void release(void* frame, size_t bytes) noexcept;

private:
    // Frames up to 8 KiB come in 256-byte steps. Larger ones, from coroutines that keep arrays
    // of I/O ops in their frame, come in powers of two up to 256 KiB, and beyond that are not
    // cached.
    static constexpr size_t kStepBytes = 256;
    static constexpr size_t kStepClasses = 32;
    static constexpr size_t kLargeClasses = 5;
    static constexpr size_t kClassCount = kStepClasses + kLargeClasses;
    // Each class keeps at most this many bytes of free frames per thread.
    static constexpr size_t kCachedBytesPerClass = 2u << 20;
    struct FreeFrame {
        FreeFrame* next;
    };
    struct Lists {
        FreeFrame* head[kClassCount] = {};
        size_t count[kClassCount] = {};
        ~Lists();
    };
    static Lists& lists();
    // The class of a frame of `bytes` bytes, or kClassCount when it is too large to cache.
    static size_t class_of(size_t bytes) {
        size_t step = (bytes + kStepBytes - 1) / kStepBytes;
        if (step < kStepClasses) return step;
        size_t size_class = kStepClasses;
        for (size_t limit = kStepBytes * kStepClasses * 2; limit < bytes; limit *= 2) ++size_class;
        return size_class;
    }
    static size_t class_bytes(size_t size_class) {
        if (size_class < kStepClasses) return size_class * kStepBytes;
        return (kStepBytes * kStepClasses) << (size_class - kStepClasses + 1);
    }
};

inline FramePool::Lists& FramePool::lists() {
    thread_local Lists lists;
    return lists;
}

inline FramePool::Lists::~Lists() {
    for (size_t i = 0; i < kClassCount; ++i) {
        while (head[i] != nullptr) {
            FreeFrame* frame = head[i];
            head[i] = frame->next;
            ::operator delete(frame, std::align_val_t{64});
        }
    }
}

inline void* FramePool::allocate(size_t bytes) {
    size_t size_class = class_of(bytes);
    if (size_class >= kClassCount) return ::operator new(bytes, std::align_val_t{64});
    Lists& pool = lists();
    if (FreeFrame* frame = pool.head[size_class]) {
        pool.head[size_class] = frame->next;
        --pool.count[size_class];
        return frame;
    }
    return ::operator new(class_bytes(size_class), std::align_val_t{64});
}

inline void FramePool::release(void* frame, size_t bytes) noexcept {
    size_t size_class = class_of(bytes);
    if (size_class >= kClassCount) {
        ::operator delete(frame, std::align_val_t{64});
        return;
    }
    Lists& pool = lists();
    if ((pool.count[size_class] + 1) * class_bytes(size_class) > kCachedBytesPerClass) {
        ::operator delete(frame, std::align_val_t{64});
        return;
    }
    auto* free_frame = static_cast<FreeFrame*>(frame);
    free_frame->next = pool.head[size_class];
    pool.head[size_class] = free_frame;
    ++pool.count[size_class];
}

struct PromiseBase {
    std::coroutine_handle<> continuation;

    static void* operator new(size_t bytes) { return FramePool::allocate(bytes); }
    static void operator delete(void* frame, size_t bytes) noexcept {
        FramePool::release(frame, bytes);
    }

    std::suspend_always initial_suspend() noexcept { return {}; }

    struct FinalAwaiter {
        bool await_ready() noexcept { return false; }
        template <typename Promise>
        std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> handle) noexcept {
            std::coroutine_handle<> next = handle.promise().continuation;
            return next ? next : std::noop_coroutine();
        }
        void await_resume() noexcept {}
    };
    FinalAwaiter final_suspend() noexcept { return {}; }
    void unhandled_exception() noexcept { std::terminate(); }
};

}  // namespace detail

template <typename T = void>
class [[nodiscard]] Task {
public:
    struct promise_type : detail::PromiseBase {
        std::optional<T> value;
        Task get_return_object() {
            return Task(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        template <typename U>
        void return_value(U&& result) {
            value.emplace(std::forward<U>(result));
        }
    };

    Task() = default;
    explicit Task(std::coroutine_handle<promise_type> handle) : handle_(handle) {}
    Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Task& operator=(Task&& other) noexcept {
        if (this != &other) {
            if (handle_) handle_.destroy();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() {
        if (handle_) handle_.destroy();
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
        handle_.promise().continuation = awaiter;
        return handle_;
    }
    T await_resume() { return std::move(*handle_.promise().value); }

private:
    std::coroutine_handle<promise_type> handle_;
};

template <>
class [[nodiscard]] Task<void> {
public:
    struct promise_type : detail::PromiseBase {
        Task get_return_object() {
            return Task(std::coroutine_handle<promise_type>::from_promise(*this));
        }
        void return_void() noexcept {}
    };

    Task() = default;
    explicit Task(std::coroutine_handle<promise_type> handle) : handle_(handle) {}
    Task(Task&& other) noexcept : handle_(std::exchange(other.handle_, nullptr)) {}
    Task& operator=(Task&& other) noexcept {
        if (this != &other) {
            if (handle_) handle_.destroy();
            handle_ = std::exchange(other.handle_, nullptr);
        }
        return *this;
    }
    Task(const Task&) = delete;
    Task& operator=(const Task&) = delete;
    ~Task() {
        if (handle_) handle_.destroy();
    }

    bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiter) noexcept {
        handle_.promise().continuation = awaiter;
        return handle_;
    }
    void await_resume() noexcept {}

private:
    std::coroutine_handle<promise_type> handle_;
};

namespace detail {

// A coroutine that owns itself: it starts at once and frees its frame when it ends.
struct Detached {
    struct promise_type {
        static void* operator new(size_t bytes) { return FramePool::allocate(bytes); }
        static void operator delete(void* frame, size_t bytes) noexcept {
            FramePool::release(frame, bytes);
        }
        Detached get_return_object() noexcept { return {}; }
        std::suspend_never initial_suspend() noexcept { return {}; }
        std::suspend_never final_suspend() noexcept { return {}; }
        void return_void() noexcept {}
        void unhandled_exception() noexcept { std::terminate(); }
    };
};

inline Detached run_detached(Task<void> task) { co_await std::move(task); }

}  // namespace detail

// Starts `task` now on the calling thread and lets it run to completion on its own.
inline void spawn(Task<void> task) { detail::run_detached(std::move(task)); }

// Counts outstanding child tasks and resumes one waiter when the count reaches zero.
// Single-threaded: every add, done and wait happens on the owning worker thread.
class WaitGroup {
public:
    void add(uint32_t count = 1) { pending_ += count; }
    void done() {
        if (--pending_ == 0 && waiter_) {
            std::coroutine_handle<> waiter = std::exchange(waiter_, nullptr);
            waiter.resume();
        }
    }
    uint32_t pending() const { return pending_; }

    struct Awaiter {
        WaitGroup* group;
        bool await_ready() const noexcept { return group->pending_ == 0; }
        void await_suspend(std::coroutine_handle<> handle) noexcept { group->waiter_ = handle; }
        void await_resume() const noexcept {}
    };
    Awaiter wait() { return Awaiter{this}; }

private:
    uint32_t pending_ = 0;
    std::coroutine_handle<> waiter_;
};

}  // namespace ecraid
