#!/usr/bin/env bash
# tests/mount/t_zones.sh — the transient-zone list is part of the
# authenticated volume state (format 3), from the adversary's seat: only
# rm/cp/touch on the cipher directory, no keys.
#  a) the list deleted: the mount is refused naming it; fsck exit 1 names it
#  b) an older copy of the list put back: the same
#  c) old list + backdated backing mtimes (files outside today's zones
#     included): nothing outside today's zones is destroyed, nothing inside
#     destroyed early
#  d) backing mtimes in 2099 keep no file past its TTL
#  e) a crash between the list write and the config write: the mount
#     works, commits the list, and the list before it is then refused
#  f) under a live mount, a config put back with its own older list: the
#     mount keeps expiring by today's zones
# Age is the authenticated creation time, moved by CMKFS_TEST_CLOCK_SKEW.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
export CMKFS_TRANSIENT_SWEEP_SEC=3600
H3=$((3 * 3600))
t_mkvol
tr_() { "$CMKFS" transient "$1" --service-key "$KEY" "${@:2}" "$CIPHER" >/dev/null || t_fail "transient $*"; }
bpath() { find "$CIPHER" -inum "$(stat -c %i "$1")"; }

# The mount is refused, naming the list; nothing mounted.
mount_refused() {
	local rc=0
	"$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" 2>"$T/merr" || rc=$?
	if t_is_mounted "$MNT"; then
		"$CMKFS" umount "$MNT"
		t_fail "$1: mounted"
	fi
	[ $rc != 0 ] || t_fail "$1: mount exit 0"
	grep -q "cmkfs.transient: .*$2" "$T/merr" || t_fail "$1: mount said: $(cat "$T/merr")"
}
# fsck exit 1 naming the list (text and --json); extra args to fsck.
fsck_names() {
	local rc=0 what=$1 msg=$2
	shift 2
	"$CMKFS" fsck --service-key "$KEY" "$@" "$CIPHER" >"$T/fout" 2>&1 || rc=$?
	[ $rc = 1 ] || t_fail "$what: fsck exit $rc: $(cat "$T/fout")"
	grep -q "cmkfs.transient: .*$msg" "$T/fout" || t_fail "$what: fsck said: $(cat "$T/fout")"
	rc=0
	"$CMKFS" fsck --json --service-key "$KEY" "$@" "$CIPHER" >"$T/fjson" 2>/dev/null || rc=$?
	[ $rc = 1 ] || t_fail "$what: fsck --json exit $rc"
	python3 - "$T/fjson" "$msg" <<'PY' || t_fail "$what: fsck --json: $(cat "$T/fjson")"
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
hit = [r for r in rows if str(r.get("backing", "")).endswith("/cmkfs.transient")
       and re.search(sys.argv[2], r.get("problem", ""))]
summ = [r["summary"] for r in rows if "summary" in r]
sys.exit(0 if hit and summ and summ[0]["problems"] >= 1 and summ[0]["expired"] == 0 else 1)
PY
}
MISSING="is missing"
ROLLBACK="not the version"

# Setup, "three hours ago": /gone was a zone, /relay is today's.
t_mount
mkdir -p "$MNT/relay" "$MNT/gone" "$MNT/plain"
tr_ add --ttl 1h /gone
cp -p "$CIPHER/cmkfs.transient" "$T/list.gone"
cp -p "$CIPHER/cmkfs.conf" "$T/conf.gone"
tr_ remove /gone
tr_ add --ttl 2h /relay
cp -p "$CIPHER/cmkfs.transient" "$T/list.today"
for f in gone/keepme plain/x relay/due; do echo "$f" >"$MNT/$f"; done
keepme=$(bpath "$MNT/gone/keepme")
t_umount

# a) deleted
rm "$CIPHER/cmkfs.transient"
mount_refused "list deleted" "$MISSING"
fsck_names "list deleted" "$MISSING"
CMKFS_TEST_CLOCK_SKEW=$H3 fsck_names "list deleted, 3 h later" "$MISSING"
t_ok "a) list deleted: mount refused naming cmkfs.transient; fsck exit 1 names it (text, --json), expires nothing"

# b) an older copy put back (from before a later remove and add)
cp -p "$T/list.gone" "$CIPHER/cmkfs.transient"
mount_refused "old list" "$ROLLBACK"
fsck_names "old list" "$ROLLBACK"
t_ok "b) an older copy of the list put back: mount refused; fsck exit 1 names it"

# c) the issue's attack: old list + every backing mtime in 2000
find "$CIPHER" -exec touch -h -d 2000-01-01 {} +
CMKFS_TEST_CLOCK_SKEW=$H3 fsck_names "old list, mtimes 2000" "$ROLLBACK"
rc=0; CMKFS_TEST_CLOCK_SKEW=$H3 "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" 2>/dev/null || rc=$?
t_is_mounted "$MNT" && "$CMKFS" umount "$MNT"
[ -e "$keepme" ] || t_fail "old list + mtimes 2000: a file outside today's zones was destroyed"
[ $rc != 0 ] || t_fail "old list + mtimes 2000: mounted"
# today's list back, mtimes still 2000: nothing is due yet
cp -p "$T/list.today" "$CIPHER/cmkfs.transient"
find "$CIPHER" -exec touch -h -d 2000-01-01 {} +
t_mount
for f in gone/keepme plain/x relay/due; do
	[ "$(cat "$MNT/$f")" = "$f" ] || t_fail "mtimes 2000: $f destroyed early"
