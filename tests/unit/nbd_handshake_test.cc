// SPDX-License-Identifier: Apache-2.0
// NBD handshake: export information through libnbd, and raw-socket option negotiation
// including malformed and oversized options.
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#ifdef ECRAID_HAVE_LIBNBD
#include <libnbd.h>
#endif

#include "nbd/handshake.h"
#include "nbd/protocol.h"
#include "unit/nbd_test_support.h"

namespace ecraid::testing {
namespace {

constexpr uint64_t kExportBytes = 64ull * 1024 * 1024 - 4096;

nbd::ServerOptions named_export(const std::string& name, const std::string& description = "") {
    nbd::ServerOptions options;
    options.export_name = name;
    options.export_description = description;
    return options;
}

#ifdef ECRAID_HAVE_LIBNBD

struct NbdHandle {
    nbd_handle* handle = nbd_create();
    ~NbdHandle() { nbd_close(handle); }
};

TEST(NbdHandshake, LibnbdSeesSizeFlagsAndBlockSizes) {
    ServerHarness harness(kExportBytes, false, named_export("array0", "test array"));
    NbdHandle nbd;
    ASSERT_NE(nbd.handle, nullptr);
    ASSERT_EQ(nbd_set_export_name(nbd.handle, "array0"), 0);
    ASSERT_EQ(nbd_set_full_info(nbd.handle, true), 0);
    ASSERT_EQ(nbd_connect_unix(nbd.handle, harness.socket_path().c_str()), 0) << nbd_get_error();

    EXPECT_EQ(nbd_get_size(nbd.handle), static_cast<int64_t>(kExportBytes));
    EXPECT_EQ(nbd_is_read_only(nbd.handle), 0);
    EXPECT_EQ(nbd_can_flush(nbd.handle), 1);
    EXPECT_EQ(nbd_can_fua(nbd.handle), 1);
    EXPECT_EQ(nbd_can_trim(nbd.handle), 1);
    EXPECT_EQ(nbd_can_zero(nbd.handle), 1);
    EXPECT_EQ(nbd_can_multi_conn(nbd.handle), 1);
    EXPECT_EQ(nbd_can_fast_zero(nbd.handle), 0);
    EXPECT_EQ(nbd_can_df(nbd.handle), 0);
    EXPECT_EQ(nbd_get_block_size(nbd.handle, LIBNBD_SIZE_MINIMUM), 1);
    EXPECT_EQ(nbd_get_block_size(nbd.handle, LIBNBD_SIZE_PREFERRED), 4096);
    EXPECT_EQ(nbd_get_block_size(nbd.handle, LIBNBD_SIZE_MAXIMUM), 32 * 1024 * 1024);
    EXPECT_EQ(nbd_get_structured_replies_negotiated(nbd.handle), 1);

    char* name = nbd_get_canonical_export_name(nbd.handle);
    ASSERT_NE(name, nullptr);
    EXPECT_STREQ(name, "array0");
    free(name);
    char* description = nbd_get_export_description(nbd.handle);
    ASSERT_NE(description, nullptr);
    EXPECT_STREQ(description, "test array");
    free(description);
    EXPECT_EQ(nbd_shutdown(nbd.handle, 0), 0);
}

TEST(NbdHandshake, LibnbdDefaultExportName) {
    ServerHarness harness(kExportBytes, false, named_export("array0"));
    NbdHandle nbd;
    ASSERT_EQ(nbd_connect_unix(nbd.handle, harness.socket_path().c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_size(nbd.handle), static_cast<int64_t>(kExportBytes));
}

TEST(NbdHandshake, LibnbdUnknownExportFails) {
    ServerHarness harness(kExportBytes, false, named_export("array0"));
    NbdHandle nbd;
    ASSERT_EQ(nbd_set_export_name(nbd.handle, "other"), 0);
    EXPECT_EQ(nbd_connect_unix(nbd.handle, harness.socket_path().c_str()), -1);
}

TEST(NbdHandshake, LibnbdReadOnlyFlags) {
    ServerHarness harness(kExportBytes, true);
    NbdHandle nbd;
    ASSERT_EQ(nbd_connect_unix(nbd.handle, harness.socket_path().c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_is_read_only(nbd.handle), 1);
    EXPECT_EQ(nbd_can_trim(nbd.handle), 0);
    EXPECT_EQ(nbd_can_zero(nbd.handle), 0);
    EXPECT_EQ(nbd_can_flush(nbd.handle), 1);
}

TEST(NbdHandshake, LibnbdWithoutStructuredReplies) {
    ServerHarness harness(kExportBytes);
    NbdHandle nbd;
    ASSERT_EQ(nbd_set_request_structured_replies(nbd.handle, false), 0);
    ASSERT_EQ(nbd_connect_unix(nbd.handle, harness.socket_path().c_str()), 0) << nbd_get_error();
    EXPECT_EQ(nbd_get_structured_replies_negotiated(nbd.handle), 0);
}

#endif  // ECRAID_HAVE_LIBNBD

TEST(NbdHandshake, GreetingAdvertisesFixedNewstyleAndNoZeroes) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.connected());
    uint8_t greeting[nbd::kServerGreetingBytes];
    ASSERT_TRUE(client.receive(greeting, sizeof(greeting)));
    EXPECT_EQ(nbd::load_be64(greeting), nbd::kInitMagic);
    EXPECT_EQ(nbd::load_be64(greeting + 8), nbd::kOptionMagic);
    EXPECT_EQ(nbd::load_be16(greeting + 16), nbd::kFlagFixedNewstyle | nbd::kFlagNoZeroes);
}

TEST(NbdHandshake, UnknownClientFlagsCloseConnection) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake(nbd::kClientFlagFixedNewstyle | (1u << 5)));
    EXPECT_TRUE(client.closed_by_server());
}

