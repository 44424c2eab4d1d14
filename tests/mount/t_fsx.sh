#!/usr/bin/env bash
# tests/mount/t_fsx.sh — randomized model-based test (fsx.c): 100,000
# write/truncate/fallocate/append/mmap/read operations with seed 1 checked
# against an in-memory model, plus two more seeds with small block sizes
# where block boundaries are densest. Then a remount and a full compare.
. "$(dirname "$0")/../lib/lib.sh"
t_init
FSX=${TOP_BUILDDIR:-$top_builddir}/tests/mount/fsx
[ -x "$FSX" ] || t_fail "fsx not built: $FSX"
# Under ASan/UBSan every op costs ~10x: the release run carries the
# 100,000-op requirement, the sanitizer run checks memory on fewer.
OPS=100000
[ "${CMKFS_SANITIZED:-0}" = 1 ] && OPS=20000
t_mkvol
t_mount
"$FSX" -n $OPS -s 1 -N 3 -m 4M "$MNT" || t_fail "fsx seed 1"
t_umount

# 512-byte blocks: eight times as many boundaries per byte.
rm -rf "$CIPHER" && mkdir "$CIPHER"
"$CMKFS" init --service-key "$KEY" --block-size 512 "$CIPHER" >/dev/null
t_mount
"$FSX" -n 30000 -s 2 -N 2 -m 512K "$MNT" || t_fail "fsx seed 2, bs 512"
"$FSX" -n 30000 -s 3 -N 4 -m 64K "$MNT" || t_fail "fsx seed 3, bs 512"
t_umount

# The kernel's writeback cache (--writeback): writes reach the daemon as
# batches of dirty pages at writeback, close or fsync, the kernel keeps
# the size and mtime and places O_APPEND writes itself, and it READs
# through write-only handles to fill partly written pages. Two more seeds,
# both block sizes (skipped when CMKFS_MOUNT_OPTS turned it on for all).
case " $CMKFS_MOUNT_OPTS " in
*" --writeback "*) ;;
*)
	for bs in 4096 512; do
		rm -rf "$CIPHER" && mkdir "$CIPHER"
		"$CMKFS" init --service-key "$KEY" --block-size $bs "$CIPHER" >/dev/null
		CMKFS_MOUNT_OPTS="$CMKFS_MOUNT_OPTS --writeback" t_mount
		"$FSX" -n 30000 -s $((bs / 512 + 3)) -N 3 -m 1M "$MNT" ||
			t_fail "fsx with --writeback, bs $bs"
		t_umount
	done
	t_ok "fsx with the writeback cache (--writeback), block sizes 4096 and 512"
	;;
esac
