#!/usr/bin/env bash
# tests/mount/t_rekey.sh — cmkfs rekey (issue #4): offline and on a live
# mount under a concurrent read/write load; kill -9 of the offline command
# and of the mount daemon at random points (fixed seed), after each of
# which the volume opens and reads back every file, and a second run
# finishes the job; a final content check, fsck, and the audit events.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
t_mkvol
RANDOM=4242

# sums DIR: "relative-path sha256" of every regular file, sorted.
sums() {
	python3 - "$1" <<'PY'
import hashlib, os, sys
root = sys.argv[1]
out = []
for d, _, fs in os.walk(root):
    for f in fs:
        p = os.path.join(d, f)
        with open(p, "rb") as fh:
            out.append("%s %s" % (os.path.relpath(p, root), hashlib.sha256(fh.read()).hexdigest()))
print("\n".join(sorted(out)))
PY
}
status_json() { "$CMKFS" status --json "$CIPHER"; }
jfield() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }
gen() { status_json | jfield '["kek_generation"]'; }
in_progress() { status_json | jfield '["rekey_in_progress"]'; }

t_mount
mkdir -p "$MNT/a/b" "$MNT/c"
for i in $(seq 1500); do echo "small file $i" >"$MNT/a/f$i"; done
for i in $(seq 40); do head -c $((i * 5000)) /dev/urandom >"$MNT/a/b/m$i"; done
head -c 3000000 /dev/urandom >"$MNT/c/big"
ln "$MNT/c/big" "$MNT/c/hardlink"
long=$(printf 'N%.0s' $(seq 200))
echo "long name" >"$MNT/c/$long"
ln -s a/f1 "$MNT/link"
sums "$MNT" >"$T/want"
t_umount
[ "$(gen)" = 1 ] || t_fail "new volume generation $(gen)"
names_before=$(cd "$CIPHER" && find . | sort | sha256sum)

check_all() {	# $1: what happened before
	t_mount
	sums "$MNT" >"$T/got"
	cmp -s "$T/want" "$T/got" || t_fail "$1: contents differ: $(diff "$T/want" "$T/got" | head -5)"
	t_umount
}

# 1. Offline: one run, JSON result, names and blocks untouched.
cp "$(find "$CIPHER/" -size +2M -type f | head -1)" "$T/big.before"
"$CMKFS" rekey --json --service-key "$KEY" "$CIPHER" >"$T/rk.json" || t_fail "offline rekey: $(tail -3 "$T/rk.json")"
tail -1 "$T/rk.json" | python3 -c '
import json, sys
r = json.load(sys.stdin)
assert r["ok"] is True, r
k = r["rekey"]
assert k["from_gen"] == 1 and k["to_gen"] == 2, k
assert k["files"] == 1543 and k["rewrapped"] == 1542 and k["damaged"] == 0, k
assert k["resumed"] is False, k
' || t_fail "offline rekey JSON: $(tail -1 "$T/rk.json")"
grep -q '"progress"' "$T/rk.json" || t_fail "no progress lines in --json"
[ "$(gen)" = 2 ] && [ "$(in_progress)" = False ] || t_fail "after rekey: gen $(gen), in progress $(in_progress)"
[ "$(cd "$CIPHER" && find . | sort | sha256sum)" = "$names_before" ] || t_fail "rekey renamed backing entries"
nb=$(find "$CIPHER/" -size +2M -type f | head -1)
cmp -s -i 148 "$nb" "$T/big.before" || t_fail "rekey changed block data"
! cmp -s -n 148 "$nb" "$T/big.before" || t_fail "rekey did not change the header"
check_all "offline rekey"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after rekey: $(tail -3 "$T/fsck")"
t_ok "offline rekey 1->2: 1542 headers re-wrapped (1543 links), names and blocks untouched, contents intact"

# Temporaries of creates cut short by a crash (empty, or a torn header)
# are never named: a rekey passes over them (fsck reports them).
: >"$CIPHER/cmkfs.tmp.00000000000000aa"
head -c 100 "$nb" >"$CIPHER/cmkfs.tmp.00000000000000bb"
"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >"$T/rk.out" 2>&1 ||
	t_fail "rekey with leftover temporaries: $(tail -3 "$T/rk.out")"
rm -f "$CIPHER"/cmkfs.tmp.00000000000000aa "$CIPHER"/cmkfs.tmp.00000000000000bb
[ "$(gen)" = 3 ] && [ "$(in_progress)" = False ] || t_fail "after rekey: gen $(gen), in progress $(in_progress)"
t_ok "leftover temporaries of interrupted creates do not stop a rekey"

