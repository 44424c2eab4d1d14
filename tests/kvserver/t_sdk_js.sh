#!/usr/bin/env bash
# tests/kvserver/t_sdk_js.sh — the official Azure SDK for JavaScript
# (@azure/keyvault-keys 4.10, @azure/identity 4.13, pinned in sdk_js/)
# drives the bundled Key Vault server through the whole key lifecycle on
# the vault host and on the Managed HSM host, then drives a cmkfs mount
# with it: createKey -> init --cmk (versionless URI) -> mount ->
# rotateKey -> the mount follows to the new version within one interval ->
# updateKeyProperties({enabled:false}) -> locked within the bound ->
# enabled -> resumes -> beginDeleteKey -> locked -> recover -> resumes.
# The SDK is installed with npm ci into the build tree (once; reused while
# the lock file is unchanged). Without node/npm or the npm registry the
# test says why and skips (77): it never passes without the SDK running.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
SRC=${TOP_SRCDIR:-$top_builddir}/tests/kvserver/sdk_js
CACHE=${TOP_BUILDDIR:-$top_builddir}/sdk_js.cache	# outside tests/kvserver, which is in the dist

command -v node >/dev/null 2>&1 || t_skip "node is not installed (apt-get install nodejs npm)"
command -v npm >/dev/null 2>&1 || t_skip "npm is not installed (apt-get install npm)"
major=$(node -p 'process.versions.node.split(".")[0]')
[ "$major" -ge 20 ] || t_skip "node $major is too old for @azure/identity 4.13 (needs 20 or later)"
t_init

# --- install the pinned SDK (npm ci) into the build tree ---
mkdir -p "$CACHE"
cp "$SRC/package.json" "$SRC/package-lock.json" "$SRC/kv.mjs" "$CACHE/"
if ! cmp -s "$SRC/package-lock.json" "$CACHE/node_modules/.kvserver-lock" 2>/dev/null; then
	rm -rf "$CACHE/node_modules"
	if ! (cd "$CACHE" && timeout 300 npm ci --no-audit --no-fund --cache "$CACHE/npm-cache" --fetch-retries 1 \
		--fetch-retry-mintimeout 2000 --fetch-retry-maxtimeout 5000 \
		>"$T/npm.log" 2>&1); then
		tail -n 5 "$T/npm.log" | sed 's/^/# npm: /'
		if ! (cd "$CACHE" && timeout 60 npm ping --cache "$CACHE/npm-cache" --fetch-retries 0 >/dev/null 2>&1); then
			t_skip "the npm registry cannot be reached: the SDK could not be installed"
		fi
		t_fail "npm ci failed although the registry answers (see above)"
	fi
	cp "$SRC/package-lock.json" "$CACHE/node_modules/.kvserver-lock"
fi
ver() { node -p "require('$CACHE/node_modules/$1/package.json').version"; }
t_log "SDK: @azure/keyvault-keys $(ver @azure/keyvault-keys), @azure/identity $(ver @azure/identity), node $(node -v)"

# --- the server; the SDK signs in as its own application "sdk" ---
kv_start
SDK_SECRET=sdk-secret-$$
kv client add sdk --secret "$SDK_SECRET" >/dev/null
kv grant sdk '*' get,list,create,import,update,delete,recover,purge,rotate,getrotationpolicy,setrotationpolicy,encrypt,decrypt,wrapKey,unwrapKey >/dev/null
HSMURL=$(kv_json 'd["hsm_url"]' <"$KVDIR/server.json")
export NODE_EXTRA_CA_CERTS=$KVDIR/ca.pem
# sdk [vault|hsm] ARGS...: run kv.mjs with the SDK (secrets in the environment, never argv)
sdk() {
	local url=$KVURL hsm=0
	if [ "$1" = hsm ]; then url=$HSMURL hsm=1; fi
	shift
	(cd "$CACHE" && AZURE_CLIENT_ID=sdk AZURE_CLIENT_SECRET=$SDK_SECRET KV_URL=$url KV_HSM=$hsm \
		timeout 120 node kv.mjs "$@")
}

