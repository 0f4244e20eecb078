#!/usr/bin/env bash
# Runs one test (nextest hands it over: the test binary and its arguments) under a time limit:
# past KILN_TEST_LIMIT_S seconds (840 by default, under nextest's own 15 minutes) it prints every
# thread's stack of the stuck test with gdb, ends it and fails with exit 124. A hang then shows
# where each thread waits, as the hangs in docs/performance.md had to be found by hand.
set -uo pipefail

limit=${KILN_TEST_LIMIT_S:-840}
"$@" &
test_pid=$!
sleep "$limit" &
timer_pid=$!
wait -n -p ended "$test_pid" "$timer_pid"
status=$?
if [ "${ended:-}" = "$test_pid" ]; then
  kill "$timer_pid" 2>/dev/null
  wait "$timer_pid" 2>/dev/null
  exit "$status"
fi

echo "test-time-limit: the test ran past ${limit} s; its threads:" >&2
if command -v gdb >/dev/null 2>&1; then
  timeout 120 gdb -p "$test_pid" -batch -nx -ex "set pagination off" -ex "info threads" \
    -ex "thread apply all bt 40" 2>&1 | grep -v -e '^\[New LWP' -e '^\[Thread debugging' >&2
else
  echo "test-time-limit: gdb is not installed; no stacks" >&2
fi
kill -KILL "$test_pid" 2>/dev/null
wait "$test_pid" 2>/dev/null
exit 124
