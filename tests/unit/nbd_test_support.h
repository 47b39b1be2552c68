// SPDX-License-Identifier: Apache-2.0
// Test support for the NBD server: a harness that runs the real server on a temporary unix
// socket over a MemoryDevice, and a raw-socket client for bytes no client library sends.
//
// Every raw receive waits with poll() and a timeout, so a server that stops replying
// fails the test instead of hanging it.
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "io/worker_pool.h"
#include "nbd/protocol.h"
#include "nbd/server.h"
#include "unit/memory_device.h"

namespace ecraid::testing {

inline constexpr int kReplyTimeoutMs = 10000;

// Runs a Server for one test: a WorkerPool, a MemoryDevice and a unix socket in a fresh
// temporary directory. The destructor stops the server, then the pool.
class ServerHarness {
public:
    explicit ServerHarness(uint64_t size_bytes, bool read_only = false,
                           nbd::ServerOptions options = {}, uint32_t workers = 2)
        : device_(size_bytes, read_only) {
        char directory[] = "/tmp/ecraid-nbd-XXXXXX";
        EXPECT_NE(mkdtemp(directory), nullptr);
        directory_ = directory;
        socket_path_ = directory_ + "/nbd.sock";
        auto pool = WorkerPool::start(workers);
        EXPECT_TRUE(pool.ok()) << pool.status().to_string();
        pool_ = std::move(pool).value();
        if (options.unix_socket_path.empty() && options.tcp_address.empty()) {
            options.unix_socket_path = socket_path_;
        }
        auto server = nbd::Server::start(device_, *pool_, options);
        EXPECT_TRUE(server.ok()) << server.status().to_string();
        if (server.ok()) server_ = std::move(server).value();
    }
    ~ServerHarness() {
        if (server_) server_->stop();
        server_.reset();
        pool_->stop();
        std::error_code ignored;
        std::filesystem::remove_all(directory_, ignored);
    }

    MemoryDevice& device() { return device_; }
    nbd::Server& server() { return *server_; }
    WorkerPool& pool() { return *pool_; }
    const std::string& socket_path() const { return socket_path_; }
    const std::string& directory() const { return directory_; }

