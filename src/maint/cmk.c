/* src/maint/cmk.c — re-wrap KEK_C under another key: read, unlock with the
 * current keys, rewrap, prove, write, under the config lock (cmk.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/cmk.h"
#include "cmkfs/engine.h"
#include "cmkfs/kv.h"
#include "cmkfs/monitor.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"

int cmk_check_key(const struct keyprov *p, const char **why)
{
	const struct kv_key *k = kp_akv_key(p);
	time_t now = time(NULL);

	if (!k->enabled)
		*why = "the key is disabled";
	else if (k->exp != 0 && k->exp <= now)
		*why = "the key is expired";
	else if (k->nbf != 0 && k->nbf > now)
		*why = "the key is not valid yet (nbf)";
	else if (!k->op_wrap || !k->op_unwrap)
		*why = "the key does not allow wrapKey and unwrapKey";
	else if (strstr(k->recovery_level, "Recoverable") == NULL)
		*why = "the vault has no soft delete (recoveryLevel)";
	else if (strstr(k->recovery_level, "Purgeable") != NULL)
		*why = "the vault has no purge protection (recoveryLevel)";
	else if (k->rsa_bits != 0 && k->rsa_bits < 2048)
		*why = "RSA keys must have at least 2048 bits";
	else
		return 0;
	return -EPERM;
}

int cmk_preflight(const struct keyprov *p, int margin_days, char *why,
		  size_t cap)
{
	struct monitor_expiry e;
	const char *w;

	if (cmk_check_key(p, &w) < 0) {
		snprintf(why, cap, "%s", w);
		return -EPERM;
	}
	memset(&e, 0, sizeof(e));
	e.key_exp = kp_akv_key(p)->exp;
	snprintf(e.key_id, sizeof(e.key_id), "%s", p->key_id);
	return monitor_margin_check(&e, margin_days, time(NULL), why, cap);
}

static const char *event_of(enum cmk_action a)
{
	switch (a) {
	case CMK_ENABLE:
		return "cmk_enable";
	case CMK_ROTATE:
		return "cmk_rotate";
	case CMK_DISABLE:
	default:
		return "cmk_disable";
	}
}

/* The provider the customer layer moves to: Key Vault for enable and
 * rotate (checked before use unless forced), the service key for disable.
 * *owned is set when the caller must close it. Returns 1 for a rotation
 * to the key version already in use (nothing to do). */
static int open_new_key(const struct volume *v, const struct cmk_opts *o,
			struct cmk_result *r, struct keyprov **newp,
			struct keyprov **owned)
{
	char why[700];
	uint8_t *skey = NULL;
	int rc;

	if (o->action != CMK_DISABLE && o->new_key != NULL) {
		*newp = o->new_key;
		return 0;
	}
	if (o->action == CMK_DISABLE) {
		rc = kp_local_load(o->service_key, &skey);
		if (rc == 0)
			rc = kp_local_open(skey, v->volume_id, 1, owned);
		secmem_free(skey, SERVICE_KEY_LEN);
		if (rc < 0)
			return ENGINE_FAIL(r, CMK_STAGE_OPEN_KEY, rc, "%s: %s",
				    o->service_key, volio_strerror(rc));
		*newp = *owned;
		return 0;
	}
	rc = kp_akv_open(o->key_uri, owned);
	if (rc < 0)
		return ENGINE_FAIL(r, CMK_STAGE_OPEN_KEY, rc, "%s: %s: %s", o->key_uri,
			    volio_strerror(rc), kv_last_error());
	*newp = *owned;
	if (o->action == CMK_ROTATE && !o->automatic &&
	    v->layer[1].prov == KPROV_AKV &&
	    strcmp((*newp)->key_id, v->layer[1].key_id) == 0 &&
	    (*newp)->follow == ((v->flags & VOLUME_FLAG_FOLLOW) != 0))
		return 1;	/* the version in use, followed or pinned alike */
	if (cmk_preflight(*newp, o->expiry_margin_days, why, sizeof(why)) == 0)
		return 0;
	if (!o->force) {
		audit_event(event_of(o->action), o->key_uri, "refused", why);
		return ENGINE_FAIL(r, CMK_STAGE_REFUSED, -EPERM,
			    "%s: refused: %s (use --force to override)",
			    o->key_uri, why);
	}
	if (o->warn != NULL)
		o->warn(why, o->arg);
	return 0;
}

/* Does the action fit the volume's customer layer as it is? */
static int check_state(const char *cdir, const struct volume *v,
		       enum cmk_action a, struct cmk_result *r)
{
	bool has_cmk = v->layer[1].prov == KPROV_AKV;

	if (a == CMK_ENABLE && has_cmk)
		return ENGINE_FAIL(r, CMK_STAGE_STATE, -EEXIST,
			    "%s: a customer-managed key is already enabled "
			    "(%s); use 'cmkfs cmk rotate'",
			    cdir, v->layer[1].key_id);
	if (a != CMK_ENABLE && !has_cmk)
		return ENGINE_FAIL(r, CMK_STAGE_STATE, -ENOKEY,
			    "%s: no customer-managed key is enabled", cdir);
	return 0;
}

