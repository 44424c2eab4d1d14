#!/usr/bin/env bash
# tests/mount/t_linkfsck.sh — fsck of format-3 bindings beyond one name
# (include/cmkfs/linkfsck.h, doc/FORMAT.md §2.1). From the backup admin's
# and the adversary's seat (dd, cp, rm on the cipher directory, no key):
# an old header put back that still names a second, unlinked name (as a
# killed unlink or rename leaves it) lets a copy of the file at that name
# open there: fsck names both backing files (exit 1, text and --json) and
# repair rewrites neither; without the copy, fsck names the stale slot and
# --repair drops it (REWRITTEN), mtime kept, then clean. A link set put
# back after its file's last name went (orphaned), a valid set copied
# under another file id, a stray temporary and an unknown name in
# cmkfs.hl/ are named; --repair quarantines them and fsck is clean.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
t_mkvol
t_mount

bp() { find "$CIPHER" -inum "$(stat -c %i "$MNT/$1")" -print -quit; }
id_of() { python3 -c 'import sys; print(open(sys.argv[1], "rb").read(148)[12:28].hex())' "$1"; }
fsck_rc() { local rc=0; "$CMKFS" fsck "$@" --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || rc=$?; echo $rc; }

printf 'two names\n' >"$MNT/a"
B_a=$(bp a)
ln "$MNT/a" "$MNT/b"
B_b=$(find "$CIPHER" -inum "$(stat -c %i "$MNT/b")" ! -path "$B_a" -print -quit)
[ -n "$B_b" ] || t_fail "no second backing name"
dd if="$B_a" of="$T/hdr.ab" bs=148 count=1 status=none	# the backup's header: {a, b}
rm "$MNT/b"
printf 'x\n' >"$MNT/g1"; ln "$MNT/g1" "$MNT/g2"; ln "$MNT/g1" "$MNT/g3"
printf 'y\n' >"$MNT/m1"; ln "$MNT/m1" "$MNT/m2"; ln "$MNT/m1" "$MNT/m3"
G_set="$CIPHER/cmkfs.hl/$(id_of "$(bp g1)")"
M_set="$CIPHER/cmkfs.hl/$(id_of "$(bp m1)")"
[ -f "$G_set" ] && [ -f "$M_set" ] || t_fail "three names, no link set"
cp -p "$G_set" "$T/g.set"
rm "$MNT/g1" "$MNT/g2" "$MNT/g3"
[ ! -e "$G_set" ] || t_fail "the link set outlived its file's names"
t_umount
[ "$(fsck_rc)" = 0 ] || t_fail "fsck before tampering: $(cat "$T/out")"

# The old header put back: {a, b} while b is gone. A copy at b opens.
dd if="$T/hdr.ab" of="$B_a" bs=148 count=1 conv=notrunc status=none
cp -p "$B_a" "$B_b"
t_mount
[ "$(cat "$MNT/b")" = "two names" ] || t_fail "the copy does not open at the stale place"
t_umount
rc=$(fsck_rc)
[ "$rc" = 1 ] || t_fail "fsck exit $rc with a copy at a stale place: $(cat "$T/out")"
for b in "$B_a" "$B_b"; do
	grep -F -e "${b#"$CIPHER"/}" "$T/out" | grep -q "file id also held by another backing file" ||
		t_fail "fsck does not name $b: $(cat "$T/out")"
done
rc=$(fsck_rc --json)
[ "$rc" = 1 ] && grep -q '"problem":"file id also held' "$T/out" || t_fail "fsck --json: $(cat "$T/out")"
rc=$(fsck_rc --repair)
[ "$rc" = 1 ] && [ "$(grep -c '^NOT-REPAIRED' "$T/out")" = 2 ] ||
	t_fail "repair of a copied file: exit $rc: $(cat "$T/out")"
rm "$B_b"	# the admin removes the copy
mt=$(stat -c %Y "$B_a")
rc=$(fsck_rc)
[ "$rc" = 1 ] && grep -F -e "${B_a#"$CIPHER"/}" "$T/out" | grep -q "header still names a place" ||
	t_fail "stale slot not named: exit $rc: $(cat "$T/out")"
rc=$(fsck_rc --repair)
grep -q "^REWRITTEN .*bound to the file's names alone" "$T/out" || t_fail "stale slot not rewritten: $(cat "$T/out")"
[ "$(stat -c %Y "$B_a")" = "$mt" ] || t_fail "the rewrite changed the backing mtime"
[ "$(fsck_rc)" = 0 ] || t_fail "not clean after the repair: $(cat "$T/out")"
cp -p "$B_a" "$B_b"
t_mount
out=$(cat "$MNT/b" 2>&1) && t_fail "a copy at the dropped place still opens: $out"
[ "$(cat "$MNT/a")" = "two names" ] || t_fail "/a after the repair"
t_umount
rm "$B_b"
t_ok "an old header naming an unlinked name: a copy there opens and both are named (exit 1, --json), not rewritten; alone, the stale slot is named and --repair drops it, mtime kept; clean after"

# cmkfs.hl/: an orphaned set, a set under another id, a temporary, a name.
cp -p "$T/g.set" "$G_set"
fake="$CIPHER/cmkfs.hl/$(id_of "$B_a")"	# /a's id, m's set
[ "$fake" != "$M_set" ] || t_fail "the other id is m's"
cp -p "$M_set" "$fake"
: >"$CIPHER/cmkfs.hl/cmkfs.tmp.00000000000000ab"
: >"$CIPHER/cmkfs.hl/notanid"
rc=$(fsck_rc)
[ "$rc" = 1 ] || t_fail "fsck exit $rc with a tampered cmkfs.hl: $(cat "$T/out")"
grep -F -e "${G_set#"$CIPHER"/}" "$T/out" | grep -q "orphaned link set" || t_fail "orphan: $(cat "$T/out")"
grep -F -e "${fake#"$CIPHER"/}" "$T/out" | grep -q "link set fails authentication" || t_fail "copied set: $(cat "$T/out")"
grep -q "cmkfs.hl/cmkfs.tmp.00000000000000ab: leftover temporary" "$T/out" || t_fail "temporary: $(cat "$T/out")"
grep -q "cmkfs.hl/notanid: unknown name in cmkfs.hl" "$T/out" || t_fail "unknown name: $(cat "$T/out")"
[ "$(grep -c '^DAMAGE' "$T/out")" = 4 ] || t_fail "more than the four: $(cat "$T/out")"
rc=$(fsck_rc --json)
[ "$rc" = 1 ] && grep -q '"problem":"orphaned link set' "$T/out" || t_fail "fsck --json: $(cat "$T/out")"
fsck_rc --repair >/dev/null
[ "$(grep -c '^QUARANTINED' "$T/out")" = 4 ] || t_fail "repair of cmkfs.hl: $(cat "$T/out")"
[ "$(fsck_rc)" = 0 ] || t_fail "not clean after repairing cmkfs.hl: $(cat "$T/out")"
t_mount
for n in m1 m2 m3; do [ "$(cat "$MNT/$n")" = y ] || t_fail "$n after the repair"; done
t_umount
t_ok "cmkfs.hl/: an orphaned set put back, a set copied under another id, a temporary, an unknown name: named (exit 1, --json), quarantined by --repair, clean after"
