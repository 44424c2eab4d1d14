#!/usr/bin/env bash
# tests/mount/t_far.sh — growth far beyond what the backing disk can hold
# fails cleanly and up front. The cipher directory lives on a 64 MiB ext4
# loop file system: `truncate -s 1T` is a hole (format 3, no disk); a
# 4 KiB pwrite at 16 TiB - 4 KiB (past ext4's file size limit) and a
# fallocate far out (real bytes) each fail with ENOSPC or EFBIG; the file keeps
# its size and contents, the disk's free space is unchanged, the daemon
# wrote (almost) nothing meanwhile — the zeros never went to the disk —
# and an ordinary write afterwards works.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 mkfs.ext4 losetup findmnt
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
t_loopfs
CIPHER=$DISK/vol
mkdir "$CIPHER"
t_mkvol
t_mount
pid=$(t_pids_with_arg "$MNT" | tr " " "\n" | grep -m1 .)
[ -n "$pid" ] || t_fail "no daemon for $MNT"

python3 - "$MNT/f" "$DISK" "$pid" <<'PY' || t_fail "far growth"
import errno, os, sys
path, disk, pid = sys.argv[1], sys.argv[2], sys.argv[3]
data = os.urandom(100000)
with open(path, "wb") as f:
    f.write(data)
    f.flush()
    os.fsync(f.fileno())

def free():
    os.sync()
    st = os.statvfs(disk)
    return st.f_bfree * st.f_frsize

def wchar():	# bytes the daemon handed to write(2)/pwrite(2)
    for line in open("/proc/%s/io" % pid):
        if line.startswith("wchar:"):
            return int(line.split()[1])

TIB = 1 << 40
# Format 3: a hole costs no disk, so truncate -s 1T works on a 64 MiB
# disk and takes (almost) nothing from it.
f0 = free()
fd = os.open(path, os.O_RDWR)
os.ftruncate(fd, TIB)
if free() < f0 - (1 << 20):
    sys.exit("truncate -s 1T took %d bytes of the disk" % (f0 - free()))
if os.pread(fd, 4096, TIB // 2) != bytes(4096) or os.pread(fd, len(data), 0) != data:
    sys.exit("truncate -s 1T: contents")
os.ftruncate(fd, len(data))
os.close(fd)
print("ok truncate -s 1T: a hole, %d bytes of the disk" % (f0 - free()))
cases = [
    ("4 KiB pwrite at 16 TiB - 4 KiB",
     lambda fd: os.pwrite(fd, b"x" * 4096, 16 * TIB - 4096)),
    ("fallocate 4 KiB at 8 TiB", lambda fd: os.posix_fallocate(fd, 8 * TIB, 4096)),
]
for what, op in cases:
    f0, w0 = free(), wchar()
    fd = os.open(path, os.O_RDWR)
    try:
        op(fd)
        sys.exit("%s: succeeded on a 64 MiB disk" % what)
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EFBIG):
            sys.exit("%s: %s, want ENOSPC or EFBIG" % (what, e))
        err = errno.errorcode[e.errno]
    finally:
        os.close(fd)
    w = wchar() - w0
    if w > (1 << 20):
        sys.exit("%s: the daemon wrote %d bytes before failing" % (what, w))
    if os.stat(path).st_size != len(data) or open(path, "rb").read() != data:
        sys.exit("%s: size or contents changed" % what)
    if free() != f0:
        sys.exit("%s: free space %d, was %d" % (what, free(), f0))
    print("ok %s: %s, %d bytes written by the daemon, file and free space unchanged" % (what, err, w))
with open(path, "ab") as f:
    f.write(b"more")
if open(path, "rb").read() != data + b"more":
    sys.exit("append after the refused growth")
os.truncate(path, 8 << 20)
if os.stat(path).st_size != 8 << 20:
    sys.exit("an 8 MiB truncate after the refused growth")
print("ok an append and an 8 MiB truncate work afterwards")
PY
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck: $(tail -3 "$T/fsck")"
t_ok "fsck clean"
umount "$DISK"
