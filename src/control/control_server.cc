// SPDX-License-Identifier: Apache-2.0
#include "control/control_server.h"

#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "control/control_request.h"

namespace ecraid {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr size_t kReceiveChunkBytes = 16 * 1024;
// Requests are logged with at most this many bytes of their text.
constexpr size_t kLoggedRequestMaxBytes = 200;
// After accept() fails (for example with EMFILE, out of file descriptors), new connections
// wait this long, so that a listening socket that stays readable does not spin the loop.
constexpr auto kAcceptRetryDelay = std::chrono::milliseconds(100);

struct Connection {
    int fd = -1;
    std::string peer;  // "pid=123 uid=1000", for log lines.
    std::string input;  // Received bytes of requests not yet handled.
    std::string output;  // Response bytes not yet sent.
    // Inside a line longer than the limit, whose error response is already queued.
    bool discarding = false;
    bool peer_closed = false;
    // Set when the peer has closed its side and every line is handled, so the connection
    // closes once the output is sent.
    bool handled_last_line = false;
    Clock::time_point last_activity;
};

bool is_blank(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
    });
}

std::string shorten_for_log(std::string_view text) {
    if (text.size() <= kLoggedRequestMaxBytes) return std::string(text);
    return fmt::format("{}... ({} bytes)", text.substr(0, kLoggedRequestMaxBytes), text.size());
}

// Whether a request changes the array, so that the server logs it at info level.
bool changes_array(const json& request) {
    if (!request.is_object()) return false;
    auto command = request.find("command");
    if (command == request.end() || !command->is_string()) return false;
    if (*command == "status") return false;
    if (*command == "scrub") {
        auto action = request.find("action");
        return action != request.end() && *action != "status";
    }
    return true;
}

// Describes the peer of a unix socket, and returns whether it may use the control socket.
// The socket's mode already limits connections to its owner and root. This check keeps that
// true if someone changes the mode.
bool check_peer(int fd, std::string& description) {
    ucred credentials{};
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        description = "unknown peer";
        return false;
    }
    description = fmt::format("pid={} uid={}", credentials.pid, credentials.uid);
    return credentials.uid == geteuid() || credentials.uid == 0;
}

// Sends a short message on a fresh connection without waiting, then closes it.
void reject_connection(int fd, std::string_view message) {
    std::string line = serialize_control_message(control_error_response(message));
    ssize_t ignored = send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    (void)ignored;
    close(fd);
}

}  // namespace

// The serving thread and the state it owns. Only the thread touches the connections.
struct ControlServer::Loop {
    Loop(Admin& admin_in, const ControlServerOptions& options_in)
        : admin(admin_in), options(options_in) {}

    void run();
    void accept_connections(std::vector<Connection>& connections);
    void service(Connection& connection, short revents);
    bool receive(Connection& connection);
    bool flush(Connection& connection);
    void handle_pending_lines(Connection& connection);
    void handle_line(Connection& connection, std::string_view line);
    void close_connection(Connection& connection, std::string_view reason);
    int poll_timeout_ms(const std::vector<Connection>& connections, Clock::time_point now) const;

    Admin& admin;
    const ControlServerOptions& options;
    int listen_fd = -1;
    int wake_fd = -1;
    ino_t socket_inode = 0;
    std::thread thread;
    std::atomic<size_t> connection_count{0};
    Clock::time_point accept_paused_until{};
};

