#!/usr/bin/env bash
# tests/golden/make-golden.sh — how the golden volumes were made, each once:
#   make-golden.sh OUTDIR       tests/golden/v1, with cmkfs 0.1.0 (format 1)
#   make-golden.sh -3 OUTDIR    tests/golden/v3, with the first build that
#                               wrote format 3 (doc/FORMAT.md)
# Golden volumes are never regenerated: every later build must mount and
# read the committed ones (t_golden.sh). Running this now makes a format-3
# volume either way (what `cmkfs init` writes today).
#
# Git keeps no xattrs, FIFOs, hard links, sparse files or modes beyond +x,
# so v1 holds none of those; the tamper and tool tests cover them. v3 adds
# what format 3 changed, as far as git can carry it:
# - hard links: git checks out each name as a file of its own. Each copy's
#   header still names its location: both tokens (2 names) or the link set
#   in cmkfs.hl/ holding all three (3 names), so every copy opens at its
#   own name and reads the same bytes; the link count reads 1. fsck
#   reports such copies (two backing files with one file id: a copy put
#   at a name its header lists), so t_golden.sh links the backing files
#   of one file id back together in its copy before it checks anything.
# - holes: git stores the zero slots as bytes, not as backing holes; holes
#   are judged by slot contents and hole records (§3.4), so they still read
#   as holes (H lines of the MANIFEST: SEEK_HOLE/SEEK_DATA).
# - a transient zone over an empty directory: its list (cmkfs.transient)
#   and the config's zones_version are kept, and no file in it can expire.
# Still left out: xattrs (git drops them), FIFOs and devices, and zones
# holding files (the sweeper would destroy them once their TTL passes).
#
# MANIFEST, one line each: `F sha256 path`, `L target path`, `D - path` (the
# entries, sorted), then checks that are not entries: `H start-end path`
# (v3: [start, end) is a hole for SEEK_HOLE/SEEK_DATA), `Z ttl path` (v3:
# a line of `cmkfs transient list`).
set -euo pipefail
v3=0
if [ "${1:-}" = -3 ]; then
	v3=1
	shift
fi
out=${1:?usage: make-golden.sh [-3] OUTDIR}
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
if [ "$v3" = 1 ]; then
	# sparse: data, a hole of blocks 2..254, data across 1 MiB, then a
	# truncate up leaves a trailing hole (the last block is sealed zeros)
	python3 - "$m/sparse" <<-'PY'
	import os, sys
	fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
	os.pwrite(fd, bytes((i * 13) % 256 for i in range(5000)), 0)
	os.pwrite(fd, bytes((i * 17) % 256 for i in range(3000)), (1 << 20) - 2000)
	os.ftruncate(fd, (1 << 20) + 40000)
	os.close(fd)
	PY
	# a hole punched inside data: blocks 3..6 of 10
	python3 -c "import sys; sys.stdout.buffer.write(bytes((i * 11) % 253 for i in range(40960)))" >"$m/punched"
	fallocate -p -o 12288 -l 16384 "$m/punched"
	echo "two names" >"$m/links2"
	ln "$m/links2" "$m/dir/links2-b"
	echo "three names: a link set" >"$m/links3"
	ln "$m/links3" "$m/dir/sub/links3-b"
	ln "$m/links3" "$m/links3-c"
	# a long target (> 2991 bytes) goes to cmkfs.links/; both symlinks are
	# renamed, so they are re-made for their new place
	ln -s "$(printf 'long/target/%.0s' $(seq 300))" "$m/longlink-old"
	mv "$m/longlink-old" "$m/dir/longlink"
	ln -s ../one-byte "$m/dir/slink-old"
	mv "$m/dir/slink-old" "$m/dir/sub/slink"
	# a file moved across directories, a directory renamed (its dirid
	# record rebound), a directory with a long name
	echo "renamed file" >"$m/before-rename"
	mv "$m/before-rename" "$m/dir/sub/renamed-file"
	mkdir -p "$m/olddir/inner"
	echo "in a renamed directory" >"$m/olddir/inner/file"
	mv "$m/olddir" "$m/renamed-dir"
	longd=$(printf 'd%.0s' $(seq 200))
	mkdir "$m/$longd"
	echo "in a long-named directory" >"$m/$longd/file"
	mkdir -p "$m/zone/empty"
	"$cmkfs" transient add --service-key "$out/service.key" --ttl 1d "$m/zone" "$out/cipher" >/dev/null
fi
(cd "$m" && find . -mindepth 1 | LC_ALL=C sort | while read -r p; do
	if [ -L "$p" ]; then echo "L $(readlink "$p") $p"
	elif [ -d "$p" ]; then echo "D - $p"
	else echo "F $(sha256sum <"$p" | cut -d' ' -f1) $p"; fi
done) >"$out/MANIFEST"
if [ "$v3" = 1 ]; then
	for f in sparse punched; do
		python3 - "$m/$f" "./$f" <<-'PY'
		import errno, os, sys
		fd = os.open(sys.argv[1], os.O_RDONLY)
		size, off = os.fstat(fd).st_size, 0
		while off < size:
		    h = os.lseek(fd, off, os.SEEK_HOLE)
		    if h >= size:
		        break
		    try:
		        d = os.lseek(fd, h, os.SEEK_DATA)
		    except OSError as e:
		        if e.errno != errno.ENXIO:
		            raise
		        d = size
		    print("H %d-%d %s" % (h, d, sys.argv[2]))
		    off = d
		PY
	done >>"$out/MANIFEST"
	"$cmkfs" transient list --service-key "$out/service.key" "$out/cipher" |
		while IFS=$'\t' read -r path ttl; do echo "Z $ttl .$path"; done >>"$out/MANIFEST"
fi
"$cmkfs" umount "$m"
rmdir "$m" "$tmp"
