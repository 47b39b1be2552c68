#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# nbdinfo reports the export with the array's capacity and the expected flags, and a
# --read-only server advertises read-only and rejects writes with EPERM.
# Usage: nbdinfo.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdinfo
require_python_nbd

# Fails unless `nbdinfo --json` reported the flag with the expected value.
expect_flag() {
    local info=$1 flag=$2 expected=$3 actual
    actual=$(json_get "$info" exports 0 "$flag")
    [[ $actual == "$expected" ]] || fail "nbdinfo reports $flag = $actual, expected $expected"
}

create_array
start_server

info=$test_dir/info.json
nbdinfo --json "$export_uri" >"$info"
export_size=$(json_get "$info" exports 0 export-size)
((export_size == capacity_bytes)) ||
    fail "nbdinfo reports export-size $export_size, expected the capacity $capacity_bytes"
[[ $(json_get "$info" exports 0 export-name) == "$array_name" ]] ||
    fail "export name is not the array name $array_name"
for flag in can_flush can_fua can_multi_conn can_trim can_zero; do
    expect_flag "$info" "$flag" true
done
expect_flag "$info" is_read_only false
expect_flag "$info" block_size_minimum 1
expect_flag "$info" block_size_preferred 4096
expect_flag "$info" block_size_maximum $((32 * 1024 * 1024))
stop_server

start_server --read-only
nbdinfo --json "$export_uri" >"$info"
expect_flag "$info" is_read_only true
export_size=$(json_get "$info" exports 0 export-size)
((export_size == capacity_bytes)) ||
    fail "read-only export-size $export_size, expected $capacity_bytes"

# libnbd rejects writes to a read-only export on the client side unless strict mode is off,
# so turn it off to make the server itself reply to each command.
"$PYTHON" - "$export_uri" <<'EOF' || fail_with_server_log "read-only export checks failed"
import errno
import sys

import nbd

handle = nbd.NBD()
handle.set_strict_mode(0)
handle.connect_uri(sys.argv[1])
commands = {
    "write": lambda: handle.pwrite(b"x" * 4096, 0),
    "trim": lambda: handle.trim(4096, 0),
    "write_zeroes": lambda: handle.zero(4096, 0),
    # Larger than the socket buffers: the server must consume the payload before replying.
    "write of 4 MiB": lambda: handle.pwrite(bytes(4 * 1024 * 1024), 0),
}
for name, command in commands.items():
    try:
        command()
    except nbd.Error as error:
        if error.errnum != errno.EPERM:
            sys.exit(f"{name} on a read-only export failed with {error.errno} "
                     f"({error.string}), expected EPERM")
    else:
        sys.exit(f"{name} on a read-only export succeeded, expected EPERM")

if handle.pread(4096, 0) != bytes(4096):
    sys.exit("read from the read-only export did not return the zeros of a new array")
handle.shutdown()
EOF
expect_server_running
stop_server
note "passed"
