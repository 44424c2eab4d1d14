# shellcheck shell=bash
# tests/lib/kv.sh — start the bundled Key Vault test server for a mount
# test (after t_init) and point cmkfs at it through the Azure SDK
# environment. Sourced after lib.sh. Sets KVDIR, KVURL, and kv() = kvctl.
PY="sh ${TOP_SRCDIR:-$top_builddir}/tests/lib/py.sh"
kv() { $PY "${TOP_SRCDIR:-$top_builddir}/tests/kvserver/kvctl.py" --state-dir "$KVDIR" "$@"; }
kv_json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }

kv_start() {
	$PY -c 'import cryptography' 2>/dev/null || t_skip "no python3 with python3-cryptography"
	KVDIR=$T/kv
	mkdir -p "$KVDIR"
	$PY "${TOP_SRCDIR:-$top_builddir}/tests/kvserver/kvserver.py" --state-dir "$KVDIR" \
		>"$KVDIR/server.out" 2>&1 &
	KVPID=$!
	kv wait --timeout 30 >/dev/null || t_fail "kvserver did not start: $(cat "$KVDIR/server.out")"
	KVURL=$(kv_json 'd["url"]' <"$KVDIR/server.json")
	export CMKFS_CA_FILE=$KVDIR/ca.pem
	export CMKFS_DISABLE_CHALLENGE_RESOURCE_VERIFICATION=1
	export AZURE_AUTHORITY_HOST=$KVURL
	AZURE_TENANT_ID=$(kv_json 'd["tenant"]' <"$KVDIR/server.json")
	export AZURE_TENANT_ID AZURE_CLIENT_ID=app AZURE_CLIENT_SECRET=app-secret-$$
	export CMKFS_AUDIT_LOG=$T/audit.log
	kv vault --soft-delete on --purge-protection on >/dev/null
	kv client add app --secret "$AZURE_CLIENT_SECRET" >/dev/null
	t_on_exit 'kill "$KVPID" 2>/dev/null'
}

# kv_key NAME [create-key args]: create a key, grant the app, print its kid
kv_key() {
	local name=$1
	shift
	kv create-key "$name" "$@" | kv_json 'd["kid"]'
	kv grant app "$name" get,wrapKey,unwrapKey >/dev/null
}

# wait_for SECONDS CMD...: poll until CMD succeeds
wait_for() {
	local limit=$1 i
	shift
	for ((i = 0; i < limit * 10; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	return 1
}
revoked() { ! cat "$1" >/dev/null 2>"$T/revoked.err" && grep -q "Key has been revoked" "$T/revoked.err"; }

# kv_unwrap_kekc CONF KEY_URI: KEK_C of the volume config CONF in hex,
# unwrapped through Key Vault's unwrapkey as any authorised client could
# (with a token minted for the client "app"), for tests that search for
# the key's bytes where it must not be.
kv_unwrap_kekc() {
	$PY - "$1" "$2" "$(kv token app | kv_json 'd["access_token"]')" <<'PY'
import base64, json, os, ssl, struct, sys, urllib.request
b = open(sys.argv[1], "rb").read()
pos = 46
for layer in range(2):
    n = struct.unpack(">H", b[pos + 1:pos + 3])[0]; pos += 3 + n
    w = struct.unpack(">H", b[pos:pos + 2])[0]; blob = b[pos + 2:pos + 2 + w]; pos += 2 + w
ctx = ssl.create_default_context(cafile=os.environ["CMKFS_CA_FILE"])
body = json.dumps({"alg": "RSA-OAEP-256", "value": base64.urlsafe_b64encode(blob).rstrip(b"=").decode()}).encode()
rq = urllib.request.Request(sys.argv[2] + "/unwrapkey?api-version=7.4", body,
    {"Authorization": "Bearer " + sys.argv[3], "Content-Type": "application/json"})
v = json.load(urllib.request.urlopen(rq, context=ctx))["value"]
print(base64.urlsafe_b64decode(v + "=" * (-len(v) % 4)).hex())
PY
}
