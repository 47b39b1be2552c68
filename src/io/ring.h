// SPDX-License-Identifier: Apache-2.0
// Ring: one io_uring instance and the event loop of one worker thread.
//
// Every I/O operation is an IoOp that lives in the awaiting coroutine's frame. The ring
// completes an op only when it is whole or has failed for good:
//   - a short read or write is resubmitted for the remainder (offset + done, length - done,
//     buffer + done) until complete;
//   - -EAGAIN and -EINTR are resubmitted after a 200 us pause, up to 1000 times;
//   - a read that reaches end of file before it is complete fails with -EIO (never zeros);
//   - a socket receive that sees end of stream completes with the bytes received so far;
//   - a read, write or fdatasync with a time limit that it exceeds fails with -ETIMEDOUT
//     (through a linked IORING_OP_LINK_TIMEOUT).
// In-flight operations are capped at the completion queue size, so completions never
// overflow; ops beyond the cap wait in a backlog and are submitted as others complete.
//
// Other threads hand work to a ring with post(); it wakes the ring through an eventfd.
#pragma once

#include <liburing.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "io/task.h"

namespace ecraid {

enum class IoKind : uint8_t {
    kRead,
    kWrite,
    kFdatasync,
    kFallocate,
    kRecv,
    kSendmsg,
    kAccept,
    kTimeout,
    kPollIn,
};

class Ring;

// Counts the ops a coroutine waits for and resumes it when the last one completes.
struct IoWaiter {
    std::coroutine_handle<> handle;
    uint32_t pending = 0;
};

struct IoOp {
    IoKind kind = IoKind::kRead;
    int fd = -1;
    uint8_t* buffer = nullptr;
    uint32_t length = 0;
    uint64_t offset = 0;
    uint32_t done = 0;        // Bytes transferred so far.
    int result = 0;           // Bytes on success, -errno on failure.
    int mode = 0;             // fallocate mode, or recv/send flags.
    uint32_t retries = 0;     // -EAGAIN retries so far.
    msghdr message{};         // kSendmsg: iovecs advance as bytes are sent.
    __kernel_timespec timeout{};  // kTimeout's duration, or the time limit below.
    // Time limit for a read, write or fdatasync, 0 for none. When it passes, the ring calls
    // on_time_limit(time_limit_context) at once, even if the kernel cannot cancel the op (a
    // hung FUSE or block device), and asks for the op to be cancelled; a cancelled op fails
    // with -ETIMEDOUT. The op itself still completes only when the kernel returns it.
    uint64_t time_limit_ns = 0;
    void (*on_time_limit)(void* context) = nullptr;
    void* time_limit_context = nullptr;
    uint32_t limit_slot = UINT32_MAX;  // Ring bookkeeping for the linked timeout.
    IoWaiter* waiter = nullptr;
    IoOp* next_backlog = nullptr;
};

// Test hook: may rewrite a completion's result before the ring acts on it (clamp to a short
// transfer, turn into -EAGAIN). Returns the result to use.
using CompletionFaultHook = int (*)(const IoOp& op, int result, void* context);

struct RingStats {
    uint64_t submitted = 0;
    uint64_t completed = 0;
    uint64_t resubmitted_short = 0;
    uint64_t resubmitted_again = 0;
    uint64_t backlogged = 0;
    uint64_t in_flight = 0;
};

class Ring {
public:
    // `entries` is the submission queue size; the completion queue is four times larger.
    static Result<std::unique_ptr<Ring>> create(uint32_t entries = 256);
    ~Ring();
    Ring(const Ring&) = delete;
    Ring& operator=(const Ring&) = delete;

    // The ring of the calling worker thread, or nullptr outside a worker.
    static Ring* current();

    // Runs the event loop on the calling thread until stop() is called and no work is left
    // that was posted before the stop.
    void run();
    // Thread-safe. Makes run() return after it has drained the posted work.
    void stop();
    // Thread-safe. Runs `function` on the ring's thread.
    void post(std::function<void()> function);
    // Thread-safe. Resumes `handle` on the ring's thread.
    void post(std::coroutine_handle<> handle);

