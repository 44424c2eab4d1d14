/* src/crypto/aead.c — AES-256-GCM / AES-256-SIV via OpenSSL EVP.
 * OpenSSL's "1 == ok" convention ends here: everything above sees 0/-errno. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cmkfs/aead.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"

static EVP_CIPHER *gcm;
static EVP_CIPHER *siv;
/* What the SIV provider fetches on its own when keyed, fetched here first:
 * the method entries a first fetch makes live as long as the process, and
 * would otherwise be made inside the secure heap. */
static EVP_MAC *siv_cmac;
static EVP_CIPHER *siv_cbc, *siv_ctr;

struct aead {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

int aead_global_init(void)
{
	if (gcm == NULL)
		gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	if (siv == NULL)
		siv = EVP_CIPHER_fetch(NULL, "AES-256-SIV", NULL);
	if (siv_cmac == NULL)
		siv_cmac = EVP_MAC_fetch(NULL, "CMAC", NULL);
	if (siv_cbc == NULL)
		siv_cbc = EVP_CIPHER_fetch(NULL, "AES-256-CBC", NULL);
	if (siv_ctr == NULL)
		siv_ctr = EVP_CIPHER_fetch(NULL, "AES-256-CTR", NULL);
	return (gcm && siv && siv_cmac && siv_cbc && siv_ctr) ? 0 : -ENOSYS;
}

int aead_new(const uint8_t key[static AEAD_KEY_LEN], struct aead **out)
{
	struct aead *a;
	int rc = -EIO;

	if (aead_global_init() < 0)
		return -ENOSYS;
	a = calloc(1, sizeof(*a));
	if (a == NULL)
		return -ENOMEM;
	/* The provider allocates its GCM context, which embeds the key
	 * schedule, inside EVP_*Init: both in locked, undumpable memory. */
	secmem_ossl_enter();
	a->enc = EVP_CIPHER_CTX_new();
	a->dec = EVP_CIPHER_CTX_new();
	if (a->enc == NULL || a->dec == NULL)
		goto out;
	if (EVP_EncryptInit_ex2(a->enc, gcm, key, NULL, NULL) != 1 ||
	    EVP_DecryptInit_ex2(a->dec, gcm, key, NULL, NULL) != 1)
		goto out;
	*out = a;
	a = NULL;			/* transferred */
	rc = 0;
out:
	secmem_ossl_leave();
	aead_free(a);
	return rc;
}

void aead_free(struct aead *a)
{
	if (a == NULL)
		return;
	EVP_CIPHER_CTX_free(a->enc);	/* cleanses the key schedule */
	EVP_CIPHER_CTX_free(a->dec);
	free(a);
}

static int int_len(size_t n, int *out)
{
	if (n > INT_MAX)
		return -EINVAL;
	*out = (int)n;
	return 0;
}

int aead_seal(struct aead *a, const uint8_t nonce[static AEAD_NONCE_LEN],
	      const uint8_t *aad, size_t aad_len, const uint8_t *pt, size_t len,
	      uint8_t *ct, uint8_t tag[static AEAD_TAG_LEN])
{
	int n, ilen, alen;

	if (int_len(len, &ilen) < 0 || int_len(aad_len, &alen) < 0)
		return -EINVAL;
	if (EVP_EncryptInit_ex2(a->enc, NULL, NULL, nonce, NULL) != 1)
		return -EIO;
	if (alen > 0 && EVP_EncryptUpdate(a->enc, NULL, &n, aad, alen) != 1)
		return -EIO;
	if (ilen > 0 && EVP_EncryptUpdate(a->enc, ct, &n, pt, ilen) != 1)
		return -EIO;
	if (EVP_EncryptFinal_ex(a->enc, ct + ilen, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(a->enc, EVP_CTRL_AEAD_GET_TAG, AEAD_TAG_LEN,
				tag) != 1)
		return -EIO;
	return 0;
}

int aead_open(struct aead *a, const uint8_t nonce[static AEAD_NONCE_LEN],
	      const uint8_t *aad, size_t aad_len, const uint8_t *ct, size_t len,
	      uint8_t *pt, const uint8_t tag[static AEAD_TAG_LEN])
{
	int n, ilen, alen;

	if (int_len(len, &ilen) < 0 || int_len(aad_len, &alen) < 0)
		return -EINVAL;
	if (EVP_DecryptInit_ex2(a->dec, NULL, NULL, nonce, NULL) != 1)
		return -EIO;
	if (alen > 0 && EVP_DecryptUpdate(a->dec, NULL, &n, aad, alen) != 1)
		return -EIO;
	if (ilen > 0 && EVP_DecryptUpdate(a->dec, pt, &n, ct, ilen) != 1)
		goto bad;
	if (EVP_CIPHER_CTX_ctrl(a->dec, EVP_CTRL_AEAD_SET_TAG, AEAD_TAG_LEN,
				(void *)tag) != 1)
		goto bad;
	if (EVP_DecryptFinal_ex(a->dec, pt + ilen, &n) != 1)
		goto bad;
	return 0;
bad:
	/* Never release unverified plaintext. */
	OPENSSL_cleanse(pt, len);
	return -EBADMSG;
}

int aead_wrap_key_nonce(const uint8_t kek[static AEAD_KEY_LEN],
			const uint8_t *aad, size_t aad_len,
			const uint8_t key[static AEAD_KEY_LEN],
			const uint8_t nonce[static AEAD_NONCE_LEN],
			uint8_t out[static AEAD_WRAP_LEN])
{
	struct aead *a = NULL;
	int rc;

	rc = aead_new(kek, &a);
	if (rc < 0)
		return rc;
	memcpy(out, nonce, AEAD_NONCE_LEN);
	rc = aead_seal(a, nonce, aad, aad_len, key, AEAD_KEY_LEN,
		       out + AEAD_NONCE_LEN,
		       out + AEAD_NONCE_LEN + AEAD_KEY_LEN);
	aead_free(a);
	return rc;
}

int aead_wrap_key(const uint8_t kek[static AEAD_KEY_LEN], const uint8_t *aad,
		  size_t aad_len, const uint8_t key[static AEAD_KEY_LEN],
		  uint8_t out[static AEAD_WRAP_LEN])
{
	uint8_t nonce[AEAD_NONCE_LEN];
	int rc;

	rc = rand_bytes(nonce, sizeof(nonce));
	if (rc < 0)
		return rc;
	return aead_wrap_key_nonce(kek, aad, aad_len, key, nonce, out);
}

int aead_unwrap_key(const uint8_t kek[static AEAD_KEY_LEN], const uint8_t *aad,
		    size_t aad_len, const uint8_t in[static AEAD_WRAP_LEN],
		    uint8_t key[static AEAD_KEY_LEN])
{
	struct aead *a = NULL;
	int rc;

	rc = aead_new(kek, &a);
	if (rc < 0)
		return rc;
	rc = aead_open(a, in, aad, aad_len, in + AEAD_NONCE_LEN, AEAD_KEY_LEN,
		       key, in + AEAD_NONCE_LEN + AEAD_KEY_LEN);
	aead_free(a);
	return rc == -EBADMSG ? -EKEYREJECTED : rc;
}

/* aead.h: pinned SIV keys. The table is read under pin_lock by every SIV
 * call (a copy of a template only reads it) and written only by pin and
 * unpin; key copies and templates live in the secure heap. */
struct siv_pin {
	const void *owner;
	uint8_t *key;			/* secmem, SIV_KEY_LEN */
	EVP_CIPHER_CTX *tmpl[2];	/* [0] opens, [1] seals; never used */
};
static struct siv_pin pins[AEAD_SIV_PINS];
static unsigned npins;
static pthread_rwlock_t pin_lock = PTHREAD_RWLOCK_INITIALIZER;

static void pin_clear(struct siv_pin *p)
{
	EVP_CIPHER_CTX_free(p->tmpl[0]);	/* cleanses the schedules */
	EVP_CIPHER_CTX_free(p->tmpl[1]);
	secmem_free(p->key, SIV_KEY_LEN);
	memset(p, 0, sizeof(*p));
}

/* Index of a pin of key (of owner, unless NULL), or -1 (caller holds
 * pin_lock). */
static int pin_find(const void *owner, const uint8_t key[static SIV_KEY_LEN])
{
	for (unsigned i = 0; i < npins; i++)
		if ((owner == NULL || pins[i].owner == owner) &&
		    CRYPTO_memcmp(pins[i].key, key, SIV_KEY_LEN) == 0)
			return (int)i;
	return -1;
}

int aead_siv_pin(const void *owner, const uint8_t key[static SIV_KEY_LEN])
{
	struct siv_pin p = { .owner = owner };
	int rc;

	if (aead_global_init() < 0)
		return -ENOSYS;
	pthread_rwlock_rdlock(&pin_lock);
	rc = pin_find(owner, key) >= 0 || npins == AEAD_SIV_PINS;
	pthread_rwlock_unlock(&pin_lock);
	if (rc)
		return 0;
	rc = secmem_zalloc(SIV_KEY_LEN, (void **)&p.key);
	if (rc < 0)
		return rc;
	memcpy(p.key, key, SIV_KEY_LEN);
	rc = -EIO;
	secmem_ossl_enter();
	for (int enc = 0; enc < 2; enc++) {
		p.tmpl[enc] = EVP_CIPHER_CTX_new();
		if (p.tmpl[enc] == NULL ||
		    EVP_CipherInit_ex2(p.tmpl[enc], siv, key, NULL, enc,
				       NULL) != 1)
			goto out;
	}
	rc = 0;
	pthread_rwlock_wrlock(&pin_lock);
	if (pin_find(owner, key) < 0 && npins < AEAD_SIV_PINS) {
		pins[npins++] = p;
		memset(&p, 0, sizeof(p));	/* transferred */
	}
	pthread_rwlock_unlock(&pin_lock);
out:
	if (p.key != NULL)
		pin_clear(&p);
	secmem_ossl_leave();
	return rc;
}

void aead_siv_unpin(const void *owner)
{
	unsigned i = 0;

	pthread_rwlock_wrlock(&pin_lock);
	while (i < npins) {
		if (pins[i].owner != owner) {
			i++;
			continue;
		}
		pin_clear(&pins[i]);
		pins[i] = pins[--npins];
		memset(&pins[npins], 0, sizeof(pins[npins]));
	}
	pthread_rwlock_unlock(&pin_lock);
}

unsigned aead_siv_pinned(void)
{
	unsigned n;

	pthread_rwlock_rdlock(&pin_lock);
	n = npins;
	pthread_rwlock_unlock(&pin_lock);
	return n;
}

/* A context for one SIV call under key, in c: copied from its pin, or
 * keyed here. Caller is inside secmem_ossl_enter(). */
static int siv_ctx(EVP_CIPHER_CTX *c, int enc,
		   const uint8_t key[static SIV_KEY_LEN])
{
	int i, ok = 0;

	pthread_rwlock_rdlock(&pin_lock);
	i = pin_find(NULL, key);
	if (i >= 0)
		ok = EVP_CIPHER_CTX_copy(c, pins[i].tmpl[enc]) == 1;
	pthread_rwlock_unlock(&pin_lock);
	if (i >= 0)
		return ok ? 0 : -EIO;
	return EVP_CipherInit_ex2(c, siv, key, NULL, enc, NULL) == 1 ? 0 : -EIO;
}

static int siv_run(int enc, const uint8_t key[static SIV_KEY_LEN],
		   const struct aead_part *aad, size_t naad, const uint8_t *in,
		   size_t len, uint8_t *out, uint8_t tag[static SIV_TAG_LEN])
{
	EVP_CIPHER_CTX *c = NULL;
	int n, ilen, alen[AEAD_SIV_PARTS_MAX], rc = -EIO;

	if (aead_global_init() < 0)
		return -ENOSYS;
	if (naad > AEAD_SIV_PARTS_MAX || int_len(len, &ilen) < 0)
		return -EINVAL;
	for (size_t i = 0; i < naad; i++)
		if (int_len(aad[i].len, &alen[i]) < 0)
			return -EINVAL;
	/* The whole call: SIV's update duplicates its keyed CMAC context. */
	secmem_ossl_enter();
	c = EVP_CIPHER_CTX_new();
	if (c == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (siv_ctx(c, enc ? 1 : 0, key) < 0)
		goto out;
	if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_SET_TAG, SIV_TAG_LEN,
					tag) != 1)
		goto out;
	/* SIV takes each update without output as one AAD component (S2V
	 * input), then the data in one call. */
	for (size_t i = 0; i < naad; i++)
		if (EVP_CipherUpdate(c, NULL, &n, aad[i].p, alen[i]) != 1)
			goto out;
	if (EVP_CipherUpdate(c, out, &n, in, ilen) != 1) {
		rc = enc ? -EIO : -EBADMSG;
		goto out;
	}
	if (EVP_CipherFinal_ex(c, out + ilen, &n) != 1) {
		rc = enc ? -EIO : -EBADMSG;
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_AEAD_GET_TAG, SIV_TAG_LEN,
				       tag) != 1)
		goto out;
	rc = 0;
out:
	if (rc < 0 && !enc)
		OPENSSL_cleanse(out, len);
	EVP_CIPHER_CTX_free(c);
	secmem_ossl_leave();
	return rc;
}

