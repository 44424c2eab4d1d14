#!/usr/bin/env bash
# tests/mount/t_repair.sh — cmkfs fsck --repair (issue #4): one damage of
# each kind is planted; --repair salvages damaged files into lost+found
# (every intact block kept, each bad block zeroed: compared byte for byte
# with the original), quarantines what cannot be read (never deletes it),
# reports it, exits 1, and a second fsck is clean; the mount then shows
# lost+found and reads every undamaged file unchanged. --repair refuses a
# mounted volume. Transient expiry in fsck: counted beside a live mount,
# done (and audited with a count) while unmounted; a damaged file of a zone
# is salvaged into the zone's own lost+found.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 setfattr getfattr sha256sum cmp flock
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_TRANSIENT_SWEEP_SEC=3600
BS=4096 CB=$((4096 + 56)) HDR=148
t_mkvol
t_mount
mkdir -p "$MNT/d/sub" "$MNT/keep/deep"
for i in $(seq 40); do head -c $((i * 997)) /dev/urandom >"$MNT/keep/f$i"; done
for i in $(seq 10); do echo "small $i" >"$MNT/d/sub/s$i"; done
head -c 20000 /dev/urandom >"$MNT/keep/deep/big"
head -c $((5 * BS + 1000)) /dev/urandom >"$MNT/mid"	# 6 blocks: block 2 bad
head -c $((3 * BS + 500)) /dev/urandom >"$MNT/d/tail"	# 4 blocks: last bad
head -c $((3 * BS + 10)) /dev/urandom >"$MNT/d/cut"	# cut after block 1
head -c 9000 /dev/urandom >"$MNT/hdr"			# header truncated
echo "bad name" >"$MNT/d/badname"
long=$(printf 'L%.0s' $(seq 200))
echo long >"$MNT/d/$long"				# side file broken
ln -s target "$MNT/link"					# target corrupted
setfattr -n user.tag -v value "$MNT/mid"
touch -d '2020-01-02 03:04:05' "$MNT/mid"
mkdir "$T/orig"
cp -p "$MNT/mid" "$MNT/d/tail" "$MNT/d/cut" "$T/orig/"
(cd "$MNT" && find keep d/sub -type f -print0 | xargs -0 sha256sum) >"$T/sums"
ino() { stat -c %i "$MNT/$1"; }
bk() { find "$CIPHER" -inum "$(ino "$1")"; }
b_mid=$(bk mid) b_tail=$(bk d/tail) b_cut=$(bk d/cut) b_hdr=$(bk hdr)
b_bad=$(bk d/badname) b_long=$(bk "d/$long") b_link=$(bk link) b_d=$(bk d)
t_umount
[ -n "$b_mid" ] && [ -n "$b_link" ] && [ -n "$b_d" ] || t_fail "backing paths not found"

flip() { python3 -c 'import sys; p,o=sys.argv[1],int(sys.argv[2]); f=open(p,"r+b"); f.seek(o); b=f.read(1); f.seek(o); f.write(bytes([b[0]^1]))' "$1" "$2"; }
flip "$b_mid" $((HDR + 2 * CB + 100))
touch -d '2020-01-02 03:04:05' "$b_mid"	# bit rot leaves the mtime alone
flip "$b_tail" $((HDR + 3 * CB + 30))
truncate -s $((HDR + 2 * CB)) "$b_cut"
truncate -s 100 "$b_hdr"
n=$(basename "$b_bad"); c=A; [ "${n:3:1}" = A ] && c=B
b_bad2=$b_d/${n:0:3}$c${n:4}; mv "$b_bad" "$b_bad2"
side=$b_long.name; chmod u+w "$side"; flip "$side" 5
tg=$(readlink "$b_link"); c=A; [ "${tg:3:1}" = A ] && c=B
rm "$b_link"; ln -s -- "${tg:0:3}$c${tg:4}" "$b_link"
touch "$b_d/cmkfs.tmp.0123456789abcdef"
find "$CIPHER" -name cmkfs.quarantine | grep -q . && t_fail "quarantine exists before any repair"

rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/check" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "plain fsck on the damaged volume: exit $rc"
[ -z "$(find "$CIPHER" -name 'cmkfs.quarantine')" ] || t_fail "plain fsck wrote a quarantine"

# --- repair
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/rep" 2>"$T/rep.err" || rc=$?
[ $rc = 1 ] || t_fail "fsck --repair: exit $rc, want 1: $(cat "$T/rep" "$T/rep.err")"
has() { grep -F -- "$1" "$T/rep" | grep -qF -- "$2" || t_fail "report lacks '$2' for $1: $(cat "$T/rep")"; }
has "SALVAGED $b_mid (/mid)" "-> /lost+found/mid: 1 block lost, written as zeros: block 2"
has "SALVAGED $b_tail (/d/tail)" "-> /lost+found/d%tail: 1 block lost, written as zeros: block 3"
has "SALVAGED $b_cut (/d/cut)" "-> /lost+found/d%cut: no block lost; file cut short"
q=$CIPHER/cmkfs.quarantine
for b in "$b_mid" "$b_tail" "$b_cut" "$b_hdr" "$b_bad2" "$b_long" "$b_link" "$b_d/cmkfs.tmp.0123456789abcdef"; do
	has "QUARANTINED $b" "-> $q/"
	qp=$(grep -F "QUARANTINED $b" "$T/rep" | sed 's/.* -> //')
	[ -e "$qp" ] || [ -L "$qp" ] || t_fail "quarantined $b is not at $qp"
	[ -e "$b" ] || [ -L "$b" ] && t_fail "$b still in place after repair"
	case $qp in "$q"/*/"${b#"$CIPHER"/}") ;; *) t_fail "quarantine path $qp does not mirror $b" ;; esac
done
[ -f "$(dirname "$(grep -F "QUARANTINED $b_long" "$T/rep" | sed 's/.* -> //')")/$(basename "$b_long").name" ] ||
	t_fail "broken long-name side file not quarantined with its entry"
[ -f "$(dirname "$(grep -F "QUARANTINED $b_bad2" "$T/rep" | sed 's/.* -> //')")/cmkfs.dirid" ] ||
	t_fail "quarantine lacks the directory id copy"
grep -q "repair: 3 files salvaged into lost+found (2 blocks lost), 8 entries quarantined in $q, 0 destroyed in transient zones, 0 not repaired" "$T/rep" ||
	t_fail "repair summary: $(tail -2 "$T/rep")"
t_ok "fsck --repair: exit 1; 3 files salvaged (bad middle block, bad last block, cut file), 8 entries quarantined, report lists blocks and new names"

rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/again" 2>&1 || rc=$?
[ $rc = 0 ] || t_fail "second fsck: exit $rc: $(cat "$T/again")"
grep -q " 0 problems" "$T/again" || t_fail "second fsck: $(cat "$T/again")"
t_ok "second fsck is clean: $(head -1 "$T/again")"

grep -q '"event":"fsck_repair".*"detail":"[0-9]* problems, 3 salvaged (2 blocks lost), 8 quarantined' "$CMKFS_AUDIT_LOG" ||
	t_fail "repair not audited: $(cat "$CMKFS_AUDIT_LOG" 2>/dev/null)"
python3 - "$CMKFS_AUDIT_LOG" <<'PY' || t_fail "fsck_repair audit detail is not counts only: $(grep fsck_repair "$CMKFS_AUDIT_LOG")"
import json, re, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
rep = [e for e in ev if e["event"] == "fsck_repair"]
assert len(rep) == 1 and rep[0]["key"] is None and rep[0]["result"] == "ok", rep
assert re.fullmatch(r"\d+ problems, \d+ salvaged \(\d+ blocks lost\), \d+ quarantined, "
                    r"\d+ destroyed, \d+ not repaired", rep[0]["detail"]), rep
PY
t_ok "repair audited as fsck_repair with counts, no names"

# --- the mount after repair
t_mount
[ -d "$MNT/lost+found" ] || t_fail "no lost+found on the mount"
[ "$(stat -c %a "$MNT/lost+found")" = 700 ] || t_fail "lost+found mode $(stat -c %a "$MNT/lost+found")"
ls -A "$MNT/lost+found" | sort >"$T/lf"
printf '%s\n' d%cut d%tail mid | cmp -s - "$T/lf" || t_fail "lost+found holds: $(cat "$T/lf")"
python3 - "$T/orig" "$MNT/lost+found" $BS <<'PY' || t_fail "salvaged contents differ from the originals with the bad blocks zeroed"
import sys
o, lf, bs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def zero(b, *blocks):
    b = bytearray(b)
    for n in blocks:
        s = n * bs
        b[s:s + bs] = bytes(len(b[s:s + bs]))
    return bytes(b)
mid = open(o + "/mid", "rb").read()
tail = open(o + "/tail", "rb").read()
cut = open(o + "/cut", "rb").read()
want = {"mid": zero(mid, 2), "d%tail": zero(tail, 3), "d%cut": cut[:2 * bs]}
for name, data in want.items():
    got = open(lf + "/" + name, "rb").read()
    assert len(got) == len(data), (name, len(got), len(data))
    assert got == data, name
    assert got != {"mid": mid, "d%tail": tail, "d%cut": cut}[name], name
PY
cmp -n $((2 * BS)) "$T/orig/mid" "$MNT/lost+found/mid" || t_fail "block 0-1 of mid differ"
[ "$(getfattr --only-values -n user.tag "$MNT/lost+found/mid")" = value ] || t_fail "xattr not kept"
[ "$(stat -c %Y "$MNT/lost+found/mid")" = "$(stat -c %Y "$T/orig/mid")" ] || t_fail "mtime not kept"
(cd "$MNT" && sha256sum --quiet -c "$T/sums") || t_fail "an undamaged file changed"
for p in mid d/tail d/cut hdr d/badname "d/$long" link; do
	[ -e "$MNT/$p" ] || [ -L "$MNT/$p" ] && t_fail "$p still visible after repair"
done
ls -A "$MNT" | grep -q cmkfs && t_fail "a cmkfs. name is visible on the mount"
echo more >"$MNT/lost+found/new" && rm "$MNT/lost+found/new" || t_fail "lost+found is not usable"
t_ok "mount: lost+found (0700) holds the salvaged files = originals with exactly the bad blocks zeroed (xattr, mtime kept); $(wc -l <"$T/sums") undamaged files unchanged"

rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/live" 2>"$T/live.err" || rc=$?
[ $rc = 2 ] || t_fail "--repair on a mounted volume: exit $rc, want 2"
grep -q "is mounted on $MNT" "$T/live.err" || t_fail "refusal message: $(cat "$T/live.err")"
[ "$(find "$q" -mindepth 1 -maxdepth 1 | wc -l)" = 1 ] || t_fail "refused repair wrote to the quarantine"
t_ok "--repair refuses a mounted volume: exit 2 ($(head -c 80 "$T/live.err")...)"

# --- transient expiry in fsck
# Age goes by the creation time in each header (format 3), not by backing
# times: old1..3 are made now, fresh and damaged by a daemon whose clock
# runs 3 h ahead (CMKFS_TEST_CLOCK_SKEW), and fsck looks 3 h ahead.
mkdir -p "$MNT/relay/sub"
for f in old1 old2 sub/old3; do echo "$f" >"$MNT/relay/$f"; done
t_umount
CMKFS_TEST_CLOCK_SKEW=10800 t_mount
for f in fresh damaged; do echo "$f" >"$MNT/relay/$f"; done
head -c $((2 * BS + 7)) /dev/urandom >"$MNT/relay/damaged"
cp "$MNT/relay/damaged" "$T/orig/zdamaged"
t_remount
"$CMKFS" transient add --service-key "$KEY" --ttl 2h /relay "$CIPHER" >/dev/null || t_fail "transient add"
b_zd=$(bk relay/damaged)
rc=0; CMKFS_TEST_CLOCK_SKEW=10800 "$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/zlive" 2>"$T/zlive.err" || rc=$?
[ $rc = 0 ] || t_fail "fsck beside the mount: exit $rc: $(cat "$T/zlive")"
python3 -c 'import json,sys; s=json.loads(open(sys.argv[1]).read().splitlines()[-1])["summary"]; assert s["expiry_due"]==3 and s["expired"]==0, s' "$T/zlive" ||
	t_fail "fsck beside a live mount did not count 3 due: $(cat "$T/zlive")"
[ -e "$MNT/relay/old1" ] || t_fail "fsck expired a file beside a live mount"
t_ok "beside a live mount fsck only counts the 3 expired files (the mount's sweeper owns expiry)"
t_umount

objects() { find "$CIPHER" -path "$q" -prune -o -type f ! -name 'cmkfs.*' -print | wc -l; }
nb=$(objects)
audit_before=$(grep -c transient_expire "$CMKFS_AUDIT_LOG" || true)
rc=0; CMKFS_TEST_CLOCK_SKEW=10800 "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/zoff" 2>&1 || rc=$?
[ $rc = 0 ] || t_fail "fsck of the unmounted volume: exit $rc: $(cat "$T/zoff")"
grep -q "transient zones: 3 expired entries destroyed" "$T/zoff" || t_fail "expiry not reported: $(cat "$T/zoff")"
na=$(objects)
[ $((nb - na)) = 3 ] || t_fail "backing files: $nb before fsck, $na after (want 3 fewer)"
[ "$(grep -c transient_expire "$CMKFS_AUDIT_LOG")" = $((audit_before + 1)) ] || t_fail "fsck expiry not audited"
grep -q '"event":"transient_expire".*"detail":"3 expired by fsck"' "$CMKFS_AUDIT_LOG" || t_fail "audit lacks the count: $(grep transient "$CMKFS_AUDIT_LOG")"
grep transient_expire "$CMKFS_AUDIT_LOG" | grep -q 'old1\|old3\|relay' && t_fail "names in the audit log"
t_ok "unmounted: fsck destroyed the 3 expired zone files, audited as '3 expired by fsck'"

# a damaged file inside a zone is salvaged into the zone's own lost+found
flip "$b_zd" $((HDR + 1 * CB + 9))
rc=0; "$CMKFS" fsck --repair --json --service-key "$KEY" "$CIPHER" >"$T/zrep" 2>"$T/zrep.err" || rc=$?
[ $rc = 1 ] || t_fail "zone repair: exit $rc: $(cat "$T/zrep")"
python3 - "$T/zrep" "$b_zd" <<'PY' || t_fail "zone repair report: $(cat "$T/zrep")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
acts = {(r.get("action"), r.get("backing")): r for r in rows if "action" in r}
s = acts[("salvaged", sys.argv[2])]
assert s["path"] == "/relay/damaged" and s["new_path"] == "/relay/lost+found/relay%damaged", s
assert s["lost_blocks"] == [1] and s["cut"] is False, s
assert ("destroyed", sys.argv[2]) in acts, acts
sm = rows[-1]["summary"]
assert sm["salvaged"] == 1 and sm["destroyed"] == 1 and sm["quarantined"] == 0 and sm["not_repaired"] == 0, sm
PY
[ -e "$b_zd" ] && t_fail "zone original not destroyed"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >/dev/null 2>&1 || t_fail "fsck after the zone repair is not clean"
t_mount
python3 - "$T/orig/zdamaged" "$MNT/relay/lost+found/relay%damaged" $BS <<'PY' || t_fail "zone salvage content"
import sys
o = bytearray(open(sys.argv[1], "rb").read()); bs = int(sys.argv[3])
o[bs:2 * bs] = bytes(bs)
assert open(sys.argv[2], "rb").read() == bytes(o)
PY
[ -e "$MNT/lost+found/relay%damaged" ] && t_fail "zone file salvaged out of its zone"
[ "$(cat "$MNT/relay/fresh")" = fresh ] || t_fail "fresh zone file lost"
t_umount
t_ok "a damaged zone file is salvaged into /relay/lost+found (keeps expiring), its original destroyed, not quarantined"

# a damaged xattr goes to the quarantine and its file stays; a directory
# whose id is lost is quarantined whole, with its subtree
t_mount
mkdir -p "$MNT/noid/x"
echo inside >"$MNT/noid/x/f"
echo xf >"$MNT/xf"
setfattr -n user.one -v 1 "$MNT/xf"
setfattr -n user.two -v 2 "$MNT/xf"
b_noid=$(bk noid) b_xf=$(bk xf)
t_umount
rm -f "$b_noid/cmkfs.dirid"
x=$(getfattr -d -m '^user\.' -e hex "$b_xf" 2>/dev/null | sed -n 's/^\(user\.[^=]*\)=0x\(.*\)/\1 \2/p' | head -1)
xv=${x#* }; setfattr -n "${x%% *}" -v "0x${xv:0:6}$([ "${xv:6:1}" = 0 ] && echo 1 || echo 0)${xv:7}" "$b_xf"
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/rep2" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "repair of xattr and directory id: exit $rc: $(cat "$T/rep2")"
grep -F "QUARANTINED $b_xf (/xf) -> $q/" "$T/rep2" | grep -q "cmkfs.xattrs/$(basename "$b_xf"): 1 damaged xattr removed" ||
	t_fail "xattr repair not reported: $(cat "$T/rep2")"
grep -qF "QUARANTINED $b_noid (/noid) -> $q/" "$T/rep2" || t_fail "directory without id not quarantined: $(cat "$T/rep2")"
[ -e "$b_noid" ] && t_fail "directory without id still in place"
[ "$(find "$q" -path "*/$(basename "$b_noid")/*" -type f ! -name cmkfs.dirid | wc -l)" = 1 ] ||
	t_fail "quarantined directory lost its subtree"
[ "$(getfattr -d -m '^user\.' "$q"/*/cmkfs.xattrs/"$(basename "$b_xf")" 2>/dev/null | grep -c '^user\.')" = 1 ] ||
	t_fail "the damaged xattr is not kept in the quarantine"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >/dev/null 2>&1 || t_fail "fsck after the xattr/directory repair is not clean"
