/* include/cmkfs/monitor.h — the key-check loop of a mounted volume.
 * Every interval it proves access to both layers' keys (Key Vault: key
 * attributes, then an unwrap of the stored wrapped KEK_C, which must match
 * the KEK in memory). A denial (permission removed, key disabled, deleted,
 * expired or not yet valid, credential refused) is confirmed by a second
 * check confirm_sec later and locks the keyring if that one is a denial
 * too; a transient fault (network, timeout, 5xx, 429, IMDS 404/410,
 * ForbiddenByFirewall) locks only when the last success is older than the
 * grace period, judged when the check ends; a check's requests may wait out
 * a Retry-After for as long as the grace period has left, never past it,
 * and while checks fail the next comes no later than the grace period's
 * end (doc/KEYS.md "Grace period": the lock comes at most one request's
 * time after it). A success while locked unlocks a lock a
 * check caused; a manual lock (`cmkfs lock`) holds until monitor_unlock,
 * whatever the checks find meanwhile (they go on, for status). Every
 * failure, lock and resume is audited with its cause and request ids
 * (audit_event_why); unchanged successes in summary (monitor_hb_step). Key
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
/* Successful checks are audited in summary (doc/OPERATIONS.md "Audit
 * log"): a change of result always, an unchanged "ok" at most this often
 * (seconds), with the number of checks it stands for. */
#define MONITOR_HEARTBEAT_DEFAULT 3600
/* How long monitor_unlock waits for its check: below the control
 * socket client's 30 s wait for a reply (ctl.c). */
#define MONITOR_UNLOCK_WAIT_SEC 25

/* Warnings before an expiry (doc/KEYS.md "Expiry"): days before it. */
#define MONITOR_WARN_DAYS_1 30
#define MONITOR_WARN_DAYS_2 7
#define MONITOR_WARN_DAYS_3 1

/* What a judgement found about expiry: the earliest key exp of both
 * layers' providers and the credential's (client certificate notAfter),
 * Unix times, 0 = none. key_id names the key whose exp that is. */
struct monitor_expiry {
	int64_t key_exp, cred_exp;
	char key_id[VOLUME_KEYID_MAX + 1];
};

/* One expiry's warning state: the exp last seen and the threshold (30, 7,
 * 1) already warned about for it, 0 = none. */
struct monitor_warned {
	int64_t exp;
	int level;
};

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
	/* What the mount's own judgement (monitor_judge) found: warned
	 * about at start, so a mount near expiry says so at once. */
	struct monitor_expiry mounted;
	/* The longest run of unchanged "ok" checks without an audit line,
	 * in seconds: 0 = $CMKFS_AUDIT_HEARTBEAT if set (0 there: every
	 * check), else MONITOR_HEARTBEAT_DEFAULT; < 0: every check. */
	int heartbeat_sec;
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
	/* From the last judgement that succeeded: exp of the key in use and
	 * notAfter of the credential's certificate (0 = none), and the
	 * warning level of each: 30, 7, 1 (days), 0 = none. */
	int64_t key_exp, cred_exp;
	int key_warn, cred_warn;
	/* failed checks by kind (monitor_result_kind) since the mount */
	unsigned long fail_denied, fail_transient, fail_error;
};

/* The audit summary of checks (pure; the check thread's own). */
struct monitor_hb {
	int period;		/* seconds; <= 0: every check gets a line */
	char last_kind[16];	/* the previous check's kind; "ok" at mount */
	time_t last_line;	/* the last check line, or the mount */
	unsigned long quiet;	/* checks since then without a line */
};

struct monitor;

/* Start the check thread over kr (not owned; it must outlive the
 * monitor). Errors: -EINVAL (no open_providers), -ENOMEM, -EAGAIN. */
CMK_MUST_CHECK int monitor_start(struct keyring *kr,
				 const struct monitor_cfg *cfg,
				 struct monitor **out);
