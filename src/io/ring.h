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
//   - an op of a device with a time limit (DeviceIo) that passes it fails with -ETIMEDOUT.
//     An op of a device that has failed meanwhile fails with -ECANCELED. Both happen whether
//     or not the kernel has returned the op (see "Watched ops" below).
// In-flight operations are capped at the completion queue size, so completions never
// overflow; ops beyond the cap wait in a backlog and are submitted as others complete.
//
// Watched ops: a read, write, fdatasync or fallocate whose IoOp::device has a time limit.
// The kernel may hold such an op for good (a hung FUSE server, a dead disk) and cancelling
// it may not help, so the ring does not wait for it: about every kWatchIntervalNs it checks
// each watched op in flight. An op fails with -ETIMEDOUT when it has been in flight for the
// time limit and its device has completed no op in that time either (the device hangs). An op
// that waits longer only because many ops queue on a slow device is left alone. The ring
// then calls the device's on_time_limit, asks the kernel to cancel the op, and completes it
// to its waiter. The kernel still owns the op's buffer until the op's own completion
// arrives, so the caller must not free or reuse that memory: it hands it to
// retain_until_returned(), which keeps it until then.
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

// The I/O settings of one device: issue mode, time limit and failure flag. Every op of the
// device points to it, from any worker's ring, so it must outlive them.
struct DeviceIo {
    // Hand reads and writes to the kernel's worker threads (IOSQE_ASYNC) instead of trying
    // them inline in io_uring_enter. Needed where an inline attempt can block the calling
    // thread: FUSE waits there for a free request slot even for a nonblocking O_DIRECT read,
    // which would stop the whole ring while a FUSE server hangs.
    bool issue_async = false;
    // Largest read or write made with pread or pwrite on the ring's own thread, 0 for none.
    // Set for files in memory (tmpfs), because io_uring hands each of their transfers to a
    // kernel worker thread, and for small transfers that hand-off costs more than the copy.
    uint32_t inline_copy_max_bytes = 0;
    // Time limit of one read, write, fdatasync or fallocate, 0 for none.
    uint64_t time_limit_ns = 0;
    // Called on the ring's thread when an op passes the time limit, before the op fails.
    void (*on_time_limit)(void* context) = nullptr;
    void* context = nullptr;
    // Set once the device has failed: its ops in flight fail with -ECANCELED at the ring's
    // next check, and new ones fail at once without being submitted. May be null.
    const std::atomic<bool>* failed = nullptr;
    // CLOCK_MONOTONIC time of the latest completion of an op of this device, in nanoseconds.
    std::atomic<uint64_t> last_completion_ns{0};
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
    __kernel_timespec timeout{};  // kTimeout's duration.
    DeviceIo* device = nullptr;   // The device's issue mode and time limit, or null.
    // Set when the ring completed the op without waiting for the kernel to return it (see
    // "Watched ops"): its buffer must go to Ring::retain_until_returned().
    bool abandoned = false;
    uint32_t watch_slot = UINT32_MAX;  // Ring bookkeeping for watched ops.
    uint32_t watch_generation = 0;
    IoWaiter* waiter = nullptr;
    IoOp* next_backlog = nullptr;
    // False keeps the op in io_uring even when its device copies small transfers inline, so
    // that the transfers of one large request are copied in parallel.
    bool may_copy_inline = true;
};

// Test hook: may rewrite a completion's result before the ring acts on it (clamp to a short
// transfer, turn into -EAGAIN). Returns the result to use, or kWithholdCompletion to act as
// if the kernel had not returned the op yet, until Ring::deliver_withheld_completions().
using CompletionFaultHook = int (*)(const IoOp& op, int result, void* context);
inline constexpr int kWithholdCompletion = INT32_MIN;

struct RingStats {
    uint64_t submitted = 0;
    uint64_t completed = 0;
    uint64_t resubmitted_short = 0;
    uint64_t resubmitted_again = 0;
    uint64_t backlogged = 0;
    uint64_t in_flight = 0;
    uint64_t timed_out = 0;  // Watched ops failed with -ETIMEDOUT.
    uint64_t abandoned = 0;  // Watched ops completed before the kernel returned them.
    uint64_t abandoned_in_kernel = 0;  // Abandoned ops the kernel has not returned yet.
    uint64_t copied_inline = 0;  // Reads and writes made on the ring's thread.
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
    // Counts a coroutine of this ring that waits for other rings to post it back (see
    // CrossRingWaitGroup). While any such wait lasts, run() does not return after stop().
    // Call both on the ring's thread.
    void begin_remote_wait() { ++remote_waits_; }
    void end_remote_wait() { --remote_waits_; }

