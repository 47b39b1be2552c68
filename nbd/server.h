// SPDX-License-Identifier: Apache-2.0
// Server: the NBD listener. It serves one BlockDevice as one export to any number of
// connections spread over the rings of a WorkerPool.
//
// One ring accepts connections and hands each accepted socket to a worker with post(); the
// connection then lives on that worker's thread. Connections share a budget of request
// buffer bytes (see request_buffer.h). Because every connection serves the same device,
// flushes cover writes from all connections and the server advertises CAN_MULTI_CONN.
//
// Usage:
//   auto server = Server::start(device, pool, options);   // listening when this returns
//   ...
//   server.value()->stop();   // then flush the device, then stop the pool
//
// The WorkerPool must run until stop() has returned.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "array/block_device.h"
#include "common/status.h"
#include "io/task.h"
#include "io/worker_pool.h"
#include "nbd/handshake.h"
#include "nbd/request_buffer.h"

namespace ecraid::nbd {

struct ServerOptions {
    // The export's name. Clients may also select it with the empty (default) name.
    std::string export_name;
    // Optional text sent in NBD_INFO_DESCRIPTION and NBD_OPT_LIST replies.
    std::string export_description;
    // Path of the unix socket to listen on, used unless tcp_address is set. A stale socket
    // file at the path is removed first; the new one gets `unix_socket_mode`.
    std::string unix_socket_path;
    uint32_t unix_socket_mode = 0600;
    // "HOST:PORT", "[IPV6]:PORT" or "PORT" to listen on TCP instead; a bare port listens on
    // 127.0.0.1. Port 0 picks a free port (see tcp_port()).
    std::string tcp_address;
    // Requests read from one connection whose replies are not yet sent.
    uint32_t requests_in_flight_max = 64;
    // Bytes of READ and WRITE buffers in use across all connections.
    uint64_t request_buffer_budget_bytes = 256ull * 1024 * 1024;
    // Receive buffer of each connection; at least 128 KiB so a maximal option fits.
    uint32_t receive_buffer_bytes = 128 * 1024;
    // How long stop() lets connections finish their outstanding requests and send the
    // replies before it also shuts down their sending side.
    uint32_t stop_grace_ms = 5000;
};

// Asks for a send buffer on a unix-socket connection large enough for several 1 MiB
// replies (the kernel caps it at net.core.wmem_max). With the default of about 208 KiB, a
// 1 MiB reply went out in several pieces, each waiting for the client to drain the socket.
// Returns false if the kernel rejected the option, which leaves the default in place.
bool enlarge_unix_send_buffer(int fd);

class Server {
public:
    // Binds the listening socket and starts accepting on the first ring of `workers`.
    // `device` and `workers` must outlive the server.
    static Result<std::unique_ptr<Server>> start(BlockDevice& device, WorkerPool& workers,
                                                 ServerOptions options);
    ~Server();  // Calls stop().
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Stops accepting, shuts down the receiving side of every connection so it reads no
    // further requests, and waits until every connection has replied to its outstanding
    // requests and closed. Connections still open after stop_grace_ms get their sending
    // side shut down too. Call it from a thread that is not a worker of the pool. Idempotent.
    void stop();

    // "unix:PATH" or "HOST:PORT", for logs.
    const std::string& listen_address() const { return listen_address_; }
    // The bound TCP port, or 0 for a unix socket.
    uint16_t tcp_port() const { return tcp_port_; }
    size_t connection_count() const;
    // Bytes of the request buffer budget not in use, for tests and status output.
    uint64_t request_buffer_bytes_available() const { return budget_.available_bytes(); }
    uint64_t connections_accepted() const { return next_connection_id_.load() - 1; }

private:
    Server(BlockDevice& device, WorkerPool& workers, ServerOptions options);
    Status listen_unix();
    Status listen_tcp();
    Task<void> accept_connections();
    void hand_over(int fd);
    Task<void> serve_connection(int fd, uint64_t id, std::string peer);
    void close_connection(int fd, uint64_t id, const std::string& peer);
    void shut_down_connections(int how);

    BlockDevice& device_;
    WorkerPool& workers_;
    ServerOptions options_;
    ExportInfo export_info_;
    BufferBudget budget_;

    int listen_fd_ = -1;
    bool is_unix_ = false;
    std::string listen_address_;
    uint16_t tcp_port_ = 0;
    uint64_t unix_socket_inode_ = 0;

    std::atomic<bool> stopping_{false};
    std::atomic<uint64_t> next_connection_id_{1};
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    bool accepting_ = false;                       // Guarded by mutex_.
    bool stopped_ = false;                         // Guarded by mutex_.
    std::unordered_map<uint64_t, int> open_fds_;  // Connection id to socket; guarded by mutex_.
};

}  // namespace ecraid::nbd
