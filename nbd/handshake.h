// SPDX-License-Identifier: Apache-2.0
// The NBD handshake: fixed newstyle greeting, client flags and option negotiation.
//
// The server has one export. The client selects it by its configured name or by the empty
// name (the default export). Options the server does not implement get the reply
// NBD_REP_ERR_UNSUP after their payload is read and discarded.
//
// Bad input closes only this connection, and no length from the client is allocated:
//   - unknown client flags, a wrong option magic, NBD_OPT_EXPORT_NAME with an unknown or
//     over-long name, and option payloads over kOptionDrainBytesMax close the connection;
//   - payloads over kOptionBytesMax (and up to kOptionDrainBytesMax) are discarded and
//     rejected with NBD_REP_ERR_TOO_BIG (NBD_REP_ERR_UNSUP for unknown options);
//   - names over 4096 bytes get NBD_REP_ERR_TOO_BIG, and inner lengths that disagree with
//     the option length get NBD_REP_ERR_INVALID.
// NOTE: there is no handshake timeout. A client that connects and sends nothing keeps its
// connection and receive buffer until it disconnects or the server stops.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>

#include "io/task.h"
#include "nbd/socket_stream.h"

namespace ecraid::nbd {

// Option payloads up to this size are read and parsed. The largest valid one is NBD_OPT_GO
// with a 4096-byte name and a few information requests.
inline constexpr uint32_t kOptionBytesMax = 64 * 1024;
// Larger payloads up to this size are discarded and get an error reply. Beyond it the
// connection is closed, because reading gigabytes to stay in sync is a denial of service.
inline constexpr uint32_t kOptionDrainBytesMax = 1024 * 1024;

// Export properties that the handshake advertises.
struct ExportInfo {
    std::string name;
    std::string description;
    uint64_t size_bytes = 0;
    uint16_t transmission_flags = 0;
};

struct HandshakeResult {
    // True when the client selected the export and the transmission phase begins.
    bool transmission = false;
    bool structured_replies = false;
};

// Runs the handshake on a freshly accepted connection. While `stopping` is set, options
// other than NBD_OPT_ABORT are rejected with NBD_REP_ERR_SHUTDOWN.
Task<HandshakeResult> negotiate(SocketStream& stream, const ExportInfo& export_info,
                                uint64_t connection_id, const std::atomic<bool>& stopping);

}  // namespace ecraid::nbd
