#!/usr/bin/env bash
# tests/mount/t_skey.sh — the service key (issue #18; doc/KEYS.md "Service
# key", cmkfs-service-key(1)):
#   a. read once at mount: chmod 644 and moving the key file away do not
#      reach a live mount (key checks keep succeeding, files readable);
#   b. --service-key-fd from a pipe: mount, write, read, remount;
#   c. systemd credentials: $CREDENTIALS_DIRECTORY/cmkfs.service-key is
#      the default source (no --service-key);
#   d. `cmkfs service-key change`: the old key no longer opens the volume,
#      the new one does, data intact; the same key and a wrong current key
#      are refused; audited; with a customer-managed key only KEK_S moves;
#   e. kill -9 of the change at each of its file-changing syscalls
#      (crashload trace, as t_crash.sh part 3 does for cmk rotate): the
#      volume opens with exactly one of the two keys, data intact;
#   f. refused while mounted (the daemon keeps the key it read).
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need python3 sha256sum
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
mkdir -m 0700 "$CMKFS_RUNTIME_DIR"
unset CMKFS_SERVICE_KEY CREDENTIALS_DIRECTORY
CL=${TOP_BUILDDIR:-$top_builddir}/tests/mount/crashload
[ -x "$CL" ] || t_fail "crashload not built: $CL"

jget() { "$CMKFS" status --json "$1" | kv_json "$2"; }
sums() { (cd "$MNT" && find . -type f -exec sha256sum {} + | sort -k2); }
# fsck exit status of CIPHER under key $1 (0: opens and is clean; 3: the
# keys do not unlock it)
fsck_rc() {
	local rc=0
	"$CMKFS" fsck --service-key "$1" "$CIPHER" >"$T/fsck.out" 2>&1 || rc=$?
	echo "$rc"
}

# --- a. read once: the key file changed under a live mount ---
t_mkvol
"$CMKFS" mount --service-key "$KEY" --key-check-interval 1 "$CIPHER" "$MNT" ||
	t_fail "mount"
dd if=/dev/urandom of="$MNT/f1" bs=64k count=4 status=none
sums >"$T/want"
ok0=$(jget "$MNT" 'd["daemon"]["last_ok"]')
chmod 644 "$KEY"
sleep 2.5
mv "$KEY" "$T/moved.key"
sleep 2.5	# > 2 intervals after each change (each wait is 1 s +-10 %)
ok1=$(jget "$MNT" 'd["daemon"]["last_ok"]')
[ "$(jget "$MNT" 'd["daemon"]["locked"]')" = False ] ||
	t_fail "a: the mount locked after chmod/mv of its key file"
[ "$ok1" -ge $((ok0 + 4)) ] || t_fail "a: key checks did not keep succeeding (last_ok $ok0 -> $ok1)"
"$CMKFS" status "$MNT" >/dev/null || t_fail "a: status exit $?"
sums >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "a: data differs"
echo more >"$MNT/f2" || t_fail "a: write after the key file moved"
sums >"$T/want"
t_umount
mv "$T/moved.key" "$KEY"
chmod 600 "$KEY"
t_ok "a: chmod 644 then mv of the key file: mount stays unlocked, checks ok (last_ok +$((ok1 - ok0)) s), data readable and writable"

# --- b. --service-key-fd from a pipe ---
cat "$KEY" | "$CMKFS" mount --service-key-fd 3 --key-check-interval 1 "$CIPHER" "$MNT" 3<&0 ||
	t_fail "b: mount --service-key-fd from a pipe"
sleep 2.2
[ "$(jget "$MNT" 'd["daemon"]["locked"]')" = False ] || t_fail "b: locked"
sums >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "b: data differs"
echo piped >"$MNT/f3"
sums >"$T/want"
t_umount
# a 33-byte input is refused, not cut to 32
rc=0
{ cat "$KEY"; echo; } | "$CMKFS" mount --service-key-fd 0 "$CIPHER" "$MNT" 2>"$T/err" || rc=$?
[ "$rc" != 0 ] || { t_umount; t_fail "b: a 33-byte key from a pipe was accepted"; }
! t_is_mounted "$MNT" || t_fail "b: mounted with a 33-byte key"
# the regular-file mode rule holds for a descriptor too
cp "$KEY" "$T/open.key"
chmod 644 "$T/open.key"
rc=0
"$CMKFS" mount --service-key-fd 4 "$CIPHER" "$MNT" 4<"$T/open.key" 2>"$T/err" || rc=$?
[ "$rc" != 0 ] && ! t_is_mounted "$MNT" || t_fail "b: a 0644 key file through a descriptor was accepted"
rm -f "$T/open.key"
# a descriptor that is not open is refused (never one the daemon opens later)
rc=0
"$CMKFS" mount --service-key-fd 9 "$CIPHER" "$MNT" 9<&- 2>"$T/err" || rc=$?
[ "$rc" != 0 ] && ! t_is_mounted "$MNT" || t_fail "b: mounted with a closed descriptor"
t_ok "b: --service-key-fd 3 from a pipe mounts, checks ok, writes; 33 bytes (exit $rc for 0644) refused"

