// SPDX-License-Identifier: Apache-2.0
// NBD transmission phase over raw sockets: out-of-range and oversized requests, payload
// draining, reply formats with and without structured replies, malformed requests and
// clients that go away mid-request.
#include <algorithm>
#include <cstring>
#include <vector>

#include <gtest/gtest.h>

#include "nbd/protocol.h"
#include "nbd/transmission.h"
#include "unit/nbd_test_support.h"

namespace ecraid::testing {
namespace {

// Not a multiple of any stripe width, to catch rounding at the end of the export.
constexpr uint64_t kExportBytes = 64ull * 1024 * 1024 - 4096;

class NbdTransmission : public ::testing::Test {
protected:
    void connect(bool structured_replies = false) {
        client_ = std::make_unique<RawClient>(harness_.socket_path());
        ASSERT_TRUE(client_->handshake(structured_replies));
    }

    ServerHarness harness_{kExportBytes};
    std::unique_ptr<RawClient> client_;
};

TEST_F(NbdTransmission, ReadPastEndIsEinval) {
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 0, kExportBytes - 512, 1024), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 0, kExportBytes, 1), nbd::kEinval);
    // The failed reads carried no payload: the next reply parses.
    std::vector<uint8_t> data;
    EXPECT_EQ(client_->simple_read(kExportBytes - 512, 512, &data), 0);
}

TEST_F(NbdTransmission, WrappingOffsetIsEinval) {
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 0, 0xFFFFFFFFFFFFFE00ull, 0x400),
              nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdTrim, 0, 0xFFFFFFFFFFFFFE00ull, 0x400),
              nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWriteZeroes, 0, 0xFFFFFFFFFFFFFE00ull, 0x400),
              nbd::kEinval);
}

TEST_F(NbdTransmission, WritePastEndIsEnospcAndPayloadDrained) {
    std::vector<uint8_t> tail = pattern(512, 1);
    harness_.device().fill(kExportBytes - 512, tail);
    std::vector<uint8_t> head = pattern(512, 2);
    harness_.device().fill(0, head);
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdWrite, 0, kExportBytes - 512, 1024,
                                      pattern(1024, 3)),
              nbd::kEnospc);
    // Exactly 1024 payload bytes were consumed: the next request parses and reads right.
    std::vector<uint8_t> data;
    ASSERT_EQ(client_->simple_read(0, 512, &data), 0);
    EXPECT_EQ(data, head);
    EXPECT_EQ(harness_.device().contents(kExportBytes - 512, 512), tail);
    EXPECT_EQ(harness_.device().writes(), 0u);
}

TEST_F(NbdTransmission, DeviceWriteErrorKeepsStreamInSync) {
    harness_.device().fail_writes(0, 64 * 1024, EIO);
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdWrite, 0, 0, 64 * 1024, pattern(64 * 1024, 4)),
              nbd::kEio);
    std::vector<uint8_t> payload = pattern(4096, 5);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWrite, 0, 1024 * 1024, 4096, payload), 0);
    std::vector<uint8_t> data;
    ASSERT_EQ(client_->simple_read(1024 * 1024, 4096, &data), 0);
    EXPECT_EQ(data, payload);
}

TEST_F(NbdTransmission, TrimAndZeroesPastEndChangeNothing) {
    std::vector<uint8_t> tail = pattern(8192, 6);
    harness_.device().fill(kExportBytes - 8192, tail);
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdTrim, 0, kExportBytes - 4096, 8192), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWriteZeroes, 0, kExportBytes - 4096, 8192),
              nbd::kEnospc);
    EXPECT_EQ(harness_.device().contents(kExportBytes - 8192, 8192), tail);
    EXPECT_EQ(harness_.device().trims(), 0u);
    EXPECT_EQ(harness_.device().zeroes(), 0u);
}

TEST(NbdReadOnly, WritesAreEpermAndPayloadConsumed) {
    ServerHarness harness(kExportBytes, true);
    std::vector<uint8_t> original = pattern(4096, 7);
    harness.device().fill(0, original);
    RawClient client(harness.socket_path());
    uint16_t flags = 0;
    ASSERT_TRUE(client.handshake(false, &flags));
    EXPECT_NE(flags & nbd::kFlagReadOnly, 0);
    EXPECT_EQ(client.simple_request(nbd::kCmdWrite, 0, 0, 4096, pattern(4096, 8)), nbd::kEperm);
    EXPECT_EQ(client.simple_request(nbd::kCmdTrim, 0, 0, 4096), nbd::kEperm);
    EXPECT_EQ(client.simple_request(nbd::kCmdWriteZeroes, 0, 0, 4096), nbd::kEperm);
    std::vector<uint8_t> data;
    ASSERT_EQ(client.simple_read(0, 4096, &data), 0);
    EXPECT_EQ(data, original);
    EXPECT_EQ(harness.device().contents(0, 4096), original);
}

