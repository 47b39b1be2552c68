# SPDX-License-Identifier: Apache-2.0
"""Drive a live ecraid export through libnbd's Python bindings with requests at the edges.

Usage: /usr/bin/python3 nbd_edge_cases.py URI EXPORT_SIZE SEED

The cases run in order on one array. They send requests past the end, zero-length requests,
unaligned writes of odd sizes, TRIM, WRITE_ZEROES with and without NO_HOLE, FLUSH and FUA.
Then many connections send concurrent asynchronous requests, a client disconnects with
requests in flight, and finally a new connection reads everything back. An in-memory copy of the regions the cases touch
stores what each byte should read back. Exits non-zero with a message on the first failure.

libnbd rejects some of these requests on the client side (strict mode), so the cases that
test the server's own checks turn the relevant strict-mode bits off first.
"""

import errno
import random
import sys
import threading

import nbd

KIB = 1024
MIB = 1024 * KIB
BLOCK_BYTES = 4 * KIB
CHUNK_BYTES = 64 * KIB  # ecraid's default chunk size, used to aim requests at chunk edges.
MAX_REQUEST_BYTES = 8 * MIB  # below the 32 MiB maximum block size that the server advertises


class CheckFailed(Exception):
    pass


def check(condition, message):
    if not condition:
        raise CheckFailed(message)


def expect_errno(expected, action, description):
    """Run action and fail unless it raises nbd.Error with the expected errno."""
    try:
        action()
    except nbd.Error as error:
        check(error.errnum == expected,
              f"{description}: failed with {error.errno} ({error.string}), "
              f"expected {errno.errorcode[expected]}")
    else:
        raise CheckFailed(f"{description}: succeeded, expected {errno.errorcode[expected]}")


def first_difference(actual, expected):
    for index, (left, right) in enumerate(zip(actual, expected)):
        if left != right:
            return index
    return min(len(actual), len(expected))


class Shadow:
    """The expected contents of a few windows of the export, kept in memory."""

    def __init__(self, handle, windows):
        # Each window starts as what the export contains now, so earlier writes do not matter.
        self.windows = []
        for start, length in windows:
            data = bytearray()
            for offset in range(start, start + length, MAX_REQUEST_BYTES):
                data += handle.pread(min(MAX_REQUEST_BYTES, start + length - offset), offset)
            self.windows.append((start, data))

    def _locate(self, offset, length):
        for start, data in self.windows:
            if start <= offset and offset + length <= start + len(data):
                return data, offset - start
        raise AssertionError(f"range {offset}+{length} is outside every shadow window")

    def write(self, offset, payload):
        data, position = self._locate(offset, len(payload))
        data[position:position + len(payload)] = payload

    def zero(self, offset, length):
        data, position = self._locate(offset, length)
        data[position:position + length] = bytes(length)

    def expected(self, offset, length):
        data, position = self._locate(offset, length)
        return bytes(data[position:position + length])

    def verify(self, handle, offset, length, context):
        actual = handle.pread(length, offset)
        expected = self.expected(offset, length)
        if actual != expected:
            index = first_difference(actual, expected)
            raise CheckFailed(
                f"{context}: read {offset}+{length} differs at byte {offset + index}: "
                f"got {actual[index:index + 8].hex()}, expected {expected[index:index + 8].hex()}")

    def verify_all(self, handle, context):
        for start, data in self.windows:
            for offset in range(start, start + len(data), MAX_REQUEST_BYTES):
                length = min(MAX_REQUEST_BYTES, start + len(data) - offset)
                self.verify(handle, offset, length, context)


def connect(uri, strict_off=0):
    handle = nbd.NBD()
    handle.set_strict_mode(handle.get_strict_mode() & ~strict_off)
    handle.connect_uri(uri)
    return handle


def check_out_of_range(uri, size, shadow):
    """Requests that reach past the end fail as the NBD spec says and the connection stays."""
    handle = connect(uri, nbd.STRICT_BOUNDS)
    cases = [
        ("read of 1 byte at the end", errno.EINVAL, lambda: handle.pread(1, size)),
        ("read of 2 bytes over the end", errno.EINVAL, lambda: handle.pread(2, size - 1)),
        ("read 1 MiB past the end", errno.EINVAL, lambda: handle.pread(4096, size + MIB)),
        ("read whose end wraps past 2^64", errno.EINVAL,
         lambda: handle.pread(4096, 2**64 - 2048)),
        ("write of 1 byte at the end", errno.ENOSPC, lambda: handle.pwrite(b"x", size)),
        ("write of 2 bytes over the end", errno.ENOSPC, lambda: handle.pwrite(b"xy", size - 1)),
        ("trim over the end", errno.EINVAL, lambda: handle.trim(2 * BLOCK_BYTES, size - BLOCK_BYTES)),
        ("write_zeroes over the end", errno.ENOSPC,
         lambda: handle.zero(2 * BLOCK_BYTES, size - BLOCK_BYTES)),
    ]
    for description, expected, action in cases:
        expect_errno(expected, action, description)
        check(len(handle.pread(1, 0)) == 1, f"connection unusable after {description}")

    # The last byte itself is in range.
    handle.pwrite(b"\xa5", size - 1)
    shadow.write(size - 1, b"\xa5")
    check(handle.pread(1, size - 1) == b"\xa5", "last byte of the export did not round trip")
    handle.shutdown()


