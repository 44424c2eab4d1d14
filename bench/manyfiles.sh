#!/usr/bin/env bash
# bench/manyfiles.sh CMKFS [NFILES] [NOFILE] — a volume of NFILES small files
# (default 10000): nine tenths in a tree of directories of 1,000, one tenth
# in one directory; times create, ls -lR, find, rsync -a, tar c | tar x,
# fsck (beside the mount) and a live rekey, with the daemon's peak memory
# (VmHWM, after each step) and peak descriptor count (sampled every 0.1 s).
# NOFILE: run the daemon under that hard open-file limit (prlimit); default:
# the caller's. Needs root, python3, rsync, tar. doc/PERFORMANCE.md, "A
# million files", has the figures and how they were taken.
set -eu
C=$(realpath "$1"); N=${2:-10000}; NOFILE=${3:-}
D=$(mktemp -d /tmp/manyfiles.XXXX); mkdir "$D/c" "$D/m" "$D/out"
trap '"$C" umount "$D/m" 2>/dev/null; touch "$D/stop"; rm -rf "$D"' EXIT
"$C" init --service-key "$D/k" "$D/c" >/dev/null 2>&1
if [ -n "$NOFILE" ]; then
	prlimit --nofile="$NOFILE:$NOFILE" -- "$C" mount --service-key "$D/k" "$D/c" "$D/m"
else
	"$C" mount --service-key "$D/k" "$D/c" "$D/m"
fi
pid=$(pgrep -f -- "--service-key $D/k $D/c $D/m" | head -1)
echo "# $N files; daemon pid $pid; open-file limit $(awk '/^Max open files/ {print $4}' /proc/$pid/limits)"
(max=0; while [ ! -e "$D/stop" ] && [ -d "/proc/$pid" ]; do
	n=$(ls "/proc/$pid/fd" 2>/dev/null | wc -l)
	[ "$n" -gt "$max" ] && { max=$n; echo "$max" >"$D/fdmax"; }
	sleep 0.1
done) &
step() {	# name command...
	local name=$1 t0 t1
	shift
	t0=$(date +%s.%N)
	"$@" >/dev/null 2>"$D/err" || { echo "$name failed: $(head -3 "$D/err")"; exit 1; }
	t1=$(date +%s.%N)
	printf '%-8s %8.1f s   VmHWM %7d kB   descriptors <= %s\n' "$name" \
		"$(echo "$t1 - $t0" | bc)" "$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")" \
		"$(cat "$D/fdmax" 2>/dev/null || echo ?)"
}
create() {
	python3 - "$D/m" "$N" <<'PY'
import os, sys
mnt, n = sys.argv[1], int(sys.argv[2])
big, tree = n // 10, n - n // 10
for i in range(tree):
    d = os.path.join(mnt, "tree", "d%03d" % (i // 100000), "e%03d" % (i // 1000 % 100))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%06d" % i), "w") as f:
        f.write("file %d\n" % i)
os.makedirs(os.path.join(mnt, "big"), exist_ok=True)
for i in range(big):
    with open(os.path.join(mnt, "big", "entry-%07d" % i), "w") as f:
        f.write("big %d\n" % i)
PY
}
tarcp() { (cd "$D/m" && tar cf - .) | (cd "$D/out" && tar xf -); }
clean() { rm -rf "$D/out"; mkdir "$D/out"; }
step create create
step ls-lR ls -lR "$D/m"
step find find "$D/m" -ls
step rsync rsync -a "$D/m/" "$D/out/"
clean
step tar tarcp
clean
step fsck "$C" fsck --service-key "$D/k" "$D/c"
step rekey "$C" rekey "$D/c"
