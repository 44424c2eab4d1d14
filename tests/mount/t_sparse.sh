#!/usr/bin/env bash
# tests/mount/t_sparse.sh — format-3 files stay sparse and their holes stay
# authenticated (doc/FORMAT.md §3.4). `truncate -s 2G` and 4 KiB writes at
# 4 GiB and 1 TiB take almost no backing disk and read back zeros/data;
# cp --sparse keeps a copy sparse; SEEK_DATA/SEEK_HOLE answer as fstests
# generic/285 expects (seek.c); fallocate PUNCH_HOLE frees backing space;
# fsx with punch and zero range (generic/014, 129, 130 spirit) passes.
# From the adversary's seat (dd / fallocate on the backing file, no key):
# a zeroed or punched data block and a punched or zeroed hole record each
# read EIO and are a named finding of fsck (exit 1).
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 fallocate du cp cmp
t_init
SEEK=${TOP_BUILDDIR:-$top_builddir}/tests/mount/seek
FSX=${TOP_BUILDDIR:-$top_builddir}/tests/mount/fsx
[ -x "$SEEK" ] || t_fail "seek not built: $SEEK"
[ -x "$FSX" ] || t_fail "fsx not built: $FSX"
BS=4096
HDR=148
CB=$((BS + 56))
GIB=$((1 << 30))
t_mkvol
t_mount

# The backing file of a plain file: the newest regular file, names are
# encrypted (one file made at a time).
backing() { find "$CIPHER" -maxdepth 1 -type f ! -name 'cmkfs.*' -newer "$1" -printf '%T@ %p\n' | sort -n | tail -n1 | cut -d' ' -f2-; }
kib() { du -k "$1" | cut -f1; }
stamp() { touch "$T/stamp"; sleep 0.01; }

# 1. truncate -s 2G: no disk, fast, zeros
stamp
s0=$SECONDS
truncate -s 2G "$MNT/big"
b=$(backing "$T/stamp")
[ -n "$b" ] || t_fail "no backing file for big"
[ "$(stat -c %s "$MNT/big")" = $((2 * GIB)) ] || t_fail "size of big"
[ "$(kib "$b")" -lt 1024 ] || t_fail "truncate -s 2G took $(kib "$b") KiB of backing disk"
t_log "truncate -s 2G: $((SECONDS - s0)) s, backing du $(kib "$b") KiB"
for off in 0 1000 $((GIB - 5)) $((2 * GIB - 70000)); do
	cmp -n 65536 <(dd if="$MNT/big" bs=64K iflag=skip_bytes,count_bytes skip=$off count=65536 2>/dev/null) /dev/zero ||
		t_fail "big: not zeros at $off"
done
t_ok "truncate -s 2G: $(kib "$b") KiB on disk, reads zeros"

# 2. one 4 KiB write at 4 GiB and one at 1 TiB
head -c 4096 /dev/urandom >"$T/blk"
stamp
s0=$SECONDS
: >"$MNT/far"
dd if="$T/blk" of="$MNT/far" bs=4096 seek=$((4 * GIB / 4096)) conv=notrunc status=none
dd if="$T/blk" of="$MNT/far" bs=4096 seek=$(((1 << 40) / 4096)) conv=notrunc status=none
b=$(backing "$T/stamp")
[ "$(kib "$b")" -lt 1024 ] || t_fail "writes at 4 GiB and 1 TiB took $(kib "$b") KiB"
t_log "writes at 4 GiB and 1 TiB: $((SECONDS - s0)) s, backing du $(kib "$b") KiB"
cmp <(dd if="$MNT/far" bs=4096 skip=$((4 * GIB / 4096)) count=1 status=none) "$T/blk" || t_fail "data at 4 GiB"
cmp <(dd if="$MNT/far" bs=4096 skip=$(((1 << 40) / 4096)) count=1 status=none) "$T/blk" || t_fail "data at 1 TiB"
cmp -n 1048576 <(dd if="$MNT/far" bs=1M skip=$((512 * 1024)) count=1 status=none) /dev/zero || t_fail "zeros at 512 GiB"
t_ok "writes at 4 GiB and 1 TiB: $(kib "$b") KiB on disk, data and zeros read back"

# 3. SEEK_DATA / SEEK_HOLE (generic/285 spirit): data [0, 4K), hole,
# data [40K, 44K), hole, last block (always data) at 1 MiB - 4K.
F=$MNT/seekf
dd if="$T/blk" of="$F" bs=4096 count=1 status=none
truncate -s 1M "$F"
dd if="$T/blk" of="$F" bs=4096 seek=10 conv=notrunc status=none
M=$((1 << 20))
got=$("$SEEK" "$F" data 0 100 4096 20000 45056 $((M - 1)) $M $((M + 1)) | tr '\n' ' ')
want="0 100 40960 40960 $((M - 4096)) $((M - 1)) ENXIO ENXIO "
[ "$got" = "$want" ] || t_fail "SEEK_DATA: got '$got', want '$want'"
got=$("$SEEK" "$F" hole 0 100 4096 40960 45056 $((M - 4096)) $M | tr '\n' ' ')
want="4096 4096 4096 45056 45056 $M ENXIO "
[ "$got" = "$want" ] || t_fail "SEEK_HOLE: got '$got', want '$want'"
: >"$MNT/empty"
got=$("$SEEK" "$MNT/empty" data 0 | tr '\n' ' ')$("$SEEK" "$MNT/empty" hole 0 | tr '\n' ' ')
[ "$got" = "ENXIO ENXIO " ] || t_fail "seek in an empty file: $got"
t_ok "SEEK_DATA/SEEK_HOLE: data, holes, the implicit hole at EOF, ENXIO past it"

