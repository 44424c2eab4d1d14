#!/usr/bin/env bash
# tests/mount/t_access.sh — access control and secret hygiene (issue #6):
# 1. without allow_other only the mounting user gets in;
# 2. with allow_other the kernel enforces POSIX permissions
#    (default_permissions is always on) for another user;
# 3. an unprivileged user inits and mounts; its daemon is non-dumpable and
#    keeps key memory locked (and says so when it cannot);
# 4. audit log modes: created 0600, a loose or symlinked one warned about;
# 5. no secret (service key, KEKs, DEKs, client secret, bearer tokens) in
#    any /proc/*/cmdline, the daemon's environ, its debug log, the audit
#    log, error messages or the cipher directory, with positive controls.
# The second user is nobody (65534), through setpriv.
. "$(dirname "$0")/../lib/lib.sh"
. "$(dirname "$0")/../lib/kv.sh"
t_need python3 setpriv unshare nsenter prlimit
t_init
chmod 0711 "$T"			# nobody must reach $MNT and its own dir
export CMKFS_RUNTIME_DIR=$T/run CMKFS_AUDIT_LOG=$T/alog/audit.log
NB=(setpriv --reuid=65534 --regid=65534 --clear-groups)
NBPATH=/usr/local/bin:/usr/bin:/bin	# not root's (pyenv shims under /root)
NBPY=$(PATH=$NBPATH command -v python3) || t_skip "no python3 in $NBPATH for nobody"

