#!/usr/bin/env bash
# scripts/demo.sh — README's first command: install what is missing, build,
# make a demo volume with local service keys, mount it, and show a file
# going in as plaintext and landing as ciphertext. Leaves the mount up.
#   DEMO_DIR (default /tmp/cmkfs-demo): cipher/, mnt/, service.key
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
rm -rf "$d"
mkdir -p "$d/mnt"
export CMKFS_SERVICE_KEY=$d/service.key

echo "== cmkfs init $d/cipher"
"$cmkfs" init "$d/cipher"
echo "== cmkfs mount $d/cipher $d/mnt"
"$cmkfs" mount "$d/cipher" "$d/mnt"
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
echo "The mount stays up. Try it:  ls $d/mnt"
echo "Unmount with:                $cmkfs umount $d/mnt"
