#!/usr/bin/env bash
# scripts/demo.sh — README's first command: install what is missing, build,
# make a demo volume with local service keys, mount it, and show a file
# going in as plaintext and landing as ciphertext. Then the customer-
# managed key with the bundled Key Vault test server: enable on the live
# mount -> revoke -> locked -> restore -> readable. Leaves both running.
#   DEMO_DIR (default /tmp/cmkfs-demo): cipher/, mnt/, service.key, kv/
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh
if [ ! -x build/release/src/cmkfs ]; then
	echo "== building (build/release)"
	[ -x configure ] || autoreconf -fi >/dev/null
	mkdir -p build/release
	(cd build/release && "$top/configure" -q && make -s -j"$(nproc)")
fi
cmkfs=$top/build/release/src/cmkfs
d=${DEMO_DIR:-/tmp/cmkfs-demo}
if grep -qs " $d/mnt fuse.cmkfs " /proc/self/mounts; then
	"$cmkfs" umount "$d/mnt"
fi
if [ -f "$d/kv/server.json" ]; then
	kill "$(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$d/kv/server.json")" 2>/dev/null || true
fi
rm -rf "$d"
mkdir -p "$d/mnt"
export CMKFS_SERVICE_KEY=$d/service.key

echo "== cmkfs init $d/cipher"
"$cmkfs" init "$d/cipher"
echo "== the bundled Key Vault test server on 127.0.0.1 (for the CMK part)"
py="sh $top/tests/lib/py.sh"
mkdir -p "$d/kv"
$py "$top/tests/kvserver/kvserver.py" --state-dir "$d/kv" >"$d/kv/server.out" 2>&1 &
kvctl() { $py "$top/tests/kvserver/kvctl.py" --state-dir "$d/kv" "$@"; }
kvctl wait >/dev/null
kvctl vault --soft-delete on --purge-protection on >/dev/null
kid=$(kvctl create-key cmk --size 3072 | sed -n 's/.*"kid": *"\([^"]*\)".*/\1/p')
key=${kid%/*}	# versionless: the volume follows the key's latest version
kvctl client add demo-app --secret demo-secret >/dev/null
kvctl grant demo-app cmk get,wrapKey,unwrapKey >/dev/null
url=$(sed -n 's/.*"url": *"\([^"]*\)".*/\1/p' "$d/kv/server.json")
export AZURE_TENANT_ID=$(sed -n 's/.*"tenant": *"\([^"]*\)".*/\1/p' "$d/kv/server.json")
export AZURE_CLIENT_ID=demo-app AZURE_CLIENT_SECRET=demo-secret AZURE_AUTHORITY_HOST=$url
export CMKFS_CA_FILE=$d/kv/ca.pem CMKFS_DISABLE_CHALLENGE_RESOURCE_VERIFICATION=1
# The daemon takes its Azure credentials from its environment, as the
# Azure SDKs do: set them before mounting.
export CMKFS_AUDIT_LOG=$d/audit.log CMKFS_RUNTIME_DIR=$d/run
echo "== cmkfs mount --key-check-interval 2 $d/cipher $d/mnt"
"$cmkfs" mount --key-check-interval 2 "$d/cipher" "$d/mnt"
mkdir "$d/mnt/transcripts"
echo "user: hello bot -- this line is private" >"$d/mnt/transcripts/conversation-1.txt"

echo
echo "== through the mount (what the bot sees)"
(cd "$d/mnt" && find . -mindepth 1 | sort)
cat "$d/mnt/transcripts/conversation-1.txt"
echo
echo "== in the cipher directory (what the disk and backups see)"
(cd "$d/cipher" && find . -mindepth 1 | sort)
f=$(find "$d/cipher" -mindepth 2 -type f ! -name 'cmkfs.*' | head -n1)
echo "-- first bytes of the encrypted file $f:"
od -A d -t x1 "$f" | head -n 6
if grep -rqa "private" "$d/cipher"; then
	echo "!! plaintext found in the cipher directory" >&2
	exit 1
fi
echo "(the word 'private' appears nowhere under $d/cipher)"
echo
"$cmkfs" status "$d/mnt"

echo
echo "== customer-managed key"
echo "-- cmkfs cmk enable --key $key (versionless, on the live mount)"
"$cmkfs" cmk enable --key "$key" "$d/cipher"
"$cmkfs" status "$d/cipher" | grep '^key vault:.*version'
echo "-- the customer rotates the key in Key Vault (a new version)"
new=$(kvctl new-version cmk | sed -n 's/.*"kid": *"\([^"]*\)".*/\1/p')
for _ in $(seq 60); do
	"$cmkfs" status "$d/cipher" | grep -q "version ${new##*/}" && break
	sleep 0.5
done
if ! "$cmkfs" status "$d/cipher" | grep -q "version ${new##*/}"; then
	echo "!! the mount did not follow the key's new version" >&2
	exit 1
fi
echo "   the mount followed it by itself (automatic rotation):"
"$cmkfs" status "$d/cipher" | grep '^key vault:.*version'
echo "-- the customer revokes the app's access to the key"
kvctl revoke demo-app cmk >/dev/null
for _ in $(seq 60); do
	cat "$d/mnt/transcripts/conversation-1.txt" >/dev/null 2>&1 || break
	sleep 0.5
done
if cat "$d/mnt/transcripts/conversation-1.txt" 2>&1; then
	echo "!! still readable after revocation" >&2
	exit 1
fi
echo "-- access restored"
kvctl grant demo-app cmk get,wrapKey,unwrapKey >/dev/null
for _ in $(seq 60); do
	cat "$d/mnt/transcripts/conversation-1.txt" >/dev/null 2>&1 && break
	sleep 0.5
done
cat "$d/mnt/transcripts/conversation-1.txt"
echo "-- audit trail ($d/audit.log):"
grep -E '"event":"(cmk_enable|cmk_rotate|lock|resume)"' "$d/audit.log" | cut -c1-250
echo
echo "The mount stays up, its customer layer under the test server's key."
echo "Try it:          ls $d/mnt"
echo "Unmount with:    CMKFS_RUNTIME_DIR=$d/run $cmkfs umount $d/mnt"
echo "Stop the server: kill $(sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' "$d/kv/server.json")"
