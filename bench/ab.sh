#!/usr/bin/env bash
# bench/ab.sh — two cmkfs builds against each other with bench/run.sh, each
# repetition on a freshly made ext4 file system (a loop image), so that
# neither inherits the other's allocator state: on a long-used ext4,
# creating files after many deletions spends most of its kernel time in
# the inode allocator's recently-deleted scan, which made untar times of
# the same build spread by ±20 % between runs (doc/PERFORMANCE.md,
# "Format 3"). Builds alternate their order every repetition.
#
#   bench/ab.sh [--reps N] [--workloads "tree meta"] [--img PATH]
#               [--out DIR] A_CMKFS B_CMKFS
#
# Prints, per workload, each build's median with min-max, the daemon's CPU
# seconds and B's change against A. Needs root, mkfs.ext4, a free loop
# device and what bench/run.sh needs. The image (8 GiB sparse, default
# /var/tmp/cmkfs-ab.img) is removed at the end.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
REPS=6
WORKLOADS="tree meta"
IMG=/var/tmp/cmkfs-ab.img
OUT=
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2; shift 2 ;;
	--workloads) WORKLOADS=$2; shift 2 ;;
	--img) IMG=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	-*) echo "ab: unknown option $1" >&2; exit 2 ;;
	*) break ;;
	esac
done
[ $# = 2 ] || { echo "usage: bench/ab.sh [options] A_CMKFS B_CMKFS" >&2; exit 2; }
A=$1 B=$2
for c in "$A" "$B"; do
	[ -x "$c" ] || { echo "ab: $c is not executable" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "ab: run as root (mkfs, mount)" >&2; exit 2; }
command -v mkfs.ext4 >/dev/null || { echo "ab: mkfs.ext4 is missing" >&2; exit 2; }
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/var/tmp}/cmkfs-ab.XXXXXX")}
MNT=$(mktemp -d "${TMPDIR:-/var/tmp}/cmkfs-ab-mnt.XXXXXX")
cleanup() {
	set +e
	mountpoint -q "$MNT" && umount "$MNT"
	rmdir "$MNT"
	rm -f "$IMG"
}
trap cleanup EXIT

for i in $(seq "$REPS"); do
	if [ $((i % 2)) = 1 ]; then order="a b"; else order="b a"; fi
	for t in $order; do
		if [ "$t" = a ]; then bin=$A; else bin=$B; fi
		rm -f "$IMG"
		truncate -s 8G "$IMG"
		mkfs.ext4 -q -F "$IMG"
		mount -o loop "$IMG" "$MNT"
		TMPDIR=$MNT "$here/run.sh" --reps 1 --systems cmkfs \
			--workloads "$WORKLOADS" --cmkfs "$bin" --out "$OUT/$t-$i" \
			>"$OUT/$t-$i.txt" 2>&1 ||
			{ echo "ab: run $t-$i failed: $OUT/$t-$i.txt" >&2; exit 1; }
		umount "$MNT"
		echo "ab: $t-$i done" >&2
	done
done

python3 - "$OUT" <<'EOF'
import collections, glob, json, os, statistics as st, sys
out = sys.argv[1]
val = collections.defaultdict(lambda: collections.defaultdict(list))
cpu = collections.defaultdict(lambda: collections.defaultdict(list))
for f in glob.glob(os.path.join(out, "*-*", "results.jsonl")):
    t = os.path.basename(os.path.dirname(f)).split("-")[0]
    for line in open(f):
        r = json.loads(line)
        if r.get("failed"):
            continue
        val[r["workload"]][t].append(r["value"])
        cpu[r["workload"]][t].append(r["cpu"])
print("| workload | A median (min-max) | A CPU | B median (min-max) | B CPU | B vs A |")
print("|---|---|---|---|---|---|")
for w, d in val.items():
    a, b = d["a"], d["b"]
    ma, mb = st.median(a), st.median(b)
    print(f"| {w} | {ma:.2f} ({min(a):.2f}-{max(a):.2f}) | {st.median(cpu[w]['a']):.2f} "
          f"| {mb:.2f} ({min(b):.2f}-{max(b):.2f}) | {st.median(cpu[w]['b']):.2f} "
          f"| {100 * (mb / ma - 1):+.1f} % |")
print(f"(n = {len(a)} each; results in {out})")
EOF
