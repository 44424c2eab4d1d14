#!/usr/bin/env bash
# tests/mount/t_golden.sh — format stability: the committed volumes, made
# once and never regenerated, mount and read back exactly as their
# MANIFESTs say in every later build: tests/golden/v1 (cmkfs 0.1.0, format
# 1) and tests/golden/v3 (format 3: location slots, a link set, holes,
# bound symlink targets short and long, rebound directory ids, a transient
# zone list; tests/golden/make-golden.sh). Only copies are mounted,
# rekeyed or damaged, never the committed files.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 sha256sum
t_init
GOLDEN=${TOP_SRCDIR:-$top_builddir}/tests/golden
use_golden() { # version: a fresh copy of the volume as $CIPHER, $KEY
	G=$GOLDEN/$1
	[ -f "$G/MANIFEST" ] || t_fail "golden volume missing: $G"
	rm -rf "$CIPHER"
	cp -r "$G/cipher" "$CIPHER"
	relink "$CIPHER"
	cp "$G/service.key" "$KEY"
	chmod 600 "$KEY"	# git does not keep the mode
}
# Git keeps no hard links: the checkout holds each name of a hard-linked
# file as a backing file of its own, all with one file id, which fsck
# rightly reports as a copy ("file id also held by another backing
# file"). Put the links back as the volume had them when it was made:
# backing regular files whose header (magic "CMKH", file id at bytes
# 12..28) carries the same file id become names of one file. They must be
# byte for byte the same (the names of one file were).
relink() {
	python3 - "$1" <<'PY' || t_fail "restoring the hard links of the golden copy"
import os, sys
by = {}
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f)
        if not os.path.isfile(p) or os.path.islink(p):
            continue
        with open(p, "rb") as fh:
            h = fh.read(28)
        if len(h) == 28 and h[:4] == b"CMKH":
            by.setdefault(h[12:28], []).append(p)
for ps in by.values():
    ps.sort()
    keep = open(ps[0], "rb").read()
    for p in ps[1:]:
        if open(p, "rb").read() != keep:
            sys.exit("%s and %s share a file id but differ" % (ps[0], p))
        os.link(ps[0], p + ".relink")
        os.rename(p + ".relink", p)
PY
}
# F/L/D lines are the entries (all of them: the count must match); H and Z
# lines are checks on them (tests/golden/make-golden.sh).
check_manifest() {
n=0
while read -r kind val path; do
	p=$MNT/${path#./}
	case $kind in
	F) [ "$(sha256sum <"$p" | cut -d' ' -f1)" = "$val" ] || t_fail "content of $path" ;;
	L) [ "$(readlink "$p")" = "$val" ] || t_fail "symlink $path" ;;
	D) [ -d "$p" ] || t_fail "directory $path" ;;
	H) python3 - "$p" "$val" <<'PY' || t_fail "hole $val in $path"
import errno, os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
start, end = map(int, sys.argv[2].split("-"))
try:
    d = os.lseek(fd, start, os.SEEK_DATA)
except OSError as e:
    if e.errno != errno.ENXIO:
        raise
    d = os.fstat(fd).st_size
sys.exit(os.lseek(fd, start, os.SEEK_HOLE) != start or d < end)
PY
		continue ;;
	Z) "$CMKFS" transient list --service-key "$KEY" "$CIPHER" </dev/null | grep -qxF "${path#.}	$val" ||
			t_fail "transient zone ${path#.} $val"
		continue ;;
	*) t_fail "bad manifest line: $kind" ;;
	esac
	n=$((n + 1))
done <"$G/MANIFEST"
[ "$(cd "$MNT" && find . -mindepth 1 | wc -l)" = "$n" ] || t_fail "entry count differs from the manifest"
}
fmt() { "$CMKFS" status --json "$CIPHER" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["format_version"], d["kek_generation"])'; }
use_golden v1
t_mount
check_manifest
t_umount
t_ok "golden v1 volume: $n entries read back"

# A format-1 volume rekeys into format 2 without renaming anything: the
# name key is kept (doc/FORMAT.md §1, "Format 2").
names=$(cd "$CIPHER" && find . | sort | sha256sum)
[ "$(fmt)" = "1 1" ] || t_fail "golden volume status: $(fmt)"
"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >"$T/rk" || t_fail "rekey of the v1 volume: $(cat "$T/rk")"
[ "$(fmt)" = "2 2" ] || t_fail "after rekey: $(fmt), want format 2 generation 2"
[ "$(cd "$CIPHER" && find . | sort | sha256sum)" = "$names" ] || t_fail "rekey renamed entries"
t_mount
check_manifest
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after rekey: $(tail -3 "$T/fsck")"
t_ok "golden v1 volume rekeyed to format 2: names kept, $n entries read back, fsck clean"

use_golden v3
[ "$(fmt)" = "3 1" ] || t_fail "golden v3 volume status: $(fmt), want format 3 generation 1"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck of the v3 volume: $(tail -3 "$T/fsck")"
t_mount
check_manifest
t_umount
t_ok "golden v3 volume: format 3, fsck clean, $n entries, holes and zone read back"

# A full rekey rewrites every name, target, link set, dirid record and
# block under new keys (doc/FORMAT.md §4.5): the contents stay.
"$CMKFS" rekey --full --service-key "$KEY" "$CIPHER" >"$T/rk" 2>&1 || t_fail "rekey --full of the v3 volume: $(cat "$T/rk")"
[ "$(fmt)" = "3 2" ] || t_fail "after rekey --full: $(fmt), want format 3 generation 2"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after rekey --full: $(tail -3 "$T/fsck")"
t_mount
check_manifest
t_umount
t_ok "golden v3 volume rekeyed in full: $n entries read back, fsck clean"

# The check is not blind: one byte flipped in a copy's link set fails it
# (the three names of links3 read EIO).
use_golden v3
ls=$(find "$CIPHER/cmkfs.hl" -type f)
[ "$(echo "$ls" | wc -l)" = 1 ] || t_fail "want one link set in the v3 volume: $ls"
printf '\x55' | dd of="$ls" bs=1 seek=30 conv=notrunc status=none
t_mount
(check_manifest) 2>/dev/null && t_fail "a flipped byte in the link set went unseen"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 && t_fail "fsck passed a flipped link set"
t_ok "a byte flipped in a copy of the v3 volume fails the manifest check and fsck"
