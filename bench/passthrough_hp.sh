#!/usr/bin/env bash
# bench/passthrough_hp.sh — build libfuse's passthrough_hp example, the
# reference file system of issue #19, and print the path of the binary.
#
#   bench/passthrough_hp.sh [--cache DIR] [--rebuild]
#
# Debian ships neither a binary nor the source of passthrough_hp in its
# binary packages; the example is in the fuse3 source package. If
# DIR/passthrough_hp (default DIR: /var/tmp/cmkfs-bench-phd) is not built
# yet, this script (as root):
#   1. adds a deb-src entry for Debian bookworm main in a temporary file
#      under /etc/apt/sources.list.d/ and runs apt-get update;
#   2. runs `apt-get source fuse3` in a temporary directory outside the
#      repository;
#   3. removes the temporary sources file and runs apt-get update again,
#      so apt's lists are what it found (also when a step fails);
#   4. compiles example/passthrough_hp.cc with g++ -std=c++17 against the
#      installed libfuse3 (pkg-config fuse3; Debian 12: 3.14) and the
#      example's own headers, with the HAVE_* macros libfuse's meson build
#      would give it on glibc (HAVE_UTIMENSAT, HAVE_POSIX_FALLOCATE,
#      HAVE_SETXATTR), checks it (mount, write, utimensat, unmount) and
#      caches the binary in DIR.
# The source version matching the installed libfuse3 is fetched
# (fuse3=VERSION). It is a reference to measure against, not part of
# cmkfs: nothing of it enters the repository.
#
# Prints the binary's path on stdout, progress on stderr. Exit 0 when the
# binary is there; 1 (with the reason on stderr) when the network, apt or
# the compiler fails — the caller then leaves passthrough_hp out.
set -euo pipefail

CACHE=/var/tmp/cmkfs-bench-phd
REBUILD=0
while [ $# -gt 0 ]; do
	case $1 in
	--cache) CACHE=$2; shift 2 ;;
	--rebuild) REBUILD=1; shift ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "passthrough_hp: unknown argument $1" >&2; exit 2 ;;
	esac
done
BIN=$CACHE/passthrough_hp
if [ "$REBUILD" = 0 ] && [ -x "$BIN" ]; then
	echo "$BIN"
	exit 0
fi
say() { echo "passthrough_hp: $*" >&2; }
[ "$(id -u)" = 0 ] || { say "run as root (apt-get)"; exit 1; }
for t in apt-get g++ pkg-config dpkg-query; do
	command -v "$t" >/dev/null || { say "$t is missing"; exit 1; }
done
pkg-config --exists fuse3 || { say "libfuse3-dev is not installed (pkg-config fuse3)"; exit 1; }

# apt-get update, waiting for another apt run (other users of the machine)
# to let go of the lists lock.
apt_update() {
	for _ in $(seq 30); do
		if apt-get -q -o DPkg::Lock::Timeout=60 update >"$TMP/update.log" 2>&1; then
			# apt-get update exits 0 even when a source failed to
			# download; that would fetch nothing below, so catch it here
			if grep -Eq '^(Err:|W: Failed to fetch|E: )' "$TMP/update.log"; then
				say "apt-get update reported errors:"
				grep -E '^(Err:|W: |E: )' "$TMP/update.log" >&2
				return 1
			fi
			return 0
		fi
		grep -q 'Could not get lock' "$TMP/update.log" || {
			say "apt-get update failed:"; tail -n 5 "$TMP/update.log" >&2; return 1; }
		sleep 5
	done
	say "apt's lock stayed taken"; return 1
}

TMP=$(mktemp -d /var/tmp/cmkfs-bench-phd-src.XXXXXX)
SRCLIST=
restore() {
	local rc=$?
	set +e
	if [ -n "$SRCLIST" ] && [ -e "$SRCLIST" ]; then
		rm -f "$SRCLIST"
		say "removed $SRCLIST; apt-get update to put the lists back"
		apt_update || say "WARNING: apt-get update after removing $SRCLIST failed; run it again"
	fi
	rm -rf --one-file-system "$TMP"
	exit "$rc"
}
trap restore EXIT

