// SPDX-License-Identifier: Apache-2.0
// StripeWindow: every stripe runs once, on its worker, its result kept by index, and the
// waiter resumes on its own ring whether the parts finish before or after it waits.
#include "array/stripe_window.h"

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include <gtest/gtest.h>

#include "io/ring.h"
#include "io/worker_pool.h"

namespace ecraid {
namespace {

constexpr uint32_t kWorkers = 3;

struct StripeRecord {
    std::atomic<uint32_t> runs{0};
    std::atomic<Ring*> ring{nullptr};
};

// Runs one window of [begin, end) from worker `home` and checks where each stripe ran.
// When `wait_first` is false the home ring sleeps before it waits, so every part has
// finished by then.
void check_window(WorkerPool& pool, uint32_t home, uint64_t begin, uint64_t end,
                  bool wait_first) {
    std::vector<StripeRecord> records(end - begin);
    std::atomic<bool> results_ok{false};
    std::atomic<Ring*> resumed_on{nullptr};
    int status = pool.run_and_wait(home, [&]() -> Task<int> {
        StripeWindow<uint64_t> window(pool, begin, end, [&](uint64_t stripe) -> Task<uint64_t> {
            StripeRecord& record = records[stripe - begin];
            record.runs.fetch_add(1);
            record.ring.store(Ring::current());
            // Every other stripe suspends, so parts finish out of order.
            if (stripe % 2 == 0) co_await Ring::current()->sleep_ns(200'000);
            co_return stripe * 7;
        });
        window.start();
        if (!wait_first) co_await Ring::current()->sleep_ns(50'000'000);
        co_await window.finished();
        resumed_on.store(Ring::current());
        bool ok = window.results().size() == end - begin;
        for (uint64_t stripe = begin; ok && stripe < end; ++stripe) {
            ok = window.results()[stripe - begin] == stripe * 7;
        }
        results_ok.store(ok);
        co_return 0;
    });
    ASSERT_EQ(status, 0);
    EXPECT_TRUE(results_ok.load());
    EXPECT_EQ(resumed_on.load(), &pool.ring(home));
    uint64_t parts = std::min<uint64_t>(kWorkers, end - begin);
    for (uint64_t stripe = begin; stripe < end; ++stripe) {
        const StripeRecord& record = records[stripe - begin];
        EXPECT_EQ(record.runs.load(), 1u) << "stripe " << stripe;
        EXPECT_EQ(record.ring.load(), &pool.ring(uint32_t((stripe - begin) % parts)))
            << "stripe " << stripe;
    }
}

TEST(StripeWindow, EveryStripeRunsOnceOnItsWorker) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    check_window(**pool, kWorkers - 1, 10, 27, true);
    (*pool)->stop();
}

TEST(StripeWindow, PartsThatFinishBeforeTheWaitResumeIt) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    check_window(**pool, 0, 0, 9, false);
    (*pool)->stop();
}

TEST(StripeWindow, FewerStripesThanWorkersUseOnePartEach) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    check_window(**pool, 1, 100, 102, true);
    check_window(**pool, 1, 5, 6, false);
    (*pool)->stop();
}

TEST(StripeWindow, TwoWindowsInFlightFinishIndependently) {
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    std::atomic<uint64_t> sum{0};
    int status = (*pool)->run_and_wait(kWorkers - 1, [&]() -> Task<int> {
        auto step = [](uint64_t stripe) -> Task<uint64_t> {
            co_await Ring::current()->sleep_ns(100'000 * (stripe % 3));
            co_return stripe;
        };
        auto first = std::make_unique<StripeWindow<uint64_t>>(**pool, 0, 40, step);
        auto second = std::make_unique<StripeWindow<uint64_t>>(**pool, 40, 80, step);
        first->start();
        second->start();
        // Wait for the second first: the first's parts finish meanwhile and must still
        // resume its waiter later.
        co_await second->finished();
        co_await first->finished();
        for (uint64_t value : first->results()) sum.fetch_add(value);
        for (uint64_t value : second->results()) sum.fetch_add(value);
        co_return 0;
    });
    EXPECT_EQ(status, 0);
    EXPECT_EQ(sum.load(), 79u * 80u / 2u);
    (*pool)->stop();
}

}  // namespace
}  // namespace ecraid
