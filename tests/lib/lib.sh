# shellcheck shell=bash
# tests/lib/lib.sh - helpers sourced by every cmkfs mount test.
#
# Usage in a test:
#   . "$(dirname "$0")/../lib/lib.sh"
#   t_init              # temp dir, CIPHER/MNT/KEY, cleanup trap, root + /dev/fuse check
#   t_mkvol; t_mount    # ... work in "$MNT" ...
#   t_umount            # also checks the daemon is gone; a test must unmount
#                       # itself: a mount the cleanup trap has to
#                       # force-unmount turns the result into FAIL
#
# Exit codes: 0 pass, 1 fail, 77 skip.
#
# Environment:
#   CMKFS          cmkfs binary (default: $top_builddir/src/cmkfs)
#   CMKFS_WRAPPER  optional prefix for the mount command, e.g. "valgrind -q"
#   CMKFS_FSTYPE   expected type in /proc/self/mounts (default fuse.cmkfs;
#                  set to "" to skip the check)
#   T_KEEP=1       keep the temp dir after the test (mounts are still removed)
#   CMKFS_MOUNT_OPTS  extra `cmkfs mount` options for every t_mount, e.g.
#                  "--writeback" to run a test with the writeback cache

set -euo pipefail
set -o errtrace

: "${top_builddir:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
: "${CMKFS:=$top_builddir/src/cmkfs}"
: "${CMKFS_WRAPPER:=}"
: "${CMKFS_MOUNT_OPTS:=}"
CMKFS_FSTYPE=${CMKFS_FSTYPE-fuse.cmkfs}
# Every key check gets its audit line (the default is an hourly summary of
# unchanged successes): tests count checks by those lines. t_prom.sh tests
# the summary itself.
export CMKFS_AUDIT_HEARTBEAT=${CMKFS_AUDIT_HEARTBEAT-0}
T_NAME=$(basename "$0")
T=
T_START=$SECONDS

t_log()  { printf '# %s\n' "$*"; }
t_ok()   { printf 'ok %s\n' "$*"; }
t_fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
t_skip() { printf 'SKIP: %s\n' "$*"; exit 77; }

t_need() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || t_skip "required command not found: $c"
	done
}