TEST(NbdHandshake, WrongOptionMagicClosesConnection) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    uint8_t header[nbd::kOptionHeaderBytes] = {};
    nbd::store_be64(header, 0x1122334455667788ull);
    nbd::store_be32(header + 8, nbd::kOptGo);
    ASSERT_TRUE(client.send_bytes(header, sizeof(header)));
    EXPECT_TRUE(client.closed_by_server());
}

TEST(NbdHandshake, AbortIsAcknowledged) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_option(nbd::kOptAbort, {}));
    OptionReply reply;
    ASSERT_TRUE(client.read_option_reply(&reply));
    EXPECT_EQ(reply.magic, nbd::kOptionReplyMagic);
    EXPECT_EQ(reply.option, nbd::kOptAbort);
    EXPECT_EQ(reply.type, nbd::kRepAck);
    EXPECT_TRUE(client.closed_by_server());
}

TEST(NbdHandshake, UnknownOptionsGetUnsupAndPayloadIsSkipped) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    // STARTTLS, a metadata context option, and an undefined option, with payloads.
    for (uint32_t option : {nbd::kOptStartTls, 10u, 0x1234u}) {
        ASSERT_TRUE(client.send_option(option, pattern(300, option)));
        OptionReply reply;
        ASSERT_TRUE(client.read_option_reply(&reply));
        EXPECT_EQ(reply.option, option);
        EXPECT_EQ(reply.type, nbd::kRepErrUnsup) << "option " << option;
    }
    // An unknown option larger than the parsed limit is discarded, not parsed.
    ASSERT_TRUE(client.send_option(0x4321, pattern(nbd::kOptionBytesMax + 1000, 1)));
    OptionReply reply;
    ASSERT_TRUE(client.read_option_reply(&reply));
    EXPECT_EQ(reply.type, nbd::kRepErrUnsup);
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, ""));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepAck);
}

TEST(NbdHandshake, ListNamesTheExport) {
    ServerHarness harness(kExportBytes, false, named_export("array0"));
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_option(nbd::kOptList, {}));
    OptionReply server;
    ASSERT_TRUE(client.read_option_reply(&server));
    ASSERT_EQ(server.type, nbd::kRepServer);
    ASSERT_GE(server.payload.size(), 4u);
    uint32_t name_bytes = nbd::load_be32(server.payload.data());
    ASSERT_EQ(name_bytes, 6u);
    EXPECT_EQ(std::string(server.payload.begin() + 4, server.payload.begin() + 10), "array0");
    OptionReply ack;
    ASSERT_TRUE(client.read_option_reply(&ack));
    EXPECT_EQ(ack.type, nbd::kRepAck);

    // LIST takes no data.
    ASSERT_TRUE(client.send_option(nbd::kOptList, {1, 2, 3}));
    OptionReply invalid;
    ASSERT_TRUE(client.read_option_reply(&invalid));
    EXPECT_EQ(invalid.type, nbd::kRepErrInvalid);
}

