/* src/crypto/sign.c — PS256 signatures with a client certificate's key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "cmkfs/sign.h"

struct signer {
	EVP_PKEY *key;
	uint8_t cert_sha256[32];
	int64_t not_after;	/* Unix time, 0 if unreadable */
};

/* X509 notAfter (ASN1_TIME, UTC) to a Unix time, 0 if unreadable. */
static int64_t not_after_of(const X509 *cert)
{
	const ASN1_TIME *t = X509_get0_notAfter(cert);
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

int sign_load(const char *path, struct signer **out)
{
	struct signer *s = NULL;
	X509 *cert = NULL;
	struct stat st;
	unsigned int n = 0;
	FILE *f;
	int fd, rc = -EBADMSG;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		return -EPERM;
	}
	f = fdopen(fd, "r");
	if (f == NULL) {
		close(fd);
		return -ENOMEM;
	}
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* Key and certificate may come in either order. */
	s->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	rewind(f);
	cert = PEM_read_X509(f, NULL, NULL, NULL);
	if (s->key == NULL || cert == NULL ||
	    EVP_PKEY_get_base_id(s->key) != EVP_PKEY_RSA)
		goto out;
	if (X509_digest(cert, EVP_sha256(), s->cert_sha256, &n) != 1 ||
	    n != 32)
		goto out;
	s->not_after = not_after_of(cert);
	*out = s;
	s = NULL;			/* transferred */
	rc = 0;
out:
	X509_free(cert);
	sign_free(s);
	fclose(f);
	return rc;
}

void sign_free(struct signer *s)
{
	if (s == NULL)
		return;
	EVP_PKEY_free(s->key);
	free(s);
}

int64_t sign_cert_not_after(const struct signer *s)
{
	return s->not_after;
}

void sign_cert_sha256(const struct signer *s, uint8_t md[static 32])
{
	memcpy(md, s->cert_sha256, 32);
}

int sign_ps256(struct signer *s, const void *msg, size_t len, uint8_t *sig,
	       size_t cap, size_t *sig_len)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	size_t n = cap;
	int rc = -EIO;

	if (md == NULL)
		return -ENOMEM;
	if (EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, s->key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) !=
		    1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()) != 1)
		goto out;
	if (EVP_DigestSign(md, sig, &n, msg, len) != 1)
		goto out;
	*sig_len = n;
	rc = 0;
out:
	EVP_MD_CTX_free(md);
	return rc;
}
