# SPDX-License-Identifier: Apache-2.0
# Shared helpers for the integration tests. A test script sources this file, then calls
#     init_test "$@"            # ECRAID_BINARY CONFIG: temp dir, EXIT trap, configuration
#     create_array              # formats the members and sets capacity_bytes
#     start_server [ARGS...]    # serves the array on a unix socket and sets export_uri
#
# Everything a test sets up (the server, FUSE mounts, loop devices, file system mounts) is
# registered with `defer` and undone by the EXIT trap, last registered first, on success
# and on failure alike. Servers are stopped by PID: SIGTERM, a wait, then SIGKILL.
#
# Exit codes follow CTest: 0 passed, 77 skipped (a tool or privilege is missing), anything
# else failed. Environment:
#     ECRAID_TEST_SEED=N   seed for shuffles and the Python edge-case test (default: random)
#     ECRAID_TEST_KEEP=1   keep the temp dir (members, images, server logs) after the test

set -euo pipefail

readonly SKIP_EXIT_CODE=77
# The interpreter that has the libnbd bindings; the first python3 on PATH may lack them.
readonly PYTHON=/usr/bin/python3
TEST_SOURCE_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly TEST_SOURCE_DIR
# Seconds a server gets to stop after SIGTERM before it is killed.
readonly SERVER_STOP_TIMEOUT_SECONDS=30
# Seconds a server gets to accept connections after it starts.
readonly SERVER_START_TIMEOUT_SECONDS=30

test_name=$(basename "$0" .sh)
test_dir=
cleanup_actions=()

# Prints a progress line; CTest shows it with --output-on-failure or -V.
note() {
    echo "[$test_name] $*" >&2
}

# Reports a failure and exits 1. During the EXIT trap it only reports, so that the
# remaining cleanup still runs.
fail() {
    echo "[$test_name] FAILED: $*" >&2
    if [[ -n ${in_cleanup:-} ]]; then
        return 1
    fi
    exit 1
}

skip() {
    echo "[$test_name] SKIPPED: $*" >&2
    exit "$SKIP_EXIT_CODE"
}

# Registers a command for the EXIT trap. Commands run in reverse order of registration.
defer() {
    cleanup_actions+=("$(printf '%q ' "$@")")
}

run_cleanup() {
    local status=$?
    set +e
    in_cleanup=1
    local index
    for ((index = ${#cleanup_actions[@]} - 1; index >= 0; index--)); do
        eval "${cleanup_actions[index]}"
    done
    exit "$status"
}

# Exits 77 unless every named command is on PATH.
require_tools() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 || skip "$tool is not installed"
    done
}

require_python_nbd() {
    [[ -x $PYTHON ]] || skip "$PYTHON is not installed"
    "$PYTHON" -c 'import nbd' 2>/dev/null ||
        skip "$PYTHON cannot import nbd (install python3-libnbd)"
}

require_root() {
    [[ $EUID -eq 0 ]] || skip "needs root (loop devices and mount), running as uid $EUID"
}

# Prints a value from a JSON file, for example `json_get info.json exports 0 export-size`.
# Strings print bare, everything else as JSON (true, false, null, numbers).
json_get() {
    "$PYTHON" - "$@" <<'EOF'
import json
import sys

value = json.load(open(sys.argv[1]))
for key in sys.argv[2:]:
    value = value[int(key)] if isinstance(value, list) else value[key]
print(value if isinstance(value, str) else json.dumps(value))
EOF
}

# Fails unless the file contains the fixed string, printing the file on failure.
expect_contains() {
    local file=$1 text=$2
    if ! grep -qF -- "$text" "$file"; then
        echo "----- $file -----" >&2
        cat "$file" >&2
        fail "expected '$text' in $file"
    fi
}

# Sets the shape of one of the array configurations that every scenario runs on:
#     level_args          create options for the level
#     member_count        number of members
#     member_size         size of each member file, so that the capacity is at least 256 MiB
#     data_member_count   members' worth of data in the capacity (capacity / data per member)
#     tolerated_roles     roles that can be lost together while the data stays readable
#     fatal_roles         tolerated_roles plus one role more, so the array cannot assemble
# raid10 pairs roles 2g and 2g + 1, so its tolerated set takes one role from each pair.
load_config() {
    case $1 in
        raid0)
            level_args=(--level raid0) member_count=4 member_size=72M data_member_count=4
            tolerated_roles=() fatal_roles=(2)
            ;;
        raid1)
            level_args=(--level raid1) member_count=3 member_size=264M data_member_count=1
            tolerated_roles=(0 2) fatal_roles=(0 1 2)
            ;;
        raid10)
            level_args=(--level raid10) member_count=4 member_size=136M data_member_count=2
            tolerated_roles=(0 3) fatal_roles=(0 2 3)
            ;;
        raid5)
            level_args=(--level raid5) member_count=4 member_size=96M data_member_count=3
            tolerated_roles=(1) fatal_roles=(1 3)
            ;;
        raid6)
            level_args=(--level raid6) member_count=6 member_size=72M data_member_count=4
            tolerated_roles=(0 4) fatal_roles=(0 2 4)
            ;;
        rs_4_2)
            level_args=(--level rs --data 4 --parity 2) member_count=6 member_size=72M
            data_member_count=4 tolerated_roles=(2 5) fatal_roles=(1 2 5)
            ;;
        rs_8_3)
            level_args=(--level rs --data 8 --parity 3) member_count=11 member_size=40M
            data_member_count=8 tolerated_roles=(0 5 10) fatal_roles=(0 3 5 10)
            ;;
        *)
            fail "unknown configuration '$1': expected raid0, raid1, raid10, raid5, raid6, rs_4_2 or rs_8_3"
            ;;
    esac

    members=()
    local role
    for ((role = 0; role < member_count; role++)); do
        members+=("$test_dir/m$role")
    done
}

