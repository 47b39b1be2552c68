// SPDX-License-Identifier: Apache-2.0
// ControlClient: the default socket path, and the errors it reports when no server listens,
// the server never responds or closes the connection early.
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "control/control_client.h"
#include "unit/control_test_support.h"

namespace ecraid::testing {
namespace {

using json = nlohmann::ordered_json;

// Sets or unsets an environment variable for one scope and restores it afterwards.
class ScopedEnvironment {
public:
    ScopedEnvironment(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value == nullptr) {
            unsetenv(name);
        } else {
            setenv(name, value, 1);
        }
    }
    ~ScopedEnvironment() {
        if (old_.has_value()) {
            setenv(name_, old_->c_str(), 1);
        } else {
            unsetenv(name_);
        }
    }

private:
    const char* name_;
    std::optional<std::string> old_;
};

// A unix socket bound at `path`, listening when `listening` is set. It accepts nothing, so
// a client that connects waits for a response that never comes.
class SilentSocket {
public:
    SilentSocket(const std::string& path, bool listening) {
        fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        sockaddr_un address{};
        address.sun_family = AF_UNIX;
        std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
        EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
        if (listening) {
            EXPECT_EQ(listen(fd_, 4), 0);
        }
    }
    ~SilentSocket() { close(fd_); }
    int fd() const { return fd_; }

private:
    int fd_ = -1;
};

TEST(ControlClient, DefaultPathPrefersEcraidControl) {
    ScopedEnvironment control("ECRAID_CONTROL", "/run/custom.ctl");
    ScopedEnvironment runtime("XDG_RUNTIME_DIR", "/run/user/1000");
    EXPECT_EQ(default_control_path(), "/run/custom.ctl");
}

TEST(ControlClient, DefaultPathUsesRuntimeDirectory) {
    ScopedEnvironment control("ECRAID_CONTROL", "");
    ScopedEnvironment runtime("XDG_RUNTIME_DIR", "/run/user/1000");
    EXPECT_EQ(default_control_path(), "/run/user/1000/ecraid.ctl");
}

TEST(ControlClient, DefaultPathFallsBackToTmp) {
    ScopedEnvironment control("ECRAID_CONTROL", nullptr);
    ScopedEnvironment runtime("XDG_RUNTIME_DIR", nullptr);
    EXPECT_EQ(default_control_path(), "/tmp/ecraid.ctl");
}

TEST(ControlClient, MissingSocketSaysNoServer) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/none.ctl";
    auto client = ControlClient::connect(path);
    ASSERT_FALSE(client.ok());
    EXPECT_EQ(client.status().code(), Code::kNotFound);
    EXPECT_EQ(client.status().message(),
              "cannot connect to " + path +
                  ": no ecraid serve is listening there (is the array served with --control?)");
}

TEST(ControlClient, StaleSocketSaysNoServer) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/stale.ctl";
    SilentSocket stale(path, /*listening=*/false);
    auto client = ControlClient::connect(path);
    ASSERT_FALSE(client.ok());
    EXPECT_NE(client.status().message().find("no ecraid serve is listening there"),
              std::string::npos)
        << client.status().message();
}

TEST(ControlClient, SilentServerTimesOut) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/silent.ctl";
    SilentSocket silent(path, /*listening=*/true);
    ControlClientOptions options;
    options.timeout_ms = 200;
    auto client = ControlClient::connect(path, options);
    ASSERT_TRUE(client.ok()) << client.status().to_string();
    auto response = client->exchange(json{{"command", "status"}});
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.status().message(), "no response from " + path + " within 200 ms");
}

TEST(ControlClient, EarlyCloseIsReported) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/closing.ctl";
    SilentSocket server(path, /*listening=*/true);
    std::thread closer([&] {
        int connection = accept(server.fd(), nullptr, nullptr);
        if (connection < 0) return;
        char buffer[256];
        ssize_t ignored = recv(connection, buffer, sizeof(buffer), 0);
        (void)ignored;
        close(connection);
    });
    auto response = send_control_request(path, json{{"command", "status"}});
    closer.join();
    ASSERT_FALSE(response.ok());
    EXPECT_NE(response.status().message().find("closed the connection without a response"),
              std::string::npos)
        << response.status().message();
}

TEST(ControlClient, InvalidResponseIsReported) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/odd.ctl";
    SilentSocket server(path, /*listening=*/true);
    std::thread responder([&] {
        int connection = accept(server.fd(), nullptr, nullptr);
        if (connection < 0) return;
        char buffer[256];
        ssize_t ignored = recv(connection, buffer, sizeof(buffer), 0);
        std::string reply = "{\"status\":\"fine\"}\n";
        ignored = send(connection, reply.data(), reply.size(), MSG_NOSIGNAL);
        (void)ignored;
        close(connection);
    });
    auto response = send_control_request(path, json{{"command", "status"}});
    responder.join();
    ASSERT_FALSE(response.ok());
    EXPECT_EQ(response.status().message(),
              "invalid response from " + path + ": no boolean field 'ok'");
}

TEST(ControlClient, TooLongPathIsRejected) {
    auto client = ControlClient::connect("/tmp/" + std::string(200, 'p'));
    ASSERT_FALSE(client.ok());
    EXPECT_EQ(client.status().code(), Code::kInvalidArgument);
}

}  // namespace
}  // namespace ecraid::testing
