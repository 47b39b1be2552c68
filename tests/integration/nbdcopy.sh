#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nbdcopy writes a 256 MiB random image into the export and reads the whole export back:
# the image comes back byte for byte and the rest of the export reads as zeros. qemu-img,
# a second NBD client, compares the image with the export too when it is installed.
# Usage: nbdcopy.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo cmp

image_mib=256
image_bytes=$((image_mib * 1024 * 1024))
create_array
((capacity_bytes >= image_bytes)) ||
    fail "capacity $capacity_bytes is below the $image_mib MiB image; raise member_size in lib.sh"
start_server

image=$test_dir/image
make_random_file "$image" "$image_mib"
timeout --kill-after=10 300 nbdcopy --flush "$image" "$export_uri" ||
    fail_with_server_log "nbdcopy into the export failed"

copy=$test_dir/copy
timeout --kill-after=10 300 nbdcopy "$export_uri" "$copy" ||
    fail_with_server_log "nbdcopy out of the export failed"
copy_bytes=$(stat -c %s "$copy")
((copy_bytes == capacity_bytes)) ||
    fail "the copy of the export has $copy_bytes bytes, expected $capacity_bytes"
cmp -n "$image_bytes" "$image" "$copy" || fail "the export does not return the image written"
cmp -n $((capacity_bytes - image_bytes)) --ignore-initial="$image_bytes:0" "$copy" /dev/zero ||
    fail "the export past the image is not zeros"

if command -v qemu-img >/dev/null 2>&1; then
    # Bytes past the end of the smaller image must read as zeros for the images to match.
    timeout --kill-after=10 300 qemu-img compare -f raw -F raw "$image" "$export_uri" ||
        fail "qemu-img compare found a difference between the image and the export"
else
    note "qemu-img is not installed, so the qemu-img comparison did not run"
fi
expect_server_running
stop_server
note "passed"
