/* src/keys/keyring.c — volume KEKs, derived keys and per-file DEKs
 * (doc/KEYS.md, doc/FORMAT.md §1-2). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cmkfs/kdf.h"
#include "cmkfs/keyring.h"
#include "cmkfs/rand.h"
#include "cmkfs/rdwr.h"
#include "cmkfs/secmem.h"
#include "cmkfs/tclock.h"

struct keys {			/* lives in one secmem allocation */
	uint8_t kek[2][AEAD_KEY_LEN];	/* KEK_S, KEK_C (contiguous) */
	uint8_t prev_kek[2][AEAD_KEY_LEN];	/* while VOLUME_FLAG_REKEY */
	uint8_t secret[VOLUME_SECRET_LEN];	/* M: v2 stored, v1 KEK_S‖KEK_C */
	uint8_t name_key[NAME_KEY_LEN];
	uint8_t mac_key[32];
	/* while VOLUME_FLAG_FULL: the previous generation's M, name key */
	uint8_t prev_secret[VOLUME_SECRET_LEN];
	uint8_t prev_name_key[NAME_KEY_LEN];
	/* format 3: the AES-SIV keys that wrap DEKs, derived from each KEK
	 * once (doc/FORMAT.md §2, W_l) */
	uint8_t wrap3[2][SIV_KEY_LEN];
	uint8_t prev_wrap3[2][SIV_KEY_LEN];	/* while VOLUME_FLAG_REKEY */
};

static int derive_wrap3(const uint8_t (*kek)[AEAD_KEY_LEN],
			uint8_t (*out)[SIV_KEY_LEN])
{
	int rc = 0;

	for (int i = 0; i < 2 && rc == 0; i++)
		rc = kdf_hkdf(kek[i], AEAD_KEY_LEN, NULL, 0,
			      "cmkfs v3 dek wrap", out[i], SIV_KEY_LEN);
	return rc;
}

struct keyring {
	pthread_rwlock_t lock;
	struct keys *k;		/* protected by lock; NULL when locked */
	uint64_t generation;	/* protected by lock */
	struct volume vol;	/* written under lock (adopt); see keyring_volume */
	/* Read without the lock by every I/O path, so kept apart from vol
	 * (whose whole-struct writes at rekey would race with them). */
	atomic_uint format;	/* vol.version */
	uint32_t block_size;	/* fixed for the volume's life */
};

/* Make v the keyring's config (caller holds lock for writing, or kr is
 * not shared yet). */
static void adopt(struct keyring *kr, const struct volume *v)
{
	kr->vol = *v;
	atomic_store_explicit(&kr->format, v->version, memory_order_release);
}

#define KEK_AAD_LEN (12 + VOLUME_ID_LEN + 1 + 4)
#define SECRET_AAD_LEN (15 + VOLUME_ID_LEN + 4 + 1)
#define SECRET_INNER_LEN (AEAD_NONCE_LEN + VOLUME_SECRET_LEN + AEAD_TAG_LEN)

static void put_be32(uint8_t *p, uint32_t x)
{
	p[0] = (uint8_t)(x >> 24);
	p[1] = (uint8_t)(x >> 16);
	p[2] = (uint8_t)(x >> 8);
	p[3] = (uint8_t)x;
}

/* doc/FORMAT.md §1: a KEK wrap is bound to its volume, layer and generation. */
static void kek_aad_gen(const struct volume *v, int layer, uint32_t gen,
			uint8_t aad[static KEK_AAD_LEN])
{
	memcpy(aad, "cmkfs kek v1", 12);
	memcpy(aad + 12, v->volume_id, VOLUME_ID_LEN);
	aad[12 + VOLUME_ID_LEN] = (uint8_t)(layer + 1);
	put_be32(aad + 12 + VOLUME_ID_LEN + 1, gen);
}

static void kek_aad(const struct volume *v, int layer,
		    uint8_t aad[static KEK_AAD_LEN])
{
	kek_aad_gen(v, layer, v->kek_gen, aad);
}

static void secret_aad(const struct volume *v, uint32_t gen, int layer,
		       uint8_t aad[static SECRET_AAD_LEN])
{
	memcpy(aad, "cmkfs secret v2", 15);
	memcpy(aad + 15, v->volume_id, VOLUME_ID_LEN);
	put_be32(aad + 15 + VOLUME_ID_LEN, gen);
	aad[15 + VOLUME_ID_LEN + 4] = (uint8_t)(layer + 1);
}

/* One GCM seal/open under `key`, nonce fresh from rand_bytes() or stored:
 * out = nonce ‖ ct ‖ tag. */
static int gcm_seal(const uint8_t key[static AEAD_KEY_LEN], const uint8_t *aad,
		    size_t aad_len, const uint8_t *pt, size_t len, uint8_t *out)
{
	struct aead *a = NULL;
	int rc;

	rc = rand_bytes(out, AEAD_NONCE_LEN);
	if (rc == 0)
		rc = aead_new(key, &a);
	if (rc == 0)
		rc = aead_seal(a, out, aad, aad_len, pt, len,
			       out + AEAD_NONCE_LEN,
			       out + AEAD_NONCE_LEN + len);
	aead_free(a);
	return rc;
}

static int gcm_open(const uint8_t key[static AEAD_KEY_LEN], const uint8_t *aad,
		    size_t aad_len, const uint8_t *in, size_t len, uint8_t *pt)
{
	struct aead *a = NULL;
	int rc;

	rc = aead_new(key, &a);
	if (rc == 0)
		rc = aead_open(a, in, aad, aad_len, in + AEAD_NONCE_LEN, len, pt,
			       in + AEAD_NONCE_LEN + len);
	aead_free(a);
	return rc == -EBADMSG ? -EKEYREJECTED : rc;
}

/* v2: M sealed by KEK_S, the result sealed by KEK_C, both naming the
 * generation of the KEKs (doc/FORMAT.md §1). */
