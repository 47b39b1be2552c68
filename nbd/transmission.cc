// SPDX-License-Identifier: Apache-2.0
#include "nbd/transmission.h"

#include <sys/socket.h>

#include <algorithm>
#include <cassert>
#include <cerrno>
#include <cstring>
#include <utility>

#include <spdlog/spdlog.h>

#include "nbd/errors.h"

namespace ecraid::nbd {
namespace {

// Iovecs in one sendmsg. A partial-read reply needs at most 2 * kFailureRangesMax + 3.
constexpr uint32_t kBatchIovMax = 256;
constexpr uint64_t kBatchBytesMax = 64ull * 1024 * 1024;
// Reads of one request whose buffer the device kept (see ReadTarget) before it fails.
constexpr uint32_t kReadAttemptsMax = 8;
// Failed ranges reported one by one in a structured read reply. Beyond this, the tail from
// the last reported range to the last failure is reported as one failed range, which
// claims less valid data than there is but never claims bad data as valid.
constexpr size_t kFailureRangesMax = 64;
// Maximum message length in an NBD_REPLY_TYPE_ERROR chunk.
constexpr size_t kErrorMessageBytesMax = 128;
constexpr size_t kOffsetDataHeaderBytes = kChunkHeaderBytes + 8;
constexpr size_t kErrorOffsetChunkBytes = kChunkHeaderBytes + 4 + 2 + 8;

void store_chunk_header(uint8_t* bytes, uint16_t flags, uint16_t type, uint64_t cookie,
                        uint32_t length) {
    store_be32(bytes, kStructuredReplyMagic);
    store_be16(bytes + 4, flags);
    store_be16(bytes + 6, type);
    store_be64(bytes + 8, cookie);
    store_be32(bytes + 16, length);
}

bool is_write_like(uint16_t type) {
    return type == kCmdWrite || type == kCmdTrim || type == kCmdWriteZeroes;
}

// Clamps failed ranges to [start, end), sorts and merges them, and caps their number.
std::vector<ReadFailure> normalize_failures(const std::vector<ReadFailure>& failures,
                                            uint64_t start, uint64_t end) {
    std::vector<ReadFailure> ranges;
    ranges.reserve(failures.size());
    for (const ReadFailure& failure : failures) {
        uint64_t failure_end = failure.length > UINT64_MAX - failure.offset
                                   ? UINT64_MAX
                                   : failure.offset + failure.length;
        uint64_t first = std::max(failure.offset, start);
        uint64_t last = std::min(failure_end, end);
        if (first >= last) continue;
        ranges.push_back({first, last - first, failure.error != 0 ? failure.error : EIO});
    }
    std::sort(ranges.begin(), ranges.end(),
              [](const ReadFailure& a, const ReadFailure& b) { return a.offset < b.offset; });
    std::vector<ReadFailure> merged;
    for (const ReadFailure& range : ranges) {
        if (!merged.empty() && range.offset <= merged.back().offset + merged.back().length) {
            ReadFailure& previous = merged.back();
            uint64_t merged_end =
                std::max(previous.offset + previous.length, range.offset + range.length);
            previous.length = merged_end - previous.offset;
            continue;
        }
        merged.push_back(range);
    }
    if (merged.size() > kFailureRangesMax) {
        ReadFailure& last_kept = merged[kFailureRangesMax - 1];
        last_kept.length = merged.back().offset + merged.back().length - last_kept.offset;
        merged.resize(kFailureRangesMax);
    }
    return merged;
}

}  // namespace

int validate_request(const RequestHeader& request, uint64_t size_bytes, bool read_only,
                     const char** reason) {
    uint16_t allowed_flags;
    switch (request.type) {
        case kCmdRead:
        case kCmdWrite:
        case kCmdFlush:
        case kCmdTrim:
            allowed_flags = kCmdFlagFua;
            break;
        case kCmdWriteZeroes:
            allowed_flags = kCmdFlagFua | kCmdFlagNoHole;
            break;
        default:
            *reason = "unknown command";
            return EINVAL;
    }
    if ((request.flags & ~allowed_flags) != 0) {
        *reason = "command flags not supported for this command";
        return EINVAL;
    }
    if (read_only && is_write_like(request.type)) {
        *reason = "the export is read-only";
        return EPERM;
    }
    if (request.type == kCmdFlush) {
        if (request.offset != 0 || request.length != 0) {
            *reason = "FLUSH offset and length must be zero";
            return EINVAL;
        }
        return 0;
    }
    if (request.length == 0) {
        *reason = "zero-length requests are not supported";
        return EINVAL;
    }
    bool has_payload = request.type == kCmdRead || request.type == kCmdWrite;
    if (has_payload && request.length > kPayloadBytesMax) {
        *reason = "length exceeds the maximum payload of 32 MiB";
        return EINVAL;
    }
    if (request.offset > UINT64_MAX - request.length) {
        *reason = "offset + length overflows 64 bits";
        return EINVAL;
    }
    if (request.offset + request.length > size_bytes) {
        *reason = "request reaches past the end of the export";
        bool writes = request.type == kCmdWrite || request.type == kCmdWriteZeroes;
        return writes ? ENOSPC : EINVAL;
    }
    return 0;
}

// Queues a reply for the writer. Completes with 0 once the reply is sent, or -EPIPE when
// the connection failed first.
struct Transmission::SendAwaiter {
    Transmission* transmission;
    OutgoingReply* reply;

