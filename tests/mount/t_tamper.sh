#!/usr/bin/env bash
# tests/mount/t_tamper.sh — the tamper matrix (issue #2): every kind of
# change to the cipher directory is reported as EIO (or a refused mount),
# never returned as data, and the daemon's log names the backing path and
# block. Each case runs on a fresh copy of one clean volume.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 fallocate setfattr getfattr
t_init

BS=4096
HDR=148
OVH=56
CB=$((BS + OVH))

t_mkvol
t_mount
head -c $((3 * BS + BS / 2)) /dev/urandom >"$T/A.ref"
head -c $((2 * BS + BS / 4)) /dev/urandom >"$T/B.ref"
cp "$T/A.ref" "$MNT/A"
cp "$T/B.ref" "$MNT/B"
setfattr -n user.x -v some-value "$MNT/A"
mkdir "$MNT/d"
echo hello >"$MNT/d/f"
ln -s some/target "$MNT/s"
LONG=$(printf 'L%.0s' $(seq 200))
echo long >"$MNT/$LONG"
t_umount
CLEAN=$T/clean
cp -a "$CIPHER" "$CLEAN"

size_a=$((HDR + 3 * CB + BS / 2 + OVH))
size_b=$((HDR + 2 * CB + BS / 4 + OVH))
bfile() { find "$CIPHER" -maxdepth 1 -type f -size "$1"c | head -n1; }

# Byte surgery on backing files (python: exact offsets, no shell quoting).
py() { python3 - "$@"; }
flip() { # file offset
	py "$1" "$2" <<'PY'
import sys
p, off = sys.argv[1], int(sys.argv[2])
with open(p, "r+b") as f:
    f.seek(off); b = f.read(1); f.seek(off); f.write(bytes([b[0] ^ 0x20]))
PY
}
copy_range() { # src srcoff dst dstoff len
	py "$@" <<'PY'
import sys
s, so, d, do, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
with open(s, "rb") as f:
    f.seek(so); data = f.read(n)
with open(d, "r+b") as f:
    f.seek(do); f.write(data)
PY
}
swap_range() { # file off1 off2 len
	py "$@" <<'PY'
import sys
p, a, b, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
with open(p, "r+b") as f:
    f.seek(a); x = f.read(n); f.seek(b); y = f.read(n)
    f.seek(a); f.write(y); f.seek(b); f.write(x)
PY
}

FGPID=
LOG=$T/daemon.log
fresh() { rm -rf "$CIPHER"; cp -a "$CLEAN" "$CIPHER"; A=$(bfile $size_a); B=$(bfile $size_b); }
mount_fg() {
	"$CMKFS" mount -f --service-key "$KEY" "$CIPHER" "$MNT" 2>"$LOG" &
	FGPID=$!
	for _ in $(seq 200); do
		t_is_mounted "$MNT" && return 0
		kill -0 "$FGPID" 2>/dev/null || t_fail "daemon died: $(cat "$LOG")"
		sleep 0.05
	done
	t_fail "mount did not come up"
}
umount_fg() { "$CMKFS" umount "$MNT" || t_fail "umount"; wait "$FGPID" || true; }

# expect_eio CASE CMD...: CMD must fail with "Input/output error".
expect_eio() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1 >/dev/null); then
		t_fail "$what: '$*' succeeded on tampered data"
	fi
	case $out in
	*"Input/output error"*) ;;
	*) t_fail "$what: '$*' failed without EIO: $out" ;;
	esac
}
expect_log() { grep -qF -- "$2" "$LOG" || t_fail "$1: daemon log lacks '$2': $(cat "$LOG")"; }

# case NAME SETUP CHECK... : fresh copy, tamper, mount, expect EIO.
n_cases=0
run_case() {
	local name=$1 setup=$2
	shift 2
	fresh
	eval "$setup"
	mount_fg
	expect_eio "$name" "$@"
	umount_fg
	n_cases=$((n_cases + 1))
}

