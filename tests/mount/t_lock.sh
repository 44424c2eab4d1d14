#!/usr/bin/env bash
# tests/mount/t_lock.sh — `cmkfs lock` holds until `cmkfs unlock`, and
# `cmkfs status` exit codes for monitoring (doc/KEYS.md "Lock and
# unlock", cmkfs-status(1)):
# 1. a service-managed mount locked by hand stays locked across 3 and more
#    successful key checks (every 1 s); `cmkfs unlock` resumes it at once;
# 2. a customer-managed mount: unlock while Key Vault denies stays locked
#    (exit 5, the message says the check was denied); access restored, the
#    manual lock still holds; unlock then resumes;
# 3. a lock a key check caused (revocation) still resumes by itself;
# 4. status exits 0 healthy, 5 locked, 6 stale (a key check held in Key
#    Vault past grace + 2 intervals), 7 dead (daemon killed with -9).
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
# runtime files under $T: the kill -9 below leaves them behind
export CMKFS_RUNTIME_DIR=$T/run
mkdir -m 0700 "$CMKFS_RUNTIME_DIR"

# status exit code of MOUNTPOINT (output in $T/status.out)
st() {
	local rc=0
	"$CMKFS" status "$@" >"$T/status.out" 2>&1 || rc=$?
	echo "$rc"
}
# ok key checks audited since the last manual lock
checks_since_lock() {
	python3 - "$CMKFS_AUDIT_LOG" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
i = max(k for k, e in enumerate(ev)
        if e["event"] == "lock" and e.get("result") == "manual")
print(sum(1 for e in ev[i + 1:]
          if e["event"] == "check" and e.get("result") == "ok"))
PY
}
st_is() { [ "$(st "$1")" = "$2" ]; }
checks_ge() { [ "$(checks_since_lock)" -ge "$1" ]; }

# --- 1. service-managed: lock holds across checks; unlock resumes ---
t_mkvol
"$CMKFS" mount --service-key "$KEY" --key-check-interval 1 "$CIPHER" "$MNT" ||
	t_fail "cmkfs mount"
echo hello >"$MNT/a.txt"
[ "$(st "$MNT")" = 0 ] || t_fail "status of a healthy mount: exit $(st "$MNT"): $(cat "$T/status.out")"
"$CMKFS" lock "$MNT" >"$T/lock.out" || t_fail "cmkfs lock: $(cat "$T/lock.out")"
grep -q "cmkfs unlock" "$T/lock.out" || t_fail "lock does not say how to resume: $(cat "$T/lock.out")"
revoked "$MNT/a.txt" || t_fail "not locked right after cmkfs lock"
wait_for 30 checks_ge 3 || t_fail "no 3 key checks after the lock ($(checks_since_lock))"
revoked "$MNT/a.txt" || t_fail "a successful key check ended a manual lock"
[ "$(st "$MNT")" = 5 ] || t_fail "status of a locked mount: exit $(st "$MNT")"
grep -q "LOCKED" "$T/status.out" || t_fail "status text: $(cat "$T/status.out")"
"$CMKFS" status --json "$MNT" >"$T/s.json" || true
kv_json 'str(d["daemon"]["manual_lock"]) + " " + d["daemon"]["lock_cause"] + " " + d["health"]' <"$T/s.json" |
	grep -qx "True manual locked" || t_fail "status --json while locked: $(cat "$T/s.json")"
t_ok "cmkfs lock holds across $(checks_since_lock) successful key checks; status exits 5"

"$CMKFS" unlock "$MNT" >"$T/unlock.out" 2>&1 || t_fail "cmkfs unlock: $(cat "$T/unlock.out")"
[ "$(cat "$MNT/a.txt")" = hello ] || t_fail "not readable right after cmkfs unlock"
[ "$(st "$MNT")" = 0 ] || t_fail "status after unlock: exit $(st "$MNT")"
grep -q '"event":"resume".*cmkfs unlock' "$CMKFS_AUDIT_LOG" || t_fail "unlock not audited"
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "unlock of an unlocked mount"
t_ok "cmkfs unlock proves the keys and resumes at once (audited); unlocking an unlocked mount is fine"
"$CMKFS" umount "$MNT" || t_fail "cmkfs umount"