# Checks the arguments, makes the temp dir, installs the EXIT trap and loads the
# configuration. Usage: init_test ECRAID_BINARY [CONFIG].
init_test() {
    [[ $# -ge 1 ]] || fail "usage: $0 ECRAID_BINARY [CONFIG]"
    ecraid=$1
    [[ -x $ecraid ]] || fail "ecraid binary $ecraid is missing or not executable"
    test_config=${2:-}
    if [[ -n $test_config ]]; then
        test_name+=".$test_config"
    fi

    test_seed=${ECRAID_TEST_SEED:-$((RANDOM * 32768 + RANDOM))}
    RANDOM=$test_seed
    note "seed $test_seed (set ECRAID_TEST_SEED to repeat)"

    trap run_cleanup EXIT
    trap 'fail "interrupted by a signal"' INT TERM HUP
    test_dir=$(mktemp -d "${TMPDIR:-/tmp}/ecraid-it.XXXXXX")
    if [[ ${ECRAID_TEST_KEEP:-0} == 1 ]]; then
        note "keeping $test_dir"
    else
        defer rm -rf "$test_dir"
    fi

    array_name=it-${test_config:-cli}
    socket_path=$test_dir/nbd.sock
    # Every server gets its own control socket, because the default path is shared by all
    # servers on the host.
    control_socket_path=$test_dir/control.sock
    # sun_path has room for 108 bytes, including the terminating NUL.
    ((${#control_socket_path} < 108)) ||
        fail "socket path $control_socket_path is too long for a unix socket; set a shorter TMPDIR"
    server_pid=
    server_log=
    defer stop_server_quietly
    if [[ -n $test_config ]]; then
        load_config "$test_config"
    fi
}

# Formats the members as a new array and sets capacity_bytes from `ecraid inspect --json`,
# after checking it against the capacity that create printed and against the layout.
create_array() {
    local output=$test_dir/create.out
    if ! "$ecraid" create "${level_args[@]}" --size "$member_size" --name "$array_name" \
        "${members[@]}" >"$output" 2>"$test_dir/create.err"; then
        cat "$output" "$test_dir/create.err" >&2
        fail "ecraid create ${level_args[*]} failed"
    fi

    "$ecraid" inspect --json "${members[0]}" >"$test_dir/inspect.json"
    capacity_bytes=$(json_get "$test_dir/inspect.json" superblock capacity_bytes)
    local printed_bytes
    printed_bytes=$(awk '$1 == "capacity" { print $2 }' "$output")
    [[ $printed_bytes == "$capacity_bytes" ]] ||
        fail "create printed capacity '$printed_bytes' but inspect reports $capacity_bytes"

    local member_data_bytes
    member_data_bytes=$(json_get "$test_dir/inspect.json" superblock member_data_bytes_used)
    ((capacity_bytes == member_data_bytes * data_member_count)) ||
        fail "capacity $capacity_bytes is not $data_member_count x $member_data_bytes data bytes per member"
    note "created ${level_args[*]} with $member_count members of $member_size: capacity $capacity_bytes bytes"
}

# Succeeds when the PID is a live process, not a zombie waiting to be reaped.
process_running() {
    local state
    state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $state && $state != Z ]]
}

# Starts `ecraid serve` in the background on $socket_path and $control_socket_path with the
# members in $serve_members (default: $members) and the given extra options, then waits
# until the socket completes an NBD handshake. Sets server_pid, server_log and export_uri.
start_server() {
    local paths=("${members[@]}")
    if [[ -n ${serve_members+set} ]]; then
        paths=("${serve_members[@]}")
    fi
    [[ -z $server_pid ]] || fail "start_server: server $server_pid is still running"

    server_start_count=$((${server_start_count:-0} + 1))
    server_log=$test_dir/serve.$server_start_count.err
    local stdout_path=$test_dir/serve.$server_start_count.out
    rm -f "$socket_path"
    "$ecraid" serve --socket "$socket_path" --control "$control_socket_path" "$@" "${paths[@]}" \
        >"$stdout_path" 2>"$server_log" &
    server_pid=$!
    export_uri="nbd+unix:///$array_name?socket=$socket_path"

    local deadline=$((SECONDS + SERVER_START_TIMEOUT_SECONDS))
    until [[ -S $socket_path ]] && nbdinfo --size "$export_uri" >/dev/null 2>&1; do
        if ! process_running "$server_pid"; then
            local status=0
            wait "$server_pid" || status=$?
            server_pid=
            cat "$server_log" >&2
            fail "ecraid serve exited with status $status before accepting connections"
        fi
        if ((SECONDS >= deadline)); then
            cat "$server_log" >&2
            fail "ecraid serve did not accept connections on $socket_path within ${SERVER_START_TIMEOUT_SECONDS} s"
        fi
        sleep 0.05
    done

    # serve prints the URI after it starts listening (and after adding --spare devices), so
    # the line can come a moment after the first handshake.
    until [[ -s $stdout_path ]] || ((SECONDS >= deadline)) || ! process_running "$server_pid"; do
        sleep 0.05
    done
    local printed_uri
    printed_uri=$(head -n 1 "$stdout_path")
    [[ $printed_uri == "$export_uri" ]] ||
        fail "ecraid serve printed URI '$printed_uri', expected '$export_uri'"
    if [[ ${ECRAID_TEST_EXPECT_IN_MEMORY:-0} == 1 ]]; then
        # The in-memory variants of a scenario must exercise the copies made by the workers.
        grep -q "is a file in memory" "$server_log" ||
            fail_with_server_log "the members in $test_dir were expected to be files in memory"
    fi
    note "server $server_pid serving $export_uri"
}

# Sends SIGTERM to the PID, waits, then sends SIGKILL. Returns the process's exit status.
terminate_process() {
    local pid=$1 timeout_seconds=$2
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout_seconds))
    while process_running "$pid" && ((SECONDS < deadline)); do
        sleep 0.05
    done
    if process_running "$pid"; then
        note "process $pid still running ${timeout_seconds} s after SIGTERM; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    local status=0
    wait "$pid" 2>/dev/null || status=$?
    return "$status"
}

# Stops the server this test started and fails unless it exits with status 0.
stop_server() {
    [[ -n $server_pid ]] || fail "stop_server: no server is running"
    local pid=$server_pid status=0
    server_pid=
    terminate_process "$pid" "$SERVER_STOP_TIMEOUT_SECONDS" || status=$?
    if ((status != 0)); then
        cat "$server_log" >&2
        fail "ecraid serve (pid $pid) exited with status $status after SIGTERM, expected 0"
    fi
    note "server $pid stopped cleanly"
}

# Cleanup form of stop_server: stops the server if one is running and ignores its status.
# It acts only on $server_pid, which contains a PID until that process is reaped, so it never
# signals a PID that the system may have reused.
stop_server_quietly() {
    if [[ -n $server_pid ]]; then
        terminate_process "$server_pid" "$SERVER_STOP_TIMEOUT_SECONDS" || true
        server_pid=
    fi
}

# Prints the log of the server started last, then fails with the message.
fail_with_server_log() {
    if [[ -n $server_log && -f $server_log ]]; then
        echo "----- $server_log -----" >&2
        tail -n 50 "$server_log" >&2
    fi
    fail "$@"
}

# Fails unless the server started last is still running, printing its log otherwise.
expect_server_running() {
    if ! process_running "$server_pid"; then
        cat "$server_log" >&2
        fail "ecraid serve (pid $server_pid) is no longer running"
    fi
}

# Writes a file of random bytes. Usage: make_random_file PATH MIB.
make_random_file() {
    head -c "$(($2 * 1024 * 1024))" /dev/urandom >"$1"
}

# Sets `shuffled` to the arguments in a random order drawn from the seeded $RANDOM.
shuffle() {
    shuffled=("$@")
    local index other swap
    for ((index = ${#shuffled[@]} - 1; index > 0; index--)); do
        other=$((RANDOM % (index + 1)))
        swap=${shuffled[index]}
        shuffled[index]=${shuffled[other]}
        shuffled[other]=$swap
    done
}

# Exits 77 unless this process can use FUSE and loop devices (root, /dev/fuse, a free
# loop device).
require_fuse_and_loop() {
    require_root
    require_tools nbdfuse fusermount3 losetup mount umount mountpoint
    [[ -c /dev/fuse ]] || skip "/dev/fuse is missing, so FUSE is unavailable"
    { : <>/dev/fuse; } 2>/dev/null || skip "cannot open /dev/fuse"
    [[ -e /dev/loop-control ]] || skip "/dev/loop-control is missing, so loop devices are unavailable"
    losetup -f >/dev/null 2>&1 || skip "no free loop device (losetup -f failed)"
}

# Exposes the export as the file $fuse_dir/nbd through nbdfuse, running in the background
# until unmount_nbdfuse. Sets fuse_dir and nbdfuse_pid.
mount_nbdfuse() {
    fuse_dir=$test_dir/fuse
    mkdir -p "$fuse_dir"
    local pid_file=$test_dir/nbdfuse.pid
    rm -f "$pid_file"
    nbdfuse -P "$pid_file" "$fuse_dir" "$export_uri" 2>"$test_dir/nbdfuse.err" &
    nbdfuse_pid=$!
    if [[ -z ${nbdfuse_cleanup_registered:-} ]]; then
        defer unmount_nbdfuse_quietly
        nbdfuse_cleanup_registered=1
    fi

    # nbdfuse writes the PID file once the mount is ready to serve.
    local deadline=$((SECONDS + 30))
    until [[ -s $pid_file ]]; do
        if ! process_running "$nbdfuse_pid"; then
            cat "$test_dir/nbdfuse.err" >&2
            nbdfuse_pid=
            fail "nbdfuse exited before the mount was ready"
        fi
        ((SECONDS < deadline)) || fail "nbdfuse did not become ready within 30 s"
        sleep 0.05
    done
    [[ -f $fuse_dir/nbd ]] || fail "nbdfuse did not create $fuse_dir/nbd"
    note "nbdfuse $nbdfuse_pid exposes the export as $fuse_dir/nbd"
}

# Unmounts the nbdfuse mount (fusermount3 -u ends nbdfuse) and waits for nbdfuse to exit.
unmount_nbdfuse() {
    [[ -n ${nbdfuse_pid:-} ]] || return 0
    local deadline=$((SECONDS + 30))
    # The mount stays busy for a moment after its loop device is detached.
    until fusermount3 -u "$fuse_dir" 2>/dev/null; do
        if ! mountpoint -q "$fuse_dir"; then
            break
        fi
        if ((SECONDS >= deadline)); then
            fusermount3 -u "$fuse_dir" || true
            fail "could not unmount the nbdfuse mount $fuse_dir within 30 s"
        fi
        sleep 0.2
    done
    local status=0
    terminate_after "$nbdfuse_pid" 30 || status=$?
    nbdfuse_pid=
    ((status == 0)) || fail "nbdfuse exited with status $status"
}

unmount_nbdfuse_quietly() {
    [[ -n ${nbdfuse_pid:-} ]] || return 0
    fusermount3 -u -z "$fuse_dir" 2>/dev/null || true
    terminate_after "$nbdfuse_pid" 30 || true
    nbdfuse_pid=
}

# Waits up to the timeout for the PID to exit by itself, then stops it like
# terminate_process. Returns the process's exit status.
terminate_after() {
    local pid=$1 timeout_seconds=$2
    local deadline=$((SECONDS + timeout_seconds))
    while process_running "$pid" && ((SECONDS < deadline)); do
        sleep 0.05
    done
    terminate_process "$pid" "$timeout_seconds"
}

# Attaches a free loop device to the file. Sets loop_device. Usage: attach_loop FILE [-r].
attach_loop() {
    loop_device=$(losetup -f --show "$@") || fail "losetup could not attach $1"
    if [[ -z ${loop_cleanup_registered:-} ]]; then
        defer detach_loop
        loop_cleanup_registered=1
    fi
    note "attached $loop_device to $1"
}

# Detaches the loop device this test attached, if any.
detach_loop() {
    [[ -n ${loop_device:-} ]] || return 0
    losetup -d "$loop_device" || note "losetup -d $loop_device failed"
    loop_device=
}

# Mounts a device on $test_dir/mnt. Sets mount_dir. Usage: mount_filesystem DEVICE [OPTIONS].
mount_filesystem() {
    mount_dir=$test_dir/mnt
    mkdir -p "$mount_dir"
    mount "$@" "$mount_dir" || fail "mount $* $mount_dir failed"
    mounted=1
    if [[ -z ${mount_cleanup_registered:-} ]]; then
        defer unmount_filesystem_quietly
        mount_cleanup_registered=1
    fi
}

unmount_filesystem() {
    [[ -n ${mounted:-} ]] || return 0
    umount "$mount_dir" || fail "umount $mount_dir failed"
    mounted=
}

# Cleanup form of unmount_filesystem: falls back to a lazy unmount so that the loop
# device and the nbdfuse mount under it can still go.
unmount_filesystem_quietly() {
    [[ -n ${mounted:-} ]] || return 0
    umount "$mount_dir" 2>/dev/null || umount -l "$mount_dir"
    mounted=
}

# ----- Admin commands, status and rebuilds -----

# Seconds a rebuild, a state change or a resync may take in the tests that wait for one.
# Unthrottled rebuilds of the test members take a few seconds.
readonly ARRAY_WAIT_TIMEOUT_SECONDS=120

# Runs an ecraid admin command (fail, replace, add-spare, remove, scrub) against the
# running server and fails with its output unless it succeeds.
# Usage: run_admin COMMAND [ARGS...], for example `run_admin fail "${members[1]}"`.
run_admin() {
    local command=$1
    shift
    local output=$test_dir/admin.out
    if ! "$ecraid" "$command" --control "$control_socket_path" "$@" >"$output" 2>&1; then
        cat "$output" >&2
        fail_with_server_log "ecraid $command $* failed"
    fi
    note "ecraid $command $*: $(head -n 1 "$output")"
}

# Saves `ecraid status --json` of the running server to $status_file, which is always
# $test_dir/status.json, so that the functions that read it also work after a save_status
# in a subshell such as $(array_state).
save_status() {
    status_file=$test_dir/status.json
    "$ecraid" status --control "$control_socket_path" --json >"$status_file" 2>"$test_dir/status.err" ||
        fail_with_server_log "ecraid status failed: $(cat "$test_dir/status.err")"
}

# Prints the array state from the running server: optimal, degraded, rebuilding or failed.
array_state() {
    save_status
    json_get "$status_file" state
}

# Prints a field of the member with the given path from the last save_status, or "absent"
# when status lists no member with that path. Usage: member_field PATH KEY [KEY...], for
# example `member_field "$path" state` or `member_field "$path" errors read`.
member_field() {
    "$PYTHON" - "$test_dir/status.json" "$@" <<'PY'
import json
import sys

status = json.load(open(sys.argv[1]))
path, keys = sys.argv[2], sys.argv[3:]
matches = [member for member in status["members"] if member["path"] == path]
if len(matches) > 1:
    sys.exit(f"status lists {len(matches)} members with the path {path}")
if not matches:
    print("absent")
    sys.exit(0)
value = matches[0]
for key in keys:
    value = value[key]
print(value if isinstance(value, str) else json.dumps(value))
PY
}

# Prints the path of the member with the given role from the last save_status, or "absent".
member_path_of_role() {
    "$PYTHON" - "$test_dir/status.json" "$1" <<'PY'
import json
import sys

status = json.load(open(sys.argv[1]))
paths = [member["path"] for member in status["members"] if member["role"] == sys.argv[2]]
print(paths[0] if len(paths) == 1 else "absent")
PY
}

# Fails, printing the status, unless the member with the path has the state (active,
# faulty, rebuilding, spare, missing, or absent when status does not list it). Uses the
# last save_status.
expect_member_state() {
    local path=$1 expected=$2 actual
    actual=$(member_field "$path" state)
    if [[ $actual != "$expected" ]]; then
        cat "$test_dir/status.json" >&2
        fail_with_server_log "member $path is $actual, expected $expected"
    fi
}

# Fails, printing the status, unless the running server reports the array state.
expect_array_state() {
    local expected=$1 actual
    status_file=$test_dir/status.json
    actual=$(array_state)
    if [[ $actual != "$expected" ]]; then
        cat "$status_file" >&2
        fail_with_server_log "array state is $actual, expected $expected"
    fi
}

# Polls the running server until the array state is the expected one, then saves that
# status. Fails after the timeout. Usage: wait_for_array_state STATE [TIMEOUT_SECONDS].
wait_for_array_state() {
    local expected=$1 timeout_seconds=${2:-$ARRAY_WAIT_TIMEOUT_SECONDS}
    local deadline=$((SECONDS + timeout_seconds)) actual
    status_file=$test_dir/status.json
    while true; do
        expect_server_running
        actual=$(array_state)
        [[ $actual != "$expected" ]] || return 0
        if ((SECONDS >= deadline)); then
            cat "$status_file" >&2
            fail_with_server_log "array state is still $actual after $timeout_seconds s, expected $expected"
        fi
        sleep 0.1
    done
}

# Polls the running server until the member with the path has the state, then saves that
# status. Fails after the timeout. Usage: wait_for_member_state PATH STATE [TIMEOUT_SECONDS].
wait_for_member_state() {
    local path=$1 expected=$2 timeout_seconds=${3:-$ARRAY_WAIT_TIMEOUT_SECONDS}
    local deadline=$((SECONDS + timeout_seconds)) actual
    status_file=$test_dir/status.json
    while true; do
        expect_server_running
        save_status
        actual=$(member_field "$path" state)
        [[ $actual != "$expected" ]] || return 0
        if ((SECONDS >= deadline)); then
            cat "$status_file" >&2
            fail_with_server_log "member $path is still $actual after $timeout_seconds s, expected $expected"
        fi
        sleep 0.1
    done
}

# Polls the running server until its status shows a rebuild, then saves that status and
# prints the rebuild's progress (0 to 1). Fails if the array is optimal again first, that
# is, if the rebuild never showed or finished between two polls.
wait_for_rebuild_start() {
    local deadline=$((SECONDS + ARRAY_WAIT_TIMEOUT_SECONDS)) state
    status_file=$test_dir/status.json
    while true; do
        expect_server_running
        state=$(array_state)
        if [[ $state == rebuilding ]] && json_get "$status_file" rebuild progress >/dev/null 2>&1; then
            json_get "$status_file" rebuild progress
            return 0
        fi
        ((SECONDS < deadline)) || fail_with_server_log "no rebuild started within $ARRAY_WAIT_TIMEOUT_SECONDS s (state $state)"
        sleep 0.05
    done
}

# Stops the running server with SIGKILL, as a crash would, and reaps it.
kill_server() {
    [[ -n $server_pid ]] || fail "kill_server: no server is running"
    local pid=$server_pid
    server_pid=
    kill -KILL "$pid" || fail "could not send SIGKILL to ecraid serve (pid $pid)"
    wait "$pid" 2>/dev/null || true
    note "server $pid killed with SIGKILL"
}

# Prints the server log lines that match an extended regular expression, failing when none
# does. Usage: expect_log_line PATTERN [LOG].
expect_log_line() {
    local pattern=$1 log=${2:-$server_log}
    if ! grep -E -- "$pattern" "$log"; then
        echo "----- $log -----" >&2
        cat "$log" >&2
        fail "no line of $log matches /$pattern/"
    fi
}

# Creates an empty member file of $member_size, for replace, add-spare and --spare.
make_member_file() {
    truncate -s "$member_size" "$1" || fail "could not create member file $1"
}

# Writes a file of random bytes as large as the whole export into the export and flushes.
# Sets image to its path. Usage: write_random_image [NAME].
write_random_image() {
    image=$test_dir/${1:-image}
    head -c "$capacity_bytes" /dev/urandom >"$image"
    timeout --kill-after=10 300 nbdcopy --flush "$image" "$export_uri" ||
        fail_with_server_log "nbdcopy of $image into the export failed"
}

# Reads the whole export with nbdcopy and fails unless it equals the file, which has the
# size of the export. Usage: expect_export_equals FILE WHEN, where WHEN completes the
# sentence "the export differs from FILE WHEN".
expect_export_equals() {
    local expected=$1 when=$2 copy=$test_dir/readback
    rm -f "$copy"
    timeout --kill-after=10 300 nbdcopy "$export_uri" "$copy" ||
        fail_with_server_log "nbdcopy out of the export failed $when"
    if ! cmp "$expected" "$copy" >&2; then
        fail_with_server_log "the export differs from $expected $when"
    fi
    rm -f "$copy"
    note "the export equals $(basename "$expected") $when"
}

# ----- Fault-injecting members -----
#
# A fault-injecting member is a plain file served by nbdkit's file plugin through its error
# and delay filters, and mounted back as a regular file with nbdfuse. The test gives the
# mounted file to ecraid create and serve as the member, so the real server meets real I/O
# errors while it runs. Faults are switched by trigger files, which nbdkit's error filter
# checks on every request:
#     $fault_dir/ROLE.read-errors    while it exists, every read of the member fails with EIO
#     $fault_dir/ROLE.write-errors   while it exists, every write, zero and trim fails
# NOTE: the error filter of nbdkit 1.32 applies to whole request types, not to offset
# ranges, so a test chooses the offsets by sending only the requests it means while a
# trigger exists.
# A delay (milliseconds per read and write) is fixed when the member starts.
# pause_fault_member makes every later request hang until resume_fault_member (nbdkit's
# pause filter), and vanish_fault_member stops nbdkit, so that every later request to the
# member fails.

# Exits 77 unless nbdkit with its error and delay filters, nbdfuse and FUSE are available.
require_fault_injection() {
    require_root
    require_tools nbdkit nbdfuse fusermount3 mountpoint
    [[ -c /dev/fuse ]] || skip "/dev/fuse is missing, so FUSE is unavailable"
    { : <>/dev/fuse; } 2>/dev/null || skip "cannot open /dev/fuse"
    local filter
    for filter in error delay pause; do
        nbdkit --filter="$filter" null --version >/dev/null 2>&1 ||
            skip "nbdkit has no $filter filter (install nbdkit's filters)"
    done
}

# Replaces members[ROLE] with a fault-injecting member whose data lives in
# $fault_dir/ROLE.backing. Usage: start_fault_member ROLE [DELAY_MS].
start_fault_member() {
    local role=$1 delay_ms=${2:-0}
    fault_dir=$test_dir/faults
    mkdir -p "$fault_dir"
    if [[ -z ${fault_cleanup_registered:-} ]]; then
        declare -gA fault_nbdkit_pids=() fault_nbdfuse_pids=()
        defer stop_fault_members
        fault_cleanup_registered=1
    fi

    local base=$fault_dir/$role
    local mount_dir=$base.mnt nbdkit_socket=$base.sock
    rm -f "$base.read-errors" "$base.write-errors" "$base.nbdkit.pid" "$base.nbdfuse.pid"
    truncate -s "$member_size" "$base.backing"
    mkdir -p "$mount_dir"

    nbdkit --foreground --unix "$nbdkit_socket" --pidfile "$base.nbdkit.pid" \
        --filter=error --filter=delay --filter=pause file file="$base.backing" \
        pause-control="$base.pause.sock" \
        error-pread=EIO error-pread-rate=100% error-pread-file="$base.read-errors" \
        error-pwrite=EIO error-pwrite-rate=100% error-pwrite-file="$base.write-errors" \
        error-zero=EIO error-zero-rate=100% error-zero-file="$base.write-errors" \
        error-trim=EIO error-trim-rate=100% error-trim-file="$base.write-errors" \
        delay-read="${delay_ms}ms" delay-write="${delay_ms}ms" \
        2>"$base.nbdkit.err" &
    fault_nbdkit_pids[$role]=$!
    wait_for_pid_file "$base.nbdkit.pid" "${fault_nbdkit_pids[$role]}" "nbdkit for member $role" \
        "$base.nbdkit.err"

    nbdfuse -P "$base.nbdfuse.pid" "$mount_dir" "nbd+unix:///?socket=$nbdkit_socket" \
        2>"$base.nbdfuse.err" &
    fault_nbdfuse_pids[$role]=$!
    wait_for_pid_file "$base.nbdfuse.pid" "${fault_nbdfuse_pids[$role]}" "nbdfuse for member $role" \
        "$base.nbdfuse.err"
    [[ -f $mount_dir/nbd ]] || fail "nbdfuse did not create $mount_dir/nbd"

    members[role]=$mount_dir/nbd
    note "member $role is fault-injecting: ${members[role]} (nbdkit ${fault_nbdkit_pids[$role]}, nbdfuse ${fault_nbdfuse_pids[$role]}, delay ${delay_ms} ms)"
}

# Waits until a process writes its PID file, which nbdkit and nbdfuse do once they serve.
# Usage: wait_for_pid_file PID_FILE PID DESCRIPTION ERROR_LOG.
wait_for_pid_file() {
    local pid_file=$1 pid=$2 description=$3 error_log=$4
    local deadline=$((SECONDS + 30))
    until [[ -s $pid_file ]]; do
        if ! process_running "$pid"; then
            cat "$error_log" >&2
            fail "$description exited before it was ready"
        fi
        ((SECONDS < deadline)) || fail "$description did not become ready within 30 s"
        sleep 0.05
    done
}

# Makes requests to the fault-injecting member fail with EIO until clear_faults.
# Usage: inject_faults ROLE read|write|all.
inject_faults() {
    local base=$fault_dir/$1
    case $2 in
        read) touch "$base.read-errors" ;;
        write) touch "$base.write-errors" ;;
        all) touch "$base.read-errors" "$base.write-errors" ;;
        *) fail "inject_faults: unknown fault kind '$2', expected read, write or all" ;;
    esac
    note "member $1: $2 requests now fail with EIO"
}