# 4. cp --sparse=always keeps the copy sparse; contents equal
stamp
cp --sparse=always "$F" "$MNT/copy"
b=$(backing "$T/stamp")
cmp "$F" "$MNT/copy" || t_fail "cp --sparse: contents differ"
[ "$(kib "$b")" -lt 64 ] || t_fail "cp --sparse: copy takes $(kib "$b") KiB"
got=$("$SEEK" "$MNT/copy" data 4096 | tr '\n' ' ')
[ "$got" = "40960 " ] || t_fail "cp --sparse: the copy's holes: SEEK_DATA 4096 = $got"
t_ok "cp --sparse=always: equal, $(kib "$b") KiB, holes kept"

# 5. PUNCH_HOLE frees backing space and reads zeros
stamp
head -c $((8 << 20)) /dev/urandom >"$T/p.ref"
cp "$T/p.ref" "$MNT/punch"
sync
b=$(backing "$T/stamp")
k0=$(kib "$b")
fallocate -p -o $((1 << 20)) -l $((4 << 20)) "$MNT/punch"
sync
k1=$(kib "$b")
[ $((k0 - k1)) -ge 3900 ] || t_fail "punching 4 MiB freed $((k0 - k1)) KiB ($k0 -> $k1)"
python3 - "$T/p.ref" <<'PY'
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
d[1 << 20:5 << 20] = bytes(4 << 20)
open(p, "wb").write(d)
PY
cmp "$T/p.ref" "$MNT/punch" || t_fail "punched file differs"
t_ok "fallocate PUNCH_HOLE of 4 MiB freed $((k0 - k1)) KiB, reads zeros"

# 6. fsx with punch hole and zero range
"$FSX" -H -n 20000 -s 11 -N 3 -m 2M "$MNT" >"$T/fsx.out" 2>&1 || { tail -30 "$T/fsx.out"; t_fail "fsx -H"; }
t_ok "fsx -H: $(tail -n1 "$T/fsx.out")"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after the sparse files: $(tail -5 "$T/fsck")"
t_ok "fsck clean"

# 7. The adversary: a file of data blocks 0..3, a hole [4..99] (record in
# slot 99), and the last block 100.
t_mount
stamp
head -c 16384 /dev/urandom >"$T/t.ref"
cp "$T/t.ref" "$MNT/t"
truncate -s $((100 * BS + 10)) "$MNT/t"
truncate -s $((100 * BS + 10)) "$T/t.ref"
cmp "$T/t.ref" "$MNT/t" || t_fail "tamper file"
t_umount
tb=$(backing "$T/stamp")
[ "$(stat -c %s "$tb")" = $((HDR + 100 * CB + 10 + 56)) ] || t_fail "tamper backing size"
cp --sparse=always "$tb" "$T/t.clean"
slot() { echo $((HDR + $1 * CB)); }
attack() { # what, command...
	local what=$1
	shift
	"$@"
	t_mount
	if cat "$MNT/t" >/dev/null 2>"$T/err"; then
		t_fail "$what: the file reads"
	fi
	grep -q "Input/output error" "$T/err" || t_fail "$what: $(cat "$T/err")"
	t_umount
	if "$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1; then
		t_fail "$what: fsck exit 0"
	fi
	grep -q -E "$FIND" "$T/fsck" || t_fail "$what: fsck does not name it: $(cat "$T/fsck")"
	cp --sparse=always "$T/t.clean" "$tb"
	t_ok "$what: EIO, fsck: $(grep -m1 -o -E "$FIND" "$T/fsck")"
}
FIND="zero blocks 2\.\.2 have no hole record"
attack "data block zeroed with dd" dd if=/dev/zero of="$tb" bs=1 seek="$(slot 2)" count=$CB conv=notrunc status=none
FIND="hole record's start is wrong"
attack "data block next to the hole punched" fallocate -p -o "$(slot 3)" -l $CB "$tb"
FIND="zero blocks 4\.\.99 have no hole record"
attack "hole record punched" fallocate -p -o "$(slot 99)" -l $CB "$tb"
FIND="hole record does not open"
attack "hole record moved to another slot" dd if="$tb" of="$tb" bs=1 skip="$(slot 99)" seek="$(slot 60)" count=64 conv=notrunc status=none
t_mount
cmp "$T/t.ref" "$MNT/t" || t_fail "restored file"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after restore: $(tail -5 "$T/fsck")"
t_ok "restored: reads, fsck clean"
