#!/bin/bash
# tests/mount/t_canary.sh - no plaintext may reach the backing directory.
#
# A random canary is written through the mount as file contents (small file,
# 5 MiB file, unaligned write, append), xattr value and xattr name, file,
# directory, hard link and rename names, a symlink target and a 200-byte name.
# After unmounting, the backing directory (contents, names, symlink targets,
# xattrs) is searched for the canary and its hex and base64 renderings.
# A positive control proves the search finds each rendering, and a remount
# proves the canary IS readable through the mount.

# shellcheck source=../lib/lib.sh
. "$(dirname "$0")/../lib/lib.sh"

t_init
t_need grep find getfattr setfattr base64 od head yes dd cmp awk
# the plaintext copy needs user xattrs on the temp dir's filesystem
setfattr -n user.cmkfs.probe -v 1 "$T" 2>/dev/null ||
	t_skip "filesystem of $T does not support user xattrs (set TMPDIR)"

# ---------------------------------------------------------------- canary

# 32 hex chars; its 16 decoded bytes contain no NUL/newline (usable as a pattern)
while :; do
	bytes=$(head -c 16 /dev/urandom | od -An -v -tx1 | tr -s ' \n' '  ')
	case " $bytes " in *" 00 "* | *" 0a "*) continue ;; esac
	break
done
C=$(printf '%s' "$bytes" | tr -d ' ')
printf '%s' "$C" >"$T/canary.txt"
printf '%b' "$(printf '%s' "$C" | sed 's/../\\x&/g')" >"$T/canary.raw"
t_log "canary: $C"

PNAME=()
PVAL=()
addpat() {
	local i
	for i in "${!PVAL[@]}"; do [ "${PVAL[i]}" != "$2" ] || return 0; done
	PNAME+=("$1")
	PVAL+=("$2")
}

