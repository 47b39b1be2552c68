// SPDX-License-Identifier: Apache-2.0
// StripeLocks: exclusion, sharing, arrival order, ranges, release by Guard, and random
// overlapping ranges locked from several workers.
#include "array/stripe_lock.h"

#include <array>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "coroutine_support.h"
#include "io/ring.h"
#include "io/worker_pool.h"

namespace ecraid {
namespace {

using testing::make_test_ring;
using testing::run_on_ring;
using testing::YieldToRing;

// A one-shot event within one ring: open() resumes every coroutine waiting on it.
class Gate {
public:
    struct Awaiter {
        Gate* gate;
        bool await_ready() const noexcept { return gate->open_; }
        void await_suspend(std::coroutine_handle<> handle) { gate->waiters_.push_back(handle); }
        void await_resume() const noexcept {}
    };
    Awaiter wait() { return Awaiter{this}; }
    void open() {
        open_ = true;
        std::vector<std::coroutine_handle<>> waiters;
        waiters.swap(waiters_);
        for (auto handle : waiters) handle.resume();
    }

private:
    bool open_ = false;
    std::vector<std::coroutine_handle<>> waiters_;
};

// A coroutine that locks a range, records that it got the lock, and holds it until its gate
// opens.
struct Holder {
    explicit Holder(std::string holder_name) : name(std::move(holder_name)) {}
    std::string name;
    bool acquired = false;
    bool released = false;
    Gate gate;
};

Task<void> hold(StripeLocks& locks, uint64_t first, uint64_t end, bool exclusive,
                Holder& holder, std::vector<std::string>& order) {
    StripeLocks::Guard guard = co_await locks.lock(first, end, exclusive);
    EXPECT_TRUE(guard.held());
    holder.acquired = true;
    order.push_back(holder.name);
    co_await holder.gate.wait();
    guard.release();
    EXPECT_FALSE(guard.held());
    holder.released = true;
}

// Lets posted grants run: each grant is one post, and a resumed holder may post more.
Task<void> settle() {
    for (int i = 0; i < 8; ++i) co_await YieldToRing{};
}

TEST(StripeLocks, WriterExcludesWriter) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder first{"first"}, second{"second"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 5, 6, true, first, order));
        spawn(hold(locks, 5, 6, true, second, order));
        co_await settle();
        EXPECT_TRUE(first.acquired);
        EXPECT_FALSE(second.acquired);

        first.gate.open();
        co_await settle();
        EXPECT_TRUE(second.acquired);
        second.gate.open();
    });
    EXPECT_EQ(order, (std::vector<std::string>{"first", "second"}));
    EXPECT_TRUE(second.released);
}

TEST(StripeLocks, ReadersShare) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder one{"one"}, two{"two"}, three{"three"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 7, 9, false, one, order));
        spawn(hold(locks, 8, 9, false, two, order));
        spawn(hold(locks, 0, 64, false, three, order));
        co_await settle();
        EXPECT_TRUE(one.acquired);
        EXPECT_TRUE(two.acquired);
        EXPECT_TRUE(three.acquired);
        one.gate.open();
        two.gate.open();
        three.gate.open();
    });
    EXPECT_TRUE(three.released);
}

TEST(StripeLocks, WriterWaitsForReaders) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder reader_a{"reader_a"}, reader_b{"reader_b"}, writer{"writer"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 3, 4, false, reader_a, order));
        spawn(hold(locks, 3, 4, false, reader_b, order));
        spawn(hold(locks, 2, 5, true, writer, order));
        co_await settle();
        EXPECT_FALSE(writer.acquired);

        reader_a.gate.open();
        co_await settle();
        EXPECT_FALSE(writer.acquired);

        reader_b.gate.open();
        co_await settle();
        EXPECT_TRUE(writer.acquired);
        writer.gate.open();
    });
    EXPECT_TRUE(writer.released);
}

TEST(StripeLocks, WaitingWriterBlocksLaterReaders) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder reader{"reader"}, writer{"writer"}, late_reader{"late_reader"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 10, 11, false, reader, order));
        spawn(hold(locks, 10, 11, true, writer, order));
        spawn(hold(locks, 10, 11, false, late_reader, order));
        co_await settle();
        EXPECT_TRUE(reader.acquired);
        EXPECT_FALSE(writer.acquired);
        EXPECT_FALSE(late_reader.acquired);

        reader.gate.open();
        co_await settle();
        EXPECT_TRUE(writer.acquired);
        EXPECT_FALSE(late_reader.acquired);

        writer.gate.open();
        co_await settle();
        EXPECT_TRUE(late_reader.acquired);
        late_reader.gate.open();
    });
    EXPECT_EQ(order, (std::vector<std::string>{"reader", "writer", "late_reader"}));
}

