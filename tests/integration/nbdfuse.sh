#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# An ext4 file system on the export, through nbdfuse and a loop device: files written to it
# keep their checksums across unmount, fsck, remount and a restart of the server.
# Usage: nbdfuse.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_fuse_and_loop
require_tools nbdinfo mkfs.ext4 fsck.ext4 sha256sum
require_python_nbd

# Writes a few MiB-sized random files and many small ones under the directory.
write_files() {
    local root=$1 index
    mkdir -p "$root/large" "$root/small"
    for index in 1 3 5; do
        make_random_file "$root/large/random-$index-MiB" "$index"
    done
    for ((index = 0; index < 400; index++)); do
        mkdir -p "$root/small/dir-$((index % 16))"
        head -c $((RANDOM % 9000 + 1)) /dev/urandom >"$root/small/dir-$((index % 16))/file-$index"
    done
    # An empty file and one of exactly one block.
    : >"$root/small/empty"
    head -c 4096 /dev/urandom >"$root/small/one-block"
}

# Prints the checksum of every file under the directory, sorted by path.
checksum_files() {
    (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
}

# Fails unless the files under the mount have the recorded checksums.
expect_checksums() {
    local context=$1 current=$test_dir/checksums.now
    checksum_files "$mount_dir" >"$current"
    if ! cmp -s "$test_dir/checksums" "$current"; then
        diff "$test_dir/checksums" "$current" | head -n 20 >&2
        fail "file checksums differ $context"
    fi
}

# Fails unless fsck.ext4 reports the file system clean, without changing it.
expect_clean_fsck() {
    local output=$test_dir/fsck.out status=0
    timeout --kill-after=10 300 fsck.ext4 -n -f "$loop_device" >"$output" 2>&1 || status=$?
    if ((status != 0)); then
        cat "$output" >&2
        fail "fsck.ext4 -n found problems $1 (exit status $status)"
    fi
}

create_array
start_server
mount_nbdfuse
fuse_bytes=$(stat -c %s "$fuse_dir/nbd")
((fuse_bytes == capacity_bytes)) ||
    fail "nbdfuse file has $fuse_bytes bytes, expected the capacity $capacity_bytes"

attach_loop "$fuse_dir/nbd"
timeout --kill-after=10 300 mkfs.ext4 -q -F "$loop_device" || fail "mkfs.ext4 failed"
mount_filesystem "$loop_device"
write_files "$mount_dir"
checksum_files "$mount_dir" >"$test_dir/checksums"
note "wrote $(wc -l <"$test_dir/checksums") files"
sync -f "$mount_dir"
unmount_filesystem
expect_clean_fsck "after the first unmount"

mount_filesystem "$loop_device"
expect_checksums "after remounting"
unmount_filesystem
detach_loop
unmount_nbdfuse
expect_server_running
stop_server

# A new server must return the same file system from the members alone.
start_server
mount_nbdfuse
attach_loop "$fuse_dir/nbd" -r
expect_clean_fsck "after restarting the server"
mount_filesystem "$loop_device" -o ro
expect_checksums "after restarting the server"
unmount_filesystem
detach_loop
unmount_nbdfuse
expect_server_running
stop_server
note "passed"