TEST(NbdHandshake, InfoThenGo) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    uint64_t size = 0;
    uint16_t flags = 0;
    ASSERT_TRUE(client.send_info_option(nbd::kOptInfo, "", {nbd::kInfoBlockSize}));
    ASSERT_EQ(client.read_info_replies(&size, &flags), nbd::kRepAck);
    EXPECT_EQ(size, kExportBytes);
    EXPECT_NE(flags & nbd::kFlagHasFlags, 0);
    EXPECT_NE(flags & nbd::kFlagCanMultiConn, 0);
    EXPECT_EQ(flags & nbd::kFlagReadOnly, 0);
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, ""));
    ASSERT_EQ(client.read_info_replies(), nbd::kRepAck);
    EXPECT_EQ(client.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST(NbdHandshake, ExportNameWithNoZeroes) {
    ServerHarness harness(kExportBytes, false, named_export("array0"));
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    std::string name = "array0";
    ASSERT_TRUE(client.send_option(nbd::kOptExportName,
                                   std::vector<uint8_t>(name.begin(), name.end())));
    uint8_t reply[nbd::kExportNameReplyBytes];
    ASSERT_TRUE(client.receive(reply, sizeof(reply)));
    EXPECT_EQ(nbd::load_be64(reply), kExportBytes);
    // No 124 zero bytes follow: the next bytes are the reply to a request.
    EXPECT_EQ(client.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST(NbdHandshake, ExportNameWithZeroPadding) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake(nbd::kClientFlagFixedNewstyle));
    ASSERT_TRUE(client.send_option(nbd::kOptExportName, {}));
    std::vector<uint8_t> reply(nbd::kExportNameReplyBytes + nbd::kExportNamePaddingBytes, 0xff);
    ASSERT_TRUE(client.receive(reply.data(), reply.size()));
    EXPECT_EQ(nbd::load_be64(reply.data()), kExportBytes);
    for (size_t i = nbd::kExportNameReplyBytes; i < reply.size(); ++i) ASSERT_EQ(reply[i], 0);
    EXPECT_EQ(client.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST(NbdHandshake, ExportNameForUnknownExportCloses) {
    ServerHarness harness(kExportBytes, false, named_export("array0"));
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    std::string name = "nope";
    ASSERT_TRUE(client.send_option(nbd::kOptExportName,
                                   std::vector<uint8_t>(name.begin(), name.end())));
    EXPECT_TRUE(client.closed_by_server());
}

TEST(NbdHandshake, LongUnknownNameThenRealGo) {
    ServerHarness harness(kExportBytes, false, named_export("array0"));
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, std::string(4096, 'x')));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepErrUnknown);
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, "array0"));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepAck);
    EXPECT_EQ(client.simple_request(nbd::kCmdFlush, 0, 0, 0), 0);
}

TEST(NbdHandshake, NameOverLimitIsTooBig) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, std::string(5000, 'y')));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepErrTooBig);
    // The connection stays usable.
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, ""));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepAck);
}

TEST(NbdHandshake, InnerNameLengthPastOptionIsInvalid) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    // The name length says 100 bytes, but the option holds only 10.
    std::vector<uint8_t> payload(10, 0);
    nbd::store_be32(payload.data(), 100);
    ASSERT_TRUE(client.send_option(nbd::kOptGo, payload));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepErrInvalid);
    // A request count that disagrees with the option length is invalid too.
    std::vector<uint8_t> counted(6, 0);
    nbd::store_be16(counted.data() + 4, 3);
    ASSERT_TRUE(client.send_option(nbd::kOptInfo, counted));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepErrInvalid);
    // Too short to hold the fixed fields.
    ASSERT_TRUE(client.send_option(nbd::kOptGo, {0, 0}));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepErrInvalid);
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, ""));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepAck);
}

TEST(NbdHandshake, HugeOptionLengthClosesWithoutAllocating) {
    ServerHarness harness(kExportBytes);
    MemoryUsage before = memory_usage();
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_option_header(nbd::kOptGo, 0xFFFFFFFFu));
    // The server may already have closed the connection, so this send may fail.
    client.send_bytes(pattern(16, 3));
    EXPECT_TRUE(client.closed_by_server());
    MemoryUsage after = memory_usage();
    EXPECT_LT(after.resident_bytes, before.resident_bytes + 16 * 1024 * 1024);
    EXPECT_LT(after.virtual_bytes, before.virtual_bytes + 1024ull * 1024 * 1024);

    // The server keeps serving new connections.
    RawClient next(harness.socket_path());
    EXPECT_TRUE(next.handshake());
}

TEST(NbdHandshake, OversizedKnownOptionIsDrainedAndTooBig) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_option(nbd::kOptInfo, pattern(200 * 1024, 9)));
    OptionReply reply;
    ASSERT_TRUE(client.read_option_reply(&reply));
    EXPECT_EQ(reply.type, nbd::kRepErrTooBig);
    ASSERT_TRUE(client.send_info_option(nbd::kOptGo, ""));
    EXPECT_EQ(client.read_info_replies(), nbd::kRepAck);
}

TEST(NbdHandshake, StructuredReplyWithDataIsInvalid) {
    ServerHarness harness(kExportBytes);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.start_handshake());
    ASSERT_TRUE(client.send_option(nbd::kOptStructuredReply, {1}));
    OptionReply reply;
    ASSERT_TRUE(client.read_option_reply(&reply));
    EXPECT_EQ(reply.type, nbd::kRepErrInvalid);
}

TEST(NbdHandshake, ClientClosingMidOptionLeavesServerServing) {
    ServerHarness harness(kExportBytes);
    {
        RawClient client(harness.socket_path());
        ASSERT_TRUE(client.start_handshake());
        ASSERT_TRUE(client.send_option_header(nbd::kOptGo, 100));
        ASSERT_TRUE(client.send_bytes(pattern(10, 1)));
    }
    EXPECT_TRUE(harness.wait_for_no_connections());
    RawClient next(harness.socket_path());
    EXPECT_TRUE(next.handshake());
}

}  // namespace
}  // namespace ecraid::testing
