#!/usr/bin/env bash
# bench/fullkey.sh — what a full rekey costs (doc/PERFORMANCE.md "Full
# rekey"): `cmkfs rekey --full` offline, `rekey --full` and `cmk enable`
# on a live mount, beside a plain copy of the same cipher directory on
# the same file system (`cp -a` + `sync`, and a crash-safe copy+rename:
# copy, fdatasync, rename, file by file). Then the cost per small file and
# the pause a writer sees on a big file while it is re-sealed (the file
# is locked for its whole reseal). Prints MB/s, files/s and ratios; the
# lines also go to --out FILE. No timing is asserted anywhere.
#
#   bench/fullkey.sh [--small N] [--small-kb K] [--big N] [--big-mb M]
#                    [--pause-mb M] [--fsync-files N] [--dir DIR]
#                    [--out FILE] [--cmkfs PATH] [--no-cmk]
#
# Defaults: 8192 small files of 64 KiB and 2 of 256 MiB (1 GiB), a 256 MiB
# file for the pause, 2,000 files of 4 KiB for the per-file cost; DIR is
# /var/tmp (the work directory is made there and removed at the end),
# FILE ./fullkey-results.txt (the printed lines).
# Needs root (FUSE, drop_caches), python3; `cmk enable` also needs
# python3-cryptography (the bundled Key Vault test server), else --no-cmk
# is implied.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
SMALL=8192 SMALL_KB=64 BIG=2 BIG_MB=256 PAUSE_MB=256 FSYNC_FILES=2000
DIR=/var/tmp CMKFS=${CMKFS:-} CMK=1 OUT=$PWD/fullkey-results.txt
while [ $# -gt 0 ]; do
	case $1 in
	--small) SMALL=$2; shift 2 ;;
	--small-kb) SMALL_KB=$2; shift 2 ;;
	--big) BIG=$2; shift 2 ;;
	--big-mb) BIG_MB=$2; shift 2 ;;
	--pause-mb) PAUSE_MB=$2; shift 2 ;;
	--fsync-files) FSYNC_FILES=$2; shift 2 ;;
	--dir) DIR=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--cmkfs) CMKFS=$2; shift 2 ;;
	--no-cmk) CMK=0; shift ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "fullkey: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ -n "$CMKFS" ] || CMKFS=$top/src/cmkfs
[ -x "$CMKFS" ] || { echo "fullkey: no cmkfs binary at $CMKFS (--cmkfs)" >&2; exit 2; }
CMKFS=$(cd "$(dirname "$CMKFS")" && pwd)/$(basename "$CMKFS")
[ "$(id -u)" = 0 ] || { echo "fullkey: must run as root" >&2; exit 2; }

T=$(mktemp -d "$DIR/cmkfs-fullkey.XXXXXX")
: >"$OUT"
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
MOUNTS=()
EXIT_HOOKS=()
cleanup() {
	local m h
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$m" 2>/dev/null && { "$CMKFS" umount "$m" 2>/dev/null || fusermount3 -uz "$m"; }
	done
	for h in "${EXIT_HOOKS[@]}"; do eval "$h" || true; done
	rm -rf "$T"
}
trap cleanup EXIT
# what tests/lib/kv.sh expects from tests/lib/lib.sh
t_fail() { echo "fullkey: $*" >&2; exit 1; }
t_skip() { t_fail "$@"; }
t_on_exit() { EXIT_HOOKS+=("$1"); }

say() { printf '%s\n' "$*" | tee -a "$OUT"; }
now() { date +%s.%N; }
dropcaches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
mb() { python3 -c "print(f'{$1 / $2 / 1e6:.1f}')"; }     # bytes seconds
per() { python3 -c "print(f'{$1 / $2:.0f}')"; }           # count seconds
jget() { grep -o "\"$1\":[0-9]*" "$2" | tail -1 | cut -d: -f2; }

