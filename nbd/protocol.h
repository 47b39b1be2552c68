// SPDX-License-Identifier: Apache-2.0
// NBD wire constants, message sizes and big-endian field helpers.
//
// Values and layouts follow doc/proto.md of the NetworkBlockDevice/nbd repository. Every
// integer on the wire is big-endian. Messages are built and parsed byte by byte with the
// load/store helpers below, never by casting packed structs.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ecraid::nbd {

// Handshake.
inline constexpr uint64_t kInitMagic = 0x4e42444d41474943ull;    // "NBDMAGIC"
inline constexpr uint64_t kOptionMagic = 0x49484156454F5054ull;  // "IHAVEOPT"
inline constexpr uint64_t kOptionReplyMagic = 0x3e889045565a9ull;

// Handshake flags sent by the server (16 bits).
inline constexpr uint16_t kFlagFixedNewstyle = 1u << 0;
inline constexpr uint16_t kFlagNoZeroes = 1u << 1;

// Client flags (32 bits). Any other bit makes the server drop the connection.
inline constexpr uint32_t kClientFlagFixedNewstyle = 1u << 0;
inline constexpr uint32_t kClientFlagNoZeroes = 1u << 1;
inline constexpr uint32_t kClientFlagsKnown = kClientFlagFixedNewstyle | kClientFlagNoZeroes;

// Options.
inline constexpr uint32_t kOptExportName = 1;
inline constexpr uint32_t kOptAbort = 2;
inline constexpr uint32_t kOptList = 3;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kOptInfo = 6;
inline constexpr uint32_t kOptGo = 7;
inline constexpr uint32_t kOptStructuredReply = 8;

// Option reply types. Error replies have bit 31 set.
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepErrUnsup = (1u << 31) + 1;
inline constexpr uint32_t kRepErrPolicy = (1u << 31) + 2;
inline constexpr uint32_t kRepErrInvalid = (1u << 31) + 3;
inline constexpr uint32_t kRepErrUnknown = (1u << 31) + 6;
inline constexpr uint32_t kRepErrShutdown = (1u << 31) + 7;
inline constexpr uint32_t kRepErrTooBig = (1u << 31) + 9;

// Information types in NBD_REP_INFO replies to NBD_OPT_INFO and NBD_OPT_GO.
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// Transmission flags (16 bits).
inline constexpr uint16_t kFlagHasFlags = 1u << 0;
inline constexpr uint16_t kFlagReadOnly = 1u << 1;
inline constexpr uint16_t kFlagSendFlush = 1u << 2;
inline constexpr uint16_t kFlagSendFua = 1u << 3;
inline constexpr uint16_t kFlagRotational = 1u << 4;
inline constexpr uint16_t kFlagSendTrim = 1u << 5;
inline constexpr uint16_t kFlagSendWriteZeroes = 1u << 6;
inline constexpr uint16_t kFlagSendDf = 1u << 7;
inline constexpr uint16_t kFlagCanMultiConn = 1u << 8;
inline constexpr uint16_t kFlagSendCache = 1u << 10;
inline constexpr uint16_t kFlagSendFastZero = 1u << 11;

// Request types.
inline constexpr uint16_t kCmdRead = 0;
inline constexpr uint16_t kCmdWrite = 1;
inline constexpr uint16_t kCmdDisc = 2;
inline constexpr uint16_t kCmdFlush = 3;
inline constexpr uint16_t kCmdTrim = 4;
inline constexpr uint16_t kCmdCache = 5;
inline constexpr uint16_t kCmdWriteZeroes = 6;
inline constexpr uint16_t kCmdBlockStatus = 7;

// Command flags (16 bits).
inline constexpr uint16_t kCmdFlagFua = 1u << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1u << 1;
inline constexpr uint16_t kCmdFlagDf = 1u << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1u << 3;
inline constexpr uint16_t kCmdFlagFastZero = 1u << 4;

// Transmission messages.
inline constexpr uint32_t kRequestMagic = 0x25609513;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33ef;

// Structured reply chunk flags and types.
inline constexpr uint16_t kReplyFlagDone = 1u << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeOffsetHole = 2;
inline constexpr uint16_t kReplyTypeError = (1u << 15) + 1;
inline constexpr uint16_t kReplyTypeErrorOffset = (1u << 15) + 2;

