#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# An nbdkit sh plugin that serves a file with latent sector errors, which a write remaps as
# on a disk. A read that touches a listed 4 KiB block fails with EIO. A write over the block
# removes it from the list, so later reads of it succeed.
#
# Usage: BAD_SECTOR_BACKING=FILE BAD_SECTOR_LIST=LIST nbdkit sh bad_sector_plugin.sh
#     FILE   the member's bytes; its size is the export size
#     LIST   byte offsets of the bad blocks in FILE, one a line, each a multiple of 4096
#
# nbdkit runs the script once per request with the method name in $1. For pread and pwrite,
# $3 is the byte count and $4 the byte offset. An error is a line "ERRNO message" on stderr
# and exit status 1. Exit status 2 means the method is not implemented.
block_bytes=4096

# Succeeds when a listed bad block overlaps bytes [$1, $1 + $2).
touches_bad_block() {
    awk -v start="$1" -v end="$(($1 + $2))" -v size="$block_bytes" \
        '$1 + size > start && $1 < end { found = 1 } END { exit !found }' "$BAD_SECTOR_LIST"
}

case "$1" in
    thread_model)
        # The list is rewritten by pwrite, so requests must not overlap.
        echo serialize_all_requests
        ;;
    get_size)
        stat -c %s "$BAD_SECTOR_BACKING"
        ;;
    can_write | can_flush)
        exit 0
        ;;
    pread)
        if touches_bad_block "$4" "$3"; then
            echo "EIO latent sector error in bytes $4..$(($4 + $3))" >&2
            exit 1
        fi
        dd if="$BAD_SECTOR_BACKING" iflag=skip_bytes,count_bytes skip="$4" count="$3" bs=64K \
            status=none
        ;;
    pwrite)
        dd of="$BAD_SECTOR_BACKING" iflag=count_bytes,fullblock oflag=seek_bytes conv=notrunc \
            seek="$4" count="$3" bs=64K status=none || exit 1
        if touches_bad_block "$4" "$3"; then
            awk -v start="$4" -v end="$(($4 + $3))" -v size="$block_bytes" \
                '!($1 + size > start && $1 < end)' "$BAD_SECTOR_LIST" >"$BAD_SECTOR_LIST.new" &&
                mv "$BAD_SECTOR_LIST.new" "$BAD_SECTOR_LIST" || exit 1
        fi
        ;;
    flush)
        sync "$BAD_SECTOR_BACKING"
        ;;
    *)
        exit 2
        ;;
esac