int cmk_run(const char *cdir, const struct cmk_opts *o, struct cmk_result *r)
{
	struct keyprov *prov[2] = { NULL, NULL }, *cur[2], *newp = NULL,
		       *owned = NULL;
	struct keyring *kr = NULL, *check = NULL;
	char id[VOLUME_ID_HEX_LEN];
	struct volume v, nv;
	int rc, fd, lk;

	memset(r, 0, sizeof(*r));
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* Held until the caller told a live mount: a rekey must not start
	 * from the old config meanwhile. */
	lk = fd < 0	  ? -errno :
	     o->automatic ? volio_trylock_config(fd) :
			    volio_lock_config(fd);
	rc = lk < 0 ? lk : volio_read(fd, &v);
	if (rc < 0) {
		ENGINE_FAIL(r, CMK_STAGE_READ, rc, "%s: %s", cdir, volio_strerror(rc));
		goto out;
	}
	if (o->expect != NULL && volio_same_as_disk(fd, o->expect) < 0) {
		rc = ENGINE_FAIL(r, CMK_STAGE_STATE, -ESTALE,
				 "%s: the config changed meanwhile", cdir);
		goto out;
	}
	volume_id_hex(&v, id);
	audit_set_volume(id);
	rc = check_state(cdir, &v, o->action, r);
	if (rc < 0)
		goto out;
	/* The current keys, through the current (old) CMK. */
	if (o->cur[0] != NULL && o->cur[1] != NULL) {
		cur[0] = o->cur[0];
		cur[1] = o->cur[1];
	} else {
		rc = volio_providers(&v, o->service_key, prov);
		cur[0] = prov[0];
		cur[1] = prov[1];
	}
	if (rc == 0)
		rc = keyring_open(&v, cur, &kr);
	if (rc == -EUCLEAN) {
		ENGINE_FAIL(r, CMK_STAGE_STATE, rc, "%s: %s", cdir,
			    volio_strerror(rc));
		goto out;
	}
	if (rc < 0) {
		ENGINE_FAIL(r, CMK_STAGE_UNLOCK, rc,
		     "%s: cannot unlock with the current keys: %s%s%s", cdir,
		     volio_strerror(rc),
		     v.layer[1].prov == KPROV_AKV ? ": " : "",
		     v.layer[1].prov == KPROV_AKV ? kv_last_error() : "");
		goto out;
	}
	rc = open_new_key(&v, o, r, &newp, &owned);
	if (rc < 0)
		goto out;
	if (rc == 1) {
		/* Re-wrapping under the same version would change nothing
		 * but the nonce: a no-op, not audited as a rotation. */
		r->unchanged = true;
		snprintf(r->key_id, sizeof(r->key_id), "%s", v.layer[1].key_id);
		snprintf(r->old_key_id, sizeof(r->old_key_id), "%s",
			 v.layer[1].key_id);
		r->stage = CMK_STAGE_DONE;
		rc = 0;
		goto out;
	}
	rc = keyring_rewrap(kr, 1, newp, &nv);
	if (rc == -EBUSY) {
		ENGINE_FAIL(r, CMK_STAGE_WRAP, rc,
		     "%s: a rekey is in progress; finish it with "
		     "'cmkfs rekey %s' first",
		     cdir, cdir);
		goto out;
	}
	if (rc < 0) {
		ENGINE_FAIL(r, CMK_STAGE_WRAP, rc, "wrapping with %s failed: %s: %s",
		     newp->key_id, volio_strerror(rc), kv_last_error());
		goto out;
	}
	audit_event("wrap", newp->key_id, "ok", "KEK_C");
	/* Prove the new config opens before it replaces the old one. */
	{
		struct keyprov *np[2] = { cur[0], newp };

		rc = keyring_open(&nv, np, &check);
	}
	if (rc < 0) {
		ENGINE_FAIL(r, CMK_STAGE_PROVE, rc,
		     "the re-wrapped key does not unwrap: %s",
		     volio_strerror(rc));
		goto out;
	}
	rc = volio_write(fd, &nv);
	if (rc < 0) {
		ENGINE_FAIL(r, CMK_STAGE_WRITE, rc, "%s: writing the config: %s", cdir,
		     strerror(-rc));
		goto out;
	}
	if (o->automatic) {
		char d[VOLUME_KEYID_MAX + 32];

		snprintf(d, sizeof(d), "automatic rotation from %s",
			 v.layer[1].key_id);
		audit_event(event_of(o->action), newp->key_id, "ok", d);
	} else {
		audit_event(event_of(o->action), newp->key_id, "ok",
			    v.layer[1].key_id);
	}
	snprintf(r->key_id, sizeof(r->key_id), "%s", newp->key_id);
	snprintf(r->old_key_id, sizeof(r->old_key_id), "%s", v.layer[1].key_id);
	r->stage = CMK_STAGE_DONE;
	if (o->committed != NULL)
		o->committed(cdir, r, o->arg);
out:
	volio_unlock_config(lk);
	if (fd >= 0)
		close(fd);
	keyring_free(kr);
	keyring_free(check);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	keyprov_close(owned);
	return rc;
}
