#!/usr/bin/env bash
# tests/mount/t_fullkey.sh — `cmkfs rekey --full` and `cmkfs cmk enable`
# rewrite the volume (doc/KEYS.md "Full rekey"): offline and on a live
# mount, every name, symlink target (short and long), xattr, long name,
# hard link, empty and multi-chunk file reads back the same afterwards;
# every backing name and every file's tail bytes changed, the KEK
# generation moved on, the file ids stayed, no record is left in the
# journal, fsck is clean, mtimes are kept; and a live mount serves a
# writer throughout. The adversary's side is tests/mount/t_handover.sh.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need python3 sha256sum getfattr setfattr
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
BIG=$((5 * 1024 * 1024 + 1234))
[ "${CMKFS_SANITIZED:-0}" = 1 ] && BIG=$((2 * 1024 * 1024 + 77))

populate() { # dir
	local d=$1
	mkdir -p "$d/sub/deeper"
	printf 'hello\n' >"$d/a.txt"
	: >"$d/empty"
	head -c "$BIG" /dev/urandom >"$d/sub/big.bin"
	head -c 4096 /dev/urandom >"$d/sub/deeper/block"
	ln "$d/a.txt" "$d/sub/hard"
	ln -s a.txt "$d/link"
	ln -s "$(printf 'x%.0s' $(seq 1 3500))" "$d/longlink"
	long=$(printf 'n%.0s' $(seq 1 200))
	printf 'long name\n' >"$d/sub/$long"
	setfattr -n user.note -v "a note" "$d/a.txt"
	setfattr -n user.dirnote -v "on a dir" "$d/sub"
	mkfifo "$d/fifo"
}
# names, types, sizes, contents, targets, xattrs, link counts, mtimes (the
# root's changes with every write of cmkfs.conf, as for any rekey or cmk)
snapshot() { # dir
	(cd "$1" && find . -mindepth 1 -printf '%p %y %s %n %T@\n' | sort &&
		find . -type f -exec sha256sum {} + | sort -k2 &&
		find . -type l -printf '%p -> %l\n' | sort | sha256sum &&
		{ getfattr -R -d -m user. . 2>/dev/null || true; } | grep -v '^#' | sort)
}
backing_names() { (cd "$CIPHER" && find . -path ./cmkfs.journal -prune -o -print | sort); }
tails() { # sha256 of every regular backing file's bytes after the header, by file id
	python3 - "$CIPHER" <<'PY'
import hashlib, os, sys
for root, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = [d for d in dirs if not d.startswith("cmkfs.")]
    for f in files:
        if f.startswith("cmkfs.") and not f.startswith("cmkfs.ln."): continue
        if f.endswith(".name"): continue
        p = os.path.join(root, f)
        if os.path.islink(p) or not os.path.isfile(p): continue
        b = open(p, "rb").read()
        print(b[12:28].hex(), hashlib.sha256(b[148:]).hexdigest())
PY
}
gen() { python3 -c 'import sys,struct; b=open(sys.argv[1],"rb").read(); print(struct.unpack(">I",b[34:38])[0])' "$CIPHER/cmkfs.conf"; }
journal_clean() {
	local f
	for f in "$CIPHER"/cmkfs.journal/*; do
		[ -e "$f" ] || continue
		[ ! -s "$f" ] || t_fail "$1: journal record left: $f"
	done
}
check_rewritten() { # label before-names before-tails before-gen
	local label=$1
	snapshot "$MNT" >"$T/after"
	diff "$T/before" "$T/after" >"$T/diff" || t_fail "$label: the plaintext changed: $(head -20 "$T/diff")"
	backing_names >"$T/names.after"
	tails >"$T/tails.after"
	# every encrypted backing name changed (reserved names stay)
	comm -12 <(grep -v '/cmkfs\.[a-z]*$' "$2" | grep -v '^\.$') \
		<(grep -v '/cmkfs\.[a-z]*$' "$T/names.after") >"$T/same"
	grep -v 'cmkfs\.links' "$T/same" | grep -q . && t_fail "$label: backing names kept: $(head "$T/same")"
	# same file ids, every tail different
	[ "$(cut -d' ' -f1 "$3" | sort)" = "$(cut -d' ' -f1 "$T/tails.after" | sort)" ] ||
		t_fail "$label: file ids changed"
	comm -12 <(sort "$3") <(sort "$T/tails.after") | grep -q . &&
		t_fail "$label: a file's blocks were not re-sealed"
	[ "$(gen)" -gt "$4" ] || t_fail "$label: KEK generation did not move on"
	journal_clean "$label"
	t_log "$label: $(wc -l <"$T/tails.after") files re-sealed, names re-encrypted"
}

# 1. offline rekey --full
t_mkvol
t_mount
populate "$MNT"
snapshot "$MNT" >"$T/before"
t_umount
backing_names >"$T/names.before"; tails >"$T/tails.before"; g0=$(gen)
"$CMKFS" rekey --full --service-key "$KEY" "$CIPHER" >"$T/out" 2>&1 || t_fail "rekey --full: $(cat "$T/out")"
grep -q "full rekey" "$T/out" || t_fail "rekey --full did not say what it did: $(cat "$T/out")"
t_mount
check_rewritten "offline rekey --full" "$T/names.before" "$T/tails.before" "$g0"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after rekey --full: $(cat "$T/fsck")"

# 2. live cmk enable, with a writer appending throughout
kv_start
KID=$(kv_key cmk --size 2048)
t_mount
snapshot "$MNT" >"$T/before"
backing_names >"$T/names.before"; tails >"$T/tails.before"; g0=$(gen)
( i=0; while [ ! -e "$T/stop" ] && echo "line $i" >>"$MNT/writer.log"; do i=$((i + 1)); done; echo "$i" >"$T/lines" ) &
wpid=$!
t_on_exit "touch '$T/stop'; kill $wpid 2>/dev/null"
"$CMKFS" cmk enable --key "$KID" --json "$CIPHER" >"$T/enable.json" 2>"$T/enable.err" ||
	t_fail "live cmk enable: $(cat "$T/enable.err" "$T/enable.json")"
touch "$T/stop"; wait "$wpid"
grep -q '"ok":true' "$T/enable.json" || t_fail "no JSON result: $(tail -3 "$T/enable.json")"
grep -q '"progress"' "$T/enable.json" || t_fail "no JSON progress lines"
n=$(cat "$T/lines")
[ "$(wc -l <"$MNT/writer.log")" = "$n" ] || t_fail "writer lost lines: $(wc -l <"$MNT/writer.log") of $n"
[ "$(tail -n1 "$MNT/writer.log")" = "line $((n - 1))" ] || t_fail "writer's last line wrong"
rm "$MNT/writer.log"
check_rewritten "live cmk enable" "$T/names.before" "$T/tails.before" "$g0"
"$CMKFS" status --json "$MNT" | grep -q "$KID" || t_fail "status does not name the CMK"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck after enable: $(cat "$T/fsck")"
t_ok "full rekey offline and live cmk enable: everything reads back, everything re-encrypted"