    // Awaitable single operations. Each returns the byte count (or 0) on success and -errno
    // on failure.
    Task<int> read(int fd, void* buffer, uint32_t length, uint64_t offset);
    Task<int> write(int fd, const void* buffer, uint32_t length, uint64_t offset);
    Task<int> fdatasync(int fd);
    Task<int> fallocate(int fd, int mode, uint64_t offset, uint64_t length);
    Task<int> recv(int fd, void* buffer, uint32_t length);
    Task<int> sendmsg(int fd, iovec* iov, uint32_t iov_count);
    Task<int> accept(int fd);
    Task<int> sleep_ns(uint64_t nanoseconds);
    Task<int> poll_in(int fd);

    // Submits a prepared op that reports to `waiter` (see IoBatch).
    void submit(IoOp* op);

    void set_fault_hook(CompletionFaultHook hook, void* context) {
        fault_hook_ = hook;
        fault_context_ = context;
    }
    const RingStats& stats() const { return stats_; }
    uint32_t completion_capacity() const { return cq_entries_; }

private:
    Ring() = default;
    bool prepare(IoOp* op);
    void complete_cqe(IoOp* op, int result);
    void finish(IoOp* op);
    void drain_backlog();
    void defer(IoOp* op);
    void resubmit_deferred();
    bool idle() const {
        return in_flight_ == 0 && backlog_head_ == nullptr && deferred_head_ == nullptr;
    }
    void drain_posted();
    void arm_wakeup();
    Task<int> run_one(IoKind kind, int fd, uint8_t* buffer, uint32_t length, uint64_t offset,
                      int mode);

    io_uring ring_{};
    bool ring_ready_ = false;
    // Created with IORING_SETUP_R_DISABLED: run() enables it on the thread that drives it.
    bool needs_enable_ = false;
    uint32_t cq_entries_ = 0;
    uint32_t in_flight_ = 0;
    IoOp* backlog_head_ = nullptr;
    IoOp* backlog_tail_ = nullptr;
    IoOp* deferred_head_ = nullptr;  // Ops waiting out an -EAGAIN pause.
    // One slot per time-limited op in flight. The timeout's completion may arrive after the op
    // has completed and been freed, so it finds its op through a slot, never a pointer.
    struct LimitSlot {
        IoOp* op = nullptr;  // Null once the op has completed.
        void (*callback)(void*) = nullptr;
        void* context = nullptr;
        uint8_t pending = 0;  // Completions still expected: the op's and the timeout's.
    };
    std::vector<LimitSlot> limit_slots_;
    std::vector<uint32_t> free_limit_slots_;
    void release_limit_slot(uint32_t slot);
    std::vector<std::coroutine_handle<>> ready_;
    RingStats stats_;
    CompletionFaultHook fault_hook_ = nullptr;
    void* fault_context_ = nullptr;

    int wakeup_fd_ = -1;
    uint64_t wakeup_value_ = 0;
    bool wakeup_armed_ = false;
    std::mutex posted_mutex_;
    std::vector<std::function<void()>> posted_functions_;
    std::vector<std::coroutine_handle<>> posted_handles_;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> wakeup_pending_{false};
};

// Several ops submitted together, awaited as one: `co_await batch.wait()` resumes when all
// have completed. Each op's `result` then holds its outcome. The batch must outlive its ops'
// completions, which wait() guarantees when it is awaited before the batch goes away.
class IoBatch {
public:
    explicit IoBatch(Ring& ring) : ring_(ring) {}
    IoBatch(const IoBatch&) = delete;
    IoBatch& operator=(const IoBatch&) = delete;

    void add(IoOp* op) {
        op->waiter = &waiter_;
        ++waiter_.pending;
        ring_.submit(op);
    }

    struct Awaiter {
        IoWaiter* waiter;
        bool await_ready() const noexcept { return waiter->pending == 0; }
        void await_suspend(std::coroutine_handle<> handle) noexcept { waiter->handle = handle; }
        void await_resume() const noexcept {}
    };
    Awaiter wait() { return Awaiter{&waiter_}; }

private:
    Ring& ring_;
    IoWaiter waiter_;
};

// Fills an IoOp for a positioned read or write.
inline void prepare_rw(IoOp* op, IoKind kind, int fd, void* buffer, uint32_t length,
                       uint64_t offset) {
    op->kind = kind;
    op->fd = fd;
    op->buffer = static_cast<uint8_t*>(buffer);
    op->length = length;
    op->offset = offset;
    op->done = 0;
    op->result = 0;
    op->retries = 0;
}

}  // namespace ecraid
