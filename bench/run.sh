#!/usr/bin/env bash
# bench/run.sh — cmkfs against the native directory, a plain FUSE
# passthrough and the single-layer peers, side by side (issue #5,
# doc/PERFORMANCE.md). Every system gets a fresh, empty directory on the
# same file system for every repetition; systems are interleaved within a
# repetition so drift hits them alike. Prints one table: medians with
# min-max, the FUSE daemon's CPU seconds and peak RSS, and ratios against
# gocryptfs and the passthrough.
#
#   bench/run.sh [--reps N] [--size-mb N] [--systems "LIST"]
#                [--workloads "LIST"] [--out DIR] [--cmkfs PATH]
#
# systems:   native passthrough cmkfs cmkfs-cmk cmkfs-noxattr gocryptfs
#            securefs cryfs encfs (peers that are not installed are left
#            out). cmkfs-noxattr: cmkfs --no-xattr, as securefs (Debian's
#            0.13 serves no extended attributes on Linux)
# workloads: seqwrite seqread randrw tree meta
#
# Needs root (drop_caches, FUSE), fio, python3; peers from Debian:
# apt-get install gocryptfs securefs cryfs encfs fio.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=3
SIZE_MB=1024
SYSTEMS="native passthrough cmkfs cmkfs-cmk cmkfs-noxattr gocryptfs securefs cryfs encfs"
WORKLOADS="seqwrite seqread randrw tree meta"
OUT=
CMKFS=${CMKFS:-}
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2; shift 2 ;;
	--size-mb) SIZE_MB=$2; shift 2 ;;
	--systems) SYSTEMS=$2; shift 2 ;;
	--workloads) WORKLOADS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--cmkfs) CMKFS=$2; shift 2 ;;
	-h | --help) sed -n '2,20p' "$0"; exit 0 ;;
	*) echo "bench: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (drop_caches, FUSE mounts)" >&2; exit 2; }
for t in fio python3 dd tar; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 2; }
done
if [ -z "$CMKFS" ]; then
	for c in "$top/build/release/src/cmkfs" "$top/src/cmkfs" "$(command -v cmkfs || true)"; do
		[ -n "$c" ] && [ -x "$c" ] && { CMKFS=$c; break; }
	done
fi
[ -x "${CMKFS:-}" ] || { echo "bench: no cmkfs binary (build it or pass --cmkfs)" >&2; exit 2; }

W=$(mktemp -d "${TMPDIR:-/var/tmp}/cmkfs-bench.XXXXXX")
OUT=${OUT:-$W}
mkdir -p "$OUT"
RES=$OUT/results.jsonl
: >"$RES"
MNT=
PID=
cleanup() {
	set +e
	[ -n "$MNT" ] && { fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null; }
	[ -n "${KVPID:-}" ] && kill "$KVPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf --one-file-system "$W/sys" "$W/kv"
	[ "$OUT" = "$W" ] || rm -rf --one-file-system "$W"
}
trap cleanup EXIT
PW=bench-password-not-secret

# The plain FUSE passthrough: libfuse's low-level example as Debian ships
# it (passthrough_hp is not in Debian's binary packages), with the
# writeback cache on.
PT_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
PT=$W/passthrough_ll
have() {
	case $1 in
	native | cmkfs | cmkfs-noxattr) return 0 ;;
	cmkfs-cmk) python3 -c 'import cryptography' 2>/dev/null ;;
	passthrough) [ -f "$PT_SRC" ] ;;
	*) command -v "$1" >/dev/null ;;
	esac
}
if have passthrough; then
	cc -O2 -D_FILE_OFFSET_BITS=64 $(pkg-config --cflags fuse3) "$PT_SRC" -o "$PT" $(pkg-config --libs fuse3)
fi
sel=
for s in $SYSTEMS; do
	if have "$s"; then sel="$sel $s"; else echo "bench: $s not installed, left out" >&2; fi
done

# The Key Vault test server for cmkfs-cmk (tests/lib/kv.sh).
kv_up() {
	[ -n "${KVURL:-}" ] && return 0
	T=$W
	t_fail() { echo "bench: $*" >&2; exit 1; }
	t_skip() { t_fail "$@"; }
	t_on_exit() { :; }
	TOP_SRCDIR=$top
	top_builddir=$top
	# shellcheck source=../tests/lib/kv.sh
	. "$top/tests/lib/kv.sh"
	kv_start
	CMK=$(kv_key benchcmk --size 3072)
}

