#!/usr/bin/env bash
# tests/fuzz/t_replay.sh — replay every fuzz target's corpus (seeds and
# kept findings) plus 20,000 generated and mutated inputs each, under
# whatever sanitizers this build has. The libFuzzer runs are in
# scripts/check.sh (clang, bounded time).
set -euo pipefail
B=${TOP_BUILDDIR:-.}/tests/fuzz
C=${TOP_SRCDIR:-.}/tests/fuzz/corpus
n=20000
[ "${CMKFS_SANITIZED:-0}" = 1 ] && n=5000
for t in header volume names block json azure token kv cli; do
	# Every target keeps a seed corpus in the tree.
	[ -n "$(ls -A "$C/$t" 2>/dev/null)" ] || { echo "FAIL: no corpus $C/$t"; exit 1; }
	"$B/fuzz_$t" -n "$n" "$C/$t" || { echo "FAIL: fuzz_$t"; exit 1; }
	echo "ok fuzz_$t"
done
