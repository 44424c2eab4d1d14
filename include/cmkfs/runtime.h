/* include/cmkfs/runtime.h — how a mount daemon is found from outside:
 * the runtime state file it leaves per mountpoint, and the fuse.cmkfs
 * lines of /proc/self/mountinfo; and how it is told to stop (unmount,
 * then wait for it to exit).
 *
 * State file: <dir>/<sha256(mountpoint)[:16 hex]>.pid holding
 * "pid\ncipherdir\n", mode 0600; <dir> is $CMKFS_RUNTIME_DIR, else
 * /run/cmkfs for root, else $XDG_RUNTIME_DIR/cmkfs (/tmp/cmkfs-UID without
 * it). <dir> must be a directory owned by the caller with mode 0700 (no
 * group or other bits): whoever can write there could put a socket of
 * their own in place of a daemon's. The control socket lives next to the
 * state file (ctl.h). Nothing here keeps state in memory: every function
 * is thread-safe. */
#ifndef CMKFS_RUNTIME_H
#define CMKFS_RUNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "cmkfs/common.h"

/* Create the state directory (mode 0700) if it is missing, then check it
 * (runtime_dir_check, which logs why it refuses).
 * Errors: mkdir's -errno, those of runtime_dir_check. */
int runtime_mkdir(void);
/* Whether `dir` is safe as the state directory: a directory, not a
 * symlink, owned by geteuid(), no group or other permission bits. Unless
 * `quiet`, a refusal is logged with the owner, mode and fix.
 * Errors: lstat's -errno (-ENOENT: missing), -ENOTDIR, -EPERM (owner or
 * mode). */
int runtime_dir_check(const char *dir, bool quiet);

/* The state file path of `mountpoint` into out (cap bytes), stable for a
 * given mountpoint string and environment.
 * Errors: -ENAMETOOLONG (does not fit), those of kdf_sha256. */
CMK_MUST_CHECK int runtime_state_path(const char *mountpoint, char *out,
				      size_t cap);
/* Record this process (getpid()) as the daemon of `mountpoint` serving
 * `cipherdir` in a new file of mode 0600 (whatever the umask), creating
 * and checking the directory (runtime_mkdir). Errors: -errno. */
int runtime_state_write(const char *mountpoint, const char *cipherdir);
/* Read the state of a mountpoint: its daemon's pid and cipherdir (cap
 * bytes, truncated to fit). Errors: -ENOENT (none, malformed, or in a
 * directory runtime_dir_check refuses). */
CMK_MUST_CHECK int runtime_state_read(const char *mountpoint, pid_t *pid,
				      char *cipherdir, size_t cap);
/* Remove the state file of `mountpoint`; a missing one is fine. */
void runtime_state_remove(const char *mountpoint);

/* One line of /proc/self/mountinfo (proc(5): id parent maj:min root
 * mountpoint options [optional fields] - fstype source superoptions),
 * parsed in place. Returns 1 for a fuse.cmkfs mount with *mnt and *source
 * pointing into `line`, unescaped (\ooo); 0 for any other or malformed
 * line (*mnt and *source then untouched). Pure. */
int runtime_mountinfo_parse(char *line, char **mnt, char **source);

/* Find the mountpoint where cipherdir `path` is mounted as fuse.cmkfs, or
 * the cipherdir of mountpoint `path` (/proc/self/mountinfo). On a match
 * both are copied out (truncated to ccap, mcap). Returns 1 found, 0 not. */
int runtime_find(const char *path, char *cipherdir, size_t ccap, char *mnt,
		 size_t mcap);

/* Unmount `mountpoint`: umount2(UMOUNT_NOFOLLOW) as root, else
 * `fusermount3 -u` in a child (waited for). The daemon then writes what it
 * holds and exits (runtime_wait_exit). Errors: umount2's -errno (-EBUSY:
 * files are open on it), fork's, -EPERM (fusermount3 failed or is
 * missing). */
CMK_MUST_CHECK int runtime_unmount(const char *mountpoint);
/* Wait up to timeout_ms, polling every 100 ms, until process `pid` is gone
 * (kill(pid, 0) fails with ESRCH). pid <= 0 returns at once. Errors:
 * -ETIMEDOUT (still running at the end; a pid we may not signal counts
 * as gone then). */
CMK_MUST_CHECK int runtime_wait_exit(pid_t pid, int timeout_ms);

#endif
