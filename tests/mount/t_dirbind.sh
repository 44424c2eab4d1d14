#!/usr/bin/env bash
# tests/mount/t_dirbind.sh — directory ids are bound to their place (format 3,
# doc/FORMAT.md §4.1). From the adversary's seat (cp/mv/dd on the cipher
# directory, no key): a whole backing directory moved or copied under
# another directory or to another name, two directories' ids swapped, the
# root's id copied into a subdirectory, a subdirectory's into the root, a
# flipped byte, an old-style 16-byte id: every access below it is EIO, the
# daemon's log names the backing path and why, and `cmkfs fsck` names it
# (exit 1, text and --json); fsck --repair sets a foreign directory aside.
# Then the mount's own renames of directories (plain, across parents,
# over an empty directory, RENAME_EXCHANGE) keep everything readable, and
# a kill -9 of the daemon at every traced syscall of a directory rename
# leaves a volume that reads back under the old or the new name, fsck
# explaining it and --repair leaving it clean.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
CL=${TOP_BUILDDIR:-$top_builddir}/tests/mount/crashload
[ -x "$CL" ] || t_fail "crashload not built: $CL"

t_mkvol
t_mount
mkdir -p "$MNT/public/inbox" "$MNT/secret/deep" "$MNT/other"
echo "salary: 1000000" >"$MNT/secret/payroll.txt"
echo deep >"$MNT/secret/deep/x"
echo readme >"$MNT/public/readme.txt"
t_umount
CLEAN=$T/clean
cp -a "$CIPHER" "$CLEAN"

# Backing directories, found by shape: /secret holds a file and a
# directory holding a file, /public a file and an empty directory, /other
# nothing (cmkfs.* entries aside).
find_dirs() {
	local out
	out=$(python3 - "$CIPHER" <<'PY'
import os, sys
root = sys.argv[1]
def kids(d):
    return [os.path.join(d, n) for n in os.listdir(d) if not n.startswith("cmkfs.")]
S = P = O = None
for d in kids(root):
    if not os.path.isdir(d):
        continue
    k = kids(d)
    sub = [x for x in k if os.path.isdir(x)]
    if not k:
        O = d
    elif sub and kids(sub[0]):
        S, DEEP = d, sub[0]
    elif sub:
        P, INBOX = d, sub[0]
print(S, P, O, DEEP, INBOX)
PY
) || t_fail "backing layout not recognised"
	read -r S P O DEEP INBOX <<<"$out"
}
FGPID=
LOG=$T/daemon.log
fresh() { rm -rf "$CIPHER"; cp -a "$CLEAN" "$CIPHER"; find_dirs; }
mount_fg() {
	"$CMKFS" mount -f --service-key "$KEY" "$CIPHER" "$MNT" 2>"$LOG" &
	FGPID=$!
	for _ in $(seq 200); do
		t_is_mounted "$MNT" && return 0
		kill -0 "$FGPID" 2>/dev/null || t_fail "daemon died: $(cat "$LOG")"
		sleep 0.05
	done
	t_fail "mount did not come up"
}
umount_fg() { "$CMKFS" umount "$MNT" || t_fail "umount"; wait "$FGPID" || true; }
expect_eio() {
	local what=$1 out
	shift
	if out=$("$@" 2>&1 >/dev/null); then
		t_fail "$what: '$*' succeeded on a spliced tree"
	fi
	case $out in
	*"Input/output error"*) ;;
	*) t_fail "$what: '$*' failed without EIO: $out" ;;
	esac
}
expect_log() { grep -qF -- "$2" "$LOG" || t_fail "$1: daemon log lacks '$2': $(cat "$LOG")"; }
# expect_fsck CASE PATH PHRASE: fsck exits 1 and names PATH with PHRASE,
# in its text and in its --json output.
expect_fsck() {
	local what=$1 path=$2 phrase=$3 rc=0
	"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.txt" 2>&1 || rc=$?
	[ "$rc" = 1 ] || t_fail "$what: fsck exit $rc, want 1: $(cat "$T/fsck.txt")"
	grep -F -- "$path" "$T/fsck.txt" | grep -qF -- "$phrase" ||
		t_fail "$what: fsck does not name $path ($phrase): $(cat "$T/fsck.txt")"
	rc=0
	"$CMKFS" fsck --json --service-key "$KEY" "$CIPHER" >"$T/fsck.json" 2>&1 || rc=$?
	[ "$rc" = 1 ] || t_fail "$what: fsck --json exit $rc"
	python3 - "$T/fsck.json" "$path" "$phrase" <<'PY' || t_fail "$what: fsck --json does not name it: $(cat "$T/fsck.json")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
sys.exit(0 if any(o.get("backing") == sys.argv[2] and
                  sys.argv[3] in o.get("problem", "") for o in lines) else 1)
PY
}

