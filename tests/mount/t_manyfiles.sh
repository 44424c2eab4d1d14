#!/usr/bin/env bash
# tests/mount/t_manyfiles.sh — a mount under a low open-file limit (issue
# #18, "A million files"): the daemon holds one O_PATH descriptor per inode
# the kernel caches, and before the bound it ran out of descriptors after
# about as many files as the limit, with nothing logged. Under a hard limit
# of 1024, 20,000 files in a tree plus one directory of 6,000 entries are
# created, listed (ls -lR), walked (find), copied out (tar c | tar x,
# rsync -a), checked (fsck beside the live mount) and rekeyed live; all
# succeed with no "Too many open files", the daemon's descriptor count,
# sampled during the walks, stays under the bound, and its peak memory
# (VmHWM) stays small.
. "$(dirname "$0")/../lib/lib.sh"
t_need prlimit rsync tar python3
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
t_mkvol

NOFILE=1024
NDIRS=40 PERDIR=350 NBIG=6000	# 14,000 + 6,000 = 20,000 files
# The inode bound the daemon derives from the limit (doc/DESIGN.md): half
# of it (512); lookups wait for the reclaimer at 3/2 of that (768); plus
# open files, a rekey's batch and the daemon's own descriptors.
FD_MAX=$((NOFILE * 7 / 8))
HWM_MAX_KB=$((96 * 1024))

prlimit --nofile=$NOFILE:$NOFILE -- "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" ||
	t_fail "cmkfs mount under nofile=$NOFILE failed"
t_is_mounted_sure "$MNT" || t_fail "not mounted"
pid=$(t_pids_with_arg "$MNT")
pid=${pid%% *}
[ -n "$pid" ] || t_fail "no daemon process found"
lim=$(awk '/^Max open files/ {print $4}' "/proc/$pid/limits")
[ "$lim" = $NOFILE ] || t_fail "daemon open-file limit is $lim, want $NOFILE"

# Sample the daemon's descriptor count in the background.
sampler() {
	local n max=0
	while [ ! -e "$T/stop" ]; do
		n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
		[ "$n" -gt "$max" ] && { max=$n; echo "$max" >"$T/fdmax"; }
		sleep 0.05
	done
}
echo 0 >"$T/fdmax"
sampler &
spid=$!
t_on_exit "touch '$T/stop'; wait $spid 2>/dev/null"

# Python creates the files: a shell loop would spend minutes in forks.
python3 - "$MNT" $NDIRS $PERDIR $NBIG <<'PY' 2>"$T/create.err" || t_fail "creating files: $(tail -3 "$T/create.err")"
import os, sys
mnt, ndirs, perdir, nbig = sys.argv[1], *map(int, sys.argv[2:])
for d in range(ndirs):
    p = os.path.join(mnt, "tree", "d%02d" % (d % 8), "e%02d" % d)
    os.makedirs(p, exist_ok=True)
    for i in range(perdir):
        with open(os.path.join(p, "f%04d" % i), "w") as f:
            f.write("tree %d %d\n" % (d, i))
big = os.path.join(mnt, "big")
os.mkdir(big)
for i in range(nbig):
    with open(os.path.join(big, "entry-with-a-longer-name-%05d" % i), "w") as f:
        f.write("big %d\n" % i)
PY
NFILES=$((NDIRS * PERDIR + NBIG))
t_ok "created $NFILES files under nofile=$NOFILE (peak $(cat "$T/fdmax") descriptors)"

check_err() {	# $1: what, $2: its stderr
	! grep -qi "too many open files" "$2" || t_fail "$1: Too many open files: $(head -3 "$2")"
}

ls -lR "$MNT" >"$T/ls.out" 2>"$T/ls.err" || t_fail "ls -lR: $(head -3 "$T/ls.err")"
check_err "ls -lR" "$T/ls.err"
n=$(grep -c '^-' "$T/ls.out")
[ "$n" = $NFILES ] || t_fail "ls -lR listed $n files, want $NFILES"
t_ok "ls -lR: $n files"

