// SPDX-License-Identifier: Apache-2.0
// NBD server lifecycle: listening on unix and TCP sockets, stale socket files, stopping
// with connections open and requests in flight, and the shared request buffer budget.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#ifdef ECRAID_HAVE_LIBNBD
#include <libnbd.h>
#endif

#include "nbd/protocol.h"
#include "nbd/server.h"
#include "unit/nbd_test_support.h"

namespace ecraid::testing {
namespace {

constexpr uint64_t kExportBytes = 64ull * 1024 * 1024;

TEST(NbdServer, UnixSendBufferIsEnlarged) {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, fds), 0);
    int before = 0;
    socklen_t length = sizeof(before);
    ASSERT_EQ(getsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &before, &length), 0);
    EXPECT_TRUE(nbd::enlarge_unix_send_buffer(fds[0]));
    int after = 0;
    length = sizeof(after);
    ASSERT_EQ(getsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &after, &length), 0);
    int wmem_max = 0;
    std::ifstream("/proc/sys/net/core/wmem_max") >> wmem_max;
    // The kernel caps the request at wmem_max and then doubles it for its own bookkeeping.
    if (wmem_max * 2 > before) {
        EXPECT_GT(after, before);
    }
    EXPECT_GE(after, before);
    close(fds[0]);
    close(fds[1]);
}

TEST(NbdServer, SendBufferOfInvalidDescriptorFails) {
    EXPECT_FALSE(nbd::enlarge_unix_send_buffer(-1));
}

TEST(NbdServer, UnixSocketIsOwnerOnly) {
    ServerHarness harness(kExportBytes);
    struct stat info{};
    ASSERT_EQ(stat(harness.socket_path().c_str(), &info), 0);
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
    EXPECT_EQ(info.st_mode & 0777, 0600u);
    EXPECT_EQ(harness.server().listen_address(), "unix:" + harness.socket_path());
}

TEST(NbdServer, StaleSocketIsReplacedAndRemovedOnStop) {
    char directory[] = "/tmp/ecraid-nbd-XXXXXX";
    ASSERT_NE(mkdtemp(directory), nullptr);
    std::string path = std::string(directory) + "/stale.sock";
    // A socket file with no listener, as a crashed server leaves behind.
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
    ASSERT_EQ(bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    close(stale);

    auto pool = WorkerPool::start(1);
    ASSERT_TRUE(pool.ok());
    MemoryDevice device(kExportBytes);
    nbd::ServerOptions options;
    options.unix_socket_path = path;
    auto server = nbd::Server::start(device, **pool, options);
    ASSERT_TRUE(server.ok()) << server.status().to_string();
    {
        RawClient client(path);
        EXPECT_TRUE(client.handshake());
    }

    // A second server on the same live path is rejected.
    auto second = nbd::Server::start(device, **pool, options);
    EXPECT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), Code::kExists);

    (*server)->stop();
    struct stat info{};
    EXPECT_NE(stat(path.c_str(), &info), 0);
    (*pool)->stop();
    rmdir(directory);
}

TEST(NbdServer, RegularFileAtSocketPathIsKept) {
    char directory[] = "/tmp/ecraid-nbd-XXXXXX";
    ASSERT_NE(mkdtemp(directory), nullptr);
    std::string path = std::string(directory) + "/data";
    std::ofstream(path) << "keep me";
    auto pool = WorkerPool::start(1);
    ASSERT_TRUE(pool.ok());
    MemoryDevice device(kExportBytes);
    nbd::ServerOptions options;
    options.unix_socket_path = path;
    auto server = nbd::Server::start(device, **pool, options);
    EXPECT_FALSE(server.ok());
    struct stat info{};
    EXPECT_EQ(stat(path.c_str(), &info), 0);
    (*pool)->stop();
    unlink(path.c_str());
    rmdir(directory);
}

TEST(NbdServer, TcpLoopbackWithPickedPort) {
    nbd::ServerOptions options;
    options.tcp_address = "0";
    ServerHarness harness(kExportBytes, false, options);
    uint16_t port = harness.server().tcp_port();
    ASSERT_NE(port, 0);
    EXPECT_EQ(harness.server().listen_address(), "127.0.0.1:" + std::to_string(port));

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    uint8_t greeting[nbd::kServerGreetingBytes];
    pollfd poll_fd{fd, POLLIN, 0};
    ASSERT_EQ(poll(&poll_fd, 1, kReplyTimeoutMs), 1);
    EXPECT_EQ(recv(fd, greeting, sizeof(greeting), MSG_WAITALL),
              static_cast<ssize_t>(sizeof(greeting)));
    EXPECT_EQ(nbd::load_be64(greeting), nbd::kInitMagic);
    close(fd);

#ifdef ECRAID_HAVE_LIBNBD
    nbd_handle* nbd = nbd_create();
    ASSERT_EQ(nbd_connect_tcp(nbd, "127.0.0.1", std::to_string(port).c_str()), 0)
        << nbd_get_error();
    std::vector<uint8_t> data = pattern(65536, 1);
    EXPECT_EQ(nbd_pwrite(nbd, data.data(), data.size(), 0, 0), 0);
    std::vector<uint8_t> back(data.size());
    EXPECT_EQ(nbd_pread(nbd, back.data(), back.size(), 0, 0), 0);
    EXPECT_EQ(back, data);
    nbd_close(nbd);
#endif
}

