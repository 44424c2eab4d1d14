#!/usr/bin/env bash
# tests/mount/t_grace.sh — the grace period is honoured as documented
# (doc/KEYS.md "Grace period", cmkfs-mount(1)): Key Vault answers 503 with
# Retry-After 3 to every key request; the mount (grace 8 s, checks every
# 2 s) locks no earlier than grace after its last successful check and no
# later than grace + 3 s after the outage began (the bound for a service
# that answers at once: no retry waits past the grace period, and a check
# is made when it ends). The lock is audited as "transient" with the cause
# "outage", never as "denied". Once Key Vault answers again the mount
# resumes by itself.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
GRACE=8
INTERVAL=2
SLACK=3		# a check's single attempt, the 1 s clock, scheduling

sj() { "$CMKFS" status --json "$MNT" 2>/dev/null || true; }
dm() { sj | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"][sys.argv[1]])' "$1"; }
checks_ok_ge() { [ "$(dm checks)" -ge "$1" ] && [ "$(dm last_check_ok)" = True ]; }
locked() { [ "$(dm locked)" = True ]; }
unlocked() { [ "$(dm locked)" = False ]; }

KID=$(kv_key cmk --size 2048)
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null || t_fail "init --cmk"
"$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace $GRACE \
	"$CIPHER" "$MNT" || t_fail "mount"
echo hello >"$MNT/a.txt"
wait_for 20 checks_ok_ge 1 || t_fail "no successful key check: $(sj)"
m=$(wc -l <"$CMKFS_AUDIT_LOG")

# the outage: every key request answered 503, Retry-After 3
t0=$(date +%s.%N)
kv fault '/keys/' --status 503 --retry-after 3 --seconds 120 >/dev/null
wait_for $((GRACE + 15)) locked || t_fail "not locked $((GRACE + 15)) s into a 503 outage: $(sj)"
cat "$MNT/a.txt" >/dev/null 2>&1 && t_fail "locked, but the file is readable"
last_ok=$(dm last_ok)
tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" >"$T/outage.log"
python3 - "$T/outage.log" "$t0" "$last_ok" "$GRACE" "$SLACK" <<'PY' || t_fail "grace bound: $(cat "$T/outage.log")"
import datetime, json, sys
log, t0, last_ok, grace, slack = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
ev = [json.loads(l) for l in open(log)]
ts = lambda e: datetime.datetime.strptime(e["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
    tzinfo=datetime.timezone.utc).timestamp()
locks = [e for e in ev if e["event"] == "lock"]
assert len(locks) == 1, locks
lk = locks[0]
assert lk["result"] == "transient" and lk.get("cause") == "outage", lk
assert f"grace period of {grace} s over" in lk["detail"], lk
assert not any(e["result"] == "denied" for e in ev), [e for e in ev if e["result"] == "denied"]
checks = [e for e in ev if e["event"] == "check"]
assert checks and all(e["result"] == "transient" for e in checks), checks
after_ok, after_fault = ts(lk) - last_ok, ts(lk) - t0
print(f"# lock {after_ok:.2f} s after the last successful check (grace {grace}), "
      f"{after_fault:.2f} s after the outage began; {len(checks)} failed checks audited")
assert after_ok >= grace, f"locked {after_ok:.2f} s after the last success: before the grace period ended"
assert after_fault <= grace + slack, f"locked {after_fault:.2f} s into the outage: bound {grace} + {slack}"
PY
t_ok "503 outage: locked after grace, within grace + $SLACK s; audited transient/outage"

kv fault-clear >/dev/null
wait_for $((INTERVAL * 2 + 15)) unlocked || t_fail "not resumed after the outage: $(sj)"
[ "$(cat "$MNT/a.txt")" = hello ] || t_fail "file after resume"
t_ok "Key Vault back: the mount resumed by itself"
t_umount
