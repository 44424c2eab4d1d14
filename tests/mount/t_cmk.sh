#!/usr/bin/env bash
# tests/mount/t_cmk.sh — customer-managed keys end to end against the
# bundled Key Vault test server (issue #3): init with a CMK, rotation to a
# new version while mounted, revocation locks within interval + timeout
# (open and already-read files included), restore resumes, disable then
# revoke keeps data readable, deleted / expired / wrong keys, transient
# faults within and past the grace period, pre-flight checks, O(1) key
# traffic, Managed HSM oct-HSM keys, every credential kind, and the audit.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
INTERVAL=1
GRACE=6
mnt() { "$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace $GRACE "$CIPHER" "$MNT" "$@"; }

# --- init with a CMK; status shows the key URI and version ---
KID1=$(kv_key cmk --size 3072)
"$CMKFS" init --service-key "$KEY" --cmk "$KID1" "$CIPHER" >/dev/null || t_fail "init --cmk"
mnt || t_fail "mount with CMK"
echo "secret conversation" >"$MNT/a.txt"
head -c 300000 /dev/urandom >"$T/b.ref"; cp "$T/b.ref" "$MNT/b.bin"
v1=${KID1##*/}
"$CMKFS" status --json "$MNT" | kv_json 'd["cmk"]["version"] + " " + str(d["daemon"]["locked"])' | grep -qx "$v1 False" ||
	t_fail "status: $("$CMKFS" status --json "$MNT")"
t_ok "init --cmk, mount, status shows key version $v1"

# --- rotate to a new version on the live mount; then disable the old one ---
KID2=$(kv new-version cmk | kv_json 'd["kid"]')
"$CMKFS" cmk rotate --service-key "$KEY" --key "$KID2" "$CIPHER" | grep -q "adopted the change and proved the key" || t_fail "rotate (live)"
"$CMKFS" status --json "$MNT" | grep -q "${KID2##*/}" || t_fail "status after rotate"
kv set cmk "$v1" --enabled false >/dev/null
sleep $((2 * INTERVAL + 1))
cmp "$MNT/b.bin" "$T/b.ref" || t_fail "unreadable after rotation + old version disabled"
t_ok "rotated to ${KID2##*/} without remount; old version disabled, still readable"

# --- revoke permission: locked within interval + request time ---
exec 8<"$MNT/a.txt"
cat "$MNT/b.bin" >/dev/null		# pages now in the kernel's cache
kv revoke app cmk >/dev/null
wait_for $((INTERVAL + 25)) revoked "$MNT/b.bin" || t_fail "not locked after revocation"
revoked "$MNT/a.txt" || t_fail "a.txt readable while locked"
if cat <&8 >/dev/null 2>&1; then t_fail "an fd opened before the lock still reads"; fi
ls "$MNT" >/dev/null 2>&1 && t_fail "listing works while locked"
# status exits 5 while locked (cmkfs-status(1))
{ "$CMKFS" status --json "$MNT" || [ $? = 5 ]; } | grep -q '"locked":true' || t_fail "status does not say locked"
t_ok "permission revoked: cached, open and new reads and listings all fail with 'Key has been revoked'"

# --- restore: resumes by itself within one interval ---
kv grant app cmk get,wrapKey,unwrapKey >/dev/null
wait_for $((INTERVAL + 25)) cmp "$MNT/b.bin" "$T/b.ref" || t_fail "did not resume after access was restored"
exec 8<&-
t_ok "access restored: resumed without a remount"

# --- disabled key, expired key: denial; re-enabled: resume ---
kv set cmk "${KID2##*/}" --enabled false >/dev/null
wait_for $((INTERVAL + 25)) revoked "$MNT/a.txt" || t_fail "disabled key did not lock"
kv set cmk "${KID2##*/}" --enabled true >/dev/null
wait_for $((INTERVAL + 25)) cat "$MNT/a.txt" || t_fail "no resume after re-enable"
kv set cmk "${KID2##*/}" --exp $(($(date +%s) - 10)) >/dev/null
wait_for $((INTERVAL + 25)) revoked "$MNT/a.txt" || t_fail "expired key did not lock (Key Vault still unwraps)"
kv set cmk "${KID2##*/}" --exp none >/dev/null
wait_for $((INTERVAL + 25)) cat "$MNT/a.txt" || t_fail "no resume after expiry cleared"
t_ok "disabled and expired keys lock; re-enabled / valid again resumes"

# --- transient faults: serve through the grace period, lock after it ---
kv stats --reset >/dev/null
kv fault '/keys/' --status 503 --seconds 3 >/dev/null
sleep 2
cat "$MNT/a.txt" >/dev/null || t_fail "locked on a transient fault inside the grace period"
sleep 2
kv fault-clear >/dev/null
# The grace counts from the last successful check (doc/KEYS.md): let one
# succeed after the 503s, or the 429s below would only continue the same
# outage and lock within GRACE of its start, as they should.
ok_since() {
	local v
	v=$({ "$CMKFS" status --json "$MNT" || true; } | kv_json 'd["daemon"]["last_ok"]' 2>/dev/null) &&
		[ "${v:-0}" -gt "$1" ]
}
t_clear=$(date +%s)
wait_for 20 ok_since "$t_clear" || t_fail "no successful key check after the 503s cleared"
kv fault '/keys/' --status 429 --seconds 60 >/dev/null	# 429 without Retry-After
sleep 3
cat "$MNT/a.txt" >/dev/null || t_fail "locked before the grace period ended"
wait_for $((GRACE + 70)) revoked "$MNT/a.txt" || t_fail "not locked after the grace period"
kv fault-clear >/dev/null
wait_for $((INTERVAL + 25)) cat "$MNT/a.txt" || t_fail "no resume after the outage"
grep -q '"result":"transient"' "$CMKFS_AUDIT_LOG" || t_fail "transient checks not audited"
t_ok "503/429 outage: served within grace ($GRACE s), locked after, resumed"

# --- dropped connections inside the grace period: no lock ---
kv fault '/keys/' --drop --seconds 3 >/dev/null
sleep 2
cat "$MNT/a.txt" >/dev/null || t_fail "locked on dropped connections inside the grace period"
kv fault-clear >/dev/null
# --- a revoked token: 401 on the cached token -> fresh token, no lock ---
kv revoke-tokens app >/dev/null
sleep $((3 * INTERVAL + 1))
cat "$MNT/a.txt" >/dev/null || t_fail "a revoked (not refused) token locked the mount"
"$CMKFS" status --json "$MNT" | grep -q '"last_check_ok":true' || t_fail "checks failing after token revocation"
t_ok "dropped connections within grace and a revoked token (fresh token fetched) do not lock"

# --- key traffic is O(1): file operations never reach Key Vault ---
kv stats --reset >/dev/null
t0=$(date +%s)
for i in $(seq 200); do echo $i >"$MNT/f$i"; cat "$MNT/f$i" >/dev/null; done
rm -f "$MNT"/f*
sleep 3
dt=$(( $(date +%s) - t0 + 1 ))
calls=$(kv stats | kv_json 'd["ops"].get("get_key",0) + d["ops"].get("unwrap_key",0) + d["ops"].get("wrap_key",0)')
max=$(( 2 * (dt / INTERVAL + 2) ))
[ "$calls" -le "$max" ] || t_fail "$calls Key Vault calls for 600 file ops in $dt s (max $max: 2 per interval)"
[ "$calls" -ge 2 ] || t_fail "no key checks at all in $dt s (the counter or the monitor is broken)"
t_ok "600 file operations in ${dt}s: $calls Key Vault calls (2 per check interval, none per file)"

# --- cmkfs lock: immediate; holds until cmkfs unlock (more in t_lock.sh) ---
"$CMKFS" lock "$MNT" >/dev/null || t_fail "cmkfs lock"
revoked "$MNT/a.txt" || t_fail "not locked right after cmkfs lock"
grep -q '"event":"lock".*"result":"manual"' "$CMKFS_AUDIT_LOG" || t_fail "manual lock not audited"
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "cmkfs unlock"
cat "$MNT/a.txt" >/dev/null || t_fail "no resume after cmkfs unlock"
t_ok "cmkfs lock wipes at once; cmkfs unlock resumes"

# --- a check already under way when cmkfs lock comes does not undo it ---
# The next key GET is held 4 s; once the check is waiting on it, lock.
# That check then succeeds, but it proved access before the lock; nor do
# the checks after it: only cmkfs unlock resumes the mount.
kv fault '/keys/' --method GET --latency-ms 4000 --count 1 >/dev/null
applied() { [ "$(kv state | kv_json 'sum(r["applied"] for r in d["faults"])')" -ge 1 ]; }
wait_for 10 applied || t_fail "no key check reached the held GET"
"$CMKFS" lock "$MNT" >/dev/null || t_fail "cmkfs lock during a check"
after_lock() {
	python3 - "$CMKFS_AUDIT_LOG" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
i = max(k for k, e in enumerate(ev)
        if e["event"] == "lock" and e.get("result") == "manual")
print(" ".join(e["event"] for e in ev[i + 1:]
               if e["event"] in ("check", "resume")))
PY
}
two_checks() { [ "$(after_lock | wc -w)" -ge 2 ]; }
wait_for $((INTERVAL + 30)) two_checks || t_fail "no checks after a lock during a check: $(after_lock)"
# the held check ends first, then another; neither resumes
case " $(after_lock) " in *" resume "*) t_fail "a check resumed a manual lock: $(after_lock)" ;; esac
revoked "$MNT/a.txt" || t_fail "a check under way at the lock resumed the mount"
"$CMKFS" unlock "$MNT" >/dev/null || t_fail "cmkfs unlock after a lock during a check"
cat "$MNT/a.txt" >/dev/null || t_fail "no resume after cmkfs unlock"
t_ok "a check that began before cmkfs lock does not resume the mount, nor do later ones; cmkfs unlock does"

# --- rekey on the live CMK mount: the new KEK_C is wrapped by the CMK ---
kv stats --reset >/dev/null
wc_before=$(python3 -c 'import sys; b=open(sys.argv[1],"rb").read(); print(b.hex())' "$CIPHER/cmkfs.conf")
"$CMKFS" rekey --json "$CIPHER" >"$T/rk.json" || t_fail "live rekey with a CMK: $(tail -2 "$T/rk.json")"
tail -1 "$T/rk.json" | kv_json 'str(d["ok"]) + " " + str(d["rekey"]["to_gen"])' | grep -qx "True 2" || t_fail "rekey result: $(tail -1 "$T/rk.json")"
wraps=$(kv stats | kv_json 'd["ops"].get("wrap_key",0)')
[ "$wraps" -ge 1 ] || t_fail "rekey did not wrap the new KEK_C with the CMK ($wraps wrapKey calls)"
"$CMKFS" status --json "$CIPHER" | kv_json 'd["layers"][1]["key_id"]' | grep -qx "$KID2" || t_fail "layer C not under $KID2 after rekey"
cmp "$MNT/b.bin" "$T/b.ref" || t_fail "unreadable after a live rekey"
echo after-rekey >"$MNT/new.txt"
t_ok "live rekey on a CMK volume: generation 2, KEK_C wrapped by ${KID2##*/} ($wraps wrapKey), data readable"

# --- disable CMK, then revoke: data stays readable (service-managed) ---
"$CMKFS" cmk disable --service-key "$KEY" "$CIPHER" | grep -q "adopted the change and proved the key" || t_fail "disable (live)"
kv revoke app cmk >/dev/null
sleep $((2 * INTERVAL + 2))
cmp "$MNT/b.bin" "$T/b.ref" || t_fail "unreadable after disable + revoke"
t_umount
env -u AZURE_CLIENT_SECRET "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" || t_fail "remount without Key Vault"
cmp "$MNT/b.bin" "$T/b.ref" || t_fail "content after disable"
t_umount
t_ok "cmk disable, then revoke: still readable, remount needs no Key Vault"

# --- enable on an existing volume; key deleted: fresh mount refused ---
kv grant app cmk get,wrapKey,unwrapKey >/dev/null
"$CMKFS" cmk enable --service-key "$KEY" --key "$KID2" "$CIPHER" >/dev/null || t_fail "enable"
kv delete cmk >/dev/null
if mnt 2>"$T/err"; then t_umount; t_fail "mounted with a deleted key"; fi
grep -q "not accessible" "$T/err" && grep -q "KeyNotFound" "$T/err" || t_fail "deleted key: unclear error: $(cat "$T/err")"
kv recover cmk >/dev/null
mnt || t_fail "mount after recovery"
cmp "$MNT/b.bin" "$T/b.ref" || t_fail "content after recovery"
t_umount
t_ok "deleted key: mount refused ($(head -c 120 "$T/err")...); recovered: mounts"

# --- offline rekey through the CMK; refused (exit 9) while access is revoked ---
kv revoke app cmk >/dev/null
rc=0; "$CMKFS" rekey --service-key "$KEY" "$CIPHER" 2>"$T/err" || rc=$?
[ $rc = 9 ] || t_fail "rekey with the CMK revoked: exit $rc, want 9 ($(cat "$T/err"))"
kv grant app cmk get,wrapKey,unwrapKey >/dev/null
g0=$("$CMKFS" status --json "$CIPHER" | kv_json 'd["kek_generation"]')
"$CMKFS" rekey --service-key "$KEY" "$CIPHER" >/dev/null || t_fail "offline rekey with a CMK"
[ "$("$CMKFS" status --json "$CIPHER" | kv_json 'd["kek_generation"]')" = $((g0 + 1)) ] || t_fail "generation after offline rekey"
mnt || t_fail "mount after an offline CMK rekey"
cmp "$MNT/b.bin" "$T/b.ref" && [ "$(cat "$MNT/new.txt")" = after-rekey ] || t_fail "content after an offline CMK rekey"
t_umount
t_ok "offline rekey through the CMK: refused with exit 9 while revoked, then generation $((g0 + 1)), data readable"

# --- pre-flight checks and wrong URIs ---
KID3=$(kv_key other)
kv vault --purge-protection off >/dev/null
"$CMKFS" cmk rotate --service-key "$KEY" --key "$KID3" "$CIPHER" 2>"$T/err" && t_fail "rotate without purge protection accepted"
grep -q "purge protection" "$T/err" || t_fail "purge protection message: $(cat "$T/err")"
kv vault --soft-delete off >/dev/null
"$CMKFS" cmk rotate --service-key "$KEY" --key "$KID3" "$CIPHER" 2>"$T/err" && t_fail "rotate without soft delete accepted"
grep -q "soft delete" "$T/err" || t_fail "soft delete message: $(cat "$T/err")"
"$CMKFS" cmk rotate --service-key "$KEY" --force --key "$KID3" "$CIPHER" >/dev/null 2>&1 || t_fail "--force"
kv vault --soft-delete on --purge-protection on >/dev/null
rc=0; "$CMKFS" cmk rotate --service-key "$KEY" --key "$KVURL/keys/nosuchkey/0123456789abcdef0123456789abcdef" "$CIPHER" 2>"$T/err" || rc=$?
# (no grant exists for a key that does not exist: 403 or 404, both refusals)
[ $rc = 9 ] && grep -qE "KeyNotFound|Forbidden" "$T/err" || t_fail "wrong key URI: rc $rc $(cat "$T/err")"
rc=0; "$CMKFS" cmk rotate --service-key "$KEY" --key "$KVURL/keys/cmk/v1/extra" "$CIPHER" 2>/dev/null || rc=$?
[ $rc = 2 ] || t_fail "malformed key URI: exit $rc, want 2"
KID4=$(kv_key nowrap --ops encrypt,decrypt)
"$CMKFS" cmk rotate --service-key "$KEY" --key "$KID4" "$CIPHER" 2>"$T/err" && t_fail "key without wrapKey accepted"
grep -q "wrapKey" "$T/err" || t_fail "key_ops message: $(cat "$T/err")"
t_ok "refused: no purge protection, no soft delete, unknown key, no version, no wrapKey; --force overrides"

# --- hostile or broken replies: clear errors, never a crash ---
for preset in invalid-json huge bad-base64 wrong-key-size redirect empty html; do
	kv raw '/unwrapkey' --preset $preset --count 50 >/dev/null
	rc=0; mnt 2>"$T/err" || rc=$?
	kv fault-clear >/dev/null
	if [ $rc = 0 ]; then t_umount; t_fail "mounted with a '$preset' unwrap reply"; fi
	# the html preset is a 502 gateway page: an outage, retry (10)
	want=1; [ $preset != html ] || want=10
	[ $rc = $want ] || t_fail "'$preset' reply: exit $rc, want $want (crash?): $(cat "$T/err")"
	grep -q "cannot unlock" "$T/err" || t_fail "'$preset' reply: unclear error: $(cat "$T/err")"
done
mnt || t_fail "mount after the hostile replies"
t_umount
t_ok "hostile unwrap replies (invalid JSON, huge, bad base64url, wrong key size, redirect, empty, HTML) refused with exit 1 (html: a 502, exit 10)"

# --- Managed HSM oct-HSM key (A256KW) and every credential kind ---
HKID=$(kv_key hsmkey --kty oct-HSM --size 256)
for cred in secret cert workload imds appservice; do
	d=$T/cred-$cred
	(
		case $cred in
		cert)
			openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=cmkfs-test -days 1 \
				-keyout "$d.pem" -out "$d.crt" 2>/dev/null
			cat "$d.crt" >>"$d.pem"; chmod 600 "$d.pem"
			kv client add certapp --cert "$d.crt" >/dev/null
			kv grant certapp hsmkey get,wrapKey,unwrapKey >/dev/null
			unset AZURE_CLIENT_SECRET
			export AZURE_CLIENT_ID=certapp AZURE_CLIENT_CERTIFICATE_PATH=$d.pem ;;
		workload)
			echo "federated-$$" >"$d.tok"
			kv client add wlapp --federated-token "federated-$$" >/dev/null
			kv grant wlapp hsmkey get,wrapKey,unwrapKey >/dev/null
			unset AZURE_CLIENT_SECRET
			export AZURE_CLIENT_ID=wlapp AZURE_FEDERATED_TOKEN_FILE=$d.tok ;;
		imds | appservice)
			kv client add mi --managed-identity >/dev/null
			kv grant mi hsmkey get,wrapKey,unwrapKey >/dev/null
			unset AZURE_CLIENT_SECRET AZURE_CLIENT_ID AZURE_TENANT_ID
			eval "$(kv env | grep -E 'POD_IDENTITY|IDENTITY_(ENDPOINT|HEADER)')"
			if [ $cred = imds ]; then unset IDENTITY_ENDPOINT IDENTITY_HEADER; fi
			export AZURE_CLIENT_ID=mi ;;
		esac
		"$CMKFS" init --service-key "$d.key" --cmk "$HKID" "$d.vol" >/dev/null 2>"$d.err" ||
			{ cat "$d.err"; exit 1; }
		mkdir "$d.mnt"
		"$CMKFS" mount --service-key "$d.key" "$d.vol" "$d.mnt" 2>>"$d.err" || { cat "$d.err"; exit 1; }
		echo "$cred" >"$d.mnt/x" && [ "$(cat "$d.mnt/x")" = "$cred" ]
		rc=$?
		"$CMKFS" umount "$d.mnt"
		exit $rc
	) || t_fail "credential $cred with an oct-HSM key failed"
done
t_ok "oct-HSM key (A256KW) with client secret, certificate (PS256 assertion), workload identity, IMDS, App Service"

# --- the audit trail: every key event, no secrets ---
for e in mount unwrap wrap check lock resume cmk_enable cmk_rotate cmk_disable umount; do
	grep -q "\"event\":\"$e\"" "$CMKFS_AUDIT_LOG" || t_fail "audit has no '$e' event"
done
grep -q "$KID2" "$CMKFS_AUDIT_LOG" || t_fail "audit lacks the key URI with version"
grep -qF "$AZURE_CLIENT_SECRET" "$CMKFS_AUDIT_LOG" && t_fail "client secret in the audit log"
grep -qi "bearer\|access_token" "$CMKFS_AUDIT_LOG" && t_fail "token material in the audit log"
[ "$(stat -c %a "$CMKFS_AUDIT_LOG")" = 600 ] || t_fail "audit log mode"
python3 -c 'import json,sys; [json.loads(l) for l in open(sys.argv[1])]' "$CMKFS_AUDIT_LOG" || t_fail "audit log is not JSON lines"
t_ok "audit: $(wc -l <"$CMKFS_AUDIT_LOG") JSON lines, every event kind, no secrets"
