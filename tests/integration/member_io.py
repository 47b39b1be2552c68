# SPDX-License-Identifier: Apache-2.0
"""Read, damage and repair the bytes of an ecraid member file directly, as a failing disk would.

Usage: /usr/bin/python3 member_io.py COMMAND ARGS...
    corrupt PATH OFFSET LENGTH SEED    in every 4 KiB block of the range, XOR a run of 1 to 64
                                       bytes at a random position with non-zero random bytes
    read PATH OFFSET LENGTH OUTPUT     copy the range of the member into the file OUTPUT
    write PATH OFFSET INPUT            write the whole file INPUT into the member at OFFSET
    copy-block PATH SOURCE TARGET      copy the 4 KiB block at byte offset SOURCE over the one
                                       at TARGET (a misdirected write)
    block-checksum PATH DATA_OFFSET INDEX
                                       print the XXH3-64 of data block INDEX, seeded with INDEX
    get-entry PATH TABLE_OFFSET INDEX  print checksum table entry INDEX
    set-entry PATH TABLE_OFFSET INDEX VALUE
                                       store VALUE (decimal or 0x hex) as entry INDEX

Offsets and lengths are bytes from the start of the member file and must be multiples of
4096. Every read and write uses O_DIRECT, so that a running ecraid server, which also opens
its members with O_DIRECT, sees the change at once and the test sees what the server wrote.
On a file system without O_DIRECT (tmpfs) the page cache is the storage, so buffered I/O
followed by fsync gives the same view. Checksums come from the libxxhash that ecraid links.

Exit codes: 0 done, 1 invalid arguments or an I/O error, 77 libxxhash cannot be loaded.
"""

import ctypes
import ctypes.util
import mmap
import os
import random
import struct
import sys

BLOCK_BYTES = 4096
ENTRY_BYTES = 8
SKIP_EXIT_CODE = 77


def open_member(path):
    """Open PATH for reading and writing, with O_DIRECT where the file system supports it."""
    try:
        return os.open(path, os.O_RDWR | os.O_DIRECT)
    except OSError as error:
        if error.errno != 22:  # EINVAL: the file system has no O_DIRECT.
            raise
    return os.open(path, os.O_RDWR)


def check_aligned(*values):
    for value in values:
        if value % BLOCK_BYTES != 0:
            sys.exit(f"member_io: {value} is not a multiple of {BLOCK_BYTES}")


def read_range(fd, offset, length):
    """Read exactly LENGTH bytes at OFFSET into a page-aligned buffer, as O_DIRECT requires."""
    buffer = mmap.mmap(-1, length)
    done = 0
    while done < length:
        view = memoryview(buffer)[done:]
        count = os.preadv(fd, [view], offset + done)
        view.release()
        if count == 0:
            sys.exit(f"member_io: unexpected end of file at byte {offset + done}")
        done += count
    return buffer


def write_range(fd, offset, data):
    """Write DATA at OFFSET through a page-aligned buffer and make it durable."""
    buffer = mmap.mmap(-1, len(data))
    buffer[:] = data
    done = 0
    while done < len(data):
        view = memoryview(buffer)[done:]
        done += os.pwritev(fd, [view], offset + done)
        view.release()
    os.fsync(fd)


def corrupt(path, offset, length, seed):
    check_aligned(offset, length)
    generator = random.Random(seed)
    fd = open_member(path)
    try:
        blocks = read_range(fd, offset, length)
        for block_start in range(0, length, BLOCK_BYTES):
            run = generator.randint(1, 64)
            start = block_start + generator.randrange(BLOCK_BYTES - run + 1)
            for position in range(start, start + run):
                blocks[position] ^= generator.randint(1, 255)
        write_range(fd, offset, blocks)
    finally:
        os.close(fd)


def read_to_file(path, offset, length, output):
    check_aligned(offset, length)
    fd = open_member(path)
    try:
        data = read_range(fd, offset, length)
    finally:
        os.close(fd)
    with open(output, "wb") as out:
        out.write(data)


