/* include/cmkfs/ctl.h — the control socket of a mount daemon: a Unix
 * socket next to the mount's state file (mode 0600). Peers are checked
 * both ways with SO_PEERCRED: the daemon answers root and its own uid
 * (others get an error reply); the client talks only to the process the
 * state file names, running as root or as the client's uid, and only
 * in a runtime directory runtime_dir_check accepts. One request line, one
 * JSON reply line. Commands: "status", "lock", "check", "reload", "sweep", "rekey".
 * Each connection is served by its own thread. */
#ifndef CMKFS_CTL_H
#define CMKFS_CTL_H

#include <sys/types.h>

#include "cmkfs/common.h"

/* Answer `cmd` in reply (one JSON line). A long command may first send
 * progress lines to the client on fd with ctl_send_line(). */
typedef void (*ctl_handler)(const char *cmd, char *reply, size_t cap, int fd,
			    void *ud);
struct ctl;

/* Listen at `path` and answer in a thread. */
CMK_MUST_CHECK int ctl_start(const char *path, ctl_handler h, void *ud,
			     struct ctl **out);
void ctl_stop(struct ctl *c);	/* NULL-safe; removes the socket */
/* Client: send cmd to the daemon of `mountpoint`, reply into out.
 * Errors: -ENOENT (no daemon), -ECONNREFUSED, -ETIMEDOUT, -EPERM (the
 * runtime directory, or the peer is not the daemon of the state file;
 * logged), -errno. With a state file but nobody listening (the daemon
 * was killed) the error is logged with the pid and the way to clean up. */
CMK_MUST_CHECK int ctl_request(const char *mountpoint, const char *cmd,
			       char *out, size_t cap);
/* Client for a streamed reply: line_cb gets every line (NUL-terminated,
 * without the newline) until the daemon closes, or until it returns
 * nonzero (that value is returned). timeout_ms bounds each wait. */
CMK_MUST_CHECK int ctl_stream(const char *mountpoint, const char *cmd,
			      int timeout_ms,
			      int (*line_cb)(const char *line, void *arg),
			      void *arg);
/* Whether the daemon of `mountpoint` is gone: nothing listens at its
 * socket (missing, or refusing). *pid gets the pid its state file names
 * (0 without one). Returns 1 gone, 0 listening or cannot tell. */
int ctl_gone(const char *mountpoint, pid_t *pid);
/* After a daemon died without cleaning up (kill -9): remove its socket
 * and state file if nothing listens there. Returns 1 if files were
 * removed, 0 if none were stale (or the directory is refused). */
int ctl_stale_cleanup(const char *mountpoint);
/* Server side: one line (a newline is added). Errors: -EPIPE (client gone). */
int ctl_send_line(int fd, const char *line);
/* Socket path for a mountpoint (the state file's, with ".sock"). */
CMK_MUST_CHECK int ctl_path(const char *mountpoint, char *out, size_t cap);

#endif
