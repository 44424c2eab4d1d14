#!/usr/bin/env bash
# tests/mount/t_budget.sh — no data key seals more than its budget
# (doc/FORMAT.md §3.3, doc/SECURITY.md "Nonce budget"). With the test hook
# CMKFS_TEST_SEAL_BUDGET lowered to 2048 seals (count unit 128), one file is
# rewritten in place on a live mount, first page by page with an fsync every
# 16 pages as a database does, then whole with `dd conv=notrunc`, until its
# keys have reached the budget several times. At checkpoints all along:
# the content read back with O_DIRECT (through the daemon, not the page
# cache) has the model's checksum; the backing header, decoded and unwrapped
# independently (tests/vectors/volkeys.py), keeps its file id and
# generation and never reserves past the budget. Every re-key is in the
# audit log, and the checkpoints saw exactly one set of DEKs more than
# there were re-keys, each re-key starting its count low again. After a
# remount the content is intact, fsck is clean and the re-key record is
# gone. Then t_fsx's model-checked load (with punch and zero range) under
# a budget of 8192 seals: re-keys all along, no model error, fsck clean.
# The hook refuses nonsense and any value above the real budget.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 dd sha256sum
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
PY="sh ${TOP_SRCDIR:-$top_builddir}/tests/lib/py.sh"
V=${TOP_SRCDIR:-$top_builddir}/tests/vectors/volkeys.py
BUDGET=2048
SIZE=65536
t_mkvol
export CMKFS_TEST_SEAL_BUDGET=$BUDGET
t_mount
head -c $SIZE /dev/urandom >"$T/model"
cp "$T/model" "$MNT/db"
B=$(find "$CIPHER" -type f ! -name 'cmkfs.*' -size +60k)
[ -n "$B" ] && [ "$(printf '%s\n' "$B" | wc -l)" = 1 ] || t_fail "backing file of db: '$B'"

# checkpoint TAG: the content through the daemon against the model, then
# the backing header: "TAG <file id> <gen> <units> <DEK_1>" appended to
# $T/heads.
checkpoint() {
	python3 - "$MNT/db" "$T/model" "$1" <<'PY' || t_fail "$1: content differs from the model"
import hashlib, mmap, os, sys
path, model, tag = sys.argv[1:]
fd = os.open(path, os.O_RDONLY | os.O_DIRECT)
buf = mmap.mmap(-1, 1 << 20)
n = os.preadv(fd, [buf], 0)
os.close(fd)
want = open(model, "rb").read()
if hashlib.sha256(buf[:n]).digest() != hashlib.sha256(want).digest():
    sys.exit("%s: %d bytes read, checksum differs" % (tag, n))
PY
	$PY "$V" "$CIPHER" "$KEY" --headers "$B" >"$T/vk" || t_fail "$1: volkeys: $(cat "$T/vk")"
	awk -v tag="$1" '$1 == "HEADER" { h = $2 " " $3 " " $4 } $1 == "DEK1" { d = $2 }
		END { print tag, h, d }' "$T/vk" >>"$T/heads"
}
checkpoint start

# 1. Pages rewritten in place, fsync every 16 pages (the model follows):
# 12 batches of 256 pages, a checkpoint after each.
for batch in $(seq 12); do
	python3 - "$MNT/db" "$T/model" "$batch" <<'PY' || t_fail "page writer, batch $batch"