clear_faults() {
    rm -f "$fault_dir/$1.read-errors" "$fault_dir/$1.write-errors"
    note "member $1: faults cleared"
}

# Sends a command to the pause filter of a fault-injecting member and waits for its reply.
# The command p pauses (nbdkit holds every later request) and r resumes.
send_pause_command() {
    local role=$1 command=$2
    "$PYTHON" - "$fault_dir/$role.pause.sock" "$command" <<'PY' ||
import socket
import sys

path, command = sys.argv[1], sys.argv[2]
with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as control:
    control.settimeout(60)
    control.connect(path)
    control.sendall(command.encode())
    answer = control.recv(1).decode()
if answer != command.upper():
    sys.exit(f"the pause filter answered {answer!r} to {command!r}, expected {command.upper()!r}")
PY
        fail "the pause filter of member $role did not take the command '$command'"
}

# Makes every later request to the fault-injecting member hang until resume_fault_member.
pause_fault_member() {
    send_pause_command "$1" p
    note "member $1: requests now hang"
}

resume_fault_member() {
    send_pause_command "$1" r
    note "member $1: requests resumed"
}

# Stops the nbdkit behind a fault-injecting member, so that the member vanishes: nbdfuse
# stays mounted and fails every later request.
vanish_fault_member() {
    local role=$1
    [[ -n ${fault_nbdkit_pids[$role]:-} ]] || fail "member $role has no running nbdkit"
    terminate_process "${fault_nbdkit_pids[$role]}" 30 || true
    fault_nbdkit_pids[$role]=
    note "member $role vanished: its nbdkit is stopped"
}