# --- c. systemd credentials ---
mkdir -m 0500 "$T/creds"
cp "$KEY" "$T/creds/cmkfs.service-key"
chmod 0400 "$T/creds/cmkfs.service-key"
CREDENTIALS_DIRECTORY=$T/creds "$CMKFS" mount --key-check-interval 1 "$CIPHER" "$MNT" ||
	t_fail "c: mount from \$CREDENTIALS_DIRECTORY"
sums >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "c: data differs"
# the credential really was the source: a wrong one fails
t_umount
head -c 32 /dev/urandom >"$T/creds/other"
chmod 0400 "$T/creds/other"
mv "$T/creds/other" "$T/creds/cmkfs.service-key"
rc=0
CREDENTIALS_DIRECTORY=$T/creds "$CMKFS" mount "$CIPHER" "$MNT" 2>"$T/err" || rc=$?
[ "$rc" != 0 ] && ! t_is_mounted "$MNT" || t_fail "c: mounted although the credential is another key"
grep -q "$T/creds/cmkfs.service-key\|wrong key\|does not unlock" "$T/err" ||
	t_fail "c: message does not point at the credential: $(cat "$T/err")"
t_ok "c: \$CREDENTIALS_DIRECTORY/cmkfs.service-key (0400) is the default source (a wrong one: exit $rc)"

# --- d. service-key change ---
"$CMKFS" service-key new "$T/new.key" >/dev/null || t_fail "d: service-key new"
[ "$(stat -c %a "$T/new.key")" = 600 ] && [ "$(stat -c %s "$T/new.key")" = 32 ] ||
	t_fail "d: new key mode/size $(stat -c '%a %s' "$T/new.key")"
rc=0
"$CMKFS" service-key new "$T/new.key" 2>/dev/null || rc=$?
[ "$rc" = 1 ] || t_fail "d: service-key new over an existing file: exit $rc"
cp "$T/new.key" "$T/new.copy"
rc=0
"$CMKFS" service-key change --service-key "$T/new.key" --new-key "$KEY" "$CIPHER" 2>"$T/err" || rc=$?
[ "$rc" = 8 ] || t_fail "d: change with a wrong current key: exit $rc: $(cat "$T/err")"
rc=0
"$CMKFS" service-key change --service-key "$KEY" --new-key "$KEY" "$CIPHER" 2>"$T/err" || rc=$?
[ "$rc" = 8 ] && grep -q "already under" "$T/err" || t_fail "d: change to the same key: exit $rc: $(cat "$T/err")"
old_id=$(jget "$CIPHER" 'd["layers"][0]["key_id"]')
"$CMKFS" service-key change --service-key "$KEY" --new-key "$T/new.key" "$CIPHER" >"$T/out" ||
	t_fail "d: service-key change"
new_id=$(jget "$CIPHER" 'd["layers"][0]["key_id"]')
[ "$new_id" != "$old_id" ] && [ "$(jget "$CIPHER" 'd["layers"][1]["key_id"]')" = "$new_id" ] ||
	t_fail "d: key ids after the change: $old_id -> $new_id"
[ "$(fsck_rc "$KEY")" = 3 ] || t_fail "d: the old key still opens the volume: $(cat "$T/fsck.out")"
[ "$(fsck_rc "$T/new.key")" = 0 ] || t_fail "d: fsck with the new key: $(cat "$T/fsck.out")"
rc=0
"$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" 2>/dev/null || rc=$?
[ "$rc" = 8 ] && ! t_is_mounted "$MNT" || t_fail "d: mount with the old key: exit $rc, want 8 (not this volume's key)"
"$CMKFS" mount --service-key "$T/new.key" "$CIPHER" "$MNT" || t_fail "d: mount with the new key"
sums >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "d: data differs after the change"
grep -q '"event":"service_key_change".*"key":"'"$new_id"'","result":"ok","detail":"'"$old_id"'"' "$CMKFS_AUDIT_LOG" ||
	t_fail "d: no audit line for the change"
# --- f. refused while mounted ---
rc=0
"$CMKFS" service-key change --service-key "$T/new.key" --new-key "$KEY" "$CIPHER" 2>"$T/err" || rc=$?
[ "$rc" = 1 ] && grep -q "mounted" "$T/err" || t_fail "f: change while mounted: exit $rc: $(cat "$T/err")"
[ "$(jget "$CIPHER" 'd["layers"][0]["key_id"]')" = "$new_id" ] || t_fail "f: config changed while mounted"
sums >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "f: data differs"
t_umount
# back to the first key, both keys through descriptors
"$CMKFS" service-key change --service-key-fd 3 --new-key-fd 4 "$CIPHER" 3<"$T/new.key" 4<"$KEY" >/dev/null ||
	t_fail "d: change through descriptors"
