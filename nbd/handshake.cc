// SPDX-License-Identifier: Apache-2.0
#include "nbd/handshake.h"

#include <sys/uio.h>

#include <cstring>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "nbd/errors.h"
#include "nbd/protocol.h"

namespace ecraid::nbd {
namespace {

// Option replies collected for one option and sent with one sendmsg.
class OptionReplies {
public:
    explicit OptionReplies(uint32_t option) : option_(option) {}

    void add(uint32_t type, const void* payload = nullptr, size_t payload_bytes = 0) {
        size_t start = bytes_.size();
        bytes_.resize(start + kOptionReplyHeaderBytes + payload_bytes);
        uint8_t* header = bytes_.data() + start;
        store_be64(header, kOptionReplyMagic);
        store_be32(header + 8, option_);
        store_be32(header + 12, type);
        store_be32(header + 16, static_cast<uint32_t>(payload_bytes));
        if (payload_bytes > 0) {
            std::memcpy(header + kOptionReplyHeaderBytes, payload, payload_bytes);
        }
    }

    // Adds an NBD_REP_INFO reply: the 16-bit information type, then `payload`.
    void add_info(uint16_t info_type, const void* payload, size_t payload_bytes) {
        std::vector<uint8_t> info(2 + payload_bytes);
        store_be16(info.data(), info_type);
        if (payload_bytes > 0) std::memcpy(info.data() + 2, payload, payload_bytes);
        add(kRepInfo, info.data(), info.size());
    }

