/* include/cmkfs/upgrade.h — `cmkfs upgrade`: a format-1/2 volume made
 * format 3 in place (doc/FORMAT.md "Upgrade"). Offline: the volume is held
 * against mounts for the whole run. The config first says format 3 with
 * VOLUME_FLAG_UPGRADE (nothing but this command opens it then), every
 * object is rewritten in its format-3 encoding under the same keys
 * (include/cmkfs/convert.h), the data is synced and the flag cleared.
 * Killed anywhere, the next run finishes it. A format-1 volume (or one
 * with a rekey in progress) is rekeyed first (`cmkfs rekey`). */
#ifndef CMKFS_UPGRADE_H
#define CMKFS_UPGRADE_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "cmkfs/common.h"

struct upgrade_progress {
	const char *phase;	/* "rekey", "check", "links", "begin", "convert",
				 * "sync", "finish" */
	unsigned from_version;	/* the format found (3: resumed) */
	bool resumed;		/* an upgrade was in progress already */
	bool already;		/* format 3 already: nothing done */
	uint64_t entries;	/* entries visited by the convert walk */
	uint64_t files, dirs, links, zone_lists;	/* rewritten */
	uint64_t damaged;	/* objects that do not open: left for fsck */
	double elapsed;
};

struct upgrade_cb {
	/* At each phase and every ~1000 entries; nonzero stops the run
	 * (resumable). May be NULL. */
	int (*progress)(const struct upgrade_progress *p, void *arg);
	/* An object left as it was (backing path, what). May be NULL. */
	void (*problem)(const char *bpath, const char *what, void *arg);
	void *arg;
};

enum upgrade_stage {
	UPGRADE_STAGE_DONE,
	UPGRADE_STAGE_OPEN,	/* opening, locking, reading the config */
	UPGRADE_STAGE_UNLOCK,	/* keys unavailable */
	UPGRADE_STAGE_RUN,	/* failed midway: resumable */
};

struct upgrade_result {
	enum upgrade_stage stage;
	int err;
	char msg[PATH_MAX + 512];
	struct upgrade_progress p;
};

/* Upgrade the volume in `cipherdir` (service key file `service_key`, and
 * Key Vault for a CMK). Audits the "upgrade" event. *r is always filled.
 * Errors: -EBUSY (mounted), -ENOTEMPTY (a quarantine to look at first),
 * volio_read's (OPEN), the providers' (UNLOCK), the walk's (RUN). Damaged
 * objects still return 0: see r->p.damaged. */
CMK_MUST_CHECK int upgrade_volume(const char *cipherdir,
				  const char *service_key,
				  const struct upgrade_cb *cb,
				  struct upgrade_result *r);
/* {"progress":{...}} / {"ok":true,"upgrade":{...}} lines of --json. */
void upgrade_json(const struct upgrade_progress *p, bool final, char *buf,
		  size_t cap);

#endif
