#!/usr/bin/env bash
# tests/mount/t_hosts.sh — credentials of every Azure host against the
# bundled Key Vault test server: Azure Arc managed identity (the 401
# "Basic realm=<file>" challenge answered with the agent's key file), client
# certificates as PKCS#12/PFX and as an encrypted PEM with
# AZURE_CLIENT_CERTIFICATE_PASSWORD, and the clear errors of a wrong
# password or a challenge naming a file outside the agent's directory.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
command -v openssl >/dev/null || t_skip "no openssl command to make certificates"
eval "$(kv env | grep -E '^export KVSERVER_ARC_')"
HKID=$(kv_key hostkey)

# use CRED: init, mount, write, read back and unmount with the credential
# the caller's environment sets up; stderr in $T/CRED.err
use() {
	local d=$T/$1
	"$CMKFS" init --service-key "$d.key" --cmk "$HKID" "$d.vol" >/dev/null 2>"$d.err" || return 1
	mkdir -p "$d.mnt"
	"$CMKFS" mount --service-key "$d.key" "$d.vol" "$d.mnt" 2>>"$d.err" || return 1
	echo "$1" >"$d.mnt/x"
	local got
	got=$(cat "$d.mnt/x")
	"$CMKFS" umount "$d.mnt"
	[ "$got" = "$1" ]
}

# --- Azure Arc: IDENTITY_ENDPOINT + IMDS_ENDPOINT, no IDENTITY_HEADER ---
kv client add arcmi --managed-identity --system-assigned >/dev/null
kv grant arcmi hostkey get,wrapKey,unwrapKey >/dev/null
arc_env() {
	unset AZURE_CLIENT_SECRET AZURE_CLIENT_ID AZURE_TENANT_ID IDENTITY_HEADER
	export IDENTITY_ENDPOINT=$KVSERVER_ARC_IDENTITY_ENDPOINT IMDS_ENDPOINT=$KVSERVER_ARC_IMDS_ENDPOINT
}
(
	arc_env
	export CMKFS_TEST_ARC_TOKEN_DIR=$KVSERVER_ARC_TOKEN_DIR
	use arc
) || t_fail "Azure Arc managed identity: $(cat "$T/arc.err")"
grep -q "GET /arc/metadata/identity/oauth2/token.* 401 op=arc_token" "$KVDIR/requests.log" ||
	t_fail "no Arc challenge in requests.log"
grep -q "GET /arc/metadata/identity/oauth2/token.* 200 op=arc_token client=arcmi" "$KVDIR/requests.log" ||
	t_fail "no Arc token after the challenge"
[ -z "$(ls -A "$KVSERVER_ARC_TOKEN_DIR")" ] || t_fail "challenge files left: the answers were not the server's"
t_ok "Azure Arc managed identity: challenge, key file, Basic answer, mount"

# The real agent's directory is the only one: a challenge naming another
# (here the server's, without the test-only override) is refused clearly.
(
	arc_env
	use arcout
) && t_fail "Arc challenge outside /var/opt/azcmagent/tokens/ accepted"
grep -q "/var/opt/azcmagent/tokens/" "$T/arcout.err" || t_fail "Arc refusal unclear: $(cat "$T/arcout.err")"
# A user-assigned identity does not exist on Arc (MSAL refuses it too).
(
	arc_env
	export CMKFS_TEST_ARC_TOKEN_DIR=$KVSERVER_ARC_TOKEN_DIR AZURE_CLIENT_ID=arcmi
	use arcuser
) && t_fail "Arc with AZURE_CLIENT_ID accepted"
grep -q "AZURE_CLIENT_ID" "$T/arcuser.err" || t_fail "Arc user-assigned refusal unclear: $(cat "$T/arcuser.err")"
t_ok "Azure Arc: a challenge file outside the agent's directory and a user-assigned identity are refused"

# --- certificates: PKCS#12/PFX and encrypted PEM with a password ---
PASS="pfx-pw-$$-$RANDOM"
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=cmkfs-hosts -days 1 \
	-keyout "$T/plain.pem" -out "$T/cert.crt" 2>/dev/null || t_fail "openssl req"
openssl pkcs12 -export -inkey "$T/plain.pem" -in "$T/cert.crt" -passout "pass:$PASS" \
	-out "$T/cert.pfx" 2>/dev/null || t_fail "openssl pkcs12 -export"
