#!/bin/bash
# scripts/fstests.sh — run tests of xfstests (fstests) on cmkfs volumes.
#
#   scripts/fstests.sh /path/to/xfstests [TEST...]   (default: generic/014
#                                                     generic/129 generic/130
#                                                     generic/285)
#
# NOT PART OF CI, and not run by `make check` or scripts/check.sh: xfstests
# is not packaged in Debian 12, CI installs nothing but Debian packages and
# has no other network, and xfstests is GPL code of another project that
# this repository does not carry. Run it by hand on a machine with a built
# xfstests tree (git clone git://git.kernel.org/pub/scm/fs/xfs/xfstests-dev.git,
# its build dependencies from its README, then `make`); tests/README.md
# ("xfstests") records the last results.
#
# Needs root and /dev/fuse. It makes two fresh format-3 volumes (TEST_DEV
# and SCRATCH_DEV are their cipher directories; fstests "mkfs" of a fuse
# scratch device only empties it), writes a local.config for FSTYP=fuse,
# FUSE_SUBTYP=.cmkfs (given to ./check through HOST_OPTIONS, so the
# xfstests tree is not changed except for its results/ directory), and
# installs /sbin/mount.fuse.cmkfs, the helper mount(8) runs for
# `mount -t fuse.cmkfs`, as a small script that runs this build's cmkfs
# (under the name mount.fuse.cmkfs, which makes it the mount helper) with a
# private runtime directory and audit log. It refuses to run if a
# /sbin/mount.fuse.cmkfs it did not write exists (an installed cmkfs: use
# that, or remove it first). At the end, also on failure or interrupt, it
# unmounts both volumes, removes the helper and its temporary directory.
# Do not run it while the suite's tests/mount/t_ops.sh runs: that test
# uses the same /sbin path (it would refuse or, worse, mount through this
# script's helper).
#
# Environment: CMKFS (the cmkfs binary; default build/release/src/cmkfs,
# else build/dev/src/cmkfs of this checkout), FSTESTS_KEEP=1 (keep the
# temporary directory: volumes, audit log), FSTESTS_TMP (where it goes;
# default /tmp). The exit status is ./check's.
set -u

top=$(cd "$(dirname "$0")/.." && pwd)
helper=/sbin/mount.fuse.cmkfs
marker="written by cmkfs scripts/fstests.sh"

die() {
	echo "fstests.sh: $*" >&2
	exit 2
}

