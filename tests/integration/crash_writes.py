# SPDX-License-Identifier: Apache-2.0
"""Write, flush and check 4 KiB blocks around a server crash, through libnbd.

Usage: /usr/bin/python3 crash_writes.py COMMAND URI EXPORT_SIZE SEED RECORD [READY_FILE]

Commands:
  flushed    writes BLOCK_COUNT random 4 KiB blocks at distinct random offsets, 64 requests
             in flight, waits for every reply, sends FLUSH, and saves the offsets and data in
             the file RECORD.
  unflushed  keeps 32 writes of 4 KiB to 64 KiB in flight until the connection fails (the
             test kills the server), never touching a block in RECORD. Half of them land
             next to a recorded block, in the same stripe, so that a torn stripe would show
             in a recorded block once a member is gone. Creates READY_FILE after the first
             256 replies.
  verify     reads every block in RECORD and fails unless it equals the recorded data.

Exits non-zero with a message when a check fails.
"""

import os
import random
import sys

import nbd

BLOCK_BYTES = 4096
BLOCK_COUNT = 256
FLUSHED_DEPTH = 64
UNFLUSHED_DEPTH = 32
UNFLUSHED_MAX_BLOCKS = 16
READY_AFTER_REPLIES = 256
# Bytes between two recorded blocks that count as "next to" each other: within one 64 KiB
# chunk or in a neighboring one, which puts the write in the same stripe at most levels.
NEIGHBOURHOOD_BYTES = 128 * 1024


def save_record(path, offsets, blocks):
    with open(path, "wb") as record:
        for offset, block in zip(offsets, blocks):
            record.write(offset.to_bytes(8, "little"))
            record.write(block)


def load_record(path):
    entries = []
    with open(path, "rb") as record:
        while True:
            header = record.read(8)
            if not header:
                return entries
            entries.append((int.from_bytes(header, "little"), record.read(BLOCK_BYTES)))


def wait_for_one(handle, in_flight):
    """Waits until at least one command in in_flight completes and removes the completed ones.

    Raises nbd.Error when a command failed or the connection is gone.
    """
    while True:
        done = [cookie for cookie in in_flight if handle.aio_command_completed(cookie)]
        if done:
            for cookie in done:
                del in_flight[cookie]
            return len(done)
        handle.poll(-1)


def write_flushed(uri, export_bytes, rng, record_path):
    block_total = export_bytes // BLOCK_BYTES
    indexes = rng.sample(range(block_total), BLOCK_COUNT)
    offsets = [index * BLOCK_BYTES for index in indexes]
    blocks = [rng.randbytes(BLOCK_BYTES) for _ in offsets]

    handle = nbd.NBD()
    handle.connect_uri(uri)
    in_flight = {}
    for offset, block in zip(offsets, blocks):
        while len(in_flight) >= FLUSHED_DEPTH:
            wait_for_one(handle, in_flight)
        buffer = nbd.Buffer.from_bytearray(bytearray(block))
        in_flight[handle.aio_pwrite(buffer, offset)] = buffer
    while in_flight:
        wait_for_one(handle, in_flight)
    handle.flush()
    # The record is saved only after FLUSH succeeded: every block in it must survive.
    save_record(record_path, offsets, blocks)
    handle.shutdown()
    print(f"wrote and flushed {BLOCK_COUNT} blocks")


def pick_unflushed_extent(rng, export_bytes, recorded_offsets, recorded_blocks):
    """Returns (offset, length) of a write that covers no recorded block."""
    block_total = export_bytes // BLOCK_BYTES
    while True:
        if rng.random() < 0.5:
            anchor = rng.choice(recorded_offsets)
            low = max(0, anchor - NEIGHBOURHOOD_BYTES) // BLOCK_BYTES
            high = min(block_total - 1, (anchor + NEIGHBOURHOOD_BYTES) // BLOCK_BYTES)
            first = rng.randint(low, high)
        else:
            first = rng.randrange(block_total)
        block_limit = rng.randint(1, UNFLUSHED_MAX_BLOCKS)
        count = 0
        while count < block_limit and first + count < block_total and first + count not in recorded_blocks:
            count += 1
        if count > 0:
            return first * BLOCK_BYTES, count * BLOCK_BYTES


def write_unflushed(uri, export_bytes, rng, record_path, ready_path):
    recorded_offsets = [offset for offset, _ in load_record(record_path)]
    recorded_blocks = {offset // BLOCK_BYTES for offset in recorded_offsets}
    handle = nbd.NBD()
    handle.connect_uri(uri)
    in_flight = {}
    replies = 0
    try:
        while True:
            while len(in_flight) < UNFLUSHED_DEPTH:
                offset, length = pick_unflushed_extent(rng, export_bytes, recorded_offsets,
                                                       recorded_blocks)
                buffer = nbd.Buffer.from_bytearray(bytearray(rng.randbytes(length)))
                in_flight[handle.aio_pwrite(buffer, offset)] = buffer
            replies += wait_for_one(handle, in_flight)
            if replies >= READY_AFTER_REPLIES and not os.path.exists(ready_path):
                open(ready_path, "w").close()
    except nbd.Error as error:
        # The server is gone, which is how this command is meant to end.
        print(f"{replies} unflushed writes answered, then: {error.string}")


def verify(uri, record_path):
    entries = load_record(record_path)
    handle = nbd.NBD()
    handle.connect_uri(uri)
    mismatches = []
    for offset, expected in entries:
        try:
            actual = handle.pread(BLOCK_BYTES, offset)
        except nbd.Error as error:
            sys.exit(f"reading the flushed block at offset {offset} failed: {error.string}")
        if actual != expected:
            mismatches.append(offset)
    handle.shutdown()
    if mismatches:
        sys.exit(f"{len(mismatches)} of {len(entries)} flushed blocks differ from what was "
                 f"written, at offsets {mismatches[:8]}")
    print(f"all {len(entries)} flushed blocks read back")


def main():
    if len(sys.argv) < 6:
        sys.exit(__doc__)
    command, uri, export_bytes, seed, record_path = sys.argv[1:6]
    rng = random.Random(f"{seed}:{command}")
    if command == "flushed":
        write_flushed(uri, int(export_bytes), rng, record_path)
    elif command == "unflushed":
        if len(sys.argv) != 7:
            sys.exit("unflushed needs READY_FILE")
        write_unflushed(uri, int(export_bytes), rng, record_path, sys.argv[6])
    elif command == "verify":
        verify(uri, record_path)
    else:
        sys.exit(f"unknown command {command!r}: expected flushed, unflushed or verify")


if __name__ == "__main__":
    main()
