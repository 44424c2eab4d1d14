/* include/cmkfs/ctlcmd.h — what a mount daemon answers on its control
 * socket (ctl.h carries the bytes): "status", "lock", "unlock", "check",
 * "reload", "sweep" and "rekey" (a live rekey, with progress lines streamed to the
 * client). Every reply is one JSON line: {"ok":true,...the mount's key
 * state...} or {"ok":false,"error":"..."}.
 *
 * The daemon fills a struct ctlcmd, calls ctlcmd_init, and passes
 * ctlcmd_handle with it to ctl_start. Handlers run on ctl's connection
 * threads, several at once; the fields below are set before ctl_start
 * and read-only after, except where noted. */
#ifndef CMKFS_CTLCMD_H
#define CMKFS_CTLCMD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "cmkfs/common.h"

struct fsctx;
struct keyring;
struct monitor;
struct rekey_progress;
struct sweeper;

struct ctlcmd {
	const char *cipherdir;		/* "reload" reads its config again */
	const char *service_key;	/* providers for a live rekey */
	int key_check_interval_sec;	/* reported by status */
	int grace_sec;			/* reported by status */
	int rootfd;			/* O_RDONLY cipherdir; borrowed */
	struct keyring *kr;		/* borrowed */
	struct monitor *mon;		/* borrowed */
	struct fsctx *fs;		/* borrowed; inode and handle counts */
	struct sweeper *sw;		/* borrowed */
	pthread_mutex_t rekey_mtx;	/* one rekey at a time */
	atomic_int stopping;		/* set by ctlcmd_stopping */
};

/* Initialise the lock and flag (the caller has filled the rest). */
void ctlcmd_init(struct ctlcmd *c);
/* The daemon is unmounting: a running rekey stops at its next progress
 * point (resumable) so that ctl_stop does not wait for a whole rekey. */
void ctlcmd_stopping(struct ctlcmd *c);
void ctlcmd_destroy(struct ctlcmd *c);

/* A ctl_handler (ctl.h): answer `cmd` into reply (cap bytes); `ud` is the
 * struct ctlcmd. An unknown command gets {"ok":false,...}. */
void ctlcmd_handle(const char *cmd, char *reply, size_t cap, int fd,
		   void *ud);

/* The client side of "lock", "reload" and "sweep": the reply decoded.
 * A field missing, of another type, or in a reply that is no JSON reads as
 * false. */
struct ctlcmd_state {
	bool ok;		/* "ok":true: the command did what it says */
	bool locked;		/* "locked":true: the mount's keys are wiped */
	bool last_check_ok;	/* "last_check_ok":true: the last key check
				 * unwrapped */
	bool denied;		/* "denied":true: an unlock's check was
				 * refused (not a transient fault) */
	char reply[4096];	/* the reply line as received, for messages */
};

/* Ask the daemon serving `mountpoint` to lock at once, to read its config
 * again (after `cmkfs cmk`), or to sweep its transient zones now (the
 * reply comes after the sweep). 0 with *st filled once a reply came,
 * whatever it says; else ctl_request's -errno (*st then all false, reply
 * ""). */
CMK_MUST_CHECK int ctlcmd_lock(const char *mountpoint, struct ctlcmd_state *st);
/* Ask it to unlock once a key check of its own succeeds (a manual lock
 * holds until then). On a reply: ok and !locked once unlocked; else
 * {"ok":false,"locked":true,"denied":...,"errno":N,"error":"why"}. */
CMK_MUST_CHECK int ctlcmd_unlock(const char *mountpoint,
				 struct ctlcmd_state *st);
CMK_MUST_CHECK int ctlcmd_reload(const char *mountpoint,
				 struct ctlcmd_state *st);
CMK_MUST_CHECK int ctlcmd_sweep(const char *mountpoint,
				struct ctlcmd_state *st);

/* The client side of "rekey": the stream's lines decoded. Each callback
 * may be NULL; the pointers it gets live until it returns. */
struct ctlcmd_rekey_cb {
	/* {"progress":{...}} */
	void (*progress)(const struct rekey_progress *p, void *arg);
	/* {"problem":{"backing":...,"what":...}}: a header not re-wrapped */
	void (*problem)(const char *bpath, const char *what, void *arg);
	/* The reply: p set when the rekey finished ({"ok":true,"rekey":...}),
	 * else NULL and error says why ("unknown error" if the daemon did
	 * not). line is the reply as received. */
	void (*result)(const struct rekey_progress *p, const char *error,
		       const char *line, void *arg);
	void *arg;
};

/* Ask the daemon serving `mountpoint` for a live rekey and follow it to
 * the end. req: "rekey", "rekey full" or "rekey full KEY_URI" (a full
 * rekey moving the customer layer to that Key Vault key: cmk enable). Lines that are not JSON are skipped. Returns 0 once the daemon
 * closed the stream (whether or not a reply came: see cb->result), or
 * ctl_stream's -errno (no daemon, no line for 300 s). */
CMK_MUST_CHECK int ctlcmd_rekey_stream(const char *mountpoint,
				       const char *req,
				       const struct ctlcmd_rekey_cb *cb);

#endif
