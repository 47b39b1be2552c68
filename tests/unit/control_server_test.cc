// SPDX-License-Identifier: Apache-2.0
// Control socket: every command through ControlClient to a fake Admin, malformed and
// oversized requests, several clients at once, socket file handling and stopping.
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <atomic>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "control/control_client.h"
#include "control/control_server.h"
#include "unit/control_test_support.h"

namespace ecraid::testing {
namespace {

using json = nlohmann::ordered_json;

ControlClientOptions test_client_options() {
    ControlClientOptions options;
    options.timeout_ms = kControlTimeoutMs;
    return options;
}

// Sends one request on a fresh connection and returns the raw response.
json exchange(const std::string& path, const json& request) {
    auto client = ControlClient::connect(path, test_client_options());
    EXPECT_TRUE(client.ok()) << client.status().to_string();
    if (!client.ok()) return json();
    auto response = client->exchange(request);
    EXPECT_TRUE(response.ok()) << response.status().to_string();
    if (!response.ok()) return json();
    return response.value();
}

// Checks that `response` is an error whose message contains `expected`.
void expect_error(const json& response, const std::string& expected, const std::string& sent) {
    ASSERT_TRUE(response.is_object()) << sent;
    EXPECT_EQ(response["ok"], false) << sent;
    ASSERT_TRUE(response.contains("error")) << sent;
    ASSERT_TRUE(response["error"].is_string()) << sent;
    EXPECT_NE(response["error"].get<std::string>().find(expected), std::string::npos)
        << "request: " << sent << "\nerror: " << response["error"];
}

// Checks that the server still responds to a status request on the connection.
void expect_serving(ControlClient& client) {
    auto response = client.exchange(json{{"command", "status"}});
    ASSERT_TRUE(response.ok()) << response.status().to_string();
    EXPECT_EQ(response.value()["ok"], true);
    EXPECT_EQ(response.value()["status"]["name"], "tank");
}

TEST(ControlServer, SocketIsOwnerOnly) {
    ControlHarness harness;
    struct stat info{};
    ASSERT_EQ(stat(harness.socket_path().c_str(), &info), 0);
    EXPECT_TRUE(S_ISSOCK(info.st_mode));
    EXPECT_EQ(info.st_mode & 0777, 0600u);
}

TEST(ControlServer, StatusReturnsStatusObject) {
    ControlHarness harness;
    json response = exchange(harness.socket_path(), {{"command", "status"}});
    EXPECT_EQ(response["ok"], true);
    ASSERT_TRUE(response["status"].is_object());
    EXPECT_EQ(response["status"]["name"], "tank");
    EXPECT_EQ(response["status"]["state"], "rebuilding");
    EXPECT_EQ(response["status"]["members"].size(), 7u);
    EXPECT_EQ(harness.admin().calls(), std::vector<std::string>{"status"});
}

TEST(ControlServer, EveryCommandReachesAdmin) {
    ControlHarness harness;
    struct Case {
        json request;
        std::string call;
    };
    std::vector<Case> cases = {
        {{{"command", "fail"}, {"member", "d1"}}, "fail d1"},
        {{{"command", "replace"}, {"member", "d1"}, {"new", "/srv/new/d1"}},
         "replace d1 /srv/new/d1"},
        {{{"command", "add-spare"}, {"path", "/dev/sdz"}}, "add_spare /dev/sdz"},
        {{{"command", "remove"}, {"member", "3"}}, "remove 3"},
        {{{"command", "scrub"}, {"action", "start"}, {"rate", 12345}}, "scrub_start 12345"},
        {{{"command", "scrub"}, {"action", "start"}}, "scrub_start 0"},
        {{{"command", "scrub"}, {"action", "pause"}}, "scrub_pause"},
        {{{"command", "scrub"}, {"action", "resume"}}, "scrub_resume"},
    };
    for (const Case& test_case : cases) {
        harness.admin().clear_calls();
        auto response =
            send_control_request(harness.socket_path(), test_case.request, test_client_options());
        ASSERT_TRUE(response.ok()) << test_case.request << ": " << response.status().to_string();
        EXPECT_EQ(response.value(), json({{"ok", true}})) << test_case.request;
        EXPECT_EQ(harness.admin().calls(), std::vector<std::string>{test_case.call})
            << test_case.request;
    }
}

TEST(ControlServer, ScrubStatusReturnsScrubObject) {
    ControlHarness harness;
    json response =
        exchange(harness.socket_path(), {{"command", "scrub"}, {"action", "status"}});
    EXPECT_EQ(response["ok"], true);
    ASSERT_TRUE(response["scrub"].is_object());
    EXPECT_EQ(response["scrub"]["state"], "paused");
    EXPECT_EQ(response["scrub"]["checked_bytes"], 512 * 1024ull * 1024);
    EXPECT_FALSE(response.contains("status"));
}

TEST(ControlServer, AdminErrorBecomesErrorResponse) {
    ControlHarness harness;
    json response = exchange(harness.socket_path(), {{"command", "fail"}, {"member", "bad7"}});
    expect_error(response, "member 'bad7' not found", "fail bad7");

    auto result = send_control_request(harness.socket_path(),
                                       {{"command", "remove"}, {"member", "bad7"}},
                                       test_client_options());
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().message(), "member 'bad7' not found");
}

TEST(ControlServer, MalformedRequestsGetErrors) {
    ControlHarness harness;
    auto client = ControlClient::connect(harness.socket_path(), test_client_options());
    ASSERT_TRUE(client.ok()) << client.status().to_string();
    struct Case {
        std::string line;
        std::string expected;
    };
    std::vector<Case> cases = {
        {"garbage", "not valid JSON"},
        {"{\"command\":\"status\"", "not valid JSON"},
        {"\x01\x02\xff\xfe", "not valid JSON"},
        {"{\"command\":\"fail\",\"member\":\"\xff\"}", "not valid JSON"},
        {"[1,2,3]", "must be a JSON object"},
        {"\"status\"", "must be a JSON object"},
        {"null", "must be a JSON object"},
        {"{}", "missing field 'command'"},
        {"{\"command\":42}", "field 'command' must be a string, not number"},
        {"{\"command\":\"explode\"}", "unknown command 'explode'"},
        {"{\"command\":\"fail\"}", "missing field 'member' for command 'fail'"},
        {"{\"command\":\"fail\",\"member\":5}", "field 'member' must be a string, not number"},
        {"{\"command\":\"fail\",\"member\":\"\"}", "field 'member' must not be empty"},
        {"{\"command\":\"fail\",\"member\":[\"d1\"]}", "must be a string, not array"},
        {"{\"command\":\"replace\",\"member\":\"d1\"}", "missing field 'new'"},
        {"{\"command\":\"replace\",\"new\":\"/x\"}", "missing field 'member'"},
        {"{\"command\":\"add-spare\"}", "missing field 'path'"},
        {"{\"command\":\"add-spare\",\"path\":null}", "must be a string, not null"},
        {"{\"command\":\"remove\",\"path\":\"d1\"}", "unknown field 'path'"},
        {"{\"command\":\"status\",\"verbose\":true}", "unknown field 'verbose'"},
        {"{\"command\":\"scrub\"}", "missing field 'action'"},
        {"{\"command\":\"scrub\",\"action\":\"stop\"}", "unknown scrub action 'stop'"},
        {"{\"command\":\"scrub\",\"action\":\"start\",\"rate\":-1}",
         "must be a non-negative integer"},
        {"{\"command\":\"scrub\",\"action\":\"start\",\"rate\":1.5}",
         "must be a non-negative integer"},
        {"{\"command\":\"scrub\",\"action\":\"start\",\"rate\":\"fast\"}",
         "must be a non-negative integer (bytes per second), not string"},
        {"{\"command\":\"scrub\",\"action\":\"start\",\"rate\":1e30}",
         "must be a non-negative integer"},
        {"{\"command\":\"scrub\",\"action\":\"pause\",\"rate\":5}",
         "only valid with scrub action 'start'"},
    };
    for (const Case& test_case : cases) {
        auto response = client->exchange_line(test_case.line);
        ASSERT_TRUE(response.ok()) << test_case.line << ": " << response.status().to_string();
        expect_error(response.value(), test_case.expected, test_case.line);
    }
    expect_serving(client.value());
    // Only the final status request reached Admin.
    EXPECT_EQ(harness.admin().calls(), std::vector<std::string>{"status"});
}

TEST(ControlServer, LongValueIsShortenedInError) {
    ControlHarness harness;
    std::string name(10000, 'x');
    json response = exchange(harness.socket_path(), {{"command", name}});
    expect_error(response, "(10000 bytes)", "long command");
    EXPECT_LT(response["error"].get<std::string>().size(), 300u);
}

TEST(ControlServer, OversizedLineGetsErrorAndConnectionRecovers) {
    ControlHarness harness;
    auto client = ControlClient::connect(harness.socket_path(), test_client_options());
    ASSERT_TRUE(client.ok()) << client.status().to_string();

    // 1 MiB inside a JSON string, so that only the length is wrong.
    std::string line = "{\"command\":\"fail\",\"member\":\"" + std::string(1024 * 1024, 'a') +
                       "\"}";
    auto response = client->exchange_line(line);
    ASSERT_TRUE(response.ok()) << response.status().to_string();
    expect_error(response.value(), "longer than 65536 bytes", "1 MiB line");
    expect_serving(client.value());
    EXPECT_EQ(harness.admin().calls(), std::vector<std::string>{"status"});
}

TEST(ControlServer, LineJustUnderLimitIsServed) {
    ControlHarness harness;
    std::string request = "{\"command\":\"status\"}";
    std::string line = request + std::string(kControlMaxLineBytes - request.size(), ' ');
    ASSERT_EQ(line.size(), kControlMaxLineBytes);
    RawControlSocket socket(harness.socket_path());
    ASSERT_TRUE(socket.connected());
    ASSERT_TRUE(socket.send_bytes(line + "\n"));
    json response = json::parse(socket.read_line(), nullptr, false);
    EXPECT_EQ(response["ok"], true);

    // One byte more is rejected, even when the newline arrives with it.
    ASSERT_TRUE(socket.send_bytes(line + " \n"));
    response = json::parse(socket.read_line(), nullptr, false);
    expect_error(response, "longer than", "line one byte over the limit");
}

TEST(ControlServer, DeeplyNestedJsonIsRejected) {
    ControlHarness harness;
    auto client = ControlClient::connect(harness.socket_path(), test_client_options());
    ASSERT_TRUE(client.ok()) << client.status().to_string();
    std::string nested = std::string(30000, '[') + std::string(30000, ']');
    auto response = client->exchange_line(nested);
    ASSERT_TRUE(response.ok()) << response.status().to_string();
    expect_error(response.value(), "must be a JSON object", "30000 nested arrays");
    expect_serving(client.value());
}

TEST(ControlServer, InvalidUtf8InStatusIsReplaced) {
    ControlHarness harness;
    ArrayStatusView status = sample_status();
    status.members[0].path = "/dev/\xff\xfe";
    harness.admin().set_status(status);
    json response = exchange(harness.socket_path(), {{"command", "status"}});
    EXPECT_EQ(response["ok"], true);
    EXPECT_EQ(response["status"]["members"][0]["path"], "/dev/\xEF\xBF\xBD\xEF\xBF\xBD");
}

TEST(ControlServer, PipelinedRequestsAnsweredInOrder) {
    ControlHarness harness;
    RawControlSocket socket(harness.socket_path());
    ASSERT_TRUE(socket.connected());
    ASSERT_TRUE(socket.send_bytes(
        "{\"command\":\"fail\",\"member\":\"d1\"}\n"
        "\n"
        "   \r\n"
        "{\"command\":\"fail\",\"member\":\"bad2\"}\r\n"
        "{\"command\":\"scrub\",\"action\":\"pause\"}\n"));
    EXPECT_EQ(socket.read_line(), "{\"ok\":true}");
    json second = json::parse(socket.read_line(), nullptr, false);
    expect_error(second, "member 'bad2' not found", "second pipelined request");
    EXPECT_EQ(socket.read_line(), "{\"ok\":true}");
    // Blank lines get no response.
    EXPECT_EQ(socket.read_line(200), "<timeout>");
    EXPECT_EQ(harness.admin().calls(),
              (std::vector<std::string>{"fail d1", "fail bad2", "scrub_pause"}));
}

TEST(ControlServer, RequestSplitAcrossWritesIsAssembled) {
    ControlHarness harness;
    RawControlSocket socket(harness.socket_path());
    ASSERT_TRUE(socket.connected());
    std::string request = "{\"command\":\"remove\",\"member\":\"spare0\"}\n";
    for (char c : request) {
        ASSERT_TRUE(socket.send_bytes(std::string(1, c)));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    EXPECT_EQ(socket.read_line(), "{\"ok\":true}");
}

TEST(ControlServer, LastLineWithoutNewlineIsAnswered) {
    ControlHarness harness;
    RawControlSocket socket(harness.socket_path());
    ASSERT_TRUE(socket.connected());
    ASSERT_TRUE(socket.send_bytes("{\"command\":\"scrub\",\"action\":\"resume\"}"));
    ASSERT_EQ(shutdown(socket.fd(), SHUT_WR), 0);
    EXPECT_EQ(socket.read_line(), "{\"ok\":true}");
    EXPECT_EQ(socket.read_line(), "<eof>");
    EXPECT_EQ(harness.admin().calls(), std::vector<std::string>{"scrub_resume"});
}

TEST(ControlServer, ClientLeavingMidLineIsHarmless) {
    ControlHarness harness;
    {
        RawControlSocket socket(harness.socket_path());
        ASSERT_TRUE(socket.connected());
        ASSERT_TRUE(socket.send_bytes(std::string(200 * 1024, 'z')));
    }
    {
        RawControlSocket socket(harness.socket_path());
        ASSERT_TRUE(socket.connected());
        ASSERT_TRUE(socket.send_bytes("{\"command\":\"status\"}\n"));
        // The client closes without reading its response.
    }
    EXPECT_TRUE(harness.wait_for_connections(0));
    json response = exchange(harness.socket_path(), {{"command", "status"}});
    EXPECT_EQ(response["ok"], true);
}

TEST(ControlServer, SeveralClientsAtOnce) {
    ControlHarness harness;
    constexpr int kClients = 8;
    constexpr int kRequestsPerClient = 50;

    // Idle connections held open while the others are served.
    std::vector<std::unique_ptr<RawControlSocket>> idle;
    for (int i = 0; i < 4; ++i) {
        idle.push_back(std::make_unique<RawControlSocket>(harness.socket_path()));
        ASSERT_TRUE(idle.back()->connected());
        ASSERT_TRUE(idle.back()->send_bytes("{\"command\":"));  // Half a request.
    }

    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            auto client = ControlClient::connect(harness.socket_path(), test_client_options());
            if (!client.ok()) {
                ++failures;
                return;
            }
            for (int request = 0; request < kRequestsPerClient; ++request) {
                std::string member = "d" + std::to_string(i) + "-" + std::to_string(request);
                auto response = client->exchange(json{{"command", "fail"}, {"member", member}});
                if (!response.ok() || response.value()["ok"] != true) ++failures;
            }
        });
    }
    for (std::thread& thread : threads) thread.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(harness.admin().calls().size(), size_t{kClients * kRequestsPerClient});

    for (auto& socket : idle) {
        ASSERT_TRUE(socket->send_bytes("\"status\"}\n"));
        json response = json::parse(socket->read_line(), nullptr, false);
        EXPECT_EQ(response["ok"], true);
    }
}

