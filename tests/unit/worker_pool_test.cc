// SPDX-License-Identifier: Apache-2.0
// CrossRingWaitGroup: the waiter resumes on its own ring once every task has finished,
// whichever ring the last one finishes on, and whether they finish before or after it waits.
#include "io/worker_pool.h"

#include <atomic>
#include <cstdint>

#include <gtest/gtest.h>

#include "io/ring.h"
#include "io/task.h"

namespace ecraid {
namespace {

constexpr uint32_t kWorkers = 3;

Task<void> finish_after(uint64_t delay_ns, std::atomic<uint32_t>* finished,
                        CrossRingWaitGroup* group) {
    if (delay_ns > 0) co_await Ring::current()->sleep_ns(delay_ns);
    finished->fetch_add(1);
    group->done();
}

// Starts `task_count` tasks from worker `home`, task i on worker i % kWorkers, and waits for
// them there. Task i sleeps `task_delay_ns` times (i % 3); the waiter sleeps `wait_delay_ns`
// before it waits.
void check_group(WorkerPool& pool, uint32_t home, uint32_t task_count, uint64_t task_delay_ns,
                 uint64_t wait_delay_ns) {
    std::atomic<uint32_t> finished{0};
    std::atomic<uint32_t> finished_at_resume{0};
    std::atomic<Ring*> resumed_on{nullptr};
    int status = pool.run_and_wait(home, [&]() -> Task<int> {
        CrossRingWaitGroup group(task_count);
        for (uint32_t i = 0; i < task_count; ++i) {
            uint64_t delay = task_delay_ns * (i % 3);
            pool.ring(i % kWorkers).post(
                [delay, &finished, &group] { spawn(finish_after(delay, &finished, &group)); });
        }
        if (wait_delay_ns > 0) co_await Ring::current()->sleep_ns(wait_delay_ns);
        co_await group.wait();
        finished_at_resume.store(finished.load());
        resumed_on.store(Ring::current());
        co_return 0;
    });
    ASSERT_EQ(status, 0);
    EXPECT_EQ(finished_at_resume.load(), task_count);
    EXPECT_EQ(resumed_on.load(), &pool.ring(home));
}

TEST(CrossRingWaitGroup, ResumesOnHomeRing) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    for (uint32_t home = 0; home < kWorkers; ++home) check_group(**pool, home, 7, 300'000, 0);
    (*pool)->stop();
}

TEST(CrossRingWaitGroup, FinishedTasksSkipSuspend) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    check_group(**pool, 1, 5, 0, 50'000'000);
    (*pool)->stop();
}

TEST(CrossRingWaitGroup, NoTasksDoesNotSuspend) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    check_group(**pool, 2, 0, 0, 0);
    (*pool)->stop();
}

TEST(CrossRingWaitGroup, ManyRoundsFromEveryWorker) {
    // Races the last done() against the waiter's suspension many times over.
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    for (int round = 0; round < 300; ++round) check_group(**pool, round % kWorkers, 4, 0, 0);
    (*pool)->stop();
}

// Stops its own ring, then waits for a task on worker 0 that sleeps 50 ms.
Task<void> stop_then_wait(WorkerPool* pool, std::atomic<uint32_t>* finished, bool* resumed) {
    CrossRingWaitGroup group(1);
    pool->ring(0).post([finished, &group] { spawn(finish_after(50'000'000, finished, &group)); });
    Ring::current()->stop();
    co_await group.wait();
    *resumed = true;
}

TEST(CrossRingWaitGroup, StoppedRingRunsUntilTheWaitEnds) {
    // A ring that is asked to stop while a coroutine waits for other rings keeps running
    // until the waiter is posted back, so the waiter is neither lost nor left suspended.
    auto pool = WorkerPool::start(1, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    auto home = Ring::create(64);
    ASSERT_TRUE(home.ok()) << home.status().to_string();
    std::atomic<uint32_t> finished{0};
    bool resumed = false;
    Ring& ring = *home.value();
    ring.post([&] { spawn(stop_then_wait(pool.value().get(), &finished, &resumed)); });
    ring.run();
    EXPECT_TRUE(resumed);
    EXPECT_EQ(finished.load(), 1u);
    (*pool)->stop();
}

}  // namespace
}  // namespace ecraid
