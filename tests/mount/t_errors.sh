#!/usr/bin/env bash
# tests/mount/t_errors.sh — every bad input an operator meets, table-driven
# (issue #18): each row is a setup, a command line, the exit code
# (include/cmkfs/exitcodes.h) and a regex the stderr must match (it names
# the path, the real fault and the fix). Then: failed mounts are audited
# with the volume id, a failed init leaves nothing behind, `cmk rotate` to
# the version in use is a no-op, and the Key Vault rows (403: 9; 503 or
# connection refused: 10, retry) against the bundled test server.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
export CMKFS_AUDIT_LOG=$T/audit.log
t_mkvol
OTHER=$T/other.cipher OKEY=$T/other.key
"$CMKFS" init --service-key "$OKEY" "$OTHER" >/dev/null

# --- setups: each prepares the files its row names ---
none() { :; }
key31() { head -c 31 /dev/urandom >"$T/k31"; chmod 600 "$T/k31"; }
key33() { head -c 33 /dev/urandom >"$T/k33"; chmod 600 "$T/k33"; }
keydir() { mkdir -p "$T/kdir"; }
key644() { cp "$KEY" "$T/k644"; chmod 644 "$T/k644"; }
keylink() { ln -sfn "$KEY" "$T/klink"; }
emptydir() { mkdir -p "$T/empty"; }
damaged() {
	rm -rf "$T/dmg"; cp -a "$CIPHER" "$T/dmg"
	printf 'XXXX' | dd of="$T/dmg/cmkfs.conf" bs=1 seek=0 conv=notrunc status=none # the magic
}
nonempty() { mkdir -p "$T/full"; touch "$T/full/plain.txt"; }
mounted() { t_is_mounted "$MNT" || t_mount; }

# setup | expected exit | stderr regex | command...
ROWS=(
	"key31|8|service key $T/k31: 31 bytes, a service key is 32 \(cmkfs init creates one|mount --service-key $T/k31 $CIPHER $T/m1"
	"key33|8|service key $T/k33: 33 bytes, a service key is 32|mount --service-key $T/k33 $CIPHER $T/m1"
	"keydir|8|service key $T/kdir: a directory, not a key file|mount --service-key $T/kdir $CIPHER $T/m1"
	"none|8|service key $T/nokey: not found|mount --service-key $T/nokey $CIPHER $T/m1"
	"key644|8|service key $T/k644: mode 0644 .*chmod 600 $T/k644|mount --service-key $T/k644 $CIPHER $T/m1"
	"none|8|service key $OKEY does not unlock $CIPHER: it is not this volume's key|mount --service-key $OKEY $CIPHER $T/m1"
	"keydir|8|service key $T/kdir: a directory|init --service-key $T/kdir $T/newvol"
	"key31|8|service key $T/k31: 31 bytes|init --service-key $T/k31 $T/newvol"
	"key31|8|service key $T/k31: 31 bytes|rekey --service-key $T/k31 $CIPHER"
	"none|8|service key $OKEY does not unlock $CIPHER: it is not this volume's key|rekey --service-key $OKEY $CIPHER"
	"emptydir|12|$T/empty: not a cmkfs volume \(no cmkfs.conf; 'cmkfs init|mount --service-key $KEY $T/empty $T/m1"
	"emptydir|12|$T/empty: not a cmkfs volume|audit $T/empty"
	"damaged|12|$T/dmg/cmkfs.conf: the volume config is malformed or was tampered with \(run 'cmkfs fsck|mount --service-key $KEY $T/dmg $T/m1"
	"nonempty|11|mount point $T/full: not empty .*-o nonempty|mount --service-key $KEY $CIPHER $T/full"
	"none|11|mount point $KEY: not a directory|mount --service-key $KEY $CIPHER $KEY"
	"none|11|mount point $CIPHER: inside the cipher directory|mount --service-key $KEY $CIPHER $CIPHER"
	"none|11|mount point $T/nomnt: No such file or directory \(create an empty directory|mount --service-key $KEY $CIPHER $T/nomnt"
	"none|2|expected CIPHERDIR and MOUNTPOINT|mount $CIPHER"
	"none|2|unknown option '--bogus'|mount --bogus $CIPHER $T/m1"
	"mounted|11|$CIPHER: already mounted on $MNT \(one mount per volume|mount --service-key $KEY $CIPHER $T/m1"
	"mounted|2|$MNT is a cmkfs mount point; give its cipher directory $CIPHER|cmk disable --service-key $KEY $MNT"
	"mounted|2|$MNT is a cmkfs mount point; give its cipher directory $CIPHER|audit $MNT"
	"mounted|2|$MNT is a cmkfs mount point; give its cipher directory $CIPHER|transient list --service-key $KEY $MNT"
)
mkdir -p "$T/m1"
run_row() { # setup want regex cmd...
	local setup=$1 want=$2 re=$3 rc=0
	shift 3
	$setup
	"$CMKFS" "$@" >"$T/out" 2>"$T/err" || rc=$?
	if [ "$rc" = 0 ] && t_is_mounted "$T/m1"; then fusermount3 -u "$T/m1"; fi
	[ "$rc" = "$want" ] || t_fail "'cmkfs $*': exit $rc, want $want: $(cat "$T/err")"
	grep -Eq -- "$re" "$T/err" || t_fail "'cmkfs $*': stderr does not match /$re/: $(cat "$T/err")"
	t_ok "exit $want: cmkfs $* -> $(head -c 150 "$T/err" | head -n1)"
}
for row in "${ROWS[@]}"; do
	IFS='|' read -r setup want re cmd <<<"$row"
	# shellcheck disable=SC2086 # the command line is split on blanks
	run_row "$setup" "$want" "$re" $cmd
