#!/usr/bin/env bash
# tests/mount/t_symlink.sh — symlink targets of every length Linux allows
# (1 … 4,095 bytes; every length near the edges, sparser between): made,
# read back (readlink and lstat size), renamed within and across
# directories, linked (format 3: a second symlink), replaced and unlinked; then fsck, an offline
# and a live rekey, and fsck finding a long target's side file removed or
# altered; fsck --repair setting those links aside with their side files,
# and fsck reporting (and --repair setting aside) side files no symlink
# points to. A 4,096-byte target is refused with ENAMETOOLONG, as by Linux.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
t_mkvol
t_mount

# links.py MODE MNT: make / check the links (the same list both times).
cat >"$T/links.py" <<'PY'
import errno, os, sys
mode, mnt = sys.argv[1], sys.argv[2]
lens = set(range(1, 80)) | set(range(2980, 3110)) | set(range(4000, 4096))
lens |= set(range(80, 4096, 61))
lens = sorted(lens)
def target(n):	# every byte but NUL, '/' included, distinct per length
    return bytes(1 + (i * 7 + n) % 255 for i in range(n))
def where(n):	# a third stays, a third is renamed in place, a third moves
    return ("a/l%d" % n, "a/r%d" % n, "b/m%d" % n)[n % 3]
if mode == "make":
    os.makedirs(os.path.join(mnt, "a")); os.makedirs(os.path.join(mnt, "b"))
    for n in lens:
        p = os.path.join(mnt, "a/l%d" % n).encode()
        os.symlink(target(n), p)
        if os.readlink(p) != target(n) or os.lstat(p).st_size != n:
            sys.exit("length %d: read back differs right after symlink" % n)
        w = os.path.join(mnt, where(n)).encode()
        if w != p:
            os.rename(p, w)
    try:
        os.symlink(b"x" * 4096, os.path.join(mnt, "a/too_long"))
        sys.exit("a 4096-byte target was accepted")
    except OSError as e:
        if e.errno != errno.ENAMETOOLONG:
            sys.exit("4096-byte target: %s, want ENAMETOOLONG" % e)
    print(len(lens))
else:
    for n in lens:
        p = os.path.join(mnt, where(n)).encode()
        if os.readlink(p) != target(n) or os.lstat(p).st_size != n:
            sys.exit("length %d (%s): read back differs" % (n, where(n)))
PY
nlinks=$(python3 "$T/links.py" make "$MNT") || t_fail "making the symlinks: $nlinks"
python3 "$T/links.py" check "$MNT" || t_fail "read back after rename"
t_ok "$nlinks symlinks of 1 … 4095 bytes made, read back, renamed in place and across directories; 4096 bytes refused with ENAMETOOLONG"

# side: how many target side files the cipher directory holds.
side() { find "$CIPHER/cmkfs.links" -type f 2>/dev/null | wc -l; }
nside=$(side)
[ "$nside" -gt 0 ] || t_fail "no long target was stored in a side file"
t1=$(python3 -c 'print("t" * 3500)'); t2=$(python3 -c 'print("u" * 4095)')
ln -s "$t1" "$MNT/h1"
# link(2) of a symlink: format 3 binds a target to where it lives, so the
# link is made as a second symlink with the same target (and side file).
ln "$MNT/h1" "$MNT/b/h1link"
[ "$(side)" = $((nside + 2)) ] || t_fail "link: $(side) side files, want $((nside + 2))"
[ "$(readlink "$MNT/b/h1link")" = "$t1" ] || t_fail "the link's target"
rm "$MNT/h1"
[ "$(readlink "$MNT/b/h1link")" = "$t1" ] || t_fail "the other hard link lost its target"
[ "$(side)" = $((nside + 1)) ] || t_fail "side file removed while a link was left"
rm "$MNT/b/h1link"
[ "$(side)" = "$nside" ] || t_fail "last link removed: $(side) side files, want $nside"
ln -s "$t1" "$MNT/o1"; ln -s "$t2" "$MNT/o2"
mv "$MNT/o1" "$MNT/o2"			# replaces a long symlink
[ "$(readlink "$MNT/o2")" = "$t1" ] || t_fail "rename over a long symlink"
[ "$(side)" = $((nside + 1)) ] || t_fail "rename over: $(side) side files, want $((nside + 1))"
rm "$MNT/o2"
[ "$(side)" = "$nside" ] || t_fail "unlink: $(side) side files, want $nside"
t_ok "side files: one per long symlink (a link of one makes another), removed with the last link and when replaced by rename"

t_umount
"$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/fsck.json" 2>&1 ||
	t_fail "fsck on a clean volume: $(tail -3 "$T/fsck.json")"
python3 - "$T/fsck.json" "$nlinks" <<'PY' || t_fail "fsck JSON: $(tail -1 "$T/fsck.json")"
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]
assert s["symlinks"] == int(sys.argv[2]) and s["problems"] == 0, s
PY
t_ok "fsck: $nlinks symlinks checked, clean"

