#!/usr/bin/env bash
# tests/mount/t_fsck.sh — cmkfs fsck (issue #4): silent and exit 0 on a
# clean volume of thousands of files (checked beside the live mount, which
# keeps serving); then each kind of planted damage is found and reported
# with backing path, plaintext path and block; exit 1; wrong keys exit 3.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 setfattr
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
t_mkvol
t_mount
mkdir -p "$MNT/d/sub"
for i in $(seq 2000); do echo "file $i" >"$MNT/d/f$i"; done
head -c 20000 /dev/urandom >"$MNT/big"
head -c 9000 /dev/urandom >"$MNT/d/sub/cut"
head -c 9000 /dev/urandom >"$MNT/hdr"
echo x >"$MNT/d/sub/inner"
ln -s target "$MNT/link"
long=$(printf 'L%.0s' $(seq 200))
echo long >"$MNT/$long"
setfattr -n user.tag -v value "$MNT/big"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck on a clean volume: $(tail -5 "$T/out")"
grep -q "2005 files.*0 problems" "$T/out" || t_fail "clean summary: $(tail -2 "$T/out")"
[ "$(cat "$MNT/d/f1999")" = "file 1999" ] || t_fail "mount disturbed by fsck"
t_umount
t_ok "clean volume, 2005 files, beside a live mount: $(tail -1 "$T/out")"

# plant one damage of each kind (backing inode numbers = mount's st_ino)
t_mount
ino() { stat -c %i "$MNT/$1"; }
b_big=$(find "$CIPHER" -inum "$(ino big)"); b_cut=$(find "$CIPHER" -inum "$(ino d/sub/cut)")
b_hdr=$(find "$CIPHER" -inum "$(ino hdr)"); b_link=$(find "$CIPHER" -inum "$(ino link)")
b_sub=$(find "$CIPHER" -inum "$(ino d/sub)"); b_f7=$(find "$CIPHER" -inum "$(ino d/f7)")
t_umount
flip() { python3 -c 'import sys; p,o=sys.argv[1],int(sys.argv[2]); f=open(p,"r+b"); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' "$1" "$2"; }
flip "$b_big" $((148 + 4152 + 100))			# block 1 of /big
flip "$b_hdr" 40					# header of /hdr
truncate -s $((148 + 2 * 4152)) "$b_cut"		# /d/sub/cut at a block boundary
n=$(basename "$b_f7"); c=A; [ "${n:3:1}" = A ] && c=B
mv "$b_f7" "$(dirname "$b_f7")/${n:0:3}$c${n:4}"	# a name
tg=$(readlink "$b_link"); c=A; [ "${tg:3:1}" = A ] && c=B; rm "$b_link"; ln -s -- "${tg:0:3}$c${tg:4}" "$b_link"
touch "$(dirname "$b_big")/cmkfs.tmp.0123456789abcdef"	# interrupted op
side=$(find "$CIPHER" -name 'cmkfs.ln.*.name'); chmod u+w "$side"; flip "$side" 5
x=$(getfattr -d -m '^user\.' -e hex "$b_big" | sed -n 's/^\(user\.[^=]*\)=0x\(.*\)/\1 \2/p')
xv=${x#* }; setfattr -n "${x%% *}" -v "0x${xv:0:6}$([ "${xv:6:1}" = 0 ] && echo 1 || echo 0)${xv:7}" "$b_big"
chmod u+w "$b_sub/cmkfs.dirid"; flip "$b_sub/cmkfs.dirid" 0	# /d/sub's id
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "fsck exit $rc on a damaged volume"
chk() { grep -F -- "$1" "$T/out" | grep -qF -- "$2" || t_fail "fsck missed: $2 ($1): $(cat "$T/out")"; }
chk "$b_big" "(/big): block fails authentication [block 1]"
chk "$b_big" "(/big): xattr value fails authentication"
chk "$b_hdr" "(/hdr): header"
chk "$b_sub" "directory id (cmkfs.dirid) damaged"
chk "$(dirname "$b_f7")/" "name fails authentication"
chk "$b_link" "(/link): symlink target fails authentication"
chk "cmkfs.tmp.0123456789abcdef" "leftover temporary file"
chk "cmkfs.ln." "long-name side file does not match"
# (the cut file sits in /d/sub, whose id is damaged: fix the id, then it shows)
flip "$b_sub/cmkfs.dirid" 0
rc=0; "$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/json" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "fsck --json exit $rc"
python3 - "$T/json" "$b_cut" <<'PY' || t_fail "fsck --json: $(cat "$T/json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
cut = [r for r in rows if r.get("backing") == sys.argv[2]]
assert cut and cut[0]["path"] == "/d/sub/cut" and cut[0]["block"] == 1, cut
assert rows[-1]["summary"]["problems"] == len(rows) - 1
PY
t_ok "planted damage found: block, header, cut file, name, dir id, symlink, long name, xattr, temp file ($(grep -c . "$T/json") lines of JSON)"
# every fsck run is audited with the key that protects the volume
grep -q '"event":"fsck",.*"result":"ok","detail":"3 dirs, 2005 files, 2013 blocks checked, 0 problems"' "$T/audit.log" ||
	t_fail "clean fsck not audited: $(grep fsck "$T/audit.log" | head -2)"
[ "$(grep -c '"event":"fsck",.*"result":"error"' "$T/audit.log")" = 2 ] || t_fail "damage fsck runs not audited"
t_ok "fsck runs audited: result ok when clean, error with the problem count otherwise"

head -c 32 /dev/urandom >"$T/wrong.key"; chmod 600 "$T/wrong.key"
rc=0; "$CMKFS" fsck --service-key "$T/wrong.key" "$CIPHER" >/dev/null 2>&1 || rc=$?
[ $rc = 3 ] || t_fail "wrong key: exit $rc, want 3"
t_ok "keys unavailable: exit 3"

# A plaintext name is anyone's (another user of the mount): fsck shows its
# control bytes as '?', so a name cannot drive the admin's terminal.
t_mount
esc=$'evil\e]0;pwned\a\e[2Jname'
printf 'x%.0s' $(seq 5000) >"$MNT/$esc"
b_esc=$(find "$CIPHER" -inum "$(stat -c %i "$MNT/$esc")")
t_umount
flip "$b_esc" $((148 + 4152 + 10))		# block 1 of it
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "fsck exit $rc with a damaged file"
grep -q $'\e' "$T/out" && t_fail "an escape byte of a file name reached fsck's output"
grep -qF '/evil?]0;pwned??[2Jname)' "$T/out" || t_fail "the damaged file not named: $(cat "$T/out")"
t_ok "control bytes in names shown as '?'"
