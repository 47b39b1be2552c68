// SPDX-License-Identifier: Apache-2.0
#include "io/ring.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <ctime>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <utility>

#include <spdlog/spdlog.h>

namespace ecraid {
namespace {

thread_local Ring* current_ring = nullptr;

constexpr uint32_t kAgainRetriesMax = 1000;
constexpr uint64_t kWakeupUserData = 1;  // Never a valid IoOp address.
// Watched ops carry (slot << 3) | kWatchedOpTag; IoOp addresses have their low 3 bits clear.
constexpr uint64_t kWatchedOpTag = 2;
// Cancel requests for abandoned ops; their completions are only counted.
constexpr uint64_t kCancelUserData = 3;
constexpr uint32_t kCompletionBatch = 64;
constexpr long kAgainBackoffNs = 200 * 1000;

}  // namespace

Result<std::unique_ptr<Ring>> Ring::create(uint32_t entries) {
    std::unique_ptr<Ring> ring(new Ring());
    // Each ring is driven by the one worker thread that runs it, so completions can wait
    // until that thread asks for them (DEFER_TASKRUN) instead of interrupting it with an IPI
    // for every one. The ring starts disabled and run() enables it, which makes the worker,
    // not the thread that created the ring, its single issuer. Kernels before 6.1 lack these
    // flags; cooperative task running (5.19), then no flag at all, are the fallbacks.
    const unsigned flag_sets[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_R_DISABLED,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    io_uring_params params{};
    int result = -EINVAL;
    for (unsigned flags : flag_sets) {
        params = io_uring_params{};
        params.flags = IORING_SETUP_CQSIZE | flags;
        params.cq_entries = entries * 4;
        result = io_uring_queue_init_params(entries, &ring->ring_, &params);
        if (result != -EINVAL) {
            ring->needs_enable_ = (flags & IORING_SETUP_R_DISABLED) != 0;
            break;
        }
    }
    if (result < 0) {
        return Status::from_errno(result, "io_uring_queue_init with " + std::to_string(entries) +
                                              " entries failed (is io_uring disabled by "
                                              "kernel.io_uring_disabled?)");
    }
    ring->ring_ready_ = true;
    if ((params.features & IORING_FEAT_NODROP) == 0) {
        spdlog::warn("ring: kernel lacks IORING_FEAT_NODROP; in-flight I/O is capped at the "
                     "completion queue size");
    }
    ring->cq_entries_ = params.cq_entries;
    ring->wakeup_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ring->wakeup_fd_ < 0) return Status::from_errno(errno, "eventfd failed");
    ring->ready_.reserve(kCompletionBatch);
    return ring;
}

Ring::~Ring() {
    // The kernel may still write into the memory of abandoned ops that it has not returned,
    // even while the ring is torn down, so that memory is leaked, never freed.
    uint64_t leaked = 0;
    for (WatchSlot& slot : watch_slots_) {
        if (slot.in_kernel && slot.retained) {
            new std::shared_ptr<void>(std::move(slot.retained));
            ++leaked;
        }
    }
    if (detached_in_flight_ > 0) {
        spdlog::warn("ring: stopping with {} abandoned I/O operations still in the kernel; "
                     "leaking {} of their buffers",
                     stats_.abandoned_in_kernel, leaked);
    }
    if (ring_ready_) io_uring_queue_exit(&ring_);
    if (wakeup_fd_ >= 0) close(wakeup_fd_);
}

Ring* Ring::current() { return current_ring; }

void Ring::stop() {
    stopping_.store(true, std::memory_order_release);
    uint64_t one = 1;
    [[maybe_unused]] ssize_t written = ::write(wakeup_fd_, &one, sizeof(one));
}

void Ring::post(std::function<void()> function) {
    // Wake the ring while holding the lock. Once the ring can take the work, it may finish it
    // and be destroyed, so post() must not touch the ring after the unlock.
    std::lock_guard lock(posted_mutex_);
    posted_functions_.push_back(std::move(function));
    if (!wakeup_pending_.exchange(true, std::memory_order_acq_rel)) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t written = ::write(wakeup_fd_, &one, sizeof(one));
    }
}

void Ring::post(std::coroutine_handle<> handle) {
    // Wakes the ring under the lock, for the reason given in the other overload.
    std::lock_guard lock(posted_mutex_);
    posted_handles_.push_back(handle);
    if (!wakeup_pending_.exchange(true, std::memory_order_acq_rel)) {
        uint64_t one = 1;
        [[maybe_unused]] ssize_t written = ::write(wakeup_fd_, &one, sizeof(one));
    }
}