# --- 2. customer-managed: unlock while Key Vault denies stays locked ---
kv_start
export CMKFS_AUDIT_LOG=$T/audit.log
KID=$(kv_key cmk)
C2=$T/cipher2 M2=$T/mnt2 K2=$T/service2.key
mkdir "$C2" "$M2"
"$CMKFS" init --service-key "$K2" --cmk "$KID" "$C2" >/dev/null || t_fail "init --cmk"
"$CMKFS" mount --service-key "$K2" --key-check-interval 1 --grace 3 "$C2" "$M2" ||
	t_fail "mount with a CMK"
echo secret >"$M2/b.txt"
"$CMKFS" lock "$M2" >/dev/null || t_fail "cmkfs lock (CMK)"
kv revoke app cmk >/dev/null
rc=0
"$CMKFS" unlock "$M2" >"$T/unlock.out" 2>&1 || rc=$?
[ "$rc" = 5 ] || t_fail "unlock while denied: exit $rc: $(cat "$T/unlock.out")"
grep -q "still locked: the key check was denied" "$T/unlock.out" ||
	t_fail "unlock while denied says: $(cat "$T/unlock.out")"
revoked "$M2/b.txt" || t_fail "readable after a denied unlock"
[ "$(st "$M2")" = 5 ] || t_fail "status after a denied unlock: exit $(st "$M2")"
t_ok "unlock while Key Vault denies: exit 5, still locked: $(head -1 "$T/unlock.out")"

kv grant app cmk get,wrapKey,unwrapKey >/dev/null
wait_for 30 checks_ge 3 || t_fail "no 3 good key checks after access came back"
revoked "$M2/b.txt" || t_fail "restored access ended a manual lock"
"$CMKFS" unlock "$M2" >"$T/unlock.out" 2>&1 || t_fail "unlock: $(cat "$T/unlock.out")"
[ "$(cat "$M2/b.txt")" = secret ] || t_fail "not readable after unlock"
t_ok "access restored: the manual lock holds; cmkfs unlock resumes"

# --- 3. a lock the key check caused still resumes by itself ---
kv revoke app cmk >/dev/null
wait_for 30 revoked "$M2/b.txt" || t_fail "revocation did not lock"
"$CMKFS" status --json "$M2" >"$T/s.json" || true
kv_json 'str(d["daemon"]["manual_lock"])' <"$T/s.json" | grep -qx False ||
	t_fail "a check's lock reads as manual: $(cat "$T/s.json")"
kv grant app cmk get,wrapKey,unwrapKey >/dev/null
wait_for 30 cat "$M2/b.txt" || t_fail "a check-caused lock did not resume by itself"
t_ok "a lock a key check caused resumes by itself once access is back"

# --- 4. status: stale while a key check hangs past grace + 2 intervals ---
wait_for 30 st_is "$M2" 0 || t_fail "status not healthy again: $(cat "$T/status.out")"
kv fault '/keys/' --method GET --latency-ms 15000 --count 1 >/dev/null
wait_for 20 st_is "$M2" 6 || t_fail "status never stale during a held check: $(cat "$T/status.out")"
grep -q "STALE" "$T/status.out" || t_fail "status text: $(cat "$T/status.out")"
wait_for 40 st_is "$M2" 0 || t_fail "status not healthy after the held check: $(cat "$T/status.out")"
t_ok "status exits 6 (stale) while a key check hangs past grace + 2 intervals, 0 after"

# --- 5. status: dead daemon ---
pid=$("$CMKFS" status --json "$M2" | kv_json 'd["daemon"]["pid"]')
kill -9 "$pid"
wait_for 10 st_is "$M2" 7 || t_fail "status with the daemon killed: exit $(st "$M2"): $(cat "$T/status.out")"
grep -q "DEAD" "$T/status.out" || t_fail "status text: $(cat "$T/status.out")"
[ "$(st "$C2")" = 7 ] || t_fail "status by cipherdir with the daemon killed: exit $(st "$C2")"
fusermount3 -u "$M2" || umount -l "$M2"
t_ok "status exits 7 when the daemon is gone (by mountpoint and cipherdir)"