static int seal_secret_gen(uint8_t (*kek)[AEAD_KEY_LEN], uint32_t gen,
			   const uint8_t *secret, const struct volume *v,
			   uint8_t out[static VOLUME_SECRET_WRAPPED_LEN])
{
	uint8_t aad[SECRET_AAD_LEN], inner[SECRET_INNER_LEN];
	int rc;

	secret_aad(v, gen, 0, aad);
	rc = gcm_seal(kek[0], aad, sizeof(aad), secret, VOLUME_SECRET_LEN,
		      inner);
	secret_aad(v, gen, 1, aad);
	if (rc == 0)
		rc = gcm_seal(kek[1], aad, sizeof(aad), inner, sizeof(inner),
			      out);
	OPENSSL_cleanse(inner, sizeof(inner));
	return rc;
}

static int open_secret_gen(uint8_t (*kek)[AEAD_KEY_LEN], uint32_t gen,
			   const uint8_t *wrapped, const struct volume *v,
			   uint8_t *secret)
{
	uint8_t aad[SECRET_AAD_LEN], inner[SECRET_INNER_LEN];
	int rc;

	secret_aad(v, gen, 1, aad);
	rc = gcm_open(kek[1], aad, sizeof(aad), wrapped, SECRET_INNER_LEN,
		      inner);
	secret_aad(v, gen, 0, aad);
	if (rc == 0)
		rc = gcm_open(kek[0], aad, sizeof(aad), inner,
			      VOLUME_SECRET_LEN, secret);
	OPENSSL_cleanse(inner, sizeof(inner));
	return rc;
}

static int seal_secret(struct keys *k, struct volume *v)
{
	return seal_secret_gen(k->kek, v->kek_gen, k->secret, v,
			       v->secret_wrapped);
}

static int open_secret(struct keys *k, const struct volume *v)
{
	int rc = open_secret_gen(k->kek, v->kek_gen, v->secret_wrapped, v,
				 k->secret);

	if (rc == 0 && (v->flags & VOLUME_FLAG_FULL))
		rc = open_secret_gen(k->prev_kek, v->prev_gen,
				     v->prev_secret_wrapped, v,
				     k->prev_secret);
	return rc;
}

/* The name key comes from the volume secret M (stable across rekeys); the
 * config MAC key from the current KEKs (v2) or, in v1, from M = KEK_S ‖
 * KEK_C. */
static int derive(struct keys *k, const struct volume *v)
{
	int rc;

	if (v->version == 1)
		memcpy(k->secret, k->kek[0], VOLUME_SECRET_LEN);
	rc = kdf_hkdf(k->secret, VOLUME_SECRET_LEN, v->volume_id,
		      VOLUME_ID_LEN, "cmkfs v1 name key", k->name_key,
		      NAME_KEY_LEN);
	if (rc == 0 && (v->flags & VOLUME_FLAG_FULL))
		rc = kdf_hkdf(k->prev_secret, VOLUME_SECRET_LEN, v->volume_id,
			      VOLUME_ID_LEN, "cmkfs v1 name key",
			      k->prev_name_key, NAME_KEY_LEN);
	if (rc == 0)
		rc = kdf_hkdf(k->kek[0], 2 * AEAD_KEY_LEN, v->volume_id,
			      VOLUME_ID_LEN,
			      v->version == 1 ? "cmkfs v1 config mac" :
						"cmkfs v2 config mac",
			      k->mac_key, sizeof(k->mac_key));
	if (rc == 0)
		rc = derive_wrap3((const uint8_t(*)[AEAD_KEY_LEN])k->kek,
				  k->wrap3);
	if (rc == 0 && (v->flags & VOLUME_FLAG_REKEY))
		rc = derive_wrap3((const uint8_t(*)[AEAD_KEY_LEN])k->prev_kek,
				  k->prev_wrap3);
	return rc;
}

/* Pin the SIV keys every file operation uses (aead.h), dropping kr's
 * earlier pins: call whenever kr->k is set, changed or wiped (with the
 * lock held for writing, or kr not shared yet). A failed pin only costs
 * speed. */
static void kr_repin(struct keyring *kr)
{
	const struct keys *k = kr->k;
	uint16_t fl = kr->vol.flags;
	int rc = 0;

	aead_siv_unpin(kr);
	if (k == NULL)
		return;
	if (kr->vol.version >= 3)
		for (int i = 0; i < 2 && rc == 0; i++)
			rc = aead_siv_pin(kr, k->wrap3[i]);
	if (rc == 0)
		rc = aead_siv_pin(kr, k->name_key);
	if (rc == 0 && kr->vol.version >= 3 && (fl & VOLUME_FLAG_REKEY))
		for (int i = 0; i < 2 && rc == 0; i++)
			rc = aead_siv_pin(kr, k->prev_wrap3[i]);
	if (rc == 0 && (fl & VOLUME_FLAG_FULL))
		rc = aead_siv_pin(kr, k->prev_name_key);
	(void)rc;
}

static int kr_alloc(const struct volume *v, struct keyring **out)
{
	struct keyring *kr = calloc(1, sizeof(*kr));
	int rc;

	if (kr == NULL)
		return -ENOMEM;
	rc = secmem_zalloc(sizeof(*kr->k), (void **)&kr->k);
	if (rc < 0) {
		free(kr);
		return rc;
	}
	pthread_rwlock_init(&kr->lock, NULL);
	adopt(kr, v);
	kr->block_size = v->block_size;
	kr->generation = 1;
	*out = kr;
	return 0;
}

/* Wrap k->kek[] for the generation in v by prov[] into v->layer[]. */
/* Layer C follows its key's latest version iff its provider does. */
static void set_follow(struct volume *v, const struct keyprov *p)
{
	if (p->follow)
		v->flags |= VOLUME_FLAG_FOLLOW;
	else
		v->flags &= (uint16_t)~VOLUME_FLAG_FOLLOW;
}

