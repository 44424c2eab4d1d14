#!/usr/bin/env bash
# scripts/deps.sh — install what building and testing cmkfs needs on
# Debian 12 (idempotent; only missing packages are fetched).
set -euo pipefail
pkgs=(
	build-essential autoconf automake libtool pkg-config clang libclang-rt-14-dev
	libfuse3-dev fuse3 libssl-dev libcurl4-openssl-dev libcjson-dev
	python3 python3-cryptography
	sqlite3 rsync git attr tar valgrind util-linux procps gdb openssl ca-certificates
	e2fsprogs logrotate
)
# Node.js and npm for tests/kvserver/t_sdk_js.sh (the official Azure SDK for
# JavaScript), only when there is no node at all: a NodeSource nodejs package
# carries its own npm and conflicts with Debian's npm package.
command -v node >/dev/null 2>&1 || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "deps: installing ${missing[*]}"
	sudo=
	[ "$(id -u)" = 0 ] || sudo=sudo
	$sudo apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -c /dev/fuse ] || { echo "deps: /dev/fuse is missing (modprobe fuse?)" >&2; exit 1; }