done
echo fresh >"$MNT/relay/fresh"
t_umount
t_ok "c) old list + mtimes 2000: fsck and mount refuse, nothing outside today's zones destroyed; with today's list nothing is destroyed early"

# d) mtimes 2099 keep nothing past its TTL
find "$CIPHER" -exec touch -h -d 2099-01-01 {} +
CMKFS_TEST_CLOCK_SKEW=$H3 t_mount
[ -e "$MNT/relay/due" ] && t_fail "mtime 2099: relay/due kept past its TTL"
[ -e "$MNT/relay/fresh" ] && t_fail "mtime 2099: relay/fresh kept past its TTL"
[ "$(cat "$MNT/gone/keepme")" = gone/keepme ] || t_fail "file outside the zones lost"
echo due2 >"$MNT/relay/due2"
t_umount
find "$CIPHER" -exec touch -h -d 2099-01-01 {} +
rc=0; CMKFS_TEST_CLOCK_SKEW=$((2 * H3)) "$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/fjson" 2>/dev/null || rc=$?
[ $rc = 0 ] && grep -q '"expired":1' "$T/fjson" || t_fail "mtime 2099: fsck rc $rc $(tail -1 "$T/fjson")"
t_ok "d) mtimes in 2099: the mount and fsck expire relay files at their TTL anyway"

# e) crash between the list write and the config write
cp -p "$CIPHER/cmkfs.conf" "$T/conf.before"
cp -p "$CIPHER/cmkfs.transient" "$T/list.before"
t_mount
mkdir "$MNT/crash"
echo c >"$MNT/crash/c"
t_umount
tr_ add --ttl 1h /crash
cp -p "$CIPHER/cmkfs.transient" "$T/list.crash"
cp -p "$T/conf.before" "$CIPHER/cmkfs.conf"
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fout" 2>&1 || rc=$?
[ $rc = 0 ] || t_fail "list one version ahead: fsck exit $rc: $(cat "$T/fout")"
CMKFS_TEST_CLOCK_SKEW=$H3 t_mount
[ -e "$MNT/crash/c" ] && t_fail "list one version ahead: its zone /crash not in effect"
"$CMKFS" transient list --service-key "$KEY" "$CIPHER" | grep -q "^/crash" || t_fail "list lost /crash"
t_umount
cmp -s "$T/conf.before" "$CIPHER/cmkfs.conf" && t_fail "the mount did not commit the list's version"
cp -p "$T/list.before" "$CIPHER/cmkfs.transient"
mount_refused "list before the crash put back" "$ROLLBACK"
rc=0; "$CMKFS" transient add --service-key "$KEY" --ttl 1h /crash "$CIPHER" 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "not the version" "$T/err" || t_fail "transient add over a rolled-back list: rc $rc $(cat "$T/err")"
t_ok "e) crash between list and config: fsck clean, the mount works and commits the list; the list before it is then refused"
cp -p "$T/list.crash" "$CIPHER/cmkfs.transient"

# f) under a live mount, the config and its own older list put back
# together: the mount knows the version it saw and keeps today's zones.
# (Offline the pair is consistent: a rollback of the volume's state that
# no single host can see, doc/SECURITY.md.)
t_mount
mkdir -p "$MNT/old2" "$MNT/keep"
tr_ add --ttl 1h /old2
cp -p "$CIPHER/cmkfs.conf" "$T/conf.old2"
cp -p "$CIPHER/cmkfs.transient" "$T/list.old2"
tr_ remove /old2
for f in old2/victim keep/c1 keep/c2; do echo "$f" >"$MNT/$f"; done
t_umount
cp -p "$CIPHER/cmkfs.conf" "$T/conf.now"
cp -p "$CIPHER/cmkfs.transient" "$T/list.now"
CMKFS_TEST_CLOCK_SKEW=$H3 CMKFS_TRANSIENT_SWEEP_SEC=1 t_mount
[ -e "$MNT/old2/victim" ] || t_fail "old2/victim expired before the rollback"
cp -p "$T/conf.old2" "$CIPHER/cmkfs.conf"
cp -p "$T/list.old2" "$CIPHER/cmkfs.transient"
# Two old canaries renamed into /relay one after the other: once the
# second is gone, a whole sweep has run after the pair was put back.
wait_gone() { for _ in $(seq 300); do [ -e "$1" ] || return 0; sleep 0.1; done; return 1; }
mv "$MNT/keep/c1" "$MNT/relay/c1"
wait_gone "$MNT/relay/c1" || t_fail "rolled-back pair: the sweeper stopped expiring today's zones"
mv "$MNT/keep/c2" "$MNT/relay/c2"
wait_gone "$MNT/relay/c2" || t_fail "rolled-back pair: the sweeper stopped expiring today's zones"
[ "$(cat "$MNT/old2/victim")" = old2/victim ] ||
	t_fail "rolled-back pair: the live mount destroyed a file outside today's zones"
t_umount
cp -p "$T/conf.now" "$CIPHER/cmkfs.conf"
cp -p "$T/list.now" "$CIPHER/cmkfs.transient"
t_ok "f) config + older list put back under a live mount: it keeps expiring today's zones and nothing else"
