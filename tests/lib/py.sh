#!/bin/sh
# tests/lib/py.sh — run a Python test helper with an interpreter that has
# the cryptography package (Debian's python3-cryptography is what
# scripts/deps.sh installs; a pyenv python3 may shadow it). Exit 77 (skip)
# if there is none.
for p in python3 /usr/bin/python3; do
	if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import cryptography' 2>/dev/null; then
		exec "$p" "$@"
	fi
done
echo "SKIP: no python3 with the cryptography package (apt-get install python3-cryptography)" >&2
exit 77
