#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# More members fail than the level tolerates while the server runs. Reads of the lost
# ranges must fail with EIO and never return wrong data. Reads that the surviving members
# can still serve may succeed, but must return the image. The server must stay up for new
# connections, and status must report the state "failed".
# Usage: past_tolerance.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdcopy nbdinfo
require_python_nbd

member_size=64M
case $test_config in
    raid5) failed_roles=(1 3) ;;
    *) fail "past_tolerance runs on raid5, not $test_config" ;;
esac

create_array
chunk_bytes=$(json_get "$test_dir/inspect.json" superblock chunk_bytes)
start_server
write_random_image

for role in "${failed_roles[@]}"; do
    run_admin fail "${members[role]}"
done
wait_for_array_state failed
for role in "${failed_roles[@]}"; do
    expect_member_state "${members[role]}" faulty
done

# Read each chunk of the first 64 stripes on its own. Every stripe has a data chunk on a
# failed member, so in every stripe at least one chunk read must fail with EIO, and a
# chunk that reads must equal the image.
stripe_data_bytes=$((chunk_bytes * data_member_count))
"$PYTHON" - "$export_uri" "$image" "$chunk_bytes" "$stripe_data_bytes" 64 <<'PY' ||
import errno
import sys

import nbd

uri, image_path = sys.argv[1], sys.argv[2]
chunk_bytes, stripe_bytes, stripe_count = (int(value) for value in sys.argv[3:6])
image = open(image_path, "rb")
handle = nbd.NBD()
handle.connect_uri(uri)
failed_reads = 0
for stripe in range(stripe_count):
    stripe_failed_reads = 0
    for offset in range(stripe * stripe_bytes, (stripe + 1) * stripe_bytes, chunk_bytes):
        try:
            data = handle.pread(chunk_bytes, offset)
        except nbd.Error as error:
            if error.errnum != errno.EIO:
                sys.exit(f"read at offset {offset} failed with {error.errno} ({error.string}), "
                         "expected EIO")
            stripe_failed_reads += 1
            continue
        image.seek(offset)
        if data != image.read(chunk_bytes):
            sys.exit(f"read at offset {offset} returned data that differs from the image")
    if stripe_failed_reads == 0:
        sys.exit(f"every chunk of stripe {stripe} read, although it has a chunk on a failed member")
    failed_reads += stripe_failed_reads
handle.shutdown()
print(f"{failed_reads} of {stripe_count * stripe_bytes // chunk_bytes} chunk reads failed with EIO")
PY
    fail_with_server_log "reads past the tolerance did not fail with EIO as expected"

# A whole-export copy must fail rather than copy wrong data.
if timeout --kill-after=10 120 nbdcopy "$export_uri" "$test_dir/lost-copy" 2>"$test_dir/nbdcopy.err"; then
    fail_with_server_log "nbdcopy read the whole export with members ${failed_roles[*]} failed"
fi
rm -f "$test_dir/lost-copy"

expect_server_running
nbdinfo "$export_uri" >"$test_dir/nbdinfo.out" ||
    fail_with_server_log "nbdinfo fails on a new connection to an array that lost data"
expect_contains "$test_dir/nbdinfo.out" "export-size: $capacity_bytes"
expect_array_state failed

# The final flush cannot make the lost stripes durable, so serve may exit with status 1
# after SIGTERM (an error, not a crash), and it must stop within the timeout either way.
pid=$server_pid
server_pid=
stop_status=0
terminate_process "$pid" "$SERVER_STOP_TIMEOUT_SECONDS" || stop_status=$?
((stop_status == 0 || stop_status == 1)) ||
    fail_with_server_log "ecraid serve (pid $pid) exited with status $stop_status after SIGTERM, expected 0 or 1"
note "server $pid stopped with status $stop_status"
note "passed"
