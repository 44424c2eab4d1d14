#!/usr/bin/env bash
# tests/mount/t_bind.sh — format 3 binds symlink targets and xattr values to
# their owner, with randomized encryption (doc/FORMAT.md §4.3, §4.4). From
# the adversary's seat (cp, mv, setfattr on the cipher directory, no key):
# a symlink copied from another directory or two swapped in one directory,
# a sealed xattr value copied from another file or directory, each read as
# EIO and named by fsck (exit 1); equal targets and equal values have
# different ciphertext; rename and link of symlinks through the mount keep
# their targets.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_need getfattr
t_need setfattr
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
t_mkvol
t_mount

mkdir "$MNT/a" "$MNT/b"
ln -s /secret/payroll "$MNT/a/l1"
ln -s same "$MNT/a/s1"; ln -s same "$MNT/a/s2"
ln -s /attacker/controlled "$MNT/b/evil"
long=$(python3 -c 'print("x" * 3500)')
ln -s "$long" "$MNT/a/long1"; ln -s /b/long "$MNT/b/long2"
: >"$MNT/a/f1"; : >"$MNT/a/f2"; : >"$MNT/b/f3"
setfattr -n user.acl -v role=admin "$MNT/a/f1"
setfattr -n user.acl -v role=admin "$MNT/a/f2"
setfattr -n user.acl -v role=user "$MNT/b/f3"
setfattr -n user.d -v secret "$MNT/a"
setfattr -n user.d -v public "$MNT/b"
# rename and link through the mount: made anew where they go, still read
ln -s /moved "$MNT/a/m"; mv "$MNT/a/m" "$MNT/b/m"
ln "$MNT/b/m" "$MNT/a/mlink"
mv "$MNT/a/long1" "$MNT/b/long1"; mv "$MNT/b/long1" "$MNT/a/long1"
[ "$(readlink "$MNT/b/m")" = /moved ] && [ "$(readlink "$MNT/a/mlink")" = /moved ] &&
	[ ! -e "$MNT/a/m" ] && [ ! -L "$MNT/a/m" ] || t_fail "rename/link of a symlink"
[ "$(readlink "$MNT/a/long1")" = "$long" ] || t_fail "rename of a long symlink"
[ "$(stat -c %h "$MNT/b/m")" = 1 ] || t_fail "a renamed symlink has $(stat -c %h "$MNT/b/m") links"
t_ok "rename and link of symlinks through the mount keep their targets"

# Backing paths by inode: the mount shows the backing objects' numbers (a
# remount first: a renamed symlink is a new backing inode, whose number
# the kernel learns when its cached attributes expire).
t_remount
bp() { find "$CIPHER" -inum "$(stat -c %i "$MNT/$1")" -print -quit; }
for p in a b a/l1 a/s1 a/s2 b/evil a/long1 b/long2 a/f1 a/f2 b/f3; do
	eval "B_${p//\//_}=\$(bp $p)"
done
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck before tampering: $(cat "$T/out")"

# Equality: two symlinks with one target, two equal xattr values.
[ "$(readlink "$B_a_s1")" != "$(readlink "$B_a_s2")" ] || t_fail "equal targets, equal ciphertext"
xv() { getfattr --absolute-names -d -m '^user\.' -e hex "$1" | sed -n 's/^user\.[^=]*=//p'; }
[ -n "$(xv "$B_a_f1")" ] && [ "$(xv "$B_a_f1")" != "$(xv "$B_a_f2")" ] || t_fail "equal xattr values, equal ciphertext"
xn=$(getfattr --absolute-names -d -m '^user\.' "$B_a_f1" | sed -n 's/=.*//p' | head -1)
t_ok "equal symlink targets and equal xattr values have different ciphertext"

# The adversary: copy b/evil over a/l1 (cp -P), swap a/s1 and a/long1 (mv),
# copy f1's sealed value onto f3 and a's onto b.
rm "$B_a_l1"; cp -P "$B_b_evil" "$B_a_l1"
mv "$B_a_s1" "$T/x"; mv "$B_a_long1" "$B_a_s1"; mv "$T/x" "$B_a_long1"
setfattr -n "$xn" -v "$(xv "$B_a_f1")" "$B_b_f3"
dn=$(getfattr --absolute-names -d -m '^user\.' "$B_a" | sed -n 's/=.*//p' | head -1)
setfattr -n "$dn" -v "$(xv "$B_a")" "$B_b"

t_mount
for l in a/l1 a/s1 a/long1; do
	out=$(readlink -v "$MNT/$l" 2>&1) && t_fail "$l reads as '$out' after the splice"
	case $out in *"Input/output error"*) ;; *) t_fail "$l: $out, want EIO" ;; esac
done
[ "$(readlink "$MNT/a/s2")" = same ] && [ "$(readlink "$MNT/b/evil")" = /attacker/controlled ] ||
	t_fail "an untouched symlink does not read"
for x in "user.acl b/f3" "user.d b"; do
	set -- $x
	out=$(getfattr -n "$1" "$MNT/$2" 2>&1) && t_fail "$2 $1 reads after the copy: $out"
	case $out in *"Input/output error"*) ;; *) t_fail "$2 $1: $out, want EIO" ;; esac
done
[ "$(getfattr --only-values -n user.acl "$MNT/a/f2")" = role=admin ] || t_fail "an untouched value does not read"
t_umount
t_ok "a symlink copied from another directory, two swapped in one, a value copied from another file or directory: EIO"

rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || rc=$?
[ $rc = 1 ] || t_fail "fsck exit $rc after the splices: $(cat "$T/out")"
for b in "$B_a_l1" "$B_a_s1" "$B_a_long1"; do
	grep -F -e "${b#"$CIPHER"/}" "$T/out" | grep -q "copied or moved from another symlink" ||
		t_fail "fsck does not name $b: $(cat "$T/out")"
done
grep -F -e "${B_b_f3#"$CIPHER"/}" "$T/out" | grep -q "copied from another file or directory" ||
	t_fail "fsck does not name the copied file value: $(cat "$T/out")"
grep -F -e "${B_b#"$CIPHER"/}" "$T/out" | grep -q "copied from another file or directory" ||
	t_fail "fsck does not name the copied directory value: $(cat "$T/out")"
"$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/out.json" 2>/dev/null || true
python3 - "$T/out.json" <<'PY' || t_fail "fsck --json: $(tail -1 "$T/out.json")"
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]
assert s["problems"] >= 5, s
PY
t_ok "fsck names each splice (exit 1, text and --json)"
