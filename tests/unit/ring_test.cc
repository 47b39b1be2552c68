// SPDX-License-Identifier: Apache-2.0
// Ring: whole transfers despite short and -EAGAIN completions, backlog past the queue size,
// end of file reported as an error, and work posted from other threads.
#include "io/ring.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/task.h"

namespace ecraid {
namespace {

class TempFile {
public:
    explicit TempFile(size_t bytes) {
        char name[] = "/tmp/ecraid-ring-XXXXXX";
        fd_ = mkstemp(name);
        unlink(name);
        EXPECT_GE(fd_, 0);
        EXPECT_EQ(ftruncate(fd_, static_cast<off_t>(bytes)), 0);
    }
    ~TempFile() { close(fd_); }
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

// Runs `body` as a coroutine on a fresh ring until it finishes.
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

std::unique_ptr<Ring> make_ring(uint32_t entries = 64) {
    auto ring = Ring::create(entries);
    EXPECT_TRUE(ring.ok()) << ring.status().to_string();
    return std::move(ring).value();
}

TEST(Ring, WriteThenReadRoundTrip) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    std::vector<uint8_t> data(256 * 1024), back(data.size());
    std::mt19937 random(1);
    for (auto& byte : data) byte = static_cast<uint8_t>(random());
    run_on_ring(*ring, [&]() -> Task<void> {
        int written = co_await ring->write(file.fd(), data.data(), data.size(), 4096);
        EXPECT_EQ(written, static_cast<int>(data.size()));
        int read = co_await ring->read(file.fd(), back.data(), back.size(), 4096);
        EXPECT_EQ(read, static_cast<int>(back.size()));
    });
    EXPECT_EQ(data, back);
}

struct FaultPlan {
    std::mt19937 random{7};
    int clamp_percent = 0;
    int again_percent = 0;
};

int inject(const IoOp& op, int result, void* context) {
    auto* plan = static_cast<FaultPlan*>(context);
    if (op.kind != IoKind::kRead && op.kind != IoKind::kWrite) return result;
    if (result <= 0) return result;
    int dice = static_cast<int>(plan->random() % 100);
    if (dice < plan->again_percent) return -EAGAIN;
    if (dice < plan->again_percent + plan->clamp_percent && result > 512) {
        return static_cast<int>((1 + plan->random() % (result / 512 - 1)) * 512);
    }
    return result;
}

TEST(Ring, ShortAndAgainCompletionsAreResubmitted) {
    auto ring = make_ring(16);
    TempFile file(8 << 20);
    FaultPlan plan;
    plan.clamp_percent = 30;
    plan.again_percent = 10;
    ring->set_fault_hook(inject, &plan);
    constexpr int kOps = 64;
    constexpr uint32_t kBytes = 64 * 1024;
    std::vector<std::vector<uint8_t>> data(kOps), back(kOps);
    for (int i = 0; i < kOps; ++i) {
        data[i].assign(kBytes, static_cast<uint8_t>(i + 1));
        back[i].assign(kBytes, 0);
    }
    run_on_ring(*ring, [&]() -> Task<void> {
        std::vector<IoOp> ops(kOps);
        {
            IoBatch batch(*ring);
            for (int i = 0; i < kOps; ++i) {
                prepare_rw(&ops[i], IoKind::kWrite, file.fd(), data[i].data(), kBytes,
                           uint64_t(i) * kBytes);
                batch.add(&ops[i]);
            }
            co_await batch.wait();
        }
        for (int i = 0; i < kOps; ++i) EXPECT_EQ(ops[i].result, static_cast<int>(kBytes));
        {
            IoBatch batch(*ring);
            for (int i = 0; i < kOps; ++i) {
                prepare_rw(&ops[i], IoKind::kRead, file.fd(), back[i].data(), kBytes,
                           uint64_t(i) * kBytes);
                batch.add(&ops[i]);
            }
            co_await batch.wait();
        }
        for (int i = 0; i < kOps; ++i) EXPECT_EQ(ops[i].result, static_cast<int>(kBytes));
    });
    EXPECT_EQ(data, back);
    EXPECT_GT(ring->stats().resubmitted_short, 0u);
    EXPECT_GT(ring->stats().resubmitted_again, 0u);
    EXPECT_GT(ring->stats().backlogged, 0u);
    EXPECT_EQ(ring->stats().in_flight, 0u);
    EXPECT_EQ(ring->stats().submitted, ring->stats().completed);
}

TEST(Ring, ReadPastEndOfFileFailsWithEio) {
    auto ring = make_ring();
    TempFile file(8192);
    std::vector<uint8_t> buffer(16384);
    run_on_ring(*ring, [&]() -> Task<void> {
        int result = co_await ring->read(file.fd(), buffer.data(), buffer.size(), 0);
        EXPECT_EQ(result, -EIO);
    });
}

TEST(Ring, BadDescriptorFails) {
    auto ring = make_ring();
    std::vector<uint8_t> buffer(4096);
    run_on_ring(*ring, [&]() -> Task<void> {
        int result = co_await ring->read(-1, buffer.data(), buffer.size(), 0);
        EXPECT_EQ(result, -EBADF);
    });
}

TEST(Ring, PostedHandlesResumeOnRingThread) {
    auto ring = make_ring();
    std::thread::id ring_thread;
    int resumed = 0;
    run_on_ring(*ring, [&]() -> Task<void> {
        ring_thread = std::this_thread::get_id();
        for (int i = 0; i < 100; ++i) {
            struct Hop {
                Ring* ring;
                bool await_ready() { return false; }
                void await_suspend(std::coroutine_handle<> handle) {
                    std::thread([ring = ring, handle] { ring->post(handle); }).detach();
                }
                void await_resume() {}
            };
            co_await Hop{ring.get()};
            EXPECT_EQ(std::this_thread::get_id(), ring_thread);
            ++resumed;
        }
    });
    EXPECT_EQ(resumed, 100);
}

TEST(Ring, SleepWaitsAtLeastTheDuration) {
    auto ring = make_ring();
    auto start = std::chrono::steady_clock::now();
    run_on_ring(*ring, [&]() -> Task<void> {
        int result = co_await ring->sleep_ns(20 * 1000 * 1000);
        EXPECT_EQ(result, 0);
    });
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(20));
}

}  // namespace
}  // namespace ecraid
