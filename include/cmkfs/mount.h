/* include/cmkfs/mount.h — the daemon of one mounted volume: options,
 * daemonising (the parent returns only once the mount serves), signals,
 * an undumpable process. While it serves it keeps the runtime state file
 * (runtime.h), a control socket (ctl.h, ctlcmd.h), the key monitor
 * (monitor.h) and the transient-zone sweeper (sweeper.h). */
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
	int confirm_sec;		/* 0: MONITOR_CONFIRM_DEFAULT */
	/* refuse a key expiring within this many days (0: only an expired
	 * one, the monitor's own rule) */
	int expiry_margin_days;
	bool foreground;
	bool debug;
	bool no_xattr;			/* --no-xattr: extended attributes off */
	bool writeback;			/* --writeback: the kernel's writeback cache */
	/* The keys did not unlock the volume (rc a negative errno, detail
	 * the provider's words or ""): print the fault and return the exit
	 * code (the CLI's one map, src/cli/exitmap.c). Runs in the daemon's
	 * process before it detaches, so stderr is still the caller's.
	 * NULL: logged, exit 1. */
	int (*unlock_failed)(const struct mount_opts *o, int rc,
			     const char *detail);
};

/* Mount and serve until unmounted. Without `foreground`, returns in the
 * parent with the child's readiness as the result. Returns an exit code. */
int mount_run(const struct mount_opts *o);

#endif
