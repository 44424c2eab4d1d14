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
#include <strings.h>
#include <time.h>

#include "cmkfs/azauth.h"
#include "cmkfs/azerr.h"
#include "cmkfs/http.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/log.h"
#include "cmkfs/secmem.h"

struct kp_akv {
	struct kv_uri uri;	/* with the version in use */
	struct kv_key key;	/* as read at open */
	const char *alg;
	/* follow: the current version, read at open with the attributes of
	 * the one in use (one GET when they are the same) */
	bool have_latest;
	struct kv_key latest;
	char latest_version[sizeof(((struct kv_uri *)0)->version)];
};

static int open_read(const struct kv_uri *u, const struct kv_key *k,
		     const char *key_id, struct keyprov **out);

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

/* An oct key's size, and so its AES-KW (A128KW, A192KW, A256KW), is in
 * the key reply only from API version 2026-01-01-preview on (key_size;
 * Azure/azure-sdk-for-python#47116); with ours it is unknown. Then the
 * first operation tries A256KW (the default size) and, on a 400 (the
 * algorithm does not fit the key), the smaller two; the one that worked
 * is remembered per key version for the process's life, so a 128- or
 * 192-bit key costs extra requests once, not at every check. */
#define ALG_MEMO 16
static pthread_mutex_t alg_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct {
	char kid[KV_URI_MAX];
	const char *alg;
} alg_memo[ALG_MEMO];
static unsigned alg_next;

static bool size_unknown(const struct kp_akv *a)
{
	return a->alg != NULL && strcmp(a->alg, "A256KW") == 0 &&
	       a->key.oct_bits == 0;
}

static const char *alg_recall(const char *kid)
{
	const char *alg = NULL;

	pthread_mutex_lock(&alg_mtx);
	for (int i = 0; i < ALG_MEMO && alg == NULL; i++) {
		if (alg_memo[i].alg != NULL && strcmp(alg_memo[i].kid, kid) == 0)
			alg = alg_memo[i].alg;
	}
	pthread_mutex_unlock(&alg_mtx);
	return alg;
}

static void alg_remember(const char *kid, const char *alg)
{
	if (strlen(kid) >= KV_URI_MAX || alg_recall(kid) != NULL)
		return;
	pthread_mutex_lock(&alg_mtx);
	memcpy(alg_memo[alg_next % ALG_MEMO].kid, kid, strlen(kid) + 1);
	alg_memo[alg_next % ALG_MEMO].alg = alg;
	alg_next++;
	pthread_mutex_unlock(&alg_mtx);
}

/* The provider's algorithm for its key: from the reply, or remembered. */
static const char *alg_of(const struct kp_akv *a, const char *kid)
{
	const char *alg = kv_key_alg(&a->key);

	if (alg != NULL && strcmp(alg, "A256KW") == 0 && a->key.oct_bits == 0) {
		const char *known = alg_recall(kid);

		if (known != NULL)
			alg = known;
	}
	return alg;
}

/* op with the provider's algorithm; for an oct key of unknown size, the
 * other AES-KW sizes after a 400 (see above). */
static int with_alg(struct keyprov *kp,
		    int (*op)(struct kv *kv, const struct kv_uri *u,
			      const char *alg, const uint8_t *in, size_t len,
			      uint8_t *out, size_t cap, size_t *out_len),
		    const uint8_t *in, size_t len, uint8_t *out, size_t cap,
		    size_t *out_len)
{
	static const char *const smaller[] = { "A192KW", "A128KW" };
	struct kp_akv *a = kp->priv;
	bool probe = size_unknown(a);
	struct kv *kv;
	int rc;

	rc = kp_akv_client(&kv);
	if (rc == 0)
		rc = op(kv, &a->uri, a->alg, in, len, out, cap, out_len);
	for (size_t i = 0; probe && rc == -EPROTO &&
			   azerr_last()->status == 400 &&
			   i < CMK_ARRAY_LEN(smaller);
	     i++) {
		rc = op(kv, &a->uri, smaller[i], in, len, out, cap, out_len);
		if (rc == 0) {
			a->alg = smaller[i];
			alg_remember(kp->key_id, a->alg);
		}
	}
	return rc;
}

static int akv_wrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		    const uint8_t key[static AEAD_KEY_LEN], uint8_t *out,
		    size_t cap, size_t *out_len)
{
	return with_alg(kp, kv_wrap, key, AEAD_KEY_LEN, out, cap, out_len);
}

