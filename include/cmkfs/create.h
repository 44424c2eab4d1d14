/* include/cmkfs/create.h — `cmkfs init`: make a new volume in a directory
 * (doc/FORMAT.md, doc/KEYS.md). Owns the order of creation: the directory
 * (made, or found empty), the service key file (made if missing), a random
 * volume id, both layers' providers (the customer layer optionally under a
 * Key Vault key, checked as `cmkfs cmk enable` does), fresh KEKs, then the
 * root directory id and last the config: a volume exists once its config
 * does. With a customer-managed key it audits "wrap" and "cmk_enable". */
#ifndef CMKFS_CREATE_H
#define CMKFS_CREATE_H

#include <limits.h>
#include <stdbool.h>

#include "cmkfs/keyprov.h"
#include "cmkfs/volume.h"

/* Where a run stopped. */
enum create_stage {
	CREATE_STAGE_DONE,	/* the volume is on disk */
	CREATE_STAGE_ARGS,	/* bad options (-EINVAL) */
	CREATE_STAGE_DIR,	/* not a fresh directory (-EEXIST: a volume is
				 * there; -ENOTEMPTY; -errno) */
	CREATE_STAGE_SERVICE_KEY, /* making or loading the service key */
	CREATE_STAGE_OPEN_KEY,	/* the customer key could not be opened */
	CREATE_STAGE_REFUSED,	/* its pre-flight check failed (-EPERM) */
	CREATE_STAGE_KEYS,	/* making the KEKs and the config */
	CREATE_STAGE_WRITE,	/* writing the root directory id or config */
};

/* Long enough for a message naming a path and a key. */
#define CREATE_MSG_MAX (PATH_MAX + 1024)

struct create_result {
	enum create_stage stage;
	int err;			/* 0, or the negative errno */
	/* On failure: one sentence for the user, without a command prefix. */
	char msg[CREATE_MSG_MAX];
	bool key_created;		/* the service key file was made now */
	uint32_t block_size;		/* of the new volume */
	char volume_id[VOLUME_ID_HEX_LEN];
};

struct create_opts {
	const char *service_key;	/* service key file path */
	uint32_t block_size;		/* 0: BLOCK_SIZE_DEFAULT */
	/* The customer layer under this Key Vault key (full URI with
	 * version), opened with kp_akv_open() and checked unless force;
	 * NULL: under the service key. */
	const char *cmk_uri;
	bool force;			/* a failed pre-flight check only warns */
	int expiry_margin_days;		/* as cmk_opts' (cmk.h) */
	/* Injected (borrowed, may be NULL): used for the customer layer
	 * instead of opening cmk_uri; not pre-flight checked. */
	struct keyprov *cmk;
	/* A pre-flight check failed under force: why. May be NULL. */
	void (*warn)(const char *why, void *arg);
	void *arg;
};

/* Make a volume in `dir` (created 0700 if missing; else it must be empty).
 * *r is always filled: stage, err and msg say where and why it stopped.
 * No volume file is written before CREATE_STAGE_WRITE (stale temporaries
 * left in `dir` by a crash are removed when checking it is empty).
 * Errors: -EINVAL (block size), -EEXIST (a volume is there already),
 * -ENOTEMPTY, -errno (directory, service key file), the providers', -EPERM
 * (the customer key failed its pre-flight check), -errno (writing). */
CMK_MUST_CHECK int create_volume(const char *dir, const struct create_opts *o,
				 struct create_result *r);

#endif
