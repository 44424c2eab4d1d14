#!/usr/bin/env bash
# tests/mount/t_handover.sh — the customer's key decides: an attacker who
# holds the service key and old backups of the cipher directory (every
# bot host has the key; any backup has cmkfs.conf) gets nothing the volume
# holds after `cmk enable` or `rekey --full` (doc/SECURITY.md, "The
# service key and old backups"). Rows, each on its own volume or data:
#  a  the four steps of the issue: init, write, keep the config; cmk
#     enable offline; write new.txt and user.note; revoke in Key Vault
#     (lock, remount refused); the old config with the service key alone
#     under env -i lists no name and reads no byte, xattr or link target;
#  b  the same through an independent decoder (tests/vectors/adversary.py,
#     no cmkfs code): old KEKs and name key open none of today's names,
#     side files, headers, blocks (under the old DEKs of the same file id),
#     xattrs, link targets or zone list — while they open all of the backup;
#  c  old headers copied onto today's files (by file id) read EIO with the
#     current keys; the full replay (old config, old names, old headers,
#     today's blocks) reads EIO under the service key alone; the backup
#     itself still reads as it was (the documented limit);
#  d  a-c for an enable on a live mount, with a writer appending through
#     it (its data checked);
#  e  rekey --full: old headers and the full replay read EIO; the volume
#     reads everything, text appended after the rekey included;
#  f  cmk rotate (new version, other key) and cmk disable leave every
#     backing name and every byte after each header alone (O(1)); an old
#     config after a rotation needs the old key version; after disable the
#     service key reads everything; a later enable renews names and blocks.
#  g  the documented limit of plain rekey: it keeps the data keys and the
#     name key, so old headers and the old config still read names and
#     contents, text appended after the rekey included.
# A failed check is reported as "FAIL: row X: ..." and the test goes on
# with the next row; the test fails if any row did.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need getfattr setfattr sha256sum timeout
t_init
kv_start
ADV="$PY ${TOP_SRCDIR:-$top_builddir}/tests/vectors/adversary.py"
INTERVAL=1
GRACE=6
if [ "${CMKFS_SANITIZED:-0}" = 1 ]; then BIG=$((1024 * 1024)); else BIG=$((6 * 1024 * 1024)); fi
P=hx9q						# every plaintext name starts with it
TOK=$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')	# in every content, xattr value, target
LONG=$P-long-$(printf 'L%.0s' $(seq 200))		# 209 bytes: a long-name side file
LONGTGT=$P-t/MARK-$TOK/$(printf 'T%.0s' $(seq 3400))	# > 3007 bytes: a cmkfs.links side file
FAILS=$T/failures
: >"$FAILS"
ROW=setup