# Cleanup: stops the server first, because it holds the mounted members open, then
# unmounts every nbdfuse mount (which ends nbdfuse) and stops every nbdkit.
stop_fault_members() {
    stop_server_quietly
    local role pid
    for role in "${!fault_nbdfuse_pids[@]}"; do
        pid=${fault_nbdfuse_pids[$role]}
        [[ -n $pid ]] || continue
        fusermount3 -u "$fault_dir/$role.mnt" 2>/dev/null || fusermount3 -u -z "$fault_dir/$role.mnt" 2>/dev/null
        terminate_after "$pid" 30 || true
        fault_nbdfuse_pids[$role]=
    done
    for role in "${!fault_nbdkit_pids[@]}"; do
        pid=${fault_nbdkit_pids[$role]}
        [[ -n $pid ]] || continue
        terminate_process "$pid" 30 || true
        fault_nbdkit_pids[$role]=
    done
}

# ----- Ranges of the export -----

# Writes the bytes of a file into the export at a byte offset, flushes, and copies the same
# bytes into the local image at that offset, so that the image stays what the export should
# return. Usage: write_export_range FILE OFFSET IMAGE.
write_export_range() {
    local file=$1 offset=$2 image_path=$3
    "$PYTHON" - "$export_uri" "$file" "$offset" <<'PY' || fail_with_server_log "writing $file at offset $offset of the export failed"
import sys

import nbd

handle = nbd.NBD()
handle.connect_uri(sys.argv[1])
handle.pwrite(open(sys.argv[2], "rb").read(), int(sys.argv[3]))
handle.flush()
handle.shutdown()
PY
    dd if="$file" of="$image_path" bs=64K oflag=seek_bytes seek="$offset" conv=notrunc status=none
}