def check_rejected_large_writes(uri, size):
    """Rejected writes with payloads larger than the socket buffers keep the connection.

    The server must read and discard the whole payload before it replies: libnbd sends the
    payload before it reads replies, and a reply to a request that it is still sending
    makes it drop the connection ("no matching cookie found for server reply").
    """
    handle = connect(uri, nbd.STRICT_BOUNDS)
    for attempt in range(3):
        expect_errno(errno.ENOSPC, lambda: handle.pwrite(bytes(MIB), size - MIB + 512),
                     f"write of 1 MiB over the end, attempt {attempt + 1}")
        check(len(handle.pread(4096, 0)) == 4096,
              f"connection unusable after rejected write {attempt + 1}")
    handle.shutdown()

    second_handle = connect(uri, nbd.STRICT_BOUNDS)
    expect_errno(errno.ENOSPC, lambda: second_handle.pwrite(bytes(8 * MIB), size),
                 "write of 8 MiB at the end")
    check(len(second_handle.pread(4096, 0)) == 4096,
          "connection unusable after a rejected 8 MiB write")
    second_handle.shutdown()


def check_new_connection(uri, shadow):
    handle = connect(uri)
    shadow.verify_all(handle, "new connection after all cases")
    handle.shutdown()


def check_zero_length(uri, size):
    """Zero-length requests may succeed or fail with EINVAL, but never end the connection."""
    handle = connect(uri, nbd.STRICT_ZERO_SIZE)
    requests = [
        ("zero-length read", lambda: handle.pread(0, 4096)),
        ("zero-length write", lambda: handle.pwrite(b"", 4097)),
        ("zero-length trim", lambda: handle.trim(0, 8192)),
        ("zero-length write_zeroes", lambda: handle.zero(0, 12288)),
        ("zero-length read at the end", lambda: handle.pread(0, size)),
    ]
    for description, action in requests:
        try:
            action()
        except nbd.Error as error:
            check(error.errnum == errno.EINVAL,
                  f"{description}: failed with {error.errno} ({error.string}), "
                  "expected success or EINVAL")
        check(len(handle.pread(4096, 0)) == 4096, f"connection unusable after {description}")
    handle.flush()
    handle.shutdown()


def random_length(rng):
    """An odd-looking length: mostly small, sometimes spanning blocks, chunks or stripes."""
    bucket = rng.random()
    if bucket < 0.4:
        return rng.randint(1, 600)
    if bucket < 0.7:
        return rng.randint(600, 3 * BLOCK_BYTES)
    if bucket < 0.9:
        return rng.randint(3 * BLOCK_BYTES, 3 * CHUNK_BYTES)
    return rng.randint(3 * CHUNK_BYTES, 2 * MIB)