TEST(NbdServer, InvalidTcpAddressIsRejected) {
    auto pool = WorkerPool::start(1);
    ASSERT_TRUE(pool.ok());
    MemoryDevice device(kExportBytes);
    for (const char* address : {"", "host:", "::1:80", "127.0.0.1:99999", "[::1]80"}) {
        nbd::ServerOptions options;
        options.tcp_address = address;
        if (options.tcp_address.empty()) options.unix_socket_path.clear();
        auto server = nbd::Server::start(device, **pool, options);
        EXPECT_FALSE(server.ok()) << "address '" << address << "'";
    }
    (*pool)->stop();
}

TEST(NbdServer, StopClosesIdleConnections) {
    ServerHarness harness(kExportBytes);
    RawClient in_handshake(harness.socket_path());
    ASSERT_TRUE(in_handshake.start_handshake());
    RawClient in_transmission(harness.socket_path());
    ASSERT_TRUE(in_transmission.handshake());
    auto started = std::chrono::steady_clock::now();
    harness.server().stop();
    auto elapsed = std::chrono::steady_clock::now() - started;
    EXPECT_LT(elapsed, std::chrono::seconds(2));
    EXPECT_EQ(harness.server().connection_count(), 0u);
    EXPECT_TRUE(in_handshake.closed_by_server());
    EXPECT_TRUE(in_transmission.closed_by_server());
}

TEST(NbdServer, StopAnswersRequestsInFlight) {
    ServerHarness harness(kExportBytes);
    harness.device().set_delay_ns(200 * 1000 * 1000);
    RawClient client(harness.socket_path());
    ASSERT_TRUE(client.handshake());
    std::vector<uint8_t> payload = pattern(4096, 2);
    ASSERT_TRUE(client.send_request(nbd::kCmdWrite, 0, 9, 0, 4096, payload));
    // Let the server parse the request before stopping.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    harness.server().stop();
    SimpleReply reply;
    ASSERT_TRUE(client.read_simple_reply(&reply));
    EXPECT_EQ(reply.cookie, 9u);
    EXPECT_EQ(reply.error, 0u);
    EXPECT_TRUE(client.closed_by_server());
    EXPECT_EQ(harness.device().contents(0, 4096), payload);
}

TEST(NbdServer, BufferBudgetBoundsLargeWrites) {
    // Room for two 32 MiB buffers: six clients announce 32 MiB writes and trickle the
    // payload, and only two may hold buffers at a time.
    nbd::ServerOptions options;
    options.request_buffer_budget_bytes = 2ull * nbd::kPayloadBytesMax;
    ServerHarness harness(kExportBytes, false, options);
    constexpr int kClients = 6;
    std::vector<std::unique_ptr<RawClient>> clients;
    for (int i = 0; i < kClients; ++i) {
        clients.push_back(std::make_unique<RawClient>(harness.socket_path()));
        ASSERT_TRUE(clients.back()->handshake());
        ASSERT_TRUE(clients.back()->send_request(nbd::kCmdWrite, 0, 1, 0, nbd::kPayloadBytesMax));
        ASSERT_TRUE(clients.back()->send_bytes(pattern(1024, 1)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    EXPECT_EQ(harness.server().request_buffer_bytes_available(), 0u);

    // Finish every payload; the waiting connections get buffers as others finish.
    std::vector<uint8_t> rest = pattern(nbd::kPayloadBytesMax - 1024, 2);
    std::vector<std::thread> senders;
    for (auto& client : clients) {
        senders.emplace_back([&client, &rest] { client->send_bytes(rest); });
    }
    for (auto& client : clients) {
        SimpleReply reply;
        ASSERT_TRUE(client->read_simple_reply(&reply));
        EXPECT_EQ(reply.error, 0u);
    }
    for (auto& sender : senders) sender.join();
    // Buffers go back to the budget once their request is done, possibly just after the reply.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (harness.server().request_buffer_bytes_available() != 2ull * nbd::kPayloadBytesMax &&
           std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    EXPECT_EQ(harness.server().request_buffer_bytes_available(), 2ull * nbd::kPayloadBytesMax);
}

}  // namespace
}  // namespace ecraid::testing