# Print mount points (unescaped) from /proc/self/mounts that are at or below $1,
# deepest first.
t_mounts_under() {
	local mp rest
	while read -r _ mp rest; do
		mp=$(printf '%b' "$mp")
		case $mp in "$1" | "$1"/*) printf '%s\n' "$mp" ;; esac
	done </proc/self/mounts | sort -r
}

t_is_mounted() { [ -n "$(t_mounts_under "$1" | grep -Fx -- "$1" || true)" ]; }

# t_is_mounted, for asserting a mount is there: /proc/self/mounts is read in
# pieces, and a mount or unmount by a concurrent test between two pieces can
# make a read skip entries (a CI run failed on it), so a miss is read again.
t_is_mounted_sure() {
	local i
	for i in 1 2 3 4 5; do
		t_is_mounted "$1" && return 0
		sleep 0.02
	done
	return 1
}

# PIDs of other processes that have $1 as one exact argv entry; used to check
# that the daemon is gone once "cmkfs umount" has returned.
t_pids_with_arg() {
	local p a
	local -a argv
	for p in /proc/[0-9]*; do
		[ "${p#/proc/}" != $$ ] || continue
		mapfile -d "" argv 2>/dev/null <"$p/cmdline" || continue
		for a in "${argv[@]}"; do
			[ "$a" != "$1" ] || { printf '%s ' "${p#/proc/}"; break; }
		done
	done
}

# Fstype of the mount at $1 (last one if stacked). A read of the mount
# table races with mounts and unmounts of tests running beside this one
# (the kernel may skip an entry then): an empty answer is read again.
t_fstype() {
	local mp type rest out= i
	for i in 1 2 3 4 5; do
		while read -r _ mp type rest; do
			[ "$(printf '%b' "$mp")" = "$1" ] && out=$type
		done </proc/self/mounts
		[ -z "$out" ] || break
		sleep 0.2
	done
	printf '%s\n' "$out"
}

_t_err() {
	printf 'FAIL: %s: line %s: command exited %s: %s\n' "$T_NAME" "$1" "$2" "$3" >&2
}

# t_on_exit CMD: run CMD when the test ends (after its mounts are gone),
# without touching the EXIT trap or the test's exit status.
T_EXIT_HOOKS=()
t_on_exit() { T_EXIT_HOOKS+=("$1"); }

# t_loopfs [MOUNT_OPTS]: a 64 MiB ext4 file system in $T/img mounted on
# $T/disk (DISK, IMG), for tests that fill or break the backing disk;
# disk_mount mounts it again. Removed (and its loop device freed) when the
# test ends. Skips where loop mounts are not possible.
t_loopfs() {
	DISK=$T/disk IMG=$T/img LOOPFS_OPTS=${1:+,$1}
	mkdir "$DISK"
	# shellcheck disable=SC2016 # expanded when the test ends
	t_on_exit 'umount "$DISK" 2>/dev/null; for l in $(losetup -j "$IMG" -O NAME -n 2>/dev/null); do losetup -d "$l"; done'
	truncate -s 64M "$IMG"
	mkfs.ext4 -q -m 0 "$IMG" || t_fail "mkfs.ext4"
	disk_mount || t_skip "cannot mount an ext4 loop file system"
}
disk_mount() { mount -o "loop$LOOPFS_OPTS" "$IMG" "$DISK"; }

_t_cleanup() {
	local rc=$? mp left=0 stuck=0 h
	set +e
	trap - ERR
	cd /
	if [ -n "$T" ] && [ -d "$T" ]; then
		while read -r mp; do
			[ -n "$mp" ] || continue
			if [ "$rc" = 0 ] || [ "$rc" = 77 ]; then
				left=1
				printf 'FAIL: mount left behind at %s, force-unmounting\n' "$mp" >&2
			else
				printf '# cleanup after failure: force-unmounting %s\n' "$mp" >&2
			fi
			fusermount3 -u -z "$mp" 2>/dev/null || umount -l "$mp" ||
				{ printf 'FAIL: could not unmount %s\n' "$mp" >&2; stuck=1; }
		done < <(t_mounts_under "$T")
		for h in "${T_EXIT_HOOKS[@]}"; do eval "$h"; done
		for f in "$T"/asan.log.* "$T"/ubsan.log.*; do
			[ -f "$f" ] || continue
			printf 'FAIL: sanitizer report %s:\n' "$f" >&2
			head -n 60 "$f" >&2
			rc=1
		done
		if [ "$stuck" = 1 ]; then
			printf 'FAIL: leaving %s in place (still mounted)\n' "$T" >&2
		elif [ -n "${T_KEEP:-}" ]; then
			printf '# kept temp dir %s\n' "$T"
		else
			rm -rf --one-file-system "$T"
		fi
	fi
	[ "$left" = 1 ] && rc=1
	case $rc in 0 | 77) ;; *) rc=1 ;; esac
	case $rc in
	0) printf '# %s: PASS (%ss)\n' "$T_NAME" $((SECONDS - T_START)) ;;
	77) printf '# %s: SKIP (%ss)\n' "$T_NAME" $((SECONDS - T_START)) ;;
	*) printf '# %s: FAIL (%ss)\n' "$T_NAME" $((SECONDS - T_START)) >&2 ;;
	esac
	exit "$rc"
}

t_init() {
	[ "$(id -u)" = 0 ] || t_skip "must run as root"
	[ -c /dev/fuse ] || t_skip "/dev/fuse not available"
	[ -x "$CMKFS" ] || t_fail "cmkfs binary not found or not executable: $CMKFS (set CMKFS)"
	t_need fusermount3
	T=$(mktemp -d "${TMPDIR:-/tmp}/cmkfs-$T_NAME.XXXXXX")
	trap _t_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	trap '_t_err "$LINENO" "$?" "$BASH_COMMAND"' ERR
	# Sanitizer reports of the background daemon would go to /dev/null:
	# send them to files and fail the test if any appear (_t_cleanup).
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$T/asan.log"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$T/ubsan.log"
	CIPHER=$T/cipher
	MNT=$T/mnt
	KEY=$T/service.key
	mkdir "$CIPHER" "$MNT"
	t_log "$T_NAME: cmkfs=$CMKFS tmp=$T${CMKFS_WRAPPER:+ wrapper=$CMKFS_WRAPPER}"
}

t_mkvol() {
	"$CMKFS" init --service-key "$KEY" "$CIPHER" || t_fail "cmkfs init failed"
	[ -f "$KEY" ] || t_fail "cmkfs init did not create key file $KEY"
	[ "$(stat -c %a "$KEY")" = 600 ] || t_fail "key file mode is $(stat -c %a "$KEY"), want 600"
}

t_mount() {
	# shellcheck disable=SC2086 # CMKFS_WRAPPER, _MOUNT_OPTS: word-split
	$CMKFS_WRAPPER "$CMKFS" mount $CMKFS_MOUNT_OPTS --service-key "$KEY" \
		"$CIPHER" "$MNT" ||
		t_fail "cmkfs mount failed"
	t_is_mounted_sure "$MNT" || t_fail "cmkfs mount returned 0 but $MNT is not mounted"
	if [ -n "$CMKFS_FSTYPE" ]; then
		local ty
		ty=$(t_fstype "$MNT")
		[ "$ty" = "$CMKFS_FSTYPE" ] || t_fail "$MNT has type '$ty', want '$CMKFS_FSTYPE'"
	fi
}

t_umount() {
	"$CMKFS" umount "$MNT" || t_fail "cmkfs umount failed"
	! t_is_mounted "$MNT" || t_fail "cmkfs umount returned 0 but $MNT is still mounted"
	local pids
	pids=$(t_pids_with_arg "$MNT")
	[ -z "$pids" ] || t_fail "cmkfs umount returned but a process still has $MNT as argument: $pids"
}

t_remount() { t_umount; t_mount; }
