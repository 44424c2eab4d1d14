#!/usr/bin/env bash
# tests/mount/t_fleet.sh — a cmkfs host behaves well among many (doc/KEYS.md
# "Fleet behaviour"), against the bundled Key Vault test server:
#   - key checks reuse one TLS connection: N requests, not N handshakes
#     (kvserver counts the connections that carried requests);
#   - the managed-identity endpoints are reached without a proxy, the
#     vault through the proxy the environment names;
#   - challenges and tokens are kept per vault host and audience: a vault's
#     token is never sent to another host (a Managed HSM), each gets its own;
#   - a challenge naming a tenant other than AZURE_TENANT_ID is refused
#     unless AZURE_ADDITIONALLY_ALLOWED_TENANTS allows it (a list or "*").
# Counted, never timed.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY no_proxy NO_PROXY all_proxy ALL_PROXY
stat_of() { kv stats | kv_json "$1"; }

# --- one connection for every check of a mount ---
KID=$(kv_key cmk)
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null || t_fail "init --cmk"
counts() { stat_of 'str(d["total"]) + " " + str(d.get("connections", {}).get("https", 0))'; }
read -r r0 c0 <<<"$(counts)"
"$CMKFS" mount --service-key "$KEY" --key-check-interval 1 "$CIPHER" "$MNT" || t_fail "mount"
more_requests() { [ "$(stat_of 'd["total"]')" -ge $((r0 + $1)) ]; }
wait_for 60 more_requests 16 || t_fail "fewer than 16 Key Vault requests in 60 s of 1 s checks"
read -r r1 c1 <<<"$(counts)"
t_umount
req=$((r1 - r0)) conn=$((c1 - c0))
t_log "mount and checks: $req requests over $conn TLS connections"
# the mount command's own requests and the daemon's: at most 2 connections
[ "$conn" -ge 1 ] && [ "$conn" -le 2 ] || t_fail "$req requests took $conn TLS connections (want 1 or 2: one kept per process)"
t_ok "$req Key Vault and token requests of a mount over $conn TLS connection(s)"

# --- no proxy for IMDS and App Service; the vault keeps the proxy ---
kv client add mi --managed-identity >/dev/null
kv grant mi cmk get,wrapKey,unwrapKey >/dev/null
dead=127.0.0.1:9	# discard port: nothing listens, a connection is refused
for cred in imds appservice; do
	(
		unset AZURE_CLIENT_SECRET AZURE_CLIENT_ID AZURE_TENANT_ID
		eval "$(kv env | grep -E 'POD_IDENTITY|IDENTITY_(ENDPOINT|HEADER)')"
		if [ $cred = imds ]; then unset IDENTITY_ENDPOINT IDENTITY_HEADER; fi
		export AZURE_CLIENT_ID=mi
		export http_proxy=http://$dead HTTP_PROXY=http://$dead
		"$CMKFS" init --service-key "$T/$cred.key" --cmk "$KID" "$T/$cred.vol" >/dev/null 2>"$T/$cred.err" ||
			t_fail "$cred token with http_proxy=$dead set: $(cat "$T/$cred.err")"
		# control: https_proxy is still used for the vault itself
		rc=0
		https_proxy=http://$dead "$CMKFS" init --service-key "$T/$cred.key2" --cmk "$KID" "$T/$cred.vol2" \
			>/dev/null 2>"$T/$cred.err2" || rc=$?
		[ $rc != 0 ] || t_fail "$cred: init reached the vault past a dead https_proxy (proxy not used)"
	) || exit 1
done
t_ok "IMDS and App Service tokens bypass a dead http_proxy; the vault request goes through https_proxy"

# --- a vault and a Managed HSM (another host) in one process ---
HKID=$(kv_key hsm --kty oct-HSM --size 256)
HKID=${HKID/127.0.0.1/localhost}	# the server's certificate names both
n=$(wc -l <"$KVDIR/requests.log")
"$CMKFS" cmk rotate --service-key "$KEY" --key "$HKID" "$CIPHER" >/dev/null || t_fail "rotate from the vault key to the HSM key"
tail -n +$((n + 1)) "$KVDIR/requests.log" >"$T/rotate.log"
first=$(grep -m1 " /keys/hsm/" "$T/rotate.log") || t_fail "no request for the HSM key"
case $first in
*" 401 "*"client=-"*) ;;
*) t_fail "the first request to the HSM host was not an anonymous challenge request: $first" ;;
esac
grep -q "client=app" <<<"$(grep " /keys/hsm/" "$T/rotate.log" | grep " 401 ")" &&
	t_fail "a token was sent to the HSM host and refused: $(grep ' 401 ' "$T/rotate.log")"
