#!/usr/bin/env bash
# tests/mount/t_writeback.sh — `cmkfs mount --writeback` (fstab:
# writeback), the kernel's writeback cache (doc/DESIGN.md, "Writeback
# cache"):
#   - it is on: a write(2) stays in the kernel until close or fsync (the
#     backing file does not grow), where a default mount has it in the
#     backing file before write(2) returns; the fstab spelling reaches it;
#   - O_APPEND is placed by the kernel: two appenders interleave whole,
#     also after a write through another descriptor extended the file;
#   - sizes: an extending write is seen by stat at once, a truncate below
#     dirty pages drops them, both as the model says after a remount;
#   - a partial write through a write-only descriptor (the kernel READs
#     the rest of the page through it);
#   - mtime of the last write survives a remount;
#   - a write by a caller without CAP_FSETID clears setuid;
#   - durability: written + fsynced, or written + closed, survives kill -9
#     of the daemon; written and neither (the semantics change) may not.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need python3 setpriv
t_init
chmod 0711 "$T"	# nobody must reach $MNT (part 6)
export CMKFS_RUNTIME_DIR=$T/run CMKFS_AUDIT_LOG=$T/audit.log
t_mkvol

# held_write FILE: write 4 KiB to a new FILE; print how much the backing
# regular files grew while its descriptor was open, and once it closed.
held_write() {
	python3 - "$1" "$CIPHER" <<'PY'
import os, sys
def total():
    return sum(os.lstat(os.path.join(d, f)).st_size
               for d, _, fs in os.walk(sys.argv[2]) for f in fs)
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
t0 = total()
os.write(fd, b"w" * 4096)
t1 = total()
os.close(fd)
print(t1 - t0, total() - t0)
PY
}

# 1. The default mount writes through; --writeback (fstab spelling, the
#    helper form `cmkfs CIPHERDIR MOUNTPOINT -o ...`) holds the write.
t_mount
read -r open_grew closed_grew < <(held_write "$MNT/through")
[ "$open_grew" -gt 0 ] || t_fail "default mount: a write(2) did not reach the backing file before close"
# for 5.: a file whose pages the writeback mount does not have cached
python3 -c 'import sys; open(sys.argv[1], "wb").write(bytes(range(256)) * 40)' "$MNT/wo"
t_umount
"$CMKFS" "$CIPHER" "$MNT" -o "service_key=$KEY,writeback,allow_other" || t_fail "mount -o writeback"
t_is_mounted_sure "$MNT" || t_fail "not mounted"
read -r open_grew closed_grew < <(held_write "$MNT/held")
[ "$open_grew" = 0 ] || t_fail "--writeback: the backing files grew by $open_grew bytes before close: no writeback cache"
[ "$closed_grew" -gt 0 ] || t_fail "--writeback: close did not hand the write to the daemon"
t_ok "default: write reaches the backing file before write(2) returns; fstab 'writeback': only at close ($closed_grew bytes)"

# 2.-5. On the writeback mount: appends, sizes, write-only partial pages.
python3 - "$MNT" <<'PY' || t_fail "append/size/write-only checks"
import os, sys
m = sys.argv[1]
def rd(p):
    with open(p, "rb") as f:
        return f.read()
# appends: two O_APPEND descriptors interleave, and a pwrite through a
# third one that extends the file is appended after
p = m + "/app"
a = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
b = os.open(p, os.O_WRONLY | os.O_APPEND)
c = os.open(p, os.O_WRONLY)
want = b""
for i in range(200):
    d = (b"A%03d" % i) * (i % 7 + 1)
    os.write(a if i % 2 else b, d)
    want += d
    if i == 50:
        os.fsync(a)     # the daemon's file now has a size of its own
    if i == 100:
        os.pwrite(c, b"X" * 5000, len(want) + 3000)
        want += b"\0" * 3000 + b"X" * 5000
    assert os.fstat(c).st_size == len(want), (i, os.fstat(c).st_size, len(want))
for fd in (a, b, c):
    os.close(fd)
