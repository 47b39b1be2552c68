// SPDX-License-Identifier: Apache-2.0
#include "nbd/socket_stream.h"

#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>

namespace ecraid::nbd {

SocketStream::SocketStream(Ring& ring, int fd, size_t buffer_bytes)
    : ring_(ring), fd_(fd), capacity_(buffer_bytes), buffer_(new uint8_t[buffer_bytes]) {}

void SocketStream::consume(size_t bytes) {
    assert(bytes <= buffered());
    begin_ += bytes;
    if (begin_ == end_) {
        begin_ = 0;
        end_ = 0;
    }
}

Task<bool> SocketStream::fill(size_t bytes) {
    assert(bytes <= capacity_);
    if (buffered() >= bytes) co_return true;
    if (capacity_ - begin_ < bytes) {
        std::memmove(buffer_.get(), buffer_.get() + begin_, buffered());
        end_ -= begin_;
        begin_ = 0;
    }
    while (buffered() < bytes) {
        ssize_t received = ::recv(fd_, buffer_.get() + end_, capacity_ - end_, MSG_DONTWAIT);
        if (received > 0) {
            end_ += static_cast<size_t>(received);
            continue;
        }
        if (received == 0) co_return false;
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) co_return false;
        // Nothing to read yet: wait for readability (or a shutdown) on the ring.
        int polled = co_await ring_.poll_in(fd_);
        if (polled < 0) co_return false;
    }
    co_return true;
}

Task<bool> SocketStream::read_exact(uint8_t* destination, uint64_t length) {
    assert(length <= UINT32_MAX);
    size_t copied = static_cast<size_t>(std::min<uint64_t>(buffered(), length));
    std::memcpy(destination, data(), copied);
    consume(copied);
    uint64_t remaining = length - copied;
    if (remaining == 0) co_return true;
    if (remaining < capacity_ / 2) {
        if (!co_await fill(static_cast<size_t>(remaining))) co_return false;
        std::memcpy(destination + copied, data(), static_cast<size_t>(remaining));
        consume(static_cast<size_t>(remaining));
        co_return true;
    }
    // Large remainders are received in place; the ring completes the whole length unless
    // the stream ends first.
    int received = co_await ring_.recv(fd_, destination + copied, static_cast<uint32_t>(remaining));
    co_return received >= 0 && static_cast<uint64_t>(received) == remaining;
}

Task<bool> SocketStream::skip(uint64_t length) {
    while (length > 0) {
        if (buffered() == 0 && !co_await fill(1)) co_return false;
        size_t discarded = static_cast<size_t>(std::min<uint64_t>(buffered(), length));
        consume(discarded);
        length -= discarded;
    }
    co_return true;
}

}  // namespace ecraid::nbd
