#!/usr/bin/env bash
# tests/mount/t_prom.sh — monitoring and the audit log (doc/OPERATIONS.md
# "Monitoring", "Audit log", "Log rotation"; cmkfs-status(1)):
# 1. `status --prometheus` is node_exporter textfile format (a parser:
#    every sample `name{labels} value` with a numeric value, HELP and TYPE
#    before each family, families not split), for one volume and for all
#    mounts of the host (where this mount is one);
# 2. its values: up 1, locked 0 -> 1 after `cmkfs lock` (exit 5) -> 0
#    after `cmkfs unlock`, open handles count a file held open, the EIO
#    counter counts a read of a tampered file, key checks counted;
# 3. the text output: `customer key:` once, no raw JSON;
# 4. the audit summary: with the default heartbeat, many successful
#    checks and no `check` line; with a 2 s heartbeat, `check` lines 2 s
#    apart by the checks' whole-second clock, each counting the checks it
#    stands for;
# 5. rotation under a live mount: after the shipped logrotate file
#    rotates the log (with the path changed to this test's), the next
#    events land in the new file and none in the rotated one.
. "$(dirname "$0")/../lib/lib.sh"
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
SRC=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() { local i; for ((i = 0; i < $1 * 10; i++)); do "${@:2}" && return 0; sleep 0.1; done; return 1; }
# prom [ARGS]: status --prometheus into $T/prom.txt; its exit code in $T/prom.rc
prom() {
	local rc=0
	"$CMKFS" status --prometheus "$@" >"$T/prom.txt" 2>"$T/prom.err" || rc=$?
	echo "$rc" >"$T/prom.rc"
}
# validate: the format check; prints {"metric{kind}": value} of this
# test's mount (label mountpoint == $MNT) as JSON into $T/prom.json
validate() {
	python3 - "$T/prom.txt" "$MNT" >"$T/prom.json" <<'PY'
import json, re, sys
name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
sample = re.compile(r"^(" + name_re + r")(\{(.*)\})? (\S+)$")
label = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|$)')
helps, types, seen, order, out = {}, {}, set(), [], {}
for n, line in enumerate(open(sys.argv[1]).read().split("\n")[:-1], 1):
    if line.startswith("# HELP "):
        m = line.split(" ", 3)
        assert len(m) == 4 and m[3], f"line {n}: HELP without text: {line}"
        helps[m[2]] = m[3]
        continue
    if line.startswith("# TYPE "):
        m = line.split(" ")
        assert len(m) == 4 and m[3] in ("gauge", "counter"), f"line {n}: {line}"
        assert m[2] in helps, f"line {n}: TYPE before HELP: {line}"
        assert m[2] not in types, f"line {n}: family {m[2]} twice"
        types[m[2]] = m[3]
        continue
    assert not line.startswith("#") and line, f"line {n}: stray line {line!r}"
    m = sample.match(line)
    assert m, f"line {n}: not `name{{labels}} value`: {line}"
    name, labels, value = m.group(1), m.group(3) or "", m.group(4)
    assert name in helps and name in types, f"line {n}: {name} without HELP/TYPE"
    if types[name] == "counter":
        assert name.endswith("_total"), f"line {n}: counter {name} not *_total"
    float(value)  # numeric, or this raises
    assert value not in ("nan", "NaN"), f"line {n}: {value}"
    if order and order[-1] != name:
        assert name not in seen, f"line {n}: family {name} split"
    seen.add(name); order.append(name)
    pos, lab = 0, {}
    while pos < len(labels):
        lm = label.match(labels, pos)
        assert lm, f"line {n}: bad labels at {labels[pos:]!r}"
        lab[lm.group(1)] = lm.group(2); pos = lm.end()
    for k in ("mountpoint", "cipherdir", "volume"):
        assert k in lab, f"line {n}: no {k} label"
    if lab["mountpoint"] == sys.argv[2]:
        key = name + ("{" + lab["kind"] + "}" if "kind" in lab else "")
        out[key] = float(value)
        if name == "cmkfs_key_info":
            out["key_id"] = lab["key_id"]
for f in ("cmkfs_up", "cmkfs_locked", "cmkfs_key_check_age_seconds",
          "cmkfs_key_info", "cmkfs_open_handles", "cmkfs_errors_total",
          "cmkfs_health", "cmkfs_key_checks_total"):
    assert f in types, f"family {f} missing"
print(json.dumps(out))
PY
}
val() { python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))[sys.argv[2]]))' "$T/prom.json" "$1"; }
prom_is() { prom "$MNT" && validate && [ "$(val "$1")" = "$2" ]; }