# base64 of file $2 at stream offsets 0,1,2 mod 3, keeping only the groups that
# depend on the canary bytes alone; standard and URL-safe alphabets
addb64() {
	local k e len
	len=$(stat -c %s "$2")
	for k in 0 1 2; do
		e=$({ head -c "$k" /dev/zero | tr '\0' x; cat "$2"; } | base64 -w0)
		[ "$k" = 0 ] || e=${e:4}
		[ $(((k + len) % 3)) = 0 ] || e=${e:0:${#e}-4}
		addpat "$1+$k" "$e"
		addpat "$1url+$k" "$(printf '%s' "$e" | tr '+/' '-_')"
	done
}

addpat canary "$C"
addpat CANARY "${C^^}"
H=$(od -An -v -tx1 <"$T/canary.txt" | tr -d ' \n')
addpat 'hex(canary)' "$H"
addpat 'HEX(canary)' "${H^^}"
addpat 'raw bytes' "$(cat "$T/canary.raw")"
addb64 'base64(canary)' "$T/canary.txt"
addb64 'base64(raw)' "$T/canary.raw"
t_log "searching for ${#PVAL[@]} renderings"

# ---------------------------------------------------------------- scanner

# grep that fails only on errors, not on "no match"
g() { LC_ALL=C grep "$@" || [ $? = 1 ]; }

# scan DIR: print "channel<TAB>rendering<TAB>where" for every hit under DIR
scan() {
	local d=$1 i v e
	find "$d" -mindepth 1 -printf '%P\n' >"$T/scan.names"
	find "$d" -type l -printf '%P -> %l\n' >"$T/scan.links"
	for e in text hex base64; do
		getfattr -R -P -h -d -m - -e "$e" --absolute-names "$d"
	done >"$T/scan.xattrs"
	for i in "${!PVAL[@]}"; do
		v=${PVAL[i]}
		{
			g -r -a -F -l -e "$v" -- "$d" | sed 's/^/content\t/'
			g -a -F -e "$v" "$T/scan.names" | sed 's/^/name\t/'
			g -a -F -e "$v" "$T/scan.links" | sed 's/^/symlink\t/'
			g -a -F -e "$v" "$T/scan.xattrs" | cut -c1-120 | sed 's/^/xattr\t/'
		} | awk -F'\t' -v OFS='\t' -v r="${PNAME[i]}" '{ c = $1; sub(/^[^\t]*\t/, ""); print c, r, $0 }'
	done
}

# ---------------------------------------------------------------- writer

LONG=$(printf 'L%.0s' {1..84})$C$(printf 'R%.0s' {1..84})
[ "${#LONG}" = 200 ] || t_fail "test bug: long name is ${#LONG} bytes"

# write_canaries DIR: the same operations go to the mount and to a plain copy
write_canaries() {
	local d=$1
	printf '%s' "$C" >"$d/small"
	{ yes "$C" || true; } | head -c $((5 * 1024 * 1024)) >"$d/large"
	printf '%s' "$C" | dd of="$d/unaligned" bs=1 seek=4080 status=none
	printf 'first line\n' >"$d/append" && printf '%s\n' "$C" >>"$d/append"
	setfattr -n user.canary -v "$C" "$d/small"
	setfattr -n "user.$C" -v "xattr name" "$d/small"
	printf 'named\n' >"$d/$C"
	mkdir "$d/dir-$C"
	printf 'inside\n' >"$d/dir-$C/in-$C"
	ln -s "target-$C" "$d/link"
	printf 'long name\n' >"$d/$LONG"
	ln "$d/small" "$d/hardlink-$C"
	printf 'renamed\n' >"$d/tmpname" && mv "$d/tmpname" "$d/renamed-$C"
}

xattrs_of() { (cd "$1" && getfattr -R -P -h -d -m '^user\.' -e hex . | awk '/^# file: /{ f = substr($0, 9); next } NF { print f "\t" $0 }' | LC_ALL=C sort); }

# ---------------------------------------------------------------- test

mkdir "$T/plain"
write_canaries "$T/plain"
t_mkvol
t_mount
write_canaries "$MNT"
t_ok "wrote canary through the mount (contents, xattr value and name, names, symlink target, 200-byte name)"
t_umount

# positive controls: the scanner must find every rendering in every channel
mkdir "$T/control"
for i in "${!PVAL[@]}"; do
	printf 'xx%syy' "${PVAL[i]}" >"$T/control/c$i"
done
scan "$T/control" | cut -f2 | sort -u >"$T/found.control"
if [ "$(wc -l <"$T/found.control")" != "${#PVAL[@]}" ]; then
	printf '%s\n' "${PNAME[@]}" | sort | diff - "$T/found.control" >&2 || true
	t_fail "test bug: scanner misses renderings in the control directory"
fi
scan "$T/plain" | cut -f1 | sort -u | tr '\n' ' ' >"$T/found.plain"
[ "$(cat "$T/found.plain")" = "content name symlink xattr " ] ||
	t_fail "test bug: scanner finds only channels [$(cat "$T/found.plain")] in the plaintext copy"
t_ok "scanner control: finds all ${#PVAL[@]} renderings, and canary in content/name/symlink/xattr"

# the backing directory must hold the data (else scanning it proves nothing)
size=$(du -sb "$CIPHER" | cut -f1)
[ "$size" -ge $((5 * 1024 * 1024)) ] || t_fail "backing directory holds only $size bytes; where did the data go?"
t_log "backing directory: $(find "$CIPHER" -mindepth 1 | wc -l) entries, $size bytes"

scan "$CIPHER" >"$T/leaks"
nleaks=$(wc -l <"$T/leaks")

# the canary must be readable through the mount after a remount
t_mount
if ! diff -r --no-dereference "$T/plain" "$MNT" >"$T/diff.out" 2>&1; then
	head -n 40 "$T/diff.out" >&2
	t_fail "after remount the mount does not match the plaintext copy"
fi
[ "$(xattrs_of "$T/plain")" = "$(xattrs_of "$MNT")" ] || t_fail "after remount xattrs differ"
[ "$(getfattr --absolute-names --only-values -n user.canary "$MNT/small")" = "$C" ] || t_fail "after remount xattr user.canary is wrong"
[ "$(readlink "$MNT/link")" = "target-$C" ] || t_fail "after remount symlink target is wrong"
[ "$(stat -c %h "$MNT/small")" = 2 ] || t_fail "after remount link count of small is not 2"
ls "$MNT" >"$T/ls.out"
grep -qxF -- "$LONG" "$T/ls.out" || t_fail "after remount the 200-byte name is not listed"
cmp -s "$T/plain/large" "$MNT/large" || t_fail "after remount large file differs"
t_ok "after remount the canary is readable in every place it was written"
t_umount

if [ "$nleaks" -gt 0 ]; then
	printf 'leak: channel\trendering\twhere\n' >&2
	head -n 40 "$T/leaks" | sed 's/^/leak: /' >&2
	t_fail "canary found $nleaks times in the backing directory (channels: $(cut -f1 "$T/leaks" | sort -u | tr '\n' ' '))"
fi
t_ok "canary not found in the backing directory (contents, names, symlink targets, xattrs; ${#PVAL[@]} renderings)"
