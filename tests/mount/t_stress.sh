#!/usr/bin/env bash
# tests/mount/t_stress.sh — concurrency against a model (issue #6): the
# stress program (tests/mount/stress.c) runs 8 threads and 2 forked
# processes on one mount for a fixed time with seed 1 — pwrite/pread at
# unaligned offsets, truncation, renames within and across directories,
# MAP_SHARED writes + msync, readdir while files come and go, lock-free
# writers of disjoint bytes of the same 4 KiB blocks — and runs
# `cmkfs lock` three times on the way: refused calls fail with
# EKEYREVOKED only inside a lock window and leave nothing behind, and the
# mount resumes at `cmkfs unlock` after each. Then a remount, a
# byte-for-byte `diff -r` of the whole tree against the model's copy, and
# a clean `cmkfs fsck`.
#
# Under ThreadSanitizer (a daemon linked with libtsan, ./configure
# --enable-tsan) the reports of every process go to $T/tsan.log.PID and
# any of them fails the test.
. "$(dirname "$0")/../lib/lib.sh"
t_need diff ldd
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
STRESS=${TOP_BUILDDIR:-$top_builddir}/tests/mount/stress
[ -x "$STRESS" ] || t_fail "stress not built: $STRESS"

# 50 s in the release build; sanitizers slow every request ~5-10x, so they
# check the same mix for less time.
SECS=${STRESS_SECS:-50}
TSAN=0
case $(ldd "$CMKFS" 2>/dev/null) in *libtsan*) TSAN=1 ;; esac
if [ $TSAN = 1 ]; then
	SECS=${STRESS_SECS:-25}
	# The daemon's stderr is /dev/null once it detaches: reports go to
	# files, checked below and after a failure.
	export TSAN_OPTIONS="${TSAN_OPTIONS:+$TSAN_OPTIONS:}log_path=$T/tsan.log"
elif [ "${CMKFS_SANITIZED:-0}" = 1 ]; then
	SECS=${STRESS_SECS:-25}
fi
TSAN_SHOWN=0
tsan_reports() {
	local f rc=0
	[ $TSAN_SHOWN = 0 ] || return 1
	for f in "$T"/tsan.log.*; do
		[ -f "$f" ] || continue
		printf 'FAIL: ThreadSanitizer report %s:\n' "$f" >&2
		head -n 80 "$f" >&2
		rc=1 TSAN_SHOWN=1
	done
	return $rc
}
t_on_exit 'tsan_reports || true'

t_mkvol
# shellcheck disable=SC2086 # CMKFS_WRAPPER is deliberately word-split
$CMKFS_WRAPPER "$CMKFS" mount --service-key "$KEY" --key-check-interval 2 \
	"$CIPHER" "$MNT" || t_fail "cmkfs mount"
t_is_mounted_sure "$MNT" || t_fail "not mounted"

t_log "stress: $SECS s$([ $TSAN = 0 ] || echo ', ThreadSanitizer daemon')"
"$STRESS" -t "$SECS" -s 1 -T 8 -P 2 -l 3 -L "$CMKFS" -e "$T/expect" "$MNT" ||
	t_fail "stress run"
"$CMKFS" status --json "$MNT" | grep -q '"locked":false' || t_fail "still locked after the run"
t_ok "stress: model exact under concurrency and 3 lock/resume cycles"

t_remount
diff -r "$T/expect" "$MNT/st" >"$T/diff" 2>&1 ||
	t_fail "after remount the tree differs from the model: $(head -20 "$T/diff")"
t_ok "after remount every file and name equals the model"
t_umount

"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 ||
	t_fail "fsck after the stress run: $(tail -20 "$T/fsck")"
t_ok "fsck clean"
tsan_reports || t_fail "ThreadSanitizer reports (above)"
