/* src/format/block.c — two-layer block codec (doc/FORMAT.md §3). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/block.h"
#include "cmkfs/rand.h"
#include "cmkfs/rdwr.h"
#include "cmkfs/secmem.h"

/* doc/FORMAT.md §3: AAD = file id ‖ block number ‖ flags ‖ layer. */
static void block_aad(const struct block_ctx *bc, uint64_t blockno, bool last,
		      enum layer layer, uint8_t aad[static BLOCK_AAD_LEN])
{
	memcpy(aad, bc->file_id, FILE_ID_LEN);
	put_be64(aad + FILE_ID_LEN, blockno);
	aad[FILE_ID_LEN + 8] = last ? 1 : 0;
	aad[FILE_ID_LEN + 9] = (uint8_t)layer;
}

int block_seal_nonces(const struct block_ctx *bc, uint64_t blockno, bool last,
		      const uint8_t *pt, size_t len,
		      const uint8_t n_inner[static AEAD_NONCE_LEN],
		      const uint8_t n_outer[static AEAD_NONCE_LEN],
		      uint8_t *out)
{
	uint8_t aad[BLOCK_AAD_LEN];
	uint8_t *mid = out + AEAD_NONCE_LEN;	/* start of the outer plaintext */
	size_t mid_len = AEAD_NONCE_LEN + len + AEAD_TAG_LEN;
	int rc;

	memcpy(mid, n_inner, AEAD_NONCE_LEN);
	block_aad(bc, blockno, last, LAYER_INNER, aad);
	rc = aead_seal(bc->inner, n_inner, aad, sizeof(aad), pt, len,
		       mid + AEAD_NONCE_LEN, mid + AEAD_NONCE_LEN + len);
	if (rc < 0)
		return rc;
	memcpy(out, n_outer, AEAD_NONCE_LEN);
	block_aad(bc, blockno, last, LAYER_OUTER, aad);
	return aead_seal(bc->outer, n_outer, aad, sizeof(aad), mid, mid_len,
			 mid, mid + mid_len);
}

int block_seal(const struct block_ctx *bc, uint64_t blockno, bool last,
	       const uint8_t *pt, size_t len, uint8_t *out)
{
	uint8_t nonces[2 * AEAD_NONCE_LEN];
	int rc;

	/* 96-bit random nonces under a per-file DEK: doc/FORMAT.md §3 gives
	 * the bound (2^32 block writes per file at 2^-32 collision risk). */
	rc = rand_bytes(nonces, sizeof(nonces));
	if (rc < 0)
		return rc;
	return block_seal_nonces(bc, blockno, last, pt, len, nonces,
				 nonces + AEAD_NONCE_LEN, out);
}

int block_open(const struct block_ctx *bc, uint64_t blockno, bool last,
	       uint8_t *ct, size_t ct_len, uint8_t *pt)
{
	uint8_t aad[BLOCK_AAD_LEN];
	uint8_t *mid = ct + AEAD_NONCE_LEN;
	size_t len, mid_len;
	int rc;

	if (ct_len < BLOCK_OVERHEAD)
		return -EBADMSG;
	len = ct_len - BLOCK_OVERHEAD;
	mid_len = AEAD_NONCE_LEN + len + AEAD_TAG_LEN;
	block_aad(bc, blockno, last, LAYER_OUTER, aad);
	rc = aead_open(bc->outer, ct, aad, sizeof(aad), mid, mid_len, mid,
		       mid + mid_len);
	if (rc < 0)
		return rc;
	block_aad(bc, blockno, last, LAYER_INNER, aad);
	rc = aead_open(bc->inner, mid, aad, sizeof(aad), mid + AEAD_NONCE_LEN,
		       len, pt, mid + AEAD_NONCE_LEN + len);
	return rc;
}