ver=$(dpkg-query -W -f='${Version}' libfuse3-dev 2>/dev/null || true)
SRCLIST=/etc/apt/sources.list.d/cmkfs-bench-deb-src-$$.sources
cat >"$SRCLIST" <<'EOF'
# temporary, written and removed by cmkfs bench/passthrough_hp.sh
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
say "added $SRCLIST (deb-src bookworm main); apt-get update"
apt_update || { say "cannot reach Debian's source index; leaving passthrough_hp out"; exit 1; }
say "apt-get source fuse3${ver:+=$ver} into $TMP"
if ! (cd "$TMP" && apt-get -q source "fuse3${ver:+=$ver}" >"$TMP/source.log" 2>&1) &&
	! (cd "$TMP" && apt-get -q source fuse3 >"$TMP/source.log" 2>&1); then
	say "apt-get source fuse3 failed:"; tail -n 5 "$TMP/source.log" >&2; exit 1
fi
# Put the sources back before building: the build needs no network.
rm -f "$SRCLIST"
say "removed $SRCLIST; apt-get update to put the lists back"
SRCLIST=
apt_update || say "WARNING: apt-get update after removing the deb-src entry failed; run it again"

ex=$(find "$TMP" -path '*/example/passthrough_hp.cc' | head -n1)
if [ -z "$ex" ]; then
	# no dpkg-source: unpack the upstream tarball ourselves
	for t in "$TMP"/fuse3_*.orig.tar.*; do [ -f "$t" ] && tar -xf "$t" -C "$TMP"; done
	ex=$(find "$TMP" -path '*/example/passthrough_hp.cc' | head -n1)
fi
[ -n "$ex" ] || { say "example/passthrough_hp.cc is not in the fuse3 source package"; exit 1; }
exdir=$(dirname "$ex")
# In libfuse's own (meson) build the example sees the private
# fuse_config.h, whose HAVE_* results select code paths: without
# HAVE_UTIMENSAT, setting times on a path (tar -x, touch -h) fails with
# EOPNOTSUPP. Define what meson finds on glibc for the macros the example
# tests (3.14: utimensat, posix_fallocate, setxattr), and refuse to build
# if a newer example tests one we do not know.
defs=
for m in $(grep -ho '^#if\(n\)\{0,1\}def HAVE_[A-Z_]*' "$ex" | awk '{ print $2 }' | sort -u); do
	case $m in
	HAVE_UTIMENSAT | HAVE_POSIX_FALLOCATE | HAVE_SETXATTR | HAVE_FALLOCATE | \
		HAVE_COPY_FILE_RANGE | HAVE_FDATASYNC | HAVE_SPLICE | HAVE_VMSPLICE | \
		HAVE_PIPE2 | HAVE_FSTATAT | HAVE_OPENAT | HAVE_READLINKAT | HAVE_STRUCT_STAT_ST_ATIM)
		defs="$defs -D$m" ;;
	*) say "the example tests $m, which this script does not know; not building"; exit 1 ;;
	esac
done
mkdir -p "$CACHE"
say "g++ -std=c++17$defs $ex against libfuse3 $(pkg-config --modversion fuse3)"
# shellcheck disable=SC2046,SC2086
g++ -std=c++17 -O2 -g -Wall -D_REENTRANT -D_FILE_OFFSET_BITS=64 $defs -I"$exdir" \
	$(pkg-config --cflags fuse3) "$ex" -o "$BIN.tmp" $(pkg-config --libs fuse3) -lpthread \
	>"$TMP/build.log" 2>&1 ||
	{ say "build failed:"; tail -n 20 "$TMP/build.log" >&2; rm -f "$BIN.tmp"; exit 1; }
# A check before caching it: mount, write, set times on a path, unmount.
mkdir -p "$TMP/t/src" "$TMP/t/mnt"
if "$BIN.tmp" "$TMP/t/src" "$TMP/t/mnt" && mountpoint -q "$TMP/t/mnt" &&
	echo hello >"$TMP/t/mnt/f" && touch -h -d 2020-01-01 "$TMP/t/mnt/f" &&
	[ "$(cat "$TMP/t/src/f")" = hello ] && [ "$(stat -c %Y "$TMP/t/src/f")" = "$(date -d 2020-01-01 +%s)" ]; then
	fusermount3 -u "$TMP/t/mnt"
else
	mountpoint -q "$TMP/t/mnt" && fusermount3 -u "$TMP/t/mnt"
	say "the built passthrough_hp failed its check (mount, write, utimensat)"; rm -f "$BIN.tmp"; exit 1
fi
mv "$BIN.tmp" "$BIN"
{
	echo "libfuse passthrough_hp built by cmkfs bench/passthrough_hp.sh on $(date -u +%FT%TZ)"
	echo "source: $(basename "$(dirname "$exdir")") (apt-get source fuse3${ver:+=$ver}), $(sha256sum "$ex" | cut -c1-16)"
	echo "libfuse3: $(pkg-config --modversion fuse3)"
} >"$CACHE/README"
echo "$BIN"
