#!/usr/bin/env bash
# tests/mount/t_follow.sh — versionless key URIs: the volume follows its
# key's latest enabled version (automatic rotation), as Azure Storage and
# Azure SQL follow a versionless key; versioned URIs stay pinned.
#  1. init --cmk with a versionless URI: the config names the current
#     version and follows the key (status text and JSON);
#  2. a new version (a rotation in Key Vault) is adopted by the live mount
#     within one check interval: config re-wrapped, audited "automatic
#     rotation", status shows the new version; the old version disabled
#     afterwards is never needed again (reads, a remount);
#  3. a newer version that is disabled, or allows no unwrapKey, is not
#     followed; once enabled it is;
#  4. the version in use disabled still locks; enabled again resumes;
#  5. offline: `cmk rotate --key <versionless>` moves a pinned volume to
#     following, `cmk rotate --key <versioned>` pins it again, and a pinned
#     volume does not move when the key gets a new version;
#  6. a reply naming another key as the current version is refused;
#  7. cmk enable with a versionless URI (the hand-over) follows too.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
INTERVAL=1
mnt() { "$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace 30 "$CIPHER" "$MNT" "$@"; }
st() { "$CMKFS" status --json "$1"; }
cfgkey() { st "$CIPHER" | kv_json 'd["cmk"]["version"] + " " + str(d["cmk"]["follows_latest"])'; }

# --- 1. init with a versionless URI ---
KID1=$(kv_key cmk --size 2048)
BASE=${KID1%/*}
v1=${KID1##*/}
"$CMKFS" init --service-key "$KEY" --cmk "$BASE" "$CIPHER" >"$T/init.out" 2>&1 || t_fail "init --cmk $BASE: $(cat "$T/init.out")"
[ "$(cfgkey)" = "$v1 True" ] || t_fail "after init: $(cfgkey), want '$v1 True'"
"$CMKFS" status "$CIPHER" | grep -q "version $v1 (follows the key's latest version)" ||
	t_fail "status text: $("$CMKFS" status "$CIPHER" | grep 'customer key')"
t_ok "init --cmk with a versionless URI: the config names version $v1 and follows the key"

# --- 2. a rotation in Key Vault is followed by the live mount ---
mnt || t_fail "mount"
head -c 200000 /dev/urandom >"$T/a.ref"
cp "$T/a.ref" "$MNT/a"
[ "$(st "$MNT" | kv_json 'str(d["daemon"]["follows_latest"])')" = True ] || t_fail "daemon status: $(st "$MNT")"
KID2=$(kv new-version cmk | kv_json 'd["kid"]')
v2=${KID2##*/}
followed() { [ "$(cfgkey)" = "$v2 True" ]; }
wait_for $((INTERVAL * 3 + 20)) followed || t_fail "the mount did not follow to $v2: config $(cfgkey)"
grep -q "\"event\":\"cmk_rotate\".*\"key\":\"$KID2\".*\"result\":\"ok\".*automatic rotation from $KID1" "$CMKFS_AUDIT_LOG" ||
	t_fail "no automatic rotation audited: $(grep cmk_rotate "$CMKFS_AUDIT_LOG" | tail -2)"
rot=$(st "$MNT" | kv_json 'str(d["daemon"]["automatic_rotations"]) + " " + d["daemon"]["key_id"]')
[ "$rot" = "1 $KID2" ] || t_fail "daemon status after the rotation: $rot"
kv set cmk "$v1" --enabled false >/dev/null
n=$(grep -c '"event":"check".*"result":"ok"' "$CMKFS_AUDIT_LOG")
more_checks() { [ "$(grep -c '"event":"check".*"result":"ok"' "$CMKFS_AUDIT_LOG")" -ge $((n + 2)) ]; }
wait_for 30 more_checks || t_fail "no successful checks with the old version disabled"
# a following volume's check costs what a pinned one's does: the
# versionless GET is the check's GET, then one unwrap
kv stats --reset >/dev/null
n=$(grep -c '"event":"check".*"result":"ok"' "$CMKFS_AUDIT_LOG")
n5() { [ "$(grep -c '"event":"check".*"result":"ok"' "$CMKFS_AUDIT_LOG")" -ge $((n + 5)) ]; }
wait_for 30 n5 || t_fail "no checks"
calls=$(kv stats | kv_json 'd["total"]')
m=$(($(grep -c '"event":"check".*"result":"ok"' "$CMKFS_AUDIT_LOG") - n))
[ "$calls" -le $((2 * m + 2)) ] || t_fail "$calls Key Vault requests for $m checks of a following volume (want 2 a check)"
cmp "$T/a.ref" "$MNT/a" || t_fail "data after the rotation"
t_umount
mnt || t_fail "remount"
cmp "$T/a.ref" "$MNT/a" || t_fail "data after a remount with the old version disabled"
t_ok "a new version in Key Vault ($v2) was followed by the live mount within one interval, audited as an automatic rotation; with $v1 disabled, checks pass ($calls Key Vault requests for $m checks) and a remount reads"

# --- 3. a newer version that is disabled or cannot unwrap is not followed ---
KID3=$(kv new-version cmk --disabled | kv_json 'd["kid"]')
v3=${KID3##*/}
n=$(grep -c '"event":"check"' "$CMKFS_AUDIT_LOG")
checks_after() { [ "$(grep -c '"event":"check"' "$CMKFS_AUDIT_LOG")" -ge $((n + 3)) ]; }
wait_for 30 checks_after || t_fail "no checks"
[ "$(cfgkey)" = "$v2 True" ] || t_fail "followed a disabled version: $(cfgkey)"
cat "$MNT/a" >/dev/null || t_fail "a disabled newer version locked the mount"
kv set cmk "$v3" --enabled true --ops encrypt,decrypt,wrapKey >/dev/null
n=$(grep -c '"event":"check"' "$CMKFS_AUDIT_LOG")
wait_for 30 checks_after || t_fail "no checks"
[ "$(cfgkey)" = "$v2 True" ] || t_fail "followed a version without unwrapKey: $(cfgkey)"
# Key Vault may refuse a GET of a disabled version (403 KeyDisabled):
# the current version unreadable is no reason to lock
kv vault --disabled-get forbidden >/dev/null
kv set cmk "$v3" --enabled false --ops wrapKey,unwrapKey >/dev/null
n=$(grep -c '"event":"check"' "$CMKFS_AUDIT_LOG")
wait_for 30 checks_after || t_fail "no checks"
[ "$(cfgkey)" = "$v2 True" ] || t_fail "followed a disabled version: $(cfgkey)"
cat "$MNT/a" >/dev/null || t_fail "a newer version refusing GET (403 KeyDisabled) locked the mount"
tail -3 "$CMKFS_AUDIT_LOG" | grep -q '"event":"check".*"result":"ok"' || t_fail "checks fail while the newest version refuses GET: $(tail -2 "$CMKFS_AUDIT_LOG")"
kv vault --disabled-get ok >/dev/null
kv set cmk "$v3" --enabled true >/dev/null
f3() { [ "$(cfgkey)" = "$v3 True" ]; }
wait_for $((INTERVAL * 3 + 20)) f3 || t_fail "did not follow $v3 once enabled: $(cfgkey)"
cmp "$T/a.ref" "$MNT/a" || t_fail "data after the second rotation"
t_ok "a newer version that is disabled (GET answered or refused with 403), or without unwrapKey, is not followed (mount stays on $v2 and serves); once usable it is ($v3)"

# --- 4. the version in use disabled locks; enabled again resumes ---
kv set cmk "$v3" --enabled false >/dev/null
wait_for $((INTERVAL + 25)) revoked "$MNT/a" || t_fail "the version in use disabled did not lock"
kv set cmk "$v3" --enabled true >/dev/null
wait_for $((INTERVAL + 25)) cmp "$T/a.ref" "$MNT/a" || t_fail "no resume after re-enabling"
t_ok "the version in use disabled: locked; enabled again: resumed"
t_umount

# --- 5. offline: pin with a versioned URI, follow with a versionless one ---
"$CMKFS" cmk rotate --service-key "$KEY" --key "$KID3" "$CIPHER" >"$T/rot.out" 2>&1 || t_fail "rotate to pinned: $(cat "$T/rot.out")"
[ "$(cfgkey)" = "$v3 False" ] || t_fail "after rotate to a versioned URI: $(cfgkey)"
mnt || t_fail "mount (pinned)"
KID4=$(kv new-version cmk | kv_json 'd["kid"]')
v4=${KID4##*/}
n=$(grep -c '"event":"check"' "$CMKFS_AUDIT_LOG")
wait_for 30 checks_after || t_fail "no checks"
[ "$(cfgkey)" = "$v3 False" ] || t_fail "a pinned volume moved: $(cfgkey)"
t_umount
"$CMKFS" cmk rotate --service-key "$KEY" --key "$BASE" "$CIPHER" >"$T/rot.out" 2>&1 || t_fail "rotate to versionless: $(cat "$T/rot.out")"
[ "$(cfgkey)" = "$v4 True" ] || t_fail "after rotate to the versionless URI: $(cfgkey)"
t_ok "cmk rotate: a versioned URI pins (a new version $v4 is not followed), the versionless one follows again (now $v4)"

# --- 6. a reply naming another key is refused ---
KIDX=$(kv_key other --size 2048)
kv raw "^/keys/cmk/?$" --method GET --status 200 --count 100 \
	--body "{\"key\":{\"kid\":\"$KIDX\",\"kty\":\"RSA\",\"key_ops\":[\"wrapKey\",\"unwrapKey\"],\"n\":\"AQAB\",\"e\":\"AQAB\"},\"attributes\":{\"enabled\":true,\"recoveryLevel\":\"Recoverable\"}}" \
	>/dev/null 2>"$T/fault.err" || t_fail "fault: $(cat "$T/fault.err")"
rc=0; "$CMKFS" cmk rotate --service-key "$KEY" --key "$BASE" "$CIPHER" >"$T/rot.out" 2>&1 || rc=$?
kv fault-clear >/dev/null
[ $rc = 1 ] || t_fail "rotate with a hostile current version: exit $rc: $(cat "$T/rot.out")"
grep -q "named another key" "$T/rot.out" || t_fail "message: $(cat "$T/rot.out")"
[ "$(cfgkey)" = "$v4 True" ] || t_fail "config changed: $(cfgkey)"
t_ok "a Key Vault reply naming another key as the current version is refused, the config unchanged"

# --- 7. the hand-over (cmk enable) with a versionless URI follows ---
C2=$T/c2 M2=$T/m2
mkdir "$C2" "$M2"
"$CMKFS" init --service-key "$KEY" "$C2" >/dev/null || t_fail "init c2"
"$CMKFS" cmk enable --service-key "$KEY" --key "$BASE" "$C2" >"$T/en.out" 2>&1 || t_fail "enable: $(cat "$T/en.out")"
st "$C2" | kv_json 'd["cmk"]["version"] + " " + str(d["cmk"]["follows_latest"])' | grep -qx "$v4 True" ||
	t_fail "after enable: $(st "$C2")"
"$CMKFS" cmk enable --service-key "$KEY" --key "$BASE" "$C2" | grep -q "nothing to do" || t_fail "second enable not a no-op"
t_ok "cmk enable with a versionless URI: handed over to $v4, following; a rerun is a no-op"
