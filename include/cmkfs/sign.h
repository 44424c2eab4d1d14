/* include/cmkfs/sign.h — a client certificate's key for Entra ID client
 * assertions (JWT, PS256, RFC 7515/7518) through OpenSSL. The private key
 * stays in OpenSSL's EVP_PKEY (freed with EVP_PKEY_free, which cleanses).
 * Thread-safe per object with external locking. */
#ifndef CMKFS_SIGN_H
#define CMKFS_SIGN_H

#include "cmkfs/common.h"

struct signer;

/* Load an RSA private key and its certificate (the
 * AZURE_CLIENT_CERTIFICATE_PATH formats): a PEM file holding both (the key
 * possibly encrypted) or a PKCS#12/PFX file, decrypted with `pass` (NULL
 * = none; never logged, never kept). Refuses files readable by
 * group/other and files over 1 MiB. Never prompts.
 * Errors: -ENOENT, -EACCES, -EPERM, -EFBIG, -EKEYREJECTED (the password is
 * missing or wrong), -EBADMSG (no key or certificate, or not RSA),
 * -ENOMEM. */
CMK_MUST_CHECK int sign_load(const char *path, const char *pass,
			     struct signer **out);
void sign_free(struct signer *s);	/* NULL-safe */
/* SHA-256 of the certificate's DER encoding (the JWT "x5t#S256"). */
void sign_cert_sha256(const struct signer *s, uint8_t md[static 32]);
/* The certificate's notAfter as a Unix time (0 if unreadable). */
int64_t sign_cert_not_after(const struct signer *s);
/* RSASSA-PSS with SHA-256, MGF1-SHA-256, salt = 32: *sig_len bytes into
 * sig (cap >= 512). Errors: -EIO. */
CMK_MUST_CHECK int sign_ps256(struct signer *s, const void *msg, size_t len,
			      uint8_t *sig, size_t cap, size_t *sig_len);

#endif