[ $# -ge 1 ] || die "usage: scripts/fstests.sh /path/to/xfstests [TEST...]"
xfs=$(cd "$1" 2>/dev/null && pwd) || die "no directory $1"
shift
if [ ! -x "$xfs/check" ] || [ ! -d "$xfs/common" ]; then
	die "$xfs is not an xfstests tree (no ./check)"
fi
[ -x "$xfs/ltp/fsx" ] || die "$xfs is not built: run make there first"
[ "$(id -u)" = 0 ] || die "needs root (mount(8), /dev/fuse)"
[ -c /dev/fuse ] || die "no /dev/fuse"

if [ -z "${CMKFS:-}" ]; then
	for b in release dev; do
		if [ -x "$top/build/$b/src/cmkfs" ]; then
			CMKFS=$top/build/$b/src/cmkfs
			break
		fi
	done
fi
if [ -z "${CMKFS:-}" ] || [ ! -x "$CMKFS" ]; then
	die "no cmkfs binary: build one or set CMKFS"
fi
CMKFS=$(cd "$(dirname "$CMKFS")" && pwd)/$(basename "$CMKFS")

if [ -e "$helper" ] && ! grep -qs "$marker" "$helper"; then
	die "$helper exists and is not ours (an installed cmkfs?); remove it" \
	    "or run xfstests with it by hand"
fi

W=$(mktemp -d "${FSTESTS_TMP:-/tmp}/cmkfs-fstests.XXXXXX") ||
	die "mktemp failed"

# shellcheck disable=SC2317 # run by the EXIT trap
cleanup() {
	local m

	for m in "$W/mnt/test" "$W/mnt/scratch"; do
		if mountpoint -q "$m" 2>/dev/null; then
			umount "$m" 2>/dev/null || fusermount3 -u "$m" ||
				umount -l "$m"
		fi
	done
	if grep -qs "$marker" "$helper"; then
		rm -f "$helper"
	fi
	if [ "${FSTESTS_KEEP:-0}" = 1 ]; then
		echo "fstests.sh: kept $W"
	else
		rm -rf "$W"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mkdir -p "$W/cipher" "$W/mnt/test" "$W/mnt/scratch" "$W/bin" "$W/run"
chmod 700 "$W/run"
key=$W/service.key
for v in test scratch; do
	"$CMKFS" init --service-key "$key" "$W/cipher/$v" >/dev/null ||
		die "cmkfs init failed"
done

# argv[0] mount.fuse.cmkfs makes the cmkfs binary the mount(8) helper
# (src/cli/mount_helper.c); the environment keeps the daemons' state
# files and audit events out of /run/cmkfs and /var/log/cmkfs.
ln -s "$CMKFS" "$W/bin/mount.fuse.cmkfs"
cat >"$helper" <<EOF
#!/bin/sh
# $marker for a run in $W; it removes this file when it ends.
CMKFS_RUNTIME_DIR=$W/run CMKFS_AUDIT_LOG=$W/audit.log \\
	exec $W/bin/mount.fuse.cmkfs "\$@"
EOF
chmod 755 "$helper"

# fstests checks that TEST_DEV is mounted with type $FSTYP, "fuse", read
# from df -T; a mount with a subtype shows "fuse.SUBTYPE", and cmkfs always
# sets subtype=cmkfs. common/rc's _fs_type already maps fuse.glusterfs and
# fuse.ceph-fuse back to their FSTYP; this df, first on ./check's PATH,
# does the same for fuse.cmkfs and changes nothing else.
df=$(type -P df) || die "no df"
cat >"$W/bin/df" <<EOF
#!/bin/bash
set -o pipefail
$df "\$@" | sed 's/^\(\S\+\s\+\)fuse\.cmkfs\b/\1fuse/'
EOF
chmod 755 "$W/bin/df"

# fstests unmounts fuse scratch and test volumes by device ("umount
# $SCRATCH_DEV"). Here the device is the cipher directory, and umount(8)
# (util-linux 2.38) takes an argument that is an existing directory for a
# mount point (its fstatfs shortcut) without looking it up as a source:
# "not mounted". This umount, first on PATH, turns an argument that is not
# a mount point but is the source of a mount into that mount's target.
umount=$(type -P umount) || die "no umount"
cat >"$W/bin/umount" <<EOF
#!/bin/bash
args=()
for a in "\$@"; do
	if [ "\${a#/}" != "\$a" ] && ! mountpoint -q "\$a" 2>/dev/null; then
		t=\$(findmnt -rncv -S "\$a" -o TARGET | tail -n 1)
		[ -n "\$t" ] && a=\$t
	fi
	args+=("\$a")
done
exec $umount "\${args[@]}"
EOF
chmod 755 "$W/bin/umount"

opts="-oservice_key=$key,allow_other"
cat >"$W/local.config" <<EOF
export FSTYP=fuse
export FUSE_SUBTYP=.cmkfs
export TEST_DEV=$W/cipher/test
export TEST_DIR=$W/mnt/test
export SCRATCH_DEV=$W/cipher/scratch
export SCRATCH_MNT=$W/mnt/scratch
export TEST_FS_MOUNT_OPTS="$opts"
export MOUNT_OPTIONS="$opts"
EOF

[ $# -gt 0 ] || set -- generic/014 generic/129 generic/130 generic/285
echo "fstests.sh: $("$CMKFS" --version 2>/dev/null | head -n 1)" \
     "($CMKFS), xfstests" \
     "$(git -C "$xfs" rev-parse --short HEAD 2>/dev/null || echo "(not a git tree)")," \
     "volumes in $W"
(cd "$xfs" && PATH=$W/bin:$PATH HOST_OPTIONS=$W/local.config ./check "$@")
rc=$?
echo "fstests.sh: ./check exit $rc; results in $xfs/results/"
exit $rc