TEST_F(NbdTransmission, UnknownCommandIsEinval) {
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdCache, 0, 0, 4096), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdBlockStatus, 0, 0, 4096), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(42, 0, 0, 0), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, UnknownFlagsAreEinval) {
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 1u << 9, 0, 4096), nbd::kEinval);
    // DF and FAST_ZERO are not advertised; NO_HOLE applies to WRITE_ZEROES only.
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, nbd::kCmdFlagDf, 0, 4096), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWriteZeroes, nbd::kCmdFlagFastZero, 0, 4096),
              nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdTrim, nbd::kCmdFlagNoHole, 0, 4096),
              nbd::kEinval);
    // A rejected WRITE's payload is drained.
    EXPECT_EQ(client_->simple_request(nbd::kCmdWrite, nbd::kCmdFlagNoHole, 0, 4096,
                                      pattern(4096, 9)),
              nbd::kEinval);
    EXPECT_EQ(harness_.device().writes(), 0u);
    // FUA is valid on every command.
    EXPECT_EQ(client_->simple_request(nbd::kCmdFlush, nbd::kCmdFlagFua, 0, 0), 0);
    std::vector<uint8_t> data;
    EXPECT_EQ(client_->simple_read(0, 512, &data), 0);
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, nbd::kCmdFlagFua, 0, 512), 0);
    bool received = false;
    client_->receive(512, &received);
    EXPECT_TRUE(received);
}

TEST_F(NbdTransmission, ZeroLengthIsEinval) {
    connect();
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 0, 0, 0), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWrite, 0, 0, 0), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdTrim, 0, 0, 0), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWriteZeroes, 0, 0, 0), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdFlush, 0, 4096, 0), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, BadMagicClosesConnectionOnly) {
    connect();
    std::vector<uint8_t> garbage = pattern(nbd::kRequestBytes, 10);
    ASSERT_TRUE(client_->send_bytes(garbage));
    EXPECT_TRUE(client_->closed_by_server());
    RawClient next(harness_.socket_path());
    ASSERT_TRUE(next.handshake());
    EXPECT_EQ(next.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, HugeWriteLengthRepliesAndCloses) {
    connect();
    MemoryUsage before = memory_usage();
    ASSERT_TRUE(client_->send_request(nbd::kCmdWrite, 0, 77, 0, 0xFFFFFFFFu));
    SimpleReply reply;
    ASSERT_TRUE(client_->read_simple_reply(&reply));
    EXPECT_EQ(reply.magic, nbd::kSimpleReplyMagic);
    EXPECT_EQ(reply.cookie, 77u);
    EXPECT_EQ(reply.error, nbd::kEinval);
    EXPECT_TRUE(client_->closed_by_server());
    MemoryUsage after = memory_usage();
    EXPECT_LT(after.resident_bytes, before.resident_bytes + 16 * 1024 * 1024);
    EXPECT_LT(after.virtual_bytes, before.virtual_bytes + 1024ull * 1024 * 1024);
    // Other connections are unaffected.
    RawClient next(harness_.socket_path());
    ASSERT_TRUE(next.handshake());
    EXPECT_EQ(next.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, HugeReadLengthIsEinval) {
    connect();
    MemoryUsage before = memory_usage();
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 0, 0, 0xFFFFFFFFu), nbd::kEinval);
    EXPECT_EQ(client_->simple_request(nbd::kCmdRead, 0, 0, nbd::kPayloadBytesMax + 1),
              nbd::kEinval);
    MemoryUsage after = memory_usage();
    EXPECT_LT(after.virtual_bytes, before.virtual_bytes + 1024ull * 1024 * 1024);
    EXPECT_EQ(client_->simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, MaxPayloadWriteAccepted) {
    connect();
    std::vector<uint8_t> payload = pattern(nbd::kPayloadBytesMax, 11);
    EXPECT_EQ(client_->simple_request(nbd::kCmdWrite, 0, 4096, nbd::kPayloadBytesMax, payload),
              0);
    EXPECT_EQ(harness_.device().contents(4096, payload.size()), payload);
    std::vector<uint8_t> data;
    ASSERT_EQ(client_->simple_read(4096, nbd::kPayloadBytesMax, &data), 0);
    EXPECT_EQ(data, payload);
}

TEST(NbdLargeExport, HugeWriteZeroesUsesBoundedMemory) {
    ServerHarness harness(8ull * 1024 * 1024 * 1024);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.handshake());
    harness.device().fill(4096, pattern(4096, 12));
    MemoryUsage before = memory_usage();
    EXPECT_EQ(client.simple_request(nbd::kCmdWriteZeroes, 0, 0, 0xFFFFFFFFu), 0);
    EXPECT_EQ(client.simple_request(nbd::kCmdTrim, 0, 0x100000000ull, 0xFFFFFFFFu), 0);
    MemoryUsage after = memory_usage();
    EXPECT_LT(after.resident_bytes, before.resident_bytes + 16 * 1024 * 1024);
    EXPECT_EQ(harness.device().contents(4096, 4096), std::vector<uint8_t>(4096, 0));
    EXPECT_TRUE(harness.device().last_may_punch());
    EXPECT_EQ(client.simple_request(nbd::kCmdWriteZeroes, nbd::kCmdFlagNoHole, 0, 4096), 0);
    EXPECT_FALSE(harness.device().last_may_punch());
}

