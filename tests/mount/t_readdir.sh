#!/usr/bin/env bash
# tests/mount/t_readdir.sh — directory listings (dirents.c): "." and ".."
# in every listing, once each, DT_DIR, with the inode numbers stat()
# gives (the root's ".." is the root); every entry once with its inode
# number and type, through getdents64 buffers small enough that a listing
# takes many calls; seeks to each d_off and telldir/seekdir round trips.
# Then the same after a remount, with nothing cached.
. "$(dirname "$0")/../lib/lib.sh"
t_init
DE=${TOP_BUILDDIR:-$top_builddir}/tests/mount/dirents
[ -x "$DE" ] || t_fail "dirents not built: $DE (make check builds it)"
t_mkvol
t_mount
"$DE" "$MNT" || t_fail "dirents reported failures"
t_remount
"$DE" -c "$MNT" || t_fail "dirents reported failures after remount"
t_umount