n=$(find "$MNT" -type f 2>"$T/find.err" | wc -l)
check_err find "$T/find.err"
[ ! -s "$T/find.err" ] || t_fail "find: $(head -3 "$T/find.err")"
[ "$n" = $NFILES ] || t_fail "find saw $n files, want $NFILES"
# stat every file, in the big directory too, as find -ls does
find "$MNT/big" -ls 2>"$T/find.err" | tail -1 | grep -q "entry-with-a-longer-name-0" ||
	t_fail "find -ls of the big directory: $(head -3 "$T/find.err")"
t_ok "find: $n files"

mkdir "$T/tarout"
(cd "$MNT" && tar cf - .) 2>"$T/tar.err" | (cd "$T/tarout" && tar xf -) 2>>"$T/tar.err" ||
	t_fail "tar c | tar x: $(head -3 "$T/tar.err")"
check_err tar "$T/tar.err"
diff -r "$MNT" "$T/tarout" >"$T/diff" 2>&1 || t_fail "tar copy differs: $(head -3 "$T/diff")"
t_ok "tar c | tar x and diff -r: identical"
rm -rf "$T/tarout"

rsync -a "$MNT/" "$T/rsout/" 2>"$T/rsync.err" || t_fail "rsync -a: $(head -3 "$T/rsync.err")"
check_err rsync "$T/rsync.err"
n=$(find "$T/rsout" -type f | wc -l)
[ "$n" = $NFILES ] || t_fail "rsync copied $n files, want $NFILES"
[ "$(cat "$T/rsout/big/entry-with-a-longer-name-05999")" = "big 5999" ] || t_fail "rsync contents"
t_ok "rsync -a: $n files"
rm -rf "$T/rsout"

"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck: $(tail -3 "$T/fsck")"
grep -q "0 problems" "$T/fsck" || t_fail "fsck summary: $(tail -2 "$T/fsck")"
t_ok "fsck beside the mount: $(tail -1 "$T/fsck")"

"$CMKFS" rekey --json "$CIPHER" >"$T/rekey" 2>&1 || t_fail "live rekey: $(tail -3 "$T/rekey")"
tail -1 "$T/rekey" | python3 -c 'import json,sys; assert json.load(sys.stdin)["ok"] is True' ||
	t_fail "live rekey result: $(tail -1 "$T/rekey")"
[ "$(cat "$MNT/tree/d03/e11/f0349")" = "tree 11 349" ] || t_fail "contents after rekey"
# and one more full walk after the rekey
n=$(find "$MNT" -type f -exec cat {} + 2>"$T/cat.err" | wc -l)
[ "$n" = $NFILES ] || t_fail "reading every file after rekey: $n lines, $(head -3 "$T/cat.err")"
t_ok "live rekey, then every file read back"

touch "$T/stop"
wait "$spid"
fdmax=$(cat "$T/fdmax")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
t_log "daemon peak descriptors $fdmax (limit $NOFILE), VmHWM ${hwm} kB"
[ "$fdmax" -gt 0 ] || t_fail "descriptor sampler saw nothing"
[ "$fdmax" -lt $FD_MAX ] || t_fail "daemon held $fdmax descriptors, bound $FD_MAX"
if [ "${CMKFS_SANITIZED:-0}" = 1 ]; then
	# ASan's shadow memory and quarantine (572 MiB seen) say nothing
	# about the daemon's own: the release run checks the bound
	t_log "sanitized build: VmHWM ${hwm} kB not held to the release bound"
	t_ok "descriptors peaked at $fdmax (< $FD_MAX)"
else
	[ "$hwm" -lt $HWM_MAX_KB ] || t_fail "daemon VmHWM ${hwm} kB, bound $HWM_MAX_KB kB"
	t_ok "descriptors peaked at $fdmax (< $FD_MAX), VmHWM ${hwm} kB (< $HWM_MAX_KB)"
fi
t_umount
! grep -i "too many open files" "$CMKFS_AUDIT_LOG" 2>/dev/null || t_fail "audit log shows EMFILE"
