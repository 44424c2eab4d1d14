#!/usr/bin/env bash
# tests/mount/t_fullfsx.sh — a model-checked writer load across a live full
# rekey (doc/KEYS.md "Full rekey"). On a mount holding a tree of some tens
# of MiB, two fsx model checkers (tests/mount/fsx.c) each work on their own
# files and a churn of creates, renames (long names included) and unlinks
# runs in a subdirectory, while `cmkfs cmk enable` and then `cmkfs rekey
# --full` rewrite the volume underneath. fsx goes on for 1000 operations
# after each command ended (-f). Every fsx operation must verify against
# its model (fsx exits 0), every renamed churn file must read back at once
# and the churn's final directory must be the one its count implies; after
# a remount with the new keys the tree, the fsx files (their final models,
# -k) and the churn directory read back, every file was re-sealed, the KEK
# generation moved on and no record is left in the journal.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need python3 sha256sum
t_init
export CMKFS_AUDIT_LOG=$T/audit.log CMKFS_RUNTIME_DIR=$T/run
FSX=${TOP_BUILDDIR:-$top_builddir}/tests/mount/fsx
[ -x "$FSX" ] || t_fail "fsx not built: $FSX"
# The tree is sized so that a rewrite takes seconds, not a blink: the
# load has to meet files in every state (before, during, after reseal).
NSMALL=1000 SMALL=32768 NBIG=6 BIG=$((8 * 1024 * 1024 + 321)) FSXMAX=2M
if [ "${CMKFS_SANITIZED:-0}" = 1 ]; then
	NSMALL=60 NBIG=2 BIG=$((3 * 1024 * 1024 + 321)) FSXMAX=512K
fi
LONGP=$(printf 'L%.0s' $(seq 1 200))

populate() { # dir
	local d=$1 i
	for i in $(seq 0 9); do mkdir -p "$d/tree/d$i"; done
	for i in $(seq 1 "$NSMALL"); do
		head -c $((SMALL - i)) /dev/urandom >"$d/tree/d$((i % 10))/s$i"
	done
	for i in $(seq 1 "$NBIG"); do head -c "$BIG" /dev/urandom >"$d/tree/big$i"; done
}
tree_sums() { (cd "$MNT/tree" && find . -type f -exec sha256sum {} + | sort -k2); }
tails() { # file id and sha256 of the bytes after the header of every backing file
	python3 - "$CIPHER" <<'PY'
import hashlib, os, sys
for root, dirs, files in os.walk(sys.argv[1]):
    dirs[:] = [d for d in dirs if not d.startswith("cmkfs.")]
    for f in files:
        if f.startswith("cmkfs.") or f.endswith(".name"): continue
        p = os.path.join(root, f)
        if os.path.islink(p) or not os.path.isfile(p): continue
        b = open(p, "rb").read()
        print(b[12:28].hex(), hashlib.sha256(b[148:]).hexdigest())
PY
}
gen() { python3 -c 'import sys,struct; b=open(sys.argv[1],"rb").read(); print(struct.unpack(">I",b[34:38])[0])' "$CIPHER/cmkfs.conf"; }

# The churn: iteration i creates c.<i>, renames c.<i-2> to r.<i-2> (and
# reads it back through the new name), unlinks r.<i-4>; every fifth name
# is long (a side file in cmkfs.links). The directory after n iterations
# follows from n alone.
cname() { if (($1 % 5 == 0)); then printf '%s%d' "$LONGP" "$1"; else printf '%d' "$1"; fi; }
churn() { # dir stopfile countfile (and countfile.started after 10 iterations)
	local d=$1 i=0 k
	mkdir "$d" || exit 1
	while [ ! -e "$2" ]; do
		printf 'churn %d\n' "$i" >"$d/c.$(cname "$i")" || exit 1
		if ((i >= 2)); then
			k=$((i - 2))
			mv "$d/c.$(cname $k)" "$d/r.$(cname $k)" || exit 1
			[ "$(cat "$d/r.$(cname $k)")" = "churn $k" ] || { echo "r.$k reads wrong" >&2; exit 1; }
		fi
		if ((i >= 4)); then rm "$d/r.$(cname $((i - 4)))" || exit 1; fi
		i=$((i + 1))
		((i != 10)) || : >"$3.started"
	done
	echo "$i" >"$3"
}
churn_check() { # dir count label
	local d=$1 n=$2 k p want=() got
	for k in $((n - 4)) $((n - 3)) $((n - 2)) $((n - 1)); do
		((k >= 0)) || continue
		if ((k >= n - 2)); then p=c; else p=r; fi
		want+=("$p.$(cname $k)")
		[ "$(cat "$d/$p.$(cname $k)" 2>&1)" = "churn $k" ] || t_fail "$3: churn $p.$k reads wrong"
	done
	got=$(ls -A "$d" | sort)
	[ "$got" = "$(printf '%s\n' "${want[@]}" | sort)" ] ||
		t_fail "$3: churn directory after $n iterations: $(echo "$got" | cut -c1-20 | tr '\n' ' ')"
}

