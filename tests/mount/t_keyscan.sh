#!/usr/bin/env bash
# tests/mount/t_keyscan.sh — data keys only in protected memory: while a
# volume is unlocked and files are open (their keyed contexts alive), no
# mapping of the daemon that is not both locked ("lo") and excluded from
# core dumps ("dd" in /proc/PID/smaps VmFlags) holds KEK_S, KEK_C, the
# volume secret, the name key or any open file's DEK_1/DEK_2, searched as
# the exact bytes (and base64 / base64url, as Key Vault carries keys)
# through /proc/PID/mem. The keys are derived independently
# (tests/vectors/volkeys.py; KEK_C unwrapped through Key Vault as any
# authorised client could). Positive control: the same search over every
# mapping finds every DEK of the open files. It works because AES-NI
# expands an AES-256 key with the key itself as the first two round keys,
# so a keyed context holds the raw DEK (the scan fails the control if a
# CPU path ever stores it otherwise).
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
# ASan reserves terabytes of readable shadow memory: scanning every mapping
# is impractical there (t_keymem skips for the same reason).
[ "${CMKFS_SANITIZED:-0}" = 1 ] && t_skip "scanning an ASan daemon's terabytes of shadow mappings is impractical"
t_init
kv_start
V=${TOP_SRCDIR:-$top_builddir}/tests/vectors/volkeys.py

# scan PID KEYFILE: prints "ANY <label> <where>" for every key found in any
# mapping and "EXPOSED <label> <where>" for those found in a mapping that
# is not both locked and dump-excluded; the last line counts what was read.
scan() {
	python3 - "$1" "$2" <<'PY'
import base64, re, sys
pid, keyfile = sys.argv[1], sys.argv[2]
keys = []
for line in open(keyfile):
    f = line.split()
    k = bytes.fromhex(f[1])
    label = f[0] + (":" + f[2].rsplit("/", 1)[-1][:8] if len(f) > 2 else "")
    keys.append((label, [k, base64.b64encode(k).rstrip(b"=")[:-1],
                         base64.urlsafe_b64encode(k).rstrip(b"=")[:-1]]))
maps, cur = [], None
hdr = re.compile(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+ *(.*)$")
for line in open("/proc/%s/smaps" % pid):
    m = hdr.match(line)
    if m:
        cur = {"start": int(m[1], 16), "end": int(m[2], 16), "perms": m[3],
               "name": m[4] or "[anon]", "flags": set()}
        maps.append(cur)
    elif line.startswith("VmFlags:"):
        cur["flags"] = set(line.split()[1:])
mem = open("/proc/%s/mem" % pid, "rb", buffering=0)
CHUNK, OVERLAP = 4 << 20, 64
exposed_maps = exposed_bytes = 0
for mp in maps:
    if "r" not in mp["perms"]:
        continue
    protected = {"lo", "dd"} <= mp["flags"]
    where = "%x-%x %s %s [%s]" % (mp["start"], mp["end"], mp["perms"],
                                  mp["name"], " ".join(sorted(mp["flags"])))
    hits, prev, off = set(), b"", mp["start"]
    while off < mp["end"]:
        n = min(CHUNK, mp["end"] - off)
        try:
            mem.seek(off)
            data = prev + mem.read(n)
        except OSError:	# [vvar], guard pages: nothing readable
            data = b""
        for label, forms in keys:
            if any(f in data for f in forms):
                hits.add(label)
        prev = data[-OVERLAP:]
        off += n
    if not protected:
        exposed_maps += 1
        exposed_bytes += mp["end"] - mp["start"]
    for label in sorted(hits):
        print("ANY", label, where)
        if not protected:
            print("EXPOSED", label, where)
print("SCANNED %d unprotected mappings, %d bytes" % (exposed_maps, exposed_bytes))
PY
}

# check NAME PID: derive the keys of the volume in $CIPHER (KEK_C given in
# $KEKC, or local) and of the files held open, then scan.
check() {
	local name=$1 pid=$2 files n out
	files=$(find "$CIPHER" -maxdepth 1 -type f ! -name 'cmkfs.*')
	# shellcheck disable=SC2086
	$PY "$V" "$CIPHER" "$KEY" ${KEKC:+--kek-c "$KEKC"} $files >"$T/keys.$name" || t_fail "volkeys"
	n=$(grep -c '^DEK' "$T/keys.$name")
	[ "$n" = 8 ] || t_fail "$name: expected 8 DEKs: $(cat "$T/keys.$name")"
	scan "$pid" "$T/keys.$name" >"$T/scan.$name" || t_fail "$name: scan failed"
	t_log "$name: $(tail -n1 "$T/scan.$name")"
	# positive control: every DEK of an open file is in the daemon
	out=$(awk '$1 == "ANY" && $2 ~ /^DEK/ { print $2 }' "$T/scan.$name" | sort -u | wc -l)
	[ "$out" = "$n" ] || t_fail "$name: positive control: only $out of $n DEKs found in any mapping (derivation or scan broken?): $(grep ^ANY "$T/scan.$name")"
	t_ok "$name: positive control: all $n DEKs of the open files are in the daemon's memory"
	if grep -q '^EXPOSED' "$T/scan.$name"; then
		t_fail "$name: key material in mappings that are not locked + dump-excluded:
$(grep '^EXPOSED' "$T/scan.$name")"
	fi
	t_ok "$name: no KEK, volume secret, name key or DEK in any mapping that is not locked and dump-excluded"
}

# open_files: four files created, written and read, held open on fds 3-6.
open_files() {
	for i in 3 4 5 6; do head -c 70000 /dev/urandom >"$MNT/f$i"; done
	exec 3<>"$MNT/f3" 4<>"$MNT/f4" 5<>"$MNT/f5" 6<>"$MNT/f6"
	for fd in 3 4 5 6; do
		head -c 4096 <&"$fd" >/dev/null
		printf 'written through the open fd\n' >&"$fd"
	done
	ls "$MNT" >/dev/null	# names: SIV contexts come and go
}
close_files() { exec 3<&- 4<&- 5<&- 6<&-; }

# 1. customer-managed: KEK_C in Key Vault
KID=$(kv_key cmk --size 2048)
"$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null
"$CMKFS" mount --service-key "$KEY" --key-check-interval 600 "$CIPHER" "$MNT"
pid=$("$CMKFS" status --json "$MNT" | kv_json 'd["pid"]')
open_files
KEKC=$(kv_unwrap_kekc "$CIPHER/cmkfs.conf" "$KID") || t_fail "unwrapping KEK_C through Key Vault"
check cmk "$pid"
close_files
"$CMKFS" umount "$MNT"

# 2. service-managed: both KEKs from the local service key
rm -rf "$CIPHER" "$KEY" && mkdir "$CIPHER"
KEKC=
t_mkvol >/dev/null
t_mount
pid=$("$CMKFS" status --json "$MNT" | kv_json 'd["pid"]')
open_files
check local "$pid"
close_files
t_umount
