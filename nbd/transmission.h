// SPDX-License-Identifier: Apache-2.0
// The NBD transmission phase of one connection: request parsing, validation, concurrent
// request handling and serialized replies.
//
// A reader coroutine parses requests from the connection's buffered stream and starts one
// coroutine per request, so requests on one connection run concurrently (up to
// `requests_in_flight_max`). Replies go through a queue drained by one writer coroutine,
// which sends every queued reply, header and payload, with one sendmsg and no copy.
//
// Every request gets exactly one reply with its cookie, except NBD_CMD_DISC, which has none.
// Requests are validated before any side effect; a rejected WRITE's payload is still read
// and discarded so the next header is parsed from the right place. Choices where the spec
// leaves the reply open:
//   - a zero-length READ, WRITE, TRIM or WRITE_ZEROES gets EINVAL (the spec leaves the
//     result unspecified and asks only that the server does not disconnect);
//   - FLUSH with a nonzero offset or length gets EINVAL (both fields must be zero);
//   - a WRITE longer than kPayloadBytesMax gets EINVAL and then the connection is closed,
//     because draining up to 4 GiB is a denial of service and the spec allows a hard
//     disconnect above 32 MiB; a READ that long gets EINVAL and the connection stays open;
//   - TRIM and WRITE_ZEROES have no payload, so their length is not capped.
// A wrong request magic closes the connection after the outstanding requests finish.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstdint>
#include <vector>

#include "array/block_device.h"
#include "io/task.h"
#include "nbd/protocol.h"
#include "nbd/request_buffer.h"
#include "nbd/socket_stream.h"

namespace ecraid::nbd {

struct TransmissionOptions {
    uint64_t connection_id = 0;
    bool structured_replies = false;
    uint32_t requests_in_flight_max = 64;
};

// Returns 0 when `request` may be executed on an export of `size_bytes`, or the positive
// errno to reply with, and sets `reason` to a message for the client. Has no side effects.
int validate_request(const RequestHeader& request, uint64_t size_bytes, bool read_only,
                     const char** reason);

class Transmission {
public:
    // `stopping` is the server's shutdown flag: requests parsed while it is set get
    // ESHUTDOWN.
    Transmission(SocketStream& stream, BlockDevice& device, BufferBudget& budget,
                 const std::atomic<bool>& stopping, TransmissionOptions options);
    Transmission(const Transmission&) = delete;
    Transmission& operator=(const Transmission&) = delete;

    // Serves requests until the client disconnects, sends NBD_CMD_DISC or breaks the
    // protocol, then waits until every outstanding request has its reply sent.
    Task<void> run();

private:
    // A reply waiting in the send queue. It lives in its request's coroutine frame.
    struct OutgoingReply {
        iovec* iov = nullptr;
        uint32_t iov_count = 0;
        int result = 0;  // 0 once sent, -errno when the connection failed first.
        std::coroutine_handle<> waiter;
        OutgoingReply* next = nullptr;
    };
    struct SendAwaiter;
    struct WriterIdleAwaiter;
    struct SlotAwaiter;

    Task<void> read_requests();
    Task<bool> receive_write(const RequestHeader& request, int error, const char* reason);
    void start_request(const RequestHeader& request, RequestBuffer buffer, int error,
                       const char* reason);
    Task<void> serve(RequestHeader request, RequestBuffer buffer, int error, const char* reason);
    // Reads the request's range into *buffer, taking a new buffer when the device keeps one
    // (kReadAgain). Sets *reason for errors it makes up itself.
    Task<int> read_device(const RequestHeader& request, RequestBuffer* buffer,
                          std::vector<ReadFailure>* failures, const char** reason);
    Task<int> execute(const RequestHeader& request, const RequestBuffer& buffer);
    Task<void> reply_status(const RequestHeader& request, int error, const char* reason);
    Task<void> reply_read(const RequestHeader& request, const RequestBuffer& buffer, int error,
                          const char* reason, const std::vector<ReadFailure>& failures);
    Task<void> reply_partial_read(const RequestHeader& request, const RequestBuffer& buffer,
                                  const std::vector<ReadFailure>& failures);
    void finish_request();

    SendAwaiter send(OutgoingReply* reply);
    Task<void> write_replies();
    void fail_queued_replies();

    SocketStream& stream_;
    BlockDevice& device_;
    BufferBudget& budget_;
    const std::atomic<bool>& stopping_;
    TransmissionOptions options_;
    uint64_t size_bytes_;
    bool read_only_;

    WaitGroup requests_;
    uint32_t requests_in_flight_ = 0;
    std::coroutine_handle<> reader_waiting_for_slot_;

    OutgoingReply* queue_head_ = nullptr;
    OutgoingReply* queue_tail_ = nullptr;
    std::coroutine_handle<> writer_idle_;
    WaitGroup writer_;
    bool send_failed_ = false;
    bool closing_ = false;
};

}  // namespace ecraid::nbd
