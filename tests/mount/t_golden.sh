#!/usr/bin/env bash
# tests/mount/t_golden.sh — format stability: the committed volume made by
# cmkfs 0.1.0 (tests/golden/v1, never regenerated) mounts and reads back
# exactly as its MANIFEST says, in every later build.
. "$(dirname "$0")/../lib/lib.sh"
t_init
G=${TOP_SRCDIR:-$top_builddir}/tests/golden/v1
[ -f "$G/MANIFEST" ] || t_fail "golden volume missing: $G"
rmdir "$CIPHER"
cp -r "$G/cipher" "$CIPHER"
cp "$G/service.key" "$KEY"
chmod 600 "$KEY"	# git does not keep the mode
t_mount
n=0
while read -r kind val path; do
	p=$MNT/${path#./}
	case $kind in
	F) [ "$(sha256sum <"$p" | cut -d' ' -f1)" = "$val" ] || t_fail "content of $path" ;;
	L) [ "$(readlink "$p")" = "$val" ] || t_fail "symlink $path" ;;
	D) [ -d "$p" ] || t_fail "directory $path" ;;
	*) t_fail "bad manifest line: $kind" ;;
	esac
	n=$((n + 1))
done <"$G/MANIFEST"
[ "$(cd "$MNT" && find . -mindepth 1 | wc -l)" = "$n" ] || t_fail "entry count differs from the manifest"
t_umount
t_ok "golden v1 volume: $n entries read back"