[ "$(jget "$CIPHER" 'd["layers"][0]["key_id"]')" = "$old_id" ] || t_fail "d: not back on the first key"
t_ok "d: change $old_id -> $new_id: old key refused (fsck 3, mount fails), new opens, data intact, audited; back via --service-key-fd/--new-key-fd"
t_ok "f: change refused while mounted (exit 1), config untouched"

# --- e. kill -9 at each syscall point of the change ---
NOLEAK="env ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0"
cur=$KEY other=$T/new.key
declare -A id=([$KEY]=$old_id [$T/new.key]=$new_id)
change() {	# change [trace args...]: to the key we are not on
	"$@" "$CMKFS" service-key change --service-key "$cur" --new-key "$other" "$CIPHER"
}
swap() { local t=$cur; cur=$other; other=$t; }
# after a kill: the config names exactly one of the keys, that one opens
# the volume (a temporary config left in the root is all fsck may name;
# repair removes it) and the other does not
settle() {
	local now frc
	now=$(jget "$CIPHER" 'd["layers"][0]["key_id"]') || t_fail "$1: status"
	if [ "$now" = "${id[$other]}" ]; then
		swap; newkey=$((newkey + 1))
	elif [ "$now" = "${id[$cur]}" ]; then
		oldkey=$((oldkey + 1))
	else
		t_fail "$1: volume now under '$now'"
	fi
	[ "$(fsck_rc "$other")" = 3 ] || t_fail "$1: the other key opens it too: $(cat "$T/fsck.out")"
	frc=$(fsck_rc "$cur")
	if [ "$frc" != 0 ]; then
		grep -qi "temporar" "$T/fsck.out" || t_fail "$1: fsck exit $frc: $(cat "$T/fsck.out")"
		leftovers=$((leftovers + 1))
		"$CMKFS" fsck --repair --service-key "$cur" "$CIPHER" >/dev/null 2>&1 || true
		[ "$(fsck_rc "$cur")" = 0 ] || t_fail "$1: not clean after repair: $(cat "$T/fsck.out")"
	fi
}
newkey=0 oldkey=0 leftovers=0
change "$CL" trace -k 0 -o "$T/count" -l "$T/trace.log" -- $NOLEAK >/dev/null ||
	t_fail "e: change under trace"
swap
read -r npts _ <"$T/count"
[ "$npts" -ge 3 ] || t_fail "e: only $npts syscall points"
t_log "e: $npts syscall points: $(awk '{ printf "%s ", $2 }' "$T/trace.log")"
for k in $(seq "$npts"); do
	change "$CL" trace -k "$k" -o "$T/count" -- $NOLEAK >/dev/null 2>&1 || true
	settle "e: change killed at syscall $k ($(awk -v k="$k" '$1 == k { print $2 }' "$T/trace.log"))"
	change >/dev/null || t_fail "e: change after a kill at $k"
	swap
done
[ "$newkey" -ge 1 ] && [ "$oldkey" -ge 1 ] ||
	t_fail "e: $oldkey kills left the old key, $newkey the new one: the points missed the switch"
"$CMKFS" mount --service-key "$cur" "$CIPHER" "$MNT" || t_fail "e: mount after the kills"
sums >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "e: data differs after the kills"
t_umount
t_ok "e: change killed at each of its $npts syscall points: $oldkey on the old key, $newkey on the new, never both or neither, $leftovers leftover temporaries (repair clears them), data intact"

# --- d (CMK). With a customer-managed key only KEK_S moves ---
kv_start
KID=$(kv_key cmk1)
rm -rf --one-file-system "$CIPHER"
mkdir "$CIPHER"
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null || t_fail "init --cmk"
t_mount
echo cmk >"$MNT/c"
t_umount
"$CMKFS" service-key change --service-key "$KEY" --new-key "$T/new.key" "$CIPHER" >"$T/out" ||
	t_fail "d: change with a CMK"
grep -q "KEK_S re-wrapped" "$T/out" || t_fail "d: CMK output: $(cat "$T/out")"
[ "$(jget "$CIPHER" 'd["layers"][1]["key_id"]')" = "$KID" ] || t_fail "d: the CMK layer moved"
[ "$(fsck_rc "$KEY")" = 3 ] || t_fail "d: CMK volume: old key still opens it"
"$CMKFS" mount --service-key "$T/new.key" "$CIPHER" "$MNT" || t_fail "d: CMK mount with the new key"
[ "$(cat "$MNT/c")" = cmk ] || t_fail "d: CMK data"
t_umount
t_ok "d: with a customer-managed key only KEK_S is re-wrapped; the CMK stays"