void ControlServer::Loop::run() {
    std::vector<Connection> connections;
    std::vector<pollfd> fds;
    while (true) {
        Clock::time_point now = Clock::now();
        bool accepting = now >= accept_paused_until;
        fds.clear();
        fds.push_back(pollfd{wake_fd, POLLIN, 0});
        fds.push_back(pollfd{accepting ? listen_fd : -1, POLLIN, 0});
        for (const Connection& connection : connections) {
            short events = connection.output.empty() ? POLLIN : POLLOUT;
            fds.push_back(pollfd{connection.fd, events, 0});
        }
        int timeout_ms = poll_timeout_ms(connections, now);
        if (!accepting) {
            auto paused_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                 accept_paused_until - now).count() + 1;
            timeout_ms = timeout_ms < 0 ? static_cast<int>(paused_ms)
                                        : std::min(timeout_ms, static_cast<int>(paused_ms));
        }

        int ready = poll(fds.data(), fds.size(), timeout_ms);
        if (ready < 0) {
            if (errno == EINTR) continue;
            // With EINTR handled and valid arguments, poll(2) lists only ENOMEM; wait and
            // try again.
            spdlog::error("control: poll failed: {}; retrying", std::strerror(errno));
            std::this_thread::sleep_for(kAcceptRetryDelay);
            continue;
        }
        if (fds[0].revents != 0) break;

        for (size_t i = 0; i < connections.size(); ++i) {
            if (fds[i + 2].revents != 0) service(connections[i], fds[i + 2].revents);
        }
        now = Clock::now();
        for (Connection& connection : connections) {
            if (connection.fd >= 0 && options.idle_timeout_ms > 0 &&
                now - connection.last_activity >=
                    std::chrono::milliseconds(options.idle_timeout_ms)) {
                close_connection(connection, "idle timeout");
            }
        }
        std::erase_if(connections, [](const Connection& connection) { return connection.fd < 0; });
        if (fds[1].revents != 0) accept_connections(connections);
        connection_count.store(connections.size());
    }

    for (Connection& connection : connections) close_connection(connection, "server stopping");
    connection_count.store(0);
}

int ControlServer::Loop::poll_timeout_ms(const std::vector<Connection>& connections,
                                         Clock::time_point now) const {
    if (options.idle_timeout_ms <= 0 || connections.empty()) return -1;
    Clock::time_point earliest = connections.front().last_activity;
    for (const Connection& connection : connections) {
        earliest = std::min(earliest, connection.last_activity);
    }
    auto deadline = earliest + std::chrono::milliseconds(options.idle_timeout_ms);
    if (deadline <= now) return 0;
    auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
    return static_cast<int>(remaining.count()) + 1;
}

void ControlServer::Loop::accept_connections(std::vector<Connection>& connections) {
    while (true) {
        int fd = accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            spdlog::warn("control: accepting a connection on '{}' failed: {}; retrying in {} ms",
                         options.socket_path, std::strerror(errno), kAcceptRetryDelay.count());
            accept_paused_until = Clock::now() + kAcceptRetryDelay;
            return;
        }

        std::string peer;
        if (!check_peer(fd, peer)) {
            spdlog::warn("control: rejected connection from {}: not the owner of '{}' or root",
                         peer, options.socket_path);
            reject_connection(fd, "permission denied: only the user running ecraid serve and "
                                  "root may use this control socket");
            continue;
        }
        if (connections.size() >= options.max_connections) {
            spdlog::debug("control: rejected connection from {}: {} connections are open", peer,
                          connections.size());
            reject_connection(fd, fmt::format("too many control connections ({} open); try "
                                              "again later",
                                              connections.size()));
            continue;
        }
        spdlog::debug("control: connection from {}", peer);
        Connection connection;
        connection.fd = fd;
        connection.peer = std::move(peer);
        connection.last_activity = Clock::now();
        connections.push_back(std::move(connection));
    }
}

