#!/usr/bin/env bash
# tests/mount/t_ctl.sh — the control plane trusts only its own daemon.
# Runtime files: directory 0700, state file and socket 0600, even though
# the daemon runs with umask 0. A fake server swapped in at the socket's
# path (as nobody, then as root under another pid) answers "locked":
# `cmkfs lock` and `cmkfs status` refuse it, naming the socket, and exit
# non-zero; the files stay readable and the real daemon still answers once
# its socket is back. A runtime directory open to others is refused.
# After kill -9 of the daemon, status, mount and lock say the daemon is
# gone with its pid and the fix; `cmkfs umount` cleans up the mount and
# the files the daemon left.
. "$(dirname "$0")/../lib/lib.sh"
t_init
t_need setpriv
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3) || t_skip "no python3"

expect() { # want_rc grep_pattern cmd...
	local want=$1 pat=$2 rc=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || t_fail "'$*' exited $rc, want $want: $(cat "$T/out" "$T/err")"
	[ -z "$pat" ] || grep -q -- "$pat" "$T/err" || t_fail "'$*': no '$pat' in: $(cat "$T/err")"
}

export CMKFS_RUNTIME_DIR=$T/run
t_mkvol
t_mount
echo secret >"$MNT/f"
state=$(ls "$T"/run/*.pid)
sock=${state%.pid}.sock
pid=$(head -n 1 "$state")
[ "$(stat -c %a "$T/run")" = 700 ] || t_fail "runtime dir mode $(stat -c %a "$T/run")"
[ "$(stat -c %a "$state")" = 600 ] || t_fail "state file mode $(stat -c %a "$state")"
[ "$(stat -c %a "$sock")" = 600 ] || t_fail "socket mode $(stat -c %a "$sock")"
t_ok "runtime directory 0700, state file and socket 0600"

# A server that says yes to everything, bound in a directory of its user
# on the same file system, then renamed over the daemon's socket.
fake_dir=$T/fake
mkdir "$fake_dir"
chmod 711 "$T"
chown 65534 "$fake_dir"
fake() { # user-prefix...: start the fake server, wait for its socket
	rm -f "$fake_dir/s.sock"
	"$@" "$PY" -c '
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1]); s.listen(8)
while True:
    c, _ = s.accept()
    try:
        c.recv(4096)
        c.sendall(b"{\"ok\":true,\"locked\":true,\"manual_lock\":true,\"last_check_ok\":true}\n")
    except OSError:
        pass  # a client that hung up at once
    c.close()
' "$fake_dir/s.sock" &
	fake_pid=$!
	for _ in $(seq 100); do [ -S "$fake_dir/s.sock" ] && break; sleep 0.1; done
	[ -S "$fake_dir/s.sock" ] || t_fail "fake server did not start"
}
stop_fake() { kill "$fake_pid" 2>/dev/null || true; wait "$fake_pid" 2>/dev/null || true; fake_pid=; }
fake_pid=
# shellcheck disable=SC2016 # expanded when the test ends
t_on_exit '[ -z "$fake_pid" ] || kill "$fake_pid" 2>/dev/null'

mv "$sock" "$T/real.sock"
for who in nobody root; do
	if [ "$who" = nobody ]; then
		fake setpriv --reuid=65534 --regid=65534 --clear-groups
	else
		fake env
	fi
	mv "$fake_dir/s.sock" "$sock"
	expect 1 "is not served by the cmkfs daemon of this mount" "$CMKFS" lock "$MNT"
	! grep -q "locked, keys wiped" "$T/out" || t_fail "lock believed a fake ($who)"
	grep -qF "$sock" "$T/err" || t_fail "socket not named: $(cat "$T/err")"
	"$CMKFS" status "$MNT" >"$T/out" 2>"$T/err" || true
	grep -q "is not served by the cmkfs daemon of this mount" "$T/err" ||
		t_fail "status believed a fake ($who): $(cat "$T/out" "$T/err")"
	[ "$(cat "$MNT/f")" = secret ] || t_fail "files changed"
	stop_fake
	rm -f "$sock"
done
mv "$T/real.sock" "$sock"
"$CMKFS" status --json "$MNT" >"$T/out" || t_fail "status with the real socket"
grep -q "\"pid\":$pid" "$T/out" || t_fail "real daemon not reached: $(cat "$T/out")"
t_ok "a fake server at the socket (other uid, other pid) is refused by lock and status"

chmod 755 "$T/run"
expect 1 "runtime directory $T/run is owned by uid 0 with mode 0755" "$CMKFS" lock "$MNT"
chmod 700 "$T/run"
t_ok "a runtime directory open to others is refused"

# kill -9: the mount stays (ENOTCONN), its files stay, the daemon is gone.
kill -9 "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
! kill -0 "$pid" 2>/dev/null || t_fail "daemon $pid survived kill -9"
gone="the daemon of this mount is gone (pid $pid"
"$CMKFS" status "$MNT" >"$T/out" 2>"$T/err" || true
grep -qF "$gone" "$T/err" || t_fail "status: $(cat "$T/out" "$T/err")"
grep -qF "cmkfs umount $MNT" "$T/err" || t_fail "status names no fix: $(cat "$T/err")"
expect 1 "$gone" "$CMKFS" lock "$MNT"
expect 11 "daemon is gone (pid $pid): run 'cmkfs umount $MNT' first" \
	"$CMKFS" mount --service-key "$KEY" "$CIPHER" "$MNT"
expect 0 "" "$CMKFS" umount "$MNT"
! t_is_mounted "$MNT" || t_fail "still mounted after umount"
[ ! -e "$state" ] && [ ! -e "$sock" ] || t_fail "stale files left: $(ls -l "$T/run")"
t_ok "after kill -9, status/lock/mount explain, umount cleans up"

# The same after a plain fusermount3 -u: a remount cleans and works.
t_mount
pid=$(head -n 1 "$state")
kill -9 "$pid"
for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fusermount3 -u "$MNT"
[ -e "$state" ] || t_fail "no state file left to clean"
t_mount
[ "$(head -n 1 "$state")" != "$pid" ] || t_fail "old state kept"
[ "$(cat "$MNT/f")" = secret ] || t_fail "data lost"
t_umount
[ ! -e "$state" ] && [ ! -e "$sock" ] || t_fail "files left after umount"
t_ok "after kill -9 and fusermount3 -u, a remount replaces the stale files"