t_mount
[ "$(cat "$MNT/xf")" = xf ] || t_fail "file with a damaged xattr changed"
[ "$(getfattr -d -m '^user\.' "$MNT/xf" 2>/dev/null | grep -c '^user\.')" = 1 ] || t_fail "intact xattr lost or damaged one kept"
[ -e "$MNT/noid" ] && t_fail "/noid still visible"
t_umount
t_ok "a damaged xattr is moved to the quarantine (the file and its good xattr stay); a directory without its id is quarantined with its subtree"

# a flipped bit in a directory id makes every name in it fail: --repair
# must set the directory aside once, whole (its id can be restored), not
# entry by entry; inside a transient zone it must destroy nothing
t_mount
mkdir -p "$MNT/badid" "$MNT/relay/zbadid"
for i in 1 2 3; do echo "b$i" >"$MNT/badid/f$i"; echo "z$i" >"$MNT/relay/zbadid/f$i"; done
b_badid=$(bk badid) b_zbadid=$(bk relay/zbadid)
t_umount
for d in "$b_badid" "$b_zbadid"; do chmod u+w "$d/cmkfs.dirid"; python3 -c 'import sys; f=open(sys.argv[1],"r+b"); b=f.read(1); f.seek(0); f.write(bytes([b[0]^1]))' "$d/cmkfs.dirid"; done
zsums=$(cd "$b_zbadid" && find . -type f | sort | xargs sha256sum)
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/rep3" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "repair of damaged directory ids: exit $rc: $(cat "$T/rep3")"
grep -qF "QUARANTINED $b_badid (/badid) -> $q/" "$T/rep3" || t_fail "directory with a damaged id not quarantined whole: $(cat "$T/rep3")"
grep -F -e "$b_badid/" "$T/rep3" | grep -q "QUARANTINED\|DESTROYED" && t_fail "entries of /badid set aside one by one: $(cat "$T/rep3")"
[ "$(find "$q" -path "*/$(basename "$b_badid")/*" -type f ! -name cmkfs.dirid | wc -l)" = 3 ] || t_fail "quarantined /badid lost entries"
grep -F -e "$b_zbadid" "$T/rep3" | grep -q "DESTROYED\|QUARANTINED" && t_fail "zone directory with a damaged id was destroyed or quarantined: $(cat "$T/rep3")"
grep -F "NOT-REPAIRED $b_zbadid" "$T/rep3" | grep -q "directory id lost in a transient zone" || t_fail "zone directory with a damaged id not reported: $(cat "$T/rep3")"
[ "$(cd "$b_zbadid" && find . -type f | sort | xargs sha256sum)" = "$zsums" ] || t_fail "zone directory with a damaged id was changed"
t_ok "damaged directory id: quarantined whole (not entry by entry); inside a transient zone left untouched and reported not repaired"
# restore the zone directory's id so the volume is clean again
python3 -c 'import sys; f=open(sys.argv[1],"r+b"); b=f.read(1); f.seek(0); f.write(bytes([b[0]^1]))' "$b_zbadid/cmkfs.dirid"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >/dev/null 2>&1 || t_fail "fsck after restoring the zone directory id is not clean"

# a rekey re-wraps the originals set aside in the quarantine too (their
# headers still open), and the quarantine's unreadable entries are not
# counted as damage
"$CMKFS" rekey --json --service-key "$KEY" "$CIPHER" >"$T/rk.json" || t_fail "rekey after repair: $(tail -2 "$T/rk.json")"
gen=$("$CMKFS" status --json "$CIPHER" | python3 -c 'import json,sys; print(json.load(sys.stdin)["kek_generation"])')
python3 - "$q" "$gen" "$T/rk.json" <<'PY' || t_fail "quarantined originals after rekey"
import json, os, struct, sys
q, gen = sys.argv[1], int(sys.argv[2])
last = json.loads(open(sys.argv[3]).read().splitlines()[-1])
assert last["ok"] and last["rekey"]["damaged"] == 0, last
new = 0
for d, _, fs in os.walk(q):
    for f in fs:
        p = os.path.join(d, f)
        if os.path.islink(p) or not os.path.isfile(p):
            continue    # quarantined symlinks, FIFOs
        b = open(p, "rb").read(148)
        if len(b) == 148 and b[:4] == b"CMKH" and struct.unpack(">I", b[8:12])[0] == gen:
            new += 1
assert new >= 3, "only %d quarantined headers under generation %d" % (new, gen)
PY
t_ok "rekey after a repair: quarantined originals re-wrapped to generation $gen, no damage counted"

# the volume lock: a mount the mount table does not show (another mount
# namespace) still holds a shared flock on the cipher directory
flock -s "$CIPHER" -c "touch '$T/locked'; while [ -d '$T' ] && [ ! -e '$T/unlock' ]; do sleep 0.1; done" &
fl=$!
t_on_exit "touch '$T/unlock' 2>/dev/null; wait $fl 2>/dev/null"
for _ in $(seq 100); do [ -e "$T/locked" ] && break; sleep 0.1; done
[ -e "$T/locked" ] || t_fail "flock(1) did not take the lock"
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >/dev/null 2>"$T/busy" || rc=$?
[ $rc = 2 ] && grep -q "in use by a mount" "$T/busy" || t_fail "--repair under a held volume lock: exit $rc: $(cat "$T/busy")"
touch "$T/unlock"; wait "$fl" || t_fail "flock(1) failed"
t_ok "--repair refuses a volume whose lock a mount holds: exit 2"
