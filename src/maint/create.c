/* src/maint/create.c — a new volume: directory, service key, providers,
 * KEKs, then root directory id and config, in that order (create.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/cmk.h"
#include "cmkfs/create.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/engine.h"
#include "cmkfs/kv.h"
#include "cmkfs/rand.h"
#include "cmkfs/reserved.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"

/* 0 if `path` was made now (*made set) or is an empty directory without
 * a volume. */
static int dir_empty_or_new(const char *path, bool *made)
{
	int fd, rc;

	if (mkdir(path, 0700) == 0) {
		*made = true;
		return 0;
	}
	if (errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = faccessat(fd, VOLUME_FILE, F_OK, 0) == 0 ? -EEXIST : 0;
	if (rc == 0) {
		rc = dirtree_is_empty(fd);
		rc = rc == 1 ? 0 : rc == 0 ? -ENOTEMPTY : rc;
	}
	close(fd);
	return rc;
}

static int check_dir(const char *dir, bool *made, struct create_result *r)
{
	int rc = dir_empty_or_new(dir, made);

	if (rc == -EEXIST)
		return ENGINE_FAIL(r, CREATE_STAGE_DIR, rc,
			    "%s: already holds a cmkfs volume", dir);
	if (rc == -ENOTEMPTY)
		return ENGINE_FAIL(r, CREATE_STAGE_DIR, rc,
			    "%s: directory is not empty", dir);
	if (rc < 0)
		return ENGINE_FAIL(r, CREATE_STAGE_DIR, rc, "%s: %s", dir,
			    strerror(-rc));
	return 0;
}

/* A random volume id and both layers' providers for it: the service
 * key's, or for the customer layer the Key Vault key (checked unless
 * forced) or the injected one. */
static int open_providers(const struct create_opts *o, const uint8_t *skey,
			  uint8_t *volid, struct keyprov *prov[2],
			  struct create_result *r)
{
	const char *cmk = o->cmk_uri;
	char why[700];
	int rc;

	rc = rand_bytes(volid, VOLUME_ID_LEN);
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (i == 1 && o->cmk != NULL)
			break;
		if (i == 1 && cmk != NULL)
			rc = kp_akv_open(cmk, &prov[i]);
		else
			rc = kp_local_open(skey, volid, i, &prov[i]);
	}
	if (rc < 0 && cmk != NULL && o->cmk == NULL)
		return ENGINE_FAIL(r, CREATE_STAGE_OPEN_KEY, rc, "%s: %s: %s", cmk,
			    volio_strerror(rc), kv_last_error());
	if (rc < 0)
		return ENGINE_FAIL(r, CREATE_STAGE_KEYS, rc, "key setup failed: %s",
			    strerror(-rc));
	if (cmk == NULL || o->cmk != NULL ||
	    cmk_preflight(prov[1], o->expiry_margin_days, why, sizeof(why)) == 0)
		return 0;
	if (!o->force)
		return ENGINE_FAIL(r, CREATE_STAGE_REFUSED, -EPERM,
			    "%s: refused: %s (use --force to override)", cmk,
			    why);
	if (o->warn != NULL)
		o->warn(why, o->arg);
	return 0;
}

/* Root directory id first, config last: a volume exists once its config
 * does. */
static int write_volume(const char *dir, struct keyring *kr,
			const struct volume *v, struct create_result *r)
{
	uint8_t dirid[DIRID_LEN], rec[DIRID_RAW_MAX];
	size_t len = 0;
	int fd, rc;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || rand_bytes(dirid, sizeof(dirid)) < 0) {
		int e = errno;

		rc = ENGINE_FAIL(r, CREATE_STAGE_WRITE, e ? -e : -EIO, "%s: %s", dir,
			  strerror(e));
		goto out;
	}
	/* Format 3: bound to the root's place (no name: the 0xFF pair). */
	rc = dirtree_dirid_encode(kr, dirid, NULL, rec, &len);
	if (rc == 0)
		rc = backing_replace(fd, DIRID_FILE, rec, len, 0400);
	if (rc == 0)
		rc = volio_write(fd, v);
	if (rc < 0)
		ENGINE_FAIL(r, CREATE_STAGE_WRITE, rc, "%s: writing the volume: %s",
		     dir, strerror(-rc));
out:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* A failed init leaves nothing half-made: what this run created goes
 * again (the root directory id, the directory if it made it, the service
 * key if it made it); what was there before stays. */
static void undo(const char *dir, bool dir_made, const char *kp,
		 bool key_made)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd >= 0) {
		/* written before the config, which alone makes a volume */
		(void)unlinkat(fd, DIRID_FILE, 0);
		close(fd);
	}
	if (dir_made)
		(void)rmdir(dir);
	if (key_made)
		(void)unlink(kp);
}

int create_volume(const char *dir, const struct create_opts *o,
		  struct create_result *r)
{
	bool dir_made = false;
	struct keyprov *prov[2] = { NULL, NULL }, *layers[2];
	uint32_t bs = o->block_size ? o->block_size : BLOCK_SIZE_DEFAULT;
	const char *kp = o->service_key;
	uint8_t *skey = NULL, volid[VOLUME_ID_LEN];
	struct keyring *kr = NULL;
	struct volume v;
	int rc;

	memset(r, 0, sizeof(*r));
	r->block_size = bs;
	if (!volume_block_size_ok(bs))
		return ENGINE_FAIL(r, CREATE_STAGE_ARGS, -EINVAL,
			    "block size %u is not a power of two from 512 to "
			    "1048576",
			    bs);
	rc = check_dir(dir, &dir_made, r);
	if (rc < 0)
		return rc;
	rc = kp_local_create(kp);
	if (rc < 0) {
		ENGINE_FAIL(r, CREATE_STAGE_SERVICE_KEY, rc,
			    "cannot create service key %s: %s", kp,
			    strerror(-rc));
		goto out;
	}
	r->key_created = rc > 0;
	rc = kp_local_load(kp, &skey);
	if (rc < 0) {
		ENGINE_FAIL(r, CREATE_STAGE_SERVICE_KEY, rc, "%s: %s", kp,
			    volio_strerror(rc == -ENOENT ? -ENOKEY : rc));
		goto out;
	}
	rc = open_providers(o, skey, volid, prov, r);
	if (rc < 0)
		goto out;
	layers[0] = prov[0];
	layers[1] = o->cmk != NULL ? o->cmk : prov[1];
	rc = keyring_create(layers, bs, volid, &v, &kr);
	if (rc < 0) {
		ENGINE_FAIL(r, CREATE_STAGE_KEYS, rc, "key setup failed: %s",
		     strerror(-rc));
		goto out;
	}
	rc = write_volume(dir, kr, &v, r);
	if (rc < 0)
		goto out;
	volume_id_hex(&v, r->volume_id);
	if (o->cmk_uri != NULL || o->cmk != NULL) {
		const char *name = o->cmk_uri ? o->cmk_uri : o->cmk->key_id;

		audit_set_volume(r->volume_id);
		audit_event("wrap", name, "ok", "KEK_C (init)");
		audit_event("cmk_enable", name, "ok", "init");
	}
	r->stage = CREATE_STAGE_DONE;
out:
	if (rc < 0) {
		undo(dir, dir_made, kp, r->key_created);
		r->key_created = false;
	}
	keyring_free(kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	secmem_free(skey, SERVICE_KEY_LEN);
	return rc;
}
