#!/usr/bin/env bash
# tests/mount/t_place.sh — format 3 binds a regular file's contents to the
# names it lives at (doc/FORMAT.md §2, "Location"). From the adversary's
# seat (mv, cp, rm on the cipher directory, no key): contents moved from
# /secret/payroll.txt over /public/readme.txt, two files swapped in one
# directory, a file copied over another's name, a hard-linked file's
# contents moved away, its link set removed or rolled back: each reads EIO
# at access and is named by fsck (exit 1). Through the mount, rename
# (plain, over a file, RENAME_EXCHANGE), link (up to past the header's two
# slots, into a link set), and unlink keep every name readable across a
# remount, keep mtimes, and leave fsck clean.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
t_mkvol
t_mount

mkdir "$MNT/secret" "$MNT/public" "$MNT/h"
printf 'salary: 1,000,000\n' >"$MNT/secret/payroll.txt"
printf 'hello world\n' >"$MNT/public/readme.txt"
printf 'file A\n' >"$MNT/public/a"
printf 'file B\n' >"$MNT/public/b"
printf 'file C\n' >"$MNT/public/c"
printf 'victim\n' >"$MNT/public/victim"
printf 'linked\n' >"$MNT/h/one"
head -c 100000 /dev/urandom >"$T/big"; cp "$T/big" "$MNT/h/big"

# Through the mount: renames, hard links into a link set, unlinks.
touch -d '2001-02-03 04:05:06' "$MNT/public/c"
mv "$MNT/public/c" "$MNT/secret/c2"
[ "$(stat -c %Y "$MNT/secret/c2")" = "$(date -d '2001-02-03 04:05:06' +%s)" ] ||
	t_fail "rename changed the file's mtime"
for i in 2 3 4 5; do ln "$MNT/h/one" "$MNT/h/l$i"; done
mv "$MNT/h/l3" "$MNT/public/l3moved"
rm "$MNT/h/l4"
ln "$MNT/h/big" "$MNT/h/big2"; mv "$MNT/h/big2" "$MNT/secret/big3"
xchg() { python3 - "$1" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
if libc.renameat2(AT_FDCWD, sys.argv[1].encode(), AT_FDCWD, sys.argv[2].encode(), RENAME_EXCHANGE) != 0:
    sys.exit(os.strerror(ctypes.get_errno()))
PY
}
xchg "$MNT/public/a" "$MNT/public/b" || t_fail "RENAME_EXCHANGE of two files"
mkdir "$MNT/public/xd"; printf 'in x\n' >"$MNT/secret/xf"
xchg "$MNT/public/xd" "$MNT/secret/xf" || t_fail "RENAME_EXCHANGE of a directory and a file"
printf 'replaced\n' >"$T/rep"; cp "$T/rep" "$MNT/public/new"; mv "$MNT/public/new" "$MNT/public/victim"
t_remount
check() {
	[ "$(cat "$MNT/secret/c2")" = "file C" ] &&
	[ "$(cat "$MNT/public/a")" = "file B" ] && [ "$(cat "$MNT/public/b")" = "file A" ] &&
	[ "$(cat "$MNT/public/victim")" = replaced ] &&
	[ "$(cat "$MNT/public/xd")" = "in x" ] && [ -d "$MNT/secret/xf" ] &&
	for n in h/one h/l2 h/l5 public/l3moved; do [ "$(cat "$MNT/$n")" = linked ] || exit 1; done &&
	[ "$(stat -c %h "$MNT/h/one")" = 4 ] && [ ! -e "$MNT/h/l4" ] &&
	cmp -s "$MNT/h/big" "$T/big" && cmp -s "$MNT/secret/big3" "$T/big"
}
(check) || t_fail "names through the mount after a remount"
[ -n "$(ls -A "$CIPHER/cmkfs.hl" 2>/dev/null)" ] || t_fail "four links but no link set"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck after renames and links: $(cat "$T/out")"
t_mount
# Back to one link: the link set goes.
rm "$MNT/h/l2" "$MNT/h/l5" "$MNT/public/l3moved"
[ "$(cat "$MNT/h/one")" = linked ] || t_fail "last link unreadable"
t_ok "rename (plain, over a file, exchange), link into a link set and unlink through the mount: every name reads, mtime kept, fsck clean"