void ControlServer::Loop::service(Connection& connection, short revents) {
    if (!connection.output.empty()) {
        if (!flush(connection)) return;
    } else if ((revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        if (!receive(connection)) return;
    }
    handle_pending_lines(connection);
}

// Reads what the socket has. Returns false after closing the connection on an error.
bool ControlServer::Loop::receive(Connection& connection) {
    char buffer[kReceiveChunkBytes];
    ssize_t received = recv(connection.fd, buffer, sizeof(buffer), MSG_DONTWAIT);
    if (received < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return true;
        close_connection(connection, fmt::format("receive failed: {}", std::strerror(errno)));
        return false;
    }
    connection.last_activity = Clock::now();
    if (received == 0) {
        connection.peer_closed = true;
        return true;
    }

    std::string_view data(buffer, static_cast<size_t>(received));
    if (connection.discarding) {
        size_t newline = data.find('\n');
        if (newline == std::string_view::npos) return true;
        connection.discarding = false;
        data.remove_prefix(newline + 1);
    }
    connection.input.append(data);
    return true;
}

// Sends as much queued output as the socket takes. Returns false after closing the
// connection on an error.
bool ControlServer::Loop::flush(Connection& connection) {
    while (!connection.output.empty()) {
        ssize_t sent = send(connection.fd, connection.output.data(), connection.output.size(),
                            MSG_NOSIGNAL | MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
            close_connection(connection, fmt::format("send failed: {}", std::strerror(errno)));
            return false;
        }
        connection.output.erase(0, static_cast<size_t>(sent));
    }
    return true;
}

// Handles complete lines one at a time. The next line waits until the previous response is
// sent, so the server stops reading from a client that does not read its responses.
void ControlServer::Loop::handle_pending_lines(Connection& connection) {
    while (connection.fd >= 0 && connection.output.empty()) {
        if (connection.handled_last_line) {
            close_connection(connection, "closed by the client");
            return;
        }
        size_t newline = connection.input.find('\n');
        if (newline != std::string::npos) {
            std::string line = connection.input.substr(0, newline);
            connection.input.erase(0, newline + 1);
            handle_line(connection, line);
        } else if (connection.input.size() > options.max_line_bytes) {
            spdlog::debug("control: {}: request line longer than {} bytes", connection.peer,
                          options.max_line_bytes);
            connection.output = serialize_control_message(control_error_response(
                fmt::format("request line is longer than {} bytes; it is discarded up to the "
                            "next newline",
                            options.max_line_bytes)));
            connection.input.clear();
            connection.discarding = true;
        } else if (connection.peer_closed) {
            // A last request without a newline still gets a response.
            std::string line = std::move(connection.input);
            connection.input.clear();
            if (!connection.discarding) handle_line(connection, line);
            connection.handled_last_line = true;
        } else {
            return;
        }
        if (!flush(connection)) return;
    }
}

void ControlServer::Loop::handle_line(Connection& connection, std::string_view line) {
    if (is_blank(line)) return;
    if (line.size() > options.max_line_bytes) {
        spdlog::debug("control: {}: request line longer than {} bytes", connection.peer,
                      options.max_line_bytes);
        connection.output = serialize_control_message(control_error_response(
            fmt::format("request line is longer than {} bytes", options.max_line_bytes)));
        return;
    }

    json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
    json response;
    if (request.is_discarded()) {
        response = control_error_response(
            "request is not valid JSON; send one JSON object per line, such as "
            "{\"command\":\"status\"}");
    } else {
        response = handle_control_request(admin, request);
    }
    connection.output = serialize_control_message(response);

    bool ok = response["ok"] == true;
    if (changes_array(request)) {
        spdlog::info("control: {}: {} -> {}", connection.peer, shorten_for_log(line),
                     ok ? std::string("ok") : response["error"].get<std::string>());
    } else if (!ok) {
        spdlog::debug("control: {}: rejected {}: {}", connection.peer, shorten_for_log(line),
                      response["error"].get<std::string>());
    } else {
        spdlog::debug("control: {}: {}", connection.peer, shorten_for_log(line));
    }
}

void ControlServer::Loop::close_connection(Connection& connection, std::string_view reason) {
    if (connection.fd < 0) return;
    spdlog::debug("control: {}: connection closed: {}", connection.peer, reason);
    close(connection.fd);
    connection.fd = -1;
}

ControlServer::ControlServer(Admin& admin, ControlServerOptions options)
    : admin_(admin), options_(std::move(options)) {}

ControlServer::~ControlServer() { stop(); }

Result<std::unique_ptr<ControlServer>> ControlServer::start(Admin& admin,
                                                            ControlServerOptions options) {
    std::unique_ptr<ControlServer> server(new ControlServer(admin, std::move(options)));
    server->loop_ = std::make_unique<Loop>(server->admin_, server->options_);
    Loop& loop = *server->loop_;
    loop.wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (loop.wake_fd < 0) {
        Status status = Status::from_errno(errno, "creating an eventfd failed");
        server->loop_.reset();
        return status;
    }
    Status listening = server->listen();
    if (!listening.ok()) {
        if (loop.listen_fd >= 0) close(loop.listen_fd);
        close(loop.wake_fd);
        server->loop_.reset();
        return listening;
    }

    loop.thread = std::thread([&loop] { loop.run(); });
    spdlog::info("control: listening on '{}'", server->options_.socket_path);
    return server;
}

Status ControlServer::listen() {
    const std::string& path = options_.socket_path;
    if (path.empty()) {
        return Status::error(Code::kInvalidArgument, "no control socket path given");
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path)) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("control socket path '{}' is longer than {} bytes", path,
                                         sizeof(address.sun_path) - 1));
    }
    std::memcpy(address.sun_path, path.data(), path.size());
    auto* socket_address = reinterpret_cast<sockaddr*>(&address);

    struct stat existing{};
    if (lstat(path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) {
            return Status::error(Code::kExists,
                                 fmt::format("'{}' exists and is not a socket; remove it or "
                                             "choose another control socket path",
                                             path));
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe < 0) return Status::from_errno(errno, "creating a unix socket failed");
        int connected = connect(probe, socket_address, sizeof(address));
        int probe_errno = errno;
        close(probe);
        // EAGAIN means a live server whose accept backlog is full.
        if (connected == 0 || probe_errno == EAGAIN) {
            return Status::error(Code::kExists,
                                 fmt::format("another server is listening on control socket "
                                             "'{}'; stop it or choose another path",
                                             path));
        }
        if (probe_errno != ECONNREFUSED) {
            return Status::from_errno(probe_errno,
                                      "checking the existing control socket '" + path + "' failed");
        }
        if (unlink(path.c_str()) != 0 && errno != ENOENT) {
            return Status::from_errno(errno, "removing stale control socket '" + path + "' failed");
        }
        spdlog::info("control: removed stale socket '{}'", path);
    }

    Loop& loop = *loop_;
    loop.listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (loop.listen_fd < 0) return Status::from_errno(errno, "creating a unix socket failed");
    if (bind(loop.listen_fd, socket_address, sizeof(address)) != 0) {
        return Status::from_errno(errno, "binding control socket '" + path + "' failed");
    }
    // No client can connect before listen(), so the mode is set before the first connection.
    if (chmod(path.c_str(), 0600) != 0) {
        Status status = Status::from_errno(errno, "setting the mode of '" + path + "' failed");
        unlink(path.c_str());
        return status;
    }
    if (::listen(loop.listen_fd, SOMAXCONN) != 0) {
        Status status = Status::from_errno(errno, "listening on '" + path + "' failed");
        unlink(path.c_str());
        return status;
    }
    struct stat bound{};
    if (stat(path.c_str(), &bound) == 0) loop.socket_inode = bound.st_ino;
    return Status::ok_status();
}

void ControlServer::stop() {
    if (!loop_) return;
    uint64_t one = 1;
    ssize_t written = write(loop_->wake_fd, &one, sizeof(one));
    (void)written;  // The counter cannot overflow from a single write.
    loop_->thread.join();
    close(loop_->listen_fd);
    close(loop_->wake_fd);

    // Another server may have replaced the socket file since; only ours is removed.
    struct stat current{};
    const std::string& path = options_.socket_path;
    if (stat(path.c_str(), &current) == 0 && current.st_ino == loop_->socket_inode) {
        unlink(path.c_str());
    }
    loop_.reset();
    spdlog::info("control: stopped listening on '{}'", path);
}

size_t ControlServer::connection_count() const {
    return loop_ ? loop_->connection_count.load() : 0;
}

}  // namespace ecraid
