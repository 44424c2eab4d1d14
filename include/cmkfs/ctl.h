/* include/cmkfs/ctl.h — the control socket of a mount daemon: a Unix
 * socket next to the mount's state file (mode 0600, peers checked with
 * SO_PEERCRED: root or the daemon's own uid). One request line, one JSON
 * reply line. Commands: "status", "lock", "check", "reload". */
#ifndef CMKFS_CTL_H
#define CMKFS_CTL_H

#include "cmkfs/common.h"

typedef void (*ctl_handler)(const char *cmd, char *reply, size_t cap,
			    void *ud);
struct ctl;

/* Listen at `path` and answer in a thread. */
CMK_MUST_CHECK int ctl_start(const char *path, ctl_handler h, void *ud,
			     struct ctl **out);
void ctl_stop(struct ctl *c);	/* NULL-safe; removes the socket */
/* Client: send cmd to the daemon of `mountpoint`, reply into out.
 * Errors: -ENOENT (no daemon), -ECONNREFUSED, -ETIMEDOUT, -errno. */
CMK_MUST_CHECK int ctl_request(const char *mountpoint, const char *cmd,
			       char *out, size_t cap);
/* Socket path for a mountpoint (the state file's, with ".sock"). */
CMK_MUST_CHECK int ctl_path(const char *mountpoint, char *out, size_t cap);

#endif