daemon_pid() {	# the FUSE daemon serving $MNT: all of them keep the
	# mountpoint in their command line
	pgrep -f -- "$MNT\$|$MNT " | head -n1
}

sys_up() {	# $1 system: fresh dirs, mount, set MNT and PID
	# (a new path per repetition: cryfs refuses a base directory that held
	# another file system before, exit 20)
	local s=$1 d=$W/sys/$1.$rep
	rm -rf --one-file-system "$d"
	mkdir -p "$d/cipher" "$d/mnt"
	MNT=$d/mnt
	PID=
	case $s in
	native) MNT=$d/cipher; return 0 ;;
	passthrough) "$PT" -o writeback -o source="$d/cipher" "$MNT" ;;
	cmkfs)
		"$CMKFS" init --service-key "$d/sk" "$d/cipher" >/dev/null
		CMKFS_AUDIT_LOG=$d/audit.log "$CMKFS" mount --service-key "$d/sk" "$d/cipher" "$MNT" ;;
	cmkfs-noxattr)
		"$CMKFS" init --service-key "$d/sk" "$d/cipher" >/dev/null
		CMKFS_AUDIT_LOG=$d/audit.log "$CMKFS" mount --no-xattr --service-key "$d/sk" "$d/cipher" "$MNT" ;;
	cmkfs-cmk)
		kv_up
		"$CMKFS" init --service-key "$d/sk" --cmk "$CMK" "$d/cipher" >/dev/null
		CMKFS_AUDIT_LOG=$d/audit.log "$CMKFS" mount --service-key "$d/sk" "$d/cipher" "$MNT" ;;
	gocryptfs)
		gocryptfs -q -init -extpass "echo $PW" "$d/cipher" >/dev/null
		gocryptfs -q -extpass "echo $PW" "$d/cipher" "$MNT" ;;
	securefs)
		securefs create --format 4 --pass "$PW" "$d/cipher" >/dev/null
		securefs mount -b --pass "$PW" --log "$d/securefs.log" "$d/cipher" "$MNT" >/dev/null
		for _ in $(seq 50); do mountpoint -q "$MNT" && break; sleep 0.1; done ;;
	cryfs)
		echo "$PW" | CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=1 \
			cryfs "$d/cipher" "$MNT" >/dev/null 2>&1 ;;
	encfs)
		encfs --standard --extpass="echo $PW" "$d/cipher" "$MNT" >/dev/null ;;
	esac
	mountpoint -q "$MNT" || { echo "bench: $s did not mount" >&2; exit 1; }
	PID=$(daemon_pid)
	[ -n "$PID" ] || { echo "bench: no daemon found for $s" >&2; exit 1; }
}

sys_down() {
	[ "$MNT" = "$W/sys/$1.$rep/cipher" ] || {
		if [ "${1%%-*}" = cmkfs ]; then
			"$CMKFS" umount "$MNT"
		else
			fusermount3 -u "$MNT"
			for _ in $(seq 100); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
		fi
	}
	MNT=
	rm -rf --one-file-system "$W/sys/$1.$rep"
}

cpu() {	# utime + stime of PID in seconds (0 for native)
	[ -n "$PID" ] || { echo 0; return; }
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$PID/stat"
}
hwm_reset() { [ -z "$PID" ] || echo 5 >"/proc/$PID/clear_refs"; }
hwm() { [ -n "$PID" ] && awk '/VmHWM/ { print $2 / 1024 }' "/proc/$PID/status" || echo 0; }
now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# measure SYSTEM WORKLOAD UNIT AMOUNT CMD...: run CMD, record one result.
# value = AMOUNT / seconds (UNIT MiB/s, files/s) or seconds (UNIT s).
measure() {
	local s=$1 w=$2 unit=$3 amount=$4 t0 t1 c0 c1
	shift 4
	hwm_reset
	c0=$(cpu)
	t0=$(now)
	"$@"
	t1=$(now)
	c1=$(cpu)
	python3 - "$s" "$w" "$unit" "$amount" "$t0" "$t1" "$c0" "$c1" "$(hwm)" "$rep" >>"$RES" <<'PY'
import json, sys
s, w, unit, amount, t0, t1, c0, c1, hwm, rep = sys.argv[1:]
dt = float(t1) - float(t0)
v = dt if unit == "s" else float(amount) / dt
print(json.dumps({"system": s, "workload": w, "unit": unit, "value": v,
                  "seconds": dt, "cpu": float(c1) - float(c0),
                  "rss_mib": float(hwm), "rep": int(rep)}))
PY
}

