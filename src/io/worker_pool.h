// SPDX-License-Identifier: Apache-2.0
// WorkerPool: worker threads, each running the event loop of its own Ring.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "common/status.h"
#include "io/ring.h"

namespace ecraid {

// A count of tasks that run on any ring, awaited by one coroutine on its own ring. Each task
// calls done() once, and the last one posts the waiter back to its ring. The waiter calls
// wait() once, from a ring, and keeps the group alive until it resumes.
class CrossRingWaitGroup {
public:
    explicit CrossRingWaitGroup(uint32_t count) : pending_(count + 1) {}
    CrossRingWaitGroup(const CrossRingWaitGroup&) = delete;
    CrossRingWaitGroup& operator=(const CrossRingWaitGroup&) = delete;

    void done() {
        if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) home_->post(waiter_);
    }

    struct Awaiter {
        CrossRingWaitGroup* group;
        bool suspended = false;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> handle) noexcept {
            Ring* home = Ring::current();
            group->home_ = home;
            group->waiter_ = handle;
            // This is the waiter's share of the count. When every task has finished, it
            // reaches zero here and the waiter goes on. Otherwise the home ring stays
            // running, even after stop(), until the last task posts the waiter back.
            home->begin_remote_wait();
            suspended = group->pending_.fetch_sub(1, std::memory_order_acq_rel) != 1;
            if (!suspended) home->end_remote_wait();
            return suspended;
        }
        void await_resume() const noexcept {
            if (suspended) Ring::current()->end_remote_wait();
        }
    };
    Awaiter wait() { return Awaiter{this}; }

private:
    std::atomic<uint32_t> pending_;
    Ring* home_ = nullptr;
    std::coroutine_handle<> waiter_;
};

class WorkerPool {
public:
    // Starts `count` workers (0 means one per online CPU), each with a ring of `ring_entries`.
    static Result<std::unique_ptr<WorkerPool>> start(uint32_t count, uint32_t ring_entries = 256);
    ~WorkerPool();  // Stops and joins the workers.

    uint32_t size() const { return static_cast<uint32_t>(rings_.size()); }
    Ring& ring(uint32_t index) { return *rings_[index]; }
    // Runs `function` on the next worker in round-robin order.
    void post(std::function<void()> function);
    // Runs the task made by `make_task` on worker `index` and blocks the calling thread (not
    // a worker) until it finishes. Returns the task's result.
    int run_and_wait(uint32_t index, std::function<Task<int>()> make_task);
    // Asks every worker to finish its posted work and stop, then joins them.
    void stop();

private:
    WorkerPool() = default;
    std::vector<std::unique_ptr<Ring>> rings_;
    std::vector<std::thread> threads_;
    std::atomic<uint32_t> next_{0};
};

}  // namespace ecraid
