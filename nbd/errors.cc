// SPDX-License-Identifier: Apache-2.0
#include "nbd/errors.h"

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

namespace ecraid::nbd {

uint32_t to_nbd_error(int error, const RequestHeader& request, uint64_t connection_id) {
    int positive = error < 0 ? -error : error;
    uint32_t wire;
    switch (positive) {
        case EPERM:
        case EROFS:
            wire = kEperm;
            break;
        case EIO:
            wire = kEio;
            break;
        case ENOMEM:
            wire = kEnomem;
            break;
        case EINVAL:
            wire = kEinval;
            break;
        case ENOSPC:
        case EDQUOT:
        case EFBIG:
            wire = kEnospc;
            break;
        case EOVERFLOW:
            wire = (request.flags & kCmdFlagDf) != 0 ? kEoverflow : kEinval;
            break;
        case ENOTSUP:
            wire = (request.flags & kCmdFlagFastZero) != 0 ? kEnotsup : kEinval;
            break;
        case ESHUTDOWN:
            wire = kEshutdown;
            break;
        default:
            wire = kEio;
            break;
    }
    spdlog::debug("nbd conn={}: {} cookie={:#x} offset={} length={} failed: {} (errno {}), "
                  "sending NBD error {}",
                  connection_id, command_name(request.type), request.cookie, request.offset,
                  request.length, std::strerror(positive), positive, wire);
    return wire;
}

const char* command_name(uint16_t type) {
    switch (type) {
        case kCmdRead:
            return "READ";
        case kCmdWrite:
            return "WRITE";
        case kCmdDisc:
            return "DISC";
        case kCmdFlush:
            return "FLUSH";
        case kCmdTrim:
            return "TRIM";
        case kCmdCache:
            return "CACHE";
        case kCmdWriteZeroes:
            return "WRITE_ZEROES";
        case kCmdBlockStatus:
            return "BLOCK_STATUS";
        default:
            return "unknown";
    }
}

const char* option_name(uint32_t option) {
    switch (option) {
        case kOptExportName:
            return "EXPORT_NAME";
        case kOptAbort:
            return "ABORT";
        case kOptList:
            return "LIST";
        case kOptStartTls:
            return "STARTTLS";
        case kOptInfo:
            return "INFO";
        case kOptGo:
            return "GO";
        case kOptStructuredReply:
            return "STRUCTURED_REPLY";
        default:
            return "unknown";
    }
}

}  // namespace ecraid::nbd