assert rd(p) == want, "appends"
# sizes: extend (stat sees it at once), truncate below dirty pages
p = m + "/size"
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o644)
os.pwrite(fd, b"s" * 10000, 0)
os.pwrite(fd, b"t" * 10000, 70000)
assert os.stat(p).st_size == 80000, os.stat(p).st_size
os.ftruncate(fd, 50000)
os.pwrite(fd, b"u" * 100, 60000)
assert os.stat(p).st_size == 60100
os.truncate(p, 65000)
os.close(fd)
assert rd(p) == b"s" * 10000 + b"\0" * 50000 + b"u" * 100 + b"\0" * 4900
# write-only descriptor, partial pages of a file not in the page cache
p = m + "/wo"
fd = os.open(p, os.O_WRONLY)
os.pwrite(fd, b"P" * 100, 5000)
os.pwrite(fd, b"Q" * 10, 10230)
os.close(fd)
w = bytearray(bytes(range(256)) * 40)
w[5000:5100] = b"P" * 100
w[10230:10240] = b"Q" * 10
assert rd(p) == bytes(w), "write-only partial page"
PY
t_ok "O_APPEND placed by the kernel (two appenders and an extending pwrite); sizes seen at once and after truncate; partial pages through write-only descriptors"

# 6. mtime of the last write; setuid cleared by an unprivileged write.
echo data >"$MNT/mt"
sleep 1.1
printf more >>"$MNT/mt"
m1=$(stat -c %Y.%y "$MNT/mt")
echo x >"$MNT/suid"
chmod 4777 "$MNT/suid"
setpriv --reuid=65534 --regid=65534 --clear-groups bash -c 'printf y >>"$1"' _ "$MNT/suid" ||
	t_fail "unprivileged write"
mode=$(stat -c %a "$MNT/suid")
t_umount
"$CMKFS" "$CIPHER" "$MNT" -o "service_key=$KEY,writeback,allow_other" || t_fail "remount"
[ "$(stat -c %Y.%y "$MNT/mt")" = "$m1" ] || t_fail "mtime $m1 before the remount, $(stat -c %Y.%y "$MNT/mt") after"
[ "$(cat "$MNT/mt")" = "$(printf 'data\nmore')" ] || t_fail "mt reads $(cat "$MNT/mt")"
[ "$mode" = 777 ] && [ "$(stat -c %a "$MNT/suid")" = 777 ] ||
	t_fail "setuid kept by an unprivileged write: $mode, $(stat -c %a "$MNT/suid") after remount"
[ "$(cat "$MNT/suid")" = "$(printf 'x\ny')" ] || t_fail "suid reads $(cat "$MNT/suid")"
t_ok "mtime of the last write kept across a remount ($m1); an unprivileged write clears setuid"

# 7. kill -9 of the daemon: fsynced and closed writes survive; a write
#    neither fsynced nor closed lives in the kernel only (may be lost).
dpid=$("$CMKFS" status --json "$MNT" | kv_json 'd["pid"]')
python3 - "$MNT" "$T/held.pid" <<'PY' &
import os, sys, time
m = sys.argv[1]
fd = os.open(m + "/synced", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"S" * 300000)
os.fsync(fd)
os.close(fd)
fd = os.open(m + "/closed", os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"C" * 300000)
os.close(fd)
fd = os.open(m + "/open", os.O_WRONLY | os.O_CREAT, 0o644)
os.fsync(fd)    # the name and an empty file are durable
os.write(fd, b"O" * 300000)
open(sys.argv[2], "w").write("ready\n")
time.sleep(30)  # holds the dirty pages until the kill
PY
wpid=$!
wait_for 20 test -s "$T/held.pid" || t_fail "writer did not get ready"
kill -9 "$dpid"
kill "$wpid" 2>/dev/null || true
wait "$wpid" 2>/dev/null || true
fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"
"$CMKFS" "$CIPHER" "$MNT" -o "service_key=$KEY,writeback,allow_other" || t_fail "mount after the kill"
cmp -s "$MNT/synced" <(head -c 300000 /dev/zero | tr '\0' S) || t_fail "fsynced data lost by kill -9"
cmp -s "$MNT/closed" <(head -c 300000 /dev/zero | tr '\0' C) || t_fail "closed (unsynced) data lost by kill -9"
osize=$(stat -c %s "$MNT/open")
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after the kill: $(cat "$T/fsck")"
t_ok "kill -9: fsynced and closed writes survive; the open, unsynced one kept $osize of 300000 bytes (allowed: it was in the kernel only); fsck clean"
