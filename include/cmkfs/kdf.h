/* include/cmkfs/kdf.h — HKDF-SHA256 sub-keys, one label per purpose, and
 * HMAC-SHA256 for the volume config (doc/FORMAT.md §1). Pure. */
#ifndef CMKFS_KDF_H
#define CMKFS_KDF_H

#include "cmkfs/common.h"

#define HMAC_LEN 32

/* out_len bytes of HKDF-SHA256(ikm, salt, info=label). Errors: -EIO. */
CMK_MUST_CHECK int kdf_hkdf(const uint8_t *ikm, size_t ikm_len,
			    const uint8_t *salt, size_t salt_len,
			    const char *label, uint8_t *out, size_t out_len);
CMK_MUST_CHECK int kdf_hmac(const uint8_t *key, size_t key_len,
			    const uint8_t *msg, size_t msg_len,
			    uint8_t mac[static HMAC_LEN]);
CMK_MUST_CHECK int kdf_sha256(const void *msg, size_t len,
			      uint8_t md[static 32]);

#endif