mkvol() { # name
	mkdir -p "$T/$1.c" "$T/$1.m"
	"$CMKFS" init --service-key "$T/key" "$T/$1.c" >/dev/null
}
mnt() { "$CMKFS" mount --service-key "$T/key" "$T/$1.c" "$T/$1.m"; MOUNTS+=("$T/$1.m"); }
umnt() { "$CMKFS" umount "$T/$1.m"; }
# populate DIR NSMALL SMALL_BYTES NBIG BIG_BYTES: incompressible data,
# 256 files to a directory
populate() {
	python3 - "$@" <<'PY'
import os, sys
d, ns, ss, nb, bs = sys.argv[1], *map(int, sys.argv[2:])
for i in range(ns):
    sub = os.path.join(d, "s%03d" % (i // 256))
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, "f%05d" % i), "wb") as f:
        f.write(os.urandom(ss))
os.makedirs(os.path.join(d, "big"), exist_ok=True)
for i in range(nb):
    with open(os.path.join(d, "big", "b%d" % i), "wb") as f:
        for _ in range(bs // (1 << 20)):
            f.write(os.urandom(1 << 20))
        f.write(os.urandom(bs % (1 << 20)))
PY
}
# a timed full rekey; label, then the command (its JSON result goes to
# $T/LABEL.json); prints "seconds files bytes"
timed_rekey() {
	local label=$1 t0 t1
	shift
	dropcaches
	t0=$(now)
	"$@" >"$T/$label.json" 2>"$T/$label.err" || { cat "$T/$label.err" >&2; tail -2 "$T/$label.json" >&2; exit 1; }
	t1=$(now)
	echo "$(python3 -c "print(f'{$t1 - $t0:.2f}')") $(jget files "$T/$label.json") $(jget bytes "$T/$label.json")"
}

say "# cmkfs full rekey, $(date -u +%F), $(nproc) CPUs, $(free -g | awk '/Mem:/{print $2}') GiB RAM," \
	"$(uname -r), $(findmnt -no FSTYPE -T "$T") on $(findmnt -no SOURCE -T "$T")"
say "# cmkfs $("$CMKFS" --version 2>/dev/null | head -1) ($CMKFS)"
say "# tree: $SMALL files of $SMALL_KB KiB + $BIG of $BIG_MB MiB"

export TOP_SRCDIR=$top
if [ "$CMK" = 1 ] && ! sh "$top/tests/lib/py.sh" -c 'import cryptography' 2>/dev/null; then
	say "# no python3-cryptography: no Key Vault test server, no cmk enable"
	CMK=0
fi
if [ "$CMK" = 1 ]; then
	# shellcheck source=/dev/null
	. "$top/tests/lib/kv.sh"
	kv_start	# before any mount: the daemon takes its Azure environment
	KID=$(kv_key cmk --size 3072)
fi

# 1. the tree, written through a mount
mkvol v
mnt v
populate "$T/v.m" "$SMALL" $((SMALL_KB * 1024)) "$BIG" $((BIG_MB * 1024 * 1024))
umnt v
FILES=$(find "$T/v.c" -type f -not -path '*/cmkfs.*' -not -name 'cmkfs.*' | wc -l)
BYTES=$(find "$T/v.c" -type f -not -path '*/cmkfs.*' -not -name 'cmkfs.*' -printf '%s\n' | awk '{s+=$1} END{print s}')
say "# cipher directory: $FILES files, $BYTES bytes (headers and tags included)"

# 2. plain copies of the cipher directory, same file system
dropcaches
t0=$(now); cp -a "$T/v.c" "$T/copy"; sync; t1=$(now)
CP=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
say "cp -a + sync: $CP s, $(mb "$BYTES" "$CP") MB/s, $(per "$FILES" "$CP") files/s"
# copy+rename in place, crash-safe: every file copied to a temporary
# name, fdatasync, renamed over the original (a new inode: hard links and
# inode numbers break), every directory fsynced once at the end
dropcaches
t0=$(now)
python3 - "$T/copy" <<'PY'
import os, sys
for root, dirs, files in os.walk(sys.argv[1]):
    for n in files:
        p = os.path.join(root, n)
        if os.path.islink(p): continue
        tmp = os.path.join(root, ".tmp." + n)
        with open(p, "rb") as src, open(tmp, "wb") as dst:
            while True:
                b = src.read(1 << 20)
                if not b: break
                dst.write(b)
            dst.flush()
            os.fdatasync(dst.fileno())
        os.rename(tmp, p)
    fd = os.open(root, os.O_RDONLY)
    os.fsync(fd); os.close(fd)
PY
t1=$(now)
CR=$(python3 -c "print(f'{$t1 - $t0:.2f}')")
say "copy+rename per file (fdatasync each): $CR s, $(mb "$BYTES" "$CR") MB/s, $(per "$FILES" "$CR") files/s"
rm -rf "$T/copy"

# 3. the full rekey, offline and live
read -r s f b < <(timed_rekey offline "$CMKFS" rekey --full --json --service-key "$T/key" "$T/v.c")
say "offline rekey --full: $s s, $f files, $(mb "$b" "$s") MB/s, $(per "$f" "$s") files/s," \
	"$(python3 -c "print(f'{$s / $CP:.2f}')")x the time of cp -a, $(python3 -c "print(f'{$s / $CR:.2f}')")x copy+rename"
mnt v
read -r s f b < <(timed_rekey live "$CMKFS" rekey --full --json "$T/v.c")
say "live rekey --full: $s s, $f files, $(mb "$b" "$s") MB/s, $(per "$f" "$s") files/s," \
	"$(python3 -c "print(f'{$s / $CP:.2f}')")x the time of cp -a"
if [ "$CMK" = 1 ]; then
	read -r s f b < <(timed_rekey enable "$CMKFS" cmk enable --json --key "$KID" "$T/v.c")
	say "live cmk enable: $s s, $f files, $(mb "$b" "$s") MB/s, $(per "$f" "$s") files/s," \
		"$(python3 -c "print(f'{$s / $CP:.2f}')")x the time of cp -a"
fi
umnt v
rm -rf "$T/v.c"

# 4. cost per small file: a tree of small files only, and the disk's own
# fdatasync (the reseal does two per file: record chunk, then blocks)
mkvol s
mnt s
populate "$T/s.m" "$FSYNC_FILES" 4096 0 0
umnt s
read -r s f b < <(timed_rekey small "$CMKFS" rekey --full --json --service-key "$T/key" "$T/s.c")
say "small files ($f of 4 KiB), offline rekey --full: $s s, $(python3 -c "print(f'{$s * 1000 / $f:.2f}')") ms per file"
FS=$(python3 - "$T" <<'PY'
import os, sys, time
p = os.path.join(sys.argv[1], "fsync.probe")
fd = os.open(p, os.O_RDWR | os.O_CREAT, 0o600)
n = 500
t = time.perf_counter()
for i in range(n):
    os.pwrite(fd, os.urandom(4096), 0)
    os.fdatasync(fd)
print(f"{(time.perf_counter() - t) * 1000 / n:.2f}")
os.close(fd); os.unlink(p)
PY
)
say "this disk: 4 KiB pwrite + fdatasync: $FS ms"
rm -rf "$T/s.c"

# 5. the pause a writer sees: one big file on a live mount, a writer
# doing 4 KiB pwrites at random offsets throughout; its longest write is
# the file's reseal (the file is locked for all of it)
mkvol p
mnt p
populate "$T/p.m" 0 0 1 $((PAUSE_MB * 1024 * 1024))
python3 - "$T/p.m/big/b0" "$T/stop" "$T/lat" <<'PY' &
import os, random, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY)
size = os.fstat(fd).st_size
lat = []
while not os.path.exists(sys.argv[2]):
    off = random.randrange(size // 4096) * 4096
    t = time.perf_counter()
    os.pwrite(fd, os.urandom(4096), off)
    lat.append(time.perf_counter() - t)
os.close(fd)
lat.sort()
with open(sys.argv[3], "w") as f:
    f.write(f"{len(lat)} {lat[len(lat) // 2] * 1000:.2f} {lat[-1]:.2f}\n")
PY
wpid=$!
sleep 1
read -r s f b < <(timed_rekey pause "$CMKFS" rekey --full --json "$T/p.c")
sleep 1
touch "$T/stop"
wait "$wpid"
read -r n med mx <"$T/lat"
say "pause: $PAUSE_MB MiB file re-sealed live in $s s ($(mb "$b" "$s") MB/s); a writer's 4 KiB writes:" \
	"$n, median $med ms, longest $mx s"
umnt p
say "# written to $OUT"