done
t_is_mounted "$MNT" && t_umount
[ ! -e "$T/newvol" ] || t_fail "a failed init left $T/newvol behind"

# --- a symlinked key: init and mount alike accept one owned by root ---
keylink
"$CMKFS" init --service-key "$T/klink" "$T/linkvol" >/dev/null || t_fail "init with a symlinked key"
"$CMKFS" mount --service-key "$T/klink" "$T/linkvol" "$T/m1" || t_fail "mount with a symlinked key"
fusermount3 -u "$T/m1"
ln -sfn "$T/nothere" "$T/dangling"
run_row none 8 "service key $T/dangling: a symbolic link to a file that does not exist" init --service-key "$T/dangling" "$T/newvol"
run_row none 8 "service key $T/dangling: a symbolic link to a file that does not exist" mount --service-key "$T/dangling" "$CIPHER" "$T/m1"
[ ! -e "$T/newvol" ] || t_fail "a failed init left $T/newvol behind"
t_ok "symlinked key (root's): init and mount both follow it; dangling: both refuse (8)"

# --- failed mounts are the volume's events ---
id=$("$CMKFS" status --json "$CIPHER" | kv_json 'd["volume_id"]' 2>/dev/null || true)
n=$("$CMKFS" audit "$CIPHER" 2>/dev/null | grep -cE '^[^ ]+ +mount +(refused|error|denied)') || true
[ "$n" -ge 5 ] || t_fail "cmkfs audit $CIPHER shows $n failed mounts: $("$CMKFS" audit "$CIPHER" 2>&1 | tail -5)"
t_ok "cmkfs audit CIPHERDIR shows the $n failed mounts (volume $id)"

# --- Key Vault: 403 denied (9, fatal), 503 and connection refused (10, retry) ---
kv_start
KID=$(kv_key cmk)
CV=$T/cmk.cipher
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CV" >/dev/null || t_fail "init --cmk"
"$CMKFS" mount --service-key "$KEY" "$CV" "$T/m1" || t_fail "mount with the CMK"
fusermount3 -u "$T/m1"
# failed init --cmk: neither the directory nor a new service key stay
kv revoke app cmk >/dev/null
run_row none 9 "$KID: the customer-managed key is not accessible" init --service-key "$T/newkey" --cmk "$KID" "$T/newvol"
[ ! -e "$T/newvol" ] && [ ! -e "$T/newkey" ] || t_fail "a failed init --cmk left $(ls -d "$T/newvol" "$T/newkey" 2>/dev/null)"
t_ok "a failed init --cmk leaves no cipher directory and no new service key"
run_row none 9 "cannot unlock: the customer-managed key is not accessible.*Forbidden" mount --service-key "$KEY" "$CV" "$T/m1"
run_row none 9 "not accessible" rekey --service-key "$KEY" "$CV"
kv grant app cmk get,wrapKey,unwrapKey >/dev/null
# rotate to the version in use: a no-op, exit 0, nothing written
sum=$(md5sum <"$CV/cmkfs.conf")
out=$("$CMKFS" cmk rotate --service-key "$KEY" --key "$KID" "$CV") || t_fail "cmk rotate to the same version"
printf '%s\n' "$out" | grep -q "already protected by $KID; nothing to do" || t_fail "rotate no-op message: $out"
[ "$(md5sum <"$CV/cmkfs.conf")" = "$sum" ] || t_fail "rotate to the same version rewrote cmkfs.conf"
t_ok "cmk rotate to the version in use: '$out', exit 0, config unchanged"
kv fault '/keys/' --status 503 --seconds 600 >/dev/null
s0=$SECONDS
run_row none 10 "Key Vault is unreachable or throttling \(transient; retry later\).*retry later" mount --service-key "$KEY" "$CV" "$T/m1"
t_log "503: refused after $((SECONDS - s0)) s"
kv fault-clear >/dev/null
kill "$KVPID"; wait "$KVPID" 2>/dev/null || true
run_row none 10 "unreachable" mount --service-key "$KEY" "$CV" "$T/m1"
n=$("$CMKFS" audit "$CV" 2>/dev/null | grep -cE ' mount +(denied|error) ') || true
[ "$n" -ge 3 ] || t_fail "Key Vault mount failures not in cmkfs audit $CV ($n)"
t_ok "Key Vault mount failures audited with the volume id ($n)"