int aead_siv_seal(const uint8_t key[static SIV_KEY_LEN], const uint8_t *aad,
		  size_t aad_len, const uint8_t *pt, size_t len, uint8_t *ct,
		  uint8_t tag[static SIV_TAG_LEN])
{
	const struct aead_part a = { aad, aad_len };

	return siv_run(1, key, &a, 1, pt, len, ct, tag);
}

int aead_siv_open(const uint8_t key[static SIV_KEY_LEN], const uint8_t *aad,
		  size_t aad_len, const uint8_t *ct, size_t len, uint8_t *pt,
		  const uint8_t tag[static SIV_TAG_LEN])
{
	const struct aead_part a = { aad, aad_len };

	return siv_run(0, key, &a, 1, ct, len, pt, (uint8_t *)tag);
}

int aead_siv_seal_parts(const uint8_t key[static SIV_KEY_LEN],
			const struct aead_part *aad, size_t naad,
			const uint8_t *pt, size_t len, uint8_t *ct,
			uint8_t tag[static SIV_TAG_LEN])
{
	return siv_run(1, key, aad, naad, pt, len, ct, tag);
}

int aead_siv_open_parts(const uint8_t key[static SIV_KEY_LEN],
			const struct aead_part *aad, size_t naad,
			const uint8_t *ct, size_t len, uint8_t *pt,
			const uint8_t tag[static SIV_TAG_LEN])
{
	return siv_run(0, key, aad, naad, ct, len, pt, (uint8_t *)tag);
}