# --- the clean copy reads back: the failures below are the tampering ---
fresh
mount_fg
cmp "$MNT/A" "$T/A.ref" && cmp "$MNT/B" "$T/B.ref" || t_fail "clean copy unreadable"
[ "$(getfattr --only-values -n user.x "$MNT/A")" = some-value ] || t_fail "xattr"
[ "$(readlink "$MNT/s")" = some/target ] || t_fail "symlink"
umount_fg
t_ok "clean volume reads back"

# --- file header: any byte ---
for off in 0 4 6 9 13 27 28 50 87 88 120 147; do
	run_case "header byte $off" 'flip "$A" '$off cat "$MNT/A"
	expect_log "header byte $off" "$A"
done
t_ok "header bytes: every flip refused, backing path logged"

# --- each block: a flip fails that block only ---
for blk in 0 1 2 3; do
	fresh
	flip "$A" $((HDR + blk * CB + 40))
	mount_fg
	if [ $blk -lt 3 ]; then
		for other in 0 1 2 3; do
			[ $other = $blk ] && continue
			dd if="$MNT/A" of=/dev/null bs=$BS skip=$other count=1 status=none ||
				t_fail "block $blk flipped: intact block $other unreadable"
		done
	fi
	expect_eio "block $blk flip" dd if="$MNT/A" of=/dev/null bs=$BS skip=$blk count=1 status=none
	expect_log "block $blk flip" "$A"
	[ $blk -lt 3 ] && expect_log "block $blk flip" "block $blk "
	umount_fg
done
t_ok "block flips: only the damaged block fails; path and block logged"

run_case "zeroed block" 'dd if=/dev/zero of="$A" bs=1 seek=$((HDR + CB)) count=$CB conv=notrunc status=none' cat "$MNT/A"
run_case "punched hole" 'fallocate -p -o $((HDR + CB)) -l $CB "$A"' cat "$MNT/A"
run_case "blocks swapped" 'swap_range "$A" $HDR $((HDR + CB)) $CB' cat "$MNT/A"
run_case "block duplicated" 'copy_range "$A" $HDR "$A" $((HDR + CB)) $CB' cat "$MNT/A"
run_case "block from other file" 'copy_range "$B" $((HDR + CB)) "$A" $((HDR + CB)) $CB' cat "$MNT/A"
swap_hdr() { local t=$T/h; head -c $HDR "$A" >"$t"; copy_range "$B" 0 "$A" 0 $HDR; copy_range "$t" 0 "$B" 0 $HDR; }
run_case "headers swapped (A)" 'swap_hdr' cat "$MNT/A"
run_case "headers swapped (B)" 'swap_hdr' cat "$MNT/B"
t_ok "zeroed, punched, swapped, duplicated, foreign blocks and swapped headers refused"

run_case "cut mid-block" 'truncate -s $((size_a - 100)) "$A"' cat "$MNT/A"
run_case "cut in block overhead" 'truncate -s $((HDR + 3 * CB + 30)) "$A"' cat "$MNT/A"
run_case "cut at block boundary" 'truncate -s $((HDR + 3 * CB)) "$A"' cat "$MNT/A"
run_case "cut at first boundary" 'truncate -s $((HDR + CB)) "$A"' cat "$MNT/A"
run_case "cut to header" 'truncate -s $HDR "$A"' cat "$MNT/A"
run_case "cut to empty-file shape" 'truncate -s $((HDR + OVH)) "$A"' cat "$MNT/A"
run_case "cut inside header" 'truncate -s 100 "$A"' cat "$MNT/A"
run_case "garbage appended" 'head -c 5000 /dev/urandom >>"$A"' cat "$MNT/A"
t_ok "truncation mid-block, at block boundaries, to the header, and extension refused"