# Sends an NBD FLUSH to the export. After a flush the server clears the write-intent bits
# of idle regions, so the next write into them writes the bitmap first.
flush_export() {
    "$PYTHON" - "$export_uri" <<'PY' || fail_with_server_log "NBD FLUSH of the export failed"
import sys

import nbd

handle = nbd.NBD()
handle.connect_uri(sys.argv[1])
handle.flush()
handle.shutdown()
PY
}

# Reads LENGTH bytes of the export at OFFSET with one connection and fails unless they
# equal the same bytes of the image. Usage: expect_export_range_equals IMAGE OFFSET LENGTH.
expect_export_range_equals() {
    "$PYTHON" - "$export_uri" "$@" <<'PY' || fail_with_server_log "the export at offset $2, length $3 does not equal $1"
import sys

import nbd

uri, image_path, offset, length = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with open(image_path, "rb") as image:
    image.seek(offset)
    expected = image.read(length)
handle = nbd.NBD()
handle.connect_uri(uri)
step = 1024 * 1024
for position in range(0, length, step):
    size = min(step, length - position)
    actual = handle.pread(size, offset + position)
    if actual != expected[position:position + size]:
        sys.exit(f"bytes {offset + position}..{offset + position + size} differ from the image")
handle.shutdown()
PY
}

