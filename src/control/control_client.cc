// SPDX-License-Identifier: Apache-2.0
#include "control/control_client.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include <fmt/format.h>

namespace ecraid {
namespace {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

constexpr size_t kReceiveChunkBytes = 16 * 1024;

std::string format_timeout(int timeout_ms) {
    if (timeout_ms % 1000 == 0) return fmt::format("{} s", timeout_ms / 1000);
    return fmt::format("{} ms", timeout_ms);
}

Status connect_error(const std::string& path, int error_number, int timeout_ms) {
    switch (error_number) {
        case ENOENT:
            return Status::error(Code::kNotFound,
                                 fmt::format("cannot connect to {}: no ecraid serve is listening "
                                             "there (is the array served with --control?)",
                                             path),
                                 error_number);
        case ECONNREFUSED:
            // connect() also returns ECONNREFUSED for a file that is not a socket.
            if (struct stat info{}; lstat(path.c_str(), &info) == 0 && !S_ISSOCK(info.st_mode)) {
                return Status::error(Code::kInvalidArgument,
                                     fmt::format("cannot connect to {}: it is not a socket; give "
                                                 "the path of the control socket of ecraid "
                                                 "serve",
                                                 path),
                                     error_number);
            }
            return Status::error(Code::kUnavailable,
                                 fmt::format("cannot connect to {}: no ecraid serve is listening "
                                             "there, the file is left over from an earlier "
                                             "server (is the array served with --control?)",
                                             path),
                                 error_number);
        case EACCES:
        case EPERM:
            return Status::error(Code::kIoError,
                                 fmt::format("cannot connect to {}: permission denied; run this "
                                             "command as the user that runs ecraid serve, or as "
                                             "root",
                                             path),
                                 error_number);
        case EAGAIN:
            return Status::error(Code::kUnavailable,
                                 fmt::format("cannot connect to {}: the server did not accept "
                                             "the connection within {}",
                                             path, format_timeout(timeout_ms)),
                                 error_number);
        default:
            return Status::from_errno(error_number, fmt::format("cannot connect to {}", path));
    }
}

// Rejects a server run by another user, unless the caller or the server is root.
Status check_server_owner(int fd, const std::string& path) {
    ucred credentials{};
    socklen_t length = sizeof(credentials);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) {
        return Status::from_errno(errno, fmt::format("reading the server's identity on {}", path));
    }
    uid_t caller = geteuid();
    if (credentials.uid == caller || credentials.uid == 0 || caller == 0) {
        return Status::ok_status();
    }
    return Status::error(Code::kIoError,
                         fmt::format("refusing to use {}: the server there runs as uid {}, not "
                                     "as you (uid {}) or root; choose your own control socket "
                                     "with --control or ECRAID_CONTROL",
                                     path, credentials.uid, caller));
}

Status invalid_response(const std::string& path, std::string_view problem) {
    return Status::error(Code::kIoError,
                         fmt::format("invalid response from {}: {}", path, problem));
}

}  // namespace

namespace {

std::string control_directory() {
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (runtime != nullptr && runtime[0] != '\0') return runtime;
    return "/tmp";
}

}  // namespace

std::string control_path_for_array(const std::string& array_name) {
    return control_directory() + "/ecraid-" + array_name + ".ctl";
}

std::string default_control_path() {
    const char* configured = std::getenv("ECRAID_CONTROL");
    if (configured != nullptr && configured[0] != '\0') return configured;
    // Each served array has its own socket; when exactly one exists, that is the one meant.
    std::string directory = control_directory();
    std::vector<std::string> found;
    if (DIR* listing = opendir(directory.c_str())) {
        while (dirent* entry = readdir(listing)) {
            std::string_view name(entry->d_name);
            if (name.starts_with("ecraid-") && name.ends_with(".ctl")) {
                found.push_back(directory + "/" + std::string(name));
            }
        }
        closedir(listing);
    }
    if (found.size() == 1) return found.front();
    return directory + "/ecraid.ctl";
}

ControlClient::ControlClient(int fd, std::string socket_path, ControlClientOptions options)
    : fd_(fd), socket_path_(std::move(socket_path)), options_(options) {}

