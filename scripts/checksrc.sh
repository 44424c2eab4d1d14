#!/usr/bin/env bash
# scripts/checksrc.sh — banned functions and patterns in src/ and include/
# (STYLE.md §7, after curl's checksrc and s2n's grep_simple_mistakes.sh).
# Prints each hit and exits 1 if there is any.
set -uo pipefail
cd "$(dirname "$0")/.."
bad=0
check() { # regex explanation
	local hits
	hits=$(grep -rnE --include='*.c' --include='*.h' "$1" src include | grep -v 'checksrc: ok')
	if [ -n "$hits" ]; then
		printf 'checksrc: %s\n%s\n' "$2" "$hits"
		bad=1
	fi
}
check '\b(strcpy|strcat|sprintf|vsprintf|gets|strtok|atoi|atol|atof)\s*\(' "unbounded or unchecked libc call"
check '\b(rand|srand|random)\s*\(' "not a cryptographic RNG: use rand_bytes()"
check '\bsystem\s*\(' "system(): use fork/exec with an argv"
check 'CURLOPT_SSL_VERIFY(PEER|HOST)\s*,\s*0' "TLS verification switched off"
check 'CURLOPT_VERBOSE\s*,\s*1' "curl verbose output shows Authorization headers"
check '\bmemcmp\s*\([^)]*(key|mac|tag|kek|dek)' "memcmp on secret material: use CRYPTO_memcmp"
check '(^|[;{}]\s*)//' "C++ comments: use /* */"
[ $bad = 0 ] && echo "checksrc: clean"
exit $bad
