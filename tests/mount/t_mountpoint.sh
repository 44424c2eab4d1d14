#!/usr/bin/env bash
# tests/mount/t_mountpoint.sh — mount points that would hide or leak data
# are refused with exit 2 and a line naming the path and the fix, and
# nothing is mounted: a non-empty directory (unless -o nonempty), a file
# (the service key), the cipher directory or a directory inside it, a
# directory containing the cipher directory. One mount per volume: a
# second mount of the same cipher directory is refused (the registry's
# message), and so is a daemon finding the volume held by another process
# (the daemon's exclusive lock, here held shared as an older daemon did).
. "$(dirname "$0")/../lib/lib.sh"
t_init
t_need flock

expect() { # want_rc grep_pattern cmd...
	local want=$1 pat=$2 rc=0
	shift 2
	"$@" >"$T/out" 2>"$T/err" || rc=$?
	[ "$rc" = "$want" ] || t_fail "'$*' exited $rc, want $want: $(cat "$T/err")"
	[ -z "$pat" ] || grep -q -- "$pat" "$T/err" || t_fail "'$*': no '$pat' in: $(cat "$T/err")"
}
# Mounts at or below $T: other tests mount and unmount concurrently, so
# only this test's own directory is looked at.
mnt_count() { t_mounts_under "$T" | wc -l; }

t_mkvol
before=$(mnt_count)
mount_args=(mount --service-key "$KEY")

# A non-empty directory: refused, its files untouched; -o nonempty mounts
# over them (hidden while mounted, there again after).
echo plain >"$MNT/existing"
expect 11 "not empty" "$CMKFS" "${mount_args[@]}" "$CIPHER" "$MNT"
grep -q -- "-o nonempty" "$T/err" || t_fail "no fix named: $(cat "$T/err")"
[ "$(mnt_count)" = "$before" ] || t_fail "a refused mount point was mounted"
expect 0 "" "$CMKFS" "${mount_args[@]}" -o nonempty "$CIPHER" "$MNT"
t_is_mounted_sure "$MNT" || t_fail "-o nonempty did not mount"
[ ! -e "$MNT/existing" ] || t_fail "the mount shows the directory's own file"
echo secret >"$MNT/inside"
t_umount
[ "$(cat "$MNT/existing")" = plain ] && [ ! -e "$MNT/inside" ] ||
	t_fail "the mount point's files changed under -o nonempty"
rm "$MNT/existing"
t_ok "a non-empty mount point is refused; -o nonempty mounts over it"

# The service key file (any file): not a directory.
expect 11 "not a directory" "$CMKFS" "${mount_args[@]}" "$CIPHER" "$KEY"
[ "$(mnt_count)" = "$before" ] || t_fail "mounted on the key file"
[ "$(stat -c %s "$KEY")" = 32 ] || t_fail "the key file changed"
t_ok "the service key file as mount point is refused"

# The cipher directory itself, a directory inside it, one containing it.
expect 11 "inside the cipher directory" "$CMKFS" "${mount_args[@]}" "$CIPHER" "$CIPHER"
mkdir "$T/outer" "$T/outer/c"
cp -a "$CIPHER/." "$T/outer/c/"
mkdir "$T/outer/c/sub"
expect 11 "inside the cipher directory" "$CMKFS" "${mount_args[@]}" "$T/outer/c" "$T/outer/c/sub"
rmdir "$T/outer/c/sub"
expect 11 "contains the cipher directory" "$CMKFS" "${mount_args[@]}" "$T/outer/c" "$T/outer"
expect 11 "contains the cipher directory" "$CMKFS" "${mount_args[@]}" -o nonempty "$T/outer/c" "$T/outer"
[ "$(mnt_count)" = "$before" ] || t_fail "a refused mount point was mounted"
t_ok "the cipher directory, a directory in it or one holding it is refused"

# One mount per volume.
t_mount
mkdir "$T/mnt2"
expect 11 "already mounted on $MNT" "$CMKFS" "${mount_args[@]}" "$CIPHER" "$T/mnt2"
t_is_mounted "$T/mnt2" && t_fail "second mount of the same volume"
t_umount
# The daemon's own lock: a process holding the volume shared (as a mount
# did before it took it exclusively) keeps a new daemon out.
(exec 9<"$CIPHER" && flock -s 9 && exec sleep 60 9<&9) &
hold=$!
t_on_exit "kill $hold 2>/dev/null || true"
for _ in $(seq 100); do
	flock -x -n "$CIPHER" true 2>/dev/null || break
	sleep 0.05
done
expect 11 "in use" "$CMKFS" "${mount_args[@]}" "$CIPHER" "$T/mnt2"
t_is_mounted "$T/mnt2" && t_fail "mounted a volume another process holds"
kill "$hold"; wait "$hold" 2>/dev/null || true
t_mount
t_umount
t_ok "one mount per volume: the registry and the daemon's lock refuse a second"

