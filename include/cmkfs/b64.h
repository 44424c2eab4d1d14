/* include/cmkfs/b64.h — base64url without padding (RFC 4648 §5), as used
 * for encrypted names on disk and by Key Vault. Strict decoder: refuses
 * padding, foreign characters and non-zero trailing bits, so every byte
 * string has exactly one encoding. Pure. */
#ifndef CMKFS_B64_H
#define CMKFS_B64_H

#include "cmkfs/common.h"

static inline size_t b64_enc_len(size_t n)
{
	return n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

/* Writes b64_enc_len(n) chars and a NUL. Errors: -ENAMETOOLONG if cap is
 * too small. */
CMK_MUST_CHECK int b64_encode(const uint8_t *in, size_t n, char *out,
			      size_t cap);
/* Decode `len` chars. Errors: -EBADMSG (not canonical base64url),
 * -ENOSPC (cap too small). */
CMK_MUST_CHECK int b64_decode(const char *in, size_t len, uint8_t *out,
			      size_t cap, size_t *out_len);

#endif
