#!/usr/bin/env bash
# tests/fuzz/t_replay.sh — replay every fuzz target's corpus (seeds and
# kept findings) plus 20,000 generated and mutated inputs each, under
# whatever sanitizers this build has. The libFuzzer runs are in
# scripts/check.sh (clang, bounded time).
#
# The targets are those of FUZZ_REPLAY in Makefile.am, the one list:
# make check passes them in $FUZZ_PROGRAMS; run by hand, the script asks
# the build (make print-fuzz-names).
set -euo pipefail
B=${TOP_BUILDDIR:-.}
C=${TOP_SRCDIR:-.}/tests/fuzz/corpus
n=20000
[ "${CMKFS_SANITIZED:-0}" = 1 ] && n=5000
if [ -n "${FUZZ_PROGRAMS:-}" ]; then
	names=$(for p in $FUZZ_PROGRAMS; do echo "${p##*/fuzz_}"; done)
else
	names=$(make -s --no-print-directory -C "$B" print-fuzz-names)
fi
[ -n "$names" ] || { echo "FAIL: no fuzz targets"; exit 1; }
for t in $names; do
	# Every target keeps a seed corpus in the tree.
	[ -n "$(ls -A "$C/$t" 2>/dev/null)" ] || { echo "FAIL: no corpus $C/$t"; exit 1; }
	"$B/tests/fuzz/fuzz_$t" -n "$n" "$C/$t" || { echo "FAIL: fuzz_$t"; exit 1; }
	echo "ok fuzz_$t"
done
