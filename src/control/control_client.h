// SPDX-License-Identifier: Apache-2.0
// ControlClient: the client side of the control socket (see control_server.h), as the
// status, scrub and member commands use it.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/status.h"

namespace ecraid {

// Returns the control socket path the client commands use when none is given:
// $ECRAID_CONTROL if set and not empty; else the only ecraid-*.ctl socket in $XDG_RUNTIME_DIR
// (or /tmp), which is the one `serve` made for its array; else ecraid.ctl there.
std::string default_control_path();
// The control socket `serve` uses for an array when --control is not given:
// $XDG_RUNTIME_DIR (or /tmp) /ecraid-NAME.ctl.
std::string control_path_for_array(const std::string& array_name);

struct ControlClientOptions {
    // Limit for connecting and for each response. The server returns status at once and runs
    // long work in the background, so a slow response means a stuck server.
    int timeout_ms = 10000;
    // Longest accepted response line. A status lists every member, about 200 bytes each.
    size_t max_response_bytes = 16 * 1024 * 1024;
};

class ControlClient {
public:
    // Connects to the control socket at `socket_path`. The error message gives the cause and
    // what to check, for example that no server listens there or that the socket belongs to
    // another user. A server running as another user than the caller (root excepted) is
    // rejected, so that a socket planted in /tmp does not receive the requests.
    static Result<ControlClient> connect(const std::string& socket_path,
                                         ControlClientOptions options = {});

    ControlClient(ControlClient&& other) noexcept;
    ControlClient& operator=(ControlClient&& other) noexcept;
    ControlClient(const ControlClient&) = delete;
    ControlClient& operator=(const ControlClient&) = delete;
    ~ControlClient();

    // Sends one request and waits for its response, which is returned whether its "ok" is
    // true or false. Errors are transport failures and responses that are not a JSON object
    // with a boolean "ok".
    Result<nlohmann::ordered_json> exchange(const nlohmann::ordered_json& request);
    // Sends `line` unchanged (a newline is appended when it has none) and waits for one
    // response. For requests that are not valid JSON, as the tests send.
    Result<nlohmann::ordered_json> exchange_line(std::string_view line);

    const std::string& socket_path() const { return socket_path_; }

private:
    ControlClient(int fd, std::string socket_path, ControlClientOptions options);
    Status send_all(std::string_view bytes);
    Result<std::string> receive_line();

    int fd_ = -1;
    std::string socket_path_;
    ControlClientOptions options_;
    std::string received_;  // Bytes received after the last complete response line.
};

// Connects, sends one request and returns the response when its "ok" is true. A response
// with "ok": false becomes a kInvalidArgument error carrying the server's message, because
// the protocol does not carry error codes.
Result<nlohmann::ordered_json> send_control_request(const std::string& socket_path,
                                                    const nlohmann::ordered_json& request,
                                                    ControlClientOptions options = {});

}  // namespace ecraid