openssl pkcs8 -topk8 -v2 aes-256-cbc -in "$T/plain.pem" -passout "pass:$PASS" \
	-out "$T/enc.pem" 2>/dev/null || t_fail "openssl pkcs8"
cat "$T/cert.crt" >>"$T/enc.pem"
chmod 600 "$T/cert.pfx" "$T/enc.pem"
kv client add certapp --cert "$T/cert.crt" >/dev/null
kv grant certapp hostkey get,wrapKey,unwrapKey >/dev/null
for kind in pfx pem; do
	f=$T/cert.pfx
	[ $kind = pem ] && f=$T/enc.pem
	(
		unset AZURE_CLIENT_SECRET
		export AZURE_CLIENT_ID=certapp AZURE_CLIENT_CERTIFICATE_PATH=$f
		export AZURE_CLIENT_CERTIFICATE_PASSWORD=$PASS
		use $kind
	) || t_fail "certificate as $kind with a password: $(cat "$T/$kind.err")"
	for pw in wrong none; do
		(
			unset AZURE_CLIENT_SECRET AZURE_CLIENT_CERTIFICATE_PASSWORD
			export AZURE_CLIENT_ID=certapp AZURE_CLIENT_CERTIFICATE_PATH=$f
			[ $pw = wrong ] && export AZURE_CLIENT_CERTIFICATE_PASSWORD="$PASS-x"
			use $kind-$pw
		) && t_fail "$kind with $pw password accepted"
		grep -qF "$f" "$T/$kind-$pw.err" || t_fail "$kind, $pw password: file not named: $(cat "$T/$kind-$pw.err")"
		grep -q "AZURE_CLIENT_CERTIFICATE_PASSWORD" "$T/$kind-$pw.err" ||
			t_fail "$kind, $pw password: unclear: $(cat "$T/$kind-$pw.err")"
	done
done
grep -rqF "$PASS" "$T"/*.err "$CMKFS_AUDIT_LOG" "$KVDIR/requests.log" && t_fail "certificate password in a log"
t_ok "client certificate as PKCS#12/PFX and encrypted PEM with AZURE_CLIENT_CERTIFICATE_PASSWORD; wrong or missing password named clearly, never shown"

# --- Managed HSM oct-HSM keys of 128, 192 and 256 bits ---
# Key Vault's replies at our api-version carry no key_size for oct keys: the
# first operation finds the AES-KW size (a 400 for a size that does not fit),
# then every check costs one unwrap, as with any other key.
ochecks() { grep -c "\"event\":\"check\".*\"key\":\"$OKID\".*\"result\":\"ok\"" "$CMKFS_AUDIT_LOG" || true; }
ochecks_ge() { [ "$(ochecks)" -ge "$1" ]; }
for bits in 128 192 256; do
	OKID=$(kv_key "oct$bits" --kty oct-HSM --size $bits)
	d=$T/oct$bits
	"$CMKFS" init --service-key "$d.key" --cmk "$OKID" "$d.vol" >/dev/null 2>"$d.err" ||
		t_fail "init with a $bits-bit oct-HSM key: $(cat "$d.err")"
	mkdir "$d.mnt"
	"$CMKFS" mount --service-key "$d.key" --key-check-interval 1 "$d.vol" "$d.mnt" 2>>"$d.err" ||
		t_fail "mount with a $bits-bit oct-HSM key: $(cat "$d.err")"
	echo "oct $bits" >"$d.mnt/x"
	wait_for 30 ochecks_ge 1 || t_fail "no key check with the $bits-bit key"
	kv stats --reset >/dev/null
	n=$(ochecks)
	wait_for 30 ochecks_ge $((n + 3)) || t_fail "no key checks with the $bits-bit key"
	"$CMKFS" umount "$d.mnt"
	ops=$(kv stats | kv_json 'd["ops"].get("unwrap_key", 0)')
	m=$(($(ochecks) - n))
	[ "$ops" -le $((m + 1)) ] || t_fail "$bits-bit oct-HSM key: $ops unwraps for $m checks (the AES-KW size is found again each check?)"
	"$CMKFS" mount --service-key "$d.key" "$d.vol" "$d.mnt" 2>>"$d.err" || t_fail "remount ($bits)"
	[ "$(cat "$d.mnt/x")" = "oct $bits" ] || t_fail "data with the $bits-bit key"
	"$CMKFS" umount "$d.mnt"
done
t_ok "oct-HSM keys of 128, 192 and 256 bits wrap with A128KW, A192KW, A256KW; the size is found once per process, then one unwrap a check"