    // Awaitable single operations. Each returns the byte count (or 0) on success and -errno
    // on failure.
    Task<int> read(int fd, void* buffer, uint32_t length, uint64_t offset);
    Task<int> write(int fd, const void* buffer, uint32_t length, uint64_t offset);
    // `device` (optional) sets the issue mode and time limit; these ops use no buffer, so an
    // abandoned one needs nothing retained.
    Task<int> fdatasync(int fd, DeviceIo* device = nullptr);
    Task<int> fallocate(int fd, int mode, uint64_t offset, uint64_t length,
                        DeviceIo* device = nullptr);
    Task<int> recv(int fd, void* buffer, uint32_t length);
    Task<int> sendmsg(int fd, iovec* iov, uint32_t iov_count);
    Task<int> accept(int fd);
    Task<int> sleep_ns(uint64_t nanoseconds);
    Task<int> poll_in(int fd);

    // Submits a prepared op that reports to `waiter` (see IoBatch).
    void submit(IoOp* op);

    // Keeps `memory` alive until the kernel returns `op`, which the ring abandoned (see
    // "Watched ops"): the kernel may still read from or write into it. Frees it at once when
    // the kernel has returned the op already. Does nothing for an op that was not abandoned.
    void retain_until_returned(const IoOp& op, std::shared_ptr<void> memory);

    // How often the ring checks its watched ops.
    static constexpr uint64_t kWatchIntervalNs = 50'000'000;

    void set_fault_hook(CompletionFaultHook hook, void* context) {
        fault_hook_ = hook;
        fault_context_ = context;
    }
    // Test hook: hands up to `count` completions withheld by the fault hook to the ring,
    // oldest first, as if the kernel returned them now. Call it on the ring's thread.
    void deliver_withheld_completions(size_t count = SIZE_MAX);
    const RingStats& stats() const { return stats_; }
    uint32_t completion_capacity() const { return cq_entries_; }

private:
    Ring() = default;
    bool prepare(IoOp* op);
    void handle_completion(uint64_t user_data, int result, bool apply_fault_hook);
    bool copy_inline(IoOp* op);
    void complete_cqe(IoOp* op, int result);
    uint32_t take_watch_slot(IoOp* op);
    void free_watch_slot(uint32_t slot);
    void check_watched_ops();
    void abandon(uint32_t slot, int result);
    static uint64_t monotonic_ns();
    void finish(IoOp* op);
    void drain_backlog();
    void defer(IoOp* op);
    void resubmit_deferred();
    // Abandoned ops and cancel requests do not count: no coroutine waits for them, and a
    // hung device may never return them.
    bool idle() const {
        return in_flight_ == detached_in_flight_ && backlog_head_ == nullptr &&
               deferred_head_ == nullptr && remote_waits_ == 0;
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
    // One slot per watched op in the kernel. The op's completion carries its slot, not its
    // address, because an abandoned op may be freed long before the kernel returns it.
    struct WatchSlot {
        IoOp* op = nullptr;  // Null once abandoned, until the kernel returns the op.
        uint64_t submitted_ns = 0;
        std::shared_ptr<void> retained;  // Memory an abandoned op may still use.
        uint32_t generation = 0;  // Bumped on every reuse, to match retain requests.
        bool in_kernel = false;
    };
    std::vector<WatchSlot> watch_slots_;
    std::vector<uint32_t> free_watch_slots_;
    uint32_t watched_in_flight_ = 0;   // Watched ops that a caller still waits for.
    uint32_t detached_in_flight_ = 0;  // Abandoned ops and cancel requests in the kernel.
    uint32_t remote_waits_ = 0;        // See begin_remote_wait().
    uint64_t now_ns_ = 0;              // CLOCK_MONOTONIC, read once per loop turn.
    uint64_t next_watch_check_ns_ = 0;
    struct WithheldCompletion {
        uint64_t user_data;
        int result;
    };
    std::vector<WithheldCompletion> withheld_;
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
    op->abandoned = false;
    op->may_copy_inline = true;
}

}  // namespace ecraid
