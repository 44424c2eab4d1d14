/* src/maint/skey.c — move a volume to another service key: unlock with
 * the current one, re-wrap, prove, replace cmkfs.conf (skey.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/engine.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "cmkfs/secmem.h"
#include "cmkfs/skey.h"
#include "cmkfs/volio.h"

/* KEK_S, and KEK_C when it is under the service key too, re-wrapped by
 * np[] into *nv (MACed). */
static int rewrap(struct keyring *kr, const struct volume *v,
		  struct keyprov *np[2], struct volume *nv, int *layers)
{
	int rc = keyring_rewrap(kr, 0, np[0], nv);

	*layers = 1;
	if (rc < 0 || v->layer[1].prov != KPROV_LOCAL)
		return rc;
	/* keyring_rewrap starts from the keyring's config: adopt the
	 * first step (same KEKs, its MAC checks) before the second. */
	rc = keyring_set_volume(kr, nv);
	if (rc == 0)
		rc = keyring_rewrap(kr, 1, np[1], nv);
	*layers = 2;
	return rc;
}

int skey_change(const char *cdir, const char *old_source,
		const char *new_source, struct skey_result *r)
{
	struct keyprov *prov[2] = { NULL, NULL }, *np[2] = { NULL, NULL },
		       *owned1 = NULL;
	struct keyring *kr = NULL, *check = NULL;
	char id[VOLUME_ID_HEX_LEN];
	uint8_t *nkey = NULL;
	struct volume v, nv;
	int rc, fd, lk = -1;

	memset(r, 0, sizeof(*r));
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = ENGINE_FAIL(r, SKEY_STAGE_READ, -errno, "%s: %s", cdir,
				 strerror(errno));
		goto out;
	}
	/* A mount holds a shared flock on the directory for its life; it
	 * keeps the key it read at mount, and would lock at its next check
	 * against a config it can no longer open. */
	rc = volio_lock_offline(fd);
	if (rc == 0) {
		lk = volio_trylock_config(fd);
		rc = lk < 0 ? lk : 0;
	}
	if (rc == -EBUSY) {
		rc = ENGINE_FAIL(r, SKEY_STAGE_BUSY, rc,
				 "%s: the volume is mounted, or another cmkfs "
				 "command (rekey, repair, cmk) is writing it: "
				 "unmount it first ('cmkfs umount MOUNTPOINT'; "
				 "a running mount keeps the service key it "
				 "read at mount)",
				 cdir);
		goto out;
	}
	if (rc == 0)
		rc = volio_read(fd, &v);
	if (rc < 0) {
		ENGINE_FAIL(r, SKEY_STAGE_READ, rc, "%s: %s", cdir,
			    volio_strerror(rc));
		goto out;
	}
	volume_id_hex(&v, id);
	audit_set_volume(id);
	snprintf(r->old_key_id, sizeof(r->old_key_id), "%s",
		 v.layer[0].key_id);
	/* Prove the current key (and the CMK, if any) opens the volume. */
	rc = volio_providers(&v, old_source, prov);
	if (rc == 0)
		rc = keyring_open(&v, prov, &kr);
	if (rc < 0) {
		ENGINE_FAIL(r, SKEY_STAGE_UNLOCK, rc,
			    "%s: cannot unlock with the current service key "
			    "%s: %s",
			    cdir, old_source, volio_strerror(rc));
		goto out;
	}
	snprintf(r->old_key_id, sizeof(r->old_key_id), "%s", prov[0]->key_id);
	rc = kp_local_read(new_source, &nkey);
	if (rc == 0)
		rc = kp_local_open(nkey, v.volume_id, 0, &np[0]);
	if (rc == 0 && v.layer[1].prov == KPROV_LOCAL) {
		rc = kp_local_open(nkey, v.volume_id, 1, &owned1);
		np[1] = owned1;
	} else {
		np[1] = prov[1];
	}
	if (rc < 0) {
		ENGINE_FAIL(r, SKEY_STAGE_NEW_KEY, rc, "%s: %s", new_source,
			    rc == -ENOENT ? "no such file" : volio_strerror(rc));
		goto out;
	}
	snprintf(r->new_key_id, sizeof(r->new_key_id), "%s", np[0]->key_id);
	if (strcmp(np[0]->key_id, prov[0]->key_id) == 0) {
		rc = ENGINE_FAIL(r, SKEY_STAGE_NEW_KEY, -EEXIST,
				 "%s: this is the service key the volume is "
				 "already under (%s)",
				 new_source, np[0]->key_id);
		goto out;
	}
	rc = rewrap(kr, &v, np, &nv, &r->layers);
	if (rc == -EBUSY) {
		ENGINE_FAIL(r, SKEY_STAGE_WRAP, rc,
			    "%s: a rekey is in progress; finish it with "
			    "'cmkfs rekey %s' first",
			    cdir, cdir);
		goto out;
	}
	if (rc < 0) {
		ENGINE_FAIL(r, SKEY_STAGE_WRAP, rc, "%s: re-wrapping: %s", cdir,
			    volio_strerror(rc));
		goto out;
	}
	/* The new config must open with the new key before it replaces
	 * the old one. */
	rc = keyring_open(&nv, np, &check);
	if (rc < 0) {
		ENGINE_FAIL(r, SKEY_STAGE_PROVE, rc,
			    "%s: the re-wrapped config does not open: %s", cdir,
			    volio_strerror(rc));
		goto out;
	}
	rc = volio_write(fd, &nv);
	if (rc < 0) {
		ENGINE_FAIL(r, SKEY_STAGE_WRITE, rc,
			    "%s: writing the config: %s (cmkfs.conf is the "
			    "old one or, if the rename landed, the new one)",
			    cdir, strerror(-rc));
		audit_event("service_key_change", r->new_key_id, "error",
			    "writing the config failed");
		goto out;
	}
	audit_event("service_key_change", r->new_key_id, "ok", r->old_key_id);
	r->stage = SKEY_STAGE_DONE;
out:
	volio_unlock_config(lk);
	if (fd >= 0)
		close(fd);	/* drops the offline flock */
	keyring_free(kr);
	keyring_free(check);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	keyprov_close(np[0]);
	keyprov_close(owned1);
	secmem_free(nkey, SERVICE_KEY_LEN);
	return rc;
}