# --- the whole key lifecycle, vault and Managed HSM ---
for host in vault hsm; do
	sdk "$host" lifecycle "life-$host" >"$T/life-$host.out" 2>&1 || {
		cat "$T/life-$host.out"
		t_fail "SDK key lifecycle on the $host host"
	}
	sed 's/^/# /' "$T/life-$host.out"
	[ "$(grep -c '^ok ' "$T/life-$host.out")" = 10 ] || t_fail "$host lifecycle: not every step ran"
	t_ok "SDK key lifecycle on the $host host: create, get, update, rotation policy, rotate, list, versions, wrap/unwrap, delete, get deleted, recover, purge refused"
done
if grep -E 'eyJ[A-Za-z0-9_-]{20,}|sdk-secret|app-secret' "$KVDIR/requests.log" >/dev/null; then
	t_fail "a token or secret reached requests.log"
fi

# --- a cmkfs mount, driven through the SDK (versionless key URI) ---
INTERVAL=1
GRACE=6
KID=$(sdk vault create cmkjs) || t_fail "SDK createKey: $KID"
case $KID in "$KVURL"/keys/cmkjs/????????????????????????????????) ;; *) t_fail "unexpected key id $KID" ;; esac
BASE=${KID%/*}
kv grant app cmkjs get,wrapKey,unwrapKey >/dev/null
"$CMKFS" init --service-key "$KEY" --cmk "$BASE" "$CIPHER" >/dev/null || t_fail "init --cmk $BASE"
"$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace $GRACE "$CIPHER" "$MNT" ||
	t_fail "mount with a key made by the SDK"
echo "made with the official SDK" >"$MNT/a.txt"
t_ok "createKey (SDK) -> cmkfs init --cmk $BASE (versionless: follows the key) -> mount"

KID2=$(sdk vault rotate cmkjs) || t_fail "SDK rotateKey: $KID2"
VER=${KID2##*/}
[ "$VER" != "${KID##*/}" ] || t_fail "rotateKey made no new version"
cfgver() { "$CMKFS" status --json "$CIPHER" | kv_json 'd["cmk"]["version"]'; }
followed() { [ "$(cfgver)" = "$VER" ]; }
wait_for $((INTERVAL * 3 + 20)) followed || t_fail "the mount did not follow rotateKey: config on $(cfgver), want $VER"
grep -q "\"event\":\"cmk_rotate\".*\"key\":\"$KID2\".*automatic rotation" "$CMKFS_AUDIT_LOG" ||
	t_fail "the automatic rotation was not audited"
cat "$MNT/a.txt" >/dev/null || t_fail "unreadable after the rotation"
t_ok "rotateKey (SDK): the mount re-wrapped to $VER within one interval, audited as an automatic rotation"

sdk vault enable cmkjs "$VER" false >/dev/null || t_fail "SDK updateKeyProperties enabled=false"
wait_for $((INTERVAL + 25)) revoked "$MNT/a.txt" || t_fail "not locked after the SDK disabled the key"
sdk vault enable cmkjs "$VER" true >/dev/null || t_fail "SDK updateKeyProperties enabled=true"
wait_for $((INTERVAL + 25)) cat "$MNT/a.txt" || t_fail "no resume after the SDK enabled the key"
t_ok "updateKeyProperties({enabled:false}) locks within interval + 25 s; enabled again resumes"

sdk vault delete cmkjs >/dev/null || t_fail "SDK beginDeleteKey"
wait_for $((INTERVAL + 25)) revoked "$MNT/a.txt" || t_fail "not locked after the SDK deleted the key"
sdk vault recover cmkjs >/dev/null || t_fail "SDK beginRecoverDeletedKey"
wait_for $((INTERVAL + 25)) cat "$MNT/a.txt" || t_fail "no resume after the SDK recovered the key"
[ "$(cat "$MNT/a.txt")" = "made with the official SDK" ] || t_fail "content changed"
t_ok "beginDeleteKey locks; beginRecoverDeletedKey resumes"
t_umount
