// SPDX-License-Identifier: Apache-2.0
#include "nbd/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "io/ring.h"
#include "nbd/protocol.h"
#include "nbd/socket_stream.h"
#include "nbd/transmission.h"

namespace ecraid::nbd {
namespace {

constexpr uint64_t kAcceptRetryDelayNs = 100ull * 1000 * 1000;

// Send buffer requested for unix-socket connections (see enlarge_unix_send_buffer).
constexpr int kUnixSendBufferBytes = 4 << 20;

uint16_t transmission_flags(const BlockDevice& device) {
    uint16_t flags = kFlagHasFlags | kFlagSendFlush | kFlagSendFua | kFlagCanMultiConn;
    if (device.read_only()) {
        // TRIM and WRITE_ZEROES are not advertised; if sent anyway they get EPERM.
        flags |= kFlagReadOnly;
    } else {
        flags |= kFlagSendTrim | kFlagSendWriteZeroes;
    }
    return flags;
}

}  // namespace

bool enlarge_unix_send_buffer(int fd) {
    int size = kUnixSendBufferBytes;
    return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) == 0;
}

namespace {

std::string describe_peer(int fd, bool is_unix) {
    if (is_unix) {
        ucred credentials{};
        socklen_t length = sizeof(credentials);
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) == 0) {
            return fmt::format("unix pid={} uid={}", credentials.pid, credentials.uid);
        }
        return "unix";
    }
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) return "tcp";
    char host[INET6_ADDRSTRLEN] = {};
    if (address.ss_family == AF_INET) {
        auto* ipv4 = reinterpret_cast<sockaddr_in*>(&address);
        inet_ntop(AF_INET, &ipv4->sin_addr, host, sizeof(host));
        return fmt::format("{}:{}", host, ntohs(ipv4->sin_port));
    }
    auto* ipv6 = reinterpret_cast<sockaddr_in6*>(&address);
    inet_ntop(AF_INET6, &ipv6->sin6_addr, host, sizeof(host));
    return fmt::format("[{}]:{}", host, ntohs(ipv6->sin6_port));
}

// Splits "HOST:PORT", "[IPV6]:PORT", ":PORT" or "PORT". An empty host means loopback.
Status split_host_port(const std::string& text, std::string* host, std::string* port) {
    auto invalid = [&] {
        return Status::error(Code::kInvalidArgument,
                             "invalid TCP address '" + text +
                                 "': expected HOST:PORT, [IPV6]:PORT or PORT");
    };
    if (!text.empty() && text.front() == '[') {
        size_t close = text.find("]:");
        if (close == std::string::npos) return invalid();
        *host = text.substr(1, close - 1);
        *port = text.substr(close + 2);
    } else if (size_t colon = text.rfind(':'); colon != std::string::npos) {
        *host = text.substr(0, colon);
        *port = text.substr(colon + 1);
        if (host->find(':') != std::string::npos) return invalid();
    } else {
        host->clear();
        *port = text;
    }
    if (port->empty() || port->size() > 5 ||
        port->find_first_not_of("0123456789") != std::string::npos || std::stoul(*port) > 65535) {
        return invalid();
    }
    if (host->empty()) *host = "127.0.0.1";
    return Status::ok_status();
}

}  // namespace

Server::Server(BlockDevice& device, WorkerPool& workers, ServerOptions options)
    : device_(device),
      workers_(workers),
      options_(std::move(options)),
      budget_(options_.request_buffer_budget_bytes) {
    export_info_.name = options_.export_name;
    export_info_.description = options_.export_description;
    export_info_.size_bytes = device.size_bytes();
    export_info_.transmission_flags = transmission_flags(device);
}

Result<std::unique_ptr<Server>> Server::start(BlockDevice& device, WorkerPool& workers,
                                              ServerOptions options) {
    if (options.export_name.size() > kStringBytesMax ||
        options.export_description.size() > kStringBytesMax) {
        return Status::error(Code::kInvalidArgument,
                             "export name and description must be at most 4096 bytes");
    }
    if (options.requests_in_flight_max == 0) {
        return Status::error(Code::kInvalidArgument, "requests_in_flight_max must be at least 1");
    }
    if (options.request_buffer_budget_bytes < kPayloadBytesMax) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("request buffer budget of {} bytes is below one maximum "
                                         "payload ({} bytes)",
                                         options.request_buffer_budget_bytes, kPayloadBytesMax));
    }
    if (options.receive_buffer_bytes < 2 * kOptionBytesMax) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("receive buffer of {} bytes is below the minimum of {}",
                                         options.receive_buffer_bytes, 2 * kOptionBytesMax));
    }

    std::unique_ptr<Server> server(new Server(device, workers, std::move(options)));
    Status listening = server->options_.tcp_address.empty() ? server->listen_unix()
                                                            : server->listen_tcp();
    if (!listening.ok()) return listening;

    server->accepting_ = true;
    Server* raw = server.get();
    workers.ring(0).post([raw] { spawn(raw->accept_connections()); });
    spdlog::info("nbd: serving export '{}' ({} bytes{}) on {}", raw->export_info_.name,
                 raw->export_info_.size_bytes, device.read_only() ? ", read-only" : "",
                 raw->listen_address_);
    return server;
}

