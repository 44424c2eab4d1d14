/* src/crypto/sign.c — PS256 signatures with a client certificate's key,
 * loaded from PEM (key possibly encrypted) or PKCS#12/PFX, the forms
 * AZURE_CLIENT_CERTIFICATE_PATH takes in the Azure SDKs, with
 * AZURE_CLIENT_CERTIFICATE_PASSWORD. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/pkcs12.h>
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

#define CERT_FILE_MAX (1024 * 1024)

/* OpenSSL asks for a password through a callback; without one it would
 * prompt on the terminal. No password = none to give (the load fails). */
static int pass_cb(char *buf, int size, int rwflag, void *u)
{
	const char *pass = u;
	size_t n;

	(void)rwflag;
	if (pass == NULL)
		return -1;
	n = strlen(pass);
	if (n > (size_t)size)
		return -1;
	memcpy(buf, pass, n);
	return (int)n;
}

/* PEM: the key (PKCS#8, encrypted or not, or traditional) and the
 * certificate, in either order. */
static int load_pem(BIO *b, const char *pass, EVP_PKEY **key, X509 **cert)
{
	*key = PEM_read_bio_PrivateKey(b, NULL, pass_cb, (void *)pass);
	if (*key == NULL) {
		unsigned long e = ERR_peek_last_error();
		int r = ERR_GET_REASON(e);

		/* A key that did not decrypt, as opposed to none at all. */
		if (r == PEM_R_BAD_DECRYPT || r == PEM_R_BAD_PASSWORD_READ ||
		    r == PEM_R_PROBLEMS_GETTING_PASSWORD ||
		    r == EVP_R_BAD_DECRYPT ||
		    ERR_GET_LIB(e) == ERR_LIB_PKCS12)
			return -EKEYREJECTED;
		return -EBADMSG;
	}
	if (BIO_reset(b) != 0 && BIO_seek(b, 0) != 0)
		return -EIO;
	*cert = PEM_read_bio_X509(b, NULL, pass_cb, (void *)pass);
	return *cert != NULL ? 0 : -EBADMSG;
}

/* PKCS#12 (.pfx, as the portal and `az` export certificates): the MAC
 * proves the password before anything is decrypted. No password means the
 * empty one, which OpenSSL's own tools try as NULL and "". */
static int load_p12(BIO *b, const char *pass, EVP_PKEY **key, X509 **cert)
{
	PKCS12 *p12 = d2i_PKCS12_bio(b, NULL);
	int rc = -EBADMSG;

	if (p12 == NULL)
		return -EBADMSG;
	if (PKCS12_mac_present(p12)) {
		if (pass == NULL || *pass == '\0')
			pass = PKCS12_verify_mac(p12, NULL, 0) == 1 ? NULL : "";
		if (PKCS12_verify_mac(p12, pass, pass ? -1 : 0) != 1) {
			rc = -EKEYREJECTED;
			goto out;
		}
	}
	if (PKCS12_parse(p12, pass, key, cert, NULL) != 1)
		rc = -EKEYREJECTED;
	else
		rc = (*key != NULL && *cert != NULL) ? 0 : -EBADMSG;
out:
	PKCS12_free(p12);
	return rc;
}

int sign_load(const char *path, const char *pass, struct signer **out)
{
	struct signer *s = NULL;
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	BIO *b = NULL;
	uint8_t *buf = NULL;
	struct stat st;
	unsigned int n = 0;
	ssize_t got;
	size_t len = 0;
	int fd, rc = -EBADMSG;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (st.st_mode & 077) != 0) {
		close(fd);
		return -EPERM;
	}
	if (st.st_size > CERT_FILE_MAX) {
		close(fd);
		return -EFBIG;
	}
	buf = malloc(CERT_FILE_MAX);
	if (buf == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while (len < CERT_FILE_MAX &&
	       (got = read(fd, buf + len, CERT_FILE_MAX - len)) > 0)
		len += (size_t)got;
	close(fd);
	ERR_clear_error();
	b = BIO_new_mem_buf(buf, (int)len);
	if (b == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	/* A PEM file is text with a "-----BEGIN" line; anything else is
	 * taken as DER PKCS#12. */
	if (memmem(buf, len, "-----BEGIN", 10) != NULL)
		rc = load_pem(b, pass, &key, &cert);
	else
		rc = load_p12(b, pass, &key, &cert);
	if (rc < 0)
		goto out;
	rc = -EBADMSG;
	if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
		goto out;
	s = calloc(1, sizeof(*s));
	if (s == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (X509_digest(cert, EVP_sha256(), s->cert_sha256, &n) != 1 ||
	    n != 32)
		goto out;
	s->not_after = not_after_of(cert);
	s->key = key;
	key = NULL;			/* transferred */
	*out = s;
	s = NULL;			/* transferred */
	rc = 0;
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_free(cert);
	sign_free(s);
	BIO_free(b);
	if (buf != NULL)
		OPENSSL_clear_free(buf, CERT_FILE_MAX);
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