ControlClient::ControlClient(ControlClient&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      socket_path_(std::move(other.socket_path_)),
      options_(other.options_),
      received_(std::move(other.received_)) {}

ControlClient& ControlClient::operator=(ControlClient&& other) noexcept {
    if (this != &other) {
        if (fd_ >= 0) close(fd_);
        fd_ = std::exchange(other.fd_, -1);
        socket_path_ = std::move(other.socket_path_);
        options_ = other.options_;
        received_ = std::move(other.received_);
    }
    return *this;
}

ControlClient::~ControlClient() {
    if (fd_ >= 0) close(fd_);
}

Result<ControlClient> ControlClient::connect(const std::string& socket_path,
                                             ControlClientOptions options) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.empty()) {
        return Status::error(Code::kInvalidArgument, "no control socket path given");
    }
    if (socket_path.size() >= sizeof(address.sun_path)) {
        return Status::error(Code::kInvalidArgument,
                             fmt::format("control socket path '{}' is longer than {} bytes",
                                         socket_path, sizeof(address.sun_path) - 1));
    }
    std::memcpy(address.sun_path, socket_path.data(), socket_path.size());

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return Status::from_errno(errno, "creating a unix socket failed");
    ControlClient client(fd, socket_path, options);

    // A blocking connect() on a unix socket waits for room in the server's accept backlog
    // for at most the send timeout, then fails with EAGAIN. Sends use the same limit.
    timeval timeout{};
    timeout.tv_sec = options.timeout_ms / 1000;
    timeout.tv_usec = (options.timeout_ms % 1000) * 1000;
    if (setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof(timeout)) != 0) {
        return Status::from_errno(errno, "setting the send timeout of a unix socket failed");
    }
    while (::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address)) != 0) {
        if (errno == EINTR) continue;
        return connect_error(socket_path, errno, options.timeout_ms);
    }
    ECRAID_RETURN_IF_ERROR(check_server_owner(fd, socket_path));
    return client;
}

Result<json> ControlClient::exchange(const json& request) {
    return exchange_line(request.dump(-1, ' ', false, json::error_handler_t::replace));
}

Result<json> ControlClient::exchange_line(std::string_view line) {
    std::string bytes(line);
    if (bytes.empty() || bytes.back() != '\n') bytes += '\n';
    ECRAID_RETURN_IF_ERROR(send_all(bytes));
    Result<std::string> response_line = receive_line();
    if (!response_line.ok()) return response_line.status();

    json response = json::parse(response_line.value(), nullptr, /*allow_exceptions=*/false);
    if (response.is_discarded()) return invalid_response(socket_path_, "not JSON");
    if (!response.is_object()) return invalid_response(socket_path_, "not a JSON object");
    auto ok = response.find("ok");
    if (ok == response.end() || !ok->is_boolean()) {
        return invalid_response(socket_path_, "no boolean field 'ok'");
    }
    if (*ok == false) {
        auto error = response.find("error");
        if (error == response.end() || !error->is_string()) {
            return invalid_response(socket_path_, "an error without a string field 'error'");
        }
    }
    return response;
}

Status ControlClient::send_all(std::string_view bytes) {
    while (!bytes.empty()) {
        ssize_t sent = send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return Status::error(Code::kIoError,
                                     fmt::format("sending a request to {} timed out after {}",
                                                 socket_path_,
                                                 format_timeout(options_.timeout_ms)),
                                     errno);
            }
            return Status::from_errno(errno, fmt::format("sending a request to {}", socket_path_));
        }
        bytes.remove_prefix(static_cast<size_t>(sent));
    }
    return Status::ok_status();
}

Result<std::string> ControlClient::receive_line() {
    auto deadline = Clock::now() + std::chrono::milliseconds(options_.timeout_ms);
    size_t searched = 0;
    while (true) {
        size_t newline = received_.find('\n', searched);
        if (newline != std::string::npos) {
            std::string line = received_.substr(0, newline);
            received_.erase(0, newline + 1);
            return line;
        }
        searched = received_.size();
        if (received_.size() > options_.max_response_bytes) {
            return invalid_response(socket_path_, fmt::format("longer than {} bytes",
                                                              options_.max_response_bytes));
        }

        auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(
            deadline - Clock::now());
        if (remaining.count() <= 0) {
            return Status::error(Code::kIoError,
                                 fmt::format("no response from {} within {}", socket_path_,
                                             format_timeout(options_.timeout_ms)));
        }
        pollfd readable{fd_, POLLIN, 0};
        int ready = poll(&readable, 1, static_cast<int>(remaining.count()));
        if (ready < 0 && errno != EINTR) {
            return Status::from_errno(errno, fmt::format("waiting for {}", socket_path_));
        }
        if (ready <= 0) continue;

        char buffer[kReceiveChunkBytes];
        ssize_t received = recv(fd_, buffer, sizeof(buffer), MSG_DONTWAIT);
        if (received < 0) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
            return Status::from_errno(errno, fmt::format("receiving from {}", socket_path_));
        }
        if (received == 0) {
            return Status::error(Code::kIoError,
                                 fmt::format("the server at {} closed the connection without a "
                                             "response",
                                             socket_path_));
        }
        received_.append(buffer, static_cast<size_t>(received));
    }
}

Result<json> send_control_request(const std::string& socket_path, const json& request,
                                  ControlClientOptions options) {
    Result<ControlClient> client = ControlClient::connect(socket_path, options);
    if (!client.ok()) return client.status();
    Result<json> response = client->exchange(request);
    if (!response.ok()) return response.status();
    if (response.value()["ok"] == false) {
        return Status::error(Code::kInvalidArgument,
                             response.value()["error"].get<std::string>());
    }
    return response;
}

}  // namespace ecraid
