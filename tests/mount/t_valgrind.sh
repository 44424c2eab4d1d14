#!/usr/bin/env bash
# tests/mount/t_valgrind.sh — valgrind memcheck on the daemon (issue #6
# "Memory"): `cmkfs mount -f` runs under valgrind while a workload goes
# through the mount — create, write, read, append, truncate, rename within
# and across directories, long names, xattrs, symlinks, hard links,
# readdir, mmap, unlink, rmdir, `cmkfs status`, a `cmkfs lock` and its
# resume (with a directory opened while locked), and a short concurrent
# stress run — then unmounts. A second daemon under valgrind has its
# connection aborted (`umount -f`) while a file and a directory are open,
# so their RELEASE never comes: it must free them itself. Any memcheck
# error or definitely lost block in a daemon fails the test. Skipped in
# sanitizer builds (valgrind cannot run ASan/TSan binaries).
. "$(dirname "$0")/../lib/lib.sh"
[ "${CMKFS_SANITIZED:-0}" = 1 ] && t_skip "sanitizer build: valgrind cannot run it"
t_need valgrind setfattr getfattr python3 cmp
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
STRESS=${TOP_BUILDDIR:-$top_builddir}/tests/mount/stress
VGRC=97
t_mkvol

# Foreground, so that valgrind's exit status is the daemon's; one log per
# daemon. Sets VG to valgrind's pid.
vg_start() {
	valgrind --error-exitcode=$VGRC --leak-check=full --show-leak-kinds=definite \
		--errors-for-leak-kinds=definite --num-callers=30 \
		--log-file="$T/vg.%p.log" \
		"$CMKFS" mount -f --service-key "$KEY" --key-check-interval 1 \
		"$CIPHER" "$MNT" 2>"$T/daemon.err" &
	VG=$!
	for _ in $(seq 600); do
		up && break
		kill -0 $VG 2>/dev/null || t_fail "daemon under valgrind exited: $(tail -5 "$T/daemon.err")"
		sleep 0.1
	done
	up || t_fail "no mount within 60 s under valgrind"
	t_log "daemon pid $VG under valgrind"
}
up() { t_is_mounted "$MNT" && "$CMKFS" status --json "$MNT" >/dev/null 2>&1; }
# After the daemon was told to go: its exit status and its log.
vg_verdict() {
	local rc=0 log=$T/vg.$VG.log
	wait $VG || rc=$?
	[ -f "$log" ] || t_fail "no valgrind log $log: $(ls "$T")"
	if [ $rc != 0 ] || ! grep -q "ERROR SUMMARY: 0 errors" "$log" ||
		grep -q "definitely lost: [1-9]" "$log"; then
		printf '%s\n' "--- $log" >&2
		grep -v "^==[0-9]*== *$" "$log" | head -120 >&2
		t_fail "valgrind ($1): daemon exit $rc (error exit code $VGRC), see above"
	fi
	t_ok "valgrind ($1): no memcheck error, no definite leak in the daemon ($(grep -o 'in use at exit: [0-9,]* bytes' "$log"))"
}

vg_start

