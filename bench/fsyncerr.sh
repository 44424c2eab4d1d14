#!/usr/bin/env bash
# bench/fsyncerr.sh — does an fsync that returned 0 survive an ext4 error
# (errors=remount-ro) that comes right after it? The scenario of part 5 of
# tests/mount/t_disk.sh, repeated, on plain ext4 and through cmkfs:
#
#   bench/fsyncerr.sh MODE RUNS [OUTDIR]
#
# MODE is one of
#   excl    plain ext4: open(O_EXCL), write, write, fsync (t_disk's writer)
#   rename  plain ext4, cmkfs's create: tmp file (O_EXCL) + 64-byte header +
#           sync_file_range(WRITE) + renameat2(RENAME_NOREPLACE), then
#           write, write, fsync
#   cmkfs   t_disk's writer through a cmkfs mount on the loop file system
#           (CMKFS=path/to/cmkfs)
#
# Each run: a fresh 64 MiB ext4 on a loop device mounted
# loop,errors=remount-ro (t_disk's t_loopfs), a writer that records a file
# only after its fsync returned 0, `echo 1 > trigger_fs_error` once 30 are
# recorded (polled every 0.1 s, as t_disk does), umount, e2fsck -fy, mount,
# and every recorded file must read back. A loss keeps, in OUTDIR/runN,
# the manifest (with the time each fsync returned and the file's inode),
# the trigger time, e2fsck's output and `debugfs ls -l` of the directory
# before and after e2fsck, and `debugfs stat` of each lost inode.
# Prints one line per run and a summary. Needs root.
set -eu
MODE=${1:?mode: excl, rename or cmkfs}
RUNS=${2:?runs}
OUT=${3:-$(mktemp -d /tmp/fsyncerr.XXXXXX)}
case $MODE in excl | rename) ;; cmkfs) : "${CMKFS:?set CMKFS}" ;; *) exit 2 ;; esac
mkdir -p "$OUT"
W=$(mktemp -d /tmp/fsyncerr-w.XXXXXX)
IMG=$W/img DISK=$W/disk MNT=$W/mnt KEY=$W/key
mkdir "$DISK" "$MNT"
cleanup() {
	[ -n "${WPID:-}" ] && kill "$WPID" 2>/dev/null
	if [ "$MODE" = cmkfs ] && mountpoint -q "$MNT"; then "$CMKFS" umount "$MNT" || fusermount3 -u -z "$MNT"; fi
	mountpoint -q "$DISK" && umount "$DISK"
	for l in $(losetup -j "$IMG" -O NAME -n 2>/dev/null); do losetup -d "$l"; done
	rm -rf "$W"
}
IMG=$W/run/img
trap cleanup EXIT

cat >"$W/w.py" <<'PY'
import ctypes, errno, hashlib, os, sys, time

mode, root, manifest = sys.argv[1:4]
libc = ctypes.CDLL(None, use_errno=True)
RENAME_NOREPLACE = 1


def rename_noreplace(a, b):
    if libc.renameat2(-100, a.encode(), -100, b.encode(), RENAME_NOREPLACE) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


