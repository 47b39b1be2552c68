// SPDX-License-Identifier: Apache-2.0
// The NBD server driven by libnbd: round trips with and without structured replies, many
// concurrent requests over several connections, and FLUSH/FUA durability across
// connections (the server advertises CAN_MULTI_CONN).
#ifdef ECRAID_HAVE_LIBNBD

#include <libnbd.h>

#include <algorithm>
#include <cerrno>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "unit/nbd_test_support.h"

namespace ecraid::testing {
namespace {

constexpr uint64_t kExportBytes = 64ull * 1024 * 1024;

struct Connection {
    explicit Connection(const std::string& path, bool structured_replies = true) {
        EXPECT_NE(handle, nullptr);
        nbd_set_request_structured_replies(handle, structured_replies);
        connected = nbd_connect_unix(handle, path.c_str()) == 0;
        EXPECT_TRUE(connected) << nbd_get_error();
    }
    ~Connection() { nbd_close(handle); }
    nbd_handle* handle = nbd_create();
    bool connected = false;
};

class NbdLibnbd : public ::testing::TestWithParam<bool> {
protected:
    ServerHarness harness_{kExportBytes};
};

TEST_P(NbdLibnbd, ReadWriteFlushTrimZeroes) {
    Connection nbd(harness_.socket_path(), GetParam());
    ASSERT_TRUE(nbd.connected);
    EXPECT_EQ(nbd_get_structured_replies_negotiated(nbd.handle), GetParam() ? 1 : 0);

    std::vector<uint8_t> data = pattern(1024 * 1024 + 513, 1);
    ASSERT_EQ(nbd_pwrite(nbd.handle, data.data(), data.size(), 4097, 0), 0) << nbd_get_error();
    std::vector<uint8_t> back(data.size());
    ASSERT_EQ(nbd_pread(nbd.handle, back.data(), back.size(), 4097, 0), 0) << nbd_get_error();
    EXPECT_EQ(back, data);

    ASSERT_EQ(nbd_pwrite(nbd.handle, data.data(), 4096, 0, LIBNBD_CMD_FLAG_FUA), 0);
    EXPECT_TRUE(harness_.device().last_fua());
    EXPECT_EQ(harness_.device().durable_contents(0, 4096),
              std::vector<uint8_t>(data.begin(), data.begin() + 4096));
    ASSERT_EQ(nbd_flush(nbd.handle, 0), 0);
    EXPECT_EQ(harness_.device().flushes(), 1u);

    ASSERT_EQ(nbd_trim(nbd.handle, 65536, 65536, 0), 0) << nbd_get_error();
    ASSERT_EQ(nbd_zero(nbd.handle, 8192, 200000, LIBNBD_CMD_FLAG_NO_HOLE), 0) << nbd_get_error();
    EXPECT_FALSE(harness_.device().last_may_punch());
    std::vector<uint8_t> zeros(8192);
    ASSERT_EQ(nbd_pread(nbd.handle, zeros.data(), zeros.size(), 200000, 0), 0);
    EXPECT_EQ(zeros, std::vector<uint8_t>(8192, 0));
    EXPECT_EQ(harness_.device().trims(), 1u);
    EXPECT_EQ(harness_.device().zeroes(), 1u);
    EXPECT_EQ(nbd_shutdown(nbd.handle, 0), 0);
}

TEST_P(NbdLibnbd, ReadErrorIsReportedAsEio) {
    harness_.device().fail_reads(65536 + 4096, 4096, EIO);
    Connection nbd(harness_.socket_path(), GetParam());
    ASSERT_TRUE(nbd.connected);
    std::vector<uint8_t> buffer(65536);
    EXPECT_EQ(nbd_pread(nbd.handle, buffer.data(), buffer.size(), 65536, 0), -1);
    EXPECT_EQ(nbd_get_errno(), EIO);
    // The connection stays usable after the failed read.
    EXPECT_EQ(nbd_pread(nbd.handle, buffer.data(), 4096, 0, 0), 0) << nbd_get_error();
}

TEST_P(NbdLibnbd, OutOfRangeRequestsFailCleanly) {
    Connection nbd(harness_.socket_path(), GetParam());
    ASSERT_TRUE(nbd.connected);
    // Turn off libnbd's own bounds checks so the requests reach the server.
    ASSERT_EQ(nbd_set_strict_mode(nbd.handle, 0), 0);
    std::vector<uint8_t> buffer(8192);
    EXPECT_EQ(nbd_pread(nbd.handle, buffer.data(), buffer.size(), kExportBytes - 4096, 0), -1);
    EXPECT_EQ(nbd_get_errno(), EINVAL);
    EXPECT_EQ(nbd_pwrite(nbd.handle, buffer.data(), buffer.size(), kExportBytes - 4096, 0), -1);
    EXPECT_EQ(nbd_get_errno(), ENOSPC);
    EXPECT_EQ(nbd_pread(nbd.handle, buffer.data(), 4096, 0, 0), 0) << nbd_get_error();
}

INSTANTIATE_TEST_SUITE_P(Replies, NbdLibnbd, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& param_info) {
                             return param_info.param ? "Structured" : "Simple";
                         });

// Runs `count` random 4 KiB writes then reads on one connection with aio, all in flight at
// once, each connection in its own region. Returns the number of mismatches or failures.
int run_random_aio(const std::string& path, uint64_t region_start, uint32_t seed, int count) {
    Connection nbd(path);
    if (!nbd.connected) return 1;
    std::mt19937 random(seed);
    std::vector<std::vector<uint8_t>> blocks(count);
    std::vector<int64_t> cookies;
    for (int i = 0; i < count; ++i) {
        blocks[i] = pattern(4096, seed * 1000 + static_cast<uint32_t>(i));
        cookies.push_back(nbd_aio_pwrite(nbd.handle, blocks[i].data(), 4096,
                                         region_start + uint64_t(i) * 4096,
                                         NBD_NULL_COMPLETION, 0));
    }
    while (nbd_aio_in_flight(nbd.handle) > 0) {
        if (nbd_poll(nbd.handle, kReplyTimeoutMs) <= 0) return 1;
    }
    int failures = 0;
    for (int64_t cookie : cookies) {
        if (cookie < 0 || nbd_aio_command_completed(nbd.handle, cookie) != 1) ++failures;
    }
    std::vector<std::vector<uint8_t>> reads(count, std::vector<uint8_t>(4096));
    cookies.clear();
    std::vector<int> order(count);
    for (int i = 0; i < count; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), random);
    for (int i : order) {
        cookies.push_back(nbd_aio_pread(nbd.handle, reads[i].data(), 4096,
                                        region_start + uint64_t(i) * 4096,
                                        NBD_NULL_COMPLETION, 0));
    }
    while (nbd_aio_in_flight(nbd.handle) > 0) {
        if (nbd_poll(nbd.handle, kReplyTimeoutMs) <= 0) return 1;
    }
    for (int64_t cookie : cookies) {
        if (cookie < 0 || nbd_aio_command_completed(nbd.handle, cookie) != 1) ++failures;
    }
    for (int i = 0; i < count; ++i) {
        if (reads[i] != blocks[i]) ++failures;
    }
    return failures;
}

