// SPDX-License-Identifier: Apache-2.0
// StripeWindow: one window of a rebuild or scrub, its stripes spread over every worker.
//
// Stripe s of the window runs on ring (s - begin) % parts, so each worker walks the members
// in order and no single worker's io-wq thread copies all the data. A coroutine on one ring
// starts a window and awaits it there. The parts count down one atomic counter, and the one
// that reaches zero resumes the waiter on its ring with Ring::post. The rebuild and scrub
// loops keep two windows in flight, so members stay busy while the first window's slowest
// stripe finishes.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <functional>
#include <vector>

#include "io/ring.h"
#include "io/task.h"
#include "io/worker_pool.h"

namespace ecraid {

template <typename Result>
class StripeWindow {
public:
    // A step runs once for every stripe of [begin, end), and its result is kept by index.
    using Step = std::function<Task<Result>(uint64_t stripe)>;

    StripeWindow(WorkerPool& workers, uint64_t begin, uint64_t end, Step step)
        : workers_(workers),
          begin_(begin),
          end_(end),
          step_(std::move(step)),
          results_(end - begin) {}
    StripeWindow(const StripeWindow&) = delete;
    StripeWindow& operator=(const StripeWindow&) = delete;

    // Hands the stripes to the workers. Call it from a coroutine running on a ring, and keep
    // the window alive until finished() resumes.
    void start() {
        home_ = Ring::current();
        uint32_t parts = uint32_t(std::min<uint64_t>(workers_.size(), end_ - begin_));
        pending_.store(parts + 1, std::memory_order_relaxed);
        for (uint32_t part = 0; part < parts; ++part) {
            workers_.ring(part).post([this, part, parts] { spawn(run_part(this, part, parts)); });
        }
    }

    struct Finished {
        StripeWindow* window;
        bool suspended = false;
        bool await_ready() const noexcept { return false; }
        bool await_suspend(std::coroutine_handle<> handle) noexcept {
            window->waiter_ = handle;
            // This is the start() share of the count. The decrement that reaches zero resumes
            // the waiter: here, by not suspending, or in run_part, by posting it. Until then
            // the home ring does not count as idle (Ring::begin_remote_wait).
            window->home_->begin_remote_wait();
            suspended = window->pending_.fetch_sub(1, std::memory_order_acq_rel) != 1;
            if (!suspended) window->home_->end_remote_wait();
            return suspended;
        }
        void await_resume() const noexcept {
            if (suspended) Ring::current()->end_remote_wait();
        }
    };
    // Resumes on the ring that called start() once every stripe's step has finished.
    Finished finished() { return Finished{this}; }

    uint64_t begin() const { return begin_; }
    uint64_t end() const { return end_; }
    // Valid after finished() resumes: the result of stripe begin() + index.
    const std::vector<Result>& results() const { return results_; }

private:
    static Task<void> run_stripe(StripeWindow* window, uint64_t stripe, WaitGroup* group) {
        window->results_[stripe - window->begin_] = co_await window->step_(stripe);
        group->done();
    }

    static Task<void> run_part(StripeWindow* window, uint32_t part, uint32_t parts) {
        WaitGroup group;
        for (uint64_t stripe = window->begin_ + part; stripe < window->end_; stripe += parts) {
            group.add();
            spawn(run_stripe(window, stripe, &group));
        }
        co_await group.wait();
        if (window->pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            window->home_->post(window->waiter_);
        }
    }

    WorkerPool& workers_;
    uint64_t begin_;
    uint64_t end_;
    Step step_;
    std::vector<Result> results_;
    Ring* home_ = nullptr;
    std::atomic<uint32_t> pending_{0};
    std::coroutine_handle<> waiter_;
};

}  // namespace ecraid
