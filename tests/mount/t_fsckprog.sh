#!/usr/bin/env bash
# tests/mount/t_fsckprog.sh — fsck progress and the repair's free-space
# check (issue #18). On a terminal (a pty from script(1)) `cmkfs fsck`
# shows progress by bytes with the total and an ETA, redrawn inside a
# 200 MiB file, not only between files; without a terminal stderr stays
# empty (--progress forces plain lines, --no-progress silences a
# terminal); `--json --progress` puts JSON progress objects on stderr,
# monotonic and ending at bytes_total, stdout unchanged. `fsck --repair`
# on a cipher directory in a small tmpfs refuses (exit 13) while the
# salvage's copy does not fit, changing nothing (checksums before and
# after), and repairs once there is room.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 script sha256sum
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
t_mkvol
t_mount
head -c 200M /dev/urandom >"$MNT/big"
for i in $(seq 40); do echo "file $i" >"$MNT/f$i"; done
t_umount

# --- a terminal: a line redrawn with total and ETA, inside the big file ---
rc=0
script -qec "\"$CMKFS\" fsck --service-key \"$KEY\" \"$CIPHER\"" /dev/null >"$T/tty.out" 2>&1 || rc=$?
[ $rc = 0 ] || t_fail "fsck on a terminal exit $rc: $(tail -c 400 "$T/tty.out")"
python3 - "$T/tty.out" <<'PY' || t_fail "terminal progress: $(tr '\r' '\n' <"$T/tty.out" | tail -20)"
import re, sys
raw = open(sys.argv[1], "rb").read().decode()
pat = re.compile(r"fsck: check: ([0-9.]+)/([0-9.]+) MiB \(([0-9]+)%\), "
                 r"([0-9]+)/([0-9]+) files, [0-9.]+ MiB/s(, ETA \S+)?")
hits = [m for m in pat.finditer(raw)]
assert hits, "no progress line"
totals = {m.group(2) for m in hits}
assert len(totals) == 1 and float(hits[0].group(2)) > 200, totals	# MiB
done = [float(m.group(1)) for m in hits]
assert done == sorted(done), done
assert hits[-1].group(1) == hits[-1].group(2), "last line not at the total"
assert any(m.group(6) for m in hits), "no ETA shown"
# updates inside one file: the bytes move while the files done do not
inside = {}
for m in hits:
    inside.setdefault(m.group(4), set()).add(m.group(1))
assert max(len(v) for v in inside.values()) >= 4, inside
assert "\033[K" in raw and "\r" in raw, "not redrawn in place"
assert re.search(r"0 problems", raw), "no summary"
print(max(len(v) for v in inside.values()))
PY
t_ok "terminal: progress by bytes with total and ETA, $(python3 -c '
import re,sys; r=open(sys.argv[1]).read()
print(len(re.findall("fsck: check:", r)))' "$T/tty.out") redraws, several inside the 200 MiB file"

# --- no terminal: nothing on stderr; --progress forces plain lines ---
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>"$T/err" || t_fail "fsck: $(cat "$T/out" "$T/err")"
[ ! -s "$T/err" ] || t_fail "stderr not a terminal, yet: $(head -c 300 "$T/err")"
grep -q "0 problems" "$T/out" || t_fail "summary: $(cat "$T/out")"
"$CMKFS" fsck --progress --service-key "$KEY" "$CIPHER" >"$T/out" 2>"$T/err" || t_fail "fsck --progress"
grep -q "^fsck: check: .*MiB (100%)" "$T/err" || t_fail "--progress: $(cat "$T/err")"
! grep -q $'\r' "$T/err" || t_fail "--progress to a file redraws with CR"
script -qec "\"$CMKFS\" fsck --no-progress --service-key \"$KEY\" \"$CIPHER\"" /dev/null >"$T/tty.out" 2>&1 || t_fail "fsck --no-progress"
! grep -q "fsck: check" "$T/tty.out" || t_fail "--no-progress on a terminal: $(tr '\r' '\n' <"$T/tty.out" | head)"
t_ok "no terminal: stderr empty; --progress: plain lines; --no-progress: none on a terminal"

# --- --json: progress objects on stderr, stdout as before ---
"$CMKFS" fsck --json --progress --service-key "$KEY" "$CIPHER" >"$T/json" 2>"$T/jprog" || t_fail "fsck --json --progress"
python3 - "$T/json" "$T/jprog" <<'PY' || t_fail "JSON progress: $(cat "$T/jprog")"
import json, sys
out = [json.loads(l) for l in open(sys.argv[1])]
assert len(out) == 1 and out[0]["summary"]["problems"] == 0, out	# stdout unchanged
ps = [json.loads(l)["progress"] for l in open(sys.argv[2])]
assert len(ps) >= 3, ps
keys = {"phase", "pass", "passes", "bytes_done", "bytes_total", "files_done",
        "files_total", "elapsed_ms", "eta_s", "final"}
