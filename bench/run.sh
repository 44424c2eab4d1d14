#!/usr/bin/env bash
# bench/run.sh — cmkfs side by side with the native directory, libfuse's
# passthrough examples and the single-layer encrypting peers, on the
# workloads of issue #19 (doc/PERFORMANCE.md, "How to reproduce").
#
#   bench/run.sh [--reps N] [--size-mb N] [--fio-size-mb N] [--fio-secs N]
#                [--tree DIR] [--meta-files N] [--systems "LIST"]
#                [--workloads "LIST"] [--cmkfs PATH] [--cmkfs-args "ARGS"]
#                [--phd PATH] [--out DIR]
#
# Workloads (--workloads, default "seqwrite seqread randread randwrite
# tree meta"); every row is measured on the mount:
#   seqwrite      dd if=/dev/zero bs=1M count=SIZE conv=fsync       MiB/s
#   seqread       that file, cold: laid out, remounted, drop_caches,
#                 dd bs=1M to /dev/null                              MiB/s
#   randread      fio psync 4 KiB randread, 2 jobs on one file of
#                 --fio-size-mb laid out first, remounted, drop_caches,
#                 --fio-secs time-based                               IOPS
#   randwrite     the same with randwrite and --end_fsync=1: the phase
#                 ends when the data is durable                       IOPS
#                 (IOPS = I/Os done / wall seconds of the whole fio
#                 run, fsync included; fio's own figure is kept as
#                 fio_iops in the results)
#   tree          a tarball of --tree DIR (default /usr/include, a few
#                 thousand small files), four rows:
#     tree-extract  tar -x into the mount                                s
#     tree-ls       ls -lR after remount + drop_caches                   s
#     tree-read     cat every file after remount + drop_caches           s
#     tree-rm       rm -rf right after tree-read, same mount             s
#                   (same daemon: its peak RSS starts from what tree-read
#                   left, VmHWM reset before the row)
#   meta          --meta-files N (default 10000) empty files in one
#                 directory: create all, stat all, unlink all, in
#                 Python; row meta-10k (meta-100k, meta-1M, ...)        s
#   randrw        (not in the default list) the mixed 50/50 fio phase of
#                 the earlier runs, kept for comparing with them       IOPS
#
# Systems (--systems; default all of them; peers that are not installed
# are left out with a message):
#   native          the backing ext4 directory, no FUSE
#   passthrough     libfuse's passthrough_ll example (Debian's libfuse3-dev
#                   ships its source) with -o writeback
#   passthrough_hp  libfuse's passthrough_hp example, built by
#                   bench/passthrough_hp.sh from Debian's fuse3 source
#                   package (or --phd PATH); its defaults: writeback cache
#                   and splice read/write, multi-threaded. If the build
#                   fails (no network, apt), it is left out and said so.
#   cmkfs           both layers, local service-managed keys (+ --cmkfs-args)
#   cmkfs-cmk       the customer layer under an RSA-3072 key in the bundled
#                   Key Vault test server (needs python3-cryptography)
#   cmkfs-noxattr   cmkfs mount --no-xattr (securefs serves no xattrs)
#   gocryptfs securefs securefs-full cryfs encfs
#                   the single-layer peers (Debian: apt-get install
#                   gocryptfs securefs cryfs encfs). securefs is the lite
#                   format (--format 4), securefs-full the full format
#                   (--format 3)
#
# Every workload of every system gets a fresh volume in a fresh directory
# on the same file system (TMPDIR, default /var/tmp) and a fresh daemon;
# the cold rows remount it. Within a repetition the systems run in turn
# workload by workload, so drift hits them alike. For every row the FUSE
# daemon's CPU seconds (utime+stime, /proc/PID/stat) and its peak RSS
# (VmHWM, reset through /proc/PID/clear_refs before the row) are recorded.
#
# Output: OUT/results.jsonl (one JSON line per row and repetition; a row
# whose commands failed is recorded with "failed": true and the run goes
# on), then the tables of bench/report.py: medians with min-max, daemon
# CPU s, peak RSS MiB, ratio against the best single-layer peer and
# against passthrough_hp (above 1.00: faster), and the issue's targets.
#
# Other options: --reps N (default 3), --size-mb N (the sequential file,
# default 512), --fio-size-mb N (default 256), --fio-secs N (default 10),
# --out DIR (default a new directory under TMPDIR), --cmkfs PATH (default
# build/release/src/cmkfs, src/cmkfs, then cmkfs on PATH), --cmkfs-args
# "ARGS" (extra `cmkfs mount` options for the cmkfs systems, to measure a
# lever), --phd PATH (a passthrough_hp binary; default: what
# bench/passthrough_hp.sh prints, building it once into
# /var/tmp/cmkfs-bench-phd).
#
# Needs root (drop_caches, FUSE mounts, clear_refs), fio, python3, tar, dd,
# and for passthrough_hp g++ and network access to Debian's archive once.
# A quick check (about 13 minutes with all 11 systems, most of it the tree):
#   bench/run.sh --reps 1 --size-mb 32 --fio-size-mb 16 --fio-secs 2
#     --meta-files 1000
# A full run with the defaults takes about 20 minutes per repetition on a
# 2-core CI machine (cryfs and the two securefs formats are a third of it).
# Growth with file count: --workloads meta --meta-files 100000 (1000000).
# Measure on a quiet machine: the spread on a shared one is 2x and more.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/.." && pwd)
REPS=3
SIZE_MB=512
FIO_MB=256
FIO_SECS=10
TREE=/usr/include
META_N=10000
SYSTEMS="native passthrough passthrough_hp cmkfs cmkfs-cmk cmkfs-noxattr gocryptfs securefs securefs-full cryfs encfs"
WORKLOADS="seqwrite seqread randread randwrite tree meta"
OUT=
CMKFS=${CMKFS:-}
CMKFS_ARGS=
PHD=
while [ $# -gt 0 ]; do
	case $1 in
	--reps) REPS=$2; shift 2 ;;
	--size-mb) SIZE_MB=$2; shift 2 ;;
	--fio-size-mb) FIO_MB=$2; shift 2 ;;
	--fio-secs) FIO_SECS=$2; shift 2 ;;
	--tree) TREE=$2; shift 2 ;;
	--meta-files) META_N=$2; shift 2 ;;
	--systems) SYSTEMS=$2; shift 2 ;;
	--workloads) WORKLOADS=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--cmkfs) CMKFS=$2; shift 2 ;;
	--cmkfs-args) CMKFS_ARGS=$2; shift 2 ;;
	--phd) PHD=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench: unknown argument $1 (bench/run.sh --help)" >&2; exit 2 ;;
	esac