# --- a volume with a tampered file (for the EIO counter) ---
t_mkvol
t_mount
head -c 100000 /dev/urandom >"$MNT/bad"
echo hello >"$MNT/a.txt"
t_umount
bad=$(find "$CIPHER" -maxdepth 1 -type f ! -name 'cmkfs.*' -size +90k | head -n1)
[ -n "$bad" ] || t_fail "no backing file of /bad"
python3 - "$bad" <<'PY'
import os, sys
p = sys.argv[1]; off = os.path.getsize(p) - 40
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 1]))
PY

# --- mount with the default audit heartbeat (hourly), checks every 1 s ---
env -u CMKFS_AUDIT_HEARTBEAT "$CMKFS" mount --service-key "$KEY" --key-check-interval 1 \
	"$CIPHER" "$MNT" || t_fail "cmkfs mount"
m0=$(wc -l <"$CMKFS_AUDIT_LOG")

# 1. format, one volume and all mounts
prom "$MNT"
[ "$(cat "$T/prom.rc")" = 0 ] || t_fail "status --prometheus of a healthy mount: exit $(cat "$T/prom.rc"): $(cat "$T/prom.err")"
validate || t_fail "format: $(cat "$T/prom.txt")"
[ "$(val cmkfs_up)" = 1 ] && [ "$(val cmkfs_locked)" = 0 ] && [ "$(val cmkfs_health)" = 0 ] ||
	t_fail "healthy mount: $(cat "$T/prom.json")"
grep -q '^cmkfs_key_info{.*key_id="local:' "$T/prom.txt" || t_fail "no key_info of the local key: $(cat "$T/prom.txt")"
vol=$("$CMKFS" status --json "$CIPHER" | python3 -c 'import json,sys; print(json.load(sys.stdin)["volume_id"])')
grep -q "^cmkfs_up{mountpoint=\"$MNT\",cipherdir=\"$CIPHER\",volume=\"$vol\"} 1$" "$T/prom.txt" ||
	t_fail "labels of cmkfs_up: $(grep '^cmkfs_up' "$T/prom.txt")"
prom
rc=$(cat "$T/prom.rc")
validate || t_fail "format (all mounts): $(cat "$T/prom.txt")"
[ "$(val cmkfs_up)" = 1 ] || t_fail "all mounts: this one missing: $(cat "$T/prom.txt")"
case $rc in 0 | 4 | 5 | 6 | 7) ;; *) t_fail "all mounts: exit $rc: $(cat "$T/prom.err")" ;; esac
t_ok "textfile format, one volume and all mounts"

# 2. values: handles, EIO, lock
prom "$MNT" && validate
h0=$(val cmkfs_open_handles)
exec 3<"$MNT/a.txt"
wait_for 10 prom_is cmkfs_open_handles $((h0 + 1)) || t_fail "handles with a file open: $(cat "$T/prom.json"), before $h0"
exec 3<&-
wait_for 10 prom_is cmkfs_open_handles "$h0" || t_fail "handles after close: $(cat "$T/prom.json"), before $h0"
t_ok "open handles: $h0 -> $((h0 + 1)) with a file open -> $h0"

e0=$(val 'cmkfs_errors_total{eio_answered}')
! cat "$MNT/bad" >/dev/null 2>"$T/eio.err" || t_fail "tampered file read"
grep -q 'Input/output error' "$T/eio.err" || t_fail "tampered read: $(cat "$T/eio.err")"
prom "$MNT" && validate
[ "$(val 'cmkfs_errors_total{eio_answered}')" -gt "$e0" ] || t_fail "EIO not counted: $(cat "$T/prom.json")"
t_ok "EIO answered counted ($e0 -> $(val 'cmkfs_errors_total{eio_answered}'))"

"$CMKFS" lock "$MNT" >/dev/null || t_fail "cmkfs lock"
prom "$MNT"
[ "$(cat "$T/prom.rc")" = 5 ] || t_fail "status --prometheus of a locked mount: exit $(cat "$T/prom.rc")"
validate && [ "$(val cmkfs_locked)" = 1 ] && [ "$(val cmkfs_health)" = 5 ] ||
	t_fail "locked: $(cat "$T/prom.json")"
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "cmkfs unlock"
prom_is cmkfs_locked 0 || t_fail "unlocked: $(cat "$T/prom.json")"
t_ok "locked 0 -> 1 (exit 5) after cmkfs lock -> 0 after unlock"

# 3. text output
"$CMKFS" status "$MNT" >"$T/status.txt" || t_fail "status: $(cat "$T/status.txt")"
[ "$(grep -c '^customer key:' "$T/status.txt")" = 1 ] || t_fail "customer key: not once: $(cat "$T/status.txt")"
! grep -q '[{}]' "$T/status.txt" || t_fail "raw JSON in the text output: $(cat "$T/status.txt")"
grep -q '^open handles:' "$T/status.txt" && grep -q '^locked: *no' "$T/status.txt" ||
	t_fail "text output: $(cat "$T/status.txt")"