tokens=$(grep -c "op=token" "$T/rotate.log" || true)
[ "$tokens" = 2 ] || t_fail "$tokens token requests for one vault and one HSM (want 2)"
t_ok "vault and Managed HSM in one process: each host's challenge, one token per audience, no token sent to the wrong host"

# --- the challenge's tenant is checked against AZURE_TENANT_ID ---
kvtenant=$AZURE_TENANT_ID
other=00000000-0000-0000-0000-00000000abcd
rc=0
AZURE_TENANT_ID=$other "$CMKFS" init --service-key "$T/tn.key" --cmk "$KID" "$T/tn.vol" >/dev/null 2>"$T/tn.err" || rc=$?
[ $rc != 0 ] || t_fail "a challenge from tenant $kvtenant was followed with AZURE_TENANT_ID=$other"
grep -q "tenant $kvtenant.*AZURE_ADDITIONALLY_ALLOWED_TENANTS" "$T/tn.err" || t_fail "unclear refusal: $(cat "$T/tn.err")"
for allow in "11111111-1111-1111-1111-111111111111;$kvtenant" "*"; do
	rm -rf "$T/tn.vol" "$T/tn.key"
	AZURE_TENANT_ID=$other AZURE_ADDITIONALLY_ALLOWED_TENANTS=$allow \
		"$CMKFS" init --service-key "$T/tn.key" --cmk "$KID" "$T/tn.vol" >/dev/null 2>"$T/tn.err" ||
		t_fail "tenant $kvtenant refused though AZURE_ADDITIONALLY_ALLOWED_TENANTS=$allow: $(cat "$T/tn.err")"
done
t_ok "a challenge for another tenant is refused unless AZURE_ADDITIONALLY_ALLOWED_TENANTS lists it or is *"

# --- a Retry-After over 60 s is waited for within the grace period ---
# The check throttled with "Retry-After: 65" waits and then succeeds: no
# transient check, no lock. (Before, any Retry-After over 60 s failed the
# check at once.) The wait is the server's to ask; the test only polls.
"$CMKFS" mount --service-key "$KEY" --key-check-interval 1 --grace 600 "$CIPHER" "$MNT" || t_fail "mount (grace 600)"
checks() { grep -c '"event":"check"' "$CMKFS_AUDIT_LOG" || true; }
n0=$(checks)
wait_for 30 eval '[ "$(checks)" -gt "$n0" ]' || t_fail "no key check"
mark=$(wc -l <"$CMKFS_AUDIT_LOG")
kv fault '/unwrapkey$' --status 429 --retry-after 65 --count 1 >/dev/null
unwraps_after() { tail -n +"$1" "$KVDIR/requests.log" | grep -c "/unwrapkey.* 200 " || true; }
rl=$(($(wc -l <"$KVDIR/requests.log") + 1))
wait_for 30 eval 'tail -n +$rl "$KVDIR/requests.log" | grep -q "/unwrapkey.* 429 "' || t_fail "the 429 was not served"
wait_for 120 eval '[ "$(unwraps_after $rl)" -ge 1 ]' || t_fail "no unwrapkey retried within 120 s of a 'Retry-After: 65'"
# the throttled check is the first one audited after the mark (the
# monitor has one thread: no other check ran while it waited)
checks_after() { tail -n +$((mark + 1)) "$CMKFS_AUDIT_LOG" | grep '"event":"check"'; }
wait_for 30 checks_after || t_fail "the throttled check was never audited"
tail -n +$((mark + 1)) "$CMKFS_AUDIT_LOG" >"$T/audit.after"
checks_after >"$T/checks.after" || true
head -1 "$T/checks.after" | grep -q '"result":"ok"' ||
	t_fail "the throttled check did not succeed: $(head -1 "$T/checks.after")"
grep -q '"event":"lock"' "$T/audit.after" && t_fail "locked while throttled"
"$CMKFS" status --json "$MNT" | kv_json 'str(d["daemon"]["locked"])' | grep -qx False || t_fail "locked after the throttling"
t_umount
t_ok "a 'Retry-After: 65' (429) was waited out inside the 600 s grace period: the check succeeded, no transient, no lock"