# load LABEL CMD...: run CMD under the fsx and churn load, then check it
load() {
	local label=$1 f0 f1 c j rc
	shift
	rm -f "$T/stop"
	mkdir "$T/$label.m0" "$T/$label.m1"
	"$FSX" -n 100000000 -s 11 -N 2 -m "$FSXMAX" -f "$T/stop" -k "$T/$label.m0" "$MNT" >"$T/$label.fsx0" 2>&1 &
	f0=$!
	"$FSX" -n 100000000 -s 12 -N 2 -m "$FSXMAX" -f "$T/stop" -k "$T/$label.m1" "$MNT" >"$T/$label.fsx1" 2>&1 &
	f1=$!
	churn "$MNT/churn.$label" "$T/stop" "$T/$label.count" 2>"$T/$label.churn" &
	c=$!
	t_on_exit "touch '$T/stop'; kill $f0 $f1 $c 2>/dev/null"
	wait_for 60 grep -q '^fsx: dir' "$T/$label.fsx0" || t_fail "$label: fsx 0 did not start: $(cat "$T/$label.fsx0")"
	wait_for 60 grep -q '^fsx: dir' "$T/$label.fsx1" || t_fail "$label: fsx 1 did not start: $(cat "$T/$label.fsx1")"
	wait_for 60 test -e "$T/$label.count.started" || t_fail "$label: churn did not start: $(cat "$T/$label.churn")"
	# The command's own verdict is checked after the load's: a broken
	# reseal must be caught by the model, not only by the command.
	rc=0
	"$@" --json "$CIPHER" >"$T/$label.json" 2>"$T/$label.err" || rc=$?
	touch "$T/stop"
	for j in 0 1; do
		if [ "$j" = 0 ]; then wait "$f0"; else wait "$f1"; fi ||
			t_fail "$label: fsx $j failed during the rewrite: $(tail -30 "$T/$label.fsx$j")"
		grep -q 'seen at op' "$T/$label.fsx$j" || t_fail "$label: fsx $j did not go on past the end"
		t_log "$label: fsx $j $(grep 'seen at op' "$T/$label.fsx$j" | sed 's/.* at //'), $(tail -n1 "$T/$label.fsx$j")"
	done
	wait "$c" || t_fail "$label: churn failed during the rewrite: $(cat "$T/$label.churn")"
	[ "$rc" = 0 ] || t_fail "$label: $* failed ($rc): $(cat "$T/$label.err"; tail -1 "$T/$label.json")"
	grep -q '"ok":true' "$T/$label.json" || t_fail "$label: no JSON result: $(tail -3 "$T/$label.json")"
	grep -q '"full":true' "$T/$label.json" || t_fail "$label: no full-rekey progress lines"
	churn_check "$MNT/churn.$label" "$(cat "$T/$label.count")" "$label (live)"
	t_log "$label: churn $(cat "$T/$label.count") iterations; $(grep -o '"files":[0-9]*' "$T/$label.json"),\
$(grep -o '"bytes":[0-9]*' "$T/$label.json"), $(grep -o '"elapsed_ms":[0-9]*' "$T/$label.json" | tail -1)"
	echo "$(sed -n 's/^fsx: dir //; s/, seed.*//p' "$T/$label.fsx0") $T/$label.m0" >>"$T/fsxdirs"
	echo "$(sed -n 's/^fsx: dir //; s/, seed.*//p' "$T/$label.fsx1") $T/$label.m1" >>"$T/fsxdirs"
	echo "$label" >>"$T/labels"
}
# after a remount: everything reads back as the models say
readback() { # label
	local d m i
	tree_sums | diff "$T/sums" - >"$T/diff" || t_fail "$1: tree changed: $(head "$T/diff")"
	while read -r d m; do
		for i in 0 1; do
			cmp "$d/f$i" "$m/f$i" || t_fail "$1: $d/f$i differs from fsx's model"
		done
	done <"$T/fsxdirs"
	while read -r l; do churn_check "$MNT/churn.$l" "$(cat "$T/$l.count")" "$1: churn.$l"; done <"$T/labels"
}
resealed() { # label before-tails before-gen
	tails >"$T/tails.after"
	comm -12 <(sort "$2") <(sort "$T/tails.after") >"$T/same"
	[ -s "$T/same" ] && t_fail "$1: $(wc -l <"$T/same") files not re-sealed"
	[ "$(gen)" -gt "$3" ] || t_fail "$1: KEK generation did not move on"
	for f in "$CIPHER"/cmkfs.journal/*; do
		[ ! -s "$f" ] || t_fail "$1: journal record left: $f"
	done
}

t_mkvol
# before the mount: the daemon takes its Azure environment from it
kv_start
KID=$(kv_key cmk --size 2048)
t_mount
populate "$MNT"
tree_sums >"$T/sums"
: >"$T/fsxdirs"
: >"$T/labels"

# 1. live cmk enable under the load
tails >"$T/tails.before"; g0=$(gen)
load enable "$CMKFS" cmk enable --key "$KID"
t_remount
readback "after cmk enable"
resealed "cmk enable" "$T/tails.before" "$g0"
"$CMKFS" status --json "$MNT" | grep -q "$KID" || t_fail "status does not name the CMK"

# 2. live rekey --full under the load (the first round's fsx files are
# re-sealed again and checked again)
tails >"$T/tails.before"; g0=$(gen)
load full "$CMKFS" rekey --full
t_remount
readback "after rekey --full"
resealed "rekey --full" "$T/tails.before" "$g0"
t_umount
"$CMKFS" fsck --service-key "$KEY" "$CIPHER" >"$T/fsck" 2>&1 || t_fail "fsck: $(cat "$T/fsck")"
t_ok "fsx and a rename churn verified across a live cmk enable and rekey --full; a remount reads everything"
