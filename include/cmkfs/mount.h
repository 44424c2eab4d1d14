/* include/cmkfs/mount.h — the FUSE session of one mounted volume: options,
 * daemonising (the parent returns only once the mount serves), signals,
 * an undumpable process, and the runtime state file that umount/status
 * read. */
#ifndef CMKFS_MOUNT_H
#define CMKFS_MOUNT_H

#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/common.h"

struct mount_opts {
	const char *cipherdir;		/* absolute */
	const char *mountpoint;		/* absolute */
	const char *service_key;
	const char *fuse_opts;		/* -o list, may be NULL */
	const char *ca_file;		/* private CA for Key Vault, may be NULL */
	const char *audit_log;		/* may be NULL: $CMKFS_AUDIT_LOG or default */
	int key_check_interval_sec;	/* default 60 */
	int grace_sec;			/* default 3600 */
	bool foreground;
	bool debug;
	bool no_xattr;			/* --no-xattr: extended attributes off */
};

/* Mount and serve until unmounted. Without `foreground`, returns in the
 * parent with the child's readiness as the result. Returns an exit code. */
int mount_run(const struct mount_opts *o);

/* Runtime state: <dir>/<sha256(mountpoint)[:16]>.pid holding
 * "pid\ncipherdir\n"; dir is $CMKFS_RUNTIME_DIR, else /run/cmkfs for root,
 * else $XDG_RUNTIME_DIR/cmkfs. */
CMK_MUST_CHECK int mount_state_path(const char *mountpoint, char *out,
				    size_t cap);
/* Read the state of a mountpoint. Errors: -ENOENT. */
CMK_MUST_CHECK int mount_state_read(const char *mountpoint, pid_t *pid,
				    char *cipherdir, size_t cap);
/* Find the mountpoint where `cipherdir` is mounted as fuse.cmkfs
 * (/proc/self/mountinfo); or the cipherdir of a mountpoint. 1 found, 0 not. */
int mount_find(const char *path, char *cipherdir, size_t ccap, char *mnt,
	       size_t mcap);

#endif