# --- names, directories, symlinks, long names, xattrs ---
run_case "name flipped" 'n=$(basename "$A"); c=X; [ "${n:5:1}" = X ] && c=Y; mv "$A" "$CIPHER/${n:0:5}$c${n:6}"' ls "$MNT"
run_case "dirid flipped" 'd=$(find "$CIPHER" -mindepth 1 -maxdepth 1 -type d ! -name "cmkfs.*"); chmod u+w "$d/cmkfs.dirid"; flip "$d/cmkfs.dirid" 3' ls "$MNT/d"
run_case "entry moved across dirs" 'd=$(find "$CIPHER" -mindepth 1 -maxdepth 1 -type d ! -name "cmkfs.*"); f=$(find "$d" -type f ! -name "cmkfs.*"); mv "$f" "$CIPHER/"' ls "$MNT"
# (the replacement character always differs from the one it replaces)
run_case "symlink target" 'l=$(find "$CIPHER" -maxdepth 1 -type l); tg=$(readlink "$l"); c=A; [ "${tg:4:1}" = A ] && c=B; rm "$l"; ln -s -- "${tg:0:4}$c${tg:5}" "$l"' readlink -v "$MNT/s"
run_case "long-name side file" 'sf=$(find "$CIPHER" -maxdepth 1 -name "cmkfs.ln.*.name"); chmod u+w "$sf"; flip "$sf" 10' ls "$MNT"
xattr_tamper() {
	local n v
	n=$(getfattr -d -m '^user\.' -e hex "$A" | sed -n 's/^\(user\.[^=]*\)=0x.*/\1/p' | head -n1)
	v=$(getfattr -e hex -n "$n" "$A" | sed -n 's/^[^=]*=0x//p')
	setfattr -n "$n" -v "0x${v:0:10}$( [ "${v:10:1}" = 0 ] && echo 1 || echo 0)${v:11}" "$A"
}
run_case "xattr value" 'xattr_tamper' getfattr -n user.x "$MNT/A"
t_ok "names, directory ids, moved entries, symlink targets, long names, xattrs refused"

# --- truncate record (doc/FORMAT.md §3.1) from an old backup ---
# A backup taken while a shrink of /T (20,000 -> 5,000 bytes) was in
# flight holds its record; the file grew back since. The adversary puts
# that record back and flips one byte of the file's tail, so that the
# tail fails as after a crash. The record no longer matches the file's
# backing length: EIO with the path logged, fsck names it (exit 1, text
# and JSON, not a pending truncate), the file is never cut, and
# fsck --repair sets the record aside instead of applying it.
fresh
mount_fg
head -c 20000 /dev/urandom >"$T/T.ref"
cp "$T/T.ref" "$MNT/T"
sync
tsize=$(stat -c %s "$MNT/T")
tb=$(bfile $((HDR + 4 * CB + 20000 - 4 * BS + OVH)))
[ -n "$tb" ] || t_fail "truncate record: no backing file for /T"
tid=$(od -An -tx1 -j12 -N16 "$tb" | tr -d ' \n')
# (the "backup" of the in-flight record: a second link to the name the
# shrink writes its record under, which its removal leaves behind)
: >"$CIPHER/cmkfs.journal/$tid"
ln "$CIPHER/cmkfs.journal/$tid" "$T/backup.rec"
truncate -s 5000 "$MNT/T"
[ -s "$T/backup.rec" ] && [ ! -e "$CIPHER/cmkfs.journal/$tid" ] || t_fail "truncate record: the shrink left no record to back up"
dd if="$T/T.ref" of="$MNT/T" bs=5000 skip=1 seek=1 conv=notrunc status=none
cmp "$MNT/T" "$T/T.ref" || t_fail "truncate record: /T did not grow back"
umount_fg
tlen=$(stat -c %s "$tb")
# the adversary: the old record back, one tail byte flipped
cp "$T/backup.rec" "$CIPHER/cmkfs.journal/$tid"
flip "$tb" $((tlen - 1))
mount_fg
expect_eio "old truncate record" cat "$MNT/T"
[ "$(stat -c %s "$MNT/T")" = "$tsize" ] || t_fail "old truncate record: the mount cut /T to $(stat -c %s "$MNT/T") bytes"
expect_log "old truncate record" "$tb: truncate record cmkfs.journal/$tid refused"
umount_fg
[ "$(stat -c %s "$tb")" = "$tlen" ] || t_fail "old truncate record: backing file cut"
[ -e "$CIPHER/cmkfs.journal/$tid" ] || t_fail "old truncate record: not kept"
rc=0; "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.out" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "old truncate record: fsck exit $rc: $(cat "$T/fsck.out")"
grep -F -- "$tb" "$T/fsck.out" | grep -qF "(/T): truncate record cmkfs.journal/$tid refused: the file is longer than the record's cut and block" ||
	t_fail "old truncate record: fsck text: $(cat "$T/fsck.out")"
