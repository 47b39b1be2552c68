#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The mistakes a new user makes with `ecraid create` and `ecraid serve` fail with a
# non-zero exit status and a message that names the problem, and a rejected create leaves
# no member files behind. Every case runs, and the test fails at the end if any failed.
# Usage: cli_errors.sh ECRAID_BINARY
source "$(dirname "$0")/lib.sh"
init_test "$@"

failed_cases=()
case_index=0

# Runs an ecraid command that must fail and checks its output.
# Usage: expect_rejected DESCRIPTION FRAGMENT... -- ECRAID_ARGUMENTS...
# Every FRAGMENT must appear in the combined stdout and stderr. The command runs in
# $case_dir, where it must leave no new files behind.
expect_rejected() {
    local description=$1
    shift
    local fragments=()
    while [[ $1 != -- ]]; do
        fragments+=("$1")
        shift
    done
    shift

    local output=$test_dir/case-$case_index.out status=0
    local files_before
    files_before=$(ls -A "$case_dir")
    (cd "$case_dir" && timeout --kill-after=5 10 "$ecraid" "$@") >"$output" 2>&1 || status=$?
    local problems=()
    if ((status == 0)); then
        problems+=("exited with status 0")
    elif ((status == 124)); then
        problems+=("was still running after 10 s")
    fi
    local fragment
    for fragment in "${fragments[@]}"; do
        grep -qF -- "$fragment" "$output" || problems+=("output lacks '$fragment'")
    done
    local leftovers
    leftovers=$(comm -13 <(echo "$files_before") <(ls -A "$case_dir") | tr '\n' ' ')
    [[ -z $leftovers ]] || problems+=("left new files behind: $leftovers")

    if ((${#problems[@]} > 0)); then
        failed_cases+=("$description")
        {
            echo "FAILED case: $description"
            echo "  command: ecraid $*"
            printf '  problem: %s\n' "${problems[@]}"
            sed 's/^/  | /' "$output"
        } >&2
    else
        note "ok: $description (exit status $status)"
    fi
}

# Starts a case in a new empty directory, $case_dir.
new_case() {
    case_index=$((case_index + 1))
    case_dir=$test_dir/case-$case_index
    mkdir -p "$case_dir"
}

# Creates an array in the current case directory for cases that need existing members.
create_fixture() {
    local name=$1
    shift
    (cd "$case_dir" && "$ecraid" create --size 64M --name "$name" "$@") >/dev/null 2>&1 ||
        fail "could not create the fixture array $name: ecraid create $*"
}

# Level names.
new_case
expect_rejected "unknown level" "unknown level 'raid7'" "raid0, raid1, raid10, raid5, raid6 or rs" \
    -- create --level raid7 --size 64M m0 m1 m2

# rs needs both k and m.
new_case
expect_rejected "rs without --data and --parity" "--data" "--parity" \
    -- create --level rs --size 64M m0 m1 m2 m3 m4 m5
new_case
expect_rejected "rs without --parity" "--parity" \
    -- create --level rs --data 4 --size 64M m0 m1 m2 m3 m4 m5
new_case
expect_rejected "rs without --data" "--data" \
    -- create --level rs --parity 2 --size 64M m0 m1 m2 m3 m4 m5

# Member counts: the message names the count given and the count or range allowed.
new_case
expect_rejected "raid0 with 1 member" "raid0" "at least 2" "got 1" \
    -- create --level raid0 --size 64M m0
new_case
expect_rejected "raid1 with 1 member" "raid1" "at least 2" "got 1" \
    -- create --level raid1 --size 64M m0
new_case
expect_rejected "raid5 with 2 members" "raid5" "at least 3" "got 2" \
    -- create --level raid5 --size 64M m0 m1
new_case
expect_rejected "raid6 with 3 members" "raid6" "at least 4" "got 3" \
    -- create --level raid6 --size 64M m0 m1 m2
new_case
expect_rejected "raid10 with 3 members" "raid10" "at least 4" "got 3" \
    -- create --level raid10 --size 64M m0 m1 m2
new_case
expect_rejected "raid10 with an odd member count" "raid10" "even number" "got 5" \
    -- create --level raid10 --size 64M m0 m1 m2 m3 m4
new_case
expect_rejected "rs 4+2 with 5 members" "rs 4+2" "6 members" "got 5" \
    -- create --level rs --data 4 --parity 2 --size 64M m0 m1 m2 m3 m4
new_case
expect_rejected "rs with k over 32" "between 1 and 32" "got 40" \
    -- create --level rs --data 40 --parity 2 --size 64M m0 m1
new_case
expect_rejected "rs with m over 8" "between 1 and 8" "got 9" \
    -- create --level rs --data 2 --parity 9 --size 64M m0 m1

# Members given twice, under the same path or another path to the same file.
new_case
expect_rejected "create with a member given twice" "m0" "same member" "give each member once" \
    -- create --level raid1 --size 64M m0 m1 m0
new_case
expect_rejected "create with one file under two paths" "./m0" "same member" \
    -- create --level raid1 --size 64M m0 ./m0

# Missing member files without --size.
new_case
expect_rejected "create of a missing member without --size" "m5" "does not exist" "--size" \
    -- create --level raid1 m5 m6

# Members of an existing array are not overwritten without --force.
new_case
create_fixture cli-a --level raid1 a0 a1
expect_rejected "create over an existing member" "a0" "already member 0 of array 'cli-a'" \
    "--force" -- create --level raid1 --size 64M a0 c1
if "$ecraid" inspect --json "$case_dir/a0" >"$test_dir/inspect-a0.json" &&
    [[ $(json_get "$test_dir/inspect-a0.json" superblock array_name) == cli-a ]]; then
    note "ok: the rejected create left member a0 of array cli-a intact"
else
    failed_cases+=("existing member intact after a rejected create")
    echo "FAILED case: member a0 no longer belongs to array cli-a after a rejected create" >&2
fi
if (cd "$case_dir" && "$ecraid" create --level raid1 --size 64M --force a0 c1) \
    >"$test_dir/force.out" 2>&1; then
    note "ok: create --force overwrites an existing member"
else
    failed_cases+=("create --force over an existing member")
    echo "FAILED case: create --force over an existing member failed:" >&2
    cat "$test_dir/force.out" >&2
fi

# serve with nothing it can assemble.
new_case
expect_rejected "serve with paths that do not exist" "no valid ecraid member" \
    "nosuch1: does not exist" "nosuch2: does not exist" \
    -- serve --socket "$test_dir/s.sock" --control "$control_socket_path" nosuch1 nosuch2
new_case
truncate -s 64M "$case_dir/junk1" "$case_dir/junk2"
expect_rejected "serve with files that are not members" "no valid ecraid member" \
    "junk1" "junk2" "not an ecraid member" \
    -- serve --socket "$test_dir/s.sock" --control "$control_socket_path" junk1 junk2
new_case
expect_rejected "serve without members" "members" \
    -- serve --socket "$test_dir/s.sock" --control "$control_socket_path"

# serve with members of two arrays, or one member given twice.
new_case
create_fixture cli-b --level raid1 b0 b1
create_fixture cli-c --level raid1 c0 c1
expect_rejected "serve with members of two arrays" "more than one array" "b0" "c1" \
    -- serve --socket "$test_dir/s.sock" --control "$control_socket_path" b0 c1
# A member given twice is most likely a typo for another member. Serving degraded in that
# case would make the member left out stale, so that it needs a full rebuild.
expect_rejected "serve with a member given twice" "b0" \
    -- serve --socket "$test_dir/s.sock" --control "$control_socket_path" b0 b0

if ((${#failed_cases[@]} > 0)); then
    fail "${#failed_cases[@]} of the cases failed: $(printf '%s; ' "${failed_cases[@]}")"
fi
note "passed"
