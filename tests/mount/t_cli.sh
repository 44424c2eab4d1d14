#!/usr/bin/env bash
# tests/mount/t_cli.sh — the command-line contract: --help everywhere,
# exit 0/1/2, one clear line on stderr, key file permissions, init refusals.
. "$(dirname "$0")/../lib/lib.sh"
t_init

expect() { # want_rc cmd... ; captures stderr in $T/err
	local want=$1 rc=0
	shift
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || t_fail "'$*' exited $rc, want $want: $(cat "$T/err")"
}

expect 0 "$CMKFS" --help
grep -q "Commands:" "$T/out" || t_fail "global --help"
expect 0 "$CMKFS" --version
for c in init mount umount status; do
	expect 0 "$CMKFS" "$c" --help
	grep -q "Usage: cmkfs $c" "$T/out" || t_fail "$c --help"
done
t_ok "--help on every command"

expect 2 "$CMKFS"
expect 2 "$CMKFS" frobnicate
expect 2 "$CMKFS" init
expect 2 "$CMKFS" init --bogus "$CIPHER"
expect 2 "$CMKFS" init --block-size 1000 "$CIPHER"
expect 2 "$CMKFS" init --block-size 4096x "$CIPHER"
expect 2 "$CMKFS" mount "$CIPHER"
expect 2 "$CMKFS" umount
expect 2 "$CMKFS" status
expect 2 "$CMKFS" status --bogus "$CIPHER"
[ "$(wc -l <"$T/err")" = 1 ] || t_fail "usage error is not one line: $(cat "$T/err")"
t_ok "usage errors exit 2 with one line"

t_mkvol
expect 1 "$CMKFS" init --service-key "$KEY" "$CIPHER"
grep -q "already holds a cmkfs volume" "$T/err" || t_fail "init twice: $(cat "$T/err")"
mkdir "$T/full"; touch "$T/full/x"
expect 1 "$CMKFS" init --service-key "$KEY" "$T/full"
grep -q "not empty" "$T/err" || t_fail "init non-empty: $(cat "$T/err")"
expect 1 "$CMKFS" status "$T/full"
grep -q "no cmkfs volume here" "$T/err" || t_fail "status of non-volume: $(cat "$T/err")"
t_ok "init refuses a volume or a non-empty directory; status explains"

# Service key: default from $CMKFS_SERVICE_KEY; refused when group/other may read
CMKFS_SERVICE_KEY=$KEY expect 0 "$CMKFS" mount "$CIPHER" "$MNT"
"$CMKFS" umount "$MNT"
for m in 640 604 644 660 620 602; do	# any group/other bit
	chmod "$m" "$KEY"
	expect 8 "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT"
	grep -q "chmod 600" "$T/err" || t_fail "loose key mode $m: $(cat "$T/err")"
	t_is_mounted "$MNT" && t_fail "mounted with a key of mode $m"
done
chmod 400 "$KEY"
expect 0 "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT"
"$CMKFS" umount "$MNT"
chmod 600 "$KEY"
expect 8 "$CMKFS" mount --service-key "$T/missing.key" "$CIPHER" "$MNT"
grep -q "service key $T/missing.key: not found" "$T/err" || t_fail "missing key: $(cat "$T/err")"
head -c 31 /dev/urandom >"$T/short.key"; chmod 600 "$T/short.key"
expect 8 "$CMKFS" mount --service-key "$T/short.key" "$CIPHER" "$MNT"
t_ok "service key: env default, modes, missing and malformed keys"

# A new key file is 0600 with 32 bytes; key bytes never printed
expect 0 "$CMKFS" init --service-key "$T/new.key" "$T/vol2"
[ "$(stat -c '%a %s' "$T/new.key")" = "600 32" ] || t_fail "new key file: $(stat -c '%a %s' "$T/new.key")"
hex=$(od -An -tx1 "$T/new.key" | tr -d ' \n')
grep -qi "$hex" "$T/out" "$T/err" && t_fail "key bytes printed"
expect 0 "$CMKFS" init --service-key "$T/new.key" --block-size 65536 "$T/vol3"
"$CMKFS" status --json "$T/vol3" | grep -q '"block_size":65536' || t_fail "block size"
t_ok "init: key file 0600/32 bytes, block size recorded, no key bytes printed"

# a second mount on the same mountpoint is refused
"$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT"
expect 11 "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT"
grep -q "already a cmkfs mount" "$T/err" || t_fail "double mount: $(cat "$T/err")"
"$CMKFS" umount "$MNT"
t_ok "a second mount on a mounted mountpoint is refused"

# umount of something that is not a cmkfs mount
expect 1 "$CMKFS" umount "$T"
t_ok "umount of a non-mount exits 1"
