// SPDX-License-Identifier: Apache-2.0
// Ring: whole transfers despite short and -EAGAIN completions, backlog past the queue size,
// end of file reported as an error, work posted from other threads, and small transfers of
// files in memory copied on the ring's thread.
#include "io/ring.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
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

// ---- Watched ops: time limits that do not depend on the kernel returning an op ----

// Withholds the completions of reads on one device, as if the device hung: the kernel has done
// the read, but the ring does not see it until deliver_withheld_completions().
struct HangPlan {
    const DeviceIo* hung = nullptr;
};

int withhold_hung_reads(const IoOp& op, int result, void* context) {
    auto* plan = static_cast<HangPlan*>(context);
    if (op.device != plan->hung || op.kind != IoKind::kRead) return result;
    return kWithholdCompletion;
}

void count_time_limit(void* context) { ++*static_cast<int*>(context); }

using Clock = std::chrono::steady_clock;

uint64_t milliseconds_since(Clock::time_point start) {
    return uint64_t(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start)
                        .count());
}

TEST(RingWatchdog, HungReadTimesOutAndKeepsItsBuffer) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    int time_limits_passed = 0;
    DeviceIo device;
    device.time_limit_ns = 100'000'000;
    device.on_time_limit = count_time_limit;
    device.context = &time_limits_passed;
    HangPlan plan{&device};
    ring->set_fault_hook(withhold_hung_reads, &plan);
    bool buffer_freed = false;
    run_on_ring(*ring, [&]() -> Task<void> {
        auto buffer = std::shared_ptr<uint8_t[]>(new uint8_t[65536], [&](uint8_t* bytes) {
            buffer_freed = true;
            delete[] bytes;
        });
        IoOp op;
        prepare_rw(&op, IoKind::kRead, file.fd(), buffer.get(), 65536, 0);
        op.device = &device;
        auto start = Clock::now();
        {
            IoBatch batch(*ring);
            batch.add(&op);
            co_await batch.wait();
        }
        uint64_t waited_ms = milliseconds_since(start);
        EXPECT_EQ(op.result, -ETIMEDOUT);
        EXPECT_TRUE(op.abandoned);
        EXPECT_EQ(time_limits_passed, 1);
        EXPECT_GE(waited_ms, 100u);
        EXPECT_LT(waited_ms, 1000u);
        EXPECT_EQ(ring->stats().abandoned_in_kernel, 1u);

        ring->retain_until_returned(op, buffer);
        buffer.reset();
        EXPECT_FALSE(buffer_freed) << "freed while the kernel still owned the read";
        ring->deliver_withheld_completions();
        EXPECT_TRUE(buffer_freed) << "not freed once the kernel returned the read";
        EXPECT_EQ(ring->stats().abandoned_in_kernel, 0u);
    });
    EXPECT_EQ(ring->stats().timed_out, 1u);
}

TEST(RingWatchdog, SlowDeviceQueueIsNotTimedOut) {
    // Ten reads queue on a device that completes one every 50 ms: the last waits more than
    // three time limits, but the device is slow, not hung.
    auto ring = make_ring();
    TempFile file(1 << 20);
    int time_limits_passed = 0;
    DeviceIo device;
    device.time_limit_ns = 150'000'000;
    device.on_time_limit = count_time_limit;
    device.context = &time_limits_passed;
    HangPlan plan{&device};
    ring->set_fault_hook(withhold_hung_reads, &plan);
    constexpr int kReads = 10;
    std::vector<std::vector<uint8_t>> buffers(kReads, std::vector<uint8_t>(4096));
    run_on_ring(*ring, [&]() -> Task<void> {
        std::vector<IoOp> ops(kReads);
        std::vector<std::unique_ptr<IoBatch>> batches;
        auto start = Clock::now();
        for (int i = 0; i < kReads; ++i) {
            prepare_rw(&ops[i], IoKind::kRead, file.fd(), buffers[i].data(), 4096,
                       uint64_t(i) * 4096);
            ops[i].device = &device;
            batches.push_back(std::make_unique<IoBatch>(*ring));
            batches.back()->add(&ops[i]);
            co_await ring->sleep_ns(1'000'000);
        }
        for (int i = 0; i < kReads; ++i) {
            co_await ring->sleep_ns(50'000'000);
            ring->deliver_withheld_completions(1);
            co_await batches[i]->wait();
            EXPECT_EQ(ops[i].result, 4096) << "read " << i;
        }
        EXPECT_GE(milliseconds_since(start), 500u);
    });
    EXPECT_EQ(time_limits_passed, 0);
    EXPECT_EQ(ring->stats().timed_out, 0u);
}