TEST(ControlServer, ConnectionsBeyondLimitAreRejected) {
    ControlServerOptions options;
    options.max_connections = 2;
    ControlHarness harness(options);
    RawControlSocket first(harness.socket_path());
    RawControlSocket second(harness.socket_path());
    ASSERT_TRUE(first.connected());
    ASSERT_TRUE(second.connected());
    ASSERT_TRUE(harness.wait_for_connections(2));

    RawControlSocket third(harness.socket_path());
    ASSERT_TRUE(third.connected());
    json response = json::parse(third.read_line(), nullptr, false);
    expect_error(response, "too many control connections", "third connection");
    EXPECT_EQ(third.read_line(), "<eof>");

    ASSERT_TRUE(first.send_bytes("{\"command\":\"status\"}\n"));
    response = json::parse(first.read_line(), nullptr, false);
    EXPECT_EQ(response["ok"], true);
}

TEST(ControlServer, IdleConnectionIsClosed) {
    ControlServerOptions options;
    options.idle_timeout_ms = 100;
    ControlHarness harness(options);
    RawControlSocket socket(harness.socket_path());
    ASSERT_TRUE(socket.connected());
    EXPECT_EQ(socket.read_line(), "<eof>");
    EXPECT_TRUE(harness.wait_for_connections(0));
}

