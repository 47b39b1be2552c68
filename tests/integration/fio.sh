#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# fio's nbd engine writes random blocks of 512 B to 1 MiB from several jobs at once, each
# job on its own connection and its own part of the export, then reads them back and
# checks them with crc32c.
# Usage: fio.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools fio nbdinfo
require_python_nbd
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd ioengine"

create_array
start_server

# Two job groups run one after the other (stonewall). Each job owns one equal, 1 MiB
# aligned region. Random writes cover it once (fio's random map), then the verify pass
# reads every block back. runtime bounds each job in case the server stalls.
mib=$((1024 * 1024))
region_4=$((capacity_bytes / 4 / mib * mib))
region_2=$((capacity_bytes / 2 / mib * mib))
job_file=$test_dir/verify.fio
cat >"$job_file" <<JOB
[global]
ioengine=nbd
uri=$export_uri
rw=randwrite
verify=crc32c
verify_fatal=1
runtime=120
group_reporting=0

[mixed-sizes]
bssplit=512/15:1536/10:4k/20:28k/10:64k/15:192k/10:1m/20
numjobs=4
iodepth=16
size=$region_4
offset_increment=$region_4

[size-range]
stonewall
bsrange=512-1m
numjobs=2
iodepth=32
size=$region_2
offset_increment=$region_2
JOB

# Runs fio on the job file and fails unless every job verified the bytes it expected.
# Usage: run_fio NAME [FIO_OPTIONS...]. With --verify_only the jobs write nothing.
run_fio() {
    local name=$1
    shift
    local output=$test_dir/$name.json
    # fio saves verify state files in its working directory, so it runs in the temp dir.
    if ! (cd "$test_dir" && timeout --kill-after=10 300 fio --output-format=json \
        --output="$output" "$@" "$job_file") >"$test_dir/$name.out" 2>&1; then
        cat "$test_dir/$name.out" "$output" >&2 || true
        fail_with_server_log "fio ($name) failed (verify errors are fatal)"
    fi

    # A job that stopped early (runtime) may have skipped its verify pass, so check that
    # every job read back all it wrote.
    "$PYTHON" - "$output" "$name" <<'PY' || fail "fio ($name) did not verify all the data it wrote"
import json
import sys

jobs = json.load(open(sys.argv[1]))["jobs"]
name = sys.argv[2]
if len(jobs) != 6:
    sys.exit(f"fio ({name}) reported {len(jobs)} jobs, expected 6")
for job in jobs:
    job_name = job["jobname"]
    written, verified = job["write"]["io_bytes"], job["read"]["io_bytes"]
    print(f"{name} {job_name}: wrote {written} bytes, verified {verified} bytes")
    if job["error"] != 0:
        sys.exit(f"fio ({name}) job {job_name} reported error {job['error']}")
    if verified == 0:
        sys.exit(f"fio ({name}) job {job_name} verified nothing")
    if name == "write-and-verify" and verified != written:
        sys.exit(f"fio job {job_name} wrote {written} bytes but verified {verified}")
PY
}

run_fio write-and-verify
expect_server_running
stop_server

# The data must survive a restart: a new server reads it back from the members.
start_server
run_fio verify-after-restart --verify_only
expect_server_running
stop_server
note "passed"
