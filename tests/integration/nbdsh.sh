#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Edge cases through libnbd's Python bindings (nbd_edge_cases.py) against a live server,
# which must still be running and serving afterwards.
# Usage: nbdsh.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools nbdinfo
require_python_nbd

create_array
start_server
timeout --kill-after=10 300 "$PYTHON" "$TEST_SOURCE_DIR/nbd_edge_cases.py" \
    "$export_uri" "$capacity_bytes" "$test_seed" ||
    fail_with_server_log "edge cases failed"
expect_server_running
nbdinfo --size "$export_uri" >/dev/null || fail "server does not answer a new connection"
stop_server
note "passed"