t_ok "text status: one customer key line, no JSON"

# 4. audit summary: many checks, no check line (heartbeat hourly)
checks_ge() { prom "$MNT" && validate && [ "$(val cmkfs_key_checks_total)" -ge "$1" ]; }
wait_for 30 checks_ge 6 || t_fail "no 6 key checks: $(cat "$T/prom.json")"
n=$(tail -n +"$((m0 + 1))" "$CMKFS_AUDIT_LOG" | grep -c '"event":"check"' || true)
[ "$n" = 0 ] || t_fail "$n check lines with an hourly heartbeat: $(grep '"event":"check"' "$CMKFS_AUDIT_LOG")"
t_ok "hourly heartbeat: $(val cmkfs_key_checks_total) checks, no check line"
t_umount

CMKFS_AUDIT_HEARTBEAT=2 "$CMKFS" mount --service-key "$KEY" --key-check-interval 1 \
	"$CIPHER" "$MNT" || t_fail "cmkfs mount (heartbeat 2 s)"
m1=$(wc -l <"$CMKFS_AUDIT_LOG")
hb_lines() { [ "$(tail -n +"$((m1 + 1))" "$CMKFS_AUDIT_LOG" | grep -c '"event":"check"')" -ge "$1" ]; }
wait_for 30 hb_lines 3 || t_fail "no 3 heartbeat lines in 30 s"
tail -n +"$((m1 + 1))" "$CMKFS_AUDIT_LOG" | python3 -c '
import json, sys, datetime
ts = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").timestamp()
ev = [json.loads(l) for l in sys.stdin if "\"event\":\"check\"" in l]
assert all(e["result"] == "ok" and e["checks"] >= 2 for e in ev), ev
gaps = [ts(b["time"]) - ts(a["time"]) for a, b in zip(ev, ev[1:])]
# the heartbeat counts whole seconds of the check start (time_t): two
# lines 2 s apart by that clock may be just over 1 s apart in real time
assert all(g > 1.0 for g in gaps), gaps
assert "checks ok since the last check line" in ev[-1]["detail"], ev[-1]
print("# heartbeat lines:", len(ev), "checks each:", [e["checks"] for e in ev], "gaps:", [round(g, 1) for g in gaps])
' || t_fail "heartbeat lines: $(tail -n 5 "$CMKFS_AUDIT_LOG")"
t_ok "heartbeat every 2 s: each check line counts the checks since the last"

# 5. rotation under the live mount, by the shipped logrotate file
if command -v logrotate >/dev/null; then
	sed "s|^/var/log/cmkfs/audit.log {|$CMKFS_AUDIT_LOG {|; s|create 0600 root root|create 0600|" \
		"$SRC/dist/logrotate/cmkfs" >"$T/logrotate.conf"
	grep -qF "$CMKFS_AUDIT_LOG {" "$T/logrotate.conf" || t_fail "logrotate file: no audit log stanza"
	logrotate -f -s "$T/logrotate.state" "$T/logrotate.conf" || t_fail "logrotate"
	rotated=$CMKFS_AUDIT_LOG.1
else
	t_log "no logrotate: rotating by hand as its default (create) does"
	mv "$CMKFS_AUDIT_LOG" "$CMKFS_AUDIT_LOG.1"
	rotated=$CMKFS_AUDIT_LOG.1
fi
[ -f "$rotated" ] || t_fail "no rotated file $rotated"
r0=$(wc -l <"$rotated")
"$CMKFS" lock "$MNT" >/dev/null || t_fail "cmkfs lock after rotation"
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "cmkfs unlock after rotation"
grep -q '"event":"lock"' "$CMKFS_AUDIT_LOG" && grep -q '"event":"resume"' "$CMKFS_AUDIT_LOG" ||
	t_fail "events after rotation not in the new file: $(cat "$CMKFS_AUDIT_LOG" 2>&1)"
[ "$(stat -c %a "$CMKFS_AUDIT_LOG")" = 600 ] || t_fail "new audit log mode $(stat -c %a "$CMKFS_AUDIT_LOG")"
sleep 2.5	# a heartbeat line too
[ "$(wc -l <"$rotated")" = "$r0" ] || t_fail "events still written to the rotated file"
grep -q '"event":"check"' "$CMKFS_AUDIT_LOG" || t_fail "no heartbeat in the new file"
t_ok "rotation under a live mount: next events in the new file, none in the old"
t_umount