bad() {
	local msg
	msg=$(printf '%s' "$*" | tr '\n' ' ')
	msg=${msg//$LONG/<long name>}
	msg=${msg//$T\//}
	printf 'FAIL: row %s: %s\n' "$ROW" "$msg" >&2
	printf 'row %s: %s\n' "$ROW" "$msg" >>"$FAILS"
}
die() { t_fail "row $ROW: $*"; }

mnt() { "$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace $GRACE "$@"; }
# the attacker: service key, no Azure variables, nothing else
amnt() {
	env -i PATH="$PATH" ASAN_OPTIONS="$ASAN_OPTIONS" UBSAN_OPTIONS="$UBSAN_OPTIONS" \
		CMKFS_AUDIT_LOG="$T/attacker-audit.log" "$CMKFS" mount --service-key "$KEY" "$@"
}
umnt() { "$CMKFS" umount "$1" || die "umount $1"; ! t_is_mounted "$1" || die "$1 still mounted"; }
gen() { "$CMKFS" status --json "$1" | kv_json 'd["kek_generation"]'; }

# plainsnap DIR: what the volume holds, as an application sees it
plainsnap() {
	python3 - "$1" <<'PY'
import hashlib, os, sys
root, out = sys.argv[1], []
for dp, dns, fns in os.walk(root):
    for n in dns + fns:
        p = os.path.join(dp, n)
        rel = os.path.relpath(p, root)
        if os.path.islink(p):
            out.append("l %s -> %s" % (rel, os.readlink(p)))
            continue
        if os.path.isdir(p):
            out.append("d %s" % rel)
        else:
            with open(p, "rb") as f:
                h = hashlib.sha256(f.read()).hexdigest()
            out.append("f %s n=%d %s" % (rel, os.lstat(p).st_nlink, h))
        for a in os.listxattr(p):
            if a.startswith("user."):
                out.append("x %s %s=%s" % (rel, a, os.getxattr(p, a).decode()))
print("\n".join(sorted(out)))
PY
}

# populate MNT CIPHER: the pre-enable data, one of each kind of object
populate() {
	local m=$1
	mkdir "$m/$P-sub" "$m/$P-sub/$P-deep" "$m/$P-relay"
	printf 'MARK-%s alpha: the first secret\n' "$TOK" >"$m/$P-alpha.txt"
	printf 'MARK-%s beta\n' "$TOK" >"$m/$P-sub/$P-beta.txt"
	{ printf 'MARK-%s gamma\n' "$TOK"; head -c 100000 /dev/urandom; } >"$m/$P-sub/$P-deep/$P-gamma.bin"
	{ printf 'MARK-%s big\n' "$TOK"; head -c "$BIG" /dev/urandom; printf 'MARK-%s big end\n' "$TOK"; } >"$m/$P-big.bin"
	printf 'MARK-%s long name\n' "$TOK" >"$m/$LONG"
	printf 'MARK-%s relay\n' "$TOK" >"$m/$P-relay/$P-r.txt"
	: >"$m/$P-empty"
	ln -s "$P-target/MARK-$TOK" "$m/$P-link"
	ln -s "$LONGTGT" "$m/$P-longlink"
	ln "$m/$P-alpha.txt" "$m/$P-sub/$P-hard"
	setfattr -n "user.$P-x" -v "XATTR-MARK-$TOK" "$m/$P-alpha.txt"
	setfattr -n "user.$P-d" -v "XATTR-MARK-$TOK-dir" "$m/$P-sub"
	"$CMKFS" transient add --service-key "$KEY" --ttl 24h "/$P-relay" "$2" >/dev/null ||
		die "transient add"
	[ -f "$2/cmkfs.transient" ] || die "no cmkfs.transient after transient add"
}

# check_reads MNT EXPECTED WHAT: the mount reads exactly EXPECTED
check_reads() {
	plainsnap "$1" >"$D/snap.now" 2>"$D/snap.err" ||
		{ bad "$3: reading the volume failed: $(tail -n 2 "$D/snap.err")"; return; }
	diff "$2" "$D/snap.now" >"$D/snap.diff" ||
		bad "$3: the volume does not read as written: $(head -c 600 "$D/snap.diff")"
}

# reveal MNT SNAP WHAT: nothing of the plaintext in SNAP comes out of MNT
reveal() {
	local m=$1 out=$D/reveal
	sed -E 's/^[a-z] ([^ ]*).*/\1/' "$2" | sed 's#.*/##' | sort -u >"$out.names"
	{ timeout 60 find "$m" 2>/dev/null || true; } | sed "s#^$m##" >"$out.find"
	{
		timeout 60 find "$m" -type f -exec cat {} + 2>/dev/null
		sed -n 's/^f \([^ ]*\) .*/\1/p' "$2" | while read -r f; do
			timeout 10 cat "$m/$f" 2>/dev/null
		done
	} >"$out.data" || true
	{
		timeout 60 getfattr --absolute-names -R -d -m - "$m" 2>/dev/null
		sed -E -n 's/^[fd] ([^ ]*).*/\1/p' "$2" | while read -r f; do
			timeout 10 getfattr --absolute-names -d -m - "$m/$f" 2>/dev/null
		done
	} >"$out.xattr" || true
	{
		timeout 60 find "$m" -type l -exec readlink {} + 2>/dev/null
		sed -n 's/^l \([^ ]*\) .*/\1/p' "$2" | while read -r f; do
			timeout 10 readlink "$m/$f" 2>/dev/null
		done
	} >"$out.links" || true
	local names
	names=$(sed '1d; s#.*/##' "$out.find" | grep -Fx -f "$out.names" | head -n 5 | tr '\n' ' ' || true)
	[ -z "$names" ] || bad "$3: lists plaintext names: $names"
	grep -q "$P" "$out.find" && bad "$3: a plaintext name shows in the listing: $(grep "$P" "$out.find" | head -n 3)"
	grep -q "new: written after" "$out.data" && bad "$3: new.txt, written after the enable, reads"
	[ ! -s "$out.data" ] || bad "$3: returned $(wc -c <"$out.data") bytes of file data ($(grep -c "MARK-$TOK" "$out.data" || true) marker lines: $(grep -a -o "MARK-$TOK [a-z: ]*" "$out.data" | head -n 3 | tr '\n' ';'))"
	grep -q "$TOK" "$out.xattr" && bad "$3: xattr values readable: $(grep "$TOK" "$out.xattr" | head -n 2 | tr '\n' ' ')"
	grep -q "$P" "$out.xattr" && bad "$3: xattr names or plaintext paths readable: $(grep "$P" "$out.xattr" | head -n 2 | tr '\n' ' ')"
	[ ! -s "$out.links" ] || bad "$3: symlink targets readable: $(head -c 80 "$out.links")"
}

# expect_eio_all MNT LIST WHAT: every volume path in LIST reads EIO, no byte
expect_eio_all() {
	local m=$1 f n=0 leaks="" other=""
	while read -r f; do
		n=$((n + 1))
		if timeout 10 cat "$m/$f" >"$D/eio.out" 2>"$D/eio.err" || [ -s "$D/eio.out" ]; then
			leaks+=" $f($(wc -c <"$D/eio.out")B)"
		elif ! grep -q "Input/output error" "$D/eio.err"; then
			other+=" $f: $(head -c 80 "$D/eio.err")"
		fi
	done <"$2"
	[ "$n" -gt 0 ] || die "$3: no file to read"
	[ -z "$leaks" ] || bad "$3: read data instead of EIO:$leaks"
	[ -z "$other" ] || bad "$3: failed, but not with EIO:$other"
	[ -n "$leaks$other" ] || t_log "row $ROW: $3: $n files, each EIO"
}

# handover V offline|online: rows a (or d): steps 1-4 of the issue on
# volume $T/V with the Key Vault key cmkV
handover() {
	local V=$1 how=$2 m kid
	D=$T/$V CIPHER=$T/$V/cipher m=$T/$V/mnt
	mkdir -p "$CIPHER" "$m"
	kid=$(kv_key "cmk$V" --size 2048)
	"$CMKFS" init --service-key "$KEY" "$CIPHER" >/dev/null || die "init"
	mnt "$CIPHER" "$m" || die "mount"
	populate "$m" "$CIPHER"
	[ "$how" = online ] && seq -f "log line %06g MARK-$TOK" 0 99 >"$m/$P-log.txt"
	plainsnap "$m" >"$D/snap0"
	umnt "$m"
	cp -a "$CIPHER" "$D/backup"
	cp "$CIPHER/cmkfs.conf" "$D/conf.old"
	local g0
	g0=$(gen "$CIPHER")
	if [ "$how" = offline ]; then
		"$CMKFS" cmk enable --service-key "$KEY" --key "$kid" "$CIPHER" >"$D/enable.out" 2>&1 ||
			die "cmk enable (offline) failed: $(tail -n 3 "$D/enable.out")"
		mnt "$CIPHER" "$m" || die "mount after cmk enable"
	else
		mnt "$CIPHER" "$m" || die "mount"
		writer "$m/$P-log.txt" 100 &
		echo $! >"$T/writer.pid"
		wait_for 30 lines_at_least "$m/$P-log.txt" 200 || die "the writer does not write"
		local before at
		before=$(wc -l <"$m/$P-log.txt")
		"$CMKFS" cmk enable --service-key "$KEY" --key "$kid" "$CIPHER" >"$D/enable.out" 2>&1 ||
			{ touch "$D/stop"; wait "$(cat "$T/writer.pid")" || true; die "cmk enable (live) failed: $(tail -n 3 "$D/enable.out")"; }
		at=$(wc -l <"$m/$P-log.txt")
		wait_for 30 lines_at_least "$m/$P-log.txt" $((at + 100)) || bad "the writer stalled after the enable"
		touch "$D/stop"
		wait "$(cat "$T/writer.pid")" || bad "the writer failed: $(cat "$D/writer.err" 2>/dev/null)"
		rm -f "$T/writer.pid"
		local n
		n=$(cat "$D/writer.count")
		seq -f "log line %06g MARK-$TOK" 0 $((n - 1)) >"$D/log.ref"
		cmp "$m/$P-log.txt" "$D/log.ref" ||
			bad "the writer's file differs from its $n lines after the live enable (first difference: $(cmp "$m/$P-log.txt" "$D/log.ref" 2>&1 | head -n 1))"
		t_log "row $ROW: live enable with a writer: $n lines, $((at - before)) appended while cmk enable ran"
	fi
	[ "$(gen "$CIPHER")" = $((g0 + 1)) ] || bad "KEK generation $(gen "$CIPHER") after the enable, want $((g0 + 1))"
	printf 'MARK-%s new: written after the enable\n' "$TOK" >"$m/new.txt"
	setfattr -n user.note -v "NOTE-MARK-$TOK" "$m/new.txt"
	plainsnap "$m" >"$D/snap1"
	# everything from before, plus new.txt (and the writer's longer file)
	diff <(grep -v -e new.txt -e "$P-log.txt" "$D/snap0") <(grep -v -e new.txt -e "$P-log.txt" "$D/snap1") >"$D/d01" ||
		bad "after the enable the data differs from before: $(head -c 600 "$D/d01")"
	umnt "$m"
	mnt "$CIPHER" "$m" || die "remount with Key Vault access"
	check_reads "$m" "$D/snap1" "with the right keys"
	[ "$(cat "$m/new.txt")" = "MARK-$TOK new: written after the enable" ] || bad "new.txt"
	[ "$(getfattr --absolute-names --only-values -n user.note "$m/new.txt")" = "NOTE-MARK-$TOK" ] || bad "user.note"
	[ "$(readlink "$m/$P-longlink")" = "$LONGTGT" ] || bad "long symlink target"
	[ "$(stat -c %h "$m/$P-alpha.txt")" = 2 ] && [ "$(stat -c %i "$m/$P-alpha.txt")" = "$(stat -c %i "$m/$P-sub/$P-hard")" ] ||
		bad "the hard link is no longer one inode with two links"
	[ -f "$m/$LONG" ] || bad "the long name is gone"
	# step 3: the customer revokes the app's access
	kv revoke app "cmk$V" >/dev/null
	wait_for $((INTERVAL + 25)) revoked "$m/$P-alpha.txt" || bad "the mount did not lock after the revocation"
	umnt "$m"
	if mnt "$CIPHER" "$m" 2>"$D/err"; then
		umnt "$m"
		bad "a remount was accepted with access revoked"
	else
		grep -qE "403|Forbidden" "$D/err" || bad "remount refused, but not with 403: $(cat "$D/err")"
	fi
	# step 4: the old config back, the service key alone
	cp "$CIPHER/cmkfs.conf" "$D/conf.cur"
	cp "$D/conf.old" "$CIPHER/cmkfs.conf"
	if amnt "$CIPHER" "$m" 2>"$D/err"; then
		reveal "$m" "$D/snap1" "old config + service key (env -i)"
		umnt "$m"
	else
		t_log "row $ROW: old config + service key: mount refused: $(head -c 200 "$D/err")"
	fi
	cp "$D/conf.cur" "$CIPHER/cmkfs.conf"
	# files the attacker could replay: those of the backup, as volume paths
	sed -n 's/^f \([^ ]*\) .*/\1/p' "$D/snap0" >"$D/old.files"
}

lines_at_least() { [ "$(wc -l <"$1")" -ge "$2" ]; }
writer() { # FILE FIRST: append numbered lines until $D/stop exists
	local i=$2
	exec 9>>"$1"
	while [ ! -e "$D/stop" ]; do
		printf 'log line %06d MARK-%s\n' "$i" "$TOK" >&9 || { echo "write $i failed" >"$D/writer.err"; exit 1; }
		i=$((i + 1))
	done
	exec 9>&-
	echo "$i" >"$D/writer.count"
}

# probe V: row b on volume V (after handover or rekey --full)
probe() {
	local rc=0
	$ADV probe "$D/conf.old" "$KEY" "$D/backup" "$CIPHER" >"$D/probe.out" 2>&1 || rc=$?
	[ $rc != 2 ] || die "the decoder's control failed (a test bug): $(cat "$D/probe.out")"
	sed 's/^/#   /' "$D/probe.out" | grep -v LEAK || true
	[ $rc = 0 ] || bad "the service key and the old config open: $(grep '^probe' "$D/probe.out" | awk '$NF !~ /^0\// && !/matched/' | sed 's/^probe //' | tr -s ' ' | tr '\n' ';') e.g. $(grep -m 3 LEAK "$D/probe.out" | sed "s#$T/##g" | tr '\n' ' ')"
	local k
	k=$(awk '$1 == "ids" { print $3 " " $7 }' "$D/probe.out")
	[ "${k% *}" = "${k#* }" ] ||
		bad "file ids not kept ($k of the backup's files found by id): the block check proves nothing for the others"
}

# replay V MODE: row c on volume V; MODE cmk (current config needs Key
# Vault) or local
replay() {
	local m=$D/mntc mode=$1
	[ -s "$D/old.files" ] || die "the volume of this row was not made (an earlier step stopped)"
	mkdir -p "$m"
	# old headers, by file id, onto today's files; current config and keys
	rm -rf "$D/c1"
	cp -a "$CIPHER" "$D/c1"
	$ADV oldheaders "$D/backup" "$D/c1" >"$D/oh.out" || die "oldheaders"
	t_log "row $ROW: old headers copied onto today's files: $(cat "$D/oh.out")"
	mnt "$D/c1" "$m" 2>"$D/err" || die "mount with the current config ($mode) and old headers refused: $(cat "$D/err")"
	expect_eio_all "$m" "$D/old.files" "old headers + current config"
	if [ -f "$m/new.txt" ]; then
		grep -q "written after" "$m/new.txt" || bad "new.txt (its own header) unreadable"
	fi
	umnt "$m"
	# the full replay: old config, old names, old headers, today's blocks
	rm -rf "$D/c2"
	cp -a "$D/backup" "$D/c2"
	$ADV replay "$D/conf.old" "$KEY" "$D/c2" "$CIPHER" >"$D/replay.map" || die "replay"
	cut -f1 "$D/replay.map" | sed 's#^/##' | sort -u >"$D/replay.files"
	amnt "$D/c2" "$m" 2>"$D/err" || die "the replayed volume does not mount with the old config: $(cat "$D/err")"
	[ -f "$m/$P-alpha.txt" ] && [ -f "$m/$LONG" ] || bad "control: the replayed volume does not list its old names"
	expect_eio_all "$m" "$D/replay.files" "old config + old names + old headers (env -i)"
	reveal_data=$(timeout 60 find "$m" -type f -exec cat {} + 2>/dev/null | grep -a -c "$TOK" || true)
	[ "$reveal_data" = 0 ] || bad "the full replay reads $reveal_data marker lines"
	umnt "$m"
	# the documented limit: the old backup itself reads as it was
	rm -rf "$D/c3"
	cp -a "$D/backup" "$D/c3"
	amnt "$D/c3" "$m" 2>"$D/err" || die "the old backup does not mount with the service key: $(cat "$D/err")"
	check_reads "$m" "$D/snap0" "control: the old backup with the service key"
	umnt "$m"
}

# run_row NAME FUNCTION: a row in a subshell; its failures are recorded and
# the next row runs
run_row() {
	local rc mp
	ROW=$1
	shift
	trap - ERR
	set +e
	(
		set -e
		trap '_t_err "$LINENO" "$?" "$BASH_COMMAND"' ERR
		"$@"
	)
	rc=$?
	set -e
	trap '_t_err "$LINENO" "$?" "$BASH_COMMAND"' ERR
	if [ -f "$T/writer.pid" ]; then
		kill "$(cat "$T/writer.pid")" 2>/dev/null || true
		rm -f "$T/writer.pid"
	fi
	while read -r mp; do
		[ -n "$mp" ] || continue
		"$CMKFS" umount "$mp" 2>/dev/null || fusermount3 -u -z "$mp" 2>/dev/null || true
	done < <(t_mounts_under "$T")
	if [ $rc != 0 ]; then
		echo "row $ROW: stopped early" >>"$FAILS"
		t_log "row $ROW: FAILED, stopped early"
	elif grep -q "^row $ROW:" "$FAILS"; then
		t_log "row $ROW: FAILED"
	else
		t_ok "row $ROW"
	fi
}

row_a() { handover a offline; }
row_b() {
	D=$T/a CIPHER=$T/a/cipher
	[ -s "$D/old.files" ] || die "the volume of row a was not made"
	probe
}
row_c() {
	D=$T/a CIPHER=$T/a/cipher
	kv grant app cmka get,wrapKey,unwrapKey >/dev/null
	replay cmk
}
row_d() {
	handover d online
	ROW=d/b
	probe
	ROW=d/c
	kv grant app cmkd get,wrapKey,unwrapKey >/dev/null
	replay cmk
}

row_e() {
	local m=$T/e/mnt g0
	D=$T/e CIPHER=$T/e/cipher
	mkdir -p "$CIPHER" "$m"
	"$CMKFS" init --service-key "$KEY" "$CIPHER" >/dev/null || die "init"
	mnt "$CIPHER" "$m" || die "mount"
	populate "$m" "$CIPHER"
	plainsnap "$m" >"$D/snap0"
	umnt "$m"
	cp -a "$CIPHER" "$D/backup"
	cp "$CIPHER/cmkfs.conf" "$D/conf.old"
	g0=$(gen "$CIPHER")
	"$CMKFS" rekey --full --service-key "$KEY" "$CIPHER" >"$D/rekey.out" 2>&1 ||
		die "cmkfs rekey --full failed: $(tail -n 3 "$D/rekey.out")"
	[ "$(gen "$CIPHER")" = $((g0 + 1)) ] || bad "KEK generation $(gen "$CIPHER") after rekey --full, want $((g0 + 1))"
	mnt "$CIPHER" "$m" || die "mount after rekey --full"
	check_reads "$m" "$D/snap0" "after rekey --full"
	for f in "$P-alpha.txt" "$P-big.bin" "$P-sub/$P-beta.txt"; do
		printf 'MARK-%s appended after the rekey\n' "$TOK" >>"$m/$f"
	done
	plainsnap "$m" >"$D/snap1"
	umnt "$m"
	mnt "$CIPHER" "$m" || die "remount"
	check_reads "$m" "$D/snap1" "the current keys after rekey --full and appends"
	grep -q "appended after the rekey" "$m/$P-sub/$P-hard" || bad "the hard link does not show the appended text"
	umnt "$m"
	sed -n 's/^f \([^ ]*\) .*/\1/p' "$D/snap0" >"$D/old.files"
	ROW=e/b
	probe
	ROW=e/c
	replay local
}

# backing V: the backing listing row f compares
backing() { $ADV backing "$CIPHER" >"$1" || die "backing listing"; }
row_f() {
	local m=$T/f/mnt k1 k2 k3 v1
	D=$T/f CIPHER=$T/f/cipher
	mkdir -p "$CIPHER" "$m"
	k1=$(kv_key cmkf --size 2048)
	k3=$(kv_key cmkf3 --size 2048)
	v1=${k1##*/}
	"$CMKFS" init --service-key "$KEY" "$CIPHER" >/dev/null || die "init"
	mnt "$CIPHER" "$m" || die "mount"
	BIG=65536 populate "$m" "$CIPHER"
	plainsnap "$m" >"$D/snap0"
	umnt "$m"
	"$CMKFS" cmk enable --service-key "$KEY" --key "$k1" "$CIPHER" >/dev/null || die "enable"
	cp "$CIPHER/cmkfs.conf" "$D/conf.v1"
	# rotate: to a new version, then to another key; nothing but the config changes
	k2=$(kv new-version cmkf | kv_json 'd["kid"]')
	backing "$D/b0"
	"$CMKFS" cmk rotate --service-key "$KEY" --key "$k2" "$CIPHER" >/dev/null || die "rotate to a new version"
	backing "$D/b1"
	diff "$D/b0" "$D/b1" >"$D/d" || bad "cmk rotate (new version) changed the backing tree: $(head -c 400 "$D/d")"
	"$CMKFS" cmk rotate --service-key "$KEY" --key "$k3" "$CIPHER" >/dev/null || die "rotate to another key"
	backing "$D/b2"
	diff "$D/b1" "$D/b2" >"$D/d" || bad "cmk rotate (other key) changed the backing tree: $(head -c 400 "$D/d")"
	"$CMKFS" cmk rotate --service-key "$KEY" --key "$k2" "$CIPHER" >/dev/null || die "rotate back"
	mnt "$CIPHER" "$m" || die "mount after the rotations"
	check_reads "$m" "$D/snap0" "after cmk rotate"
	umnt "$m"
	# an old config after a rotation is protected by the old version: once
	# the customer disables it, the old config opens nothing
	kv set cmkf "$v1" --enabled false >/dev/null
	cp "$CIPHER/cmkfs.conf" "$D/conf.cur"
	cp "$D/conf.v1" "$CIPHER/cmkfs.conf"
	if mnt "$CIPHER" "$m" 2>/dev/null; then umnt "$m"; bad "the pre-rotation config mounted with its key version disabled"; fi
	if amnt "$CIPHER" "$m" 2>/dev/null; then umnt "$m"; bad "the pre-rotation config mounted with the service key alone"; fi
	cp "$D/conf.cur" "$CIPHER/cmkfs.conf"
	# disable: nothing but the config changes; the service key reads everything
	backing "$D/b3"
	"$CMKFS" cmk disable --service-key "$KEY" "$CIPHER" >/dev/null || die "disable"
	backing "$D/b4"
	diff "$D/b3" "$D/b4" >"$D/d" || bad "cmk disable changed the backing tree: $(head -c 400 "$D/d")"
	amnt "$CIPHER" "$m" || die "service key alone after cmk disable"
	check_reads "$m" "$D/snap0" "the service key alone after cmk disable"
	umnt "$m"
	# a later enable hands over again: new names, every block re-sealed
	"$CMKFS" cmk enable --service-key "$KEY" --key "$k2" "$CIPHER" >/dev/null || die "enable again"
	backing "$D/b5"
	names() { awk '$1 == "name" && $2 !~ /^cmkfs\.(links|hl)\// { n = split($2, a, "/"); print a[n] }' "$1" |
		grep -v -E '^cmkfs\.(conf|dirid|transient|links|hl|journal|quarantine)$' | sort -u; }
	local same ntails nsame nb
	same=$(comm -12 <(names "$D/b4") <(names "$D/b5") | wc -l)
	[ "$same" = 0 ] || bad "a second cmk enable kept $same of $(names "$D/b4" | wc -l) backing names"
	join <(awk '$1 == "tail" { print $2, $3 }' "$D/b4" | sort) \
		<(awk '$1 == "tail" { print $2, $3 }' "$D/b5" | sort) >"$D/tails"
	ntails=$(wc -l <"$D/tails")
	nb=$(awk '$1 == "tail"' "$D/b4" | wc -l)
	nsame=$(awk '$2 == $3' "$D/tails" | wc -l)
	[ "$ntails" = "$nb" ] || bad "file ids not kept: $ntails of $nb files found by id after the second enable"
	[ "$nsame" = 0 ] || bad "a second cmk enable left $nsame of $ntails files' blocks as they were"
	mnt "$CIPHER" "$m" || die "mount after the second enable"
	check_reads "$m" "$D/snap0" "after the second enable"
	umnt "$m"
}

row_g() {
	local m=$T/g/mnt rc=0
	D=$T/g CIPHER=$T/g/cipher
	mkdir -p "$CIPHER" "$m"
	"$CMKFS" init --service-key "$KEY" "$CIPHER" >/dev/null || die "init"
	mnt "$CIPHER" "$m" || die "mount"
	BIG=65536 populate "$m" "$CIPHER"
	umnt "$m"
	cp -a "$CIPHER" "$D/backup"
	cp "$CIPHER/cmkfs.conf" "$D/conf.old"
	"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >/dev/null || die "plain rekey"
	mnt "$CIPHER" "$m" || die "mount after rekey"
	printf 'MARK-%s appended after the rekey\n' "$TOK" >>"$m/$P-alpha.txt"
	umnt "$m"
	$ADV probe "$D/conf.old" "$KEY" "$D/backup" "$CIPHER" >"$D/probe.out" 2>&1 || rc=$?
	[ $rc != 2 ] || die "the decoder's control failed (a test bug): $(cat "$D/probe.out")"
	grep -q '^LEAK name' "$D/probe.out" && grep -q '^LEAK block (plaintext)' "$D/probe.out" ||
		bad "plain rekey renewed names or data keys: doc/SECURITY.md and doc/KEYS.md say it does not (update them)"
	cp -a "$D/backup" "$D/c2"
	$ADV replay "$D/conf.old" "$KEY" "$D/c2" "$CIPHER" >/dev/null || die "replay"
	mkdir -p "$D/mntc"
	amnt "$D/c2" "$D/mntc" || die "the replayed volume does not mount"
	grep -q "appended after the rekey" "$D/mntc/$P-alpha.txt" 2>/dev/null ||
		bad "old config + old headers no longer read text appended after a plain rekey: update doc/SECURITY.md and doc/KEYS.md"
	umnt "$D/mntc"
}

run_row a row_a
run_row b row_b
run_row c row_c
run_row d row_d
run_row e row_e
run_row f row_f
run_row g row_g
ROW=end
if [ -s "$FAILS" ]; then
	printf 'FAIL: %s\n' "$(cut -d: -f1 "$FAILS" | sort -u | tr '\n' ' ')" >&2
	sed 's/^/# /' "$FAILS"
	exit 1
fi
t_ok "the service key and old backups open nothing after cmk enable and rekey --full"