# ----- Member bytes, checksum tables, check and scrub -----
#
# These helpers damage member files directly, the way a disk that returns wrong data
# without an error would, through member_io.py. Its O_DIRECT writes reach a running server
# at once, because the server opens its members with O_DIRECT and caches no data blocks.
# The server does cache checksum table pages, so tests change table entries only while the
# array is stopped.

readonly MEMBER_IO=("$PYTHON" "$TEST_SOURCE_DIR/member_io.py")
readonly BLOCK_BYTES=4096
# Seconds a scrub of the test members may take when it runs without a rate limit.
readonly SCRUB_WAIT_TIMEOUT_SECONDS=120

# Sets the layout of the array from `ecraid inspect --json` of every member. It sets:
#     level_name, chunk_bytes, stripe_count, stripe_data_bytes
#     data_count (k), parity_count (m), group_width (k + m), rows_per_chunk (4 KiB blocks)
#     data_offsets[ROLE], checksum_table_offsets[ROLE]   byte offsets in the member file
# Only single-group levels (raid1, raid5, raid6, rs) are supported.
load_member_layout() {
    local fields
    fields=$("$ecraid" inspect --json "${members[0]}" | "$PYTHON" -c '
import json
import sys

superblock = json.load(sys.stdin)["superblock"]
print(superblock["level"], superblock["chunk_bytes"], superblock["member_data_bytes_used"],
      superblock["capacity_bytes"], superblock["data_count"], superblock["parity_count"],
      superblock["member_count"])
') || fail "ecraid inspect --json ${members[0]} failed"
    local member_data_bytes capacity layout_member_count
    read -r level_name chunk_bytes member_data_bytes capacity data_count parity_count \
        layout_member_count <<<"$fields"
    case $level_name in
        raid1 | raid5 | raid6 | rs) ;;
        *) fail "load_member_layout: level $level_name has more than one group per stripe" ;;
    esac
    ((layout_member_count == member_count)) ||
        fail "inspect reports $layout_member_count members, the configuration has $member_count"
    group_width=$((data_count + parity_count))
    stripe_count=$((member_data_bytes / chunk_bytes))
    stripe_data_bytes=$((capacity / stripe_count))
    rows_per_chunk=$((chunk_bytes / BLOCK_BYTES))

    data_offsets=() checksum_table_offsets=()
    local role
    for ((role = 0; role < member_count; role++)); do
        fields=$("$ecraid" inspect --json "${members[role]}" | "$PYTHON" -c '
import json
import sys

layout = json.load(sys.stdin)["superblock"]["layout"]
print(layout["data_offset"], layout["checksum_table_offset"])
') || fail "ecraid inspect --json ${members[role]} failed"
        read -r "data_offsets[role]" "checksum_table_offsets[role]" <<<"$fields"
    done
    note "layout: $level_name k=$data_count m=$parity_count, $stripe_count stripes of $chunk_bytes-byte chunks, data at ${data_offsets[0]}"
}

# Prints the role of the member that stores codeword position POSITION (0..k-1 data, then
# parity or copies) of STRIPE. raid5, raid6 and rs rotate left-symmetrically: position p of
# stripe s lives on member (p - s) mod n. raid1 does not rotate.
# Usage: role_of_position STRIPE POSITION.
role_of_position() {
    local stripe=$1 position=$2
    if [[ $level_name == raid1 ]]; then
        echo "$position"
    else
        echo $(((position - stripe % member_count + member_count) % member_count))
    fi
}

# Prints the codeword positions of STRIPE in the order a client read uses them: first the
# positions a read loads, then those it leaves alone while everything verifies. That is
# data then parity, except for mirrors, which serve stripe s from copy s mod n and keep the
# other copies in reserve.
# Usage: positions=($(positions_in_read_order STRIPE)).
positions_in_read_order() {
    local stripe=$1 index
    for ((index = 0; index < group_width; index++)); do
        if ((data_count == 1)); then
            echo $(((stripe + index) % group_width))
        else
            echo "$index"
        fi
    done
}

# Prints the byte offset in the member file of ROLE of the given 4 KiB row (default 0) of the
# chunk of STRIPE. Usage: chunk_offset ROLE STRIPE [ROW].
chunk_offset() {
    local role=$1 stripe=$2 row=${3:-0}
    echo $((data_offsets[role] + stripe * chunk_bytes + row * BLOCK_BYTES))
}