assert all(keys <= set(p) for p in ps), ps
d = [p["bytes_done"] for p in ps]
assert d == sorted(d), d
assert all(p["bytes_done"] <= p["bytes_total"] for p in ps), ps
last = ps[-1]
assert last["final"] and last["bytes_done"] == last["bytes_total"] > 200 << 20, last
assert last["files_done"] == last["files_total"] == 41, last
assert sum(p["final"] for p in ps) == 1
PY
nj=$(wc -l <"$T/jprog")
"$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/json" 2>"$T/jprog" || t_fail "fsck --json"
[ ! -s "$T/jprog" ] || t_fail "--json without a terminal printed progress: $(head -3 "$T/jprog")"
t_ok "--json --progress: $nj objects on stderr, monotonic, end at bytes_total; stdout one summary; none without --progress"
rm -f "$MNT/big" "$T/tty.out"

# --- repair in a small file system: refused while the copy does not fit ---
SMALL=$T/small
mkdir "$SMALL"
mount -t tmpfs -o size=52m tmpfs "$SMALL" || t_skip "cannot mount a tmpfs"
# shellcheck disable=SC2016 # expanded when the test ends
t_on_exit 'umount -l "$SMALL" 2>/dev/null'
rm -rf "$CIPHER"
CIPHER=$SMALL/cipher KEY=$T/small.key
mkdir "$CIPHER"
t_mkvol
t_mount
head -c 16M /dev/urandom >"$MNT/bad"
head -c 16M /dev/urandom >"$MNT/ok"
head -c 10M /dev/urandom >"$MNT/fill"
ino() { stat -c %i "$MNT/$1"; }
b_bad=$(find "$CIPHER" -inum "$(ino bad)")
sum_bad=$(head -c 8M "$MNT/bad" | sha256sum)
t_umount
flip() { python3 -c 'import sys; p,o=sys.argv[1],int(sys.argv[2]); f=open(p,"r+b"); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' "$1" "$2"; }
flip "$b_bad" $((148 + 4152 * 3000 + 100))	# block 3000 of /bad
snap() { (cd "$CIPHER" && find . -printf '%p %y %s %m\n' | sort &&
	find . -type f -print0 | sort -z | xargs -0 sha256sum) | sha256sum; }
before=$(snap)
free0=$(df -B1 --output=avail "$SMALL" | tail -1)
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/rep.out" 2>"$T/rep.err" || rc=$?
[ $rc = 13 ] || t_fail "repair with $((free0 >> 20)) MiB free: exit $rc (want 13): $(cat "$T/rep.out" "$T/rep.err")"
grep -q "needs .* MiB free .*1 damaged file.*only .* MiB are free; nothing was changed" "$T/rep.err" ||
	t_fail "refusal message: $(cat "$T/rep.err")"
[ "$(snap)" = "$before" ] || t_fail "refused repair changed the cipher directory"
rc=0; "$CMKFS" fsck --repair --json --service-key "$KEY" "$CIPHER" >"$T/rep.json" 2>/dev/null || rc=$?
[ $rc = 13 ] || t_fail "repair --json exit $rc"
python3 - "$T/rep.json" <<'PY' || t_fail "refusal JSON: $(cat "$T/rep.json")"
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])["refused"]
assert r["salvage_files"] == 1 and r["need_bytes"] > r["free_bytes"], r
assert r["salvage_bytes"] >= 16 << 20, r
PY
[ "$(snap)" = "$before" ] || t_fail "refused repair (--json) changed the cipher directory"
t_ok "repair refused with $((free0 >> 20)) MiB free (exit 13, message and JSON name the need); cipher directory unchanged"

# room for the copy, not for every file: the sizing pass, then the repair
t_mount
rm "$MNT/fill"
t_umount
rc=0; "$CMKFS" fsck --repair --json --progress --service-key "$KEY" "$CIPHER" >"$T/rep.json" 2>"$T/rep.prog" || rc=$?
[ $rc = 1 ] || t_fail "repair with room: exit $rc: $(cat "$T/rep.json" "$T/rep.prog")"
python3 - "$T/rep.json" "$T/rep.prog" <<'PY' || t_fail "repair JSON: $(cat "$T/rep.json" "$T/rep.prog")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
assert any(r.get("action") == "salvaged" and r["path"] == "/bad" and r["lost_blocks"] == [3000] for r in rows), rows
assert rows[-1]["summary"]["salvaged"] == 1, rows[-1]
ps = [json.loads(l)["progress"] for l in open(sys.argv[2])]
assert [p["phase"] for p in ps if p["phase"] in ("size", "repair")][:1] == ["size"], ps
assert any(p["phase"] == "repair" and p["pass"] == 2 and p["passes"] == 2 for p in ps), ps
d = [p["bytes_done"] for p in ps]
assert d == sorted(d), d
assert ps[-1]["final"] and ps[-1]["bytes_done"] == ps[-1]["bytes_total"], ps[-1]
PY
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "fsck after the repair: $(cat "$T/out")"
t_mount
[ "$(head -c 8M "$MNT/lost+found/bad" | sha256sum)" = "$sum_bad" ] || t_fail "salvaged copy differs before the bad block"
[ "$(stat -c %s "$MNT/lost+found/bad")" = $((16 << 20)) ] || t_fail "salvaged copy size"
t_umount
umount "$SMALL" || t_fail "umount the tmpfs"
t_ok "with room for the copy (not for every file): sized, repaired (pass 2/2), clean after"
