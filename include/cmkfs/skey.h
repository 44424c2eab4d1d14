/* include/cmkfs/skey.h — `cmkfs service-key change`: put a volume under
 * another service key (doc/KEYS.md "Changing the service key"). Only the
 * wraps the service key makes change: KEK_S (layer S), and KEK_C too when
 * no customer-managed key is enabled (layer C `local`). No file is
 * rewritten. One run, offline and under the config lock: read the config,
 * unlock it with the current service key (and the CMK, if any: the MAC
 * needs both KEKs), re-wrap under the new key, prove the new config opens
 * with it, then replace cmkfs.conf atomically (temporary file, fsync,
 * rename, fsync of the directory), so the volume opens with exactly one of
 * the two keys at every instant, a kill -9 included. */
#ifndef CMKFS_SKEY_H
#define CMKFS_SKEY_H

#include <limits.h>

#include "cmkfs/volume.h"

enum skey_stage {
	SKEY_STAGE_DONE,	/* the new config is on disk */
	SKEY_STAGE_READ,	/* opening, locking or reading the config */
	SKEY_STAGE_BUSY,	/* mounted, or another writer runs (-EBUSY) */
	SKEY_STAGE_UNLOCK,	/* the current keys do not unlock it */
	SKEY_STAGE_NEW_KEY,	/* the new key could not be read, or is the
				 * one in use (-EEXIST) */
	SKEY_STAGE_WRAP,	/* re-wrapping failed (-EBUSY: a rekey) */
	SKEY_STAGE_PROVE,	/* the new config does not open */
	SKEY_STAGE_WRITE,	/* writing cmkfs.conf failed */
};

struct skey_result {
	enum skey_stage stage;
	int err;			/* 0, or the negative errno */
	char msg[2 * PATH_MAX + 512];	/* on failure, one sentence */
	char old_key_id[VOLUME_KEYID_MAX + 1];	/* local:... */
	char new_key_id[VOLUME_KEYID_MAX + 1];
	int layers;			/* wraps changed: 1 or 2 */
};

/* Re-wrap the volume in `cipherdir` from the service key `old_source` to
 * `new_source` (sources as kp_local_load: a file or "fd:N"). Refused while
 * the volume is mounted: the daemon keeps the key it read at mount and
 * would lock at its next key check. Audited ("service_key_change").
 * Errors: -EBUSY (mounted, another writer, a rekey in progress), the
 * key loaders' (-ENOKEY for a missing current key), -EKEYREJECTED (the
 * current key is not this volume's), -EEXIST (the same key), providers',
 * -errno (WRITE). */
CMK_MUST_CHECK int skey_change(const char *cipherdir, const char *old_source,
			       const char *new_source, struct skey_result *r);

#endif
