#!/bin/sh
# cfuture.nvim.test itself: failures, a hung test (timed out and cancelled)
# and errors are reported as TAP and the exit status is 1.
set -u
dir=$(dirname "$0")
out=$(sh "$dir/run_test.sh" "$1" test/nvim/helper_failing.lua 2>&1)
status=$?
echo "$out"
fail=0
check() { if printf '%s\n' "$out" | grep -qF -- "$2"; then echo "ok: $1"; else echo "FAILED: $1"; fail=1; fi; }
check "plan" "1..6"
check "a passing test" "ok 1 - passes"
check "an assertion" "not ok 2 - fails an assertion: "
check "the assertion's message" "numbers: expected 2, got 1"
check "a hung test times out" "not ok 3 - hangs: timed out after 300 ms"
check "an error after an await" "not ok 4 - raises after an await: "
check "its traceback" "# stack traceback:"
check "the run goes on" "ok 5 - still runs after the others"
check "a test that returns nil, \"timeout\" passed" 'ok 6 - returns nil, "timeout" (not a time-out)'
check "summary" "# 3 of 6 passed"
if [ "$status" -eq 1 ]; then echo "ok: exit status 1"; else echo "FAILED: exit status $status"; fail=1; fi
exit $fail
