#!/bin/sh
# tests/lib/timed.sh — the test log compiler: runs one test and ends its
# log with its wall time ("# time: 12.3 s"), which automake's logs do not
# record; scripts/check.sh lists the slowest tests from these lines.
# The test's exit status is passed through unchanged.
s=$(date +%s%N)
"$@"
rc=$?
e=$(date +%s%N)
awk -v s="$s" -v e="$e" 'BEGIN { printf "# time: %.1f s\n", (e - s) / 1e9 }'
exit $rc