# Prints the index of a 4 KiB block in the data area, which is its checksum table entry
# and the seed of its checksum. Usage: block_index STRIPE ROW.
block_index() {
    echo $(($1 * rows_per_chunk + $2))
}

# Prints the export offset of data position POSITION (0..k-1) of STRIPE.
# Usage: export_offset STRIPE POSITION.
export_offset() {
    echo $(($1 * stripe_data_bytes + $2 * chunk_bytes))
}

# Damages every 4 KiB block of a byte range of the member file of ROLE: in each block a run of
# 1 to 64 bytes is XORed with non-zero random bytes, so every block changes. The runs
# derive from the test seed. Usage: corrupt_member_range ROLE OFFSET LENGTH.
corrupt_member_range() {
    local role=$1 offset=$2 length=$3
    corruption_count=$((${corruption_count:-0} + 1))
    "${MEMBER_IO[@]}" corrupt "${members[role]}" "$offset" "$length" \
        $((test_seed * 1000 + corruption_count)) ||
        fail "could not corrupt $length bytes at offset $offset of ${members[role]}"
    note "corrupted $((length / BLOCK_BYTES)) block(s) at offset $offset of member $role"
}

# Copies a byte range of the member file of ROLE into $test_dir/NAME and prints that path.
# Usage: saved=$(save_member_range ROLE OFFSET LENGTH NAME).
save_member_range() {
    local role=$1 offset=$2 length=$3 path=$test_dir/$4
    "${MEMBER_IO[@]}" read "${members[role]}" "$offset" "$length" "$path" ||
        fail "could not read $length bytes at offset $offset of ${members[role]}"
    echo "$path"
}

# Fails unless the member file of ROLE at OFFSET contains the bytes of FILE. WHEN completes the
# sentence "member ROLE at OFFSET differs from FILE WHEN".
# Usage: expect_member_range_equals ROLE OFFSET FILE WHEN.
expect_member_range_equals() {
    local role=$1 offset=$2 expected=$3 when=$4 actual=$test_dir/member-range.actual
    "${MEMBER_IO[@]}" read "${members[role]}" "$offset" "$(stat -c %s "$expected")" "$actual" ||
        fail "could not read offset $offset of ${members[role]}"
    if ! cmp "$expected" "$actual" >&2; then
        fail_with_server_log "member $role at offset $offset differs from $(basename "$expected") $when"
    fi
    rm -f "$actual"
}

# Prints the XXH3-64 of the current bytes of data block INDEX of ROLE, seeded with INDEX, as
# 0x and 16 hex digits: the value its checksum table entry should contain.
# Usage: member_block_checksum ROLE INDEX.
member_block_checksum() {
    "${MEMBER_IO[@]}" block-checksum "${members[$1]}" "${data_offsets[$1]}" "$2" ||
        fail "could not compute the checksum of block $2 of ${members[$1]}"
}

# Prints checksum table entry INDEX of ROLE as 0x and 16 hex digits.
# Usage: checksum_entry ROLE INDEX.
checksum_entry() {
    "${MEMBER_IO[@]}" get-entry "${members[$1]}" "${checksum_table_offsets[$1]}" "$2" ||
        fail "could not read checksum table entry $2 of ${members[$1]}"
}

# Stores VALUE as checksum table entry INDEX of ROLE. Only while the array is stopped.
# Usage: set_checksum_entry ROLE INDEX VALUE.
set_checksum_entry() {
    "${MEMBER_IO[@]}" set-entry "${members[$1]}" "${checksum_table_offsets[$1]}" "$2" "$3" ||
        fail "could not write checksum table entry $2 of ${members[$1]}"
}

# Exits 77 unless member_io.py can compute XXH3 checksums with libxxhash.
require_xxhash() {
    local probe=$test_dir/xxhash-probe status=0
    head -c "$BLOCK_BYTES" /dev/zero >"$probe"
    "${MEMBER_IO[@]}" block-checksum "$probe" 0 0 >/dev/null 2>&1 || status=$?
    ((status != SKIP_EXIT_CODE)) || skip "libxxhash cannot be loaded by $PYTHON (install libxxhash0)"
    ((status == 0)) || fail "member_io.py block-checksum failed with status $status"
}

# Runs `ecraid check --json [OPTIONS]` on the stopped array and fails unless it exits with
# EXPECTED_STATUS (0 consistent, 1 damage found, 2 unrecoverable). Saves its output to
# $check_file for check_field. Usage: run_check EXPECTED_STATUS [--repair].
run_check() {
    local expected=$1
    shift
    check_count=$((${check_count:-0} + 1))
    check_file=$test_dir/check.$check_count.json
    local error_log=$test_dir/check.$check_count.err status=0
    timeout --kill-after=10 300 "$ecraid" check --json "$@" "${members[@]}" \
        >"$check_file" 2>"$error_log" || status=$?
    if ((status != expected)); then
        cat "$check_file" "$error_log" >&2
        fail "ecraid check $* exited with status $status, expected $expected"
    fi
    note "ecraid check${*:+ $*}: exit $status, $(check_field result), $(check_field bad_blocks) bad blocks, $(check_field parity_mismatches) parity mismatches"
}

# Prints a field of the last run_check's JSON output. Usage: check_field KEY.
check_field() {
    json_get "$check_file" "$@"
}

# Fails unless a field of the last run_check's output passes the test OPERATOR VALUE, where
# OPERATOR is a test(1) operator (-eq, -ge, ==). Usage: expect_check_field KEY OPERATOR VALUE.
expect_check_field() {
    local key=$1 operator=$2 expected=$3 actual
    actual=$(check_field "$key")
    if ! [ "$actual" "$operator" "$expected" ]; then
        cat "$check_file" >&2
        fail "ecraid check reported $key $actual, expected $operator $expected"
    fi
}

# Saves `ecraid scrub status --json` of the running server to $scrub_file.
save_scrub_status() {
    scrub_file=$test_dir/scrub.json
    "$ecraid" scrub status --control "$control_socket_path" --json >"$scrub_file" \
        2>"$test_dir/scrub.err" ||
        fail_with_server_log "ecraid scrub status failed: $(cat "$test_dir/scrub.err")"
}

# Prints a field of the last save_scrub_status. Usage: scrub_field KEY.
scrub_field() {
    json_get "$scrub_file" "$@"
}

# Polls the running server until the scrub state is STATE (idle, running or paused), then
# leaves that status in $scrub_file. Usage: wait_for_scrub_state STATE [TIMEOUT_SECONDS].
wait_for_scrub_state() {
    local expected=$1 timeout_seconds=${2:-$SCRUB_WAIT_TIMEOUT_SECONDS}
    local deadline=$((SECONDS + timeout_seconds)) actual
    while true; do
        expect_server_running
        save_scrub_status
        actual=$(scrub_field state)
        [[ $actual != "$expected" ]] || return 0
        if ((SECONDS >= deadline)); then
            cat "$scrub_file" >&2
            fail_with_server_log "the scrub is still $actual after $timeout_seconds s, expected $expected"
        fi
        sleep 0.1
    done
}

