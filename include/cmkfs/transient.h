/* include/cmkfs/transient.h — transient zones (issue #4): directories of
 * the volume whose files expire `ttl` seconds after their last
 * modification (at most 24 h). The zone list lives in the cipher directory
 * as `cmkfs.transient`, sealed with a key derived from both KEKs (its
 * paths are plaintext names). Expired files are destroyed header first
 * (overwritten with random bytes and synced, so they can never be
 * decrypted again), then unlinked. */
#ifndef CMKFS_TRANSIENT_H
#define CMKFS_TRANSIENT_H

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

/* Load / store the zone list of the volume at dirfd. A missing file is an
 * empty list. Errors: -EBADMSG (tampered), -EKEYREVOKED. */
CMK_MUST_CHECK int transient_load(int dirfd, struct keyring *kr,
				  struct tzone *z, size_t *n);
CMK_MUST_CHECK int transient_store(int dirfd, struct keyring *kr,
				   const struct tzone *z, size_t n);

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
 * synced first; then the entry and its long-name side file are unlinked.
 * Errors: -EISDIR, -errno. */
CMK_MUST_CHECK int transient_destroy(int dirfd, const char *bname);
/* Index of the outermost zone of z[0..n) that contains volume path `path`
 * ("/relay/x" is in "/relay", and so is "/relay" itself), or -1. Pure. */
int transient_zone_of(const struct tzone *z, size_t n, const char *path);

#endif
