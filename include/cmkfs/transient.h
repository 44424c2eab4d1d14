/* include/cmkfs/transient.h — transient zones: directories of
 * the volume whose files expire `ttl` seconds after their last
 * modification (at most 24 h). The zone list lives in the cipher directory
 * as `cmkfs.transient`, sealed with a key derived from both KEKs (its
 * paths are plaintext names). Expired files are destroyed header first
 * (overwritten with random bytes and synced, so they can never be
 * decrypted again), then unlinked. */
#ifndef CMKFS_TRANSIENT_H
#define CMKFS_TRANSIENT_H

#include <errno.h>
#include <limits.h>
#include <sys/types.h>
#include <time.h>

#include "cmkfs/keyring.h"
#include "cmkfs/reserved.h"		/* TRANSIENT_FILE */

#define TRANSIENT_TTL_MAX (24 * 3600)
#define TRANSIENT_MAX_ZONES 64

struct tzone {
	char path[1024];	/* "/relay/uploads": absolute in the volume */
	long ttl_sec;
};

/* "24h", "90m", "3600s", "1d": seconds in 1..TRANSIENT_TTL_MAX.
 * Errors: -EINVAL, -ERANGE (over 24 h). Pure. */
CMK_MUST_CHECK int transient_parse_ttl(const char *s, long *sec);
/* Normalise a volume path ("relay/", "/relay//x") to "/relay/x".
 * Errors: -EINVAL ("..", ".", empty, too long). Pure. */
CMK_MUST_CHECK int transient_norm_path(const char *in, char *out, size_t cap);

/* Load / store the zone list of the volume at dirfd (its root). A missing
 * file is an empty list — in format 3 only if the config names no list
 * (volume.zones_version 0). Format 3: the config on disk is adopted first
 * if it verifies under kr's keys and names another version; the list's
 * sealed version must be the config's (or one ahead: a store cut short
 * before its config write); a store writes the next version, then the
 * config naming it. Errors: -EBADMSG (tampered), TRANSIENT_EMISSING,
 * TRANSIENT_EROLLBACK, -EKEYREVOKED, -errno. */
#define TRANSIENT_EMISSING (-ENODATA)
#define TRANSIENT_EROLLBACK (-ESTALE)
CMK_MUST_CHECK int transient_load(int dirfd, struct keyring *kr,
				  struct tzone *z, size_t *n);
/* transient_load() for a mount: a format-3 list one version ahead of the
 * config (an edit cut short before its config write) is committed, the
 * config rewritten to name it (a failure to write is only logged).
 * Returns 1 if committed, 0 if nothing to do. Errors: transient_load's,
 * -errno of the config lock. */
CMK_MUST_CHECK int transient_settle(int rootfd, struct keyring *kr);
/* One sentence for a transient_load() error. */
const char *transient_strerror(int rc);
/* A full rekey's step for the zone list: re-sealed under the current
 * secret if it is still under the previous one. Returns 1 if re-sealed,
 * 0 if already current or absent. Errors: as transient_load/_store. */
CMK_MUST_CHECK int transient_reseal(int rootfd, struct keyring *kr);
/* `cmkfs upgrade`'s step for the zone list (keyring_upgrading()): a
 * format-2 list is stored again as a format-3 one of version 1 and the
 * config names it. Returns 1 if converted, 0 if already format 3 or
 * absent. Errors: -EINVAL (no upgrade runs), as transient_load/_store. */
CMK_MUST_CHECK int transient_upgrade(int rootfd, struct keyring *kr);
CMK_MUST_CHECK int transient_store(int dirfd, struct keyring *kr,
				   const struct tzone *z, size_t n);

/* What transient_edit() does to the zone list. */
enum transient_op {
	TRANSIENT_LIST,		/* nothing: read it */
	TRANSIENT_ADD,		/* add a zone, or set the TTL of one */
	TRANSIENT_REMOVE,	/* remove a zone */
};

/* Where transient_edit() stopped. */
enum transient_stage {
	TRANSIENT_STAGE_DONE,	/* listed, or the new list stored */
	TRANSIENT_STAGE_UNLOCK,	/* opening the volume or unlocking its keys */
	TRANSIENT_STAGE_LOAD,	/* the zone list cannot be read */
	TRANSIENT_STAGE_EDIT,	/* the edit is refused; nothing written */
	TRANSIENT_STAGE_STORE,	/* the new list cannot be written */
};

/* Long enough for a message naming a path and a Key Vault error. */
#define TRANSIENT_MSG_MAX (PATH_MAX + 1024)

struct transient_result {
	enum transient_stage stage;
	int err;			/* 0, or the negative errno */
	/* On failure: one sentence for the user, without a command prefix. */
	char msg[TRANSIENT_MSG_MAX];
	/* The zone list as read (LIST) or as stored (ADD, REMOVE). */
	struct tzone z[TRANSIENT_MAX_ZONES];
	size_t n;
};

/* Read, or edit and store, the zone list of the volume in `cipherdir`
 * (named in messages as given), unlocked with the service key file
 * `service_key` (and Key Vault for a CMK). vpath is a normalised volume
 * path (transient_norm_path) for ADD and REMOVE, ttl the zone's TTL in
 * seconds for ADD; both are ignored by LIST. *r is always filled.
 * Errors: -errno of open and volio_unlock's (UNLOCK), transient_load's
 * (LOAD), -ENOSPC (ADD of a new zone to TRANSIENT_MAX_ZONES), -ENOENT
 * (REMOVE of a path that is no zone) (EDIT), transient_store's (STORE).
 * A live mount learns of the change from its caller ("sweep", ctl.h). */
CMK_MUST_CHECK int transient_edit(const char *cipherdir,
				  const char *service_key, enum transient_op op,
				  const char *vpath, long ttl,
				  struct transient_result *r);

/* Called for each entry removed: the backing directory it was in (dev,
 * ino) and its plaintext name, so a daemon can drop the kernel's dentry. */
typedef void (*transient_cb)(dev_t dev, ino_t dir_ino, const char *name,
			     void *ud);
/* Expire zone z under the volume root `rootfd` as of `now`; *count gets
 * the number of entries destroyed. A zone directory that does not exist
 * expires nothing. */
CMK_MUST_CHECK int transient_expire(int rootfd, struct keyring *kr,
				    const struct tzone *z, time_t now,
				    transient_cb cb, void *ud,
				    unsigned long *count);
/* The same walk without destroying anything: *count gets the number of
 * entries of zone z that are due to expire as of `now` (for `cmkfs fsck`
 * beside a live mount, whose sweeper owns expiry). */
CMK_MUST_CHECK int transient_count_due(int rootfd, struct keyring *kr,
				       const struct tzone *z, time_t now,
				       unsigned long *count);
/* Destroy one non-directory entry dirfd/bname as expiry does: a regular
 * file with one link gets its header overwritten with random bytes and
 * synced first; then the entry and its long-name side file are unlinked,
 * and the target side file (in the root `rootfd`) of a symlink whose last
 * link this was. Errors: -EISDIR, -errno. */
CMK_MUST_CHECK int transient_destroy(int rootfd, int dirfd,
				     const char *bname);
/* Index of the outermost zone of z[0..n) that contains volume path `path`
 * ("/relay/x" is in "/relay", and so is "/relay" itself), or -1. Pure. */
int transient_zone_of(const struct tzone *z, size_t n, const char *path);

#endif
