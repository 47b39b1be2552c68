// SPDX-License-Identifier: Apache-2.0
// Test support for the control socket. FakeAdmin records its calls and sample_status() has a
// rebuild running. ControlHarness runs a ControlServer on a temporary socket, and
// RawControlSocket sends bytes that ControlClient does not send.
#pragma once

#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "array/admin.h"
#include "control/control_server.h"

namespace ecraid::testing {

inline constexpr int kControlTimeoutMs = 10000;

// An rs 4+2 array with six members, one of them being rebuilt, and a spare.
inline ArrayStatusView sample_status() {
    ArrayStatusView status;
    status.name = "tank";
    status.uuid = "0f8e2a4c-7d1b-4c1e-9a52-3b6f0d9e8c71";
    status.level = "rs";
    status.geometry = "rs 4+2, 6 members, 64 KiB chunks, 4.0 GiB";
    status.state = "rebuilding";
    status.size = 4 * 1024ull * 1024 * 1024;
    status.chunk_bytes = 64 * 1024;
    status.data_count = 4;
    status.parity_count = 2;
    status.failures_tolerated = 2;
    status.event_counter = 17;
    status.listen = "nbd+unix:///tank?socket=/run/ecraid-tank.sock";
    for (int role = 0; role < 6; ++role) {
        MemberStatusView member;
        member.path = "/dev/disk/by-id/d" + std::to_string(role);
        member.role = std::to_string(role);
        member.state = "active";
        status.members.push_back(member);
    }
    status.members[1].state = "faulty";
    status.members[1].errors = MemberErrorsView{3, 12, 0, 0};
    status.members[2].errors = MemberErrorsView{0, 0, 1234567, 89};
    status.members[4].path = "/srv/new/d4";
    status.members[4].state = "rebuilding";
    MemberStatusView spare;
    spare.path = "/dev/disk/by-id/spare0";
    spare.role = "spare";
    spare.state = "spare";
    status.members.push_back(spare);

    RebuildStatusView rebuild;
    rebuild.member = "/srv/new/d4";
    rebuild.role = 4;
    rebuild.progress = 0.425;
    rebuild.rate_bytes_per_second = 120 * 1024 * 1024;
    rebuild.eta_seconds = 312;
    rebuild.done_bytes = 435 * 1024ull * 1024;
    rebuild.total_bytes = 1024ull * 1024 * 1024;
    status.rebuild = rebuild;

    status.scrub.state = "paused";
    status.scrub.progress = 0.125;
    status.scrub.checked_bytes = 512 * 1024ull * 1024;
    status.scrub.repaired = 2;
    status.scrub.unrecoverable = 0;
    status.scrub.rate_bytes_per_second = 0;
    status.scrub.last_completed = "2024-05-01 12:00:00 UTC";
    return status;
}

// Records every call as one string ("fail d1", "scrub_start 5000000"). Member names
// starting with "bad" get a kNotFound error, as an unknown member would.
class FakeAdmin : public Admin {
public:
    ArrayStatusView status() override {
        std::lock_guard lock(mutex_);
        calls_.push_back("status");
        return status_;
    }
    Status fail(const std::string& member) override { return record("fail " + member, member); }
    Status replace(const std::string& member, const std::string& new_path) override {
        return record("replace " + member + " " + new_path, member);
    }
    Status add_spare(const std::string& path) override {
        return record("add_spare " + path, path);
    }
    Status remove(const std::string& member) override {
        return record("remove " + member, member);
    }
    Status scrub_start(uint64_t rate_bytes_per_second) override {
        return record("scrub_start " + std::to_string(rate_bytes_per_second), "");
    }
    Status scrub_pause() override { return record("scrub_pause", ""); }
    Status scrub_resume() override { return record("scrub_resume", ""); }