# 2. kill -9 of the offline command at random points; then it opens and
#    reads everything, and the next run finishes (resuming if needed).
start=$(date +%s%N)
"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >/dev/null || t_fail "timing run"
dur_ms=$((($(date +%s%N) - start) / 1000000 + 1))
t_log "an offline rekey takes ${dur_ms} ms"
interrupted=0
for it in 1 2 3 4 5 6; do
	g0=$(gen)
	"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >/dev/null 2>&1 &
	pid=$!
	# A random point of the walk: wait for the "rekey in progress" flag
	# (process start-up and the key unwrap take most of a run under ASan
	# or valgrind), then up to half a run more.
	for _ in $(seq 2000); do
		[ "$(od -An -tx1 -j11 -N1 "$CIPHER/cmkfs.conf" | tr -d ' ')" = 01 ] && break
		kill -0 "$pid" 2>/dev/null || break
	done
	sleep "$(awk -v r=$RANDOM -v d="$dur_ms" 'BEGIN { printf "%.3f", (r / 32768) * d * 0.5 / 1000 }')"
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
	ip=$(in_progress)
	[ "$ip" = True ] && interrupted=$((interrupted + 1))
	check_all "kill -9 of offline rekey (iteration $it, in progress $ip)"
	"$CMKFS" rekey --json --service-key "$KEY" "$CIPHER" >"$T/rk.json" || t_fail "rekey after kill: $(tail -2 "$T/rk.json")"
	res=$(tail -1 "$T/rk.json" | jfield '["rekey"]["resumed"]')
	[ "$ip" = True ] && [ "$res" != True ] && t_fail "an interrupted rekey was not resumed"
	[ "$(in_progress)" = False ] || t_fail "rekey left in progress after a full run"
	t_log "iteration $it: generation $g0 -> $(gen), interrupted: $ip"
done
[ "$interrupted" -ge 2 ] || t_fail "only $interrupted of 6 kills landed during a rekey: test proves too little"
check_all "after the kill loop"
t_ok "kill -9 of an offline rekey at 6 random points ($interrupted mid-rekey): volume opens, reads back, next run finishes"