static int wrap_keks(const struct keys *k, struct volume *v,
		     struct keyprov *prov[2])
{
	uint8_t aad[KEK_AAD_LEN];
	size_t len = 0;
	int rc = 0;

	for (int i = 0; i < 2 && rc == 0; i++) {
		struct vol_layer *l = &v->layer[i];

		kek_aad(v, i, aad);
		l->prov = prov[i]->ops->type;
		memcpy(l->key_id, prov[i]->key_id, sizeof(l->key_id));
		if (i == 1)
			set_follow(v, prov[i]);
		rc = prov[i]->ops->wrap(prov[i], aad, sizeof(aad), k->kek[i],
					l->wrapped, sizeof(l->wrapped), &len);
		if (rc == 0 && (len == 0 || len > VOLUME_WRAPPED_MAX))
			rc = -EPROTO;
		l->wrapped_len = (uint16_t)len;
	}
	return rc;
}

int keyring_create(struct keyprov *prov[2], uint32_t block_size,
		   const uint8_t volume_id[static VOLUME_ID_LEN],
		   struct volume *v, struct keyring **out)
{
	struct keyring *kr = NULL;
	int rc;

	memset(v, 0, sizeof(*v));
	v->version = VOLUME_VERSION;
	v->block_size = block_size;
	v->suite = VOLUME_SUITE_GCM_GCM_SIV;
	v->kek_gen = 1;
	v->created_sec = (uint64_t)time(NULL);
	memcpy(v->volume_id, volume_id, VOLUME_ID_LEN);
	rc = kr_alloc(v, &kr);
	if (rc < 0)
		return rc;
	rc = rand_bytes(kr->k->kek, sizeof(kr->k->kek));
	if (rc == 0)
		rc = rand_bytes(kr->k->secret, sizeof(kr->k->secret));
	if (rc == 0)
		rc = wrap_keks(kr->k, v, prov);
	if (rc == 0)
		rc = seal_secret(kr->k, v);
	if (rc == 0)
		rc = derive(kr->k, v);
	if (rc == 0)
		rc = volume_seal_mac(v, kr->k->mac_key);
	if (rc < 0) {
		keyring_free(kr);
		return rc;
	}
	adopt(kr, v);
	*out = kr;
	return 0;
}

/* Unwrap the KEKs of v (both generations while a rekey runs) into k,
 * open the secret, derive, verify the MAC. */
static int unwrap_all(struct keys *k, const struct volume *v,
		      struct keyprov *prov[2])
{
	uint8_t aad[KEK_AAD_LEN];
	int rc = 0;

	for (int i = 0; i < 2 && rc == 0; i++) {
		const struct vol_layer *l = &v->layer[i];

		if (l->prov != prov[i]->ops->type)
			return -EKEYREJECTED;
		kek_aad(v, i, aad);
		rc = prov[i]->ops->unwrap(prov[i], aad, sizeof(aad), l->wrapped,
					  l->wrapped_len, k->kek[i]);
		if (rc == 0 && (v->flags & VOLUME_FLAG_REKEY)) {
			kek_aad_gen(v, i, v->prev_gen, aad);
			rc = prov[i]->ops->unwrap(prov[i], aad, sizeof(aad),
						  v->prev_wrapped[i],
						  v->prev_wrapped_len[i],
						  k->prev_kek[i]);
		}
	}
	if (rc == 0 && v->version >= 2)
		rc = open_secret(k, v);
	if (rc == 0)
		rc = derive(k, v);
	if (rc == 0 && volume_check_mac(v, k->mac_key) < 0)
		rc = -EBADMSG;
	return rc;
}

static int open_as(const struct volume *v, struct keyprov *prov[2],
		   struct keyring **out, bool upgrade)
{
	struct keyring *kr = NULL;
	int rc;

	if (!upgrade && (v->flags & VOLUME_FLAG_UPGRADE))
		return -EUCLEAN;
	rc = kr_alloc(v, &kr);
	if (rc == 0)
		rc = unwrap_all(kr->k, v, prov);
	if (rc < 0) {
		keyring_free(kr);
		return rc;
	}
	kr_repin(kr);
	*out = kr;
	return 0;
}

int keyring_open(const struct volume *v, struct keyprov *prov[2],
		 struct keyring **out)
{
	return open_as(v, prov, out, false);
}

int keyring_open_upgrade(const struct volume *v, struct keyprov *prov[2],
			 struct keyring **out)
{
	return open_as(v, prov, out, true);
}

void keyring_lock(struct keyring *kr)
{
	pthread_rwlock_wrlock(&kr->lock);
	aead_siv_unpin(kr);
	secmem_free(kr->k, sizeof(*kr->k));	/* wipes KEKs and derived keys */
	kr->k = NULL;
	kr->generation++;
	pthread_rwlock_unlock(&kr->lock);
}

bool keyring_is_locked(struct keyring *kr)
{
	bool locked;

	pthread_rwlock_rdlock(&kr->lock);
	locked = kr->k == NULL;
	pthread_rwlock_unlock(&kr->lock);
	return locked;
}

int keyring_unlock(struct keyring *kr, struct keyprov *prov[2],
		   uint64_t since)
{
	struct keys *k = NULL;
	struct volume v;
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	v = kr->vol;
	pthread_rwlock_unlock(&kr->lock);
	rc = secmem_zalloc(sizeof(*k), (void **)&k);
	if (rc == 0)
		rc = unwrap_all(k, &v, prov);
	if (rc < 0) {
		secmem_free(k, sizeof(*k));
		return rc;
	}
	pthread_rwlock_wrlock(&kr->lock);
	if (kr->generation != since) {
		rc = -EAGAIN;
	} else if (kr->k == NULL) {
		kr->k = k;
		k = NULL;
		kr->generation++;
		kr_repin(kr);
	}
	pthread_rwlock_unlock(&kr->lock);
	secmem_free(k, sizeof(*k));
	return rc;
}

