/* src/keys/keyring.c — volume KEKs, derived keys and per-file DEKs
 * (doc/KEYS.md, doc/FORMAT.md §1-2). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cmkfs/kdf.h"
#include "cmkfs/keyring.h"
#include "cmkfs/rand.h"
#include "cmkfs/rdwr.h"
#include "cmkfs/secmem.h"

struct keys {			/* lives in one secmem allocation */
	uint8_t kek[2][AEAD_KEY_LEN];	/* KEK_S, KEK_C */
	uint8_t name_key[NAME_KEY_LEN];
	uint8_t mac_key[32];
};

struct keyring {
	pthread_rwlock_t lock;
	struct keys *k;		/* protected by lock; NULL when locked */
	uint64_t generation;	/* protected by lock */
	struct volume vol;
};

#define KEK_AAD_LEN (12 + VOLUME_ID_LEN + 1 + 4)

/* doc/FORMAT.md §1: a KEK wrap is bound to its volume, layer and generation. */
static void kek_aad(const struct volume *v, int layer,
		    uint8_t aad[static KEK_AAD_LEN])
{
	memcpy(aad, "cmkfs kek v1", 12);
	memcpy(aad + 12, v->volume_id, VOLUME_ID_LEN);
	aad[12 + VOLUME_ID_LEN] = (uint8_t)(layer + 1);
	aad[12 + VOLUME_ID_LEN + 1] = (uint8_t)(v->kek_gen >> 24);
	aad[12 + VOLUME_ID_LEN + 2] = (uint8_t)(v->kek_gen >> 16);
	aad[12 + VOLUME_ID_LEN + 3] = (uint8_t)(v->kek_gen >> 8);
	aad[12 + VOLUME_ID_LEN + 4] = (uint8_t)v->kek_gen;
}

/* Name and config-MAC keys need both KEKs: HKDF(KEK_S ‖ KEK_C). */
static int derive(struct keys *k, const struct volume *v)
{
	int rc;

	rc = kdf_hkdf(k->kek[0], 2 * AEAD_KEY_LEN, v->volume_id, VOLUME_ID_LEN,
		      "cmkfs v1 name key", k->name_key, NAME_KEY_LEN);
	if (rc == 0)
		rc = kdf_hkdf(k->kek[0], 2 * AEAD_KEY_LEN, v->volume_id,
			      VOLUME_ID_LEN, "cmkfs v1 config mac", k->mac_key,
			      sizeof(k->mac_key));
	return rc;
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
	kr->vol = *v;
	kr->generation = 1;
	*out = kr;
	return 0;
}

int keyring_create(struct keyprov *prov[2], uint32_t block_size,
		   const uint8_t volume_id[static VOLUME_ID_LEN],
		   struct volume *v, struct keyring **out)
{
	struct keyring *kr = NULL;
	uint8_t aad[KEK_AAD_LEN];
	size_t len;
	int rc;

	memset(v, 0, sizeof(*v));
	v->block_size = block_size;
	v->suite = VOLUME_SUITE_GCM_GCM_SIV;
	v->kek_gen = 1;
	v->created_sec = (uint64_t)time(NULL);
	memcpy(v->volume_id, volume_id, VOLUME_ID_LEN);
	rc = kr_alloc(v, &kr);
	if (rc < 0)
		return rc;
	rc = rand_bytes(kr->k->kek, sizeof(kr->k->kek));
	for (int i = 0; i < 2 && rc == 0; i++) {
		struct vol_layer *l = &v->layer[i];

		kek_aad(v, i, aad);
		l->prov = prov[i]->ops->type;
		memcpy(l->key_id, prov[i]->key_id, sizeof(l->key_id));
		rc = prov[i]->ops->wrap(prov[i], aad, sizeof(aad),
					kr->k->kek[i], l->wrapped,
					sizeof(l->wrapped), &len);
		l->wrapped_len = (uint16_t)len;
	}
	if (rc == 0)
		rc = derive(kr->k, v);
	if (rc == 0)
		rc = volume_seal_mac(v, kr->k->mac_key);
	if (rc < 0) {
		keyring_free(kr);
		return rc;
	}
	kr->vol = *v;
	*out = kr;
	return 0;
}