TEST(ControlServer, SecondServerOnLiveSocketIsRejected) {
    ControlHarness harness;
    FakeAdmin admin;
    ControlServerOptions options;
    options.socket_path = harness.socket_path();
    auto second = ControlServer::start(admin, options);
    ASSERT_FALSE(second.ok());
    EXPECT_EQ(second.status().code(), Code::kExists);
    EXPECT_NE(second.status().message().find("another server is listening"), std::string::npos);
    // The first server still serves.
    json response = exchange(harness.socket_path(), {{"command", "status"}});
    EXPECT_EQ(response["ok"], true);
}

TEST(ControlServer, StaleSocketIsReplacedAndRemovedOnStop) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/stale.sock";
    // A socket file with no server listening on it, as a crashed server leaves behind.
    int stale = socket(AF_UNIX, SOCK_STREAM, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::snprintf(address.sun_path, sizeof(address.sun_path), "%s", path.c_str());
    ASSERT_EQ(bind(stale, reinterpret_cast<sockaddr*>(&address), sizeof(address)), 0);
    close(stale);

    FakeAdmin admin;
    ControlServerOptions options;
    options.socket_path = path;
    auto server = ControlServer::start(admin, options);
    ASSERT_TRUE(server.ok()) << server.status().to_string();
    json response = exchange(path, {{"command", "status"}});
    EXPECT_EQ(response["ok"], true);

    (*server)->stop();
    struct stat info{};
    EXPECT_NE(stat(path.c_str(), &info), 0);
    (*server)->stop();  // A second stop does nothing.
}

