/* src/crypto/kdf.c — HKDF-SHA256 (RFC 5869) and HMAC-SHA256 via EVP. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cmkfs/kdf.h"
#include "cmkfs/secmem.h"

int kdf_hkdf(const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
	     size_t salt_len, const char *label, uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int rc = -EIO;

	kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	if (kdf == NULL)
		return -EIO;
	/* The context keeps a copy of the input key (the volume secret):
	 * locked, undumpable memory. */
	secmem_ossl_enter();
	kctx = EVP_KDF_CTX_new(kdf);
	EVP_KDF_free(kdf);
	if (kctx == NULL)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)ikm, ikm_len);
	if (salt != NULL && salt_len > 0)
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
							 (void *)salt,
							 salt_len);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
						 (void *)label, strlen(label));
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) == 1)
		rc = 0;
	EVP_KDF_CTX_free(kctx);
out:
	secmem_ossl_leave();
	return rc;
}

int kdf_hmac(const uint8_t *key, size_t key_len, const uint8_t *msg,
	     size_t msg_len, uint8_t mac[static HMAC_LEN])
{
	size_t out_len = 0;

	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key, key_len, msg,
		      msg_len, mac, HMAC_LEN, &out_len) == NULL ||
	    out_len != HMAC_LEN)
		return -EIO;
	return 0;
}

/* SHA-256 fetched once: EVP_sha256() makes EVP_Digest fetch the
 * provider's method on every call (about half the cost of a short hash;
 * a location token is one per file open). */
static EVP_MD *sha256;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
	sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
}

int kdf_sha256(const void *msg, size_t len, uint8_t md[static 32])
{
	unsigned int n = 0;

	(void)pthread_once(&sha256_once, sha256_fetch);
	if (sha256 == NULL)
		return -EIO;
	if (EVP_Digest(msg, len, md, &n, sha256, NULL) != 1 || n != 32)
		return -EIO;
	return 0;
}