rc=0; "$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/fsck.json" 2>/dev/null || rc=$?
[ $rc = 1 ] || t_fail "old truncate record: fsck --json exit $rc"
python3 - "$T/fsck.json" "$tb" <<'PY' || t_fail "old truncate record: fsck --json: $(cat "$T/fsck.json")"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
mine = [r for r in rows if r.get("backing") == sys.argv[2]]
assert any(r["path"] == "/T" and "truncate record" in r["problem"] for r in mine), mine
assert rows[-1]["summary"]["truncates_pending"] == 0, rows[-1]
PY
rc=0; "$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/repair.out" 2>&1 || rc=$?
[ $rc = 1 ] || t_fail "old truncate record: fsck --repair exit $rc: $(cat "$T/repair.out")"
[ ! -e "$CIPHER/cmkfs.journal/$tid" ] || t_fail "old truncate record: repair left it in the journal"
q=$(find "$CIPHER/cmkfs.quarantine" -path "*/cmkfs.journal/$tid")
[ -n "$q" ] && cmp -s "$q" "$T/backup.rec" || t_fail "old truncate record: not in the quarantine: $(cat "$T/repair.out")"
grep -q "cut short by a crash completed" "$T/repair.out" && t_fail "old truncate record: repair applied it"
t_ok "old truncate record with a flipped tail byte: EIO, path logged, file not cut, fsck names it (text, JSON), repair quarantines it"
n_cases=$((n_cases + 1))

# --- volume config: every byte, and the wrong key ---
fresh
conf=$CIPHER/cmkfs.conf
len=$(stat -c %s "$conf")
cp "$conf" "$T/conf.clean"
for ((off = 0; off < len; off++)); do
	cp "$T/conf.clean" "$conf"
	flip "$conf" $off
	if "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" 2>"$T/err"; then
		"$CMKFS" umount "$MNT"
		t_fail "config byte $off flipped: mount succeeded"
	fi
	rc=0; "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" 2>/dev/null || rc=$?
	# 12: damaged; 8: a flipped wrapped key reads as a wrong key
	[ $rc = 12 ] || [ $rc = 8 ] || t_fail "config byte $off: exit $rc, want 12 (or 8)"
	grep -qE "tampered|malformed|wrong key" "$T/err" || t_fail "config byte $off: unclear error: $(cat "$T/err")"
done
cp "$T/conf.clean" "$conf"
t_ok "volume config: all $len single-byte changes refused with a clear error"
head -c 32 /dev/urandom >"$T/other.key"
chmod 600 "$T/other.key"
if "$CMKFS" mount --service-key "$T/other.key" "$CIPHER" "$MNT" 2>"$T/err"; then
	"$CMKFS" umount "$MNT"
	t_fail "mounted with the wrong service key"
fi
grep -q "wrong key" "$T/err" || t_fail "wrong key: unclear error: $(cat "$T/err")"
t_ok "wrong service key refused: $(cat "$T/err")"
t_ok "$n_cases tamper cases detected"