TEST(NbdLibnbdConcurrency, ManyRequestsOverSeveralConnections) {
    ServerHarness harness(kExportBytes);
    harness.device().set_delay_ns(1000 * 1000);
    constexpr int kConnections = 6;
    constexpr int kRequests = 200;
    std::vector<int> failures(kConnections, -1);
    std::vector<std::thread> threads;
    for (int c = 0; c < kConnections; ++c) {
        threads.emplace_back([&, c] {
            failures[c] = run_random_aio(harness.socket_path(), uint64_t(c) * 8 * 1024 * 1024,
                                         static_cast<uint32_t>(c + 1), kRequests);
        });
    }
    for (auto& thread : threads) thread.join();
    for (int c = 0; c < kConnections; ++c) EXPECT_EQ(failures[c], 0) << "connection " << c;
    EXPECT_GT(harness.device().in_flight_max(), 16u);
}

TEST(NbdDurability, FlushCoversWritesFromAllConnections) {
    ServerHarness harness(kExportBytes);
    Connection writer(harness.socket_path());
    Connection flusher(harness.socket_path());
    ASSERT_TRUE(writer.connected);
    ASSERT_TRUE(flusher.connected);
    ASSERT_EQ(nbd_can_multi_conn(writer.handle), 1);

    // 256 writes without FUA at queue depth 64, all replied to, then FLUSH on another
    // connection: every write must be in the durable copy.
    std::vector<std::vector<uint8_t>> blocks;
    std::mt19937 random(3);
    std::vector<uint64_t> offsets;
    for (int i = 0; i < 256; ++i) {
        offsets.push_back((random() % (kExportBytes / 4096)) * 4096);
        blocks.push_back(pattern(4096, 500 + static_cast<uint32_t>(i)));
    }
    for (int i = 0; i < 256; ++i) {
        while (nbd_aio_in_flight(writer.handle) >= 64) {
            ASSERT_GT(nbd_poll(writer.handle, kReplyTimeoutMs), 0);
        }
        ASSERT_GE(nbd_aio_pwrite(writer.handle, blocks[i].data(), 4096, offsets[i],
                                 NBD_NULL_COMPLETION, 0),
                  0);
    }
    while (nbd_aio_in_flight(writer.handle) > 0) {
        ASSERT_GT(nbd_poll(writer.handle, kReplyTimeoutMs), 0);
    }
    // A later write to the same offset wins, so compare against the last write per offset.
    std::map<uint64_t, int> last_write;
    for (int i = 0; i < 256; ++i) last_write[offsets[i]] = i;
    ASSERT_EQ(nbd_flush(flusher.handle, 0), 0) << nbd_get_error();
    for (const auto& [offset, index] : last_write) {
        ASSERT_EQ(harness.device().durable_contents(offset, 4096), blocks[index]);
    }
    // The other connection reads the data right after the writer's replies.
    std::vector<uint8_t> seen(4096);
    ASSERT_EQ(nbd_pread(flusher.handle, seen.data(), 4096, offsets[0], 0), 0);
    EXPECT_EQ(seen, blocks[last_write[offsets[0]]]);
}

TEST(NbdDurability, FlushWhileWritesOutstandingCompletes) {
    ServerHarness harness(kExportBytes);
    harness.device().set_delay_ns(20 * 1000 * 1000);
    Connection nbd(harness.socket_path());
    ASSERT_TRUE(nbd.connected);
    std::vector<uint8_t> block = pattern(4096, 9);
    for (int i = 0; i < 64; ++i) {
        ASSERT_GE(nbd_aio_pwrite(nbd.handle, block.data(), 4096, uint64_t(i) * 4096,
                                 NBD_NULL_COMPLETION, 0),
                  0);
    }
    int64_t flush = nbd_aio_flush(nbd.handle, NBD_NULL_COMPLETION, 0);
    ASSERT_GE(flush, 0);
    while (nbd_aio_in_flight(nbd.handle) > 0) {
        ASSERT_GT(nbd_poll(nbd.handle, kReplyTimeoutMs), 0);
    }
    EXPECT_EQ(nbd_aio_command_completed(nbd.handle, flush), 1);
}

}  // namespace
}  // namespace ecraid::testing

#endif  // ECRAID_HAVE_LIBNBD
