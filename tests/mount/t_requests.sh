#!/usr/bin/env bash
# tests/mount/t_requests.sh — the kernel's caches spare FUSE requests, and
# correctly (issue #5). Counted from the daemon's FUSE trace (-d), not
# timed, so the machine's load cannot make it pass or fail:
#   - READDIRPLUS: `ls -lR` of a cold tree answers every entry's stat with
#     the listing, without a LOOKUP per entry; the listing is exact (sizes,
#     modes, types, symlink targets, long names) and every lookup it
#     counted is given back when the kernel evicts its inodes;
#   - entry and attribute timeouts: a stat of files made seconds ago sends
#     nothing to the daemon;
#   - and yet a lock reaches a stat of a cached file at once
#     (EKEYREVOKED), and the mount resumes afterwards;
#   - open files and directories are counted (`status --json` handles)
#     and every one is given back by its RELEASE;
#   - FUSE_HANDLE_KILLPRIV_V2: a file is asked for security.capability
#     once, not before every write;
#   - --no-xattr: no GETXATTR at all (the kernel asks for
#     security.capability before a file's first write otherwise), attributes
#     refused, and those stored before still there for a later mount.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
t_need python3 find ls setfattr getfattr
t_mkvol

LOG=$T/daemon.log
"$CMKFS" mount -d --service-key "$KEY" --key-check-interval 5 "$CIPHER" "$MNT" 2>"$LOG" &
dpid=$!
kill_ours() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$2" && kill "$1"; }
t_on_exit "kill_ours $dpid '$MNT'"
wait_for 60 t_is_mounted "$MNT" || t_fail "mount -d: $(tail -5 "$LOG")"