# 3. Live mount under a read/write load.
load() {	# writes, verifies, renames and appends until $T/stop exists
	python3 - "$MNT/load" "$T/stop" <<'PY'
import hashlib, os, sys
d, stop = sys.argv[1], sys.argv[2]
os.makedirs(d, exist_ok=True)
i = 0
while not os.path.exists(stop):
    data = hashlib.sha256(str(i).encode()).digest() * (1 + i % 700)
    p = os.path.join(d, "w%d" % i)
    with open(p + ".tmp", "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.rename(p + ".tmp", p)
    with open(p, "rb") as f:
        if f.read() != data:
            sys.exit("mismatch in %s" % p)
    if i > 5:
        q = os.path.join(d, "w%d" % (i - 5))
        with open(q, "ab") as f:
            f.write(b"tail")
        with open(q, "rb") as f:
            old = hashlib.sha256(str(i - 5).encode()).digest() * (1 + (i - 5) % 700)
            if f.read() != old + b"tail":
                sys.exit("append mismatch in %s" % q)
    i += 1
print(i)
PY
}
t_mount
rm -f "$T/stop"
load >"$T/load.out" 2>&1 &
lpid=$!
sleep 0.5
g0=$(gen)
"$CMKFS" rekey --json "$CIPHER" >"$T/live.json" || t_fail "live rekey: $(tail -3 "$T/live.json")"
"$CMKFS" rekey --json "$CIPHER" >>"$T/live.json" || t_fail "second live rekey"
tail -1 "$T/live.json" | jfield '["ok"]' | grep -qx True || t_fail "live rekey result: $(tail -1 "$T/live.json")"
sleep 0.5
touch "$T/stop"
wait "$lpid" || t_fail "load failed during a live rekey: $(cat "$T/load.out")"
nload=$(cat "$T/load.out")
[ "$nload" -gt 20 ] || t_fail "the load did too little ($nload files)"
[ "$(gen)" = $((g0 + 2)) ] || t_fail "live rekey: generation $(gen), want $((g0 + 2))"
[ "$(cat "$MNT/a/f777")" = "small file 777" ] || t_fail "live mount after rekey"
sums "$MNT" >"$T/want"	# now includes the load's files
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after live rekey: $(tail -3 "$T/fsck")"
check_all "live rekey under load"
t_ok "two live rekeys under a write/read/rename load ($nload files written): no error, fsck clean, contents intact"

# 4. kill -9 of the mount daemon during a live rekey under the same load,
#    at random points; and kill -9 of the client (the daemon finishes on
#    its own).
# check_load DIR: every file the load made visible (fsynced, then renamed)
# holds its content, with or without the appended tail.
check_load() {
	python3 - "$1" <<'PY'
import hashlib, os, sys
d = sys.argv[1]
n = 0
for f in os.listdir(d):
    if not f.startswith("w") or f.endswith(".tmp"):
        continue
    i = int(f[1:])
    data = hashlib.sha256(str(i).encode()).digest() * (1 + i % 700)
    got = open(os.path.join(d, f), "rb").read()
    if got != data and got != data + b"tail":
        sys.exit("%s: %d bytes, not what was written" % (f, len(got)))
    n += 1
print(n)
PY
}
grep -v '^load/' "$T/want" >"$T/want.noload" || true
mv "$T/want.noload" "$T/want"
for it in 1 2 3; do
	t_mount
	dpid=$(status_json | jfield '["pid"]')
	rm -rf "$MNT/load" "$T/stop"
	mkdir "$MNT/load"	# exists even if the kill comes before the load starts
	load >"$T/load.out" 2>&1 &
	lpid=$!
	sleep 0.3
	"$CMKFS" rekey "$CIPHER" >/dev/null 2>&1 &
	cpid=$!
	sleep "$(awk -v r=$RANDOM -v d="$dur_ms" 'BEGIN { printf "%.3f", (r / 32768) * d * 0.9 / 1000 }')"
	kill -9 "$dpid"
	wait "$cpid" 2>/dev/null || true
	wait "$lpid" 2>/dev/null || true	# fails: its mount died
	fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"
	ip=$(in_progress)
	t_mount
	sums "$MNT" | grep -v '^load/' >"$T/got"
	cmp -s "$T/want" "$T/got" || t_fail "kill -9 of the daemon during a live rekey ($it): contents differ: $(diff "$T/want" "$T/got" | head -5)"
	n=$(check_load "$MNT/load") || t_fail "kill -9 of the daemon during a live rekey ($it): load files: $n"
	rm -rf "$MNT/load"
	t_umount
	"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >/dev/null || t_fail "rekey after a killed daemon"
	[ "$(in_progress)" = False ] || t_fail "still in progress"
	t_log "daemon kill $it under load: in progress afterwards: $ip, $n load files intact"
done
t_mount
"$CMKFS" rekey "$CIPHER" >/dev/null 2>&1 &
cpid=$!
sleep 0.01
kill -9 "$cpid" 2>/dev/null || true
wait "$cpid" 2>/dev/null || true
for _ in $(seq 100); do [ "$(in_progress)" = False ] && break; sleep 0.1; done
[ "$(in_progress)" = False ] || t_fail "the daemon did not finish a rekey whose client was killed"
sums "$MNT" >"$T/got"
cmp -s "$T/want" "$T/got" || t_fail "contents after a killed client"
t_umount
# A daemon killed mid-create leaves a temporary that was never named:
# that is all fsck may report, and --repair clears it.
if ! "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1; then
	grep '^DAMAGE' "$T/fsck" | grep -v 'leftover temporary file of an interrupted operation' &&
		t_fail "final fsck: $(tail -3 "$T/fsck")"
	ntmp=$(grep -c '^DAMAGE' "$T/fsck")
	"$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >/dev/null 2>&1 || true
	"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 ||
		t_fail "fsck after --repair: $(tail -3 "$T/fsck")"
	t_log "fsck named $ntmp leftover temporaries of creates the kills cut short; --repair cleared them"
fi
t_ok "kill -9 of the daemon mid-rekey under a write load (3 points) and of the client: volume opens, reads back, every visible load file intact, rekey finishes, fsck clean"

# 5. Audit: every rekey is recorded with its generations.
"$CMKFS" audit --json "$CIPHER" >"$T/audit.json"
n=$(grep -c '"event":"rekey","[^}]*"result":"ok"' "$T/audit.json" || true)
[ "$n" -ge 12 ] || t_fail "rekey audit events: $n"
grep -q '"detail":"generation 1 to 2, 1542 headers re-wrapped, 0 damaged, offline"' "$T/audit.json" ||
	t_fail "audit detail of the first rekey: $(grep rekey "$T/audit.json" | head -1)"
t_ok "audit: $n successful rekey events with generations and counts"