int keyring_verify_layer(struct keyring *kr, struct keyprov *p, int layer)
{
	uint8_t aad[KEK_AAD_LEN], *kek = NULL;
	struct volume v;
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	v = kr->vol;
	pthread_rwlock_unlock(&kr->lock);
	if (v.layer[layer].prov != p->ops->type)
		return -EKEYREJECTED;
	rc = secmem_zalloc(AEAD_KEY_LEN, (void **)&kek);
	if (rc < 0)
		return rc;
	kek_aad(&v, layer, aad);
	rc = p->ops->unwrap(p, aad, sizeof(aad), v.layer[layer].wrapped,
			    v.layer[layer].wrapped_len, kek);
	if (rc == 0) {
		pthread_rwlock_rdlock(&kr->lock);
		/* Locked: the unwrap itself proved access. */
		if (kr->k != NULL &&
		    CRYPTO_memcmp(kek, kr->k->kek[layer], AEAD_KEY_LEN) != 0)
			rc = -EKEYREJECTED;
		pthread_rwlock_unlock(&kr->lock);
	}
	secmem_free(kek, AEAD_KEY_LEN);
	return rc;
}

int keyring_rewrap(struct keyring *kr, int layer, struct keyprov *p,
		   struct volume *out)
{
	uint8_t aad[KEK_AAD_LEN];
	struct volume v;
	size_t len = 0;
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	v = kr->vol;
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
		goto out;
	}
	/* The previous generation's wraps would stay under the old key:
	 * finish the rekey first. */
	if (v.flags & VOLUME_FLAG_REKEY) {
		rc = -EBUSY;
		goto out;
	}
	/* a version 1 config has no flags to say "follow" with */
	if (layer == 1 && p->follow && v.version < 2) {
		rc = -EOPNOTSUPP;
		goto out;
	}
	kek_aad(&v, layer, aad);
	v.layer[layer].prov = p->ops->type;
	snprintf(v.layer[layer].key_id, sizeof(v.layer[layer].key_id), "%s",
		 p->key_id);
	if (layer == 1)
		set_follow(&v, p);
	rc = p->ops->wrap(p, aad, sizeof(aad), kr->k->kek[layer],
			  v.layer[layer].wrapped, sizeof(v.layer[layer].wrapped),
			  &len);
	if (rc == 0 && (len == 0 || len > VOLUME_WRAPPED_MAX))
		rc = -EPROTO;
	if (rc == 0) {
		v.layer[layer].wrapped_len = (uint16_t)len;
		rc = volume_seal_mac(&v, kr->k->mac_key);
	}
out:
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		*out = v;
	return rc;
}