# --- files, names, attributes ---
head -c 300000 /dev/urandom >"$T/big.ref"
cp "$T/big.ref" "$MNT/big"
cmp "$T/big.ref" "$MNT/big" || t_fail "big read back"
printf 'hello\n' >"$MNT/small"
printf 'more\n' >>"$MNT/small"
[ "$(cat "$MNT/small")" = "$(printf 'hello\nmore')" ] || t_fail "append"
truncate -s 5000 "$MNT/big"
truncate -s 70000 "$MNT/big"
cmp -n 5000 "$T/big.ref" "$MNT/big" || t_fail "truncate kept the wrong bytes"
[ "$(stat -c %s "$MNT/big")" = 70000 ] || t_fail "size after truncate"
mkdir -p "$MNT/d1/sub" "$MNT/d2"
mv "$MNT/small" "$MNT/d1/small"
mv "$MNT/d1/small" "$MNT/d2/renamed"
LONG=$(printf 'L%.0s' $(seq 220))
echo long >"$MNT/d1/$LONG"
mv "$MNT/d1/$LONG" "$MNT/d2/$LONG.2"
[ "$(cat "$MNT/d2/$LONG.2")" = long ] || t_fail "long name"
setfattr -n user.color -v blue "$MNT/big"
setfattr -n user.size -v 12345 "$MNT/big"
[ "$(getfattr --only-values -n user.color "$MNT/big" 2>/dev/null)" = blue ] || t_fail "xattr"
getfattr -d "$MNT/big" >/dev/null 2>&1
setfattr -x user.size "$MNT/big"
ln -s d2/renamed "$MNT/link"
[ "$(readlink "$MNT/link")" = d2/renamed ] || t_fail "readlink"
[ "$(cat "$MNT/link")" = "$(printf 'hello\nmore')" ] || t_fail "symlink target"
ln "$MNT/big" "$MNT/d1/hard"
[ "$(stat -c %h "$MNT/big")" = 2 ] || t_fail "hard link count"
ls -laR "$MNT" >/dev/null
python3 - "$MNT/big" <<'PY' || t_fail "mmap write"
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR)
m = mmap.mmap(fd, 8192)
m[4090:4100] = b"0123456789"
m.flush(); m.close()
assert os.pread(fd, 10, 4090) == b"0123456789"
os.close(fd)
PY
rm "$MNT/d1/hard" "$MNT/link" "$MNT/d2/$LONG.2"
rmdir "$MNT/d1/sub"
t_ok "file, name, xattr, link and mmap ops under valgrind"

# --- lock and resume ---
exec 8<"$MNT/d2/renamed"
"$CMKFS" lock "$MNT" >/dev/null || t_fail "cmkfs lock"
if cat "$MNT/d2/renamed" 2>"$T/err" >/dev/null; then
	t_fail "read after cmkfs lock succeeded"
fi
grep -q "Key has been revoked" "$T/err" || t_fail "locked read: $(cat "$T/err")"
# Locks landing between an open's permission check (GETATTR) and its
# OPENDIR or OPEN: those are refused by the daemon and must leave no
# handle behind. A lock drops the kernel's attributes, so a later open
# is refused at the GETATTR; only this race reaches the refusal in
# OPENDIR/OPEN, so run it for a while (under valgrind the window is wide).
python3 - "$MNT/d2" "$MNT/d2/renamed" 6 <<'PY' &
import os, sys, time
end = time.time() + float(sys.argv[3])
while time.time() < end:
    for p in sys.argv[1:3]:
        try:
            os.close(os.open(p, os.O_RDONLY))
        except OSError:
            pass
PY
RACE=$!
while kill -0 $RACE 2>/dev/null; do
	"$CMKFS" lock "$MNT" >/dev/null || t_fail "cmkfs lock"
	sleep 0.2
done
wait $RACE
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "cmkfs unlock"
for _ in $(seq 600); do
	cat "$MNT/d2/renamed" >/dev/null 2>&1 && break
	sleep 0.1
done
cat "$MNT/d2/renamed" >/dev/null || t_fail "no resume within 60 s"
cat <&8 >/dev/null || t_fail "descriptor opened before the lock"
exec 8<&-
t_ok "lock and resume under valgrind"

# --- concurrency, briefly ---
if [ -x "$STRESS" ]; then
	"$STRESS" -t 15 -s 2 -T 3 -P 1 -l 1 -L "$CMKFS" -e "$T/expect" "$MNT" >"$T/stress.out" 2>&1 ||
		t_fail "stress under valgrind: $(tail -20 "$T/stress.out")"
	t_ok "stress: $(grep -o '[0-9]* passed' "$T/stress.out") under valgrind"
fi
rm -rf "$MNT/d1" "$MNT/d2" "$MNT/big"

# --- unmount: valgrind's verdict ---
t_umount
vg_verdict "unmount"

# --- a connection aborted with a file and a directory open ---
# umount -f aborts the FUSE connection (the kernel's umount_begin) and
# then fails, busy: the daemon reads ENODEV and exits; the RELEASE and
# RELEASEDIR of the two descriptors never reach it.
vg_start
mkdir "$MNT/dir"
echo data >"$MNT/dir/file"
exec 8<"$MNT/dir/file" 9<"$MNT/dir"
if umount -f "$MNT" 2>"$T/err"; then t_fail "umount -f succeeded with files open"; fi
vg_verdict "connection aborted"
exec 8<&- 9<&-
umount -l "$MNT" || t_fail "cannot detach the aborted mount"