TEST(RingWatchdog, FailedDeviceOpsEndAtOnce) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    int time_limits_passed = 0;
    std::atomic<bool> failed{false};
    DeviceIo device;
    device.time_limit_ns = 10'000'000'000ull;
    device.on_time_limit = count_time_limit;
    device.context = &time_limits_passed;
    device.failed = &failed;
    HangPlan plan{&device};
    ring->set_fault_hook(withhold_hung_reads, &plan);
    auto buffer = std::make_shared<std::vector<uint8_t>>(4096);
    run_on_ring(*ring, [&]() -> Task<void> {
        IoOp op;
        prepare_rw(&op, IoKind::kRead, file.fd(), buffer->data(), 4096, 0);
        op.device = &device;
        IoBatch batch(*ring);
        auto start = Clock::now();
        batch.add(&op);
        co_await ring->sleep_ns(100'000'000);
        EXPECT_EQ(op.result, 0) << "ended before its device failed";
        failed.store(true);
        co_await batch.wait();
        EXPECT_EQ(op.result, -ECANCELED);
        EXPECT_TRUE(op.abandoned);
        EXPECT_LT(milliseconds_since(start), 1000u);
        ring->retain_until_returned(op, buffer);

        // A new op of the failed device is not submitted at all.
        uint64_t submitted = ring->stats().submitted;
        int result = co_await ring->fdatasync(file.fd(), &device);
        EXPECT_EQ(result, -ECANCELED);
        EXPECT_EQ(ring->stats().submitted, submitted);
    });
    // The ring stopped although the kernel never returned the abandoned read.
    EXPECT_EQ(time_limits_passed, 0);
    EXPECT_EQ(ring->stats().abandoned_in_kernel, 1u);
    // Once the kernel returns it, the ring frees the memory it kept.
    std::weak_ptr<std::vector<uint8_t>> abandoned_buffer = buffer;
    buffer.reset();
    run_on_ring(*ring, [&]() -> Task<void> {
        ring->deliver_withheld_completions();
        co_return;
    });
    EXPECT_EQ(ring->stats().abandoned_in_kernel, 0u);
    EXPECT_TRUE(abandoned_buffer.expired());
}

// Runs one read or write of `device` on `ring` and returns its result.
Task<int> transfer(Ring& ring, DeviceIo* device, IoKind kind, int fd, uint8_t* buffer,
                   uint32_t length, uint64_t offset) {
    IoOp op;
    prepare_rw(&op, kind, fd, buffer, length, offset);
    op.device = device;
    IoBatch batch(ring);
    batch.add(&op);
    co_await batch.wait();
    co_return op.result;
}

TEST(RingInlineCopy, SmallTransfersAreCopiedInline) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    DeviceIo device;
    device.inline_copy_max_bytes = 64 << 10;
    std::vector<uint8_t> data(128 << 10), back(data.size());
    std::mt19937 random(3);
    for (auto& byte : data) byte = static_cast<uint8_t>(random());
    run_on_ring(*ring, [&]() -> Task<void> {
        int written = co_await transfer(*ring, &device, IoKind::kWrite, file.fd(), data.data(),
                                        64 << 10, 8192);
        EXPECT_EQ(written, 64 << 10);
        EXPECT_EQ(ring->stats().copied_inline, 1u);
        int read = co_await transfer(*ring, &device, IoKind::kRead, file.fd(), back.data(),
                                     64 << 10, 8192);
        EXPECT_EQ(read, 64 << 10);
        EXPECT_EQ(ring->stats().copied_inline, 2u);
    });
    EXPECT_TRUE(std::equal(data.begin(), data.begin() + (64 << 10), back.begin()));
    EXPECT_EQ(ring->stats().in_flight, 0u);
}

