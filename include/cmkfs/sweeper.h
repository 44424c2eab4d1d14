/* include/cmkfs/sweeper.h — the transient-zone sweeper of a mount daemon
 * (doc/OPERATIONS.md "Transient zones"): expires every zone's old files
 * once at mount, then every $CMKFS_TRANSIENT_SWEEP_SEC seconds (default
 * 30, 1..3600) in its own thread, and on demand (the control socket's
 * "sweep"). Removed entries are dropped from the kernel's cache; each
 * sweep that expired something writes one transient_expire audit event.
 * Sweeps never overlap. Nothing is swept while the keyring is locked. */
#ifndef CMKFS_SWEEPER_H
#define CMKFS_SWEEPER_H

#include <stdbool.h>

#include "cmkfs/common.h"

struct fsctx;
struct keyring;
struct sweeper;

/* A sweeper over the volume at `rootfd` (an O_RDONLY descriptor of the
 * cipher directory), both borrowed: they must outlive the sweeper.
 * Errors: -ENOMEM. */
CMK_MUST_CHECK int sweeper_new(int rootfd, struct keyring *kr,
			       struct sweeper **out);
/* Sweep now, in the calling thread; returns when done. `at_mount` only
 * marks the audit event. Before sweeper_start nothing is mounted: no
 * namespace lock is taken and nothing is invalidated. */
void sweeper_sweep(struct sweeper *sw, bool at_mount);
/* Start the periodic thread over the mounted `fs` (fs->ns serialises a
 * sweep against namespace changes; fs->se gets the invalidations).
 * Errors: -EAGAIN (no thread). */
CMK_MUST_CHECK int sweeper_start(struct sweeper *sw, struct fsctx *fs);
/* Stop and join the thread (if started), then free. NULL-safe. */
void sweeper_free(struct sweeper *sw);

#endif