TEST_F(NbdTransmission, SimpleReplyForFailedReadHasNoPayload) {
    harness_.device().fail_reads(8192, 4096, EIO);
    connect();
    ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, 1, 0, 64 * 1024));
    ASSERT_TRUE(client_->send_request(nbd::kCmdFlush, 0, 2, 0, 0));
    SimpleReply first;
    ASSERT_TRUE(client_->read_simple_reply(&first));
    EXPECT_EQ(first.magic, nbd::kSimpleReplyMagic);
    EXPECT_EQ(first.cookie, 1u);
    EXPECT_EQ(first.error, nbd::kEio);
    // The next bytes are the flush reply, not read data.
    SimpleReply second;
    ASSERT_TRUE(client_->read_simple_reply(&second));
    EXPECT_EQ(second.magic, nbd::kSimpleReplyMagic);
    EXPECT_EQ(second.cookie, 2u);
    EXPECT_EQ(second.error, 0u);
}

TEST_F(NbdTransmission, StructuredReadReturnsOneDataChunk) {
    std::vector<uint8_t> content = pattern(128 * 1024, 13);
    harness_.device().fill(65536, content);
    connect(true);
    ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, 5, 65536, 128 * 1024));
    Chunk chunk;
    ASSERT_TRUE(client_->read_chunk(&chunk));
    EXPECT_EQ(chunk.magic, nbd::kStructuredReplyMagic);
    EXPECT_EQ(chunk.cookie, 5u);
    EXPECT_EQ(chunk.type, nbd::kReplyTypeOffsetData);
    EXPECT_EQ(chunk.flags, nbd::kReplyFlagDone);
    ASSERT_EQ(chunk.payload.size(), 8 + content.size());
    EXPECT_EQ(nbd::load_be64(chunk.payload.data()), 65536u);
    EXPECT_TRUE(std::equal(content.begin(), content.end(), chunk.payload.begin() + 8));
}

TEST_F(NbdTransmission, KeptReadBufferIsReadAgain) {
    std::vector<uint8_t> content = pattern(64 * 1024, 21);
    harness_.device().fill(0, content);
    harness_.device().keep_read_buffers(2);
    connect(true);
    ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, 7, 0, 64 * 1024));
    Chunk chunk;
    ASSERT_TRUE(client_->read_chunk(&chunk));
    EXPECT_EQ(chunk.type, nbd::kReplyTypeOffsetData);
    ASSERT_EQ(chunk.payload.size(), 8 + content.size());
    EXPECT_TRUE(std::equal(content.begin(), content.end(), chunk.payload.begin() + 8));
    EXPECT_EQ(harness_.device().kept_buffers(), 2u);
}

TEST_F(NbdTransmission, ReadKeptTooOftenFailsWithEio) {
    harness_.device().keep_read_buffers(100);
    connect();
    ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, 8, 0, 4096));
    SimpleReply reply;
    ASSERT_TRUE(client_->read_simple_reply(&reply));
    EXPECT_EQ(reply.cookie, 8u);
    EXPECT_EQ(reply.error, nbd::kEio);
    // The connection still serves requests.
    ASSERT_TRUE(client_->send_request(nbd::kCmdFlush, 0, 9, 0, 0));
    ASSERT_TRUE(client_->read_simple_reply(&reply));
    EXPECT_EQ(reply.cookie, 9u);
    EXPECT_EQ(reply.error, 0u);
}