Server::~Server() { stop(); }

Status Server::listen_unix() {
    const std::string& path = options_.unix_socket_path;
    if (path.empty()) {
        return Status::error(Code::kInvalidArgument,
                             "no listen address: set a unix socket path or a TCP address");
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.size() >= sizeof(address.sun_path)) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("unix socket path '{}' is longer than {} bytes", path,
                                         sizeof(address.sun_path) - 1));
    }
    std::memcpy(address.sun_path, path.data(), path.size());

    struct stat existing{};
    if (lstat(path.c_str(), &existing) == 0) {
        if (!S_ISSOCK(existing.st_mode)) {
            return Status::error(Code::kExists,
                                 fmt::format("'{}' exists and is not a socket; remove it or "
                                             "choose another path",
                                             path));
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool live = probe >= 0 &&
                    connect(probe, reinterpret_cast<sockaddr*>(&address), sizeof(address)) == 0;
        if (probe >= 0) close(probe);
        if (live) {
            return Status::error(Code::kExists,
                                 fmt::format("another server is listening on '{}'", path));
        }
        if (unlink(path.c_str()) != 0 && errno != ENOENT) {
            return Status::from_errno(errno, "removing stale socket '" + path + "' failed");
        }
        spdlog::info("nbd: removed stale socket '{}'", path);
    }

    listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (listen_fd_ < 0) return Status::from_errno(errno, "creating a unix socket failed");
    is_unix_ = true;
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        return Status::from_errno(errno, "binding unix socket '" + path + "' failed");
    }
    if (chmod(path.c_str(), options_.unix_socket_mode) != 0) {
        return Status::from_errno(errno, "setting the mode of '" + path + "' failed");
    }
    if (listen(listen_fd_, SOMAXCONN) != 0) {
        return Status::from_errno(errno, "listening on '" + path + "' failed");
    }
    struct stat bound{};
    if (stat(path.c_str(), &bound) == 0) unix_socket_inode_ = bound.st_ino;
    listen_address_ = "unix:" + path;
    return Status::ok_status();
}

Status Server::listen_tcp() {
    std::string host;
    std::string port;
    ECRAID_RETURN_IF_ERROR(split_host_port(options_.tcp_address, &host, &port));

    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* addresses = nullptr;
    int resolved = getaddrinfo(host.c_str(), port.c_str(), &hints, &addresses);
    if (resolved != 0) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("resolving '{}' failed: {}", host, gai_strerror(resolved)));
    }
    int last_errno = 0;
    for (addrinfo* address = addresses; address != nullptr; address = address->ai_next) {
        int fd = socket(address->ai_family, address->ai_socktype | SOCK_CLOEXEC,
                        address->ai_protocol);
        if (fd < 0) {
            last_errno = errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, address->ai_addr, address->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
            listen_fd_ = fd;
            break;
        }
        last_errno = errno;
        close(fd);
    }
    freeaddrinfo(addresses);
    if (listen_fd_ < 0) {
        return Status::from_errno(last_errno, "listening on TCP " + options_.tcp_address + " failed");
    }

    sockaddr_storage bound{};
    socklen_t length = sizeof(bound);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&bound), &length);
    if (bound.ss_family == AF_INET) {
        tcp_port_ = ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        listen_address_ = fmt::format("{}:{}", host, tcp_port_);
    } else {
        tcp_port_ = ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
        listen_address_ = fmt::format("[{}]:{}", host, tcp_port_);
    }
    return Status::ok_status();
}