FOREIGN="belongs to another directory"
DAMAGED="damaged or forged"

# --- the clean copy reads back; its ids are format-3 records ---
fresh
[ "$(stat -c %s "$S/cmkfs.dirid")" = 53 ] || t_fail "dirid is $(stat -c %s "$S/cmkfs.dirid") bytes, want 53"
[ "$(stat -c %s "$CIPHER/cmkfs.dirid")" = 53 ] || t_fail "root dirid not 53 bytes"
[ "$(head -c 5 "$S/cmkfs.dirid" | od -An -c | tr -d ' ')" = 'CMKD003' ] || t_fail "dirid magic"
mount_fg
grep -q salary "$MNT/secret/payroll.txt" && [ "$(cat "$MNT/secret/deep/x")" = deep ] &&
	ls "$MNT/public/inbox" >/dev/null || t_fail "clean copy unreadable"
umount_fg
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >/dev/null || t_fail "clean volume: fsck"
t_ok "clean volume reads back, fsck clean, ids are 53-byte records"

n=0
# --- /secret moved whole (with its cmkfs.dirid) to /public/inbox ---
fresh
rm -rf "$INBOX"
mv "$S" "$INBOX"
mount_fg
expect_eio "secret moved to inbox" ls "$MNT/public/inbox"
expect_eio "secret moved to inbox" cat "$MNT/public/inbox/payroll.txt"
expect_log "secret moved to inbox" "$INBOX"
expect_log "secret moved to inbox" "$FOREIGN"
cat "$MNT/public/readme.txt" >/dev/null || t_fail "public/readme.txt unreadable"
umount_fg
expect_fsck "secret moved to inbox" "$INBOX" "$FOREIGN"
n=$((n + 1))

# --- /secret copied (cp -a) to /public/inbox: the original still reads ---
fresh
rm -rf "$INBOX"
cp -a "$S" "$INBOX"
mount_fg
expect_eio "secret copied to inbox" ls "$MNT/public/inbox"
expect_eio "secret copied to inbox" cat "$MNT/public/inbox/payroll.txt"
grep -q salary "$MNT/secret/payroll.txt" || t_fail "the original /secret no longer reads"
# Nor can it be renamed (over an empty directory, which stays).
mkdir "$MNT/public/empty"
expect_eio "secret copied to inbox: rename" mv -T "$MNT/public/inbox" "$MNT/public/empty"
[ -d "$MNT/public/empty" ] || t_fail "a refused rename removed its target"
umount_fg
expect_fsck "secret copied to inbox" "$INBOX" "$FOREIGN"
n=$((n + 1))

# --- /secret and /other swap backing names in the root ---
fresh
mv "$S" "$T/swap"; mv "$O" "$S"; mv "$T/swap" "$O"
mount_fg
expect_eio "names swapped" ls "$MNT/other"
expect_eio "names swapped" cat "$MNT/other/payroll.txt"
expect_eio "names swapped" ls "$MNT/secret"
umount_fg
expect_fsck "names swapped" "$O" "$FOREIGN"
n=$((n + 1))

# --- /secret/deep moved to another name under /public ---
fresh
mv "$DEEP" "$P/$(basename "$INBOX")-x"
rm -rf "$INBOX"
mv "$P/$(basename "$INBOX")-x" "$INBOX"
mount_fg
expect_eio "deep moved to inbox" ls "$MNT/public/inbox"
expect_eio "deep moved to inbox" cat "$MNT/public/inbox/x"
umount_fg
expect_fsck "deep moved to inbox" "$INBOX" "$FOREIGN"
n=$((n + 1))

# --- two directories' ids swapped (with their contents' names useless) ---
fresh
cp "$S/cmkfs.dirid" "$T/id"; cp "$O/cmkfs.dirid" "$S/cmkfs.dirid"; cp "$T/id" "$O/cmkfs.dirid"
mount_fg
expect_eio "ids swapped" ls "$MNT/secret"
expect_eio "ids swapped" ls "$MNT/other"
umount_fg
expect_fsck "ids swapped" "$S" "$FOREIGN"
n=$((n + 1))

