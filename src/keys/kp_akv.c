/* src/keys/kp_akv.c — the customer-managed key in Azure Key Vault.
 * KEK_C (32 bytes) is wrapped by the CMK: RSA-OAEP-256 for RSA keys, A256KW
 * for Managed HSM oct keys. Key Vault takes no associated data, so the
 * binding of a wrapped KEK to its volume and layer is the config MAC
 * (doc/FORMAT.md §1), checked after unwrap. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmkfs/azauth.h"
#include "cmkfs/azerr.h"
#include "cmkfs/http.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/log.h"
#include "cmkfs/secmem.h"

struct kp_akv {
	struct kv_uri uri;
	struct kv_key key;	/* as read at open */
	const char *alg;
};

static pthread_mutex_t client_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct kv *client;
static struct azauth *client_auth;
static char ca_file[4096];

void kp_akv_set_ca_file(const char *path)
{
	snprintf(ca_file, sizeof(ca_file), "%s", path ? path : "");
}

int kp_akv_client(struct kv **out)
{
	struct http_opts o;
	int rc = 0;

	pthread_mutex_lock(&client_mtx);
	if (client == NULL) {
		http_opts_default(&o);
		if (ca_file[0] != '\0')
			o.ca_file = ca_file;
		rc = http_global_init();
		if (rc == 0)
			rc = azauth_new(&o, &client_auth);
		if (rc == 0)
			rc = kv_new(&o, client_auth, &client);
	}
	*out = client;
	pthread_mutex_unlock(&client_mtx);
	return rc;
}

int kp_akv_take_credentials(void)
{
	struct kv *kv;
	int rc;

	if (!azauth_env_has_secret())
		return 0;
	rc = kp_akv_client(&kv);
	if (rc == 0)
		azauth_scrub_env();
	return rc;
}

/* A locked mount holds no secret: the bearer tokens go on lock. */
static void akv_forget(void)
{
	pthread_mutex_lock(&client_mtx);
	if (client_auth != NULL)
		azauth_drop(client_auth);
	pthread_mutex_unlock(&client_mtx);
	http_flush();	/* kept connections hold the last replies */
}

const struct kv_key *kp_akv_key(const struct keyprov *kp)
{
	return &((const struct kp_akv *)kp->priv)->key;
}

/* Expiry is a revocation: Key Vault still unwraps with an expired key.
 * kv_judge_key() records the cause (disabled, expired) for the audit. */
static int usable(const struct kv_key *k)
{
	return kv_judge_key(k, time(NULL));
}

/* The key's exp as read at open, and the notAfter of the client
 * certificate the process's credential signs with (0 without one): the
 * monitor warns ahead of both (doc/KEYS.md "Expiry"). */
static void akv_expiry(const struct keyprov *kp, int64_t *key_exp,
		       int64_t *cred_exp)
{
	*key_exp = ((const struct kp_akv *)kp->priv)->key.exp;
	pthread_mutex_lock(&client_mtx);
	*cred_exp = client_auth != NULL ? azauth_cert_not_after(client_auth) :
					  0;
	pthread_mutex_unlock(&client_mtx);
}

static void akv_last_why(struct keyprov_why *w)
{
	const struct azerr *e = azerr_last();

	snprintf(w->cause, sizeof(w->cause), "%s", azerr_cause_name(e->cause));
	snprintf(w->code, sizeof(w->code), "%s", e->code);
	snprintf(w->request_id, sizeof(w->request_id), "%s", e->request_id);
	snprintf(w->client_request_id, sizeof(w->client_request_id), "%s",
		 e->client_request_id);
}

/* The attributes were read when this provider was opened (the monitor
 * opens one per check): judge them without another request, so a check
 * costs exactly one GET and one unwrap. */
static int akv_check(struct keyprov *kp)
{
	return usable(&((struct kp_akv *)kp->priv)->key);
}

static int akv_wrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		    const uint8_t key[static AEAD_KEY_LEN], uint8_t *out,
		    size_t cap, size_t *out_len)
{
	struct kp_akv *a = kp->priv;
	struct kv *kv;
	int rc;

	rc = kp_akv_client(&kv);
	if (rc == 0)
		rc = kv_wrap(kv, &a->uri, a->alg, key, AEAD_KEY_LEN, out, cap,
			     out_len);
	return rc;
}

static int akv_unwrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		      const uint8_t *in, size_t len,
		      uint8_t key[static AEAD_KEY_LEN])
{
	struct kp_akv *a = kp->priv;
	uint8_t *buf = NULL;
	size_t n = 0;
	struct kv *kv;
	int rc;

	rc = secmem_zalloc(1024, (void **)&buf);
	if (rc == 0)
		rc = kp_akv_client(&kv);
	if (rc == 0)
		rc = kv_unwrap(kv, &a->uri, a->alg, in, len, buf, 1024, &n);
	if (rc == 0 && n != AEAD_KEY_LEN) {
		log_err("%s: unwrapped key has %zu bytes, not 32",
			kp->key_id, n);
		rc = -EPROTO;
	}
	if (rc == 0)
		memcpy(key, buf, AEAD_KEY_LEN);
	secmem_free(buf, 1024);
	return rc;
}

static void akv_close(struct keyprov *kp)
{
	free(kp->priv);
	free(kp);
}

static int akv_open_layer(const struct vol_layer *l,
			  const uint8_t *service_key,
			  const uint8_t volume_id[static VOLUME_ID_LEN],
			  int layer, struct keyprov **out)
{
	(void)service_key;
	(void)volume_id;
	(void)layer;
	return kp_akv_open(l->key_id, out);
}

const struct keyprov_ops kp_akv_ops = {
	.name = "akv",
	.type = KPROV_AKV,
	.open = akv_open_layer,
	.forget = akv_forget,
	.last_error = kv_last_error,
	.last_why = akv_last_why,
	.clear_error = kv_clear_error,
	.wrap = akv_wrap,
	.unwrap = akv_unwrap,
	.check = akv_check,
	.close = akv_close,
	.expiry = akv_expiry,
};

int kp_akv_open(const char *key_uri, struct keyprov **out)
{
	struct keyprov *kp = calloc(1, sizeof(*kp));
	struct kp_akv *a = calloc(1, sizeof(*a));
	struct kv *kv;
	int rc;

	if (kp == NULL || a == NULL) {
		rc = -ENOMEM;
		goto fail;
	}
	rc = kv_parse_uri(key_uri, &a->uri);
	if (rc < 0)
		goto fail;
	rc = kp_akv_client(&kv);
	if (rc == 0)
		rc = kv_get_key(kv, &a->uri, &a->key);
	if (rc < 0)
		goto fail;
	a->alg = kv_alg_for(a->key.kty);
	kp->ops = &kp_akv_ops;
	kp->priv = a;
	snprintf(kp->key_id, sizeof(kp->key_id), "%s", key_uri);
	*out = kp;
	return 0;
fail:
	free(a);
	free(kp);
	return rc;
}