mark() { wc -l <"$LOG"; }
# ops SINCE OPCODE: how many OPCODE requests the trace shows after line SINCE
ops() { tail -n +$(($1 + 1)) "$LOG" | grep -c "opcode: $2 " || true; }
inodes() { "$CMKFS" status --json "$MNT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["inodes"])'; }
evict() { sync; echo "$1" >/proc/sys/vm/drop_caches; }
inodes_le() { evict 2; [ "$(inodes)" -le "$1" ]; }

# --- a tree: 3 directories, 150 files of assorted sizes, symlinks, a long
# name (side file), a hard link; the same tree on the plain disk ---
mk() {
	local r=$1 i
	mkdir -p "$r/a/b" "$r/c"
	for i in $(seq 1 50); do
		head -c $((i * 97)) /dev/zero >"$r/a/f$i"
		head -c $((i * 13)) /dev/zero >"$r/a/b/g$i"
		: >"$r/c/e$i"
	done
	chmod 600 "$r/a/f7"
	ln -s "../c/e1" "$r/a/link"
	ln -s "$(printf 't%.0s' $(seq 300))" "$r/c/long-target"
	echo long >"$r/c/$(printf 'n%.0s' $(seq 200))"
	ln "$r/a/f3" "$r/c/hard"
}
mk "$MNT/t"
mkdir "$T/plain"
mk "$T/plain/t"
listing() { (cd "$1" && find t -printf '%p %y %s %m %n %l\n' | sort); }
[ "$(listing "$MNT")" = "$(listing "$T/plain")" ] || {
	diff <(listing "$MNT") <(listing "$T/plain") | head >&2
	t_fail "the tree through the mount differs from the same tree on disk"
}
entries=$(find "$T/plain/t" -mindepth 1 | wc -l)

# --- cold `ls -lR`: attributes come with the listing ---
wait_for 20 inodes_le 0 || t_fail "the kernel evicted its inodes but the daemon still holds $(inodes)"
m=$(mark)
ls -lR "$MNT/t" >"$T/ls.mnt"
lookups=$(ops "$m" LOOKUP) plus=$(ops "$m" READDIRPLUS)
[ "$plus" -ge 3 ] || t_fail "ls -lR sent $plus READDIRPLUS requests (READDIRPLUS not used?)"
# the listing's own directories may be looked up; the 150-odd entries not
[ "$lookups" -le 4 ] || t_fail "ls -lR of $entries entries sent $lookups LOOKUPs (want the attributes from READDIRPLUS)"
ls -lR "$T/plain/t" >"$T/ls.plain"
# (block totals differ: every file carries a header; times are the
# file's own)
cut_ls() { grep -v '^total ' "$1" | sed 's|^/.*/t\(.*\):$|t\1:|' | awk '{ $6 = $7 = $8 = ""; print }'; }
diff <(cut_ls "$T/ls.mnt") <(cut_ls "$T/ls.plain") >&2 || t_fail "ls -lR through the mount differs from the plain tree"
held=$(inodes)
[ "$held" -ge "$entries" ] || t_fail "after ls -lR the daemon holds $held inodes for $entries entries"
wait_for 20 inodes_le 0 || t_fail "lookups counted by READDIRPLUS not all forgotten: $(inodes) inodes held after eviction"
[ "$(listing "$MNT")" = "$(listing "$T/plain")" ] || t_fail "the tree differs after eviction"
find "$MNT/t" -type f -exec cat {} + >/dev/null || t_fail "files unreadable after eviction"
t_ok "ls -lR of $entries cold entries: $plus READDIRPLUS, $lookups LOOKUP; exact listing; all $held lookups returned on eviction"

# --- stat of files made seconds ago: no request at all ---
mkdir "$MNT/s"
for i in $(seq 1 100); do : >"$MNT/s/x$i"; done
sleep 2	# longer than libfuse's default 1 s timeouts
m=$(mark)
for i in $(seq 1 100); do stat -c %s "$MNT/s/x$i"; done >"$T/sizes"
n=$(($(ops "$m" LOOKUP) + $(ops "$m" GETATTR)))
# one GETATTR of the directory for the permission check of the path walk
# (its attributes are dropped by the kernel on every create in it)
[ "$n" -le 1 ] || t_fail "stat of 100 files made 2 s ago sent $n LOOKUP/GETATTR requests"
[ "$(sort -u "$T/sizes")" = 0 ] || t_fail "sizes: $(sort -u "$T/sizes" | tr '\n' ' ')"
echo abc >"$MNT/s/x1"
[ "$(stat -c %s "$MNT/s/x1")" = 4 ] || t_fail "size after a write: $(stat -c %s "$MNT/s/x1")"
t_ok "stat of 100 files made 2 s earlier: $n request(s) for their directory, none for the files; sizes follow writes"

# --- a lock still reaches cached attributes and entries ---
# From inside the directory, with its attributes fresh: no path walk from
# the root, so only the lock's invalidation of x2 itself can refuse it.
stat "$MNT/s" >/dev/null
err=$(cd "$MNT/s" && { "$CMKFS" lock "$MNT" >/dev/null || echo "cmkfs lock failed"; stat x2 2>&1; }) &&
	t_fail "stat of a cached file succeeded while locked"
grep -q "Key has been revoked" <<<"$err" || t_fail "stat while locked: $err"
err=$(cat "$MNT/s/x1" 2>&1) && t_fail "read of a cached file succeeded while locked"
grep -q "Key has been revoked" <<<"$err" || t_fail "read while locked: $err"
resumed() { [ "$(cat "$MNT/s/x1")" = abc ]; }
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "cmkfs unlock"
wait_for 30 resumed || t_fail "the mount did not resume after cmkfs unlock"
stat "$MNT/s/x2" >/dev/null || t_fail "stat after resume"
t_ok "after cmkfs lock a stat and a read of cached files fail with 'Key has been revoked'; resumed"

# --- open handles: counted while open, all given back by RELEASE ---
handles() { "$CMKFS" status --json "$MNT" | python3 -c 'import json,sys; print(json.load(sys.stdin)["daemon"]["handles"])'; }
handles_are() { [ "$(handles)" = "$1" ]; }
wait_for 10 handles_are 0 || t_fail "$(handles) handles open before the test opened any"
exec 7<"$MNT/s/x1" 8>>"$MNT/s/x2" 9<"$MNT/s"
exec 6<"$MNT/t"
h=$(handles)
exec 6<&- 7<&- 8>&- 9<&-
[ "$h" = 4 ] || t_fail "2 files and 2 directories open: the daemon counts $h handles"
wait_for 10 handles_are 0 || t_fail "all closed: the daemon still counts $(handles) handles"
t_ok "open handles: 4 counted while open, 0 after close"

# --- with xattrs (default): what writes and ls -l cost; an attribute to
# find again below ---
setfattr -n user.k -v kept "$MNT/s/x3" || t_fail "setfattr"
m=$(mark)
for i in $(seq 1 20); do echo "$i" >>"$MNT/s/x4"; done
ls -l "$MNT/s" >/dev/null
gx=$(ops "$m" GETXATTR)
# FUSE_HANDLE_KILLPRIV_V2 (src/fuse/wire.c): the kernel asks a file for
# security.capability once, not before every write (libfuse 3.14 cannot
# negotiate it; without the shim this is 20)
m=$(mark)
python3 - "$MNT/s/x5" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
for i in range(20):
    os.write(fd, b"%d\n" % i)
os.close(fd)
PY
w=$(ops "$m" WRITE)
kx=$(ops "$m" GETXATTR)
[ "$w" -eq 20 ] || t_fail "20 writes to one descriptor sent $w WRITE"
[ "$kx" -le 1 ] || t_fail "20 writes to one file sent $kx GETXATTR (want at most 1: FUSE_HANDLE_KILLPRIV_V2)"
[ "$(wc -l <"$MNT/s/x5")" = 20 ] || t_fail "x5 has $(wc -l <"$MNT/s/x5") lines, want 20"
"$CMKFS" umount "$MNT" || t_fail "umount"
wait "$dpid" || t_fail "the -d daemon exited $?"

# --- --no-xattr: the kernel stops asking after one ENOSYS ---
"$CMKFS" mount -d --no-xattr --service-key "$KEY" "$CIPHER" "$MNT" 2>"$LOG" &
dpid=$!
t_on_exit "kill_ours $dpid '$MNT'"
wait_for 60 t_is_mounted "$MNT" || t_fail "mount -d --no-xattr: $(tail -5 "$LOG")"
err=$(setfattr -n user.k -v x "$MNT/s/x3" 2>&1) && t_fail "setfattr worked with --no-xattr"
grep -q "not supported" <<<"$err" || t_fail "setfattr with --no-xattr: $err"
err=$(getfattr -n user.k "$MNT/s/x3" 2>&1) && t_fail "getfattr worked with --no-xattr"
grep -q "not supported" <<<"$err" || t_fail "getfattr with --no-xattr: $err"
m=$(mark)
for i in $(seq 1 20); do echo "$i" >>"$MNT/s/x4"; done
ls -l "$MNT/s" >/dev/null
n=$(ops "$m" GETXATTR)
[ "$n" -eq 0 ] || t_fail "with --no-xattr, 20 writes and ls -l sent $n GETXATTR"
[ "$(wc -l <"$MNT/s/x4")" = 40 ] || t_fail "x4 has $(wc -l <"$MNT/s/x4") lines, want 40"
"$CMKFS" umount "$MNT" || t_fail "umount"
wait "$dpid" || t_fail "the -d daemon exited $?"
t_mount
[ "$(getfattr --only-values -n user.k "$MNT/s/x3")" = kept ] || t_fail "the xattr set before --no-xattr is gone"
t_umount
t_ok "20 writes to one file: $kx GETXATTR (FUSE_HANDLE_KILLPRIV_V2); --no-xattr: xattr calls fail with 'not supported', 20 writes and ls -l send 0 GETXATTR (with xattrs: $gx); attributes kept for later mounts"
exit 0