def random_offset_near_edge(rng, window_start, window_length, length):
    """An offset within the window, often a few bytes off a block or chunk boundary."""
    offset = rng.randrange(window_start, window_start + window_length - length)
    if rng.random() < 0.5:
        unit = rng.choice([BLOCK_BYTES, CHUNK_BYTES])
        boundary = (offset // unit) * unit + rng.randint(-7, 7)
        if window_start <= boundary <= window_start + window_length - length:
            offset = boundary
    return offset


def check_unaligned_round_trip(uri, shadow, windows, rng):
    """Random writes of odd sizes at odd offsets read back exactly, overlaps included."""
    handle = connect(uri)
    for operation in range(400):
        start, window_length = rng.choice(windows)
        length = random_length(rng)
        offset = random_offset_near_edge(rng, start, window_length, length)
        payload = rng.randbytes(length)
        handle.pwrite(payload, offset)
        shadow.write(offset, payload)

        # Read a range that covers the write and a few bytes either side of it.
        read_start = max(start, offset - rng.randint(0, 5000))
        read_end = min(start + window_length, offset + length + rng.randint(0, 5000))
        shadow.verify(handle, read_start, read_end - read_start,
                      f"unaligned write {operation} at {offset}+{length}")
    handle.flush()
    shadow.verify_all(handle, "after unaligned writes")
    handle.shutdown()


def check_trim_and_zero(uri, shadow, region_start, rng):
    """TRIM and WRITE_ZEROES read back as zeros, on whole stripes and on ragged edges."""
    handle = connect(uri)
    region_length = 8 * MIB
    payload = rng.randbytes(region_length)
    handle.pwrite(payload, region_start)
    shadow.write(region_start, payload)

    cases = [
        ("trim, aligned", lambda o, n: handle.trim(n, o), 0, 2 * MIB),
        ("trim, unaligned", lambda o, n: handle.trim(n, o), 2 * MIB + 1234, MIB + 4321),
        ("trim with FUA", lambda o, n: handle.trim(n, o, nbd.CMD_FLAG_FUA), 3 * MIB + 9000, 700),
        ("write_zeroes", lambda o, n: handle.zero(n, o), 4 * MIB + 17, MIB + 3),
        ("write_zeroes with NO_HOLE", lambda o, n: handle.zero(n, o, nbd.CMD_FLAG_NO_HOLE),
         5 * MIB + 4095, MIB + 2),
        ("write_zeroes with NO_HOLE, aligned",
         lambda o, n: handle.zero(n, o, nbd.CMD_FLAG_NO_HOLE), 6 * MIB, MIB),
        ("write_zeroes with FUA", lambda o, n: handle.zero(n, o, nbd.CMD_FLAG_FUA),
         7 * MIB + 1, 5000),
    ]
    for description, action, relative_offset, length in cases:
        offset = region_start + relative_offset
        action(offset, length)
        shadow.zero(offset, length)
        check(handle.pread(length, offset) == bytes(length), f"{description}: did not read zeros")
        # The bytes around the range keep their data.
        shadow.verify(handle, max(region_start, offset - 8192), length + 16384,
                      f"{description}: data around {offset}+{length}")

    # Writing over a trimmed range works like writing anywhere else.
    rewrite = rng.randbytes(3 * MIB)
    handle.pwrite(rewrite, region_start + 777)
    shadow.write(region_start + 777, rewrite)
    handle.flush()
    shadow.verify(handle, region_start, region_length, "after rewriting trimmed ranges")
    handle.shutdown()


def check_flush_and_fua(uri, shadow, region_start, rng):
    handle = connect(uri)
    for index in range(16):
        length = rng.randint(1, 300 * KIB)
        offset = region_start + rng.randrange(0, 2 * MIB)
        payload = rng.randbytes(length)
        flags = nbd.CMD_FLAG_FUA if index % 2 == 0 else 0
        handle.pwrite(payload, offset, flags)
        shadow.write(offset, payload)
        if index % 4 == 3:
            handle.flush()
        shadow.verify(handle, offset, length, f"FUA write {index} at {offset}+{length}")
    handle.flush()
    handle.shutdown()


class PendingRequest:
    """An asynchronous request in flight, with the buffer libnbd reads from or writes into."""

    def __init__(self, cookie, buffer, offset, expected):
        self.cookie = cookie
        self.buffer = buffer
        self.offset = offset
        self.expected = expected  # the bytes a read must return, or None for a write


def run_connection(uri, connection_index, pieces, results):
    """Write this connection's pieces with up to 32 requests in flight, then read them back.

    Stores None in results[connection_index] on success, or else a message.
    """
    try:
        handle = connect(uri)
        in_flight = []

        def wait_until_at_most(limit):
            while len(in_flight) > limit:
                handle.poll(-1)
                for request in list(in_flight):
                    if not handle.aio_command_completed(request.cookie):
                        continue
                    in_flight.remove(request)
                    if request.expected is not None:
                        check(request.buffer.to_bytearray() == request.expected,
                              f"connection {connection_index}: read at {request.offset} "
                              "returned other bytes than were written")

        for offset, payload in pieces:
            buffer = nbd.Buffer.from_bytearray(bytearray(payload))
            cookie = handle.aio_pwrite(buffer, offset)
            in_flight.append(PendingRequest(cookie, buffer, offset, None))
            wait_until_at_most(31)
        wait_until_at_most(0)

        for offset, payload in pieces:
            buffer = nbd.Buffer(len(payload))
            cookie = handle.aio_pread(buffer, offset)
            in_flight.append(PendingRequest(cookie, buffer, offset, payload))
            wait_until_at_most(31)
        wait_until_at_most(0)
        handle.shutdown()
        results[connection_index] = None
    except (nbd.Error, CheckFailed) as error:
        results[connection_index] = f"connection {connection_index}: {error}"


def check_concurrent_connections(uri, shadow, region_start, rng):
    """Many connections write interleaved pieces of the same stripes at once.

    The region is cut into consecutive pieces of random sizes, dealt to the connections in
    turn. Neighbouring pieces belong to different connections and often share a 4 KiB
    block, so two connections read-modify-write the same block at the same time.
    """
    connection_count = 16
    pieces_per_connection = 64
    # At most 16 * 64 * 16000 bytes (15.6 MiB), which fits the 18 MiB the caller leaves.
    piece_bytes = [1, 511, 1000, 1500, 2048, 4096, 5000, 12000, 16000]
    plans = [[] for _ in range(connection_count)]
    offset = region_start
    for piece_index in range(connection_count * pieces_per_connection):
        payload = rng.randbytes(rng.choice(piece_bytes))
        plans[piece_index % connection_count].append((offset, payload))
        shadow.write(offset, payload)
        offset += len(payload)
    region_length = offset - region_start

    results = [f"connection {index} did not finish" for index in range(connection_count)]
    threads = [threading.Thread(target=run_connection, args=(uri, index, plans[index], results))
               for index in range(connection_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    errors = [result for result in results if result is not None]
    check(not errors, "; ".join(errors))

    # With multi-conn, a flush on any connection covers writes completed on all of them.
    handle = connect(uri)
    handle.flush()
    shadow.verify(handle, region_start, region_length, "after concurrent connections")
    handle.shutdown()


def check_abrupt_disconnect(uri, scratch_start):
    """Clients that close their socket with requests in flight leave the server serving."""
    for round_index in range(4):
        handle = connect(uri)
        buffers = []
        for index in range(48):
            buffer = nbd.Buffer.from_bytearray(bytearray(b"\x5a" * (64 * KIB + 3)))
            buffers.append(buffer)
            handle.aio_pwrite(buffer, scratch_start + index * 70 * KIB)
            reader = nbd.Buffer(128 * KIB)
            buffers.append(reader)
            handle.aio_pread(reader, scratch_start + index * 64 * KIB)
        # Dropping the last reference closes the handle and its socket without waiting for
        # the replies. The buffers must outlive the handle, so they go after it.
        del handle
        del buffers


def main():
    uri = sys.argv[1]
    size = int(sys.argv[2])
    seed = int(sys.argv[3])
    rng = random.Random(seed)
    print(f"export size {size}, seed {seed}", flush=True)
    check(size >= 96 * MIB, f"export of {size} bytes is too small for these cases")

    # Windows: the first 48 MiB (unaligned writes, then TRIM and zero, then the concurrent
    # region) and the last 4 MiB. The scratch region for the abrupt disconnect sits between.
    low_window = (0, 48 * MIB)
    end_window = (size - 4 * MIB, 4 * MIB)
    scratch_start = 64 * MIB
    handle = connect(uri)
    shadow = Shadow(handle, [low_window, end_window])
    handle.shutdown()

    steps = [
        ("out of range", lambda: check_out_of_range(uri, size, shadow)),
        ("rejected large writes", lambda: check_rejected_large_writes(uri, size)),
        ("zero length", lambda: check_zero_length(uri, size)),
        ("unaligned round trip",
         lambda: check_unaligned_round_trip(uri, shadow, [(0, 16 * MIB), end_window], rng)),
        ("trim and zero", lambda: check_trim_and_zero(uri, shadow, 16 * MIB, rng)),
        ("flush and FUA", lambda: check_flush_and_fua(uri, shadow, 24 * MIB, rng)),
        ("concurrent connections",
         lambda: check_concurrent_connections(uri, shadow, 28 * MIB, rng)),
        ("abrupt disconnect", lambda: check_abrupt_disconnect(uri, scratch_start)),
        ("new connection after all cases", lambda: check_new_connection(uri, shadow)),
    ]
    # Every case runs even after an earlier one failed, so one run reports every failure.
    failures = []
    for name, step in steps:
        print(f"case: {name}", flush=True)
        try:
            step()
        except (CheckFailed, nbd.Error) as error:
            message = f"{name}: {error}"
            print(f"FAILED {message}", flush=True)
            failures.append(message)
            # The failed case may have left the export different from the shadow, so the
            # next case starts from what the export contains now.
            handle = connect(uri)
            shadow = Shadow(handle, [low_window, end_window])
            handle.shutdown()
    if failures:
        sys.exit(f"{len(failures)} of {len(steps)} cases failed (seed {seed}):\n  "
                 + "\n  ".join(failures))


if __name__ == "__main__":
    main()