int keyring_set_volume(struct keyring *kr, const struct volume *v)
{
	int rc = 0;

	pthread_rwlock_wrlock(&kr->lock);
	if (memcmp(v->volume_id, kr->vol.volume_id, VOLUME_ID_LEN) != 0 ||
	    v->kek_gen != kr->vol.kek_gen || v->version != kr->vol.version ||
	    ((v->flags ^ kr->vol.flags) & VOLUME_FLAG_UPGRADE))
		rc = -EKEYREJECTED;
	else if (kr->k != NULL && volume_check_mac(v, kr->k->mac_key) < 0)
		rc = -EBADMSG;
	else
		adopt(kr, v);
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

int keyring_commit_zones(struct keyring *kr, uint64_t zv, struct volume *out)
{
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
	} else if (kr->vol.version < 3) {
		rc = -EINVAL;
	} else {
		*out = kr->vol;
		out->zones_version = zv;
		rc = volume_seal_mac(out, kr->k->mac_key);
	}
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

int keyring_derive(struct keyring *kr, const char *label, uint8_t *out,
		   size_t len)
{
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	rc = kr->k == NULL ? -EKEYREVOKED :
			     kdf_hkdf(kr->k->secret, VOLUME_SECRET_LEN,
				      kr->vol.volume_id, VOLUME_ID_LEN, label,
				      out, len);
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

struct volume *keyring_volume_copy(struct keyring *kr, struct volume *out)
{
	pthread_rwlock_rdlock(&kr->lock);
	*out = kr->vol;
	pthread_rwlock_unlock(&kr->lock);
	return out;
}

void keyring_free(struct keyring *kr)
{
	if (kr == NULL)
		return;
	aead_siv_unpin(kr);
	secmem_free(kr->k, sizeof(*kr->k));
	pthread_rwlock_destroy(&kr->lock);
	free(kr);
}

void keyring_filekeys_free(struct filekeys *fk)
{
	if (fk == NULL)
		return;
	aead_free(fk->bc.inner);
	aead_free(fk->bc.outer);
	free(fk);
}

/* Keyed contexts from the two DEKs; the DEK bytes stay in the caller. */
static int make_filekeys(const uint8_t dek[2][AEAD_KEY_LEN],
			 const uint8_t file_id[static FILE_ID_LEN],
			 uint64_t gen, struct filekeys **out)
{
	struct filekeys *fk = calloc(1, sizeof(*fk));
	int rc;

	if (fk == NULL)
		return -ENOMEM;
	memcpy(fk->file_id, file_id, FILE_ID_LEN);
	fk->bc.file_id = fk->file_id;
	fk->generation = gen;
	rc = aead_new(dek[0], &fk->bc.inner);
	if (rc == 0)
		rc = aead_new(dek[1], &fk->bc.outer);
	if (rc < 0) {
		keyring_filekeys_free(fk);
		return rc;
	}
	*out = fk;
	return 0;
}

/* The KEK pair that wrapped a header of generation `gen`, or NULL. Under
 * kr->lock, unlocked. */
static uint8_t (*keks_for(struct keyring *kr, uint32_t gen))[AEAD_KEY_LEN]
{
	if (gen == kr->vol.kek_gen)
		return kr->k->kek;
	if ((kr->vol.flags & VOLUME_FLAG_REKEY) && gen == kr->vol.prev_gen)
		return kr->k->prev_kek;
	return NULL;
}

/* Format 3 wraps a DEK with AES-SIV under a key derived from the KEK:
 * deterministic, so the wrap needs no nonce and the header keeps its 148
 * bytes (doc/FORMAT.md §2). */
static int siv_wrap_key(const uint8_t wk[static SIV_KEY_LEN], bool seal,
			const uint8_t *aad, size_t aad_len, uint8_t *key,
			uint8_t wrap[static HEADER_WRAP3_LEN])
{
	if (seal)
		return aead_siv_seal(wk, aad, aad_len, key, AEAD_KEY_LEN,
				     wrap + SIV_TAG_LEN, wrap);
	return aead_siv_open(wk, aad, aad_len, wrap + SIV_TAG_LEN,
			     AEAD_KEY_LEN, key, wrap) < 0 ? -EKEYREJECTED : 0;
}

/* The format-3 wrap keys that go with KEK pair kek of k. */
static uint8_t (*wrap3_of(struct keys *k, uint8_t (*kek)[AEAD_KEY_LEN]))[SIV_KEY_LEN]
{
	return kek == k->prev_kek ? k->prev_wrap3 : k->wrap3;
}

/* vver: the volume's format. A version-3 header in a volume of format
 * 1/2 is refused: none is ever written there, and one would mean the
 * format-2 config of an upgraded volume put back (its keys are the
 * same) to open its files without the format-3 bindings. */
static int unwrap_deks(unsigned vver, const struct header *h,
		       uint8_t (*kek)[AEAD_KEY_LEN],
		       uint8_t (*w3)[SIV_KEY_LEN], uint8_t *dek)
{
	uint8_t aad[HEADER_AAD_LEN], wrap[HEADER_WRAP3_LEN];
	size_t n;
	int rc;

	if (h->version == HEADER_VERSION_3 && vver < 3)
		return -EKEYREJECTED;
	if (h->version == HEADER_VERSION_3) {
		n = header_aad(h, LAYER_INNER, aad);
		memcpy(wrap, h->wrap_inner, sizeof(wrap));
		rc = siv_wrap_key(w3[0], false, aad, n, dek, wrap);
		n = header_aad(h, LAYER_OUTER, aad);
		memcpy(wrap, h->wrap_outer, sizeof(wrap));
		if (rc == 0)
			rc = siv_wrap_key(w3[1], false, aad, n,
					  dek + AEAD_KEY_LEN, wrap);
		return rc;
	}
	n = header_aad(h, LAYER_INNER, aad);
	rc = aead_unwrap_key(kek[0], aad, n, h->wrap_inner, dek);
	n = header_aad(h, LAYER_OUTER, aad);
	if (rc == 0)
		rc = aead_unwrap_key(kek[1], aad, n, h->wrap_outer,
				     dek + AEAD_KEY_LEN);
	return rc;
}

static int wrap_deks(struct header *h, uint8_t (*kek)[AEAD_KEY_LEN],
		     uint8_t (*w3)[SIV_KEY_LEN], const uint8_t *dek)
{
	uint8_t aad[HEADER_AAD_LEN];
	size_t n;
	int rc;

	if (h->version == HEADER_VERSION_3) {
		memset(h->wrap_inner, 0, sizeof(h->wrap_inner));
		memset(h->wrap_outer, 0, sizeof(h->wrap_outer));
		n = header_aad(h, LAYER_INNER, aad);
		rc = siv_wrap_key(w3[0], true, aad, n, (uint8_t *)dek,
				  h->wrap_inner);
		n = header_aad(h, LAYER_OUTER, aad);
		if (rc == 0)
			rc = siv_wrap_key(w3[1], true, aad, n,
					  (uint8_t *)dek + AEAD_KEY_LEN,
					  h->wrap_outer);
		return rc;
	}
	n = header_aad(h, LAYER_INNER, aad);
	rc = aead_wrap_key(kek[0], aad, n, dek, h->wrap_inner);
	n = header_aad(h, LAYER_OUTER, aad);
	if (rc == 0)
		rc = aead_wrap_key(kek[1], aad, n, dek + AEAD_KEY_LEN,
				   h->wrap_outer);
	return rc;
}

int keyring_new_file(struct keyring *kr, struct header *h,
		     struct filekeys **fk)
{
	uint8_t *dek = NULL;	/* secmem: [2][AEAD_KEY_LEN] */
	int rc;

	rc = secmem_zalloc(2 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	{
		uint8_t slot[2][HEADER_SLOT_LEN];

		memcpy(slot, h->slot, sizeof(slot));
		memset(h, 0, sizeof(*h));
		h->version = HEADER_VERSION;
		if (keyring_version(kr) >= 3) {
			h->version = HEADER_VERSION_3;
			memcpy(h->slot, slot, sizeof(slot));
			h->birth_ns = tclock_now_ns();
		}
	}
	rc = rand_bytes(h->file_id, FILE_ID_LEN);
	if (rc == 0)
		rc = rand_bytes(dek, 2 * AEAD_KEY_LEN);
	if (rc < 0)
		goto out;
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
	} else {
		h->kek_gen = kr->vol.kek_gen;
		rc = wrap_deks(h, kr->k->kek, kr->k->wrap3, dek);
	}
	uint64_t gen = kr->generation;
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		rc = make_filekeys((const uint8_t(*)[AEAD_KEY_LEN])dek,
				   h->file_id, gen, fk);
out:
	secmem_free(dek, 2 * AEAD_KEY_LEN);
	return rc;
}

int keyring_open_file(struct keyring *kr, const struct header *h,
		      struct filekeys **fk)
{
	uint8_t *dek = NULL, (*kek)[AEAD_KEY_LEN];
	uint64_t gen;
	int rc;

	rc = secmem_zalloc(2 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if ((kek = keks_for(kr, h->kek_gen)) == NULL)
		rc = -EKEYREJECTED;
	else
		rc = unwrap_deks(kr->vol.version, h, kek,
				 wrap3_of(kr->k, kek), dek);
	gen = kr->generation;
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		rc = make_filekeys((const uint8_t(*)[AEAD_KEY_LEN])dek,
				   h->file_id, gen, fk);
	secmem_free(dek, 2 * AEAD_KEY_LEN);
	return rc;
}

int keyring_rewrap_header(struct keyring *kr, const struct header *in,
			  struct header *out)
{
	uint8_t *dek = NULL, (*kek)[AEAD_KEY_LEN];
	bool current;
	int rc;

	/* The common case (every file create asks): nothing to do, no
	 * allocation. */
	pthread_rwlock_rdlock(&kr->lock);
	current = kr->k != NULL && in->kek_gen == kr->vol.kek_gen;
	pthread_rwlock_unlock(&kr->lock);
	if (current)
		return 0;
	rc = secmem_zalloc(2 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
	} else if (in->kek_gen == kr->vol.kek_gen ||
		   (kr->vol.flags & VOLUME_FLAG_FULL)) {
		/* Current meanwhile; or a full rekey, where an old header
		 * needs fresh DEKs, not a new wrap (keyring_refresh_file). */
		rc = 0;
	} else if ((kek = keks_for(kr, in->kek_gen)) == NULL) {
		rc = -EKEYREJECTED;
	} else {
		rc = unwrap_deks(kr->vol.version, in, kek,
				 wrap3_of(kr->k, kek), dek);
		if (rc == 0) {
			*out = *in;
			out->kek_gen = kr->vol.kek_gen;
			rc = wrap_deks(out, kr->k->kek, kr->k->wrap3, dek);
		}
		if (rc == 0)
			rc = 1;
	}
	pthread_rwlock_unlock(&kr->lock);
	secmem_free(dek, 2 * AEAD_KEY_LEN);
	return rc;
}

/* *out = `edit` (in's file id and DEKs, with other counts or slots) with
 * in's DEKs wrapped again: under the current KEKs, or, while a full rekey
 * runs, under those of in's own generation. */
static int rewrap_as(struct keyring *kr, const struct header *in,
		     const struct header *edit, struct header *out)
{
	uint8_t *dek = NULL, (*kek)[AEAD_KEY_LEN];
	struct header h;
	int rc;

	rc = secmem_zalloc(2 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
	} else if ((kek = keks_for(kr, in->kek_gen)) == NULL) {
		rc = -EKEYREJECTED;
	} else {
		rc = unwrap_deks(kr->vol.version, in, kek,
				 wrap3_of(kr->k, kek), dek);
		h = *edit;
		h.kek_gen = in->kek_gen;
		if (!(kr->vol.flags & VOLUME_FLAG_FULL)) {
			h.kek_gen = kr->vol.kek_gen;
			kek = kr->k->kek;
		}
		if (rc == 0)
			rc = wrap_deks(&h, kek, wrap3_of(kr->k, kek), dek);
	}
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		*out = h;
	secmem_free(dek, 2 * AEAD_KEY_LEN);
	return rc;
}

int keyring_header_units(struct keyring *kr, const struct header *in,
			 uint16_t units, struct header *out)
{
	struct header h = *in;

	h.seal_units = units;
	return rewrap_as(kr, in, &h, out);
}

int keyring_header_slots(struct keyring *kr, const struct header *in,
			 const uint8_t slot[2][HEADER_SLOT_LEN],
			 struct header *out)
{
	struct header h = *in;

	if (in->version != HEADER_VERSION_3)
		return -EINVAL;
	memcpy(h.slot, slot, sizeof(h.slot));
	return rewrap_as(kr, in, &h, out);
}

/* A full rekey's part of the new config nv (generation prev_gen + 1):
 * a fresh M for nk; the current M kept, sealed by the current KEKs under
 * the previous generation's name; and the current KEKs re-wrapped as the
 * previous generation's by the new providers — for `cmk enable` that puts
 * the old KEK_C under the customer's key from the first instant. */
static int full_begin(struct keyring *kr, struct keys *nk, struct volume *nv,
		      struct keyprov *prov[2])
{
	uint8_t (*cur)[AEAD_KEY_LEN] = NULL;
	uint8_t aad[KEK_AAD_LEN];
	size_t len = 0;
	int rc;

	nv->flags |= VOLUME_FLAG_FULL;
	rc = rand_bytes(nk->secret, sizeof(nk->secret));
	if (rc < 0)
		return rc;
	rc = secmem_zalloc(sizeof(nk->kek) + VOLUME_SECRET_LEN,
			   (void **)&cur);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
	} else {
		memcpy(cur, kr->k->kek, sizeof(nk->kek));
		memcpy(cur[2], kr->k->secret, VOLUME_SECRET_LEN);
	}
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		rc = seal_secret_gen(cur, nv->prev_gen, cur[2], nv,
				     nv->prev_secret_wrapped);
	for (int i = 0; i < 2 && rc == 0; i++) {
		kek_aad_gen(nv, i, nv->prev_gen, aad);
		rc = prov[i]->ops->wrap(prov[i], aad, sizeof(aad), cur[i],
					nv->prev_wrapped[i],
					sizeof(nv->prev_wrapped[i]), &len);
		if (rc == 0 && (len == 0 || len > VOLUME_WRAPPED_MAX))
			rc = -EPROTO;
		nv->prev_wrapped_len[i] = (uint16_t)len;
	}
	secmem_free(cur, sizeof(nk->kek) + VOLUME_SECRET_LEN);
	return rc;
}

int keyring_rekey_begin(struct keyring *kr, struct keyprov *prov[2],
			bool full, keyring_persist_fn persist, void *arg)
{
	struct keys *nk = NULL;
	struct volume v, nv;
	int rc;

	rc = secmem_zalloc(sizeof(*nk), (void **)&nk);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&kr->lock);
	v = kr->vol;
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if (v.flags & VOLUME_FLAG_REKEY)
		rc = -EALREADY;
	else if (v.kek_gen == UINT32_MAX)
		rc = -EOVERFLOW;
	else
		memcpy(nk->secret, kr->k->secret, VOLUME_SECRET_LEN);
	pthread_rwlock_unlock(&kr->lock);
	if (rc < 0)
		goto out;
	for (int i = 0; i < 2 && !full; i++) {
		if (v.layer[i].prov != prov[i]->ops->type ||
		    strcmp(v.layer[i].key_id, prov[i]->key_id) != 0) {
			rc = -EKEYREJECTED;
			goto out;
		}
	}
	/* The new config: version 2 at least (a version 1 config becomes 2,
	 * later ones keep theirs), generation + 1 with fresh KEKs, the
	 * current wraps kept as the previous generation's. */
	nv = v;
	if (nv.version < 2)
		nv.version = 2;
	nv.flags = VOLUME_FLAG_REKEY;
	nv.prev_gen = v.kek_gen;
	nv.kek_gen = v.kek_gen + 1;
	for (int i = 0; i < 2; i++) {
		nv.prev_wrapped_len[i] = v.layer[i].wrapped_len;
		memcpy(nv.prev_wrapped[i], v.layer[i].wrapped,
		       v.layer[i].wrapped_len);
	}
	rc = rand_bytes(nk->kek, sizeof(nk->kek));
	if (rc == 0 && full)
		rc = full_begin(kr, nk, &nv, prov);
	if (rc == 0)	/* may call Key Vault: outside the lock */
		rc = wrap_keks(nk, &nv, prov);
	if (rc == 0)
		rc = seal_secret(nk, &nv);
	if (rc == 0)
		rc = derive(nk, &nv);
	if (rc == 0)
		rc = volume_seal_mac(&nv, nk->mac_key);
	if (rc < 0)
		goto out;
	pthread_rwlock_wrlock(&kr->lock);
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if (memcmp(&kr->vol, &v, sizeof(v)) != 0)
		rc = -EAGAIN;	/* changed under us (cmk, lock) */
	else
		rc = persist(&nv, arg);
	if (rc == 0) {
		memcpy(nk->prev_kek, kr->k->kek, sizeof(nk->prev_kek));
		memcpy(nk->prev_wrap3, kr->k->wrap3, sizeof(nk->prev_wrap3));
		if (full) {
			memcpy(nk->prev_secret, kr->k->secret,
			       sizeof(nk->prev_secret));
			memcpy(nk->prev_name_key, kr->k->name_key,
			       sizeof(nk->prev_name_key));
		}
		aead_siv_unpin(kr);
		secmem_free(kr->k, sizeof(*kr->k));
		kr->k = nk;
		nk = NULL;
		adopt(kr, &nv);
		kr_repin(kr);
	}
	pthread_rwlock_unlock(&kr->lock);
out:
	secmem_free(nk, sizeof(*nk));
	return rc;
}

int keyring_rekey_finish(struct keyring *kr, keyring_persist_fn persist,
			 void *arg)
{
	struct volume nv;
	int rc;

	pthread_rwlock_wrlock(&kr->lock);
	nv = kr->vol;
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
		goto out;
	}
	if (!(nv.flags & VOLUME_FLAG_REKEY)) {
		rc = 0;
		goto out;
	}
	nv.flags &= (uint16_t)~(VOLUME_FLAG_REKEY | VOLUME_FLAG_FULL);
	nv.prev_gen = 0;
	memset(nv.prev_wrapped_len, 0, sizeof(nv.prev_wrapped_len));
	memset(nv.prev_wrapped, 0, sizeof(nv.prev_wrapped));
	memset(nv.prev_secret_wrapped, 0, sizeof(nv.prev_secret_wrapped));
	rc = volume_seal_mac(&nv, kr->k->mac_key);
	if (rc == 0)
		rc = persist(&nv, arg);
	if (rc == 0) {
		OPENSSL_cleanse(kr->k->prev_kek, sizeof(kr->k->prev_kek));
		OPENSSL_cleanse(kr->k->prev_wrap3, sizeof(kr->k->prev_wrap3));
		OPENSSL_cleanse(kr->k->prev_secret, sizeof(kr->k->prev_secret));
		OPENSSL_cleanse(kr->k->prev_name_key,
				sizeof(kr->k->prev_name_key));
		adopt(kr, &nv);
		kr_repin(kr);
	}
out:
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

int keyring_dup_file(struct keyring *kr, const struct header *h,
		     struct filekeys **fk)
{
	return keyring_open_file(kr, h, fk);
}

int keyring_name_key(struct keyring *kr, uint8_t key[static NAME_KEY_LEN])
{
	int rc = 0;

	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else
		memcpy(key, kr->k->name_key, NAME_KEY_LEN);
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

uint64_t keyring_generation(struct keyring *kr)
{
	uint64_t g;

	pthread_rwlock_rdlock(&kr->lock);
	g = kr->generation;
	pthread_rwlock_unlock(&kr->lock);
	return g;
}

const struct volume *keyring_volume(struct keyring *kr)
{
	return &kr->vol;
}

void keyring_test_set_version(struct keyring *kr, unsigned version)
{
	pthread_rwlock_wrlock(&kr->lock);
	kr->vol.version = (uint16_t)version;
	atomic_store_explicit(&kr->format, version, memory_order_release);
	pthread_rwlock_unlock(&kr->lock);
}

unsigned keyring_version(struct keyring *kr)
{
	return atomic_load_explicit(&kr->format, memory_order_acquire);
}

uint32_t keyring_block_size(struct keyring *kr)
{
	return kr->block_size;
}

uint64_t keyring_zones_version(struct keyring *kr)
{
	uint64_t zv;

	pthread_rwlock_rdlock(&kr->lock);
	zv = kr->vol.zones_version;
	pthread_rwlock_unlock(&kr->lock);
	return zv;
}

int keyring_prev_name_key(struct keyring *kr, uint8_t key[static NAME_KEY_LEN])
{
	int rc = 0;

	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if (!(kr->vol.flags & VOLUME_FLAG_FULL))
		rc = -ENOENT;
	else
		memcpy(key, kr->k->prev_name_key, NAME_KEY_LEN);
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

int keyring_derive_prev(struct keyring *kr, const char *label, uint8_t *out,
			size_t len)
{
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if (!(kr->vol.flags & VOLUME_FLAG_FULL))
		rc = -ENOENT;
	else
		rc = kdf_hkdf(kr->k->prev_secret, VOLUME_SECRET_LEN,
			      kr->vol.volume_id, VOLUME_ID_LEN, label, out, len);
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

static int set_upgrade(struct keyring *kr, bool on,
		       keyring_persist_fn persist, void *arg)
{
	struct volume nv;
	int rc = 0;

	pthread_rwlock_wrlock(&kr->lock);
	nv = kr->vol;
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if (on && (nv.version < 2 || (nv.flags & VOLUME_FLAG_REKEY)))
		rc = nv.version < 2 ? -EINVAL : -EALREADY;
	else if (on && nv.version >= 3 && !(nv.flags & VOLUME_FLAG_UPGRADE))
		rc = -EEXIST;
	else if (!on && !(nv.flags & VOLUME_FLAG_UPGRADE))
		goto out;
	if (rc < 0 || (on && (nv.flags & VOLUME_FLAG_UPGRADE)))
		goto out;
	if (on) {
		nv.version = 3;
		nv.zones_version = 0;
		nv.flags |= VOLUME_FLAG_UPGRADE;
	} else {
		nv.flags &= (uint16_t)~VOLUME_FLAG_UPGRADE;
	}
	rc = volume_seal_mac(&nv, kr->k->mac_key);
	if (rc == 0)
		rc = persist(&nv, arg);
	if (rc == 0) {
		adopt(kr, &nv);
		kr_repin(kr);	/* version 3: the DEK-wrap keys */
	}
out:
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

int keyring_upgrade_begin(struct keyring *kr, keyring_persist_fn persist,
			  void *arg)
{
	return set_upgrade(kr, true, persist, arg);
}

int keyring_upgrade_finish(struct keyring *kr, keyring_persist_fn persist,
			   void *arg)
{
	return set_upgrade(kr, false, persist, arg);
}

bool keyring_upgrading(struct keyring *kr)
{
	bool up;

	pthread_rwlock_rdlock(&kr->lock);
	up = (kr->vol.flags & VOLUME_FLAG_UPGRADE) != 0;
	pthread_rwlock_unlock(&kr->lock);
	return up;
}

int keyring_header_upgrade(struct keyring *kr, const struct header *in,
			   const uint8_t slot[2][HEADER_SLOT_LEN],
			   uint64_t birth_ns, struct header *out)
{
	struct header h = *in;

	if (in->version == HEADER_VERSION_3 || !keyring_upgrading(kr))
		return -EINVAL;
	h.version = HEADER_VERSION_3;
	memcpy(h.slot, slot, sizeof(h.slot));
	h.birth_ns = birth_ns;
	return rewrap_as(kr, in, &h, out);
}

bool keyring_full_rekey(struct keyring *kr)
{
	bool full;

	pthread_rwlock_rdlock(&kr->lock);
	full = (kr->vol.flags & VOLUME_FLAG_FULL) != 0;
	pthread_rwlock_unlock(&kr->lock);
	return full;
}

bool keyring_header_current(struct keyring *kr, const struct header *h)
{
	bool cur;

	pthread_rwlock_rdlock(&kr->lock);
	cur = h->kek_gen == kr->vol.kek_gen;
	pthread_rwlock_unlock(&kr->lock);
	return cur;
}

int keyring_refresh_file(struct keyring *kr, const struct header *in,
			 struct header *out, struct filekeys **old_fk,
			 struct filekeys **new_fk)
{
	uint8_t *dek = NULL, (*kek)[AEAD_KEY_LEN];	/* [old 2][new 2] */
	uint64_t gen = 0;
	int rc;

	*old_fk = *new_fk = NULL;
	rc = secmem_zalloc(4 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	rc = rand_bytes(dek + 2 * AEAD_KEY_LEN, 2 * AEAD_KEY_LEN);
	if (rc < 0) {
		secmem_free(dek, 4 * AEAD_KEY_LEN);
		return rc;
	}
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL)
		rc = -EKEYREVOKED;
	else if ((kek = keks_for(kr, in->kek_gen)) == NULL)
		rc = -EKEYREJECTED;
	else
		rc = unwrap_deks(kr->vol.version, in, kek,
				 wrap3_of(kr->k, kek), dek);
	if (rc == 0) {
		*out = *in;
		out->kek_gen = kr->vol.kek_gen;
		rc = wrap_deks(out, kr->k->kek, kr->k->wrap3, dek + 2 * AEAD_KEY_LEN);
	}
	gen = kr->generation;
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		rc = make_filekeys((const uint8_t(*)[AEAD_KEY_LEN])dek,
				   in->file_id, gen, old_fk);
	if (rc == 0)
		rc = make_filekeys((const uint8_t(*)[AEAD_KEY_LEN])(dek +
				   2 * AEAD_KEY_LEN), in->file_id, gen, new_fk);
	if (rc < 0) {
		keyring_filekeys_free(*old_fk);
		*old_fk = NULL;
	}
	secmem_free(dek, 4 * AEAD_KEY_LEN);
	return rc;
}
