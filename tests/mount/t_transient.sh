#!/usr/bin/env bash
# tests/mount/t_transient.sh — transient zones (issue #4): files older than
# the TTL vanish from the mount and from the backing store (header
# destroyed first), newer ones stay, expiry runs when a zone is added,
# periodically, and at mount for files that expired while unmounted; the
# zone list is sealed (no plaintext path in the cipher directory); the
# audit records counts, not names. Age is the creation time the header
# authenticates (format 3): time passes by the test hook
# CMKFS_TEST_CLOCK_SKEW (include/cmkfs/tclock.h), set on the daemon that
# creates or judges, never by backing mtimes.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_TRANSIENT_SWEEP_SEC=1
H3=$((3 * 3600))
t_mkvol
# Three hours ago: the files that will be old.
t_mount
mkdir -p "$MNT/relay/sub" "$MNT/keep"
for f in old1 old2; do echo "$f" >"$MNT/relay/$f"; done
echo old >"$MNT/relay/sub/deep-old"
echo keep >"$MNT/keep/old-but-not-transient"
echo later >"$MNT/keep/later"
long=$(printf 'L%.0s' $(seq 220))
echo long >"$MNT/relay/$long"
t_umount
# Now: the clock of the daemon is three hours ahead.
CMKFS_TEST_CLOCK_SKEW=$H3 t_mount
echo new >"$MNT/relay/new"
objects() { find "$CIPHER" -type f ! -name cmkfs.dirid ! -name cmkfs.conf ! -name cmkfs.transient ! -name '*.name' | wc -l; }
nb=$(objects)

"$CMKFS" transient add --service-key "$KEY" --ttl 2h "$MNT/relay" "$CIPHER" >/dev/null ||
	t_fail "transient add"
"$CMKFS" transient list --service-key "$KEY" "$CIPHER" | grep -qx "/relay	2h00m" ||
	t_fail "list: $("$CMKFS" transient list --service-key "$KEY" "$CIPHER")"
for f in old1 old2 sub/deep-old "$long"; do
	[ -e "$MNT/relay/$f" ] && t_fail "expired file still visible: relay/$f"
done
[ "$(cat "$MNT/relay/new")" = new ] || t_fail "fresh file lost"
[ -e "$MNT/keep/old-but-not-transient" ] || t_fail "file outside the zone expired"
na=$(objects)
[ $((nb - na)) = 4 ] || t_fail "backing files: $nb before, $na after (want 4 fewer)"
[ -z "$(find "$CIPHER" -name 'cmkfs.ln.*')" ] || t_fail "long-name side file left behind"
grep -rqa relay "$CIPHER" && t_fail "zone path visible in the cipher directory"
t_ok "zone added: 4 expired entries gone from mount and backing store; fresh and non-zone files stay"

# periodic expiry while mounted: an old file moved into the zone (a
# rename keeps its creation time) goes at the next sweep, with no add
mv "$MNT/keep/later" "$MNT/relay/later"
wait_gone() { for _ in $(seq 300); do [ -e "$1" ] || return 0; sleep 0.1; done; return 1; }
wait_gone "$MNT/relay/later" || t_fail "periodic sweep did not expire relay/later"
[ "$(cat "$MNT/relay/new")" = new ] || t_fail "fresh file lost to the periodic sweep"
t_ok "periodic sweep expired an old file renamed into the zone; fresh files stay"
t_umount

# expiry at mount: a file created now expires while unmounted (the next
# mount is three hours later) and is never served; its header is
# destroyed before the unlink (read through a descriptor held open)
CMKFS_TRANSIENT_SWEEP_SEC=3600 t_mount
echo offline >"$MNT/relay/offline"
# (the mount reports backing inode numbers)
bpath=$(find "$CIPHER" -inum "$(stat -c %i "$MNT/relay/offline")")
[ -f "$bpath" ] || t_fail "backing file of relay/offline not found"
t_umount
exec 9<"$bpath"
head -c 148 "$bpath" >"$T/hdr.before"
CMKFS_TEST_CLOCK_SKEW=$H3 CMKFS_TRANSIENT_SWEEP_SEC=3600 t_mount
[ -e "$MNT/relay/offline" ] && t_fail "file expired while unmounted was served after mount"
[ "$(cat "$MNT/relay/new")" = new ] || t_fail "fresh file lost at mount"
[ -e "$bpath" ] && t_fail "backing file of relay/offline still there"
head -c 148 <&9 >"$T/hdr.after"
exec 9<&-
[ "$(wc -c <"$T/hdr.after")" = 148 ] || t_fail "could not read the unlinked file"
cmp -s "$T/hdr.before" "$T/hdr.after" && t_fail "header not destroyed before unlink"
t_ok "expiry at mount: a file that expired while unmounted is gone before the first access, its header overwritten before the unlink"
t_umount
grep -q '"event":"transient_expire"' "$CMKFS_AUDIT_LOG" || t_fail "expiry not audited"
grep -q '"detail":"[0-9]* expired' "$CMKFS_AUDIT_LOG" || t_fail "audit lacks counts"
grep -q 'old1\|deep-old' "$CMKFS_AUDIT_LOG" && t_fail "file names in the audit log"
t_ok "expiry audited with counts, no names"

# remove the zone: nothing expires any more, not even three hours later
t_mount
echo stays >"$MNT/relay/stays"
"$CMKFS" transient remove --service-key "$KEY" /relay "$CIPHER" >/dev/null || t_fail "remove"
t_umount
CMKFS_TEST_CLOCK_SKEW=$H3 t_mount
[ -e "$MNT/relay/stays" ] || t_fail "expired after the zone was removed"
t_umount
rc=0; "$CMKFS" transient add --service-key "$KEY" --ttl 25h /relay "$CIPHER" 2>/dev/null || rc=$?
[ $rc = 2 ] || t_fail "--ttl 25h: exit $rc, want 2"
rc=0; "$CMKFS" transient add --service-key "$KEY" --ttl 1h /../x "$CIPHER" 2>/dev/null || rc=$?
[ $rc = 2 ] || t_fail "path with ..: exit $rc, want 2"
rc=0; CMKFS_TEST_CLOCK_SKEW=-1 "$CMKFS" transient list --service-key "$KEY" "$CIPHER" 2>/dev/null || rc=$?
[ $rc = 2 ] || t_fail "CMKFS_TEST_CLOCK_SKEW=-1: exit $rc, want 2 (the hook never moves the clock back)"
# tampering with the sealed zone list is detected
printf X | dd of="$CIPHER/cmkfs.transient" bs=1 seek=20 conv=notrunc status=none
rc=0; "$CMKFS" transient list --service-key "$KEY" "$CIPHER" 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "tampered" "$T/err" || t_fail "tampered zone list: rc $rc $(cat "$T/err")"
t_ok "remove stops expiry; TTL over 24h, '..' and a negative clock skew refused; a tampered zone list is refused"
