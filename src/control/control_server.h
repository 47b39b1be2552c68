// SPDX-License-Identifier: Apache-2.0
// ControlServer: the control socket of a served array, speaking JSON lines.
//
// Each request is one JSON object on one line and gets one JSON object on one line back:
// {"ok":true, ...} or {"ok":false,"error":"..."}. The server turns requests into Admin calls.
// Requests on one connection are handled in order, one at a time. Malformed JSON, unknown
// commands or fields, missing or mistyped fields and lines longer than the limit get an error
// response, and the connection stays usable. handle_control_request (control_request.h) turns
// each request into an Admin call; docs/control.md lists the commands.
//
// The socket is a unix socket with mode 0600, so only its owner and root can connect. All
// connections are served by one thread with poll(), apart from the io_uring workers.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "array/admin.h"
#include "common/status.h"

namespace ecraid {

inline constexpr size_t kControlMaxLineBytes = 64 * 1024;

struct ControlServerOptions {
    std::string socket_path;
    // Longest accepted request line, newline excluded. A longer line gets an error response
    // and its remaining bytes are discarded up to the next newline.
    size_t max_line_bytes = kControlMaxLineBytes;
    // Further connections get an error response and are closed at once.
    size_t max_connections = 64;
    // Connections with no request for this long are closed; 0 keeps them open.
    int idle_timeout_ms = 10 * 60 * 1000;
};

class ControlServer {
public:
    // Creates the socket and starts the serving thread. A stale socket file, with no server
    // listening on it, is replaced. Returns kExists when another server accepts connections on
    // the path or the path is not a socket, and kInvalidArgument when the path does not fit a
    // sockaddr_un.
    static Result<std::unique_ptr<ControlServer>> start(Admin& admin,
                                                        ControlServerOptions options);

    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;
    ~ControlServer();

    // Closes every connection, joins the serving thread and removes the socket file (unless
    // another file has replaced it). Idempotent.
    void stop();

    const std::string& socket_path() const { return options_.socket_path; }
    size_t connection_count() const;

private:
    struct Loop;

    ControlServer(Admin& admin, ControlServerOptions options);
    Status listen();

    Admin& admin_;
    ControlServerOptions options_;
    std::unique_ptr<Loop> loop_;
};

}  // namespace ecraid