import os, random, sys
path, model, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rnd = random.Random(seed)
m = bytearray(open(model, "rb").read())
fd = os.open(path, os.O_RDWR)
for i in range(1, 257):
    p = rnd.randrange(len(m) // 4096)
    data = rnd.randbytes(4096)
    if os.pwrite(fd, data, p * 4096) != 4096:
        sys.exit("short write")
    m[p * 4096:(p + 1) * 4096] = data
    if i % 16 == 0:
        os.fsync(fd)
os.close(fd)
open(model, "wb").write(m)
PY
	checkpoint "pages$batch"
done

# 2. The whole file rewritten in place by dd, 25 times between
# checkpoints.
for round in $(seq 12); do
	for i in $(seq 25); do
		head -c $SIZE /dev/urandom >"$T/model"
		dd if="$T/model" of="$MNT/db" bs=$SIZE conv=notrunc,fsync status=none ||
			t_fail "dd round $round.$i"
	done
	checkpoint "dd$round"
done
[ "$(stat -c %s "$MNT/db")" = $SIZE ] || t_fail "size changed"

# The checkpoints: one file id and generation throughout; a count that
# never reserves past the budget; as many sets of DEKs as re-keys + 1,
# each new set seen first with a count reset to a unit or two.
rekeys=$(grep -c '"event":"file_rekey".*"result":"ok"' "$T/audit.log" || true)
python3 - "$T/heads" "$rekeys" "$BUDGET" <<'PY' || t_fail "headers: $(cat "$T/heads")"
import sys
rows = [l.split() for l in open(sys.argv[1])]
rekeys, budget = int(sys.argv[2]), int(sys.argv[3])
unit = budget // 16
ids = {r[1] for r in rows}
gens = {r[2] for r in rows}
assert len(ids) == 1 and len(gens) == 1, "file id or generation changed"
assert all(len(r) == 5 and len(r[4]) == 64 for r in rows), "a header did not unwrap"
for r in rows:
    assert (int(r[3]) + 1) * unit <= budget, "%s reserves %s units" % (r[0], r[3])
keys, prev = [], None
for r in rows:
    if r[4] != prev:
        keys.append(r)
        prev = r[4]
assert len({r[4] for r in rows}) == len(keys), "a set of DEKs came back"
assert rekeys >= 3, "%d re-keys" % rekeys
assert len(keys) == rekeys + 1, "%d sets of DEKs seen, %d re-keys" % (len(keys), rekeys)
for r in keys[1:]:
    # re-sealed 16 blocks and reserved a unit more, then wrote at most
    # a checkpoint's worth (256 pages or 25 x 16 blocks)
    assert int(r[3]) <= (16 + unit + 400) // unit, "%s: count %s after a re-key" % (r[0], r[3])
print("# %d checkpoints, %d re-keys, counts %s" % (len(rows), rekeys,
      " ".join(r[3] for r in rows)))
PY
t_log "$(tail -1 "$T/heads")"
# (grep -m1 on the file: `| head -1 |` can kill the writer with SIGPIPE
# under pipefail, tests/README.md)
grep -m1 '"event":"file_rekey"' "$T/audit.log" >"$T/first_rekey" || true
grep -q 'sealing budget of 2048 seals' "$T/first_rekey" ||
	t_fail "audit line: $(grep file_rekey "$T/audit.log" | head -1)"
! grep '"event":"file_rekey"' "$T/audit.log" | grep -vq '"result":"ok"' || t_fail "a re-key failed"
t_ok "$rekeys re-keys at the budget of $BUDGET seals, content intact at $(wc -l <"$T/heads") checkpoints"

# 3. Remounted (without the hook): intact; fsck clean; no record left.
t_umount
unset CMKFS_TEST_SEAL_BUDGET
[ ! -e "$CIPHER/cmkfs.journal/reseal.budget" ] || t_fail "re-key record left: $(stat -c %s "$CIPHER/cmkfs.journal/reseal.budget") bytes"
t_mount
cmp -s "$T/model" "$MNT/db" || t_fail "content differs after the remount"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck: $(tail -3 "$T/fsck")"
t_ok "remounted: content intact, fsck clean"

# 4. The model-checked load of t_fsx (writes, truncates, fallocate, mmap,
# appends, reopens, punch and zero range; files up to 4 MiB) under a
# budget of 8192 seals: re-keys all along (holes seal nothing, so a lower
# budget than sealed zeros needed; the re-keys re-seal hole records too),
# every read as the model says, fsck clean.
FSX=${TOP_BUILDDIR:-$top_builddir}/tests/mount/fsx
[ -x "$FSX" ] || t_fail "fsx not built: $FSX (make check builds it)"
before=$(grep -c '"event":"file_rekey"' "$T/audit.log" || true)
CMKFS_TEST_SEAL_BUDGET=8192 t_mount
"$FSX" -H -n 10000 -s 15 -N 3 -m 4M "$MNT" >"$T/fsx" 2>&1 || t_fail "fsx: $(tail -5 "$T/fsx")"
CMKFS_TEST_SEAL_BUDGET=8192 t_umount
n=$(($(grep -c '"event":"file_rekey".*"result":"ok"' "$T/audit.log") - before))
[ "$n" -ge 3 ] || t_fail "fsx: $n re-keys"
! grep '"event":"file_rekey"' "$T/audit.log" | grep -vq '"result":"ok"' || t_fail "fsx: a re-key failed"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after fsx: $(tail -3 "$T/fsck")"
t_ok "fsx -H under a budget of 8192 seals: $n re-keys, no model error, fsck clean"

# 5. The hook only lowers the budget, and refuses what is not a number.
for bad in 0 15 abc -1 4026531841 4294967296 99999999999999999999; do
	if CMKFS_TEST_SEAL_BUDGET=$bad "$CMKFS" status "$CIPHER" >"$T/out" 2>&1; then
		t_fail "CMKFS_TEST_SEAL_BUDGET=$bad accepted"
	fi
	grep -q CMKFS_TEST_SEAL_BUDGET "$T/out" || t_fail "$bad: $(cat "$T/out")"
done
t_ok "the test hook refuses nonsense and values above the budget"