TEST(ControlServer, RegularFileAtSocketPathIsKept) {
    TemporaryDirectory directory;
    std::string path = directory.path() + "/data";
    std::ofstream(path) << "keep me";
    FakeAdmin admin;
    ControlServerOptions options;
    options.socket_path = path;
    auto server = ControlServer::start(admin, options);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), Code::kExists);
    std::ifstream file(path);
    std::string contents;
    std::getline(file, contents);
    EXPECT_EQ(contents, "keep me");
}

TEST(ControlServer, TooLongPathIsRejected) {
    FakeAdmin admin;
    ControlServerOptions options;
    options.socket_path = "/tmp/" + std::string(200, 'p');
    auto server = ControlServer::start(admin, options);
    ASSERT_FALSE(server.ok());
    EXPECT_EQ(server.status().code(), Code::kInvalidArgument);
}

TEST(ControlServer, StopClosesOpenConnections) {
    TemporaryDirectory directory;
    FakeAdmin admin;
    ControlServerOptions options;
    options.socket_path = directory.path() + "/control.sock";
    auto server = ControlServer::start(admin, options);
    ASSERT_TRUE(server.ok()) << server.status().to_string();
    RawControlSocket busy(options.socket_path);
    RawControlSocket half(options.socket_path);
    ASSERT_TRUE(busy.connected());
    ASSERT_TRUE(half.connected());
    ASSERT_TRUE(half.send_bytes("{\"command\":"));
    ASSERT_TRUE(busy.send_bytes("{\"command\":\"status\"}\n"));
    EXPECT_NE(busy.read_line(), "<timeout>");

    (*server)->stop();
    EXPECT_EQ(busy.read_line(), "<eof>");
    EXPECT_EQ(half.read_line(), "<eof>");
    EXPECT_EQ((*server)->connection_count(), 0u);
}

}  // namespace
}  // namespace ecraid::testing
