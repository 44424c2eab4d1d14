#!/usr/bin/env bash
# tests/mount/t_basic.sh — the README's promise end to end: plaintext goes
# in through the mount and lands as ciphertext; mount returns only once it
# serves; status reports keys and mount state; umount waits for the daemon.
. "$(dirname "$0")/../lib/lib.sh"
t_need python3
t_init
t_mkvol
t_mount
# mount returned: the very first access must work (no race with readiness)
echo "the quick brown fox" >"$MNT/hello.txt"
[ "$(cat "$MNT/hello.txt")" = "the quick brown fox" ] || t_fail "read back"
grep -rqa "quick brown" "$CIPHER" && t_fail "plaintext visible in the cipher directory"
ls "$CIPHER" | grep -q hello && t_fail "plaintext name visible in the cipher directory"
t_ok "plaintext in, ciphertext out"

json=$("$CMKFS" status --json "$MNT")
python3 - "$json" "$CIPHER" "$MNT" <<'PY' || t_fail "status --json: $json"
import json, sys
s = json.loads(sys.argv[1])
assert s["format_version"] == 3 and s["block_size"] == 4096, s
assert len(s["volume_id"]) == 32
assert s["mounted"] is True and s["mountpoint"] == sys.argv[3], s
assert s["cipherdir"] == sys.argv[2], s
assert [l["layer"] for l in s["layers"]] == ["inner", "outer"]
assert all(l["provider"] == "local" and l["key_id"].startswith("local:") for l in s["layers"])
assert s["customer_managed_key"] is False
assert s["ciphers"]["inner"] == "AES-256-GCM" and s["ciphers"]["names"] == "AES-256-SIV"
assert isinstance(s["pid"], int)
PY
"$CMKFS" status "$CIPHER" | grep -q "mounted: *yes, on $MNT" || t_fail "status of cipherdir"
t_ok "status --json of a live mount"

pid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["pid"])' "$json")
t_umount
kill -0 "$pid" 2>/dev/null && t_fail "daemon $pid still running after umount returned"
"$CMKFS" status --json "$CIPHER" | grep -q '"mounted":false' || t_fail "status after umount"
t_ok "umount waited for the daemon"

t_mount
[ "$(cat "$MNT/hello.txt")" = "the quick brown fox" ] || t_fail "after remount"
# an unused, empty mountpoint is refused up front with exit 1
t_umount
mkdir "$T/busy"; touch "$T/busy/x"
if "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$T/nonexistent" 2>"$T/err"; then
	t_fail "mount on a missing directory succeeded"
fi
t_ok "remount reads back; bad mountpoint refused: $(head -n1 "$T/err")"