TEST(StripeLocks, GrantsInArrivalOrder) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder writer_a{"writer_a"}, reader_b{"reader_b"}, reader_c{"reader_c"},
        writer_d{"writer_d"}, reader_e{"reader_e"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 1, 2, true, writer_a, order));
        spawn(hold(locks, 1, 2, false, reader_b, order));
        spawn(hold(locks, 1, 2, false, reader_c, order));
        spawn(hold(locks, 1, 2, true, writer_d, order));
        spawn(hold(locks, 1, 2, false, reader_e, order));
        co_await settle();
        EXPECT_EQ(order.size(), 1u);

        // Both readers at the front are granted together; the writer behind them is not.
        writer_a.gate.open();
        co_await settle();
        EXPECT_TRUE(reader_b.acquired);
        EXPECT_TRUE(reader_c.acquired);
        EXPECT_FALSE(writer_d.acquired);

        reader_b.gate.open();
        reader_c.gate.open();
        co_await settle();
        EXPECT_TRUE(writer_d.acquired);
        EXPECT_FALSE(reader_e.acquired);

        writer_d.gate.open();
        co_await settle();
        EXPECT_TRUE(reader_e.acquired);
        reader_e.gate.open();
    });
    EXPECT_EQ(order, (std::vector<std::string>{"writer_a", "reader_b", "reader_c", "writer_d",
                                               "reader_e"}));
}

TEST(StripeLocks, RangeLocksEveryStripeInIt) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder range{"range"}, inside{"inside"}, after{"after"}, before{"before"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 10, 20, true, range, order));
        spawn(hold(locks, 19, 21, false, inside, order));
        spawn(hold(locks, 20, 21, true, after, order));
        spawn(hold(locks, 9, 10, true, before, order));
        co_await settle();
        EXPECT_TRUE(range.acquired);
        EXPECT_FALSE(inside.acquired);
        EXPECT_TRUE(after.acquired);
        EXPECT_TRUE(before.acquired);

        range.gate.open();
        co_await settle();
        EXPECT_FALSE(inside.acquired);  // Stripe 20 is still held by `after`.
        after.gate.open();
        co_await settle();
        EXPECT_TRUE(inside.acquired);
        inside.gate.open();
        before.gate.open();
    });
}

TEST(StripeLocks, StripesSlotCountApartShareSlot) {
    auto ring = make_test_ring();
    StripeLocks locks(8);
    EXPECT_EQ(locks.slot_of(3), locks.slot_of(11));
    std::vector<std::string> order;
    Holder low{"low"}, high{"high"}, wrapped{"wrapped"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 3, 4, true, low, order));
        spawn(hold(locks, 11, 12, true, high, order));
        // Stripes [6, 10) use slots 6, 7, 0 and 1, so they do not touch slot 3.
        spawn(hold(locks, 6, 10, true, wrapped, order));
        co_await settle();
        EXPECT_TRUE(low.acquired);
        EXPECT_FALSE(high.acquired);
        EXPECT_TRUE(wrapped.acquired);
        low.gate.open();
        co_await settle();
        EXPECT_TRUE(high.acquired);
        high.gate.open();
        wrapped.gate.open();
    });
}

TEST(StripeLocks, RangeWiderThanTableLocksAll) {
    auto ring = make_test_ring();
    StripeLocks locks(8);
    std::vector<std::string> order;
    Holder wide{"wide"}, any{"any"};
    run_on_ring(*ring, [&]() -> Task<void> {
        spawn(hold(locks, 100, 1000, true, wide, order));
        spawn(hold(locks, 5, 6, false, any, order));
        co_await settle();
        EXPECT_TRUE(wide.acquired);
        EXPECT_FALSE(any.acquired);
        wide.gate.open();
        co_await settle();
        EXPECT_TRUE(any.acquired);
        any.gate.open();
    });
}

TEST(StripeLocks, GuardDestructorReleases) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder waiter{"waiter"};
    run_on_ring(*ring, [&]() -> Task<void> {
        {
            StripeLocks::Guard guard = co_await locks.lock(4, 5, true);
            spawn(hold(locks, 4, 5, true, waiter, order));
            co_await settle();
            EXPECT_FALSE(waiter.acquired);
        }
        co_await settle();
        EXPECT_TRUE(waiter.acquired);
        waiter.gate.open();
    });
    EXPECT_TRUE(waiter.released);
}