# nobody OP PATH [PATH2]: one system call as nobody; prints OK or the errno name
cat >"$T/op.py" <<'PY'
import errno, os, sys
op, a = sys.argv[1], sys.argv[2:]
try:
    if op == "stat": os.stat(a[0])
    elif op == "ls": os.listdir(a[0])
    elif op == "read": open(a[0], "rb").read()
    elif op == "write": open(a[0], "r+b").write(b"x")
    elif op == "create": os.close(os.open(a[0], os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
    elif op == "unlink": os.unlink(a[0])
    elif op == "rename": os.rename(a[0], a[1])
    elif op == "chmod": os.chmod(a[0], 0o666)
    elif op == "chown": os.chown(a[0], os.getuid(), os.getgid())
    elif op == "append": open(a[0], "ab").write(b"x")
    elif op == "truncate": os.truncate(a[0], 1)
    elif op == "otrunc": os.close(os.open(a[0], os.O_WRONLY | os.O_TRUNC))
    elif op == "fallocate":
        fd = os.open(a[0], os.O_WRONLY)
        try: os.posix_fallocate(fd, 0, 65536)
        finally: os.close(fd)
    print("OK")
except OSError as e:
    print(errno.errorcode.get(e.errno, str(e.errno)))
PY
chmod 0644 "$T/op.py"
nobody() { "${NB[@]}" "$NBPY" "$T/op.py" "$@"; }
# kill_ours PID WORD: at cleanup, kill PID only if it is still the process
# we started (WORD in its argv), not a later process that got its number
kill_ours() { tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline" | grep -qF -- "$2" && kill "$1"; }
expect_nb() { # WANT OP PATH...
	local want=$1 got
	shift
	got=$(nobody "$@")
	[ "$got" = "$want" ] || t_fail "nobody: $*: got $got, want $want"
}

# ---------------------------------------------------------------- 1 ---
t_mkvol
t_mount
mkdir -m 0777 "$MNT/open"
echo shared >"$MNT/open/pub"
chmod 0666 "$MNT/open/pub"
chmod 0777 "$MNT/open"		# umask-proof
expect_nb EACCES stat "$MNT"
expect_nb EACCES ls "$MNT"
expect_nb EACCES stat "$MNT/open"
expect_nb EACCES ls "$MNT/open"
expect_nb EACCES read "$MNT/open/pub"
expect_nb EACCES write "$MNT/open/pub"
expect_nb EACCES create "$MNT/open/new"
cat "$MNT/open/pub" >/dev/null || t_fail "the mounting user cannot read its own file"
t_ok "without allow_other: nobody gets EACCES on the mountpoint, a 0777 dir and a 0666 file"

# ---------------------------------------------------------------- 4a --
[ "$(stat -c %a "$T/alog")" = 700 ] || t_fail "audit log directory mode $(stat -c %a "$T/alog"), want 700"
[ "$(stat -c %a "$CMKFS_AUDIT_LOG")" = 600 ] || t_fail "audit log created with mode $(stat -c %a "$CMKFS_AUDIT_LOG"), want 600"
t_umount
chmod 0622 "$CMKFS_AUDIT_LOG"

# ---------------------------------------------------------------- 2 ---
"$CMKFS" mount -o allow_other --service-key "$KEY" "$CIPHER" "$MNT" 2>"$T/mount.err" ||
	t_fail "mount -o allow_other: $(cat "$T/mount.err")"
grep -q "audit log.*writable by group or others" "$T/mount.err" ||
	t_fail "no warning about a group/other-writable audit log: '$(cat "$T/mount.err")'"
grep -q '"event":"mount"' "$CMKFS_AUDIT_LOG" || t_fail "no mount event in the (loose) audit log"
chmod 0600 "$CMKFS_AUDIT_LOG"
t_ok "audit log created 0600 in a new 0700 directory; a group/other-writable one is warned about"

chmod 0755 "$MNT"
echo public >"$MNT/pub"; chmod 0644 "$MNT/pub"
echo private >"$MNT/priv"; chmod 0600 "$MNT/priv"
mkdir -m 0755 "$MNT/rodir"
mkdir -m 1777 "$MNT/sticky"; chmod 1777 "$MNT/sticky"
echo root >"$MNT/sticky/rootfile"; chmod 0666 "$MNT/sticky/rootfile"
expect_nb OK stat "$MNT"
expect_nb OK ls "$MNT"
expect_nb OK read "$MNT/pub"
expect_nb OK read "$MNT/open/pub"
expect_nb EACCES read "$MNT/priv"
expect_nb EACCES write "$MNT/pub"
expect_nb EACCES create "$MNT/rodir/new"
expect_nb EACCES unlink "$MNT/pub"
expect_nb OK create "$MNT/open/mine"
[ "$(stat -c %u:%g "$MNT/open/mine")" = 65534:65534 ] ||
	t_fail "nobody's new file is owned by $(stat -c %u:%g "$MNT/open/mine")"
t_umount			# ownership must be on disk, not only cached
"$CMKFS" mount -o allow_other --service-key "$KEY" "$CIPHER" "$MNT"
[ "$(stat -c %u:%g "$MNT/open/mine")" = 65534:65534 ] ||
	t_fail "after a remount nobody's file is owned by $(stat -c %u:%g "$MNT/open/mine")"
expect_nb EPERM unlink "$MNT/sticky/rootfile"
expect_nb EPERM rename "$MNT/sticky/rootfile" "$MNT/sticky/stolen"
expect_nb OK create "$MNT/sticky/nbfile"
expect_nb OK rename "$MNT/sticky/nbfile" "$MNT/sticky/nbfile2"
expect_nb OK unlink "$MNT/sticky/nbfile2"
expect_nb EPERM chmod "$MNT/pub"
expect_nb EPERM chown "$MNT/pub"
[ "$(stat -c %a:%u "$MNT/pub")" = 644:0 ] || t_fail "pub changed: $(stat -c %a:%u "$MNT/pub")"
[ "$(cat "$MNT/sticky/rootfile")" = root ] || t_fail "root's file in the sticky dir changed"
# setuid/setgid go when a user without CAP_FSETID writes, truncates, opens
# with O_TRUNC or extends with fallocate; setgid stays without group
# execute; root's own write keeps them. The kernel tells the daemon when
# (FUSE_HANDLE_KILLPRIV_V2, src/fuse/wire.c) and the daemon clears them.
for f in sw st so sf sg sr; do echo x >"$MNT/open/$f"; chmod 6777 "$MNT/open/$f"; done
chmod 2767 "$MNT/open/sg"
expect_nb OK append "$MNT/open/sw"
expect_nb OK truncate "$MNT/open/st"
expect_nb OK otrunc "$MNT/open/so"
expect_nb OK fallocate "$MNT/open/sf"
expect_nb OK write "$MNT/open/sg"
echo y >>"$MNT/open/sr"
kmodes() { stat -c %a "$MNT/open/sw" "$MNT/open/st" "$MNT/open/so" "$MNT/open/sf" "$MNT/open/sg" "$MNT/open/sr" | tr '\n' ' '; }
want="777 777 777 777 2767 6777 "
modes=$(kmodes)
[ "$modes" = "$want" ] || t_fail "modes seen through the mount after nobody's write, truncate, O_TRUNC, fallocate, write (setgid without g+x), root's write: $modes (want $want)"
t_umount			# the modes must be on disk, not only cached
"$CMKFS" mount -o allow_other --service-key "$KEY" "$CIPHER" "$MNT"
modes=$(kmodes)
[ "$modes" = "$want" ] || t_fail "after a remount, modes after nobody's write, truncate, O_TRUNC, fallocate, write (setgid without g+x), root's write: $modes (want $want)"
t_umount
t_ok "allow_other: nobody reads 0644, not 0600 (EACCES); cannot write 0644 or create in 0755 (EACCES); creates in 0777 as 65534:65534; sticky dir protects root's file (EPERM); chmod/chown refused (EPERM); setuid/setgid cleared by nobody's write, truncate, O_TRUNC and fallocate (setgid kept without g+x), kept by root's"

# symlinked audit log: refused (O_NOFOLLOW), events go to syslog only
ln -s "$T/elsewhere" "$T/alog/link"
CMKFS_AUDIT_LOG=$T/alog/link "$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT" 2>"$T/mount.err"
t_umount
grep -q "audit log $T/alog/link: .*syslog only" "$T/mount.err" || t_fail "symlinked audit log: '$(cat "$T/mount.err")'"
[ ! -e "$T/elsewhere" ] || t_fail "the audit log followed a symlink"
t_ok "a symlinked audit log is refused with a warning (events to syslog only)"

# ---------------------------------------------------------------- 3 ---
U=$T/u
UM=$U/mnt
mkdir -m 0700 "$U"
chown 65534:65534 "$U"
uenv=(env -i PATH="$NBPATH" HOME="$U" CMKFS_RUNTIME_DIR="$U/run" CMKFS_AUDIT_LOG="$U/audit.log"
	ASAN_OPTIONS="${ASAN_OPTIONS//$T\/asan.log/$U/asan.log}"
	UBSAN_OPTIONS="${UBSAN_OPTIONS//$T\/ubsan.log/$U/ubsan.log}")
# the nobody daemon's sanitizer reports go to $U: hand them to the check
t_on_exit 'for f in "$U"/asan.log.* "$U"/ubsan.log.*; do [ -f "$f" ] && mv "$f" "$T/"; done'
u() { "${NB[@]}" "${uenv[@]}" "$@"; }
u mkdir "$U/c" "$UM"
u "$CMKFS" init --service-key "$U/k" "$U/c" >"$T/uinit.out" 2>&1 || t_fail "init as nobody: $(cat "$T/uinit.out")"
[ "$(stat -c '%a %u' "$U/k")" = "600 65534" ] || t_fail "nobody's key file: $(stat -c '%a %u' "$U/k")"
for f in "$U/c"/*; do
	[ $((0$(stat -c %a "$f") & 022)) = 0 ] || t_fail "init made $f group/other-writable ($(stat -c %a "$f"))"
done
t_ok "init as nobody: key file 0600 owned by 65534, no group/other-writable volume file"

# /dev/fuse is 0666 where udev runs (50-udev-default.rules); a bare
# devtmpfs (containers) leaves it 0600 and libfuse's open fails with
# EACCES for any user but root. Then give nobody a 0666 node of the same
# device in a private mount namespace, so nothing changes for the host.
NSMODE=
if ! "${NB[@]}" sh -c ': <>/dev/fuse' 2>/dev/null; then
	NSMODE=1
	t_log "/dev/fuse is mode $(stat -c %a /dev/fuse) (no udev): nobody cannot open it;" \
		"unprivileged mounts run in a private mount namespace with a 0666 node"
	mknod -m 0666 "$T/fuse" c $((0x$(stat -c %t /dev/fuse))) $((0x$(stat -c %T /dev/fuse)))
fi
upid=
umnt() { # extra prefix args (e.g. prlimit ...) then mount as nobody; sets upid
	if [ -n "$NSMODE" ]; then
		unshare --mount --propagation private sh -c 'mount --bind "$0" /dev/fuse && exec "$@"' \
			"$T/fuse" "$@" "${NB[@]}" "${uenv[@]}" "$CMKFS" mount --service-key "$U/k" "$U/c" "$UM"
	else
		"$@" "${NB[@]}" "${uenv[@]}" "$CMKFS" mount --service-key "$U/k" "$U/c" "$UM"
	fi || return 1
	upid=$(head -n1 "$U"/run/*.pid)
	t_on_exit "kill_ours $upid '$UM'"
}
in_u() { if [ -n "$NSMODE" ]; then nsenter -t "$upid" -m -- "$@"; else "$@"; fi; }
uumount() {
	in_u "${NB[@]}" "${uenv[@]}" "$CMKFS" umount "$UM" || t_fail "umount as nobody"
	wait_for 30 sh -c "! kill -0 $upid" || t_fail "nobody's daemon $upid still runs after umount"
}
umnt env 2>"$T/u.err" || t_fail "mount as nobody: $(cat "$T/u.err")"
in_u "${NB[@]}" sh -c "echo hello >'$UM/f' && cat '$UM/f'" | grep -qx hello || t_fail "nobody cannot use its mount"
t_ok "unprivileged init + mount (fusermount3)${NSMODE:+ with a private 0666 /dev/fuse}: nobody reads and writes its mount"

[ "$(awk '/^Uid:/ {print $2}' "/proc/$upid/status")" = 65534 ] || t_fail "daemon $upid does not run as nobody"
"${NB[@]}" sleep 30 &		# control: a dumpable process of nobody's
sp=$!
owned_by_nobody() { [ "$(stat -c %u "/proc/$1/status")" = 65534 ]; }
wait_for 10 owned_by_nobody "$sp" || t_fail "control: /proc/$sp/status of nobody's sleep owned by $(stat -c %u "/proc/$sp/status")"
kill "$sp"
wait "$sp" 2>/dev/null || true
for f in status environ maps mem; do
	[ "$(stat -c %u "/proc/$upid/$f")" = 0 ] ||
		t_fail "/proc/$upid/$f of nobody's daemon is owned by $(stat -c %u "/proc/$upid/$f"): the daemon is dumpable"
done
expect_nb EACCES read "/proc/$upid/environ"
grep -q '"event":"mount"' "$U/audit.log" || t_fail "no mount event in nobody's audit log"
[ "$(stat -c %a "$U/audit.log")" = 600 ] || t_fail "nobody's audit log mode $(stat -c %a "$U/audit.log")"
t_ok "nobody's daemon is non-dumpable: /proc/$upid/{status,environ,maps,mem} owned by root (a plain process of nobody's: 65534), environ unreadable to nobody"

vmlck() { awk '/^VmLck:/ {print $2}' "/proc/$1/status"; }
if [ "${CMKFS_SANITIZED:-0}" = 1 ]; then
	t_log "skipping VmLck checks: ASan intercepts mlock() as a no-op"
	uumount
else
	lck=$(vmlck "$upid")
	[ "${lck:-0}" -gt 0 ] || t_fail "nobody's daemon has no locked memory (VmLck ${lck:-?} kB)"
	grep -q "cannot lock key memory" "$T/u.err" && t_fail "mlock warning with RLIMIT_MEMLOCK $(ulimit -l)"
	uumount
	t_ok "key memory locked: VmLck $lck kB under RLIMIT_MEMLOCK $(ulimit -l) kB"
	umnt prlimit --memlock=0:0 2>"$T/u.err" || t_fail "mount with RLIMIT_MEMLOCK 0: $(cat "$T/u.err")"
	grep -q "cannot lock key memory (.*); raise RLIMIT_MEMLOCK" "$T/u.err" ||
		t_fail "mlock failure not reported: '$(cat "$T/u.err")'"
	[ "$(grep -c "cannot lock" "$T/u.err")" = 1 ] || t_fail "mlock failure reported more than once"
	[ "$(vmlck "$upid")" = 0 ] || t_fail "VmLck $(vmlck "$upid") with RLIMIT_MEMLOCK 0?"
	in_u "${NB[@]}" cat "$UM/f" | grep -qx hello || t_fail "the mount without locked memory does not serve"
	uumount
	t_ok "RLIMIT_MEMLOCK 0: the mount still serves and says once 'cannot lock key memory ... raise RLIMIT_MEMLOCK'"
fi

# ---------------------------------------------------------------- 5 ---
kv_start			# sets AZURE_CLIENT_SECRET, CMKFS_AUDIT_LOG=$T/audit.log
C2=$T/cipher2 M2=$T/mnt2 E=$T/errs
mkdir "$C2" "$M2" "$E"
KID=$(kv_key cmk --size 2048)
"$CMKFS" init --service-key "$KEY" "$C2" >"$E/init.out" 2>&1 || t_fail "init: $(cat "$E/init.out")"

# The most verbose daemon there is: -d (debug log + FUSE trace, foreground).
# It starts on a service-managed volume; the CMK is enabled live, so the
# daemon reaches Key Vault with the credential it took from its
# environment at start-up (and then wiped there).
"$CMKFS" mount -d --service-key "$KEY" --key-check-interval 1 "$C2" "$M2" 2>"$T/daemon.log" &
dpid=$!
t_on_exit "kill_ours $dpid '$M2'"
wait_for 60 t_is_mounted "$M2" || t_fail "mount -d: $(tail -5 "$T/daemon.log")"
mkdir "$M2/d"
for i in 1 2 3; do head -c 20000 /dev/urandom >"$M2/d/f$i"; cat "$M2/d/f$i" >/dev/null; done
mv "$M2/d/f3" "$M2/f3"
ls -lR "$M2" >/dev/null
"$CMKFS" cmk enable --service-key "$KEY" --key "$KID" "$C2" >"$E/enable.out" 2>&1 ||
	t_fail "live cmk enable: $(cat "$E/enable.out")"
grep -q "adopted the change and proved the key" "$E/enable.out" || t_fail "live cmk enable: $(cat "$E/enable.out")"
checks() { grep -c "\"event\":\"check\".*\"key\":\"$KID\".*\"result\":\"ok\"" "$CMKFS_AUDIT_LOG" || true; }
checks_ge() { [ "$(checks)" -ge "$1" ]; }
wait_for 30 checks_ge 2 ||
	t_fail "no successful key checks under the CMK: $(tail -3 "$CMKFS_AUDIT_LOG")"
t_ok "CMK enabled on the live mount: the daemon's key checks reach Key Vault (credential taken at start-up)"
kv tokens | kv_json '"\n".join(t["access_token"] for t in d["tokens"])' >"$T/tokens"
# a refused token makes the daemon fetch a new one (both are searched)
kv revoke-tokens app >/dev/null
n=$(checks)
wait_for 30 checks_ge $((n + 1)) ||
	t_fail "no successful check after revoke-tokens"
"$CMKFS" lock "$M2" >"$E/lock.out" 2>&1
"$CMKFS" unlock "$M2" >>"$E/lock.out" 2>&1
wait_for 30 cat "$M2/f3" || t_fail "no resume after cmkfs unlock"
"$CMKFS" status --json "$M2" >"$E/status.out" 2>&1
kv tokens | kv_json '"\n".join(t["access_token"] for t in d["tokens"])' >>"$T/tokens"
[ "$(sort -u "$T/tokens" | grep -c .)" -ge 2 ] || t_fail "expected two tokens issued to the daemon: $(cat "$T/tokens")"

# the secrets, as "label hex-bytes" lines: service key, every key the
# volume derives (tests/vectors/volkeys.py; KEK_C unwrapped through Key
# Vault as any authorised client could), the client secret, the tokens
kekc=$(kv_unwrap_kekc "$C2/cmkfs.conf" "$KID") || t_fail "unwrapping KEK_C through Key Vault"
# shellcheck disable=SC2046
$PY "${TOP_SRCDIR:-$top_builddir}/tests/vectors/volkeys.py" "$C2" "$KEY" --kek-c "$kekc" \
	$(find "$C2" -type f ! -name 'cmkfs.*') >"$T/needles" || t_fail "volkeys"
[ "$(grep -c '^DEK' "$T/needles")" = 6 ] || t_fail "expected 6 DEKs: $(cat "$T/needles")"
hex() { printf '%s' "$1" | od -An -tx1 | tr -d ' \n'; }
WRONG_SECRET=wrong-secret-$$-$RANDOM
{
	echo "SERVICE_KEY $(od -An -tx1 "$KEY" | tr -d ' \n')"
	echo "CLIENT_SECRET $(hex "$AZURE_CLIENT_SECRET")"
	echo "WRONG_SECRET $(hex "$WRONG_SECRET")"
	while read -r tok; do echo "TOKEN $(hex "$tok")"; done < <(sort -u "$T/tokens")
} >>"$T/needles"

# leak.py NEEDLES PATH...: "LABEL (FORM) in FILE" for each secret found
# raw, as hex (either case) or base64 (standard or url-safe) in a file or
# under a directory; files that vanish (processes) are skipped.
cat >"$T/leak.py" <<'PY'
import base64, os, sys
needles = []
for line in open(sys.argv[1]):
    label, hx = line.split()[:2]
    b = bytes.fromhex(hx)
    needles.append((label, {"raw": b, "hex": b.hex().encode(), "HEX": b.hex().upper().encode(),
                            "base64": base64.b64encode(b).rstrip(b"="),
                            "base64url": base64.urlsafe_b64encode(b).rstrip(b"=")}))
def files(p):
    if os.path.isdir(p):
        for d, _, fs in os.walk(p):
            for f in fs:
                yield os.path.join(d, f)
    else:
        yield p
for arg in sys.argv[2:]:
    for f in files(arg):
        try:
            with open(f, "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        for label, forms in needles:
            for form, n in forms.items():
                if n in data:
                    print("%s (%s) in %s" % (label, form, f))
PY
leaks() { python3 "$T/leak.py" "$T/needles" "$@"; }
# environ_why PID: sets why to why PID's environ lacks a variable: the
# daemon gone (its exit status, reaped here, and log tail) or the names
# (never the values) its environ holds
environ_why() {
	local st rc=0
	st=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || st=gone
	if [ "$st" = Z ] || [ "$st" = gone ]; then
		wait "$1" 2>/dev/null || rc=$?
		why=$(printf 'daemon %s exited (state %s, status %s); daemon.log ends:\n%s' \
			"$1" "$st" "$rc" "$(tail -n 15 "$T/daemon.log")")
	else
		why=$(printf 'daemon %s runs (state %s); its environ (%s bytes) names: %s' \
			"$1" "$st" "$(wc -c <"/proc/$1/environ")" \
			"$(tr '\0' '\n' <"/proc/$1/environ" | cut -d= -f1 | tr '\n' ' ')")
	fi
}

# positive controls: every secret in every form in a file, the service
# key in a process's argv, the client secret in a process's environment
mkdir "$T/ctl"
python3 - "$T/needles" "$T/ctl" >"$T/ctl.want" <<'PY'
import base64, sys
for i, line in enumerate(open(sys.argv[1])):
    label, hx = line.split()[:2]
    b = bytes.fromhex(hx)
    for form, enc in (("raw", b), ("hex", b.hex().encode()), ("HEX", b.hex().upper().encode()),
                      ("base64", base64.b64encode(b)), ("base64url", base64.urlsafe_b64encode(b).rstrip(b"="))):
        f = "%s/%d.%s" % (sys.argv[2], i, form)
        open(f, "wb").write(b"junk " + enc + b" junk\n")
        print("%s (%s) in %s" % (label, form, f))
PY
leaks "$T/ctl" >"$T/ctl.got"
missed=$(grep -vxFf "$T/ctl.got" "$T/ctl.want" || true)
[ -z "$missed" ] || t_fail "positive control: planted secrets not found: $missed"
found=$(wc -l <"$T/ctl.want")
"$NBPY" -c 'import time; time.sleep(60)' ctl "$(od -An -tx1 "$KEY" | tr -d ' \n')" >/dev/null 2>&1 &
cpid=$!
t_on_exit "kill_ours $cpid time.sleep"
wait_for 10 grep -q ctl "/proc/$cpid/cmdline" || t_fail "control process"
leaks /proc/[0-9]*/cmdline | grep -q "SERVICE_KEY (hex) in /proc/$cpid/cmdline" || t_fail "positive control: hex key in argv not found"
leaks "/proc/$cpid/environ" | grep -q "CLIENT_SECRET (raw)" || t_fail "positive control: client secret in environ not found"
kill "$cpid"
wait "$cpid" 2>/dev/null || true
t_ok "positive controls: $found planted secret encodings found, a key in argv and a secret in environ found"

# live: every process's argv, the daemon's environment
out=$(leaks /proc/[0-9]*/cmdline)
[ -z "$out" ] || t_fail "secret on a command line: $out"
out=$(leaks "/proc/$dpid/environ")
[ -z "$out" ] || t_fail "secret in the daemon's /proc/$dpid/environ: $out"
# grep reads the block itself: "tr | grep -q" fails under pipefail when
# grep quits at the match before tr's last write (tr dies of SIGPIPE), as
# an environment larger than tr's 4 KiB output buffer allows
grep -qzxF "AZURE_CLIENT_ID=app" "/proc/$dpid/environ" ||
	{ environ_why "$dpid"; t_fail "the daemon's environ was not read (control): $why"; }

# failing commands: wrong service key, a wrong client secret, bad and
# unknown key URIs, then the key revoked (the live mount locks)
head -c 32 /dev/urandom >"$T/wrong.key"; chmod 600 "$T/wrong.key"
mkdir "$T/m3"
fails() { # NAME CMD...: must fail; output kept in $E/NAME
	local n=$1
	shift
	if "$@" >"$E/$n" 2>&1; then t_fail "$n: succeeded: $(cat "$E/$n")"; fi
	[ -s "$E/$n" ] || t_fail "$n: failed without a message"
}
# A copy of the mounted volume: C2 itself is refused as already mounted
# (one mount per volume) before any key is tried.
cp -a "$C2" "$T/c2b"
fails wrongkey "$CMKFS" mount --service-key "$T/wrong.key" "$T/c2b" "$T/m3"
fails wrongsecret env AZURE_CLIENT_SECRET="$WRONG_SECRET" "$CMKFS" mount --service-key "$KEY" "$T/c2b" "$T/m3"
fails baduri "$CMKFS" init --service-key "$KEY" --cmk "https://x/keys/noversion" "$T/c4"
fails unknownkey "$CMKFS" init --service-key "$KEY" --cmk "${KID%/*/*}/nosuchkey/${KID##*/}" "$T/c5"
fails rotate "$CMKFS" cmk rotate --service-key "$KEY" --key "${KID%/*}/00000000000000000000000000000000" "$C2"
kv revoke app cmk >/dev/null
wait_for 30 revoked "$M2/f3" || t_fail "revocation did not lock"
fails revoked "$CMKFS" mount --service-key "$KEY" "$T/c2b" "$T/m3"
grep -qi "revoked\|denied\|forbidden" "$E/revoked" || t_fail "revoked mount: $(cat "$E/revoked")"
fails readrevoked cat "$M2/f3"
"$CMKFS" umount "$M2"
wait "$dpid" || t_fail "the -d daemon exited $?"
! t_is_mounted "$M2" || t_fail "$M2 still mounted"
grep -q "opcode" "$T/daemon.log" || t_fail "the debug log has no FUSE trace (not the most verbose level?)"

[ "$(stat -c %a "$CMKFS_AUDIT_LOG")" = 600 ] || t_fail "audit log mode $(stat -c %a "$CMKFS_AUDIT_LOG")"
out=$(leaks "$T/daemon.log" "$CMKFS_AUDIT_LOG" "$E" "$C2" "$CIPHER" "$U/c" "$U/audit.log" "$T/alog")
[ -n "$out" ] && t_fail "secrets found: $out"
t_ok "no service key, KEK, name key, DEK, client secret or bearer token ($(sort -u "$T/tokens" | wc -l) tokens) in any argv, the daemon's environ, its debug log ($(wc -l <"$T/daemon.log") lines), the audit logs, $(ls "$E" | wc -l) error/command outputs or the cipher directories"