static int akv_unwrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		      const uint8_t *in, size_t len,
		      uint8_t key[static AEAD_KEY_LEN])
{
	uint8_t *buf = NULL;
	size_t n = 0;
	int rc;

	rc = secmem_zalloc(1024, (void **)&buf);
	if (rc == 0)
		rc = with_alg(kp, kv_unwrap, in, len, buf, 1024, &n);
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

/* Only a version that could protect the volume is followed: usable now
 * (kv_judge_key) and allowing both operations, of the same key type. A
 * disabled newest version (a rotation being rolled back) leaves the mount
 * on the one it has. */
static int akv_newer(struct keyprov *kp, char *out, size_t cap)
{
	struct kp_akv *a = kp->priv;
	const struct kv_key *l = &a->latest;
	struct azerr keep = *azerr_last();
	int n;

	if (!kp->follow || !a->have_latest ||
	    strcmp(a->latest_version, a->uri.version) == 0 || !l->op_wrap ||
	    !l->op_unwrap || strcmp(l->kty, a->key.kty) != 0)
		return 0;
	if (kv_judge_key(l, time(NULL)) < 0) {
		/* not this check's result: the version in use is fine */
		azerr_set(&keep);
		kv_clear_error();
		return 0;
	}
	n = snprintf(out, cap, "%s/keys/%s/%s", a->uri.vault, a->uri.name,
		     a->latest_version);
	return n > 0 && (size_t)n < cap;
}

static void akv_close(struct keyprov *kp)
{
	free(kp->priv);
	free(kp);
}

int kp_akv_versionless(const char *key_uri, char *out, size_t cap)
{
	struct kv_uri u;
	int n;

	if (kv_parse_uri(key_uri, &u) < 0)
		return -EINVAL;
	n = snprintf(out, cap, "%s/keys/%s", u.vault, u.name);
	return n < 0 || (size_t)n >= cap ? -ENAMETOOLONG : 0;
}

/* Is kid (from a reply) a version of the key at u? A reply naming another
 * vault or key must not become the key the volume is wrapped with. */
static int same_key(const struct kv_uri *u, const char *kid,
		    struct kv_uri *out)
{
	if (kv_parse_uri(kid, out) < 0 || out->version[0] == '\0' ||
	    strcasecmp(out->host, u->host) != 0 ||
	    strcasecmp(out->name, u->name) != 0)
		return -EPROTO;
	/* keep the spelling the customer gave (host case, port) */
	snprintf(out->vault, sizeof(out->vault), "%s", u->vault);
	snprintf(out->host, sizeof(out->host), "%s", u->host);
	snprintf(out->name, sizeof(out->name), "%s", u->name);
	return 0;
}

/* A layer that follows its key: the current version first; when it is the
 * one in use that single GET is the check's, else the one in use is read
 * too (and the current one is offered by akv_newer). */
static int open_following(const char *key_id, struct keyprov **out)
{
	struct keyprov *kp = NULL;
	struct kp_akv *a;
	struct kv_key latest;
	struct kv_uri u, b, cur;
	struct kv *kv;
	int rc;

	rc = kv_parse_uri(key_id, &u);
	if (rc == 0 && u.version[0] == '\0')
		rc = -EINVAL;	/* the config names the version in use */
	if (rc == 0)
		rc = kp_akv_client(&kv);
	if (rc < 0)
		return rc;
	b = u;
	b.version[0] = '\0';
	rc = kv_get_key(kv, &b, &latest);
	if (rc == 0 && same_key(&u, latest.kid, &cur) < 0) {
		log_err("%s/keys/%s: Key Vault named another key as its "
			"current version", u.vault, u.name);
		rc = -EPROTO;
	}
	if (rc < 0) {
		/* The current version unreadable (a GET of a disabled version
		 * may be refused with 403 KeyDisabled) says nothing about the
		 * one in use: the check is that one's, nothing is followed. */
		rc = kp_akv_open(key_id, &kp);
		if (rc < 0)
			return rc;
		kp->follow = true;
		*out = kp;
		return 0;
	}
	/* one GET when the current version is the one in use */
	rc = strcmp(cur.version, u.version) == 0 ?
		     open_read(&u, &latest, key_id, &kp) :
		     kp_akv_open(key_id, &kp);
	if (rc < 0)
		return rc;
	a = kp->priv;
	a->latest = latest;
	snprintf(a->latest_version, sizeof(a->latest_version), "%s",
		 cur.version);
	a->have_latest = true;
	kp->follow = true;
	*out = kp;
	return 0;
}

static int akv_open_layer(const struct volume *v, int layer,
			  const uint8_t *service_key, struct keyprov **out)
{
	(void)service_key;
	if (layer == 1 && (v->flags & VOLUME_FLAG_FOLLOW))
		return open_following(v->layer[layer].key_id, out);
	return kp_akv_open(v->layer[layer].key_id, out);
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
	.newer = akv_newer,
	.close = akv_close,
	.expiry = akv_expiry,
};

/* A provider for the version at u whose attributes k were read already. */
static int open_read(const struct kv_uri *u, const struct kv_key *k,
			    const char *key_id, struct keyprov **out)
{
	struct keyprov *kp = calloc(1, sizeof(*kp));
	struct kp_akv *a = calloc(1, sizeof(*a));

	if (kp == NULL || a == NULL) {
		free(a);
		free(kp);
		return -ENOMEM;
	}
	a->uri = *u;
	a->key = *k;
	a->alg = alg_of(a, key_id);
	kp->ops = &kp_akv_ops;
	kp->priv = a;
	snprintf(kp->key_id, sizeof(kp->key_id), "%s", key_id);
	*out = kp;
	return 0;
}

int kp_akv_open(const char *key_uri, struct keyprov **out)
{
	char kid[KV_URI_MAX + 1];
	struct kv_uri u, cur;
	struct kv_key k;
	struct kv *kv;
	int rc;

	rc = kv_parse_uri(key_uri, &u);
	if (rc == 0)
		rc = kp_akv_client(&kv);
	if (rc == 0)
		rc = kv_get_key(kv, &u, &k);
	if (rc < 0)
		return rc;
	if (u.version[0] != '\0')
		return open_read(&u, &k, key_uri, out);
	/* versionless: the current version, named by the reply's kid */
	if (same_key(&u, k.kid, &cur) < 0) {
		log_err("%s: Key Vault named another key as its current "
			"version", key_uri);
		return -EPROTO;
	}
	snprintf(kid, sizeof(kid), "%s/keys/%s/%s", cur.vault, cur.name,
		 cur.version);
	rc = open_read(&cur, &k, kid, out);
	if (rc == 0)
		(*out)->follow = true;
	return rc;
}
