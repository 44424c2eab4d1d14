#!/usr/bin/env bash
# tests/mount/t_upgrade.sh — `cmkfs upgrade` (doc/FORMAT.md "Upgrade"): a
# format-2 volume (the golden format-1 volume rekeyed, then filled through
# a mount: hard links of two and three names, short and long symlinks,
# xattrs on a file and a directory, a long name, a transient zone) made
# format 3 in place:
#   a. everything reads back the same, fsck is clean, the volume is format
#      3 with no upgrade flag, a second run does nothing; afterwards the
#      bindings hold (a file's backing bytes copied over another's: EIO),
#      and two equal symlink targets no longer have equal ciphertext;
#   b. the golden format-1 volume upgrades in one command (rekeyed first);
#   c. kill -9 at every file-changing syscall of the upgrade (crashload,
#      as t_fullcrash): the volume mounts as format 2 (killed before the
#      flag) or refuses to mount with a message naming `cmkfs upgrade`;
#      the rerun completes; fsck is clean; everything reads back.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3 sha256sum getfattr setfattr
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
CL=${TOP_BUILDDIR:-$top_builddir}/tests/mount/crashload
[ -x "$CL" ] || t_fail "crashload not built: $CL"
G=${TOP_SRCDIR:-$top_builddir}/tests/golden/v1
[ -f "$G/MANIFEST" ] || t_fail "golden volume missing: $G"
RANDOM=1616
NOFF=100000
if [ "${CMKFS_SANITIZED:-0}" = 1 ]; then
	NOFF=20
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi

golden() { # a copy of the golden format-1 volume at $CIPHER
	rm -rf --one-file-system "$CIPHER"
	cp -r "$G/cipher" "$CIPHER"
	cp "$G/service.key" "$KEY"
	chmod 600 "$KEY"
}
populate() { # dir
	local d=$1
	mkdir -p "$d/sub/deeper" "$d/relay"
	printf 'hello\n' >"$d/a.txt"
	head -c 70000 /dev/urandom >"$d/sub/big.bin"
	ln "$d/a.txt" "$d/sub/hard"
	printf 'three\n' >"$d/sub/deeper/t"
	ln "$d/sub/deeper/t" "$d/sub/deeper/t2"
	ln "$d/sub/deeper/t" "$d/t3"
	ln -s a.txt "$d/link"
	ln -s a.txt "$d/sub/same"
	ln -s a.txt "$d/sub/same2"
	ln -s "$(printf 'x%.0s' $(seq 1 3000))" "$d/sub/longlink"
	printf 'long name\n' >"$d/sub/$(printf 'n%.0s' $(seq 1 200))"
	printf 'message\n' >"$d/relay/m1"
	setfattr -n user.note -v "a note" "$d/a.txt"
	setfattr -n user.dirnote -v "on a dir" "$d/sub"
}
snapshot() { # dir: names, types, sizes, link counts, contents, targets, xattrs
	(cd "$1" && find . -mindepth 1 -printf '%p %y %s %n\n' | sort &&
		find . -type f -exec sha256sum {} + | sort -k2 &&
		find . -type l -printf '%p -> %l\n' | sort &&
		{ getfattr -R -d -m user. . 2>/dev/null || true; } | grep -v '^#' | sort)
}
fmt() { "$CMKFS" status --json "$CIPHER" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["format_version"], d["upgrade_in_progress"])'; }
upgrade() { "$@" "$CMKFS" upgrade --service-key "$KEY" "$CIPHER"; }
clean_fsck() { # label
	"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck.out" 2>&1 ||
		t_fail "$1: fsck: $(cat "$T/fsck.out")"
}
check_done() { # label
	[ "$(fmt)" = "3 False" ] || t_fail "$1: status says $(fmt), want format 3, no upgrade in progress"
	clean_fsck "$1"
	t_mount
	snapshot "$MNT" >"$T/after"
	t_umount
	diff "$T/before" "$T/after" >"$T/diff" || t_fail "$1: the plaintext changed: $(head -20 "$T/diff")"
}

# The format-2 volume, filled through its mount.
golden
"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >/dev/null || t_fail "rekey of the v1 volume"
t_mount
populate "$MNT"
snapshot "$MNT" >"$T/before"
t_umount
"$CMKFS" transient add --service-key "$KEY" --ttl 2h /relay "$CIPHER" >/dev/null || t_fail "transient add"
[ "$(fmt)" = "2 False" ] || t_fail "not a format-2 volume: $(fmt)"
cp -a "$CIPHER" "$T/pristine"
restore() { rm -rf --one-file-system "$CIPHER"; cp -a "$T/pristine" "$CIPHER"; }

