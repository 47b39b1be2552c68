// SPDX-License-Identifier: Apache-2.0
// The one place where errno values become NBD wire errors.
#pragma once

#include <cstdint>

#include "nbd/protocol.h"

namespace ecraid::nbd {

// Maps a positive or negative errno from validation or the BlockDevice to the NBD error for
// `request`, and logs the real errno at debug level with the connection id and cookie.
//
// EROFS becomes EPERM; EDQUOT and EFBIG become ENOSPC, as the spec requires. EOVERFLOW is only
// sent for a read with NBD_CMD_FLAG_DF and ENOTSUP only for a write-zeroes with
// NBD_CMD_FLAG_FAST_ZERO, because the spec says a server should not send them otherwise;
// both become EINVAL elsewhere. An errno the protocol has no value for becomes EIO: it comes
// from the storage below, and the client should see the request as failed, not as invalid.
uint32_t to_nbd_error(int error, const RequestHeader& request, uint64_t connection_id);

}  // namespace ecraid::nbd