# Backing paths by inode number.
printf 'x\n' >"$MNT/h/m1"; ln "$MNT/h/m1" "$MNT/h/m2"; ln "$MNT/h/m1" "$MNT/h/m3"
bp() { find "$CIPHER" -inum "$(stat -c %i "$MNT/$1")" -print -quit; }
B_pay=$(bp secret/payroll.txt); B_read=$(bp public/readme.txt)
B_a=$(bp public/a); B_b=$(bp public/b); B_vic=$(bp public/victim); B_c2=$(bp secret/c2)
B_m1=$(bp h/m1)
set_of() { python3 - "$1" <<'PY'
import sys
h = open(sys.argv[1], "rb").read(148)
print(h[12:28].hex())
PY
}
hl="$CIPHER/cmkfs.hl/$(set_of "$B_m1")"
[ -f "$hl" ] || t_fail "three links, no link set file $hl"
cp -p "$hl" "$T/hl.old"
ln "$MNT/h/m1" "$MNT/h/m4"	# a newer set version
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck before tampering: $(cat "$T/out")"

# The adversary.
cp -p "$B_pay" "$T/pay"
mv "$B_pay" "$B_read"				# /public/readme.txt = payroll
mv "$B_a" "$T/tmpa"; mv "$B_b" "$B_a"; mv "$T/tmpa" "$B_b"	# swap in one directory
cp -p "$B_c2" "$B_vic"				# a copy over another name
cp -p "$T/hl.old" "$hl"				# the link set rolled back
"$CMKFS" mount -f --service-key "$KEY" "$CIPHER" "$MNT" 2>"$T/daemon.log" &
FGPID=$!
for _ in $(seq 200); do t_is_mounted "$MNT" && break; sleep 0.05; done
t_is_mounted_sure "$MNT" || t_fail "foreground mount: $(cat "$T/daemon.log")"
for n in public/readme.txt public/a public/b public/victim h/m1 h/m2; do
	out=$(cat "$MNT/$n" 2>&1) && t_fail "$n reads after the splice: $out"
	case $out in *"Input/output error"*) ;; *) t_fail "$n: not EIO: $out" ;; esac
done
[ "$(cat "$MNT/secret/c2")" = "file C" ] || t_fail "the untouched original of the copy"
grep -F -e "${B_read#"$CIPHER"/}" "$T/daemon.log" | grep -q "contents bound to another location" ||
	t_fail "the daemon's log does not name the splice: $(cat "$T/daemon.log")"
t_umount
wait "$FGPID" || true
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || rc=$?
[ $rc = 1 ] || t_fail "fsck exit $rc after the splices: $(cat "$T/out")"
for b in "$B_read" "$B_a" "$B_b" "$B_vic"; do
	grep -F -e "${b#"$CIPHER"/}" "$T/out" | grep -q "contents bound to another location" ||
		t_fail "fsck does not name $b: $(cat "$T/out")"
done
grep -F -e "${B_m1#"$CIPHER"/}" "$T/out" | grep -q "link set" ||
	t_fail "fsck does not name the rolled-back link set: $(cat "$T/out")"
"$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/out.json" 2>/dev/null || true
grep -q "contents bound to another location" "$T/out.json" || t_fail "fsck --json: $(tail -2 "$T/out.json")"
# A link set deleted.
rm -f "$hl"
t_mount
out=$(cat "$MNT/h/m3" 2>&1) && t_fail "h/m3 reads without its link set: $out"
t_umount
t_ok "contents moved across directories, swapped, copied over a name, a link set rolled back or deleted: EIO at access, named by fsck (exit 1)"
