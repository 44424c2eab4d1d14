#!/usr/bin/env bash
# tests/mount/t_install.sh — `make install` into a fresh prefix makes
# `mount -t fuse.cmkfs` and fstab lines work, as mount(8) really runs them
# (issue #18): mount(8) looks for mount.fuse.cmkfs only in /sbin,
# /sbin/fs.d and /sbin/fs, so the install links it there (configure
# --with-mount-helper-dir, default /sbin) to the cmkfs of that install.
# Also the generic helper's form, `cmkfs CIPHERDIR MOUNTPOINT -o OPTS`, as
# mount.fuse3 runs it. The install is `make install prefix=...` from the
# configured build tree (nothing is rebuilt); the /sbin links are really
# made, then removed by `make uninstall`, and whatever was there before is
# put back. Run alone (MOUNT_TESTS_ALONE): t_ops.sh links /sbin too.
. "$(dirname "$0")/../lib/lib.sh"
t_need mount umount make readlink mount.fuse3
t_init
B=${TOP_BUILDDIR:-$top_builddir}
S=${TOP_SRCDIR:-$(cd "$(dirname "$0")/../.." && pwd)}
[ -f "$B/Makefile" ] || t_skip "no configured build tree at $B (set TOP_BUILDDIR)"
# The parent make check's flags (jobserver, TESTS=) are not for this make.
mk() { env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$B" "$@"; }
P=$T/prefix

# The daemon serving $1: its executable (one process has $1 in its argv).
daemon_exe() {
	local -a p
	read -r -a p <<<"$(t_pids_with_arg "$1")"
	[ ${#p[@]} = 1 ] || { echo "daemons: '${p[*]}'"; return; }
	readlink "/proc/${p[0]}/exe"
}
# umount(8) returns before a FUSE daemon has exited: wait for it.
wait_gone() {
	local _
	for _ in $(seq 100); do
		[ -z "$(t_pids_with_arg "$1")" ] && return 0
		sleep 0.1
	done
	t_fail "the daemon of $1 did not exit after umount"
}

# --- configure: the option and its default ---
if [ -f "$S/config.status" ]; then
	t_log "source tree configured in place: configure option checks left out"
else
	mkdir "$T/cfg"
	(cd "$T/cfg" && "$S/configure" -q --prefix="$P" >/dev/null 2>&1) || t_fail "configure --prefix"
	grep -qx 'mounthelperdir = /sbin' "$T/cfg/Makefile" || t_fail "default mounthelperdir: $(grep '^mounthelperdir' "$T/cfg/Makefile")"
	(cd "$T/cfg" && "$S/configure" -q --without-mount-helper-dir >/dev/null 2>&1) || t_fail "configure --without-mount-helper-dir"
	grep -qx 'mounthelperdir = ' "$T/cfg/Makefile" || t_fail "--without-mount-helper-dir: $(grep '^mounthelperdir' "$T/cfg/Makefile")"
	(cd "$T/cfg" && "$S/configure" -q --with-mount-helper-dir=/usr/lib/fs >/dev/null 2>&1) || t_fail "configure --with-mount-helper-dir=DIR"
	grep -qx 'mounthelperdir = /usr/lib/fs' "$T/cfg/Makefile" || t_fail "--with-mount-helper-dir=DIR: $(grep '^mounthelperdir' "$T/cfg/Makefile")"
	(cd "$T/cfg" && "$S/configure" -q --with-mount-helper-dir=sbin >"$T/cfg.out" 2>&1) &&
		t_fail "configure took a relative --with-mount-helper-dir"
	grep -q 'absolute directory' "$T/cfg.out" || t_fail "relative dir: $(tail -2 "$T/cfg.out")"
	rm -rf "$T/cfg"
	t_ok "configure: --with-mount-helper-dir defaults to /sbin, DIR, --without, relative refused"
fi

# --- a staged install (DESTDIR, any prefix): the links and uninstall ---
st=$T/stage
mk install DESTDIR="$st" prefix=/opt/cmkfs-t mounthelperdir=/sbin >"$T/stage.log" 2>&1 ||
	t_fail "make install DESTDIR: $(tail -5 "$T/stage.log")"
for l in "$st/sbin/mount.fuse.cmkfs" "$st/sbin/mount.cmkfs" \
	"$st/opt/cmkfs-t/sbin/mount.fuse.cmkfs" "$st/opt/cmkfs-t/sbin/mount.cmkfs"; do
	[ "$(readlink "$l")" = /opt/cmkfs-t/bin/cmkfs ] || t_fail "$l -> '$(readlink "$l")', want /opt/cmkfs-t/bin/cmkfs"
done
[ -x "$st/opt/cmkfs-t/bin/cmkfs" ] || t_fail "no $st/opt/cmkfs-t/bin/cmkfs"
mk uninstall DESTDIR="$st" prefix=/opt/cmkfs-t mounthelperdir=/sbin >>"$T/stage.log" 2>&1 || t_fail "make uninstall DESTDIR"
left=$(find "$st" ! -type d)
[ -z "$left" ] || t_fail "make uninstall left: $left"
# an empty helper directory: no link outside the prefix
mk install DESTDIR="$st" prefix=/opt/cmkfs-t mounthelperdir= >>"$T/stage.log" 2>&1 || t_fail "make install mounthelperdir="
[ -z "$(ls -A "$st/sbin")" ] || t_fail "mounthelperdir= still linked: $(ls "$st/sbin")"
[ -L "$st/opt/cmkfs-t/sbin/mount.fuse.cmkfs" ] || t_fail "no \$(sbindir) link with mounthelperdir="
rm -rf "$st"
t_ok "staged install: mount.fuse.cmkfs and mount.cmkfs in /sbin and \$(sbindir) -> \$(bindir)/cmkfs; uninstall removes them; mounthelperdir= links none outside the prefix"

# --- the real install into a fresh prefix ---
hdir=$(sed -n 's/^mounthelperdir = //p' "$B/Makefile")
[ "$hdir" = /sbin ] || t_skip "the build tree is configured --with-mount-helper-dir='$hdir': the mount(8) part needs the default /sbin"
touch /sbin/.cmkfs-t_install.$$ 2>/dev/null || t_skip "/sbin is not writable here: cannot install mount.fuse.cmkfs where mount(8) looks"
rm -f /sbin/.cmkfs-t_install.$$
# keep whatever an earlier install put there, and put it back at the end
mkdir "$T/saved"
for h in mount.fuse.cmkfs mount.cmkfs; do
	if [ -e "/sbin/$h" ] || [ -L "/sbin/$h" ]; then
		mv "/sbin/$h" "$T/saved/$h"
	fi
done
# shellcheck disable=SC2016 # expanded when the test ends
t_on_exit 'for h in mount.fuse.cmkfs mount.cmkfs; do
	[ "$(readlink "/sbin/$h")" = "$P/bin/cmkfs" ] && rm -f "/sbin/$h"
	if [ -e "$T/saved/$h" ] || [ -L "$T/saved/$h" ]; then mv "$T/saved/$h" "/sbin/$h"; fi
done'
mk install prefix="$P" >"$T/install.log" 2>&1 || t_fail "make install prefix=$P: $(tail -5 "$T/install.log")"
! grep -q WARNING "$T/install.log" || t_fail "make install warned: $(grep -A2 WARNING "$T/install.log")"
[ "$(readlink /sbin/mount.fuse.cmkfs)" = "$P/bin/cmkfs" ] || t_fail "/sbin/mount.fuse.cmkfs -> '$(readlink /sbin/mount.fuse.cmkfs)'"
ICMKFS=$P/bin/cmkfs
"$ICMKFS" init --service-key "$KEY" "$CIPHER" >/dev/null || t_fail "installed cmkfs init"
# A decoy cmkfs first on PATH: the helper must run its own install's cmkfs.
mkdir "$T/decoy"
printf '#!/bin/sh\necho decoy >>%s/decoy.ran\nexit 1\n' "$T" >"$T/decoy/cmkfs"
chmod +x "$T/decoy/cmkfs"

PATH=$T/decoy:$PATH mount -t fuse.cmkfs -o "service_key=$KEY,key_check_interval=30" "$CIPHER" "$MNT" 2>"$T/err" ||
	t_fail "mount -t fuse.cmkfs: $(cat "$T/err")"
t_is_mounted_sure "$MNT" || t_fail "mount -t fuse.cmkfs returned 0 but $MNT is not mounted"
[ "$(t_fstype "$MNT")" = fuse.cmkfs ] || t_fail "type $(t_fstype "$MNT")"
[ "$(daemon_exe "$MNT")" = "$ICMKFS" ] || t_fail "daemon runs $(daemon_exe "$MNT"), want $ICMKFS"
[ ! -e "$T/decoy.ran" ] || t_fail "the cmkfs first on PATH ran instead of the installed one"
echo via-mount-t >"$MNT/a"
mkdir "$MNT/d"
[ "$(cat "$MNT/a")" = via-mount-t ] || t_fail "read back"
umount "$MNT" || t_fail "umount(8)"
wait_gone "$MNT"
t_ok "mount -t fuse.cmkfs after make install prefix=\$T/prefix: /sbin/mount.fuse.cmkfs runs \$T/prefix/bin/cmkfs (not PATH's), read/write, umount(8)"

printf '%s %s fuse.cmkfs service_key=%s,noauto,nofail,x-systemd.automount 0 0\n' \
	"$CIPHER" "$MNT" "$KEY" >"$T/fstab"
PATH=$T/decoy:$PATH mount -T "$T/fstab" "$MNT" 2>"$T/err" || t_fail "mount -T fstab: $(cat "$T/err")"
t_is_mounted_sure "$MNT" || t_fail "fstab mount: $MNT is not mounted"
[ "$(daemon_exe "$MNT")" = "$ICMKFS" ] || t_fail "fstab: daemon runs $(daemon_exe "$MNT")"
[ "$(cat "$MNT/a")" = via-mount-t ] || t_fail "fstab mount: content"
echo via-fstab >"$MNT/b"
umount "$MNT" || t_fail "umount(8) after the fstab mount"
wait_gone "$MNT"
t_ok "an fstab line (mount -T FSTAB MOUNTPOINT) mounts through the installed helper"

# --- the generic helper: mount.fuse3 runs `cmkfs CIPHER MNT -o OPTS` ---
PATH=$P/bin:$PATH mount.fuse3 "$CIPHER" "$MNT" -t fuse.cmkfs -o "service_key=$KEY,nofail" 2>"$T/err" ||
	t_fail "mount.fuse3 -t fuse.cmkfs: $(cat "$T/err")"
t_is_mounted_sure "$MNT" || t_fail "mount.fuse3: $MNT is not mounted"
[ "$(daemon_exe "$MNT")" = "$ICMKFS" ] || t_fail "mount.fuse3: daemon runs $(daemon_exe "$MNT")"
[ "$(cat "$MNT/b")" = via-fstab ] || t_fail "mount.fuse3: content"
umount "$MNT" || t_fail "umount(8) after mount.fuse3"
wait_gone "$MNT"
# mount -t fuse with CMKFS#CIPHERDIR: mount(8) -> mount.fuse3 -> cmkfs.
# (mount(8) gives helpers a fixed PATH, /usr/local/sbin:...:/bin, so the
# fresh prefix is named in full here.)
mount -t fuse -o "service_key=$KEY" "$ICMKFS#$CIPHER" "$MNT" 2>"$T/err" ||
	t_fail "mount -t fuse CMKFS#CIPHER: $(cat "$T/err")"
[ "$(daemon_exe "$MNT")" = "$ICMKFS" ] || t_fail "mount -t fuse: daemon runs $(daemon_exe "$MNT")"
t_is_mounted_sure "$MNT" || t_fail "mount -t fuse CMKFS#: $MNT is not mounted"
[ "$(cat "$MNT/a")" = via-mount-t ] || t_fail "mount -t fuse CMKFS#: content"
umount "$MNT" || t_fail "umount(8) after mount -t fuse"
wait_gone "$MNT"
# the form takes -o only; anything else is a usage error, not a mount
"$ICMKFS" "$CIPHER" "$MNT" -f -o "service_key=$KEY" 2>"$T/err" && t_fail "cmkfs CIPHER MNT -f mounted"
[ $? = 2 ] || t_fail "cmkfs CIPHER MNT -f: exit not 2"
grep -q "only -o" "$T/err" || t_fail "cmkfs CIPHER MNT -f: $(cat "$T/err")"
! t_is_mounted "$MNT" || t_fail "mounted after a usage error"
"$ICMKFS" "$T/nonexistent" "$MNT" 2>"$T/err" && t_fail "a missing CIPHERDIR was taken"
grep -q "unknown command.*cmkfs mount CIPHERDIR MOUNTPOINT" "$T/err" || t_fail "missing dir: $(cat "$T/err")"
t_ok "generic form: mount.fuse3 and mount -t fuse CMKFS#CIPHER run 'cmkfs CIPHER MNT -o OPTS'; other flags refused (exit 2)"

# --- uninstall: the links go, those of another install stay ---
mk uninstall prefix="$P" >"$T/uninstall.log" 2>&1 || t_fail "make uninstall: $(tail -5 "$T/uninstall.log")"
for h in mount.fuse.cmkfs mount.cmkfs; do
	if [ -e "/sbin/$h" ] || [ -L "/sbin/$h" ]; then t_fail "make uninstall left /sbin/$h"; fi
done
[ ! -e "$ICMKFS" ] || t_fail "make uninstall left $ICMKFS"
ln -s /opt/other/bin/cmkfs /sbin/mount.fuse.cmkfs
mk uninstall prefix="$P" >>"$T/uninstall.log" 2>&1 || t_fail "make uninstall (again)"
[ "$(readlink /sbin/mount.fuse.cmkfs)" = /opt/other/bin/cmkfs ] || t_fail "make uninstall removed another install's /sbin/mount.fuse.cmkfs"
rm -f /sbin/mount.fuse.cmkfs
t_ok "make uninstall removes the /sbin links of its own install only"
