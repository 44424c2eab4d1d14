#!/usr/bin/env bash
# tests/mount/t_kvevents.sh — doc/KEYS.md "Azure events: what a mount does
# and within how long", one block per row, against the bundled Key Vault
# test server: transient replies (IMDS 404 and 410 once, 429 with
# Retry-After, 503, a firewall 403) leave the mount up; denials (permission
# removed, key disabled, key deleted, an expired client secret) lock it
# within the key-check interval + 15 s once a second check confirms them; a
# single spurious 403 that the confirming check does not see again does
# not lock. Every row also checks the audit line: its cause, code, the
# volume id, Key Vault's x-ms-request-id and our x-ms-client-request-id
# (a UUID v4), and that no line carries a reason from an earlier check.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
INTERVAL=1
BOUND=$((INTERVAL + 15))	# the documented revocation bound
GRACE=600			# no transient row may reach it
mnt() { "$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace $GRACE "$@"; }
mark() { wc -l <"$CMKFS_AUDIT_LOG"; }
up() { cat "$1/a.txt" >/dev/null; }

# audit_find FROM EVENT RESULT CAUSE CODE KEYPART: the first audit line after
# line FROM with these fields (CODE "" = any; KEYPART a substring of the
# key URI), which must carry a volume id, a UUID v4 client request id and
# Key Vault's (or the token endpoint's) request id. Prints it.
audit_find() {
	python3 - "$CMKFS_AUDIT_LOG" "$@" <<'PY'
import json, re, sys
log, frm, ev, res, cause, code, key = sys.argv[1:8]
uuid4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
for line in open(log).readlines()[int(frm):]:
    e = json.loads(line)
    if (e["event"], e["result"], e.get("cause")) != (ev, res, cause) or key not in (e["key"] or ""):
        continue
    if code and e.get("code") != code:
        continue
    assert re.match(r"^[0-9a-f]{32}$", e["volume"]), line
    assert uuid4.match(e.get("client_request_id", "")), line
    assert e.get("request_id"), line
    print(line.strip())
    sys.exit(0)
sys.exit(1)
PY
}
# wait_audit SECONDS FROM EVENT RESULT CAUSE CODE KEYPART
wait_audit() {
	local limit=$1
	shift
	wait_for "$limit" audit_find "$@" || t_fail "no audit line $* in $limit s: $(tail -n 5 "$CMKFS_AUDIT_LOG")"
}
# no_lock_since FROM KEYPART: no lock of that key after line FROM
no_lock_since() {
	! tail -n +"$(($1 + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"lock"' | grep -qF "$2"
}

# --- the volume: client secret credential (kv_start) ---
KID=$(kv_key cmk --size 2048)
V=${KID##*/}
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null || t_fail "init --cmk"
mnt "$CIPHER" "$MNT" || t_fail "mount"
echo "conversation" >"$MNT/a.txt"

# --- row: a single spurious 403 the confirming check does not see again ---
m=$(mark)
kv fault '/keys/' --status 403 --count 1 \
	--body '{"error":{"code":"Forbidden","message":"Caller is not authorized to perform action on resource.","innererror":{"code":"ForbiddenByRbac"}}}' >/dev/null
wait_audit 20 "$m" check denied permission Forbidden/ForbiddenByRbac cmk
wait_for 20 grep -q "denial not confirmed by a second check" "$CMKFS_AUDIT_LOG" ||
	t_fail "the confirming check did not report"
up "$MNT" || t_fail "a single 403 locked the mount"
no_lock_since "$m" cmk || t_fail "a single 403 locked the mount (audit)"
t_ok "a single 403 (ForbiddenByRbac) not seen by the confirming check: stays up, audited as permission"

# --- row: 429 with Retry-After (past every retry of one check) ---
m=$(mark)
kv fault '/keys/' --status 429 --retry-after 1 --count 5 >/dev/null
wait_audit 30 "$m" check transient throttled Throttled cmk
up "$MNT" && no_lock_since "$m" cmk || t_fail "429 locked the mount"
t_ok "429 with Retry-After: served within grace, audited as throttled"

# --- row: 503 ---
m=$(mark)
kv fault '/keys/' --status 503 --retry-after 1 --count 5 >/dev/null
wait_audit 30 "$m" check transient outage ServiceUnavailable cmk
up "$MNT" && no_lock_since "$m" cmk || t_fail "503 locked the mount"
t_ok "503: served within grace, audited as outage"

# --- row: firewall 403 (network rules, private endpoint, egress address) ---
m=$(mark)
kv fault '/keys/' --status 403 --seconds 4 \
	--body '{"error":{"code":"Forbidden","message":"Client address is not authorized and caller is not a trusted service.\r\nClient address: 203.0.113.7","innererror":{"code":"ForbiddenByFirewall"}}}' >/dev/null
wait_audit 20 "$m" check transient firewall Forbidden/ForbiddenByFirewall cmk
sleep 4
up "$MNT" && no_lock_since "$m" cmk || t_fail "ForbiddenByFirewall locked the mount"
kv fault-clear >/dev/null
t_ok "403 ForbiddenByFirewall for 4 s: served within grace, audited as firewall"

# --- row: permission removed: locks within interval + 15 s ---
m=$(mark)
kv revoke app cmk >/dev/null
wait_for $BOUND revoked "$MNT/a.txt" || t_fail "permission removed: not locked within $BOUND s"
wait_audit 5 "$m" lock denied permission Forbidden/ForbiddenByPolicy cmk
kv grant app cmk get,wrapKey,unwrapKey >/dev/null
wait_for $BOUND up "$MNT" || t_fail "no resume after the grant"
wait_audit 5 "$m" resume ok permission "" cmk
t_ok "permission removed: locked within $BOUND s (cause permission), resumed after the grant"

# --- row: key disabled (and no stale 403 from the rows above) ---
m=$(mark)
kv set cmk "$V" --enabled false >/dev/null
wait_for $BOUND revoked "$MNT/a.txt" || t_fail "disabled key: not locked within $BOUND s"
wait_audit 5 "$m" lock denied disabled enabled=false cmk
tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"lock"' | grep -q 'Forbidden\|"no error"' &&
	t_fail "the lock carries a stale reason: $(tail -n 3 "$CMKFS_AUDIT_LOG")"
kv set cmk "$V" --enabled true >/dev/null
wait_for $BOUND up "$MNT" || t_fail "no resume after re-enable"
t_ok "key disabled: locked within $BOUND s (cause disabled, not an earlier 403), resumed when enabled"

# --- row: key deleted (soft delete), then recovered ---
m=$(mark)
kv delete cmk >/dev/null
wait_for $BOUND revoked "$MNT/a.txt" || t_fail "deleted key: not locked within $BOUND s"
wait_audit 5 "$m" lock denied deleted KeyNotFound cmk
kv recover cmk >/dev/null
wait_for $((BOUND + 10)) up "$MNT" || t_fail "no resume after recover"
t_ok "key deleted: locked within $BOUND s (cause deleted, KeyNotFound), resumed after recover"

# --- row: expired client secret (AADSTS7000222) from the token endpoint ---
m=$(mark)
kv raw '/oauth2/v2.0/token$' --status 401 --count 0 --header 'x-ms-request-id:0b1c2d3e-aad5-4000-8000-7000222' \
	--body '{"error":"invalid_client","error_description":"AADSTS7000222: The provided client secret keys for app '"'"'app'"'"' are expired.","error_codes":[7000222],"trace_id":"0b1c2d3e-aad5-4000-8000-7000222","correlation_id":"00000000-0000-4000-8000-000000000000"}' >/dev/null
kv revoke-tokens app >/dev/null	# the next check needs a new token
wait_for $BOUND revoked "$MNT/a.txt" || t_fail "expired client secret: not locked within $BOUND s"
wait_audit 5 "$m" lock denied token AADSTS7000222 cmk
grep -qF app-secret- "$CMKFS_AUDIT_LOG" && t_fail "client secret in the audit log"
kv fault-clear >/dev/null
wait_for $BOUND up "$MNT" || t_fail "no resume once the token endpoint accepts the secret again"
t_ok "expired client secret (AADSTS7000222): locked within $BOUND s (cause token, code AADSTS7000222)"

# --- a failed mount names the cause and carries the volume id ---
"$CMKFS" umount "$MNT" || t_fail "umount"
m=$(mark)
kv set cmk "$V" --enabled false >/dev/null
mnt "$CIPHER" "$MNT" 2>"$T/mount.err" && t_fail "mounted with a disabled key"
audit_find "$m" mount denied disabled "" cmk >/dev/null || t_fail "failed mount audit: $(tail -n 2 "$CMKFS_AUDIT_LOG")"
grep -q "disabled" "$T/mount.err" || t_fail "mount error does not name the cause: $(cat "$T/mount.err")"
kv set cmk "$V" --enabled true >/dev/null
t_ok "a mount refused for a disabled key: audited with cause, volume id and request ids"

# --- rows: IMDS 404 and 410 once (managed identity through IMDS) ---
HKID=$(kv create-key mikey --size 2048 | kv_json 'd["kid"]')
kv client add mi --managed-identity >/dev/null
kv grant mi mikey get,wrapKey,unwrapKey >/dev/null
C2=$T/cipher2 M2=$T/mnt2 K2=$T/service2.key
mkdir "$C2" "$M2"
(
	unset AZURE_CLIENT_SECRET AZURE_TENANT_ID
	eval "$(kv env | grep -E 'POD_IDENTITY')"
	export AZURE_CLIENT_ID=mi
	"$CMKFS" init --service-key "$K2" --cmk "$HKID" "$C2" >/dev/null &&
		"$CMKFS" mount --service-key "$K2" --key-check-interval $INTERVAL --grace $GRACE "$C2" "$M2"
) || t_fail "IMDS mount"
echo "imds" >"$M2/a.txt"
for st in 404 410; do
	m=$(mark)
	kv fault '/metadata/identity/oauth2/token' --status $st --count 1 >/dev/null
	kv revoke-tokens mi >/dev/null	# the next check asks IMDS again
	wait_audit 20 "$m" check transient outage "" mikey
	sleep $((2 * INTERVAL + 1))
	up "$M2" && no_lock_since "$m" mikey || t_fail "IMDS $st locked the mount"
	t_ok "IMDS $st once: served, audited as outage (token endpoint updating)"
done
"$CMKFS" umount "$M2" || t_fail "umount IMDS mount"
"$CMKFS" umount "$MNT" 2>/dev/null || true