done
for w in $WORKLOADS; do
	case $w in
	seqwrite | seqread | randread | randwrite | randrw | tree | meta) ;;
	*) echo "bench: unknown workload $w (bench/run.sh --help)" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench: run as root (drop_caches, FUSE mounts)" >&2; exit 2; }
for t in fio python3 dd tar fusermount3 mountpoint; do
	command -v "$t" >/dev/null || { echo "bench: $t is missing" >&2; exit 2; }
done
if [ -z "$CMKFS" ]; then
	for c in "$top/build/release/src/cmkfs" "$top/src/cmkfs" "$(command -v cmkfs || true)"; do
		[ -n "$c" ] && [ -x "$c" ] && { CMKFS=$c; break; }
	done
fi
[ -x "${CMKFS:-}" ] || { echo "bench: no cmkfs binary (build it or pass --cmkfs)" >&2; exit 2; }
# shellcheck disable=SC2206
CARGS=($CMKFS_ARGS)
case $META_N in
*000000) META_NAME=meta-$((META_N / 1000000))M ;;
*000) META_NAME=meta-$((META_N / 1000))k ;;
*) META_NAME=meta-$META_N ;;
esac

W=$(mktemp -d "${TMPDIR:-/var/tmp}/cmkfs-bench.XXXXXX")
OUT=${OUT:-$W}
mkdir -p "$OUT"
RES=$OUT/results.jsonl
: >"$RES"
MNT=
PID=
unmount_any() {	# DIR: unmount what is mounted there, also a mount
	# whose daemon died (mountpoint(1) sees no mount then: ENOTCONN)
	awk -v m="$1" '$2 == m { f = 1 } END { exit !f }' /proc/mounts || return 0
	fusermount3 -u "$1" 2>/dev/null || umount -l "$1"
}
cleanup() {
	set +e
	local m
	for m in "$W"/sys/*/mnt; do
		[ -d "$m" ] && unmount_any "$m"
	done
	[ -n "${KVPID:-}" ] && kill "$KVPID" 2>/dev/null
	wait 2>/dev/null
	rm -rf --one-file-system "$W/sys" "$W/kv" "$W/include.tar"
	[ "$OUT" = "$W" ] || rm -rf --one-file-system "$W"
}
trap cleanup EXIT
PW=bench-password-not-secret

# passthrough: libfuse's low-level example as Debian ships it, with the
# writeback cache on. passthrough_hp: bench/passthrough_hp.sh.
PT_SRC=/usr/share/doc/libfuse3-dev/examples/passthrough_ll.c
PT=$W/passthrough_ll
have() {
	case $1 in
	native | cmkfs | cmkfs-noxattr) return 0 ;;
	cmkfs-cmk) python3 -c 'import cryptography' 2>/dev/null ;;
	passthrough) [ -f "$PT_SRC" ] ;;
	passthrough_hp) [ -x "$PHD" ] ;;
	securefs-full) command -v securefs >/dev/null ;;
	*) command -v "$1" >/dev/null ;;
	esac
}
case " $SYSTEMS " in
*" passthrough "*)
	# shellcheck disable=SC2046
	[ -f "$PT_SRC" ] && cc -O2 -D_FILE_OFFSET_BITS=64 $(pkg-config --cflags fuse3) "$PT_SRC" -o "$PT" $(pkg-config --libs fuse3) ;;
esac
case " $SYSTEMS " in
*" passthrough_hp "*)
	if [ -z "$PHD" ]; then
		PHD=$("$here/passthrough_hp.sh") ||
			{ PHD=; echo "bench: passthrough_hp could not be built (above); it is LEFT OUT of this run" >&2; }
	fi ;;
esac
sel=
for s in $SYSTEMS; do
	if have "$s"; then sel="$sel $s"; else echo "bench: $s not available, left out" >&2; fi
done

# The Key Vault test server for cmkfs-cmk (tests/lib/kv.sh).
kv_up() {
	[ -n "${KVURL:-}" ] && return 0
	# shellcheck disable=SC2034 # read by kv.sh
	T=$W TOP_SRCDIR=$top top_builddir=$top
	t_fail() { echo "bench: $*" >&2; exit 1; }
	t_skip() { t_fail "$@"; }
	t_on_exit() { :; }
	# shellcheck source=../tests/lib/kv.sh
	. "$top/tests/lib/kv.sh"
	kv_start
	CMK=$(kv_key benchcmk --size 3072)
}
case " $sel " in *" cmkfs-cmk "*) kv_up ;; esac

daemon_pid() {	# the FUSE daemon serving $MNT: all of them keep the mountpoint
	# in their command line; the newest is the daemon, not a parent that
	# is about to exit (passthrough_hp, securefs -b, gocryptfs fork)
	pgrep -n -f -- "$MNT\$|$MNT "
}

# sys_new SYSTEM: a fresh volume in $D (a new path every time: cryfs
# refuses a base directory that held another file system, exit 20)
sys_new() {
	local s=$1
	rm -rf --one-file-system "$D"
	mkdir -p "$D/cipher" "$D/mnt"
	case $s in
	cmkfs | cmkfs-noxattr) "$CMKFS" init --service-key "$D/sk" "$D/cipher" >/dev/null ;;
	cmkfs-cmk) "$CMKFS" init --service-key "$D/sk" --cmk "$CMK" "$D/cipher" >/dev/null ;;
	gocryptfs) gocryptfs -q -init -extpass "echo $PW" "$D/cipher" >/dev/null ;;
	securefs) securefs create --format 4 --pass "$PW" "$D/cipher" >/dev/null ;;
	securefs-full) securefs create --format 3 --pass "$PW" "$D/cipher" >/dev/null ;;
	esac
}

# sys_mount SYSTEM: mount the volume in $D, set MNT and PID
sys_mount() {
	local s=$1
	MNT=$D/mnt
	PID=
	case $s in
	native) MNT=$D/cipher; return 0 ;;
	passthrough) "$PT" -o writeback -o source="$D/cipher" "$MNT" ;;
	passthrough_hp) "$PHD" "$D/cipher" "$MNT" ;;
	cmkfs | cmkfs-cmk)
		CMKFS_AUDIT_LOG=$D/audit.log "$CMKFS" mount "${CARGS[@]}" --service-key "$D/sk" "$D/cipher" "$MNT" ;;
	cmkfs-noxattr)
		CMKFS_AUDIT_LOG=$D/audit.log "$CMKFS" mount --no-xattr "${CARGS[@]}" --service-key "$D/sk" "$D/cipher" "$MNT" ;;
	gocryptfs) gocryptfs -q -nosyslog -extpass "echo $PW" "$D/cipher" "$MNT" ;;
	securefs | securefs-full)
		securefs mount -b --pass "$PW" --log "$D/securefs.log" "$D/cipher" "$MNT" >/dev/null ;;
	cryfs)
		echo "$PW" | CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=1 \
			cryfs "$D/cipher" "$MNT" >/dev/null 2>&1 ;;
	encfs)
		# --standard only matters when it creates the volume
		encfs --standard --extpass="echo $PW" "$D/cipher" "$MNT" >/dev/null ;;
	esac
	# passthrough_hp 3.14 daemonizes before it mounts, securefs -b too: the
	# mount may come a moment after the command returns
	for _ in $(seq 100); do mountpoint -q "$MNT" && break; sleep 0.05; done
	mountpoint -q "$MNT" || { echo "bench: $s did not mount" >&2; return 1; }
	PID=$(daemon_pid)
	[ -n "$PID" ] || { echo "bench: no daemon found for $s" >&2; return 1; }
}

# sys_umount SYSTEM: unmount and wait for the daemon to exit
sys_umount() {
	local s=$1
	[ "$s" = native ] || {
		case $s in
		cmkfs*) "$CMKFS" umount "$MNT" ;;
		*) fusermount3 -u "$MNT" ;;
		esac
		for _ in $(seq 200); do kill -0 "$PID" 2>/dev/null || break; sleep 0.05; done
		! kill -0 "$PID" 2>/dev/null || { echo "bench: $s daemon $PID still running after unmount" >&2; return 1; }
	}
	MNT=
	PID=
}
remount() { sys_umount "$1"; sys_mount "$1"; }

cpu() {	# utime + stime of PID in seconds (0 for native)
	[ -n "$PID" ] || { echo 0; return; }
	awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$PID/stat"
}
hwm_reset() { [ -z "$PID" ] || echo 5 >"/proc/$PID/clear_refs"; }
hwm() { if [ -n "$PID" ]; then awk '/VmHWM/ { print $2 / 1024 }' "/proc/$PID/status"; else echo 0; fi; }
now() { date +%s.%N; }
drop() { sync; echo 3 >/proc/sys/vm/drop_caches; }

# measure SYSTEM WORKLOAD UNIT AMOUNT CMD...: run CMD, record one result.
# value = AMOUNT / seconds (UNIT MiB/s, IOPS) or seconds (UNIT s).
# For fio rows AMOUNT is "fio": the I/O count comes from $W/fio.json.
measure() {
	local s=$1 w=$2 unit=$3 amount=$4 t0 t1 c0 c1
	shift 4
	hwm_reset
	c0=$(cpu)
	t0=$(now)
	"$@"
	t1=$(now)
	c1=$(cpu)
	python3 - "$s" "$w" "$unit" "$amount" "$t0" "$t1" "$c0" "$c1" "$(hwm)" "$rep" "$W/fio.json" >>"$RES" <<'PY'
import json, sys
s, w, unit, amount, t0, t1, c0, c1, hwm, rep, fj = sys.argv[1:]
dt = float(t1) - float(t0)
r = {"system": s, "workload": w, "unit": unit, "seconds": dt,
     "cpu": float(c1) - float(c0), "rss_mib": float(hwm), "rep": int(rep)}
if amount == "fio":
    j = json.load(open(fj))["jobs"][0]
    ios = j["read"]["total_ios"] + j["write"]["total_ios"]
    r["ios"] = ios
    r["fio_iops"] = j["read"]["iops"] + j["write"]["iops"]
    r["value"] = ios / dt
else:
    r["value"] = dt if unit == "s" else float(amount) / dt
print(json.dumps(r))
PY
}

w_seqwrite() { dd if=/dev/zero of="$MNT/seq" bs=1M count="$SIZE_MB" conv=fsync status=none; }
w_seqread() { dd if="$MNT/seq" of=/dev/null bs=1M status=none; }
fio_lay() {	# the file the fio phases work on, written outside the measurement
	fio --name=lay --directory="$MNT" --filename=fio.dat --size="${FIO_MB}M" \
		--bs=1M --rw=write --ioengine=psync --end_fsync=1 --output-format=json >/dev/null
}
w_fio() {	# $1: randread, randwrite or randrw
	local extra=()
	[ "$1" = randread ] || extra=(--end_fsync=1)
	fio --name="$1" --directory="$MNT" --filename=fio.dat --size="${FIO_MB}M" \
		--bs=4k --rw="$1" --ioengine=psync --numjobs=2 --runtime="$FIO_SECS" \
		--time_based "${extra[@]}" --group_reporting --output-format=json >"$W/fio.json"
}
w_extract() { mkdir "$MNT/tree"; tar -xf "$W/include.tar" -C "$MNT/tree"; }
w_ls() { ls -lR "$MNT/tree" >/dev/null; }
w_readall() { find "$MNT/tree" -type f -print0 | xargs -0 cat >/dev/null; }
w_rm() { rm -rf "$MNT/tree"; }
w_meta() {
	python3 - "$MNT/meta" "$META_N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.mkdir(d)
names = [os.path.join(d, "f%07d" % i) for i in range(n)]
for p in names:
    os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
for p in names:
    os.stat(p)
for p in names:
    os.unlink(p)
os.rmdir(d)
PY
}

# one SYSTEM WORKLOAD: a fresh volume and daemon, the workload's rows,
# unmount. Runs in a subshell with set -e; the caller records a failure.
one() {
	local s=$1 w=$2
	sys_new "$s"
	sys_mount "$s"
	case $w in
	seqwrite) measure "$s" seqwrite MiB/s "$SIZE_MB" w_seqwrite ;;
	seqread)
		w_seqwrite
		remount "$s"
		drop
		measure "$s" seqread MiB/s "$SIZE_MB" w_seqread ;;
	randread | randwrite | randrw)
		fio_lay
		remount "$s"
		drop
		measure "$s" "$w" IOPS fio w_fio "$w" ;;
	tree)
		measure "$s" tree-extract s 0 w_extract
		remount "$s"
		drop
		measure "$s" tree-ls s 0 w_ls
		remount "$s"
		drop
		measure "$s" tree-read s 0 w_readall
		measure "$s" tree-rm s 0 w_rm ;;
	meta) measure "$s" "$META_NAME" s 0 w_meta ;;
	esac
	sys_umount "$s"
}

fail_rows() {	# SYSTEM WORKLOAD: the rows a failed workload leaves out
	case $2 in
	tree) echo tree-extract tree-ls tree-read tree-rm ;;
	meta) echo "$META_NAME" ;;
	*) echo "$2" ;;
	esac
}

ntree=
case " $WORKLOADS " in
*" tree "*)
	[ -d "$TREE" ] || { echo "bench: --tree $TREE is not a directory" >&2; exit 2; }
	tar -cf "$W/include.tar" -C "$(dirname "$TREE")" "$(basename "$TREE")"
	ntree="tree $TREE: $(tar -tvf "$W/include.tar" | grep -c '^-') files, $(tar -tvf "$W/include.tar" | grep -c '^d') directories, $(($(stat -c %s "$W/include.tar") / 1048576)) MiB; " ;;
esac
echo "bench: $(nproc) cores, $(awk '/MemTotal/ { print int($2 / 1048576) }' /proc/meminfo) GiB, kernel $(uname -r), cmkfs $CMKFS ${CMKFS_ARGS:+($CMKFS_ARGS) }" >&2
echo "bench: systems:$sel; workloads: $WORKLOADS; reps $REPS; seq ${SIZE_MB} MiB, fio ${FIO_MB} MiB ${FIO_SECS} s, ${ntree}meta $META_N files; results in $RES" >&2
start=$(date +%s)
for rep in $(seq "$REPS"); do
	for w in $WORKLOADS; do
		for s in $sel; do
			D=$W/sys/$s.$rep.$w
			t=$(date +%s)
			set +e
			(set -e; one "$s" "$w")
			rc=$?
			set -e
			echo "bench: rep $rep/$REPS: $w: $s ($(($(date +%s) - t)) s)" >&2
			if [ "$rc" != 0 ]; then
				echo "bench: FAILED: $s $w (rep $rep, exit $rc); recorded as failed, going on" >&2
				unmount_any "$D/mnt"
				for r in $(fail_rows "$s" "$w"); do
					# rows measured before the failure stay as they are
					python3 -c 'import json, sys
s, r, rep = sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.exit(any(j.get("system") == s and j.get("workload") == r and j.get("rep") == rep
             for j in map(json.loads, open(sys.argv[1]))))' "$RES" "$s" "$r" "$rep" || continue
					printf '{"system": "%s", "workload": "%s", "rep": %d, "failed": true, "exit": %d}\n' \
						"$s" "$r" "$rep" "$rc" >>"$RES"
				done
			fi
			rm -rf --one-file-system "$D"
		done
	done
done
echo "bench: done in $(($(date +%s) - start)) s" >&2
python3 "$here/report.py" "$RES"