Task<void> Server::accept_connections() {
    Ring& ring = *Ring::current();
    uint64_t resource_failures = 0;
    for (;;) {
        int fd = co_await ring.accept(listen_fd_);
        if (stopping_.load()) {
            if (fd >= 0) close(fd);
            break;
        }
        if (fd >= 0) {
            hand_over(fd);
            continue;
        }
        int error = -fd;
        if (error == EINTR || error == ECONNABORTED || error == EPROTO) continue;
        if (error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM) {
            // Out of descriptors or memory: wait for connections to close, and log the first
            // failure and every 100th so a long shortage does not flood the log.
            if (resource_failures++ % 100 == 0) {
                spdlog::warn("nbd: accept on {} failed: {} ({} times so far); retrying in 100 ms",
                             listen_address_, std::strerror(error), resource_failures);
            }
            co_await ring.sleep_ns(kAcceptRetryDelayNs);
            continue;
        }
        spdlog::error("nbd: accept on {} failed: {}; no longer accepting connections",
                      listen_address_, std::strerror(error));
        break;
    }
    std::lock_guard lock(mutex_);
    accepting_ = false;
    changed_.notify_all();
}

void Server::hand_over(int fd) {
    uint64_t id = next_connection_id_.fetch_add(1);
    if (!is_unix_) {
        // Replies are small and latency-bound; do not let Nagle's algorithm hold them back.
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    // TCP tunes its own buffers, and a fixed SO_SNDBUF would turn that off.
    if (is_unix_ && !enlarge_unix_send_buffer(fd)) {
        spdlog::warn("nbd conn={}: setting the send buffer failed: {}; replies use the default",
                     id, std::strerror(errno));
    }
    std::string peer = describe_peer(fd, is_unix_);
    {
        std::lock_guard lock(mutex_);
        open_fds_.emplace(id, fd);
    }
    workers_.post([this, fd, id, peer] { spawn(serve_connection(fd, id, peer)); });
}

Task<void> Server::serve_connection(int fd, uint64_t id, std::string peer) {
    spdlog::info("nbd conn={}: opened, peer {}", id, peer);
    {
        SocketStream stream(*Ring::current(), fd, options_.receive_buffer_bytes);
        HandshakeResult handshake = co_await negotiate(stream, export_info_, id, stopping_);
        if (handshake.transmission) {
            spdlog::debug("nbd conn={}: transmission phase, structured replies {}", id,
                          handshake.structured_replies ? "on" : "off");
            TransmissionOptions options{id, handshake.structured_replies,
                                        options_.requests_in_flight_max};
            Transmission transmission(stream, device_, budget_, stopping_, options);
            co_await transmission.run();
        }
    }
    close_connection(fd, id, peer);
}

void Server::close_connection(int fd, uint64_t id, const std::string& peer) {
    spdlog::info("nbd conn={}: closed, peer {}", id, peer);
    std::lock_guard lock(mutex_);
    open_fds_.erase(id);
    // The socket is closed under the lock, so stop() never shuts down a reused descriptor.
    close(fd);
    changed_.notify_all();
}

void Server::shut_down_connections(int how) {
    std::lock_guard lock(mutex_);
    for (const auto& [id, fd] : open_fds_) shutdown(fd, how);
}

size_t Server::connection_count() const {
    std::lock_guard lock(mutex_);
    return open_fds_.size();
}

void Server::stop() {
    {
        std::lock_guard lock(mutex_);
        if (stopped_) return;
        stopped_ = true;
    }
    stopping_.store(true);

    // Shutting down the listening socket fails the pending accept.
    shutdown(listen_fd_, SHUT_RDWR);
    {
        std::unique_lock lock(mutex_);
        changed_.wait(lock, [&] { return !accepting_; });
    }
    close(listen_fd_);
    if (is_unix_) {
        struct stat current{};
        const std::string& path = options_.unix_socket_path;
        if (stat(path.c_str(), &current) == 0 && current.st_ino == unix_socket_inode_) {
            unlink(path.c_str());
        }
    }

    // Connections read no more requests, reply to those already read, and close.
    shut_down_connections(SHUT_RD);
    std::unique_lock lock(mutex_);
    bool drained = changed_.wait_for(lock, std::chrono::milliseconds(options_.stop_grace_ms),
                                     [&] { return open_fds_.empty(); });
    if (!drained) {
        spdlog::warn("nbd: {} connections still open {} ms after stop; shutting down their "
                     "sockets",
                     open_fds_.size(), options_.stop_grace_ms);
        for (const auto& [id, fd] : open_fds_) shutdown(fd, SHUT_RDWR);
        changed_.wait(lock, [&] { return open_fds_.empty(); });
    }
    spdlog::info("nbd: stopped serving on {}", listen_address_);
}

}  // namespace ecraid::nbd
