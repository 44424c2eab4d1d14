#!/usr/bin/env bash
# tests/mount/t_keymem.sh — lock means wipe (issue #3): a core image of the
# daemon (gdb's gcore) taken after `cmkfs lock` and after a revocation
# holds none of KEK_S, KEK_C, the name key, any file's DEKs or any bearer
# token the test server issued, searched as the exact bytes (and their
# base64 / base64url forms) derived independently (tests/vectors/volkeys.py, with
# KEK_C unwrapped through Key Vault as any authorised client could). A
# positive control first shows the search finds DEKs of open files in a
# core taken while unlocked. Key schedules and keys live in locked,
# dump-excluded memory (t_keyscan.sh): these cores are taken with
# `gcore -a`, which dumps those mappings too, so "wiped" means wiped, not
# only left out of the core; one default core (what the kernel would
# write) shows that while unlocked none of it reaches a core at all.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need gcore
# ASan maps terabytes of shadow memory: a core image is impractical there,
# and secmem keeps MADV_DONTDUMP off under ASan. The release run checks it.
[ "${CMKFS_SANITIZED:-0}" = 1 ] && t_skip "core images of an ASan daemon are impractical"
t_init
kv_start
V=${TOP_SRCDIR:-$top_builddir}/tests/vectors/volkeys.py
KID=$(kv_key cmk --size 2048)
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null
"$CMKFS" mount --service-key "$KEY" --key-check-interval 600 "$CIPHER" "$MNT"
for i in 1 2 3; do head -c 50000 /dev/urandom >"$MNT/f$i"; cat "$MNT/f$i" >/dev/null; done
pid=$("$CMKFS" status --json "$MNT" | kv_json 'd["pid"]')

# KEK_C through Key Vault's unwrapkey, as an authorised client
KEKC=$(kv_unwrap_kekc "$CIPHER/cmkfs.conf" "$KID") || t_fail "unwrapping KEK_C through Key Vault"
files=$(find "$CIPHER" -maxdepth 1 -type f ! -name 'cmkfs.*')
# shellcheck disable=SC2086
$PY "$V" "$CIPHER" "$KEY" --kek-c "$KEKC" $files >"$T/keys" || t_fail "volkeys"
[ "$(grep -c '^DEK' "$T/keys")" = 6 ] || t_fail "expected 6 DEKs: $(cat "$T/keys")"

# core image of the daemon: gdb must hold no descriptor into the mount
# (it stops the daemon; a flush from a closing fd would deadlock), so the
# files this shell keeps open below are closed for it. core NAME [-a]
core() { (cd / && gcore ${2:+"$2"} -o "$T/core.$1" "$pid" </dev/null >/dev/null 2>&1 3<&- 4<&- 5<&-); ls "$T/core.$1".* 2>/dev/null | head -n1; }
search() { # core -> prints the labels of keys found
	python3 - "$1" "$T/keys" <<'PY'
import base64, sys
core = open(sys.argv[1], "rb").read()
for line in open(sys.argv[2]):
    label, hexkey = line.split()[:2]
    k = bytes.fromhex(hexkey)
    # raw, and as Key Vault carries keys: base64 / base64url (the last
    # character dropped, it also depends on what follows)
    forms = [k] + ([base64.b64encode(k).rstrip(b"=")[:-1],
                    base64.urlsafe_b64encode(k).rstrip(b"=")[:-1]]
                   if label != "TOKEN" else [])
    if any(f in core for f in forms):
        print(label)
PY
}
# Files kept open (and read through) hold their keyed contexts: the
# positive control. Closed files keep none (ops.c op_release).
exec 3<"$MNT/f1" 4<"$MNT/f2" 5<"$MNT/f3"
for fd in 3 4 5; do head -c 4096 <&$fd >/dev/null; done
c1=$(core before -a) && [ -s "$c1" ] || t_fail "gcore failed"
found=$(search "$c1")
echo "$found" | grep -q DEK || t_fail "positive control: no DEK found in the unlocked daemon's full core (search broken?)"
t_ok "positive control: the unlocked daemon's full core (gcore -a) holds: $(echo $found)"
rm -f "$c1"
c1=$(core dumpable) && [ -s "$c1" ] || t_fail "gcore failed"
found=$(search "$c1")
[ -z "$found" ] || t_fail "an ordinary core of the unlocked daemon holds: $(echo $found)"
t_ok "an ordinary core of the unlocked daemon (dump-excluded mappings left out) holds no key"
rm -f "$c1"
exec 3<&- 4<&- 5<&-
sleep 0.5	# release is asynchronous to close(2)
c1=$(core closed -a) && [ -s "$c1" ] || t_fail "gcore failed"
found=$(search "$c1")
echo "$found" | grep -q DEK && t_fail "closed files still have DEKs in the daemon's core: $(echo $found)"
t_ok "files closed: no DEK of theirs left in the unlocked daemon's core"
rm -f "$c1"

# Bearer tokens the test server issued (values: its admin API lists them
# for leak searches), added to the search as "TOKEN" lines; they must be
# gone with the keys (the cache is wiped at lock, curl's copies freed).
tokens() {
	kv tokens | python3 -c 'import json,sys
for t in json.load(sys.stdin)["tokens"]: print("TOKEN", t["access_token"].encode().hex())' >>"$T/keys"
	grep -q '^TOKEN' "$T/keys" || t_fail "the test server issued no bearer token to search for"
}

"$CMKFS" lock "$MNT" >/dev/null
tokens
c2=$(core locked -a) && [ -s "$c2" ] || t_fail "gcore failed"
found=$(search "$c2")
[ -z "$found" ] || t_fail "after cmkfs lock the core still holds: $(echo $found)"
rm -f "$c2"
t_ok "after cmkfs lock: no KEK_S, KEK_C, name key, DEK or bearer token in the core image ($(grep -c ^TOKEN "$T/keys") tokens searched)"

# revocation: resume first (new contexts in memory), then revoke
"$CMKFS" umount "$MNT"
"$CMKFS" mount --service-key "$KEY" --key-check-interval 1 "$CIPHER" "$MNT"
pid=$("$CMKFS" status --json "$MNT" | kv_json 'd["pid"]')
for i in 1 2 3; do cat "$MNT/f$i" >/dev/null; done
# the tokens held when the lock comes: a locked mount goes on checking
# (to see access restored) with a token fetched for each check, which a
# list taken after the lock could include (the jittered checks made
# that race common)
tokens
kv revoke app cmk >/dev/null
wait_for 30 revoked "$MNT/f1" || t_fail "revocation did not lock"
c3=$(core revoked -a) && [ -s "$c3" ] || t_fail "gcore failed"
found=$(search "$c3")
[ -z "$found" ] || t_fail "after revocation the core still holds: $(echo $found)"
rm -f "$c3"
t_ok "after revocation: no key material or bearer token in the core image"
"$CMKFS" umount "$MNT"