void monitor_stop(struct monitor *m);	/* NULL-safe; joins the thread */
/* `cmkfs lock`: wipe now; the mount stays locked until monitor_unlock,
 * however many checks succeed meanwhile (on a mount a check locked too:
 * the lock becomes a manual one). st (may be NULL) gets the status as the
 * lock left it. */
void monitor_lock_now(struct monitor *m, const char *why,
		      struct monitor_status *st);
/* `cmkfs unlock`: prove the keys again with a check that starts after
 * this call (the check thread runs it at once) and unlock only if it
 * succeeds; it ends a lock a check caused as well. Waits up to
 * MONITOR_UNLOCK_WAIT_SEC for that check. Returns 0 once unlocked (or if
 * the mount was not locked); else the mount stays locked and why (cap
 * bytes) says what the check found: the check's error (monitor_is_denial
 * tells a denial from a transient fault), -EAGAIN (a lock came while the
 * check ran), -ETIMEDOUT (the check did not finish in time; it unlocks
 * nothing when it does), -ECANCELED (the monitor is stopping). st (may
 * be NULL) gets the status afterwards. */
CMK_MUST_CHECK int monitor_unlock(struct monitor *m, char *why, size_t cap,
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
/* The judgement of a check before its unwrap proof, the same for a mount
 * (before it unwraps) and every check of the monitor: each provider's
 * check (Key Vault: enabled, not expired, valid yet; an expired key is a
 * denial, doc/KEYS.md "Expiry"). On 0, *ex (may be NULL) gets the expiry
 * times the providers report. Errors: the providers' check. */
CMK_MUST_CHECK int monitor_judge(struct keyprov *prov[2],
				 struct monitor_expiry *ex);
/* The warning level of an expiry at `now`: 1, 7 or 30 when exp is at most
 * that many days away (the smallest that holds), 0 if further or exp is 0,
 * -1 if exp is past. Pure. */
int monitor_expiry_level(int64_t exp, time_t now);
/* Whether to warn now: the level (30, 7, 1) when exp has crossed a
 * threshold not warned about yet, else 0; *w is updated. A new exp (the
 * key rotated, its expiry extended) starts over. Pure. */
int monitor_expiry_step(struct monitor_warned *w, int64_t exp, time_t now);
/* Pre-flight (mount, init --cmk, cmk enable and rotate): does the key
 * expire within margin_days of now? 0 if not (or it has no exp), else
 * -EPERM with *why saying when it expires and how to proceed (rotate, or
 * extend exp). Pure. */
CMK_MUST_CHECK int monitor_margin_check(const struct monitor_expiry *e,
					int margin_days, time_t now,
					char *why, size_t cap);
/* Days from now to exp, rounded down (negative once past). Pure. */
long monitor_days_left(int64_t exp, time_t now);

/* 1 if rc (from a provider or Key Vault) means access is denied, 0 if it is
 * transient. Pure. */
int monitor_is_denial(int rc);
/* What a check's rc is in the audit log and the error counters: "ok";
 * "denied" (Key Vault, Entra ID or the key refused: monitor_is_denial);
 * "transient" (not reachable: network, timeout, 5xx, 429, firewall, IMDS
 * 404/410 — Key Vault's and Entra's answers come as -EAGAIN); "error"
 * (anything else: a local I/O error, a malformed reply, TLS, memory).
 * Only "denied" locks without the grace period. Pure. */
const char *monitor_result_kind(int rc);
/* Start a summary at `now` (a mount: its unwrap was a success). */
void monitor_hb_init(struct monitor_hb *h, int period, time_t now);
/* A check of `kind` at `now`: true if it gets an audit line — any check
 * that is not "ok", the first "ok" after one that was not, and an "ok"
 * once `period` seconds have passed since the last line (the heartbeat)
 * — with *n the checks that line stands for (the quiet ones since the
 * last line, and this one). Pure. */
bool monitor_hb_step(struct monitor_hb *h, const char *kind, time_t now,
		     unsigned long *n);

#endif
