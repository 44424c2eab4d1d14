#!/usr/bin/env bash
# tests/mount/t_expiry.sh — no expiry surprise (doc/KEYS.md "Expiry"),
# against the bundled Key Vault test server with keys whose attributes.exp
# is set through its admin API: the pre-flight margin of init --cmk, cmk
# rotate and mount (refused with when and how to proceed; --force and
# --expiry-margin 0 accept); warnings at 30, 7 and 1 days once per crossing
# in the audit log, `cmkfs status` (JSON and text) and its exit code 4; an
# extended exp clears them; mount and monitor judge a key alike (an expired
# key: the running mount locks with cause "expired", a new mount is refused
# with the same cause, where it used to mount and lock at the first check);
# the client certificate's notAfter warns like a key's exp.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_init
kv_start
INTERVAL=1
DAY=86400
mnt() { "$CMKFS" mount --service-key "$KEY" --key-check-interval $INTERVAL --grace 600 "$@"; }
mark() { wc -l <"$CMKFS_AUDIT_LOG"; }
# audit_count FROM EVENT RESULT: audit lines after line FROM with these fields
audit_count() {
	tail -n +"$(($1 + 1))" "$CMKFS_AUDIT_LOG" | grep -F "\"event\":\"$2\"" | grep -cF "\"result\":\"$3\"" || true
}
# st FIELD: a member of the daemon's status
# exit 4: an expiry warning; 5: locked (at expiry, below)
sj() {
	local rc=0
	"$CMKFS" status --json "$MNT" || rc=$?
	case $rc in 0 | 4 | 5) ;; *) return "$rc" ;; esac
}
st() { sj | kv_json "d['daemon']['$1']"; }
st_rc() { local rc=0; "$CMKFS" status "$@" >"$T/status.out" || rc=$?; echo $rc; }
now() { date +%s; }

