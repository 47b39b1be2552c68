// SPDX-License-Identifier: Apache-2.0
// Helpers for tests that run coroutines on rings: run a body on one ring until it finishes,
// yield to the ring's event loop, and wait for work spread over a WorkerPool.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <memory>
#include <thread>
#include <utility>

#include <gtest/gtest.h>

#include "io/ring.h"
#include "io/task.h"

namespace ecraid::testing {

inline std::unique_ptr<Ring> make_test_ring(uint32_t entries = 64) {
    auto ring = Ring::create(entries);
    EXPECT_TRUE(ring.ok()) << ring.status().to_string();
    return std::move(ring).value();
}

// Runs `body` (a callable returning Task<void>) as a coroutine on `ring`, on the calling
// thread, until it finishes.
template <typename Body>
void run_on_ring(Ring& ring, Body body) {
    bool finished = false;
    auto wrapper = [&]() -> Task<void> {
        co_await body();
        finished = true;
        ring.stop();
    };
    ring.post([&] { spawn(wrapper()); });
    ring.run();
    EXPECT_TRUE(finished);
}

// Suspends the coroutine and queues it at the back of its ring's posted work, so that
// everything posted before it runs first.
struct YieldToRing {
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> handle) const { Ring::current()->post(handle); }
    void await_resume() const noexcept {}
};

// Waits until `counter` reaches `expected` or `timeout` passes. Returns whether it did.
inline bool wait_for_count(const std::atomic<uint64_t>& counter, uint64_t expected,
                           std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (counter.load() < expected) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

}  // namespace ecraid::testing