/* Unwrap both KEKs of v into k, derive, verify the MAC. */
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
	}
	if (rc == 0)
		rc = derive(k, v);
	if (rc == 0 && volume_check_mac(v, k->mac_key) < 0)
		rc = -EBADMSG;
	return rc;
}

int keyring_open(const struct volume *v, struct keyprov *prov[2],
		 struct keyring **out)
{
	struct keyring *kr = NULL;
	int rc;

	rc = kr_alloc(v, &kr);
	if (rc == 0)
		rc = unwrap_all(kr->k, v, prov);
	if (rc < 0) {
		keyring_free(kr);
		return rc;
	}
	*out = kr;
	return 0;
}

void keyring_lock(struct keyring *kr)
{
	pthread_rwlock_wrlock(&kr->lock);
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

int keyring_unlock(struct keyring *kr, struct keyprov *prov[2])
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
	if (kr->k == NULL) {
		kr->k = k;
		k = NULL;
		kr->generation++;
	}
	pthread_rwlock_unlock(&kr->lock);
	secmem_free(k, sizeof(*k));
	return 0;
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
	kek_aad(&v, layer, aad);
	v.layer[layer].prov = p->ops->type;
	snprintf(v.layer[layer].key_id, sizeof(v.layer[layer].key_id), "%s",
		 p->key_id);
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
	    v->kek_gen != kr->vol.kek_gen)
		rc = -EKEYREJECTED;
	else if (kr->k != NULL && volume_check_mac(v, kr->k->mac_key) < 0)
		rc = -EBADMSG;
	else
		kr->vol = *v;
	pthread_rwlock_unlock(&kr->lock);
	return rc;
}

int keyring_derive(struct keyring *kr, const char *label, uint8_t *out,
		   size_t len)
{
	int rc;

	pthread_rwlock_rdlock(&kr->lock);
	rc = kr->k == NULL ? -EKEYREVOKED :
			     kdf_hkdf(kr->k->kek[0], 2 * AEAD_KEY_LEN,
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
	secmem_free(kr->k, sizeof(*kr->k));
	pthread_rwlock_destroy(&kr->lock);
	free(kr);
}

void filekeys_free(struct filekeys *fk)
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
		filekeys_free(fk);
		return rc;
	}
	*out = fk;
	return 0;
}

int keyring_new_file(struct keyring *kr, struct header *h,
		     struct filekeys **fk)
{
	uint8_t *dek = NULL;	/* secmem: [2][AEAD_KEY_LEN] */
	uint8_t aad[HEADER_AAD_LEN];
	int rc;

	rc = secmem_zalloc(2 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	memset(h, 0, sizeof(*h));
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
		header_aad(h, LAYER_INNER, aad);
		rc = aead_wrap_key(kr->k->kek[0], aad, sizeof(aad), dek,
				   h->wrap_inner);
		header_aad(h, LAYER_OUTER, aad);
		if (rc == 0)
			rc = aead_wrap_key(kr->k->kek[1], aad, sizeof(aad),
					   dek + AEAD_KEY_LEN, h->wrap_outer);
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
	uint8_t *dek = NULL;
	uint8_t aad[HEADER_AAD_LEN];
	uint64_t gen;
	int rc;

	rc = secmem_zalloc(2 * AEAD_KEY_LEN, (void **)&dek);
	if (rc < 0)
		return rc;
	pthread_rwlock_rdlock(&kr->lock);
	if (kr->k == NULL) {
		rc = -EKEYREVOKED;
	} else if (h->kek_gen != kr->vol.kek_gen) {
		rc = -EKEYREJECTED;
	} else {
		header_aad(h, LAYER_INNER, aad);
		rc = aead_unwrap_key(kr->k->kek[0], aad, sizeof(aad),
				     h->wrap_inner, dek);
		header_aad(h, LAYER_OUTER, aad);
		if (rc == 0)
			rc = aead_unwrap_key(kr->k->kek[1], aad, sizeof(aad),
					     h->wrap_outer, dek + AEAD_KEY_LEN);
	}
	gen = kr->generation;
	pthread_rwlock_unlock(&kr->lock);
	if (rc == 0)
		rc = make_filekeys((const uint8_t(*)[AEAD_KEY_LEN])dek,
				   h->file_id, gen, fk);
	secmem_free(dek, 2 * AEAD_KEY_LEN);
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
