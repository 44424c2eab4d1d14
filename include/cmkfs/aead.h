/* include/cmkfs/aead.h — AES-256-GCM and AES-256-SIV through OpenSSL 3 EVP.
 * Owns every cipher call in the tree. A `struct aead` is a keyed GCM context
 * pair (one key schedule, reused for every block with a fresh nonce); it is
 * not thread-safe: one user at a time (callers pool them).
 * Decryption verifies the tag before anything is returned: on failure the
 * output is wiped and -EBADMSG returned (STYLE.md §2).
 * Key schedules (every context made or keyed here, and SIV's for the whole
 * call) come from OpenSSL's secure heap once secmem_ossl_install() ran:
 * locked, excluded from core dumps (secmem.h); from ordinary heap else. */
#ifndef CMKFS_AEAD_H
#define CMKFS_AEAD_H

#include "cmkfs/common.h"

#define AEAD_KEY_LEN 32
#define AEAD_NONCE_LEN 12
#define AEAD_TAG_LEN 16
#define SIV_KEY_LEN 64
#define SIV_TAG_LEN 16

struct aead;

/* Fetch the ciphers once; call before threads start. Errors: -ENOSYS. */
CMK_MUST_CHECK int aead_global_init(void);

CMK_MUST_CHECK int aead_new(const uint8_t key[static AEAD_KEY_LEN],
			    struct aead **out);
void aead_free(struct aead *a);	/* NULL-safe, wipes the key schedule */

/* Seal `len` bytes of `pt` into `ct` (may equal pt) and write the tag.
 * Errors: -EIO (OpenSSL failure). */
CMK_MUST_CHECK int aead_seal(struct aead *a,
			     const uint8_t nonce[static AEAD_NONCE_LEN],
			     const uint8_t *aad, size_t aad_len,
			     const uint8_t *pt, size_t len, uint8_t *ct,
			     uint8_t tag[static AEAD_TAG_LEN]);
/* Open; `pt` may equal ct. Errors: -EBADMSG (tag mismatch; pt wiped), -EIO. */
CMK_MUST_CHECK int aead_open(struct aead *a,
			     const uint8_t nonce[static AEAD_NONCE_LEN],
			     const uint8_t *aad, size_t aad_len,
			     const uint8_t *ct, size_t len, uint8_t *pt,
			     const uint8_t tag[static AEAD_TAG_LEN]);

/* Key wrapping of a 32-byte key: out = nonce(12) ‖ ct(32) ‖ tag(16), random
 * nonce, AES-256-GCM under `kek`, `aad` bound. doc/FORMAT.md §1. */
#define AEAD_WRAP_LEN (AEAD_NONCE_LEN + AEAD_KEY_LEN + AEAD_TAG_LEN)
CMK_MUST_CHECK int aead_wrap_key(const uint8_t kek[static AEAD_KEY_LEN],
				 const uint8_t *aad, size_t aad_len,
				 const uint8_t key[static AEAD_KEY_LEN],
				 uint8_t out[static AEAD_WRAP_LEN]);
/* Same with a caller-chosen nonce (known-answer tests only). */
CMK_MUST_CHECK int aead_wrap_key_nonce(const uint8_t kek[static AEAD_KEY_LEN],
				       const uint8_t *aad, size_t aad_len,
				       const uint8_t key[static AEAD_KEY_LEN],
				       const uint8_t nonce[static AEAD_NONCE_LEN],
				       uint8_t out[static AEAD_WRAP_LEN]);
/* Errors: -EKEYREJECTED (wrong KEK or tampered wrap; key wiped), -EIO. */
CMK_MUST_CHECK int aead_unwrap_key(const uint8_t kek[static AEAD_KEY_LEN],
				   const uint8_t *aad, size_t aad_len,
				   const uint8_t in[static AEAD_WRAP_LEN],
				   uint8_t key[static AEAD_KEY_LEN]);

/* Deterministic AES-256-SIV (RFC 5297) for names: ct is len bytes, tag 16.
 * Errors: -EIO; open: -EBADMSG (pt wiped). */
CMK_MUST_CHECK int aead_siv_seal(const uint8_t key[static SIV_KEY_LEN],
				 const uint8_t *aad, size_t aad_len,
				 const uint8_t *pt, size_t len, uint8_t *ct,
				 uint8_t tag[static SIV_TAG_LEN]);
CMK_MUST_CHECK int aead_siv_open(const uint8_t key[static SIV_KEY_LEN],
				 const uint8_t *aad, size_t aad_len,
				 const uint8_t *ct, size_t len, uint8_t *pt,
				 const uint8_t tag[static SIV_TAG_LEN]);

/* SIV with a vector of associated-data components (RFC 5297 §2.4: S2V
 * over each one; a random nonce as the last component gives §3's
 * nonce-based, randomized use). aead_siv_seal() is the one-component
 * case. At most AEAD_SIV_PARTS_MAX components. Errors: as above,
 * -EINVAL (too many). */
#define AEAD_SIV_PARTS_MAX 8
struct aead_part {
	const uint8_t *p;
	size_t len;
};
CMK_MUST_CHECK int aead_siv_seal_parts(const uint8_t key[static SIV_KEY_LEN],
				       const struct aead_part *aad,
				       size_t naad, const uint8_t *pt,
				       size_t len, uint8_t *ct,
				       uint8_t tag[static SIV_TAG_LEN]);
CMK_MUST_CHECK int aead_siv_open_parts(const uint8_t key[static SIV_KEY_LEN],
				       const struct aead_part *aad,
				       size_t naad, const uint8_t *ct,
				       size_t len, uint8_t *pt,
				       const uint8_t tag[static SIV_TAG_LEN]);

/* Keyed SIV templates for the keys used on every file operation (the
 * DEK-wrap keys, the name key): an SIV call under a pinned key copies a
 * context keyed once instead of keying one (the key schedules and S2V's
 * first CMAC), about half the cost; results are the same either way. A
 * pin belongs to an owner (the keyring) and holds the key's schedule in
 * the secure heap until the owner's aead_siv_unpin(), which it must call
 * whenever it wipes or changes those keys. At most AEAD_SIV_PINS pins in
 * all; a pin beyond that is a no-op (calls key their own context).
 * Thread-safe. Errors: -ENOMEM, -EIO, -ENOSYS. */
#define AEAD_SIV_PINS 8
CMK_MUST_CHECK int aead_siv_pin(const void *owner,
				const uint8_t key[static SIV_KEY_LEN]);
void aead_siv_unpin(const void *owner);
/* Number of pins in all (tests). */
unsigned aead_siv_pinned(void);

#endif