w_seqwrite() { dd if=/dev/zero of="$MNT/seq" bs=1M count="$SIZE_MB" conv=fsync status=none; }
w_seqread() { dd if="$MNT/seq" of=/dev/null bs=1M status=none; }
w_fio() {
	fio --name=randrw --directory="$MNT" --filename=fio.dat --size=256M \
		--bs=4k --rw=randrw --ioengine=psync --numjobs=2 --runtime=10 \
		--time_based --group_reporting --output-format=json >"$W/fio.json"
}
w_extract() { mkdir "$MNT/tree"; tar -xf "$W/include.tar" -C "$MNT/tree"; }
w_ls() { ls -lR "$MNT/tree" >/dev/null; }
w_readall() { find "$MNT/tree" -type f -print0 | xargs -0 cat >/dev/null; }
w_rm() { rm -rf "$MNT/tree"; }
w_meta() {
	python3 - "$MNT/meta" <<'PY'
import os, sys
d = sys.argv[1]
os.mkdir(d)
names = [os.path.join(d, "f%05d" % i) for i in range(10000)]
for n in names:
    os.close(os.open(n, os.O_CREAT | os.O_WRONLY, 0o644))
for n in names:
    os.stat(n)
for n in names:
    os.unlink(n)
os.rmdir(d)
PY
}

run_workloads() {	# $1 system
	local s=$1 iops
	for w in $WORKLOADS; do
		case $w in
		seqwrite) measure "$s" seqwrite MiB/s "$SIZE_MB" w_seqwrite ;;
		seqread)
			[ -f "$MNT/seq" ] || w_seqwrite
			drop
			measure "$s" seqread MiB/s "$SIZE_MB" w_seqread
			rm -f "$MNT/seq" ;;
		randrw)
			# lay the file out first, outside the measurement
			fio --name=lay --directory="$MNT" --filename=fio.dat --size=256M \
				--bs=1M --rw=write --ioengine=psync --output-format=json >/dev/null
			drop
			measure "$s" randrw s 0 w_fio
			iops=$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1]))["jobs"][0]; print(j["read"]["iops"] + j["write"]["iops"])' "$W/fio.json")
			# replace the time by IOPS in the last line
			python3 - "$RES" "$iops" <<'PY'
import json, sys
p, iops = sys.argv[1], float(sys.argv[2])
lines = open(p).read().splitlines()
r = json.loads(lines[-1]); r["unit"] = "IOPS"; r["value"] = iops
lines[-1] = json.dumps(r)
open(p, "w").write("\n".join(lines) + "\n")
PY
			rm -f "$MNT/fio.dat" ;;
		tree)
			measure "$s" tree-extract s 0 w_extract
			drop
			measure "$s" tree-ls s 0 w_ls
			drop
			measure "$s" tree-read s 0 w_readall
			measure "$s" tree-rm s 0 w_rm ;;
		meta) measure "$s" meta-10k s 0 w_meta ;;
		esac
	done
}

case " $WORKLOADS " in *" tree "*) tar -cf "$W/include.tar" -C /usr include ;; esac
echo "bench: $(nproc) cores, $(awk '/MemTotal/ { print int($2 / 1048576) }' /proc/meminfo) GiB, $(uname -r), systems:$sel, reps $REPS, results in $RES" >&2
for rep in $(seq "$REPS"); do
	for s in $sel; do
		echo "bench: rep $rep/$REPS: $s" >&2
		sys_up "$s"
		run_workloads "$s"
		sys_down "$s"
	done
done
python3 "$here/report.py" "$RES"