    bool await_ready() const noexcept { return transmission->send_failed_; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> handle) noexcept {
        reply->waiter = handle;
        reply->next = nullptr;
        if (transmission->queue_tail_ != nullptr) {
            transmission->queue_tail_->next = reply;
        } else {
            transmission->queue_head_ = reply;
        }
        transmission->queue_tail_ = reply;
        if (transmission->writer_idle_) return std::exchange(transmission->writer_idle_, nullptr);
        return std::noop_coroutine();
    }
    int await_resume() const noexcept { return reply->waiter ? reply->result : -EPIPE; }
};

struct Transmission::WriterIdleAwaiter {
    Transmission* transmission;

    bool await_ready() const noexcept {
        return transmission->queue_head_ != nullptr || transmission->closing_;
    }
    void await_suspend(std::coroutine_handle<> handle) noexcept {
        transmission->writer_idle_ = handle;
    }
    void await_resume() const noexcept {}
};

struct Transmission::SlotAwaiter {
    Transmission* transmission;

    bool await_ready() const noexcept {
        return transmission->requests_in_flight_ < transmission->options_.requests_in_flight_max;
    }
    void await_suspend(std::coroutine_handle<> handle) noexcept {
        transmission->reader_waiting_for_slot_ = handle;
    }
    void await_resume() const noexcept {}
};

Transmission::Transmission(SocketStream& stream, BlockDevice& device, BufferBudget& budget,
                           const std::atomic<bool>& stopping, TransmissionOptions options)
    : stream_(stream),
      device_(device),
      budget_(budget),
      stopping_(stopping),
      options_(options),
      size_bytes_(device.size_bytes()),
      read_only_(device.read_only()) {
    assert(options_.requests_in_flight_max > 0);
}

Task<void> Transmission::run() {
    writer_.add();
    spawn(write_replies());
    co_await read_requests();
    co_await requests_.wait();
    closing_ = true;
    if (writer_idle_) std::exchange(writer_idle_, nullptr).resume();
    co_await writer_.wait();
}

Task<void> Transmission::read_requests() {
    const uint64_t id = options_.connection_id;
    for (;;) {
        co_await SlotAwaiter{this};
        if (send_failed_) break;
        if (!co_await stream_.fill(kRequestBytes)) break;
        RequestHeader request;
        if (!parse_request(stream_.data(), &request)) {
            spdlog::warn("nbd conn={}: invalid request magic {:#x}, closing the connection", id,
                         load_be32(stream_.data()));
            break;
        }
        stream_.consume(kRequestBytes);
        spdlog::debug("nbd conn={}: {} cookie={:#x} flags={:#x} offset={} length={}", id,
                      command_name(request.type), request.cookie, request.flags, request.offset,
                      request.length);
        if (request.type == kCmdDisc) break;

        const char* reason = nullptr;
        int error = validate_request(request, size_bytes_, read_only_, &reason);
        if (error == 0 && stopping_.load()) {
            error = ESHUTDOWN;
            reason = "the server is shutting down";
        }
        if (request.type == kCmdWrite) {
            if (!co_await receive_write(request, error, reason)) break;
            continue;
        }
        start_request(request, RequestBuffer(), error, reason);
    }
}

Task<bool> Transmission::receive_write(const RequestHeader& request, int error,
                                       const char* reason) {
    const uint64_t id = options_.connection_id;
    if (error != 0) {
        if (request.length > kPayloadBytesMax) {
            start_request(request, RequestBuffer(), error, reason);
            spdlog::warn("nbd conn={}: WRITE cookie={:#x} announces {} bytes, over the maximum "
                         "payload of {}; closing the connection",
                         id, request.cookie, request.length, kPayloadBytesMax);
            co_return false;
        }
        // Reply only after the whole payload is read. libnbd 1.14 counts a request as in
        // flight only once it has sent all of it, so an earlier reply matches no request
        // and libnbd drops the connection ("no matching cookie found for server reply").
        if (!co_await stream_.skip(request.length)) co_return false;
        start_request(request, RequestBuffer(), error, reason);
        co_return true;
    }

    // Wait for budget before reading the payload, so that memory stays bounded however
    // many clients announce large writes at once.
    co_await budget_.acquire(RequestBuffer::capacity_for(request.length));
    RequestBuffer buffer = RequestBuffer::take(request.length, &budget_);
    if (!buffer) {
        if (!co_await stream_.skip(request.length)) co_return false;
        start_request(request, RequestBuffer(), ENOMEM, "out of memory for the write buffer");
        co_return true;
    }
    if (!co_await stream_.read_exact(buffer.data(), request.length)) {
        spdlog::info("nbd conn={}: client closed in the middle of the payload of WRITE "
                     "cookie={:#x} length={}",
                     id, request.cookie, request.length);
        co_return false;
    }
    start_request(request, std::move(buffer), 0, nullptr);
    co_return true;
}

void Transmission::start_request(const RequestHeader& request, RequestBuffer buffer, int error,
                                 const char* reason) {
    ++requests_in_flight_;
    requests_.add();
    spawn(serve(request, std::move(buffer), error, reason));
}

void Transmission::finish_request() {
    assert(requests_in_flight_ > 0);
    --requests_in_flight_;
    if (reader_waiting_for_slot_) std::exchange(reader_waiting_for_slot_, nullptr).resume();
    // Last: when this was the last request, done() resumes run(), which may end the
    // connection.
    requests_.done();
}

Task<void> Transmission::serve(RequestHeader request, RequestBuffer buffer, int error,
                               const char* reason) {
    if (request.type == kCmdRead) {
        std::vector<ReadFailure> failures;
        if (error == 0) {
            co_await budget_.acquire(RequestBuffer::capacity_for(request.length));
            buffer = RequestBuffer::take(request.length, &budget_);
            if (!buffer) {
                error = ENOMEM;
                reason = "out of memory for the read buffer";
            } else {
                int result = co_await read_device(request, &buffer, &failures, &reason);
                if (result < 0) error = -result;
                if (result == 0 && !failures.empty()) error = EIO;
            }
        }
        co_await reply_read(request, buffer, error, reason, failures);
    } else {
        if (error == 0) {
            int result = co_await execute(request, buffer);
            if (result < 0) error = -result;
        }
        // The payload is no longer needed; return its budget before waiting to send.
        buffer.reset();
        co_await reply_status(request, error, reason);
    }
    buffer.reset();
    finish_request();
}

namespace {

// Lets the device take a read buffer that a hung member may still write into.
class HandOverBuffer final : public ReadTarget {
public:
    explicit HandOverBuffer(RequestBuffer* buffer) : buffer_(buffer) {}
    std::shared_ptr<void> hand_over() override {
        // The ring may keep the buffer after this connection and its budget are gone.
        buffer_->detach_budget();
        return std::make_shared<RequestBuffer>(std::move(*buffer_));
    }

private:
    RequestBuffer* buffer_;
};

}  // namespace

Task<int> Transmission::read_device(const RequestHeader& request, RequestBuffer* buffer,
                                    std::vector<ReadFailure>* failures, const char** reason) {
    for (uint32_t attempt = 1;; ++attempt) {
        HandOverBuffer target(buffer);
        int result = co_await device_.read(request.offset, request.length, buffer->data(),
                                           failures, &target);
        if (result != kReadAgain) co_return result;
        // A member read into the buffer was abandoned, and the device kept the buffer. Each
        // abandoned read fails its member, so further attempts come from the others.
        failures->clear();
        if (attempt == kReadAttemptsMax) {
            spdlog::error("nbd conn={}: READ cookie={:#x} offset={} length={}: member reads "
                          "abandoned {} times, failing it with EIO",
                          options_.connection_id, request.cookie, request.offset, request.length,
                          attempt);
            *reason = "the read was abandoned on hung members too many times";
            co_return -EIO;
        }
        co_await budget_.acquire(RequestBuffer::capacity_for(request.length));
        *buffer = RequestBuffer::take(request.length, &budget_);
        if (!*buffer) {
            *reason = "out of memory for the read buffer";
            co_return -ENOMEM;
        }
    }
}

Task<int> Transmission::execute(const RequestHeader& request, const RequestBuffer& buffer) {
    bool fua = (request.flags & kCmdFlagFua) != 0;
    switch (request.type) {
        case kCmdWrite:
            co_return co_await device_.write(request.offset, request.length, buffer.data(), fua);
        case kCmdFlush:
            co_return co_await device_.flush();
        case kCmdTrim:
            co_return co_await device_.trim(request.offset, request.length, fua);
        case kCmdWriteZeroes: {
            bool may_punch = (request.flags & kCmdFlagNoHole) == 0;
            co_return co_await device_.write_zeroes(request.offset, request.length, may_punch,
                                                    fua);
        }
        default:
            // validate_request() lets only the commands above through.
            assert(false);
            co_return -EINVAL;
    }
}

Task<void> Transmission::reply_status(const RequestHeader& request, int error,
                                      const char* reason) {
    uint32_t wire_error = error == 0 ? 0 : to_nbd_error(error, request, options_.connection_id);
    uint8_t bytes[kChunkHeaderBytes + 6 + kErrorMessageBytesMax];
    iovec iov{bytes, 0};
    if (!options_.structured_replies) {
        store_be32(bytes, kSimpleReplyMagic);
        store_be32(bytes + 4, wire_error);
        store_be64(bytes + 8, request.cookie);
        iov.iov_len = kSimpleReplyBytes;
    } else if (wire_error == 0) {
        store_chunk_header(bytes, kReplyFlagDone, kReplyTypeNone, request.cookie, 0);
        iov.iov_len = kChunkHeaderBytes;
    } else {
        size_t message_bytes = reason ? std::min(std::strlen(reason), kErrorMessageBytesMax) : 0;
        store_chunk_header(bytes, kReplyFlagDone, kReplyTypeError, request.cookie,
                           static_cast<uint32_t>(6 + message_bytes));
        store_be32(bytes + kChunkHeaderBytes, wire_error);
        store_be16(bytes + kChunkHeaderBytes + 4, static_cast<uint16_t>(message_bytes));
        if (message_bytes > 0) std::memcpy(bytes + kChunkHeaderBytes + 6, reason, message_bytes);
        iov.iov_len = kChunkHeaderBytes + 6 + message_bytes;
    }
    OutgoingReply reply;
    reply.iov = &iov;
    reply.iov_count = 1;
    co_await send(&reply);
}

Task<void> Transmission::reply_read(const RequestHeader& request, const RequestBuffer& buffer,
                                    int error, const char* reason,
                                    const std::vector<ReadFailure>& failures) {
    if (options_.structured_replies && error != 0) {
        // With structured replies even an early EINVAL must be a structured reply.
        if (!failures.empty()) {
            co_await reply_partial_read(request, buffer, failures);
        } else {
            co_await reply_status(request, error, reason);
        }
        co_return;
    }
    uint32_t wire_error = error == 0 ? 0 : to_nbd_error(error, request, options_.connection_id);
    uint8_t header[kOffsetDataHeaderBytes];
    iovec iov[2];
    iov[0].iov_base = header;
    uint32_t iov_count = 1;
    if (!options_.structured_replies) {
        // A failed simple read carries no payload.
        store_be32(header, kSimpleReplyMagic);
        store_be32(header + 4, wire_error);
        store_be64(header + 8, request.cookie);
        iov[0].iov_len = kSimpleReplyBytes;
    } else {
        store_chunk_header(header, kReplyFlagDone, kReplyTypeOffsetData, request.cookie,
                           8 + request.length);
        store_be64(header + kChunkHeaderBytes, request.offset);
        iov[0].iov_len = kOffsetDataHeaderBytes;
    }
    if (wire_error == 0) {
        iov[1] = {buffer.data(), request.length};
        iov_count = 2;
    }
    OutgoingReply reply;
    reply.iov = iov;
    reply.iov_count = iov_count;
    co_await send(&reply);
}

// Sends data chunks for the readable ranges and an error-offset chunk for each failed range,
// in offset order, then NBD_REPLY_TYPE_NONE with the done flag.
Task<void> Transmission::reply_partial_read(const RequestHeader& request,
                                            const RequestBuffer& buffer,
                                            const std::vector<ReadFailure>& failures) {
    uint64_t start = request.offset;
    uint64_t end = start + request.length;
    std::vector<ReadFailure> failed = normalize_failures(failures, start, end);
    if (failed.empty()) {
        // The device failed the read but named no range inside it.
        int error = failures.front().error != 0 ? failures.front().error : EIO;
        co_await reply_status(request, error, "read failed");
        co_return;
    }

    // Headers live in one array sized up front, so the iovecs can point into it.
    std::vector<uint8_t> headers((failed.size() + 1) * kOffsetDataHeaderBytes +
                                 failed.size() * kErrorOffsetChunkBytes + kChunkHeaderBytes);
    std::vector<iovec> iov;
    iov.reserve(3 * failed.size() + 3);
    uint8_t* next_header = headers.data();
    auto add_data = [&](uint64_t from, uint64_t to) {
        uint32_t bytes = static_cast<uint32_t>(to - from);
        store_chunk_header(next_header, 0, kReplyTypeOffsetData, request.cookie, 8 + bytes);
        store_be64(next_header + kChunkHeaderBytes, from);
        iov.push_back({next_header, kOffsetDataHeaderBytes});
        iov.push_back({buffer.data() + (from - start), bytes});
        next_header += kOffsetDataHeaderBytes;
    };

    uint64_t position = start;
    for (const ReadFailure& range : failed) {
        if (range.offset > position) add_data(position, range.offset);
        uint32_t wire_error = to_nbd_error(range.error, request, options_.connection_id);
        store_chunk_header(next_header, 0, kReplyTypeErrorOffset, request.cookie, 14);
        store_be32(next_header + kChunkHeaderBytes, wire_error);
        store_be16(next_header + kChunkHeaderBytes + 4, 0);
        store_be64(next_header + kChunkHeaderBytes + 6, range.offset);
        iov.push_back({next_header, kErrorOffsetChunkBytes});
        next_header += kErrorOffsetChunkBytes;
        position = range.offset + range.length;
    }
    if (position < end) add_data(position, end);
    store_chunk_header(next_header, kReplyFlagDone, kReplyTypeNone, request.cookie, 0);
    iov.push_back({next_header, kChunkHeaderBytes});
    assert(iov.size() <= kBatchIovMax);

    OutgoingReply reply;
    reply.iov = iov.data();
    reply.iov_count = static_cast<uint32_t>(iov.size());
    co_await send(&reply);
}

Transmission::SendAwaiter Transmission::send(OutgoingReply* reply) {
    return SendAwaiter{this, reply};
}

Task<void> Transmission::write_replies() {
    iovec iov[kBatchIovMax];
    for (;;) {
        if (send_failed_) fail_queued_replies();
        if (queue_head_ == nullptr) {
            if (closing_) break;
            co_await WriterIdleAwaiter{this};
            continue;
        }

        // Take as many queued replies as fit in one sendmsg.
        OutgoingReply* batch = queue_head_;
        OutgoingReply* last = nullptr;
        uint32_t iov_count = 0;
        uint64_t batch_bytes = 0;
        for (OutgoingReply* reply = queue_head_; reply != nullptr; reply = reply->next) {
            assert(reply->iov_count <= kBatchIovMax);
            uint64_t reply_bytes = 0;
            for (uint32_t i = 0; i < reply->iov_count; ++i) reply_bytes += reply->iov[i].iov_len;
            if (last != nullptr && (iov_count + reply->iov_count > kBatchIovMax ||
                                    batch_bytes + reply_bytes > kBatchBytesMax)) {
                break;
            }
            std::copy(reply->iov, reply->iov + reply->iov_count, iov + iov_count);
            iov_count += reply->iov_count;
            batch_bytes += reply_bytes;
            last = reply;
        }
        queue_head_ = last->next;
        if (queue_head_ == nullptr) queue_tail_ = nullptr;
        last->next = nullptr;

        int sent = co_await stream_.send(iov, iov_count);
        if (sent < 0 && !send_failed_) {
            spdlog::info("nbd conn={}: sending replies failed: {}; closing the connection",
                         options_.connection_id, std::strerror(-sent));
            send_failed_ = true;
            // Wake the reader so the connection winds down.
            ::shutdown(stream_.fd(), SHUT_RDWR);
        }
        // A resumed request may queue more replies or end; read `next` before resuming.
        for (OutgoingReply* reply = batch; reply != nullptr;) {
            OutgoingReply* next = reply->next;
            reply->result = sent < 0 ? sent : 0;
            reply->waiter.resume();
            reply = next;
        }
    }
    // Last: done() may resume run(), which ends the connection.
    writer_.done();
}

void Transmission::fail_queued_replies() {
    OutgoingReply* reply = std::exchange(queue_head_, nullptr);
    queue_tail_ = nullptr;
    while (reply != nullptr) {
        OutgoingReply* next = reply->next;
        reply->result = -EPIPE;
        reply->waiter.resume();
        reply = next;
    }
}

}  // namespace ecraid::nbd
