#!/usr/bin/env bash
# tests/mount/t_backup.sh — backups of the cipher directory (issue #4):
# tar and rsync copies taken while the mount is under a write load restore
# into fresh directories; fsck reports only files written during the
# backup (if any); a mount of each restore reads every other file back
# with its original checksum. An incremental rsync after changing one
# 4 KiB region in the middle of a 100 MiB file sends about one block.
. "$(dirname "$0")/../lib/lib.sh"
t_need tar rsync sha256sum
t_init
t_mkvol
t_mount
mkdir -p "$MNT/data/a" "$MNT/data/b" "$MNT/busy"
for i in $(seq 300); do head -c $((RANDOM * 3)) /dev/urandom >"$MNT/data/a/f$i"; done
for i in $(seq 50); do head -c $((RANDOM * 30)) /dev/urandom >"$MNT/data/b/g$i"; done
ln -s a/f1 "$MNT/data/link"
(cd "$MNT/data" && find . -type f -exec sha256sum {} + | sort -k2) >"$T/sums"

# a write load in /busy while the backups run
( i=0; while [ ! -e "$T/stop" ]; do
	head -c 70000 /dev/urandom >"$MNT/busy/w$((i % 20))"; i=$((i + 1))
done ) &
load=$!
sleep 1
tar -C "$CIPHER" -cf "$T/backup.tar" . 2>"$T/tar.err" || [ $? = 1 ] ||
	t_fail "tar: $(cat "$T/tar.err")"	# 1 = "file changed as we read it"
rsync -a "$CIPHER/" "$T/rsync-copy/" 2>"$T/rsync.err" || [ $? = 24 ] ||
	t_fail "rsync: $(cat "$T/rsync.err")"	# 24 = vanished files
touch "$T/stop"; wait $load
t_umount

check_restore() { # dir label
	local r=$1 rc=0
	"$CMKFS" fsck --json --service-key "$KEY" "$r" >"$T/fsck.$2" 2>/dev/null || rc=$?
	[ $rc = 0 ] || [ $rc = 1 ] || t_fail "$2: fsck exit $rc"
	python3 - "$T/fsck.$2" <<'PY' || t_fail "$2: fsck found damage outside /busy: $(cat "$T/fsck.$2")"
import json, sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    if "summary" in r:
        continue
    p = r.get("path") or ""
    assert p.startswith("/busy/") or r["problem"].startswith("leftover"), r
PY
	CIPHER=$r t_mount
	(cd "$MNT/data" && find . -type f -exec sha256sum {} + | sort -k2) >"$T/sums.$2"
	cmp -s "$T/sums" "$T/sums.$2" || t_fail "$2: checksums differ after restore"
	[ "$(readlink "$MNT/data/link")" = a/f1 ] || t_fail "$2: symlink"
	CIPHER=$r t_umount
	echo "$(grep -c '"problem"' "$T/fsck.$2" || true)"
}
mkdir "$T/restore-tar"
tar -C "$T/restore-tar" -xpf "$T/backup.tar"
n1=$(check_restore "$T/restore-tar" tar)
n2=$(check_restore "$T/rsync-copy" rsync)
t_ok "tar and rsync backups under load restore: 350 files match; fsck problems only in /busy (tar: $n1, rsync: $n2)"

# incremental: one 4 KiB region in the middle of a 100 MiB file
t_mount
head -c $((100 << 20)) /dev/urandom >"$MNT/big"
t_umount
rsync -a "$CIPHER/" "$T/inc/"
t_mount
printf 'Z%.0s' $(seq 4096) | dd of="$MNT/big" bs=4096 seek=12800 conv=notrunc status=none
t_umount
rsync -a --no-whole-file --stats "$CIPHER/" "$T/inc/" >"$T/stats"
sent=$(sed -n 's/^Total bytes sent: \([0-9,]*\).*/\1/p' "$T/stats" | tr -d ,)
lit=$(sed -n 's/^Literal data: \([0-9,]*\).*/\1/p' "$T/stats" | tr -d ,)
# rsync's own block is ~10 KiB for a 100 MiB file: the changed cipher block
# (4152 bytes) costs one or two of those as literal data.
[ -n "$lit" ] && [ "$lit" -le $((64 << 10)) ] || t_fail "incremental rsync: $lit literal bytes for a 4 KiB change"
[ "$sent" -lt $((1 << 20)) ] || t_fail "incremental rsync sent $sent bytes"
CIPHER=$T/inc t_mount
[ "$(dd if="$MNT/big" bs=4096 skip=12800 count=1 status=none | head -c 4)" = ZZZZ ] || t_fail "incremental copy content"
CIPHER=$T/inc t_umount
t_ok "incremental rsync after a 4 KiB change in 100 MiB: $lit bytes of literal data, $sent bytes sent in all (a cipher block is 4152)"
