#!/usr/bin/env bash
# tests/golden/make-golden.sh — how tests/golden/v1 was made (once, with
# cmkfs 0.1.0, on-disk format 1). Golden volumes are never regenerated:
# every later build must mount and read the committed one (t_golden.sh).
# Git keeps no xattrs, hard links or modes beyond +x, so the volume holds
# none of those; the tamper and tool tests cover them.
set -euo pipefail
out=${1:?usage: make-golden.sh OUTDIR}
cmkfs=${CMKFS:-$(dirname "$0")/../../src/cmkfs}
mkdir -p "$out"
tmp=$(mktemp -d)
"$cmkfs" init --service-key "$out/service.key" "$out/cipher"
mkdir "$tmp/m"
"$cmkfs" mount --service-key "$out/service.key" "$out/cipher" "$tmp/m"
m=$tmp/m
: >"$m/empty"
printf x >"$m/one-byte"
for n in 4095 4096 4097 100000; do
	python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 7 + $n) % 251 for i in range($n)))" >"$m/size-$n"
done
mkdir -p "$m/dir/sub"
echo "nested file" >"$m/dir/sub/nested.txt"
echo "ünïcödé name" >"$m/dir/ünïcödé.txt"
ln -s sub/nested.txt "$m/dir/link"
long=$(printf 'n%.0s' $(seq 230))
echo "long name" >"$m/dir/$long"
(cd "$m" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
	if [ -L "$p" ]; then echo "L $(readlink "$p") $p"
	elif [ -d "$p" ]; then echo "D - $p"
	else echo "F $(sha256sum <"$p" | cut -d' ' -f1) $p"; fi
done) >"$out/MANIFEST"
"$cmkfs" umount "$m"
rmdir "$m" "$tmp"