TEST_F(NbdTransmission, StructuredPartialReadReportsErrorOffset) {
    constexpr uint64_t kStart = 1024 * 1024;
    constexpr uint32_t kLength = 128 * 1024;
    constexpr uint64_t kBadStart = kStart + 60 * 1024;
    std::vector<uint8_t> content = pattern(kLength, 14);
    harness_.device().fill(kStart, content);
    harness_.device().fail_reads(kBadStart, 4096, EIO);
    connect(true);
    ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, 6, kStart, kLength));

    std::vector<bool> covered(kLength, false);
    bool saw_error_offset = false;
    bool done = false;
    while (!done) {
        Chunk chunk;
        ASSERT_TRUE(client_->read_chunk(&chunk));
        ASSERT_EQ(chunk.magic, nbd::kStructuredReplyMagic);
        ASSERT_EQ(chunk.cookie, 6u);
        done = (chunk.flags & nbd::kReplyFlagDone) != 0;
        if (chunk.type == nbd::kReplyTypeOffsetData) {
            ASSERT_GE(chunk.payload.size(), 9u);
            uint64_t offset = nbd::load_be64(chunk.payload.data());
            uint64_t bytes = chunk.payload.size() - 8;
            ASSERT_GE(offset, kStart);
            ASSERT_LE(offset + bytes, kStart + kLength);
            // No data chunk may cover the failed range.
            EXPECT_TRUE(offset + bytes <= kBadStart || offset >= kBadStart + 4096);
            for (uint64_t i = 0; i < bytes; ++i) {
                ASSERT_FALSE(covered[offset - kStart + i]) << "overlapping chunks";
                covered[offset - kStart + i] = true;
                ASSERT_EQ(chunk.payload[8 + i], content[offset - kStart + i]);
            }
        } else if (chunk.type == nbd::kReplyTypeErrorOffset) {
            ASSERT_EQ(chunk.payload.size(), 14u);
            EXPECT_EQ(nbd::load_be32(chunk.payload.data()), nbd::kEio);
            uint64_t offset = nbd::load_be64(chunk.payload.data() + 6);
            EXPECT_GE(offset, kBadStart);
            EXPECT_LT(offset, kBadStart + 4096);
            saw_error_offset = true;
        } else {
            EXPECT_EQ(chunk.type, nbd::kReplyTypeNone);
            EXPECT_TRUE(done);
        }
    }
    EXPECT_TRUE(saw_error_offset);
    for (uint64_t i = 0; i < kLength; ++i) {
        bool in_bad = kStart + i >= kBadStart && kStart + i < kBadStart + 4096;
        ASSERT_EQ(covered[i], !in_bad) << "byte " << i;
    }
}

TEST_F(NbdTransmission, StructuredErrorsUseErrorChunks) {
    connect(true);
    ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, 7, kExportBytes, 4096));
    Chunk read_error;
    ASSERT_TRUE(client_->read_chunk(&read_error));
    EXPECT_EQ(read_error.magic, nbd::kStructuredReplyMagic);
    EXPECT_EQ(read_error.type, nbd::kReplyTypeError);
    EXPECT_EQ(read_error.flags, nbd::kReplyFlagDone);
    ASSERT_GE(read_error.payload.size(), 6u);
    EXPECT_EQ(nbd::load_be32(read_error.payload.data()), nbd::kEinval);
    uint16_t message_bytes = nbd::load_be16(read_error.payload.data() + 4);
    EXPECT_EQ(read_error.payload.size(), 6u + message_bytes);

    ASSERT_TRUE(client_->send_request(nbd::kCmdWrite, 0, 8, 0, 512, pattern(512, 15)));
    Chunk write_done;
    ASSERT_TRUE(client_->read_chunk(&write_done));
    EXPECT_EQ(write_done.type, nbd::kReplyTypeNone);
    EXPECT_EQ(write_done.flags, nbd::kReplyFlagDone);
    EXPECT_EQ(write_done.cookie, 8u);
    EXPECT_TRUE(write_done.payload.empty());
}