# Starts a scrub on the running server and waits until it has finished, leaving its final
# status in $scrub_file.
run_scrub() {
    run_admin scrub start
    wait_for_scrub_state idle
    [[ $(scrub_field last_completed) != null ]] ||
        fail_with_server_log "the scrub is idle but reports no completed pass"
    note "scrub finished: $(scrub_field checked_bytes) bytes checked, $(scrub_field repaired) repaired, $(scrub_field unrecoverable) unrecoverable"
}

# Fails unless a field of the last save_scrub_status passes the test OPERATOR VALUE, as in
# expect_check_field. Usage: expect_scrub_field KEY OPERATOR VALUE.
expect_scrub_field() {
    local key=$1 operator=$2 expected=$3 actual
    actual=$(scrub_field "$key")
    if ! [ "$actual" "$operator" "$expected" ]; then
        cat "$scrub_file" >&2
        fail_with_server_log "scrub status reports $key $actual, expected $operator $expected"
    fi
}

# Prints an error counter (read, write, checksum or repaired) of the member of ROLE from
# the running server's status. Usage: member_error_count ROLE KIND.
member_error_count() {
    save_status
    member_field "${members[$1]}" errors "$2"
}

# Reads LENGTH bytes of the export at OFFSET in 4 KiB requests and fails unless every one
# fails with EIO: a read the array cannot serve must fail, never return other bytes.
# Usage: expect_export_range_eio OFFSET LENGTH.
expect_export_range_eio() {
    "$PYTHON" - "$export_uri" "$@" <<'PY' || fail_with_server_log "reads at offset $1, length $2 of the export did not all fail with EIO"
import errno
import sys

import nbd

uri, offset, length = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
handle = nbd.NBD()
handle.connect_uri(uri)
for position in range(offset, offset + length, 4096):
    try:
        handle.pread(4096, position)
    except nbd.Error as error:
        if error.errnum != errno.EIO:
            sys.exit(f"the read at {position} failed with {error.errno}, expected EIO")
    else:
        sys.exit(f"the read at {position} succeeded, expected EIO")
handle.shutdown()
PY
}

# ----- Members with latent sector errors -----
#
# A bad-sector member is a plain file served by bad_sector_plugin.sh through nbdkit's sh
# plugin and mounted back as a regular file with nbdfuse, like a fault-injecting member (and
# stopped by the same cleanup). Reads that touch a block listed in $fault_dir/ROLE.bad-blocks
# fail with EIO until a write covers the block, which removes it from the list, as a disk
# remaps a sector on write. The member's bytes are in $fault_dir/ROLE.backing.

# Exits 77 unless nbdkit with its sh plugin, nbdfuse and FUSE are available.
require_bad_sector_member() {
    require_root
    require_tools nbdkit nbdfuse fusermount3 awk
    [[ -c /dev/fuse ]] || skip "/dev/fuse is missing, so FUSE is unavailable"
    { : <>/dev/fuse; } 2>/dev/null || skip "cannot open /dev/fuse"
    nbdkit sh --version >/dev/null 2>&1 || skip "nbdkit has no sh plugin (install nbdkit)"
}

# Replaces members[ROLE] with a bad-sector member that has no bad blocks yet.
# Usage: start_bad_sector_member ROLE.
start_bad_sector_member() {
    local role=$1
    fault_dir=$test_dir/faults
    mkdir -p "$fault_dir"
    if [[ -z ${fault_cleanup_registered:-} ]]; then
        declare -gA fault_nbdkit_pids=() fault_nbdfuse_pids=()
        defer stop_fault_members
        fault_cleanup_registered=1
    fi

    local base=$fault_dir/$role
    local mount_dir=$base.mnt nbdkit_socket=$base.sock
    rm -f "$base.nbdkit.pid" "$base.nbdfuse.pid"
    : >"$base.bad-blocks"
    truncate -s "$member_size" "$base.backing"
    mkdir -p "$mount_dir"

    BAD_SECTOR_BACKING=$base.backing BAD_SECTOR_LIST=$base.bad-blocks \
        nbdkit --foreground --unix "$nbdkit_socket" --pidfile "$base.nbdkit.pid" \
        sh "$TEST_SOURCE_DIR/bad_sector_plugin.sh" 2>"$base.nbdkit.err" &
    fault_nbdkit_pids[$role]=$!
    wait_for_pid_file "$base.nbdkit.pid" "${fault_nbdkit_pids[$role]}" "nbdkit for member $role" \
        "$base.nbdkit.err"

    nbdfuse -P "$base.nbdfuse.pid" "$mount_dir" "nbd+unix:///?socket=$nbdkit_socket" \
        2>"$base.nbdfuse.err" &
    fault_nbdfuse_pids[$role]=$!
    wait_for_pid_file "$base.nbdfuse.pid" "${fault_nbdfuse_pids[$role]}" "nbdfuse for member $role" \
        "$base.nbdfuse.err"
    [[ -f $mount_dir/nbd ]] || fail "nbdfuse did not create $mount_dir/nbd"

    members[role]=$mount_dir/nbd
    note "member $role has latent sector errors on demand: ${members[role]} (nbdkit ${fault_nbdkit_pids[$role]}, nbdfuse ${fault_nbdfuse_pids[$role]})"
}

# Makes reads of the 4 KiB blocks at the given byte offsets of the bad-sector member of ROLE
# fail with EIO until they are written. Usage: add_bad_blocks ROLE OFFSET [OFFSET...].
add_bad_blocks() {
    local role=$1 offset
    shift
    for offset in "$@"; do
        ((offset % BLOCK_BYTES == 0)) || fail "add_bad_blocks: offset $offset is not a multiple of $BLOCK_BYTES"
        echo "$offset"
    done >>"$fault_dir/$role.bad-blocks"
    note "member $role: $# bad block(s) added, $(bad_block_count "$role") listed"
}

# Prints how many blocks of the bad-sector member of ROLE still fail reads.
bad_block_count() {
    wc -l <"$fault_dir/$1.bad-blocks"
}

# Prints "STRIPE POSITION" for the first stripe from FIRST_STRIPE on in which a client read
# of the stripe's data loads the chunk of ROLE, and the codeword position of that chunk.
# Usage: read -r stripe position < <(stripe_read_from_role ROLE FIRST_STRIPE).
stripe_read_from_role() {
    local role=$1 stripe=$2 index positions
    for ((; stripe < stripe_count; stripe++)); do
        positions=($(positions_in_read_order "$stripe"))
        for ((index = 0; index < data_count; index++)); do
            if (($(role_of_position "$stripe" "${positions[index]}") == role)); then
                echo "$stripe ${positions[index]}"
                return 0
            fi
        done
    done
    fail "no stripe from $2 on has a chunk of member $role that reads load"
}