TEST(StripeLocks, GuardMoveKeepsOneOwner) {
    auto ring = make_test_ring();
    StripeLocks locks(64);
    std::vector<std::string> order;
    Holder waiter{"waiter"};
    run_on_ring(*ring, [&]() -> Task<void> {
        StripeLocks::Guard first = co_await locks.lock(4, 6, true);
        StripeLocks::Guard moved(std::move(first));
        EXPECT_FALSE(first.held());
        EXPECT_TRUE(moved.held());
        first.release();  // Releasing a moved-from Guard does nothing.

        spawn(hold(locks, 5, 6, true, waiter, order));
        co_await settle();
        EXPECT_FALSE(waiter.acquired);

        // Assigning over a held Guard releases what it held.
        StripeLocks::Guard other = co_await locks.lock(30, 31, true);
        other = std::move(moved);
        EXPECT_FALSE(moved.held());
        EXPECT_TRUE(other.held());
        StripeLocks::Guard again = co_await locks.lock(30, 31, true);
        EXPECT_TRUE(again.held());
        again.release();

        co_await settle();
        EXPECT_FALSE(waiter.acquired);
        other.release();
        co_await settle();
        EXPECT_TRUE(waiter.acquired);
        waiter.gate.open();
    });
}

// Counts holders per stripe; a writer that meets anyone else, or a reader that meets a
// writer, is a violation.
struct StressState {
    static constexpr uint64_t kStripes = 64;
    static constexpr uint64_t kRangeStripesMax = 24;
    static constexpr uint64_t kTrackedStripes = kStripes + kRangeStripesMax;
    explicit StressState(uint32_t slot_count) : locks(slot_count) {}

    StripeLocks locks;
    std::array<std::atomic<int>, kTrackedStripes> writers{};
    std::array<std::atomic<int>, kTrackedStripes> readers{};
    std::atomic<uint64_t> violations{0};
    std::atomic<uint64_t> exclusive_locks{0};
    std::atomic<uint64_t> finished{0};
};

Task<void> stress_worker(StressState& state, uint32_t seed, int iterations) {
    std::mt19937 random(seed);
    Ring* ring = Ring::current();
    for (int i = 0; i < iterations; ++i) {
        uint64_t first = random() % StressState::kStripes;
        uint64_t end = first + 1 + random() % StressState::kRangeStripesMax;
        bool exclusive = random() % 3 == 0;

        StripeLocks::Guard guard = co_await state.locks.lock(first, end, exclusive);
        for (uint64_t stripe = first; stripe < end; ++stripe) {
            if (exclusive) {
                if (state.writers[stripe].fetch_add(1) != 0) ++state.violations;
                if (state.readers[stripe].load() != 0) ++state.violations;
            } else {
                state.readers[stripe].fetch_add(1);
                if (state.writers[stripe].load() != 0) ++state.violations;
            }
        }
        if (exclusive) ++state.exclusive_locks;

        // Hold the lock across a hop through the event loop or a short timer, so other
        // coroutines on this ring and on the others run meanwhile.
        if (random() % 4 == 0) {
            co_await ring->sleep_ns(20 * 1000);
        } else {
            co_await YieldToRing{};
        }

        for (uint64_t stripe = first; stripe < end; ++stripe) {
            if (exclusive) {
                state.writers[stripe].fetch_sub(1);
            } else {
                state.readers[stripe].fetch_sub(1);
            }
        }
        // Alternate between an explicit release and the Guard's destructor.
        if (i % 2 == 0) guard.release();
    }
    ++state.finished;
}

TEST(StripeLocks, RandomRangesFromWorkersExclude) {
    constexpr uint32_t kWorkers = 4;
    constexpr uint32_t kCoroutinesPerWorker = 8;
    constexpr int kIterations = 500;
    // 16 slots for 64 stripes: ranges wrap around the slot table, share slots, and some
    // cover all of it.
    StressState state(16);
    auto pool = WorkerPool::start(kWorkers, 64);
    ASSERT_TRUE(pool.ok()) << pool.status().to_string();
    for (uint32_t worker = 0; worker < kWorkers; ++worker) {
        (*pool)->ring(worker).post([&state, worker] {
            for (uint32_t i = 0; i < kCoroutinesPerWorker; ++i) {
                spawn(stress_worker(state, worker * 1000 + i, kIterations));
            }
        });
    }
    bool finished = testing::wait_for_count(state.finished, kWorkers * kCoroutinesPerWorker,
                                            std::chrono::seconds(60));
    ASSERT_TRUE(finished) << "deadlock: only " << state.finished.load() << " of "
                          << kWorkers * kCoroutinesPerWorker << " coroutines finished in 60 s";
    (*pool)->stop();
    EXPECT_EQ(state.violations.load(), 0u);
    EXPECT_GT(state.exclusive_locks.load(), 0u);
    for (uint64_t stripe = 0; stripe < StressState::kTrackedStripes; ++stripe) {
        EXPECT_EQ(state.writers[stripe].load(), 0);
        EXPECT_EQ(state.readers[stripe].load(), 0);
    }
}

}  // namespace
}  // namespace ecraid