TEST_F(NbdTransmission, DiscFinishesOutstandingRequests) {
    harness_.device().set_delay_ns(100 * 1000 * 1000);
    connect();
    std::vector<std::vector<uint8_t>> payloads;
    for (uint64_t i = 0; i < 4; ++i) {
        payloads.push_back(pattern(4096, static_cast<uint32_t>(20 + i)));
        ASSERT_TRUE(client_->send_request(nbd::kCmdWrite, 0, 100 + i, i * 4096, 4096,
                                          payloads.back()));
    }
    ASSERT_TRUE(client_->send_request(nbd::kCmdDisc, 0, 200, 0, 0));
    std::vector<uint64_t> cookies;
    for (int i = 0; i < 4; ++i) {
        SimpleReply reply;
        ASSERT_TRUE(client_->read_simple_reply(&reply));
        EXPECT_EQ(reply.error, 0u);
        cookies.push_back(reply.cookie);
    }
    std::sort(cookies.begin(), cookies.end());
    EXPECT_EQ(cookies, (std::vector<uint64_t>{100, 101, 102, 103}));
    EXPECT_TRUE(client_->closed_by_server());
    for (uint64_t i = 0; i < 4; ++i) {
        EXPECT_EQ(harness_.device().contents(i * 4096, 4096), payloads[i]);
    }
}

TEST_F(NbdTransmission, DisconnectMidPayloadLeavesServerServing) {
    connect();
    ASSERT_TRUE(client_->send_request(nbd::kCmdWrite, 0, 1, 0, 1024 * 1024));
    ASSERT_TRUE(client_->send_bytes(pattern(100 * 1024, 16)));
    client_->close_socket();
    EXPECT_TRUE(harness_.wait_for_no_connections());
    EXPECT_EQ(harness_.device().writes(), 0u);
    RawClient next(harness_.socket_path());
    ASSERT_TRUE(next.handshake());
    EXPECT_EQ(next.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, DisconnectWithRequestsInFlight) {
    harness_.device().set_delay_ns(50 * 1000 * 1000);
    connect();
    for (uint64_t i = 0; i < 16; ++i) {
        ASSERT_TRUE(client_->send_request(nbd::kCmdRead, 0, i, i * 65536, 65536));
    }
    client_->close_socket();
    EXPECT_TRUE(harness_.wait_for_no_connections());
    RawClient next(harness_.socket_path());
    ASSERT_TRUE(next.handshake());
    EXPECT_EQ(next.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST_F(NbdTransmission, RequestsOnOneConnectionRunConcurrently) {
    harness_.device().set_delay_ns(20 * 1000 * 1000);
    connect();
    for (uint64_t i = 0; i < 32; ++i) {
        ASSERT_TRUE(client_->send_request(nbd::kCmdWrite, 0, i, i * 4096, 4096,
                                          pattern(4096, static_cast<uint32_t>(i))));
    }
    for (int i = 0; i < 32; ++i) {
        SimpleReply reply;
        ASSERT_TRUE(client_->read_simple_reply(&reply));
        EXPECT_EQ(reply.error, 0u);
    }
    EXPECT_GT(harness_.device().in_flight_max(), 8u);
}

TEST(NbdValidate, RulesWithoutSideEffects) {
    const char* reason = nullptr;
    nbd::RequestHeader read{0, nbd::kCmdRead, 1, 0, 4096};
    EXPECT_EQ(nbd::validate_request(read, 8192, false, &reason), 0);
    read.offset = 8192 - 4095;
    EXPECT_EQ(nbd::validate_request(read, 8192, false, &reason), EINVAL);
    nbd::RequestHeader write{0, nbd::kCmdWrite, 1, 8192 - 4095, 4096};
    EXPECT_EQ(nbd::validate_request(write, 8192, false, &reason), ENOSPC);
    EXPECT_EQ(nbd::validate_request(write, 8192, true, &reason), EPERM);
    nbd::RequestHeader zeroes{nbd::kCmdFlagNoHole | nbd::kCmdFlagFua, nbd::kCmdWriteZeroes, 1, 0,
                              0xFFFFFFFFu};
    EXPECT_EQ(nbd::validate_request(zeroes, 1ull << 33, false, &reason), 0);
    nbd::RequestHeader big_read{0, nbd::kCmdRead, 1, 0, nbd::kPayloadBytesMax + 1};
    EXPECT_EQ(nbd::validate_request(big_read, 1ull << 40, false, &reason), EINVAL);
    nbd::RequestHeader flush{0, nbd::kCmdFlush, 1, 0, 0};
    EXPECT_EQ(nbd::validate_request(flush, 8192, true, &reason), 0);
}

}  // namespace
}  // namespace ecraid::testing