# --- the root's id copied into /secret ---
fresh
cp "$CIPHER/cmkfs.dirid" "$S/cmkfs.dirid"
mount_fg
expect_eio "root id in a subdirectory" ls "$MNT/secret"
expect_eio "root id in a subdirectory" cat "$MNT/secret/payroll.txt"
expect_log "root id in a subdirectory" "$S"
umount_fg
expect_fsck "root id in a subdirectory" "$S" "$FOREIGN"
n=$((n + 1))

# --- a subdirectory's id copied into the root ---
fresh
cp "$O/cmkfs.dirid" "$CIPHER/cmkfs.dirid"
mount_fg
expect_eio "subdirectory id in the root" ls "$MNT/"
expect_eio "subdirectory id in the root" cat "$MNT/public/readme.txt"
umount_fg
rc=0
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.txt" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -qF "$FOREIGN" "$T/fsck.txt" || t_fail "root id: fsck exit $rc: $(cat "$T/fsck.txt")"
n=$((n + 1))

# --- a flipped byte; an old-style bare id (a downgrade) ---
for off in 0 4 5 20 21 29 37 52; do
	fresh
	python3 - "$S/cmkfs.dirid" "$off" <<'PY'
import os, sys
p, off = sys.argv[1], int(sys.argv[2])
b = bytearray(open(p, "rb").read()); b[off] ^= 0x20
os.chmod(p, 0o600); open(p, "wb").write(b)
PY
	mount_fg
	expect_eio "dirid byte $off" ls "$MNT/secret"
	expect_log "dirid byte $off" "$DAMAGED"
	umount_fg
	expect_fsck "dirid byte $off" "$S" "$DAMAGED"
	n=$((n + 1))
done
fresh
dd if="$S/cmkfs.dirid" of="$T/bare" bs=1 skip=5 count=16 status=none
cp "$T/bare" "$S/cmkfs.dirid"
mount_fg
expect_eio "old-style 16-byte id" ls "$MNT/secret"
umount_fg
expect_fsck "old-style 16-byte id" "$S" "$DAMAGED"
n=$((n + 1))
t_ok "$n splices of directories and ids: EIO below them, logged, named by fsck (exit 1, text and --json)"

# --- fsck --repair sets a foreign directory aside; the rest stays ---
fresh
rm -rf "$INBOX"
cp -a "$S" "$INBOX"
rc=0
"$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/repair.txt" 2>&1 || rc=$?
grep -q QUARANTINED "$T/repair.txt" || t_fail "repair: nothing quarantined: $(cat "$T/repair.txt")"
[ -e "$INBOX" ] && t_fail "repair left the foreign directory in place"
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.txt" 2>&1 || t_fail "after repair: $(cat "$T/fsck.txt")"
mount_fg
grep -q salary "$MNT/secret/payroll.txt" && cat "$MNT/public/readme.txt" >/dev/null ||
	t_fail "after repair: the rest does not read"
umount_fg
t_ok "fsck --repair quarantines a foreign directory, the volume is clean after"

# --- the mount's own directory renames keep the tree readable ---
exchange() { # a b: renameat2(RENAME_EXCHANGE) on the mount
	python3 - "$1" "$2" <<'PY'
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
AT_FDCWD, RENAME_EXCHANGE = -100, 2
if libc.renameat2(AT_FDCWD, sys.argv[1].encode(), AT_FDCWD, sys.argv[2].encode(), RENAME_EXCHANGE) != 0:
    e = ctypes.get_errno(); sys.exit("renameat2: " + os.strerror(e))
PY
}
fresh
mount_fg
mv "$MNT/secret" "$MNT/secret2"			# same parent
mv "$MNT/secret2/deep" "$MNT/public/deep"	# across parents
mkdir "$MNT/empty"
mv -T "$MNT/other" "$MNT/empty"			# over an empty directory
exchange "$MNT/public" "$MNT/secret2"		# both move
mv "$MNT/secret2/inbox" "$MNT/$(printf 'N%.0s' $(seq 200))"	# a long name
ls -R "$MNT" >/dev/null
umount_fg
mount_fg
grep -q salary "$MNT/public/payroll.txt" && [ "$(cat "$MNT/secret2/deep/x")" = deep ] &&
	cat "$MNT/secret2/readme.txt" >/dev/null && [ -d "$MNT/empty" ] &&
	[ -d "$MNT/$(printf 'N%.0s' $(seq 200))" ] || t_fail "renamed tree does not read back: $(ls -R "$MNT")"
