#!/usr/bin/env bash
# tests/mount/t_dio.sh — direct and buffered I/O on one file (dio.c): a
# buffered read after an O_DIRECT write (plain and AIO) of the same block
# returns the new bytes; a writer doing O_DIRECT writes while a reader
# does buffered reads of the same blocks (and buffered writes against
# O_DIRECT reads) never reads a version older than the last completed
# write, nor a torn one; the whole file then equals the model. Three
# seeds, bounded in iterations and time.
. "$(dirname "$0")/../lib/lib.sh"
t_init
DIO=${TOP_BUILDDIR:-$top_builddir}/tests/mount/dio
[ -x "$DIO" ] || t_fail "dio not built: $DIO (make check builds it)"
N=2000
[ "${CMKFS_SANITIZED:-0}" = 1 ] && N=500
t_mkvol
t_mount
for seed in 1 2 3; do
	"$DIO" -s "$seed" -n "$N" -t 10 "$MNT/f" || t_fail "dio -s $seed reported failures"
done
t_umount
