/* include/cmkfs/monitor.h — the key-check loop of a mounted volume.
 * Every interval it proves access to both layers' keys (Key Vault: key
 * attributes, then an unwrap of the stored wrapped KEK_C, which must match
 * the KEK in memory). A denial (permission removed, key disabled, deleted,
 * expired or not yet valid, credential refused) is confirmed by a second
 * check confirm_sec later and locks the keyring if that one is a denial
 * too; a transient fault (network, timeout, 5xx, 429, IMDS 404/410,
 * ForbiddenByFirewall) locks only when the last success is older than the
 * grace period; a check's requests may wait out a Retry-After for as long
 * as the grace period has left. A success while locked unlocks. Every
 * result is audited with its cause and request ids (audit_event_why). Key
 * traffic: two Key Vault requests per interval (the interval jittered by
 * +-10 %), whatever the number of files. The monitor opens providers only
 * through the callback its creator gives it and reaches provider kinds only
 * through the registry (keyprov.h): it knows no provider by name and no
 * file on disk. */
#ifndef CMKFS_MONITOR_H
#define CMKFS_MONITOR_H

#include <stdbool.h>
#include <time.h>

#include "cmkfs/keyring.h"

#define MONITOR_CONFIRM_DEFAULT 5

struct monitor_cfg {
	int interval_sec;		/* default 60 */
	int grace_sec;			/* default 3600 */
	int confirm_sec;		/* <= 0: MONITOR_CONFIRM_DEFAULT */
	const char *service_key;	/* path, handed to open_providers */
	/* Providers for both layers of v, opened afresh at every check so
	 * the service key file and the Key Vault key are read again (the
	 * daemon: volio_providers). On success both are set; the monitor
	 * closes them with keyprov_close(). Errors: the providers'. Required:
	 * the monitor knows no provider and no volume on disk itself. */
	CMK_MUST_CHECK int (*open_providers)(const struct volume *v,
					     const char *service_key,
					     struct keyprov *prov[2]);
	/* A sentence for a failed check (status, audit, log) (the daemon:
	 * volio_strerror). NULL: strerror(). */
	const char *(*strerror)(int rc);
	/* Called after the keyring is locked (wipe caches, invalidate the
	 * kernel's pages). Nothing is invalidated on resume: nothing was
	 * cached while locked, and dropping pages then would race with
	 * writes in flight (doc/DESIGN.md). */
	void (*on_lock)(void *ud);
	void *ud;
	/* The customer layer follows its key (VOLUME_FLAG_FOLLOW) and a check
	 * found a newer usable version, kid (keyprov newer()): re-wrap KEK_C
	 * to the key's current version and write the config, proving it
	 * with cur (the check's providers), and put the new config in *nv
	 * (the daemon: cmk_run with .automatic). The monitor then adopts nv.
	 * Errors: any; the next check tries again, except after -EPERM (the
	 * version was refused by the pre-flight checks: not tried again).
	 * NULL: new versions are not followed. */
	int (*follow)(void *follow_ud, struct keyprov *cur[2], const char *kid,
		      struct volume *nv);
	void *follow_ud;
};

struct monitor_status {
	bool locked;
	bool manual;			/* locked by `cmkfs lock` */
	time_t last_check, last_ok;
	char last_result[256];		/* "ok" or the reason */
	char key_id[VOLUME_KEYID_MAX + 1];	/* what protects layer C */
	char lock_cause[16];		/* why it locked ("disabled", ...) or "" */
	unsigned long checks;		/* completed checks */
	bool last_check_ok;
	bool follow;			/* layer C follows its key's versions */
	unsigned long rotations;	/* automatic rotations by this mount */
	time_t last_rotation;		/* 0: none */
};

struct monitor;

/* Start the check thread over kr (not owned; it must outlive the
 * monitor). Errors: -EINVAL (no open_providers), -ENOMEM, -EAGAIN. */
CMK_MUST_CHECK int monitor_start(struct keyring *kr,
				 const struct monitor_cfg *cfg,
				 struct monitor **out);
void monitor_stop(struct monitor *m);	/* NULL-safe; joins the thread */
/* `cmkfs lock`: wipe now; the next check that starts after this one and
 * succeeds unlocks (a check already under way when the lock came does
 * not). st (may be NULL) gets the status as the lock left it. */
void monitor_lock_now(struct monitor *m, const char *why,
		      struct monitor_status *st);
/* Check now instead of waiting for the interval (returns at once). */
void monitor_kick(struct monitor *m);
/* Adopt v, a rewritten cmkfs.conf the caller has read (cmk enable /
 * rotate / disable on a live mount), and prove the new key with a check
 * before returning (waits up to 60 s); st gets the result.
 * Errors: as keyring_set_volume. */
CMK_MUST_CHECK int monitor_reload(struct monitor *m, const struct volume *v,
				  struct monitor_status *st);
void monitor_get_status(struct monitor *m, struct monitor_status *st);
/* The wait before the next check, in milliseconds: interval_sec x U[0.9,
 * 1.1] drawn from the CSPRNG, so hosts started together (a fleet rebooted
 * at once) spread their checks instead of reaching Key Vault in step.
 * interval_sec <= 0 counts as 1. Never 0. */
long monitor_next_wait_ms(int interval_sec);
/* 1 if rc (from a provider or Key Vault) means access is denied, 0 if it is
 * transient. Pure. */
int monitor_is_denial(int rc);

#endif