umount_fg
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.txt" 2>&1 || t_fail "after renames: $(cat "$T/fsck.txt")"
t_ok "directory renames (same parent, across, over an empty one, exchange, long name): readable, fsck clean"

# --- kill -9 at every traced syscall of a directory rename ---
traced_at_least() { [ "$(wc -l <"$T/trace.log")" -ge "$1" ]; }
mounted() { t_is_mounted "$MNT"; }
wait_until() { local n=$1; shift; for _ in $(seq $((n * 20))); do "$@" && return 0; sleep 0.05; done; return 1; }
points=0 stale=0
for k in $(seq 1 40); do
	fresh
	: >"$T/trace.log"
	"$CL" trace -k 0 -o "$T/count" -l "$T/trace.log" -- \
		"$CMKFS" mount -f --service-key "$KEY" "$CIPHER" "$MNT" 2>>"$T/daemon.log" &
	TPID=$!
	wait_until 60 mounted || t_fail "traced mount did not come up"
	sleep 0.3
	base=$(wc -l <"$T/trace.log")
	kill -TERM "$TPID" 2>/dev/null || true; wait "$TPID" 2>/dev/null || true
	mounted && { fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"; }
	fresh
	: >"$T/trace.log"
	"$CL" trace -k $((base + k)) -o "$T/count" -l "$T/trace.log" -- \
		"$CMKFS" mount -f --service-key "$KEY" "$CIPHER" "$MNT" 2>>"$T/daemon.log" &
	TPID=$!
	wait_until 60 mounted || t_fail "traced mount did not come up"
	wait_until 30 traced_at_least "$base" || true
	ls "$MNT/secret" >/dev/null 2>&1 || true
	mvrc=0
	mv "$MNT/secret" "$MNT/public/moved" 2>/dev/null || mvrc=$?
	died=1
	if [ "$mvrc" = 0 ] && mounted && ls "$MNT" >/dev/null 2>&1; then died=0; fi
	kill -KILL "$TPID" 2>/dev/null || true; wait "$TPID" 2>/dev/null || true
	mounted && { fusermount3 -u -z "$MNT" 2>/dev/null || umount -l "$MNT"; }
	! mounted || t_fail "could not drop the dead mount"
	# fsck may name what the rename left (a temporary, a second place in
	# the id), nothing else.
	rc=0
	"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.txt" 2>&1 || rc=$?
	if grep '^DAMAGE' "$T/fsck.txt" | grep -q -v -e 'temporary file' -e 'second place'; then
		t_fail "kill point $k: fsck names more than the rename's leftovers: $(cat "$T/fsck.txt")"
	fi
	if [ "$rc" != 0 ]; then
		grep -q '^DAMAGE' "$T/fsck.txt" || t_fail "kill point $k: fsck exit $rc: $(cat "$T/fsck.txt")"
		grep -q 'second place' "$T/fsck.txt" && stale=$((stale + 1))
	fi
	t_mount
	if [ -f "$MNT/secret/payroll.txt" ]; then
		got=$(cat "$MNT/secret/payroll.txt")$(cat "$MNT/secret/deep/x")
		[ ! -e "$MNT/public/moved" ] || t_fail "kill point $k: both names"
	else
		got=$(cat "$MNT/public/moved/payroll.txt")$(cat "$MNT/public/moved/deep/x")
	fi
	[ "$got" = "salary: 1000000deep" ] || t_fail "kill point $k: the moved tree does not read back: $got"
	t_umount
	"$CMKFS" fsck --repair --service-key "$KEY" "$CIPHER" >"$T/repair.txt" 2>&1 || true
	! grep -q 'second place' "$T/fsck.txt" || grep -q '^REWRITTEN' "$T/repair.txt" ||
		t_fail "kill point $k: repair did not rewrite the id: $(cat "$T/repair.txt")"
	"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.txt" 2>&1 ||
		t_fail "kill point $k: not clean after --repair: $(cat "$T/fsck.txt")"
	points=$((points + 1))
	[ "$died" = 0 ] && break	# past the rename's last syscall
done
[ "$stale" -gt 0 ] || t_fail "no kill point left a second place in an id (the dance not traced?)"
t_ok "kill -9 at $points syscall points of a directory rename: old or new name reads back, $stale left a second place (named, repaired)"