# a0. Refused before anything changes: a volume fsck finds damage in (a
# subdirectory's id gone) is left as it was.
sub=$(find "$CIPHER" -mindepth 2 -maxdepth 2 -name cmkfs.dirid | head -1)
rm "$sub"
rc=0; upgrade >"$T/out" 2>&1 || rc=$?
[ "$rc" = 1 ] && grep -q "fsck --repair" "$T/out" && grep -q "nothing was changed" "$T/out" ||
	t_fail "upgrade of a damaged volume: exit $rc: $(cat "$T/out")"
[ "$(fmt)" = "2 False" ] || t_fail "a refused upgrade changed the config: $(fmt)"
restore
t_ok "a volume with damage is refused before anything changes (fsck first)"

# a.
upgrade >"$T/out" 2>&1 || t_fail "upgrade: $(cat "$T/out")"
grep -q "upgraded from format 2 to 3" "$T/out" || t_fail "upgrade said: $(cat "$T/out")"
check_done "upgrade"
"$CMKFS" transient list --service-key "$KEY" "$CIPHER" 2>&1 | grep -q relay || t_fail "the transient zone was lost"
upgrade >"$T/out" 2>&1 || t_fail "second upgrade: $(cat "$T/out")"
grep -q "already format 3" "$T/out" || t_fail "second upgrade said: $(cat "$T/out")"
# The bindings hold: /sub/big.bin's backing bytes over a.txt's.
cp -a "$CIPHER" "$T/up3"
python3 - "$CIPHER" >"$T/pair" <<'PY'
import os, sys
root = sys.argv[1]
# the root's regular files (not reserved): the biggest is none; pick two
# files of the root and a subdirectory by their backing sizes
files = []
for dp, dn, fn in os.walk(root):
    dn[:] = [d for d in dn if not d.startswith("cmkfs.")]
    for f in fn:
        p = os.path.join(dp, f)
        if f.startswith("cmkfs.") or os.path.islink(p):
            continue
        files.append((os.path.getsize(p), p))
files.sort()
print(files[-1][1])   # the 70000-byte file (sub/big.bin)
print(min(p for s, p in files if os.path.dirname(p) == root and os.stat(p).st_nlink == 2))  # a.txt (2 names)
PY
src=$(sed -n 1p "$T/pair") dst=$(sed -n 2p "$T/pair")
cp "$src" "$T/bigcopy" && cat "$T/bigcopy" >"$dst"
t_mount
if cat "$MNT/a.txt" >/dev/null 2>&1; then t_fail "a file's bytes copied over another's read back after the upgrade"; fi
t_umount
rm -rf --one-file-system "$CIPHER" && cp -a "$T/up3" "$CIPHER"
# No way back to format 2: the pre-upgrade config (same keys, valid MAC)
# put back, every directory id cut back to its bare 16 bytes, two files'
# backing entries swapped: nothing reads (format-3 headers are refused in
# a format-2 volume), where format 2's rules alone would serve the swap.
cp "$T/pristine/cmkfs.conf" "$CIPHER/cmkfs.conf"
python3 - "$CIPHER" <<'PY'
import os, sys
for dp, dn, fn in os.walk(sys.argv[1]):
    dn[:] = [d for d in dn if not d.startswith("cmkfs.")]
    if "cmkfs.dirid" in fn:
        p = os.path.join(dp, "cmkfs.dirid")
        b = open(p, "rb").read()
        open(p, "wb").write(b[5:21])
PY
t_mount
if cat "$MNT/a.txt" >/dev/null 2>&1 || cat "$MNT/sub/big.bin" >/dev/null 2>&1; then
	t_fail "an upgraded volume's files read under its old format-2 config"
fi
t_umount
rm -rf --one-file-system "$CIPHER" && cp -a "$T/up3" "$CIPHER"
# Equal targets, different ciphertext (randomized).
n=$(python3 - "$CIPHER" <<'PY'
import os, sys
t = [os.readlink(os.path.join(dp, f)) for dp, dn, fn in os.walk(sys.argv[1]) for f in fn
     if os.path.islink(os.path.join(dp, f)) and not f.startswith("cmkfs.")]
print(len(t) - len(set(t)))
PY
)
[ "$n" = 0 ] || t_fail "$n symlinks share their encrypted target after the upgrade"
t_ok "format 2 -> 3: contents, hard links, symlinks, xattrs, the zone list kept; fsck clean; a second run does nothing; a spliced file is EIO; the old config put back opens nothing; equal targets differ"