    Task<bool> send(SocketStream& stream) {
        iovec iov{bytes_.data(), bytes_.size()};
        int sent = co_await stream.send(&iov, 1);
        co_return sent >= 0;
    }

private:
    uint32_t option_;
    std::vector<uint8_t> bytes_;
};

bool is_known_option(uint32_t option) {
    switch (option) {
        case kOptExportName:
        case kOptAbort:
        case kOptList:
        case kOptInfo:
        case kOptGo:
        case kOptStructuredReply:
            return true;
        default:
            return false;
    }
}

bool names_export(std::string_view name, const ExportInfo& export_info) {
    return name.empty() || name == export_info.name;
}

// The export name and information requests of an NBD_OPT_INFO or NBD_OPT_GO payload.
struct InfoRequest {
    std::string_view name;
    bool wants_name = false;
    bool wants_description = false;
};

// Parses an NBD_OPT_INFO or NBD_OPT_GO payload. Returns 0 or the error reply type.
uint32_t parse_info_request(const uint8_t* payload, uint32_t length, InfoRequest* request) {
    // 32-bit name length, name, 16-bit request count, 16-bit requests.
    if (length < 6) return kRepErrInvalid;
    uint32_t name_bytes = load_be32(payload);
    if (name_bytes > length - 6) return kRepErrInvalid;
    uint16_t request_count = load_be16(payload + 4 + name_bytes);
    if (length != 4 + name_bytes + 2 + 2 * uint32_t{request_count}) return kRepErrInvalid;
    if (name_bytes > kStringBytesMax) return kRepErrTooBig;
    request->name = std::string_view(reinterpret_cast<const char*>(payload + 4), name_bytes);
    const uint8_t* requests = payload + 4 + name_bytes + 2;
    for (uint16_t i = 0; i < request_count; ++i) {
        // Unknown information types are ignored, as the spec requires.
        uint16_t info_type = load_be16(requests + 2 * i);
        if (info_type == kInfoName) request->wants_name = true;
        if (info_type == kInfoDescription) request->wants_description = true;
    }
    return 0;
}

void add_export_info(OptionReplies& replies, const ExportInfo& export_info,
                     const InfoRequest& request) {
    uint8_t export_payload[10];
    store_be64(export_payload, export_info.size_bytes);
    store_be16(export_payload + 8, export_info.transmission_flags);
    replies.add_info(kInfoExport, export_payload, sizeof(export_payload));

    // Block sizes are sent even when not requested; the spec allows unrequested information.
    uint8_t sizes[12];
    store_be32(sizes, kBlockSizeMin);
    store_be32(sizes + 4, kBlockSizePreferred);
    store_be32(sizes + 8, kPayloadBytesMax);
    replies.add_info(kInfoBlockSize, sizes, sizeof(sizes));

    if (request.wants_name) {
        replies.add_info(kInfoName, export_info.name.data(), export_info.name.size());
    }
    if (request.wants_description && !export_info.description.empty()) {
        replies.add_info(kInfoDescription, export_info.description.data(),
                         export_info.description.size());
    }
}

// Sends the reply that ends NBD_OPT_EXPORT_NAME: size, flags and, unless the client set
// NBD_FLAG_C_NO_ZEROES, 124 bytes of zeros.
Task<bool> send_export_name_reply(SocketStream& stream, const ExportInfo& export_info,
                                  bool no_zeroes) {
    uint8_t reply[kExportNameReplyBytes + kExportNamePaddingBytes] = {};
    store_be64(reply, export_info.size_bytes);
    store_be16(reply + 8, export_info.transmission_flags);
    iovec iov{reply, no_zeroes ? kExportNameReplyBytes : sizeof(reply)};
    int sent = co_await stream.send(&iov, 1);
    co_return sent >= 0;
}

}  // namespace

Task<HandshakeResult> negotiate(SocketStream& stream, const ExportInfo& export_info,
                                uint64_t connection_id, const std::atomic<bool>& stopping) {
    HandshakeResult result;
    uint8_t greeting[kServerGreetingBytes];
    store_be64(greeting, kInitMagic);
    store_be64(greeting + 8, kOptionMagic);
    store_be16(greeting + 16, kFlagFixedNewstyle | kFlagNoZeroes);
    iovec greeting_iov{greeting, sizeof(greeting)};
    if (co_await stream.send(&greeting_iov, 1) < 0) {
        spdlog::info("nbd conn={}: handshake failed: could not send the greeting", connection_id);
        co_return result;
    }

    if (!co_await stream.fill(4)) {
        spdlog::info("nbd conn={}: handshake failed: client closed before sending its flags",
                     connection_id);
        co_return result;
    }
    uint32_t client_flags = load_be32(stream.data());
    stream.consume(4);
    if ((client_flags & ~kClientFlagsKnown) != 0) {
        spdlog::warn("nbd conn={}: handshake failed: unknown client flags {:#x}, closing",
                     connection_id, client_flags);
        co_return result;
    }
    bool no_zeroes = (client_flags & kClientFlagNoZeroes) != 0;

    for (;;) {
        if (!co_await stream.fill(kOptionHeaderBytes)) {
            spdlog::info("nbd conn={}: client closed during option negotiation", connection_id);
            co_return result;
        }
        uint64_t magic = load_be64(stream.data());
        uint32_t option = load_be32(stream.data() + 8);
        uint32_t length = load_be32(stream.data() + 12);
        stream.consume(kOptionHeaderBytes);
        if (magic != kOptionMagic) {
            spdlog::warn("nbd conn={}: handshake failed: invalid option magic {:#x}, closing",
                         connection_id, magic);
            co_return result;
        }
        spdlog::debug("nbd conn={}: option {} ({}) length={}", connection_id, option_name(option),
                      option, length);

        OptionReplies replies(option);
        if (length > kOptionBytesMax) {
            if (option == kOptExportName || length > kOptionDrainBytesMax) {
                spdlog::warn("nbd conn={}: handshake failed: option {} ({}) has a payload of {} "
                             "bytes, over the limit of {}; closing",
                             connection_id, option_name(option), option, length,
                             option == kOptExportName ? kStringBytesMax : kOptionDrainBytesMax);
                co_return result;
            }
            if (!co_await stream.skip(length)) co_return result;
            replies.add(is_known_option(option) ? kRepErrTooBig : kRepErrUnsup);
            if (!co_await replies.send(stream)) co_return result;
            continue;
        }
        if (!co_await stream.fill(length)) {
            spdlog::info("nbd conn={}: client closed inside option {}", connection_id,
                         option_name(option));
            co_return result;
        }
        const uint8_t* payload = stream.data();

        if (option == kOptExportName) {
            // This option has no error reply, so a bad name can only close the connection.
            std::string_view name(reinterpret_cast<const char*>(payload), length);
            if (length > kStringBytesMax || !names_export(name, export_info)) {
                spdlog::warn("nbd conn={}: handshake failed: NBD_OPT_EXPORT_NAME for an unknown "
                             "export ({} bytes), closing",
                             connection_id, length);
                co_return result;
            }
            if (stopping.load()) {
                spdlog::info("nbd conn={}: closing at NBD_OPT_EXPORT_NAME because the server is "
                             "shutting down",
                             connection_id);
                co_return result;
            }
            stream.consume(length);
            if (!co_await send_export_name_reply(stream, export_info, no_zeroes)) {
                co_return result;
            }
            result.transmission = true;
            co_return result;
        }

        if (option == kOptAbort) {
            // The payload, which should be empty, is ignored as the spec recommends.
            stream.consume(length);
            replies.add(kRepAck);
            co_await replies.send(stream);
            spdlog::info("nbd conn={}: client aborted the handshake", connection_id);
            co_return result;
        }

        if (stopping.load()) {
            stream.consume(length);
            replies.add(kRepErrShutdown);
            if (!co_await replies.send(stream)) co_return result;
            continue;
        }

        bool enter_transmission = false;
        switch (option) {
            case kOptList: {
                if (length != 0) {
                    replies.add(kRepErrInvalid);
                    break;
                }
                std::vector<uint8_t> server(4 + export_info.name.size() +
                                            export_info.description.size());
                store_be32(server.data(), static_cast<uint32_t>(export_info.name.size()));
                std::memcpy(server.data() + 4, export_info.name.data(), export_info.name.size());
                std::memcpy(server.data() + 4 + export_info.name.size(),
                            export_info.description.data(), export_info.description.size());
                replies.add(kRepServer, server.data(), server.size());
                replies.add(kRepAck);
                break;
            }
            case kOptInfo:
            case kOptGo: {
                InfoRequest request;
                uint32_t error = parse_info_request(payload, length, &request);
                if (error == 0 && !names_export(request.name, export_info)) error = kRepErrUnknown;
                if (error != 0) {
                    spdlog::info("nbd conn={}: option {} rejected with reply type {:#x}",
                                 connection_id, option_name(option), error);
                    replies.add(error);
                    break;
                }
                add_export_info(replies, export_info, request);
                replies.add(kRepAck);
                enter_transmission = option == kOptGo;
                break;
            }
            case kOptStructuredReply:
                if (length != 0) {
                    replies.add(kRepErrInvalid);
                    break;
                }
                result.structured_replies = true;
                replies.add(kRepAck);
                break;
            default:
                replies.add(kRepErrUnsup);
                break;
        }
        stream.consume(length);
        if (!co_await replies.send(stream)) {
            spdlog::info("nbd conn={}: handshake failed: could not send the reply to option {}",
                         connection_id, option_name(option));
            co_return result;
        }
        if (enter_transmission) {
            result.transmission = true;
            co_return result;
        }
    }
}

}  // namespace ecraid::nbd