    void set_status(ArrayStatusView status) {
        std::lock_guard lock(mutex_);
        status_ = std::move(status);
    }
    std::vector<std::string> calls() {
        std::lock_guard lock(mutex_);
        return calls_;
    }
    void clear_calls() {
        std::lock_guard lock(mutex_);
        calls_.clear();
    }

private:
    Status record(std::string call, const std::string& name) {
        std::lock_guard lock(mutex_);
        calls_.push_back(std::move(call));
        if (name.rfind("bad", 0) == 0) {
            return Status::error(Code::kNotFound, "member '" + name + "' not found");
        }
        return Status::ok_status();
    }

    std::mutex mutex_;
    ArrayStatusView status_ = sample_status();
    std::vector<std::string> calls_;
};

// Makes a fresh temporary directory and removes it with its contents at the end.
class TemporaryDirectory {
public:
    TemporaryDirectory() {
        char pattern[] = "/tmp/ecraid-control-XXXXXX";
        EXPECT_NE(mkdtemp(pattern), nullptr);
        path_ = pattern;
    }
    ~TemporaryDirectory() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    const std::string& path() const { return path_; }

private:
    std::string path_;
};

// Runs a ControlServer over a FakeAdmin on a socket in a temporary directory. The
// destructor stops the server.
class ControlHarness {
public:
    explicit ControlHarness(ControlServerOptions options = {}) {
        socket_path_ = directory_.path() + "/control.sock";
        options.socket_path = socket_path_;
        auto server = ControlServer::start(admin_, options);
        EXPECT_TRUE(server.ok()) << server.status().to_string();
        if (server.ok()) server_ = std::move(server).value();
    }
    ~ControlHarness() {
        if (server_) server_->stop();
    }

    FakeAdmin& admin() { return admin_; }
    ControlServer& server() { return *server_; }
    const std::string& socket_path() const { return socket_path_; }
    const std::string& directory() const { return directory_.path(); }

    // Waits until the server has `count` open connections. Returns false on timeout.
    bool wait_for_connections(size_t count) {
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(kControlTimeoutMs);
        while (server_->connection_count() != count) {
            if (std::chrono::steady_clock::now() > deadline) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return true;
    }

private:
    TemporaryDirectory directory_;
    FakeAdmin admin_;
    std::string socket_path_;
    std::unique_ptr<ControlServer> server_;
};

// A plain connected unix socket. Every receive waits with poll() and a timeout, so a server
// that stops responding fails the test instead of hanging it.
class RawControlSocket {
public:
    explicit RawControlSocket(const std::string& path) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
        connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
    }
    ~RawControlSocket() {
        if (fd_ >= 0) close(fd_);
    }

    bool connected() const { return connected_; }
    int fd() const { return fd_; }

    // Sends all of `bytes`. Returns false on a socket error.
    bool send_bytes(std::string_view bytes) {
        while (!bytes.empty()) {
            ssize_t sent = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
            if (sent < 0) return false;
            bytes.remove_prefix(static_cast<size_t>(sent));
        }
        return true;
    }

    // Returns the next line without its newline, or "<eof>" or "<timeout>".
    std::string read_line(int timeout_ms = kControlTimeoutMs) {
        auto deadline =
            std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
        while (true) {
            size_t newline = buffer_.find('\n');
            if (newline != std::string::npos) {
                std::string line = buffer_.substr(0, newline);
                buffer_.erase(0, newline + 1);
                return line;
            }
            auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - std::chrono::steady_clock::now());
            if (remaining.count() <= 0) return "<timeout>";
            pollfd readable{fd_, POLLIN, 0};
            if (poll(&readable, 1, static_cast<int>(remaining.count())) <= 0) continue;
            char chunk[4096];
            ssize_t received = recv(fd_, chunk, sizeof(chunk), 0);
            if (received <= 0) return "<eof>";
            buffer_.append(chunk, static_cast<size_t>(received));
        }
    }

private:
    int fd_ = -1;
    bool connected_ = false;
    std::string buffer_;
};

}  // namespace ecraid::testing