# --- pre-flight: init --cmk refuses a key 5 days from expiry (margin 7) ---
KID=$(kv_key exk --size 2048 --exp $(($(now) + 5 * DAY + 3600)))
V1=${KID##*/}
rc=0; "$CMKFS" init --service-key "$KEY" --cmk "$KID" "$CIPHER" >/dev/null 2>"$T/err" || rc=$?
[ $rc = 1 ] || t_fail "init --cmk with a key 5 days from expiry: exit $rc"
grep -q "expires 20.*(5 days from now), within the 7-day expiry margin" "$T/err" &&
	grep -qF "az keyvault key set-attributes --id $KID --expires" "$T/err" &&
	grep -qF "cmkfs cmk rotate" "$T/err" || t_fail "refusal does not say when and how: $(cat "$T/err")"
[ ! -e "$CIPHER/cmkfs.conf" ] || t_fail "a refused init wrote a volume"
"$CMKFS" init --service-key "$KEY" --cmk "$KID" --force "$CIPHER" >/dev/null 2>"$T/err" ||
	t_fail "init --force: $(cat "$T/err")"
grep -q "warning: the key expires .*(forced)" "$T/err" || t_fail "--force does not warn: $(cat "$T/err")"
t_ok "init --cmk refuses a key within the 7-day margin, saying when it expires and how to proceed; --force accepts it"

# --- mount with the default margin (0): serves and warns at once ---
m=$(mark)
mnt "$CIPHER" "$MNT" 2>"$T/err" || t_fail "mount of a key 5 days from expiry: $(cat "$T/err")"
echo "conversation" >"$MNT/a.txt"
VOL=$(sj | kv_json 'd["volume_id"]')
line=$(tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"key_expiry_warning"' || true)
[ "$(printf '%s\n' "$line" | grep -c .)" = 1 ] || t_fail "want one key_expiry_warning at mount: $line"
printf '%s' "$line" | grep -qF '"result":"warning"' &&
	printf '%s' "$line" | grep -qF "\"volume\":\"$VOL\"" &&
	printf '%s' "$line" | grep -qF "\"key\":\"$KID\"" &&
	printf '%s' "$line" | grep -qF '5 days left' &&
	printf '%s' "$line" | grep -qF '(7-day warning)' || t_fail "warning line: $line"
[ "$(st key_expiry_warning)" = 7 ] && [ "$(st key_days_left)" = 5 ] ||
	t_fail "status JSON: $(sj)"
[ "$(st key_expires)" -gt "$(now)" ] || t_fail "status: key_expires $(st key_expires)"
[ "$(st credential_expiry_warning)" = 0 ] || t_fail "a client secret has no expiry to warn of"
[ "$(st_rc "$MNT")" = 4 ] || t_fail "status exit $(st_rc "$MNT"), want 4 (expiry warning)"
grep -q "^key expires: .*5 days left: WARNING, 7-day threshold" "$T/status.out" || t_fail "status text: $(cat "$T/status.out")"
[ "$(st_rc --json "$MNT")" = 4 ] || t_fail "status --json exit, want 4"
t_ok "mount 5 days before expiry: one key_expiry_warning (volume, key, days left) in the audit log; status JSON and text show it, exit 4"

# --- checks do not repeat it; an extended exp clears it ---
wait_for 20 sh -c "[ \$(grep -c '\"event\":\"check\"' '$CMKFS_AUDIT_LOG') -ge $(($(grep -c '"event":"check"' "$CMKFS_AUDIT_LOG") + 3)) ]" ||
	t_fail "no key checks"
[ "$(audit_count "$m" key_expiry_warning warning)" = 1 ] || t_fail "the warning is repeated by the checks"
kv set exk "$V1" --exp $(($(now) + 100 * DAY)) >/dev/null
wait_for 20 sh -c "[ \"\$('$CMKFS' status --json '$MNT' 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"daemon\"][\"key_expiry_warning\"])')\" = 0 ]" ||
	t_fail "extended key still warns: $(sj)"
[ "$(st_rc "$MNT")" = 0 ] || t_fail "status exit $(st_rc "$MNT") after the extension, want 0"
t_ok "later checks do not repeat the warning; an extended exp clears it (status exit 0)"

# --- cmk rotate to a version 12 h from expiry: refused; accepted with --expiry-margin 0; warns at 1 day ---
KID2=$(kv new-version exk --exp $(($(now) + DAY / 2)) | kv_json 'd["kid"]')
rc=0; "$CMKFS" cmk rotate --service-key "$KEY" --key "$KID2" "$CIPHER" >/dev/null 2>"$T/err" || rc=$?
[ $rc = 1 ] && grep -q "(0 days from now), within the 7-day expiry margin" "$T/err" ||
	t_fail "rotate to a key 12 h from expiry: exit $rc: $(cat "$T/err")"
grep -F '"event":"cmk_rotate"' "$CMKFS_AUDIT_LOG" | grep -qF '"result":"refused"' || t_fail "refused rotate not audited"
m=$(mark)
"$CMKFS" cmk rotate --service-key "$KEY" --key "$KID2" --expiry-margin 0 "$CIPHER" >/dev/null 2>"$T/err" ||
	t_fail "rotate --expiry-margin 0: $(cat "$T/err")"
wait_for 20 sh -c "tail -n +$((m + 1)) '$CMKFS_AUDIT_LOG' | grep '\"event\":\"key_expiry_warning\"' | grep -qF '(1-day warning)'" ||
	t_fail "no 1-day warning after the rotation: $(tail -n 5 "$CMKFS_AUDIT_LOG")"
[ "$(st key_expiry_warning)" = 1 ] && [ "$(st key_days_left)" = 0 ] || t_fail "status after rotate: $(sj)"
t_ok "rotate refuses a version 12 h from expiry, --expiry-margin 0 accepts it; the mount warns at the 1-day threshold"

# --- at expiry: the mount locks (cause expired); a new mount is refused alike ---
m=$(mark)
kv set exk "${KID2##*/}" --exp $(($(now) - 10)) >/dev/null
wait_for $((INTERVAL + 25)) revoked "$MNT/a.txt" || t_fail "expired key did not lock"
tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"lock"' | grep -qF '"cause":"expired"' ||
	t_fail "lock not audited as expired: $(tail -n 5 "$CMKFS_AUDIT_LOG")"
[ "$(st locked)" = True ] || t_fail "status not locked"
t_umount
m=$(mark)
rc=0; mnt "$CIPHER" "$MNT" 2>"$T/err" || rc=$?
if [ $rc = 0 ]; then t_umount; t_fail "mounted an expired key (the monitor locks on it)"; fi
[ $rc = 9 ] || t_fail "mount of an expired key: exit $rc, want 9"
tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"mount"' | grep -F '"result":"denied"' |
	grep -F '"cause":"expired"' | grep -qF "\"code\":\"exp=" || t_fail "refused mount not audited as expired: $(tail -n 3 "$CMKFS_AUDIT_LOG")"
grep -q "expired: key attributes exp=" "$T/err" || t_fail "mount error does not say expired: $(cat "$T/err")"
t_ok "expired key: the mount locks with cause expired, and a new mount is refused with the same cause and code"

# --- mount --expiry-margin: refused within it, audited ---
kv set exk "${KID2##*/}" --exp $(($(now) + 3 * DAY + 3600)) >/dev/null
m=$(mark)
rc=0; mnt --expiry-margin 7 "$CIPHER" "$MNT" 2>"$T/err" || rc=$?
if [ $rc = 0 ]; then t_umount; t_fail "mount --expiry-margin 7 mounted a key 3 days from expiry"; fi
tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"mount"' | grep -qF '"result":"refused"' || t_fail "margin refusal not audited"
mnt --expiry-margin 2 "$CIPHER" "$MNT" || t_fail "mount --expiry-margin 2"
[ "$(st key_expiry_warning)" = 7 ] || t_fail "status: $(sj)"
t_umount
t_ok "mount --expiry-margin 7 refuses a key 3 days from expiry (audited); --expiry-margin 2 mounts it"

# --- the client certificate's notAfter warns like a key's exp ---
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=cmkfs-exp -days 3 \
	-keyout "$T/cert.pem" -out "$T/cert.crt" 2>/dev/null || t_skip "openssl cannot make a certificate"
cat "$T/cert.crt" >>"$T/cert.pem"; chmod 600 "$T/cert.pem"
kv client add certapp --cert "$T/cert.crt" >/dev/null
kv grant certapp exk get,wrapKey,unwrapKey >/dev/null
kv set exk "${KID2##*/}" --exp none >/dev/null
m=$(mark)
(
	unset AZURE_CLIENT_SECRET
	export AZURE_CLIENT_ID=certapp AZURE_CLIENT_CERTIFICATE_PATH=$T/cert.pem
	mnt "$CIPHER" "$MNT"
) || t_fail "mount with a client certificate"
tail -n +"$((m + 1))" "$CMKFS_AUDIT_LOG" | grep '"event":"credential_expiry_warning"' |
	grep -F '"result":"warning"' | grep -qF '(7-day warning)' || t_fail "no credential_expiry_warning: $(tail -n 5 "$CMKFS_AUDIT_LOG")"
[ "$(st credential_expiry_warning)" = 7 ] && [ "$(st key_expiry_warning)" = 0 ] ||
	t_fail "status: $(sj)"
[ "$(st_rc "$MNT")" = 4 ] || t_fail "status exit $(st_rc "$MNT") with a certificate 3 days from expiry, want 4"
grep -q "^cert expires: " "$T/status.out" || t_fail "status text: $(cat "$T/status.out")"
t_umount
t_ok "client certificate 3 days from notAfter: credential_expiry_warning in the audit log, status shows it, exit 4"