// Error values of the wire protocol. They match Linux errno numbers, but the protocol
// defines them on its own, so code maps errno through to_nbd_error() and never sends errno.
inline constexpr uint32_t kEperm = 1;
inline constexpr uint32_t kEio = 5;
inline constexpr uint32_t kEnomem = 12;
inline constexpr uint32_t kEinval = 22;
inline constexpr uint32_t kEnospc = 28;
inline constexpr uint32_t kEoverflow = 75;
inline constexpr uint32_t kEnotsup = 95;
inline constexpr uint32_t kEshutdown = 108;

// Message sizes in bytes.
inline constexpr size_t kServerGreetingBytes = 18;    // NBDMAGIC, IHAVEOPT, handshake flags
inline constexpr size_t kOptionHeaderBytes = 16;      // magic, option, length
inline constexpr size_t kOptionReplyHeaderBytes = 20;  // magic, option, type, length
inline constexpr size_t kExportNameReplyBytes = 10;   // size, transmission flags
inline constexpr size_t kExportNamePaddingBytes = 124;
inline constexpr size_t kRequestBytes = 28;
inline constexpr size_t kSimpleReplyBytes = 16;
inline constexpr size_t kChunkHeaderBytes = 20;

// Strings (export names, messages) MUST NOT exceed 4096 bytes.
inline constexpr uint32_t kStringBytesMax = 4096;

// Block size constraints advertised in NBD_INFO_BLOCK_SIZE. They are the protocol's
// defaults: any alignment is served, 4 KiB is the checksum block, and 32 MiB is the
// largest payload the spec says a server should not treat as a denial of service.
inline constexpr uint32_t kBlockSizeMin = 1;
inline constexpr uint32_t kBlockSizePreferred = 4096;
inline constexpr uint32_t kPayloadBytesMax = 32u * 1024 * 1024;

inline uint16_t load_be16(const uint8_t* bytes) {
    return static_cast<uint16_t>((bytes[0] << 8) | bytes[1]);
}

inline uint32_t load_be32(const uint8_t* bytes) {
    return (uint32_t{bytes[0]} << 24) | (uint32_t{bytes[1]} << 16) | (uint32_t{bytes[2]} << 8) |
           uint32_t{bytes[3]};
}

inline uint64_t load_be64(const uint8_t* bytes) {
    return (uint64_t{load_be32(bytes)} << 32) | load_be32(bytes + 4);
}

inline void store_be16(uint8_t* bytes, uint16_t value) {
    bytes[0] = static_cast<uint8_t>(value >> 8);
    bytes[1] = static_cast<uint8_t>(value);
}

inline void store_be32(uint8_t* bytes, uint32_t value) {
    bytes[0] = static_cast<uint8_t>(value >> 24);
    bytes[1] = static_cast<uint8_t>(value >> 16);
    bytes[2] = static_cast<uint8_t>(value >> 8);
    bytes[3] = static_cast<uint8_t>(value);
}

inline void store_be64(uint8_t* bytes, uint64_t value) {
    store_be32(bytes, static_cast<uint32_t>(value >> 32));
    store_be32(bytes + 4, static_cast<uint32_t>(value));
}

// A parsed transmission request header.
struct RequestHeader {
    uint16_t flags = 0;
    uint16_t type = 0;
    uint64_t cookie = 0;
    uint64_t offset = 0;
    uint32_t length = 0;
};

// Parses the 28 bytes after checking the magic. Returns false on a wrong magic.
inline bool parse_request(const uint8_t* bytes, RequestHeader* header) {
    if (load_be32(bytes) != kRequestMagic) return false;
    header->flags = load_be16(bytes + 4);
    header->type = load_be16(bytes + 6);
    header->cookie = load_be64(bytes + 8);
    header->offset = load_be64(bytes + 16);
    header->length = load_be32(bytes + 24);
    return true;
}

// Returns the protocol name of a request type for logs, or "unknown".
const char* command_name(uint16_t type);
// Returns the protocol name of an option for logs, or "unknown".
const char* option_name(uint32_t option);

}  // namespace ecraid::nbd
