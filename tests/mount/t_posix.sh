#!/usr/bin/env bash
# tests/mount/t_posix.sh — POSIX behaviour on a real mount (posix_ops.c):
# every operation of issue #2, including a file past 4 GiB (-x), checked
# against expected results; then the same after a remount.
. "$(dirname "$0")/../lib/lib.sh"
t_init
PO=${TOP_BUILDDIR:-$top_builddir}/tests/mount/posix_ops
[ -x "$PO" ] || t_fail "posix_ops not built: $PO (make check builds it)"
# The file past 4 GiB (-x) writes 4 GiB of sealed zeros: release run only.
X=-x
[ "${CMKFS_SANITIZED:-0}" = 1 ] && X=
t_mkvol
t_mount
"$PO" $X "$MNT" || t_fail "posix_ops reported failures"
t_remount
"$PO" "$MNT" || t_fail "posix_ops failed after remount"
t_umount