TEST(RingInlineCopy, LargerTransfersGoThroughTheRing) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    DeviceIo device;
    device.inline_copy_max_bytes = 64 << 10;
    std::vector<uint8_t> data(128 << 10), back(data.size());
    std::mt19937 random(4);
    for (auto& byte : data) byte = static_cast<uint8_t>(random());
    run_on_ring(*ring, [&]() -> Task<void> {
        int written = co_await transfer(*ring, &device, IoKind::kWrite, file.fd(), data.data(),
                                        uint32_t(data.size()), 0);
        EXPECT_EQ(written, int(data.size()));
        int read = co_await transfer(*ring, &device, IoKind::kRead, file.fd(), back.data(),
                                     uint32_t(back.size()), 0);
        EXPECT_EQ(read, int(back.size()));
    });
    EXPECT_EQ(data, back);
    EXPECT_EQ(ring->stats().copied_inline, 0u);
}

TEST(RingInlineCopy, OpsMarkedParallelGoThroughTheRing) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    DeviceIo device;
    device.inline_copy_max_bytes = 64 << 10;
    std::vector<uint8_t> buffer(4096, 0x5a), back(4096);
    run_on_ring(*ring, [&]() -> Task<void> {
        IoOp write_op;
        prepare_rw(&write_op, IoKind::kWrite, file.fd(), buffer.data(), 4096, 0);
        write_op.device = &device;
        write_op.may_copy_inline = false;
        IoBatch batch(*ring);
        batch.add(&write_op);
        co_await batch.wait();
        EXPECT_EQ(write_op.result, 4096);
        // prepare_rw allows inline copies again.
        int read = co_await transfer(*ring, &device, IoKind::kRead, file.fd(), back.data(), 4096, 0);
        EXPECT_EQ(read, 4096);
    });
    EXPECT_EQ(buffer, back);
    EXPECT_EQ(ring->stats().copied_inline, 1u);
    EXPECT_EQ(ring->stats().submitted, 2u);
}

TEST(RingInlineCopy, ReadPastEndOfFileFailsWithEio) {
    auto ring = make_ring();
    TempFile file(8192);
    DeviceIo device;
    device.inline_copy_max_bytes = 64 << 10;
    std::vector<uint8_t> buffer(16384);
    run_on_ring(*ring, [&]() -> Task<void> {
        // The first 8 KiB arrive, and the rest of the read finds the end of the file.
        int result = co_await transfer(*ring, &device, IoKind::kRead, file.fd(), buffer.data(),
                                       uint32_t(buffer.size()), 0);
        EXPECT_EQ(result, -EIO);
    });
    EXPECT_EQ(ring->stats().copied_inline, 2u);
    EXPECT_EQ(ring->stats().in_flight, 0u);
}

TEST(RingInlineCopy, ErrorsAreReturned) {
    auto ring = make_ring();
    DeviceIo device;
    device.inline_copy_max_bytes = 64 << 10;
    std::vector<uint8_t> buffer(4096);
    int read_only = open("/proc/self/cmdline", O_RDONLY);
    ASSERT_GE(read_only, 0);
    run_on_ring(*ring, [&]() -> Task<void> {
        int result = co_await transfer(*ring, &device, IoKind::kRead, -1, buffer.data(), 4096, 0);
        EXPECT_EQ(result, -EBADF);
        result = co_await transfer(*ring, &device, IoKind::kWrite, read_only, buffer.data(), 4096, 0);
        EXPECT_EQ(result, -EBADF);
    });
    close(read_only);
    EXPECT_EQ(ring->stats().copied_inline, 2u);
}

TEST(RingInlineCopy, FaultHookDisablesInlineCopies) {
    auto ring = make_ring();
    TempFile file(1 << 20);
    DeviceIo device;
    device.inline_copy_max_bytes = 64 << 10;
    FaultPlan plan;
    plan.clamp_percent = 100;
    ring->set_fault_hook(inject, &plan);
    std::vector<uint8_t> buffer(16384);
    run_on_ring(*ring, [&]() -> Task<void> {
        int result = co_await transfer(*ring, &device, IoKind::kWrite, file.fd(), buffer.data(),
                                       uint32_t(buffer.size()), 0);
        EXPECT_EQ(result, int(buffer.size()));
    });
    EXPECT_EQ(ring->stats().copied_inline, 0u);
    EXPECT_GT(ring->stats().resubmitted_short, 0u);
}

}  // namespace
}  // namespace ecraid