void Ring::drain_posted() {
    if (!wakeup_pending_.load(std::memory_order_acquire)) return;
    std::vector<std::function<void()>> functions;
    std::vector<std::coroutine_handle<>> handles;
    wakeup_pending_.store(false, std::memory_order_release);
    {
        std::lock_guard lock(posted_mutex_);
        functions.swap(posted_functions_);
        handles.swap(posted_handles_);
    }
    for (auto& function : functions) function();
    for (auto handle : handles) handle.resume();
}

void Ring::arm_wakeup() {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) {
        io_uring_submit(&ring_);
        sqe = io_uring_get_sqe(&ring_);
    }
    assert(sqe != nullptr);
    io_uring_prep_read(sqe, wakeup_fd_, &wakeup_value_, sizeof(wakeup_value_), 0);
    io_uring_sqe_set_data64(sqe, kWakeupUserData);
    wakeup_armed_ = true;
}

void Ring::run() {
    assert(current_ring == nullptr);
    current_ring = this;
    if (needs_enable_) {
        // liburing 2.3 declares io_uring_enable_rings() but does not export it.
        long enabled = syscall(__NR_io_uring_register, ring_.ring_fd,
                               IORING_REGISTER_ENABLE_RINGS, nullptr, 0);
        if (enabled < 0) {
            spdlog::critical("ring: enabling the ring failed: {}", strerror(errno));
            std::terminate();
        }
        needs_enable_ = false;
    }
    // Ops of a hung device can each hold one of the kernel's worker threads (see
    // DeviceIo::issue_async). Allow as many workers for files and block devices as ops fit in
    // flight, so that those ops never leave the other devices' ops queued behind them. The
    // kernel's default is 4 per CPU.
    unsigned worker_limits[2] = {cq_entries_, 0};
    int limited = io_uring_register_iowq_max_workers(&ring_, worker_limits);
    if (limited < 0) {
        spdlog::warn("ring: raising the io_uring worker limit failed: {}", strerror(-limited));
    }
    arm_wakeup();
    io_uring_cqe* cqes[kCompletionBatch];
    for (;;) {
        now_ns_ = monotonic_ns();
        drain_posted();
        if (stopping_.load(std::memory_order_acquire) && idle()) {
            // Handle anything posted between the drain and the check before leaving.
            wakeup_pending_.store(true, std::memory_order_release);
            drain_posted();
            if (idle()) break;
        }
        // Wake up for ops that wait out an -EAGAIN pause (so they do not spin) and for the
        // next check of watched ops.
        uint64_t wait_ns = UINT64_MAX;
        if (deferred_head_ != nullptr) wait_ns = kAgainBackoffNs;
        if (watched_in_flight_ > 0) {
            wait_ns = std::min(wait_ns, next_watch_check_ns_ > now_ns_
                                            ? next_watch_check_ns_ - now_ns_
                                            : uint64_t(0));
        }
        int result;
        if (wait_ns != UINT64_MAX) {
            __kernel_timespec pause{.tv_sec = int64_t(wait_ns / 1'000'000'000ull),
                                    .tv_nsec = int64_t(wait_ns % 1'000'000'000ull)};
            io_uring_cqe* ignored = nullptr;
            result = io_uring_submit_and_wait_timeout(&ring_, &ignored, 1, &pause, nullptr);
            if (result == -ETIME) result = 0;
        } else {
            result = io_uring_submit_and_wait(&ring_, 1);
        }
        now_ns_ = monotonic_ns();
        if (deferred_head_ != nullptr) resubmit_deferred();
        if (result < 0 && result != -EINTR && result != -EAGAIN && result != -EBUSY) {
            spdlog::critical("ring: io_uring_submit_and_wait failed: {}", strerror(-result));
            std::terminate();
        }
        unsigned count = io_uring_peek_batch_cqe(&ring_, cqes, kCompletionBatch);
        // Copy what is needed from each entry before handing the slots back to the kernel.
        uint64_t user_data[kCompletionBatch];
        int results[kCompletionBatch];
        for (unsigned i = 0; i < count; ++i) {
            user_data[i] = cqes[i]->user_data;
            results[i] = cqes[i]->res;
        }
        io_uring_cq_advance(&ring_, count);
        for (unsigned i = 0; i < count; ++i) handle_completion(user_data[i], results[i], true);
        if (watched_in_flight_ > 0 && now_ns_ >= next_watch_check_ns_) check_watched_ops();
        drain_backlog();
        // Resumed coroutines only submit; completions are handled above, so ready_ does not
        // grow while it is walked. The index loop stays valid even if it did.
        for (size_t i = 0; i < ready_.size(); ++i) ready_[i].resume();
        ready_.clear();
    }
    current_ring = nullptr;
}

bool Ring::prepare(IoOp* op) {
    if (io_uring_sq_space_left(&ring_) == 0) io_uring_submit(&ring_);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe == nullptr) return false;
    uint8_t* buffer = op->buffer + op->done;
    uint32_t remaining = op->length - op->done;
    bool device_io = false;
    switch (op->kind) {
        case IoKind::kRead:
            io_uring_prep_read(sqe, op->fd, buffer, remaining, op->offset + op->done);
            device_io = true;
            break;
        case IoKind::kWrite:
            io_uring_prep_write(sqe, op->fd, buffer, remaining, op->offset + op->done);
            device_io = true;
            break;
        case IoKind::kFdatasync:
            io_uring_prep_fsync(sqe, op->fd, IORING_FSYNC_DATASYNC);
            device_io = true;
            break;
        case IoKind::kFallocate:
            io_uring_prep_fallocate(sqe, op->fd, op->mode, op->offset, op->length);
            device_io = true;
            break;
        case IoKind::kRecv:
            io_uring_prep_recv(sqe, op->fd, buffer, remaining, op->mode);
            break;
        case IoKind::kSendmsg:
            io_uring_prep_sendmsg(sqe, op->fd, &op->message, MSG_NOSIGNAL);
            break;
        case IoKind::kAccept:
            io_uring_prep_accept(sqe, op->fd, nullptr, nullptr, SOCK_CLOEXEC);
            break;
        case IoKind::kTimeout:
            io_uring_prep_timeout(sqe, &op->timeout, 0, 0);
            break;
        case IoKind::kPollIn:
            io_uring_prep_poll_add(sqe, op->fd, POLLIN);
            break;
    }
    DeviceIo* device = device_io ? op->device : nullptr;
    if (device != nullptr && device->issue_async) sqe->flags |= IOSQE_ASYNC;
    if (device != nullptr && device->time_limit_ns > 0) {
        uint32_t slot = take_watch_slot(op);
        io_uring_sqe_set_data64(sqe, (uint64_t(slot) << 3) | kWatchedOpTag);
    } else {
        io_uring_sqe_set_data(sqe, op);
    }
    ++in_flight_;
    ++stats_.submitted;
    stats_.in_flight = in_flight_;
    return true;
}

void Ring::submit(IoOp* op) {
    if (op->device != nullptr && op->device->failed != nullptr &&
        op->device->failed->load(std::memory_order_acquire)) {
        // The device failed and may hang, so its ops are not waited for.
        op->result = -ECANCELED;
        finish(op);
        return;
    }
    if (copy_inline(op)) return;
    // Keep room for the wakeup read and a cancel request so completions never exceed the
    // queue.
    if (in_flight_ + 2 < cq_entries_ && backlog_head_ == nullptr && prepare(op)) return;
    ++stats_.backlogged;
    op->next_backlog = nullptr;
    if (backlog_tail_ != nullptr) {
        backlog_tail_->next_backlog = op;
    } else {
        backlog_head_ = op;
    }
    backlog_tail_ = op;
}

bool Ring::copy_inline(IoOp* op) {
    if (op->device == nullptr || !op->may_copy_inline ||
        op->length - op->done > op->device->inline_copy_max_bytes) {
        return false;
    }
    // A test's fault hook applies only to completions from the kernel, so with a hook set
    // every op goes through the queue.
    if (fault_hook_ != nullptr) return false;
    ssize_t moved;
    uint8_t* buffer = op->buffer + op->done;
    uint32_t remaining = op->length - op->done;
    uint64_t offset = op->offset + op->done;
    if (op->kind == IoKind::kRead) {
        moved = ::pread(op->fd, buffer, remaining, off_t(offset));
    } else if (op->kind == IoKind::kWrite) {
        moved = ::pwrite(op->fd, buffer, remaining, off_t(offset));
    } else {
        return false;
    }
    int result = moved < 0 ? -errno : int(moved);
    ++stats_.submitted;
    ++stats_.copied_inline;
    // Count the op as in flight for complete_cqe, which retries short transfers, -EAGAIN and
    // -EINTR, and turns end of file into -EIO, as for the kernel's completions.
    ++in_flight_;
    // The watchdog judges a device by its latest completion, and this is one.
    op->device->last_completion_ns.store(now_ns_, std::memory_order_relaxed);
    complete_cqe(op, result);
    return true;
}

uint64_t Ring::monotonic_ns() {
    timespec now{};
    clock_gettime(CLOCK_MONOTONIC, &now);
    return uint64_t(now.tv_sec) * 1'000'000'000ull + uint64_t(now.tv_nsec);
}

uint32_t Ring::take_watch_slot(IoOp* op) {
    uint32_t slot;
    if (!free_watch_slots_.empty()) {
        slot = free_watch_slots_.back();
        free_watch_slots_.pop_back();
    } else {
        slot = uint32_t(watch_slots_.size());
        watch_slots_.emplace_back();
    }
    WatchSlot& watch = watch_slots_[slot];
    watch.op = op;
    watch.submitted_ns = now_ns_;
    watch.in_kernel = true;
    if (watched_in_flight_++ == 0) next_watch_check_ns_ = now_ns_ + kWatchIntervalNs;
    return slot;
}

void Ring::free_watch_slot(uint32_t slot) {
    WatchSlot& watch = watch_slots_[slot];
    watch.op = nullptr;
    watch.in_kernel = false;
    watch.retained.reset();
    ++watch.generation;
    free_watch_slots_.push_back(slot);
}

void Ring::handle_completion(uint64_t user_data, int result, bool apply_fault_hook) {
    if (user_data == kWakeupUserData) {
        wakeup_armed_ = false;
        arm_wakeup();
        return;
    }
    if (user_data == kCancelUserData) {
        --in_flight_;
        --detached_in_flight_;
        return;
    }
    bool watched = (user_data & 7) == kWatchedOpTag;
    uint32_t slot = uint32_t(user_data >> 3);
    IoOp* op = watched ? watch_slots_[slot].op : reinterpret_cast<IoOp*>(user_data);
    if (op == nullptr) {
        // The kernel returned an op that the ring abandoned: its memory may go now.
        --in_flight_;
        --detached_in_flight_;
        --stats_.abandoned_in_kernel;
        stats_.in_flight = in_flight_;
        free_watch_slot(slot);
        return;
    }
    if (apply_fault_hook && fault_hook_ != nullptr) {
        int rewritten = fault_hook_(*op, result, fault_context_);
        if (rewritten == kWithholdCompletion) {
            withheld_.push_back(WithheldCompletion{user_data, result});
            return;
        }
        result = rewritten;
    }
    if (watched) {
        // Record progress for the device's watchdog, at most once a millisecond per device.
        // Rings race on this load and store, so the value may lag a concurrent completion.
        DeviceIo& device = *op->device;
        if (now_ns_ > device.last_completion_ns.load(std::memory_order_relaxed) + 1'000'000) {
            device.last_completion_ns.store(now_ns_, std::memory_order_relaxed);
        }
        free_watch_slot(slot);
        --watched_in_flight_;
    }
    complete_cqe(op, result);
}

void Ring::deliver_withheld_completions(size_t count) {
    count = std::min(count, withheld_.size());
    std::vector<WithheldCompletion> withheld(withheld_.begin(), withheld_.begin() + count);
    withheld_.erase(withheld_.begin(), withheld_.begin() + count);
    for (const WithheldCompletion& completion : withheld) {
        // The fault hook saw the real result; hand the op back with it unchanged.
        handle_completion(completion.user_data, completion.result, false);
    }
}

void Ring::check_watched_ops() {
    next_watch_check_ns_ = now_ns_ + kWatchIntervalNs;
    // First the ops past their time limit: failing their device makes the second pass drop
    // that device's other ops at once.
    for (uint32_t slot = 0; slot < watch_slots_.size(); ++slot) {
        WatchSlot& watch = watch_slots_[slot];
        IoOp* op = watch.op;
        if (op == nullptr) continue;
        const DeviceIo& device = *op->device;
        uint64_t limit = device.time_limit_ns;
        // Ops of a device that failed meanwhile are the second pass's.
        if (device.failed != nullptr && device.failed->load(std::memory_order_acquire)) continue;
        if (now_ns_ - watch.submitted_ns < limit) continue;
        // NOTE: an op that stays stuck while its device keeps completing other ops is not
        // timed out. FUSE and io-wq complete a slow device's queue out of order, so "later
        // ops overtook it" does not tell a stuck op from a queued one.
        uint64_t idle_ns = now_ns_ - device.last_completion_ns.load(std::memory_order_relaxed);
        if (idle_ns < limit) continue;  // Slow, not hung: the device completes other ops.
        spdlog::warn("ring: I/O on fd {} timed out after {} ms, with no I/O of its device "
                     "completed in that time",
                     op->fd, (now_ns_ - watch.submitted_ns) / 1'000'000);
        ++stats_.timed_out;
        if (device.on_time_limit != nullptr) device.on_time_limit(device.context);
        abandon(slot, -ETIMEDOUT);
    }
    for (uint32_t slot = 0; slot < watch_slots_.size(); ++slot) {
        IoOp* op = watch_slots_[slot].op;
        if (op == nullptr || op->device->failed == nullptr) continue;
        if (op->device->failed->load(std::memory_order_acquire)) abandon(slot, -ECANCELED);
    }
}

void Ring::abandon(uint32_t slot, int result) {
    WatchSlot& watch = watch_slots_[slot];
    IoOp* op = watch.op;
    watch.op = nullptr;
    --watched_in_flight_;
    ++detached_in_flight_;
    ++stats_.abandoned;
    ++stats_.abandoned_in_kernel;
    op->abandoned = true;
    op->watch_slot = slot;
    op->watch_generation = watch.generation;
    op->result = result;
    // Cancelling does not help an op that blocks in a FUSE server, but it frees one that is
    // still queued in the kernel. Its completion only needs counting.
    if (io_uring_sq_space_left(&ring_) == 0) io_uring_submit(&ring_);
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (sqe != nullptr) {
        io_uring_prep_cancel64(sqe, (uint64_t(slot) << 3) | kWatchedOpTag, 0);
        io_uring_sqe_set_data64(sqe, kCancelUserData);
        ++in_flight_;
        ++detached_in_flight_;
    }
    stats_.in_flight = in_flight_;
    finish(op);
}

void Ring::retain_until_returned(const IoOp& op, std::shared_ptr<void> memory) {
    if (!op.abandoned || op.watch_slot >= watch_slots_.size()) return;
    WatchSlot& watch = watch_slots_[op.watch_slot];
    if (watch.in_kernel && watch.op == nullptr && watch.generation == op.watch_generation) {
        watch.retained = std::move(memory);
    }
}

void Ring::defer(IoOp* op) {
    op->next_backlog = deferred_head_;
    deferred_head_ = op;
}

void Ring::resubmit_deferred() {
    IoOp* op = deferred_head_;
    deferred_head_ = nullptr;
    while (op != nullptr) {
        IoOp* next = op->next_backlog;
        submit(op);
        op = next;
    }
}

void Ring::drain_backlog() {
    while (backlog_head_ != nullptr && in_flight_ + 2 < cq_entries_) {
        IoOp* op = backlog_head_;
        if (!prepare(op)) break;
        backlog_head_ = op->next_backlog;
        if (backlog_head_ == nullptr) backlog_tail_ = nullptr;
    }
}

// Advances a sendmsg op's iovecs past `sent` bytes.
static void advance_message(msghdr* message, size_t sent) {
    while (sent > 0 && message->msg_iovlen > 0) {
        iovec* first = message->msg_iov;
        if (sent < first->iov_len) {
            first->iov_base = static_cast<uint8_t*>(first->iov_base) + sent;
            first->iov_len -= sent;
            return;
        }
        sent -= first->iov_len;
        ++message->msg_iov;
        --message->msg_iovlen;
    }
}

void Ring::complete_cqe(IoOp* op, int result) {
    assert(in_flight_ > 0);
    --in_flight_;
    ++stats_.completed;
    stats_.in_flight = in_flight_;
    if (result == -EAGAIN || result == -EINTR) {
        if (++op->retries <= kAgainRetriesMax) {
            ++stats_.resubmitted_again;
            defer(op);
            return;
        }
        op->result = result;
        finish(op);
        return;
    }
    switch (op->kind) {
        case IoKind::kRead:
        case IoKind::kWrite:
            if (result < 0) {
                op->result = result;
            } else if (result == 0) {
                // End of file before the transfer completed: a truncated member, never zeros.
                op->result = -EIO;
            } else {
                op->done += static_cast<uint32_t>(result);
                if (op->done < op->length) {
                    ++stats_.resubmitted_short;
                    submit(op);
                    return;
                }
                op->result = static_cast<int>(op->done);
            }
            break;
        case IoKind::kRecv:
            if (result <= 0) {
                op->result = result < 0 ? result : static_cast<int>(op->done);
            } else {
                op->done += static_cast<uint32_t>(result);
                if (op->done < op->length) {
                    submit(op);
                    return;
                }
                op->result = static_cast<int>(op->done);
            }
            break;
        case IoKind::kSendmsg:
            if (result < 0) {
                op->result = result;
            } else {
                op->done += static_cast<uint32_t>(result);
                advance_message(&op->message, static_cast<size_t>(result));
                if (op->done < op->length && result > 0) {
                    submit(op);
                    return;
                }
                op->result = op->done < op->length ? -EPIPE : static_cast<int>(op->done);
            }
            break;
        case IoKind::kTimeout:
            op->result = result == -ETIME ? 0 : result;
            break;
        default:
            op->result = result;
            break;
    }
    finish(op);
}

void Ring::finish(IoOp* op) {
    IoWaiter* waiter = op->waiter;
    assert(waiter != nullptr && waiter->pending > 0);
    if (--waiter->pending == 0 && waiter->handle) {
        ready_.push_back(std::exchange(waiter->handle, nullptr));
    }
}

Task<int> Ring::run_one(IoKind kind, int fd, uint8_t* buffer, uint32_t length, uint64_t offset,
                        int mode) {
    IoOp op;
    prepare_rw(&op, kind, fd, buffer, length, offset);
    op.mode = mode;
    IoBatch batch(*this);
    batch.add(&op);
    co_await batch.wait();
    co_return op.result;
}

Task<int> Ring::read(int fd, void* buffer, uint32_t length, uint64_t offset) {
    return run_one(IoKind::kRead, fd, static_cast<uint8_t*>(buffer), length, offset, 0);
}

Task<int> Ring::write(int fd, const void* buffer, uint32_t length, uint64_t offset) {
    return run_one(IoKind::kWrite, fd, static_cast<uint8_t*>(const_cast<void*>(buffer)), length,
                   offset, 0);
}

Task<int> Ring::fdatasync(int fd, DeviceIo* device) {
    IoOp op;
    prepare_rw(&op, IoKind::kFdatasync, fd, nullptr, 0, 0);
    op.device = device;
    IoBatch batch(*this);
    batch.add(&op);
    co_await batch.wait();
    co_return op.result;
}

Task<int> Ring::fallocate(int fd, int mode, uint64_t offset, uint64_t length, DeviceIo* device) {
    // IoOp carries a 32-bit length, so large ranges go in pieces of 1 GiB.
    constexpr uint64_t kPieceBytes = 1ull << 30;
    uint64_t done = 0;
    while (done < length) {
        uint64_t piece = std::min(length - done, kPieceBytes);
        IoOp op;
        prepare_rw(&op, IoKind::kFallocate, fd, nullptr, static_cast<uint32_t>(piece),
                   offset + done);
        op.mode = mode;
        op.device = device;
        IoBatch batch(*this);
        batch.add(&op);
        co_await batch.wait();
        if (op.result < 0) co_return op.result;
        done += piece;
    }
    co_return 0;
}

Task<int> Ring::recv(int fd, void* buffer, uint32_t length) {
    return run_one(IoKind::kRecv, fd, static_cast<uint8_t*>(buffer), length, 0, 0);
}

Task<int> Ring::sendmsg(int fd, iovec* iov, uint32_t iov_count) {
    IoOp op;
    prepare_rw(&op, IoKind::kSendmsg, fd, nullptr, 0, 0);
    uint64_t total = 0;
    for (uint32_t i = 0; i < iov_count; ++i) total += iov[i].iov_len;
    op.length = static_cast<uint32_t>(total);
    op.message.msg_iov = iov;
    op.message.msg_iovlen = iov_count;
    IoBatch batch(*this);
    batch.add(&op);
    co_await batch.wait();
    co_return op.result;
}

Task<int> Ring::accept(int fd) { return run_one(IoKind::kAccept, fd, nullptr, 0, 0, 0); }

Task<int> Ring::sleep_ns(uint64_t nanoseconds) {
    IoOp op;
    prepare_rw(&op, IoKind::kTimeout, -1, nullptr, 0, 0);
    op.timeout.tv_sec = static_cast<int64_t>(nanoseconds / 1000000000ull);
    op.timeout.tv_nsec = static_cast<int64_t>(nanoseconds % 1000000000ull);
    IoBatch batch(*this);
    batch.add(&op);
    co_await batch.wait();
    co_return op.result;
}

Task<int> Ring::poll_in(int fd) { return run_one(IoKind::kPollIn, fd, nullptr, 0, 0, 0); }

}  // namespace ecraid