"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >"$T/rk" 2>&1 || t_fail "offline rekey: $(tail -3 "$T/rk")"
t_mount
python3 "$T/links.py" check "$MNT" || t_fail "read back after an offline rekey"
"$CMKFS" rekey "$CIPHER" >"$T/rk" 2>&1 || t_fail "live rekey: $(tail -3 "$T/rk")"
python3 "$T/links.py" check "$MNT" || t_fail "read back after a live rekey"
t_remount
python3 "$T/links.py" check "$MNT" || t_fail "read back after a live rekey and a remount"
t_umount
t_ok "every target reads back after an offline and a live rekey"

# Damage: one side file removed, another altered (a byte of its base64url
# text changed to another valid character).
mapfile -t sides < <(find "$CIPHER/cmkfs.links" -type f | sort)
rm -f "${sides[0]}"
chmod u+w "${sides[1]}"
python3 - "${sides[1]}" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[100] = ord("A") if b[100] != ord("A") else ord("B")
open(p, "wb").write(bytes(b))
PY
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "fsck exit $rc with damaged side files: $(cat "$T/out")"
grep -qF "side file (cmkfs.links) is missing" "$T/out" || t_fail "fsck missed the removed side file: $(cat "$T/out")"
grep -qF "side file (cmkfs.links) fails authentication" "$T/out" || t_fail "fsck missed the altered side file: $(cat "$T/out")"
t_mount
n_eio=$(python3 - "$MNT" "$T/links.py" <<'PY'
import errno, os, sys
bad = 0
for d in ("a", "b"):
    for e in os.listdir(os.path.join(sys.argv[1], d)):
        try:
            os.readlink(os.path.join(sys.argv[1], d, e))
        except OSError as x:
            assert x.errno == errno.EIO, x
            bad += 1
print(bad)
PY
)
[ "$n_eio" = 2 ] || t_fail "$n_eio symlinks failed with EIO, want 2"
t_umount
t_ok "fsck reports a removed and an altered side file; the mount answers EIO for exactly those two"

# Repair: the two damaged links are set aside, the altered one with its
# side file; nothing is left in cmkfs.links that no symlink points to.
nside=$(side)
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || rc=$?
[ $rc = 1 ] || t_fail "fsck --repair exit $rc: $(cat "$T/out")"
[ "$(grep -c '^QUARANTINED' "$T/out")" = 2 ] || t_fail "want 2 links quarantined: $(cat "$T/out")"
[ "$(side)" = $((nside - 1)) ] || t_fail "the altered link's side file stayed in cmkfs.links ($(side) of $nside)"
[ "$(find "$CIPHER/cmkfs.quarantine" -path '*/cmkfs.links/*' -type f | wc -l)" = 1 ] ||
	t_fail "the altered link's side file is not in the quarantine"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck after repair: $(cat "$T/out")"
t_ok "fsck --repair sets the damaged links aside, a side file with its link; then clean"

# Orphans: a side file whose symlink was never made (a crash between the
# two) and one whose symlink went without it (a crash before its removal).
lnk=$(find "$CIPHER" -path "$CIPHER/cmkfs.*" -prune -o -type l -lname 'cmkfs.lt.*' -print -quit)
[ -n "$lnk" ] || t_fail "no long backing symlink found"
gone=$(readlink "$lnk"); gone=${gone#cmkfs.lt.}
rm -f "$lnk"
cp "$CIPHER/cmkfs.links/$gone" "$CIPHER/cmkfs.links/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "fsck exit $rc with orphaned side files: $(cat "$T/out")"
[ "$(grep -c 'orphaned symlink target side file' "$T/out")" = 2 ] ||
	t_fail "fsck missed an orphaned side file: $(cat "$T/out")"
grep -qF "cmkfs.links/$gone" "$T/out" || t_fail "orphan not named: $(cat "$T/out")"
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || rc=$?
[ $rc = 1 ] || t_fail "fsck --repair exit $rc with orphans: $(cat "$T/out")"
[ ! -e "$CIPHER/cmkfs.links/$gone" ] && [ ! -e "$CIPHER/cmkfs.links/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" ] ||
	t_fail "orphans left in cmkfs.links: $(cat "$T/out")"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck after the orphans' repair: $(cat "$T/out")"
t_mount
nok=$(python3 - "$MNT" <<'PY'
import os, sys
n = 0
for d in ("a", "b"):
    for e in os.listdir(os.path.join(sys.argv[1], d)):
        os.readlink(os.path.join(sys.argv[1], d, e))
        n += 1
print(n)
PY
) || t_fail "a symlink left does not read: $nok"
[ "$nok" = $((nlinks - 3)) ] || t_fail "$nok symlinks read, want $((nlinks - 3))"
t_umount
t_ok "fsck reports orphaned side files, --repair sets them aside, then clean; every link left reads"
