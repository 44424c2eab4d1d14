#!/usr/bin/env bash
# tests/mount/t_ops.sh — operating cmkfs the ecosystem's way (issue #4
# part): `mount -t fuse.cmkfs` and an fstab line through the mount.cmkfs
# helper with cmkfs's own options inside -o, systemd readiness over
# $NOTIFY_SOCKET, and `cmkfs audit` for a volume.
. "$(dirname "$0")/../lib/lib.sh"
t_need mount umount python3 getfattr
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
t_mkvol

# --- the helper, as mount(8) runs it ---
ln -s "$CMKFS" "$T/mount.fuse.cmkfs"
"$T/mount.fuse.cmkfs" "$CIPHER" "$MNT" -o \
	"service_key=$KEY,key_check_interval=7,grace=99,defaults,noauto,nofail,x-systemd.automount,ro,noxattr" ||
	t_fail "mount.fuse.cmkfs"
t_is_mounted_sure "$MNT" || t_fail "helper did not mount"
"$CMKFS" status --json "$MNT" | grep -q '"key_check_interval":7,"grace":99' || t_fail "cmkfs options not passed"
grep " $MNT fuse.cmkfs " /proc/self/mounts | grep -q " ro," || t_fail "FUSE option ro not passed"
err=$(getfattr -n user.x "$MNT" 2>&1) && t_fail "getfattr worked under noxattr"
grep -q "not supported" <<<"$err" || t_fail "noxattr not passed: getfattr said: $err"
t_umount
t_ok "mount.fuse.cmkfs: cmkfs options from -o, fstab-only options dropped, FUSE options passed"

# --- mount -t fuse.cmkfs and an fstab line, through mount(8) ---
helper=/sbin/mount.fuse.cmkfs
made=
if [ ! -e "$helper" ]; then
	ln -s "$CMKFS" "$helper" && made=1
fi
[ -e "$helper" ] || t_skip "cannot install $helper"
cleanup_helper() { [ -n "$made" ] && rm -f "$helper"; }
mount -t fuse.cmkfs "$CIPHER" "$MNT" -o "service_key=$KEY" 2>"$T/err" || { cleanup_helper; t_fail "mount -t fuse.cmkfs: $(cat "$T/err")"; }
echo via-mount >"$MNT/x"
umount "$MNT" || { cleanup_helper; t_fail "umount(8)"; }
sleep 0.5
printf '%s %s fuse.cmkfs service_key=%s,key_check_interval=30,noauto,nofail 0 0\n' \
	"$CIPHER" "$MNT" "$KEY" >"$T/fstab"
mount --fstab "$T/fstab" "$MNT" 2>"$T/err" || { cleanup_helper; t_fail "fstab mount: $(cat "$T/err")"; }
[ "$(cat "$MNT/x")" = via-mount ] || { cleanup_helper; t_fail "content via fstab mount"; }
t_umount
cleanup_helper
t_ok "mount -t fuse.cmkfs, umount(8), and an fstab line (mount --fstab)"

# --- systemd readiness: READY=1 on \$NOTIFY_SOCKET once serving ---
sock=$T/notify.sock
python3 - "$sock" >"$T/notify.out" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1]); s.settimeout(30)
print(s.recv(4096).decode())
PY
lpid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
NOTIFY_SOCKET=$sock "$CMKFS" mount -f --service-key "$KEY" "$CIPHER" "$MNT" 2>"$T/fg.err" &
fg=$!
wait $lpid || t_fail "no sd_notify message: $(cat "$T/fg.err")"
grep -q '^READY=1' "$T/notify.out" || t_fail "notify: $(cat "$T/notify.out")"
grep -q "^MAINPID=$fg" "$T/notify.out" || t_fail "MAINPID: $(cat "$T/notify.out")"
t_is_mounted_sure "$MNT" || t_fail "READY before the mount was up"
"$CMKFS" umount "$MNT"
wait $fg || true
t_ok "sd_notify: $(tr '\n' ' ' <"$T/notify.out")"

# --- cmkfs audit ---
"$CMKFS" audit "$CIPHER" >"$T/audit.txt" 2>/dev/null || t_fail "cmkfs audit"
grep -q " mount " "$T/audit.txt" && grep -q " unwrap " "$T/audit.txt" || t_fail "audit table: $(cat "$T/audit.txt")"
n=$("$CMKFS" audit --json "$CIPHER" | python3 -c 'import json,sys; print(sum(1 for l in sys.stdin if json.loads(l)["event"]))')
[ "$n" -ge 8 ] || t_fail "audit --json: $n events"
[ "$("$CMKFS" audit --json --since 2099-01-01 "$CIPHER" | wc -l)" = 0 ] || t_fail "--since in the future shows events"
[ "$("$CMKFS" audit --json --since 1h "$CIPHER" | wc -l)" = "$n" ] || t_fail "--since 1h"
rc=0; "$CMKFS" audit --since yesterday "$CIPHER" 2>/dev/null || rc=$?
[ $rc = 2 ] || t_fail "bad --since: exit $rc"
t_ok "cmkfs audit: $n events for this volume, --json, --since"