    // Waits until the server has no open connection. Returns false on timeout.
    bool wait_for_no_connections(int timeout_ms = kReplyTimeoutMs) {
        auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (server_->connection_count() != 0) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return true;
    }

private:
    MemoryDevice device_;
    std::string directory_;
    std::string socket_path_;
    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<nbd::Server> server_;
};

struct OptionReply {
    uint64_t magic = 0;
    uint32_t option = 0;
    uint32_t type = 0;
    std::vector<uint8_t> payload;
};

struct SimpleReply {
    uint32_t magic = 0;
    uint32_t error = 0;
    uint64_t cookie = 0;
};

struct Chunk {
    uint32_t magic = 0;
    uint16_t flags = 0;
    uint16_t type = 0;
    uint64_t cookie = 0;
    std::vector<uint8_t> payload;
};

// A blocking client socket with timed receives.
class RawClient {
public:
    explicit RawClient(const std::string& path) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
        connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    }
    ~RawClient() {
        if (fd_ >= 0) close(fd_);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    bool connected() const { return connected_; }
    int fd() const { return fd_; }
    void close_socket() {
        close(fd_);
        fd_ = -1;
    }

    bool send_bytes(const void* data, size_t length) {
        const auto* bytes = static_cast<const uint8_t*>(data);
        while (length > 0) {
            ssize_t sent = ::send(fd_, bytes, length, MSG_NOSIGNAL);
            if (sent <= 0) return false;
            bytes += sent;
            length -= static_cast<size_t>(sent);
        }
        return true;
    }
    bool send_bytes(const std::vector<uint8_t>& data) {
        return send_bytes(data.data(), data.size());
    }

    // Receives exactly `length` bytes or fails on end of stream, error or timeout.
    bool receive(void* data, size_t length, int timeout_ms = kReplyTimeoutMs) {
        auto* bytes = static_cast<uint8_t*>(data);
        while (length > 0) {
            pollfd poll_fd{fd_, POLLIN, 0};
            if (poll(&poll_fd, 1, timeout_ms) <= 0) return false;
            ssize_t received = ::recv(fd_, bytes, length, 0);
            if (received <= 0) return false;
            bytes += received;
            length -= static_cast<size_t>(received);
        }
        return true;
    }
    std::vector<uint8_t> receive(size_t length, bool* ok) {
        std::vector<uint8_t> data(length);
        *ok = receive(data.data(), length);
        return data;
    }

    // True when the server closes the connection within the timeout (end of stream or
    // reset), with no further bytes before it.
    bool closed_by_server(int timeout_ms = kReplyTimeoutMs) {
        pollfd poll_fd{fd_, POLLIN, 0};
        if (poll(&poll_fd, 1, timeout_ms) <= 0) return false;
        uint8_t byte;
        return ::recv(fd_, &byte, 1, 0) <= 0;
    }

    // True when nothing arrives within `timeout_ms`.
    bool silent_for(int timeout_ms) {
        pollfd poll_fd{fd_, POLLIN, 0};
        return poll(&poll_fd, 1, timeout_ms) == 0;
    }

    // Reads the greeting and sends client flags. Returns false on a bad greeting.
    bool start_handshake(uint32_t client_flags = nbd::kClientFlagFixedNewstyle |
                                                 nbd::kClientFlagNoZeroes) {
        uint8_t greeting[nbd::kServerGreetingBytes];
        if (!receive(greeting, sizeof(greeting))) return false;
        if (nbd::load_be64(greeting) != nbd::kInitMagic) return false;
        if (nbd::load_be64(greeting + 8) != nbd::kOptionMagic) return false;
        uint8_t flags[4];
        nbd::store_be32(flags, client_flags);
        return send_bytes(flags, sizeof(flags));
    }

    bool send_option(uint32_t option, const std::vector<uint8_t>& payload) {
        return send_option_header(option, static_cast<uint32_t>(payload.size())) &&
               send_bytes(payload);
    }
    bool send_option_header(uint32_t option, uint32_t length) {
        uint8_t header[nbd::kOptionHeaderBytes];
        nbd::store_be64(header, nbd::kOptionMagic);
        nbd::store_be32(header + 8, option);
        nbd::store_be32(header + 12, length);
        return send_bytes(header, sizeof(header));
    }

    bool read_option_reply(OptionReply* reply) {
        uint8_t header[nbd::kOptionReplyHeaderBytes];
        if (!receive(header, sizeof(header))) return false;
        reply->magic = nbd::load_be64(header);
        reply->option = nbd::load_be32(header + 8);
        reply->type = nbd::load_be32(header + 12);
        reply->payload.resize(nbd::load_be32(header + 16));
        return reply->payload.empty() || receive(reply->payload.data(), reply->payload.size());
    }

    // Sends NBD_OPT_INFO or NBD_OPT_GO for `name` with the given information requests.
    bool send_info_option(uint32_t option, const std::string& name,
                          const std::vector<uint16_t>& requests = {}) {
        std::vector<uint8_t> payload(4 + name.size() + 2 + 2 * requests.size());
        nbd::store_be32(payload.data(), static_cast<uint32_t>(name.size()));
        std::memcpy(payload.data() + 4, name.data(), name.size());
        nbd::store_be16(payload.data() + 4 + name.size(), static_cast<uint16_t>(requests.size()));
        for (size_t i = 0; i < requests.size(); ++i) {
            nbd::store_be16(payload.data() + 6 + name.size() + 2 * i, requests[i]);
        }
        return send_option(option, payload);
    }

    // Reads NBD_REP_INFO replies up to the final reply and returns the final reply type.
    // Fills `size` and `flags` from NBD_INFO_EXPORT when present.
    uint32_t read_info_replies(uint64_t* size = nullptr, uint16_t* flags = nullptr) {
        for (;;) {
            OptionReply reply;
            if (!read_option_reply(&reply)) return 0;
            if (reply.type != nbd::kRepInfo) return reply.type;
            if (reply.payload.size() >= 12 && nbd::load_be16(reply.payload.data()) == 0) {
                if (size != nullptr) *size = nbd::load_be64(reply.payload.data() + 2);
                if (flags != nullptr) *flags = nbd::load_be16(reply.payload.data() + 10);
            }
        }
    }

    // Full handshake ending with NBD_OPT_GO for the default export. Returns false when any
    // step fails.
    bool handshake(bool structured_replies = false, uint16_t* flags = nullptr,
                   uint64_t* size = nullptr) {
        if (!start_handshake()) return false;
        if (structured_replies) {
            if (!send_option(nbd::kOptStructuredReply, {})) return false;
            OptionReply reply;
            if (!read_option_reply(&reply) || reply.type != nbd::kRepAck) return false;
        }
        if (!send_info_option(nbd::kOptGo, "")) return false;
        return read_info_replies(size, flags) == nbd::kRepAck;
    }

    bool send_request(uint16_t type, uint16_t flags, uint64_t cookie, uint64_t offset,
                      uint32_t length, const std::vector<uint8_t>& payload = {}) {
        uint8_t header[nbd::kRequestBytes];
        nbd::store_be32(header, nbd::kRequestMagic);
        nbd::store_be16(header + 4, flags);
        nbd::store_be16(header + 6, type);
        nbd::store_be64(header + 8, cookie);
        nbd::store_be64(header + 16, offset);
        nbd::store_be32(header + 24, length);
        return send_bytes(header, sizeof(header)) && send_bytes(payload);
    }

    bool read_simple_reply(SimpleReply* reply) {
        uint8_t header[nbd::kSimpleReplyBytes];
        if (!receive(header, sizeof(header))) return false;
        reply->magic = nbd::load_be32(header);
        reply->error = nbd::load_be32(header + 4);
        reply->cookie = nbd::load_be64(header + 8);
        return true;
    }

    bool read_chunk(Chunk* chunk) {
        uint8_t header[nbd::kChunkHeaderBytes];
        if (!receive(header, sizeof(header))) return false;
        chunk->magic = nbd::load_be32(header);
        chunk->flags = nbd::load_be16(header + 4);
        chunk->type = nbd::load_be16(header + 6);
        chunk->cookie = nbd::load_be64(header + 8);
        chunk->payload.resize(nbd::load_be32(header + 16));
        return chunk->payload.empty() || receive(chunk->payload.data(), chunk->payload.size());
    }

    // Sends a request and reads its simple reply. Returns the error, or -1 when no
    // well-formed reply with the cookie arrived.
    int64_t simple_request(uint16_t type, uint16_t flags, uint64_t offset, uint32_t length,
                           const std::vector<uint8_t>& payload = {}) {
        uint64_t cookie = next_cookie_++;
        if (!send_request(type, flags, cookie, offset, length, payload)) return -1;
        SimpleReply reply;
        if (!read_simple_reply(&reply)) return -1;
        if (reply.magic != nbd::kSimpleReplyMagic || reply.cookie != cookie) return -1;
        return reply.error;
    }

    // Reads with simple replies; on success returns the data through `data`.
    int64_t simple_read(uint64_t offset, uint32_t length, std::vector<uint8_t>* data) {
        int64_t error = simple_request(nbd::kCmdRead, 0, offset, length);
        if (error != 0) return error;
        bool ok = false;
        *data = receive(length, &ok);
        return ok ? 0 : -1;
    }

private:
    int fd_ = -1;
    bool connected_ = false;
    uint64_t next_cookie_ = 1;
};

// Deterministic bytes for a range, so each test can check what it wrote.
inline std::vector<uint8_t> pattern(size_t length, uint32_t seed) {
    std::vector<uint8_t> data(length);
    uint32_t state = seed * 2654435761u + 1;
    for (auto& byte : data) {
        state = state * 1103515245u + 12345u;
        byte = static_cast<uint8_t>(state >> 16);
    }
    return data;
}

// Resident and virtual memory of this process in bytes, from /proc/self/statm.
struct MemoryUsage {
    uint64_t resident_bytes = 0;
    uint64_t virtual_bytes = 0;
};
inline MemoryUsage memory_usage() {
    MemoryUsage usage;
    unsigned long pages_virtual = 0;
    unsigned long pages_resident = 0;
    if (FILE* file = std::fopen("/proc/self/statm", "r")) {
        if (std::fscanf(file, "%lu %lu", &pages_virtual, &pages_resident) != 2) {
            pages_virtual = pages_resident = 0;
        }
        std::fclose(file);
    }
    uint64_t page_bytes = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    usage.resident_bytes = pages_resident * page_bytes;
    usage.virtual_bytes = pages_virtual * page_bytes;
    return usage;
}

}  // namespace ecraid::testing
