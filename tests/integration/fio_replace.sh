#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# fio keeps writing while a member fails and is replaced. fio's nbd engine writes random
# blocks of 4 KiB to 256 KiB at queue depth 16 over the whole export. While it runs,
# `ecraid fail` takes member 1 out and `ecraid replace` rebuilds it onto a new file. fio
# then reads everything back and checks it with crc32c. Afterwards the array must be
# optimal with the new member active. Two verify-only passes must then find no errors,
# first with every member in service, then with other members failed, so that the data of
# role 1 comes from the rebuilt member.
# Usage: fio_replace.sh ECRAID_BINARY CONFIG
source "$(dirname "$0")/lib.sh"
init_test "$@"
require_tools fio nbdinfo
require_python_nbd
fio --enghelp=nbd >/dev/null 2>&1 || skip "this fio has no nbd ioengine"

member_size=64M
failed_role=1
# Roles failed for the last verify-only pass: as many as the level tolerates, never role 1.
case $test_config in
    raid5) later_failed_roles=(2) ;;
    rs_4_2) later_failed_roles=(0 3) ;;
    *) fail "fio_replace runs on raid5 or rs_4_2, not $test_config" ;;
esac

create_array
# The rebuild rate keeps the rebuild going for a few seconds, so that it overlaps fio's
# writes.
start_server --rebuild-rate 20

# The write phase is rate-limited to last about 8 s, so that the fail and the replace land
# in the middle of it.
write_seconds=8
job_file=$test_dir/replace.fio
cat >"$job_file" <<JOB
[global]
ioengine=nbd
uri=$export_uri
rw=randwrite
bsrange=4k-256k
iodepth=16
size=$capacity_bytes
rate=$((capacity_bytes / write_seconds))
verify=crc32c
verify_fatal=1
verify_dump=1
runtime=300

[replace]
JOB

# Runs fio on the job file in the temp dir (fio saves its verify state there) and fails
# unless the job finished without errors and verified data.
# Usage: run_fio NAME [FIO_OPTIONS...].
run_fio() {
    local name=$1
    shift
    local output=$test_dir/$name.json
    if ! (cd "$test_dir" && timeout --kill-after=10 300 fio --output-format=json \
        --output="$output" "$@" "$job_file") >"$test_dir/$name.out" 2>&1; then
        cat "$test_dir/$name.out" "$output" >&2 || true
        fail_with_server_log "fio ($name) failed (verify errors are fatal)"
    fi
    "$PYTHON" - "$output" "$name" "$capacity_bytes" <<'PY' || fail "fio ($name) did not verify the whole export"
import json
import sys

output, name, capacity = sys.argv[1], sys.argv[2], int(sys.argv[3])
jobs = json.load(open(output))["jobs"]
if len(jobs) != 1:
    sys.exit(f"fio ({name}) reported {len(jobs)} jobs, expected 1")
job = jobs[0]
written, verified = job["write"]["io_bytes"], job["read"]["io_bytes"]
print(f"fio ({name}): wrote {written} bytes, verified {verified} bytes")
if job["error"] != 0:
    sys.exit(f"fio ({name}) reported error {job['error']}")
if verified != capacity:
    sys.exit(f"fio ({name}) verified {verified} bytes, expected the whole export of {capacity}")
PY
}

run_fio write-and-verify &
fio_pid=$!
sleep 2
expect_server_running
process_running "$fio_pid" || fail "fio ended before the fail; its write phase was expected to last $write_seconds s"
old_member=${members[failed_role]}
run_admin fail "$old_member"
save_status
expect_member_state "$old_member" faulty
sleep 1
new_member=$test_dir/new1
make_member_file "$new_member"
run_admin replace "$old_member" "$new_member"
progress=$(wait_for_rebuild_start)
note "rebuild onto $new_member running at progress $progress"
process_running "$fio_pid" || fail "fio ended before the replace; the rebuild did not overlap its writes"

fio_status=0
wait "$fio_pid" || fio_status=$?
((fio_status == 0)) || fail "fio with verify failed while member $failed_role was failed and replaced"
wait_for_array_state optimal
expect_member_state "$new_member" active
expect_member_state "$old_member" absent
for path in "${members[@]}"; do
    [[ $path == "$old_member" ]] && continue
    expect_member_state "$path" active
done

run_fio verify-optimal --verify_only
for role in "${later_failed_roles[@]}"; do
    run_admin fail "${members[role]}"
done
expect_array_state degraded
run_fio verify-degraded --verify_only
expect_server_running
stop_server
note "passed"
