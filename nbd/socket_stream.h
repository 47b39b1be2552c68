// SPDX-License-Identifier: Apache-2.0
// SocketStream: buffered receive and whole sends on one connected socket, on one ring.
//
// Receives go into a connection buffer and messages are parsed from it, so a burst of small
// requests costs one recv() rather than one per header. The buffer is filled with a
// non-blocking recv() and, when the socket is empty, an io_uring poll: Ring::recv completes
// only when its whole length has arrived, which suits payloads of known size but not "read
// what is there". Large payloads bypass the buffer and go straight to their destination.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <memory>

#include "io/ring.h"
#include "io/task.h"

namespace ecraid::nbd {

class SocketStream {
public:
    SocketStream(Ring& ring, int fd, size_t buffer_bytes);
    SocketStream(const SocketStream&) = delete;
    SocketStream& operator=(const SocketStream&) = delete;

    Ring& ring() const { return ring_; }
    int fd() const { return fd_; }

    // Waits until at least `bytes` (at most the buffer size) are buffered. Returns false at
    // end of stream or on a socket error.
    Task<bool> fill(size_t bytes);
    const uint8_t* data() const { return buffer_.get() + begin_; }
    size_t buffered() const { return end_ - begin_; }
    void consume(size_t bytes);

    // Reads exactly `length` bytes into `destination`. Returns false at end of stream or on a
    // socket error, with the destination partly written.
    Task<bool> read_exact(uint8_t* destination, uint64_t length);
    // Reads and discards exactly `length` bytes. Returns false at end of stream or on error.
    Task<bool> skip(uint64_t length);

    // Sends every byte of the iovecs, which the ring advances in place. Returns the byte
    // count or -errno.
    Task<int> send(iovec* iov, uint32_t iov_count) { return ring_.sendmsg(fd_, iov, iov_count); }

private:
    Ring& ring_;
    int fd_;
    size_t capacity_;
    std::unique_ptr<uint8_t[]> buffer_;
    size_t begin_ = 0;
    size_t end_ = 0;
};

}  // namespace ecraid::nbd
