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
check_manifest() {
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
}
t_mount
check_manifest
t_umount
t_ok "golden v1 volume: $n entries read back"

# A format-1 volume rekeys into format 2 without renaming anything: the
# name key is kept (doc/FORMAT.md §1, "Format 2").
names=$(cd "$CIPHER" && find . | sort | sha256sum)
fmt() { "$CMKFS" status --json "$CIPHER" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["format_version"], d["kek_generation"])'; }
[ "$(fmt)" = "1 1" ] || t_fail "golden volume status: $(fmt)"
"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >"$T/rk" || t_fail "rekey of the v1 volume: $(cat "$T/rk")"
[ "$(fmt)" = "2 2" ] || t_fail "after rekey: $(fmt), want format 2 generation 2"
[ "$(cd "$CIPHER" && find . | sort | sha256sum)" = "$names" ] || t_fail "rekey renamed entries"
t_mount
check_manifest
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after rekey: $(tail -3 "$T/fsck")"
t_ok "golden v1 volume rekeyed to format 2: names kept, $n entries read back, fsck clean"
