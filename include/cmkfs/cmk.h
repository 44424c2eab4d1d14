/* include/cmkfs/cmk.h — `cmkfs cmk enable|rotate|disable`: put the customer
 * layer's KEK_C under another key (doc/KEYS.md "Customer-managed keys").
 * Only the wrapping of KEK_C changes, no file is rewritten. One run is a
 * transaction under the config lock: read the config, unlock it with the
 * current keys, re-wrap KEK_C with the new key, prove the new config opens
 * (unwrapped again and MAC-checked), then replace cmkfs.conf atomically, so
 * the volume opens with the old key or the new one at every instant.
 *
 * Telling a live mount to adopt the new config is the caller's business
 * (the committed() callback, run while the config lock is still held, so a
 * rekey cannot start from the old config meanwhile). Audit events
 * ("wrap", "cmk_enable", "cmk_rotate", "cmk_disable") are the engine's. */
#ifndef CMKFS_CMK_H
#define CMKFS_CMK_H

#include <limits.h>
#include <stdbool.h>

#include "cmkfs/keyprov.h"
#include "cmkfs/volume.h"

enum cmk_action {
	/* service-managed -> customer-managed key, KEK_C re-wrapped only.
	 * Not a hand-over: the service key and an old config still open
	 * everything. `cmkfs cmk enable` runs a full rekey instead
	 * (rekey.h, cb->full with cb->new_c); this stays for the engine's
	 * tests and for init-time use. */
	CMK_ENABLE,
	CMK_ROTATE,	/* customer-managed -> another key or version */
	CMK_DISABLE,	/* customer-managed -> service-managed */
};

/* Where a run stopped. */
enum cmk_stage {
	CMK_STAGE_DONE,		/* the new config is on disk */
	CMK_STAGE_READ,		/* opening, locking or reading the config */
	CMK_STAGE_STATE,	/* action does not fit the volume (-EEXIST,
				 * -ENOKEY) */
	CMK_STAGE_UNLOCK,	/* the current keys do not unlock it */
	CMK_STAGE_OPEN_KEY,	/* the new key could not be opened */
	CMK_STAGE_REFUSED,	/* pre-flight check failed (-EPERM) */
	CMK_STAGE_WRAP,		/* re-wrapping failed (-EBUSY: rekey) */
	CMK_STAGE_PROVE,	/* the new config does not open */
	CMK_STAGE_WRITE,	/* writing cmkfs.conf failed */
};

/* Long enough for a message naming two paths and a key. */
#define CMK_MSG_MAX (2 * PATH_MAX + 1024)

struct cmk_result {
	enum cmk_stage stage;
	int err;			/* 0, or the negative errno */
	/* On failure: one sentence for the user, without a command prefix. */
	char msg[CMK_MSG_MAX];
	/* Once re-wrapped: the key now protecting layer C, and the old one. */
	char key_id[VOLUME_KEYID_MAX + 1];
	char old_key_id[VOLUME_KEYID_MAX + 1];
	/* rotate to the version in use (pinned or followed as before):
	 * nothing was written, key_id is that version */
	bool unchanged;
};

struct cmk_opts {
	enum cmk_action action;
	const char *service_key;	/* service key file path */
	/* enable, rotate: the new key's URI, opened with kp_akv_open() once
	 * the volume is unlocked: with a version (pinned), or versionless
	 * (its current version, followed: VOLUME_FLAG_FOLLOW). */
	const char *key_uri;
	bool force;			/* a failed pre-flight check only warns */
	/* pre-flight: refuse a key expiring within this many days (0: only
	 * an expired one; the CLI's default is CMK_EXPIRY_MARGIN_DEFAULT) */
	int expiry_margin_days;
	/* Injected providers (borrowed, may be NULL): new_key is used
	 * instead of opening key_uri, and skips the pre-flight check (which
	 * reads Key Vault attributes); cur[] unlock the current config
	 * instead of the providers volio_providers() opens from it. */
	struct keyprov *new_key;
	struct keyprov *cur[2];
	/* The key-check loop following a versionless key to its new
	 * version (rotate only): do not wait for the config lock (-EBUSY:
	 * another writer has it; the mount adopts what that one writes),
	 * and go on only if the config on disk is still `expect` (-ESTALE),
	 * the one the check judged. The audit says "automatic rotation". */
	bool automatic;
	const struct volume *expect;
	/* A pre-flight check failed under force: why. May be NULL. */
	void (*warn)(const char *why, void *arg);
	/* The new config is on disk and audited; the config lock is still
	 * held. Print, notify a live mount. May be NULL. */
	void (*committed)(const char *cipherdir, const struct cmk_result *r,
			  void *arg);
	void *arg;
};

/* Run `o->action` on the volume in `cipherdir` (the path is used in
 * messages as given). *r is always filled: stage, err and msg say where and
 * why it stopped. The config on disk is replaced only at CMK_STAGE_DONE.
 * Errors: -errno / volio errors (READ), -EEXIST (enable: a CMK is already
 * enabled), -ENOKEY (rotate, disable: none is), the providers' (UNLOCK,
 * OPEN_KEY, WRAP, PROVE), -EPERM (REFUSED), -EBUSY (a rekey is in
 * progress; automatic: the config lock is held), -ESTALE (automatic: the
 * config changed), -EOPNOTSUPP (a versionless key on a format-1 volume),
 * -errno (WRITE). */
CMK_MUST_CHECK int cmk_run(const char *cipherdir, const struct cmk_opts *o,
			   struct cmk_result *r);

/* Pre-flight checks of a Key Vault key opened with kp_akv_open(): enabled,
 * valid now, wrapKey and unwrapKey allowed, soft delete and purge
 * protection, RSA at least 2048 bits. 0, or -EPERM with *why set. */
CMK_MUST_CHECK int cmk_check_key(const struct keyprov *p, const char **why);

/* The default pre-flight expiry margin of init --cmk, cmk enable and
 * rotate, in days: the 7-day warning's threshold (doc/KEYS.md "Expiry"). */
#define CMK_EXPIRY_MARGIN_DEFAULT 7
/* cmk_check_key(), then: does the key expire within margin_days
 * (monitor_margin_check)? 0, or -EPERM with why (cap bytes) saying why
 * and, for the expiry, when and how to proceed. */
CMK_MUST_CHECK int cmk_preflight(const struct keyprov *p, int margin_days,
				 char *why, size_t cap);

#endif