# b. the golden format-1 volume in one command
rm -rf --one-file-system "$CIPHER"
golden
upgrade >"$T/out" 2>&1 || t_fail "upgrade of format 1: $(cat "$T/out")"
[ "$(fmt)" = "3 False" ] || t_fail "golden v1 after upgrade: $(fmt)"
clean_fsck "golden v1 upgraded"
t_mount
while read -r kind val path; do
	p=$MNT/${path#./}
	case $kind in
	F) [ "$(sha256sum <"$p" | cut -d' ' -f1)" = "$val" ] || t_fail "golden v1 upgraded: content of $path" ;;
	L) [ "$(readlink "$p")" = "$val" ] || t_fail "golden v1 upgraded: symlink $path" ;;
	D) [ -d "$p" ] || t_fail "golden v1 upgraded: directory $path" ;;
	esac
done <"$G/MANIFEST"
t_umount
t_ok "the golden format-1 volume: rekeyed and upgraded in one command, reads back as its MANIFEST"

# c. kill -9 at every point
restore
upgrade "$CL" trace -k 0 -o "$T/count" -l "$T/up.log" -- >"$T/out" 2>&1 ||
	t_fail "upgrade under trace: $(cat "$T/out")"
read -r na _ <"$T/count"
check_done "upgrade, traced"
points() { # log n
	python3 - "$1" "$2" "$RANDOM" <<'PY'
import random, sys
log, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(seed)
by = {}
for line in open(log):
    k, name = line.split()
    by.setdefault(name, []).append(int(k))
alls = sorted(k for v in by.values() for k in v)
pts = set(alls) if len(alls) <= n else {rng.choice(v) for v in by.values()}
while len(pts) < min(n, len(alls)):
    pts.add(rng.choice(alls))
print("\n".join(map(str, sorted(pts))))
PY
}
refused=0 mounted_v2=0 early=0 finished=0
for k in $(points "$T/up.log" "$NOFF"); do
	restore
	upgrade "$CL" trace -k "$k" -o "$T/count" -- >"$T/out" 2>&1 || true
	read -r total killed <"$T/count"
	if [ "$killed" = 0 ] && [ "$total" -lt "$k" ]; then
		early=$((early + 1))
		check_done "upgrade run past its end at $k"
		continue
	fi
	[ "$killed" = "$k" ] || t_fail "upgrade: not killed at $k ($(cat "$T/count"))"
	what="upgrade killed at syscall $k ($(awk -v k="$k" '$1 == k { print $2 }' "$T/up.log"))"
	case $(fmt) in
	"3 True")
		rc=0; "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" >"$T/m.out" 2>&1 || rc=$?
		[ "$rc" != 0 ] && ! t_is_mounted "$MNT" || t_fail "$what: a volume mid upgrade mounted"
		grep -q "cmkfs upgrade" "$T/m.out" || t_fail "$what: the refusal does not say what to run: $(cat "$T/m.out")"
		if [ "$refused" = 0 ]; then	# and the other commands, once
			for c in fsck rekey; do
				rc=0; "$CMKFS" "$c" --service-key "$KEY" "$CIPHER" >"$T/c.out" 2>&1 || rc=$?
				[ "$rc" = 1 ] && grep -q "run 'cmkfs upgrade'" "$T/c.out" ||
					t_fail "$what: cmkfs $c on a volume mid upgrade: exit $rc: $(cat "$T/c.out")"
			done
		fi
		refused=$((refused + 1)) ;;
	"2 False") mounted_v2=$((mounted_v2 + 1)) ;;
	"3 False") finished=$((finished + 1)) ;;	# killed in the last config write's sync
	*) t_fail "$what: status $(fmt)" ;;
	esac
	upgrade >"$T/out" 2>&1 || t_fail "$what: the rerun failed: $(cat "$T/out")"
	check_done "$what"
done
t_ok "upgrade killed at each of its $na syscall points ($refused refused to mount until rerun, $mounted_v2 still format 2, $finished done, $early ended early): the rerun completes, fsck clean, everything reads back"