def write_from_file(path, offset, source):
    with open(source, "rb") as source_file:
        data = source_file.read()
    check_aligned(offset, len(data))
    fd = open_member(path)
    try:
        write_range(fd, offset, data)
    finally:
        os.close(fd)


def copy_block(path, source, target):
    check_aligned(source, target)
    fd = open_member(path)
    try:
        write_range(fd, target, read_range(fd, source, BLOCK_BYTES))
    finally:
        os.close(fd)


def load_xxhash():
    name = ctypes.util.find_library("xxhash") or "libxxhash.so.0"
    try:
        library = ctypes.CDLL(name)
    except OSError as error:
        print(f"member_io: cannot load libxxhash ({error}); install libxxhash0", file=sys.stderr)
        sys.exit(SKIP_EXIT_CODE)
    function = library.XXH3_64bits_withSeed
    function.restype = ctypes.c_uint64
    function.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint64]
    return function


def block_checksum(path, data_offset, index):
    """Return the checksum-table value of data block INDEX: XXH3-64 seeded with INDEX."""
    check_aligned(data_offset)
    fd = open_member(path)
    try:
        block = bytes(read_range(fd, data_offset + index * BLOCK_BYTES, BLOCK_BYTES))
    finally:
        os.close(fd)
    return load_xxhash()(block, len(block), index)


def entry_location(table_offset, index):
    """Return the offset of the 4 KiB table page that contains entry INDEX, and the entry's offset in that page."""
    entry_offset = table_offset + index * ENTRY_BYTES
    page_offset = entry_offset - entry_offset % BLOCK_BYTES
    return page_offset, entry_offset - page_offset


def get_entry(path, table_offset, index):
    check_aligned(table_offset)
    page_offset, within = entry_location(table_offset, index)
    fd = open_member(path)
    try:
        page = read_range(fd, page_offset, BLOCK_BYTES)
    finally:
        os.close(fd)
    return struct.unpack_from("<Q", page, within)[0]


def set_entry(path, table_offset, index, value):
    check_aligned(table_offset)
    page_offset, within = entry_location(table_offset, index)
    fd = open_member(path)
    try:
        page = read_range(fd, page_offset, BLOCK_BYTES)
        struct.pack_into("<Q", page, within, value)
        write_range(fd, page_offset, page)
    finally:
        os.close(fd)


def main(arguments):
    if not arguments:
        sys.exit(__doc__)
    command, rest = arguments[0], arguments[1:]
    expected_counts = {
        "corrupt": 4, "read": 4, "write": 3, "copy-block": 3,
        "block-checksum": 3, "get-entry": 3, "set-entry": 4,
    }
    if command not in expected_counts:
        sys.exit(f"member_io: unknown command '{command}'\n{__doc__}")
    if len(rest) != expected_counts[command]:
        sys.exit(f"member_io: {command} takes {expected_counts[command]} arguments, "
                 f"got {len(rest)}\n{__doc__}")

    path = rest[0]
    if command == "corrupt":
        corrupt(path, int(rest[1]), int(rest[2]), int(rest[3]))
    elif command == "read":
        read_to_file(path, int(rest[1]), int(rest[2]), rest[3])
    elif command == "write":
        write_from_file(path, int(rest[1]), rest[2])
    elif command == "copy-block":
        copy_block(path, int(rest[1]), int(rest[2]))
    elif command == "block-checksum":
        print(f"0x{block_checksum(path, int(rest[1]), int(rest[2])):016x}")
    elif command == "get-entry":
        print(f"0x{get_entry(path, int(rest[1]), int(rest[2])):016x}")
    elif command == "set-entry":
        set_entry(path, int(rest[1]), int(rest[2]), int(rest[3], 0))


if __name__ == "__main__":
    main(sys.argv[1:])