man = open(manifest, "a")
os.makedirs(root, exist_ok=True)
for i in range(1000000):
    p = os.path.join(root, "w%d" % i)
    data = os.urandom(4096 * (i % 37) + i % 4099)
    try:
        if mode == "rename":
            tmp = os.path.join(root, "tmp.%d" % i)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"H" * 64)
            if libc.sync_file_range(fd, ctypes.c_int64(0), ctypes.c_int64(0), 2) < 0:
                e = ctypes.get_errno()
                raise OSError(e, os.strerror(e))
            rename_noreplace(tmp, p)
        else:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, data[:len(data) // 2])
            os.write(fd, data[len(data) // 2:])
            t_fsync = time.clock_gettime(time.CLOCK_MONOTONIC)
            os.fsync(fd)
            ino = os.fstat(fd).st_ino
        finally:
            os.close(fd)
    except OSError as e:
        print(errno.errorcode.get(e.errno, str(e.errno)), flush=True)
        sys.exit(0)
    if mode == "rename":
        data = b"H" * 64 + data
    man.write("%s  %s %d %.6f %.6f\n" % (hashlib.sha256(data).hexdigest(), p, ino,
                                         t_fsync, time.clock_gettime(time.CLOCK_MONOTONIC)))
    man.flush()
    os.fsync(man.fileno())
PY

cat >"$W/verify.py" <<'PY'
import hashlib, sys
base_from, base_to = sys.argv[2], sys.argv[3]
lost = []
n = 0
for line in open(sys.argv[1]):
    s, p, ino, t0, t = line.split()
    n += 1
    p = base_to + p[len(base_from):]
    try:
        got = hashlib.sha256(open(p, "rb").read()).hexdigest()
    except OSError as e:
        lost.append("%s ino %s fsync %s..%s: %s" % (p, ino, t0, t, e.strerror))
        continue
    if got != s:
        lost.append("%s ino %s fsync %s..%s: content differs" % (p, ino, t0, t))
print("%d recorded, %d lost" % (n, len(lost)))
for l in lost:
    print("LOST " + l)
sys.exit(1 if lost else 0)
PY

mono() { python3 -c 'import time; print("%.6f" % time.clock_gettime(time.CLOCK_MONOTONIC))'; }
vmount() {
	[ "$MODE" = cmkfs ] || return 0
	"$CMKFS" mount --service-key "$KEY" "$DISK/vol" "$MNT"
}
vumount() {
	[ "$MODE" = cmkfs ] || return 0
	"$CMKFS" umount "$MNT"
}

losses=0 runs_lost=0
for run in $(seq "$RUNS"); do
	R=$W/run
	for l in $(losetup -j "$IMG" -O NAME -n 2>/dev/null); do losetup -d "$l"; done
	rm -rf "$R"
	mkdir "$R"
	# a new image file each run: a loop device of the last run that is
	# not detached yet would serve its cached blocks of the old one
	IMG=$R/img
	truncate -s 64M "$IMG"
	mkfs.ext4 -q -m 0 "$IMG"
	mount -o loop,errors=remount-ro "$IMG" "$DISK"
	LOOP=$(basename "$(findmnt -n -o SOURCE "$DISK")")
	if [ "$MODE" = cmkfs ]; then
		mkdir "$DISK/vol"
		rm -f "$KEY"
		"$CMKFS" init --service-key "$KEY" "$DISK/vol" >/dev/null 2>&1
		vmount
		ROOT=$MNT/r
	else
		ROOT=$DISK/r
	fi
	: >"$R/manifest"
	python3 "$W/w.py" "$MODE" "$ROOT" "$R/manifest" >"$R/writer.out" 2>&1 &
	WPID=$!
	n=0
	for _ in $(seq 600); do
		n=$(wc -l <"$R/manifest")
		[ "$n" -ge 30 ] && break
		kill -0 $WPID 2>/dev/null || break
		sleep 0.1
	done
	# the error, between two clock readings, with a kernel log marker
	# that ties dmesg's clock to CLOCK_MONOTONIC
	read -r t0 t1 < <(python3 - "/sys/fs/ext4/$LOOP/trigger_fs_error" <<'PY'
import sys, time
m = lambda: time.clock_gettime(time.CLOCK_MONOTONIC)
try:
    with open("/dev/kmsg", "w") as k:
        k.write("fsyncerr: monotonic %.6f\n" % m())
except OSError:
    pass
a = m()
with open(sys.argv[1], "w") as f:
    f.write("1")
print("%.6f %.6f" % (a, m()))
PY
)
	wait $WPID || true
	WPID=
	echo "trigger $t0 .. $t1" >"$R/trigger"
	vumount
	umount "$DISK"
	cp --sparse=always "$IMG" "$R/img.pre"
	rc=0
	e2fsck -fy "$IMG" >"$R/e2fsck.out" 2>&1 || rc=$?
	mount -o loop,errors=remount-ro "$IMG" "$DISK"
	vmount
	st=ok
	if ! python3 "$W/verify.py" "$R/manifest" "$ROOT" "$ROOT" >"$R/verify.out" 2>&1; then
		st=LOST
		runs_lost=$((runs_lost + 1))
		losses=$((losses + $(grep -c '^LOST' "$R/verify.out")))
	fi
	vumount
	umount "$DISK"
	if [ $st = LOST ]; then
		d=$OUT/run$run
		mkdir -p "$d"
		cp "$R/manifest" "$R/trigger" "$R/e2fsck.out" "$R/verify.out" "$R/writer.out" "$d/"
		dir=/r
		[ "$MODE" = cmkfs ] && dir=/vol
		debugfs -c -R "ls -l $dir" "$R/img.pre" >"$d/ls.pre" 2>&1 || true
		debugfs -R "ls -l $dir" "$IMG" >"$d/ls.post" 2>&1 || true
		debugfs -R "ls -l /lost+found" "$IMG" >"$d/lost+found.post" 2>&1 || true
		for ino in $(awk '/^LOST/ {print $4}' "$R/verify.out"); do
			[ "$MODE" = cmkfs ] && break	# (FUSE inode numbers)
			debugfs -c -R "stat <$ino>" "$R/img.pre" >"$d/stat.$ino.pre" 2>&1 || true
		done
		dmesg 2>/dev/null | tail -n 30 >"$d/dmesg" || true
	fi
	printf 'run %d: %s, %s, writer %s, e2fsck rc %d, trigger at %s\n' "$run" "$st" \
		"$(head -1 "$R/verify.out")" "$(cat "$R/writer.out")" "$rc" "$t0"
done
echo "$MODE: $runs_lost of $RUNS runs lost fsynced files ($losses files); details in $OUT"
