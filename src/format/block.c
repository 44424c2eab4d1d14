/* src/format/block.c — two-layer block codec (doc/FORMAT.md §3). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/block.h"
#include "cmkfs/rand.h"
#include "cmkfs/rdwr.h"
#include "cmkfs/secmem.h"

/* doc/FORMAT.md §3: AAD = file id ‖ block number ‖ kind ‖ layer, kind 0/1
 * the "last" flag of a data block, 2 a hole record (format 3), so that a
 * record never opens as data nor data as a record. */
#define KIND_HOLE 2

static void block_aad(const struct block_ctx *bc, uint64_t blockno,
		      uint8_t kind, enum layer layer,
		      uint8_t aad[static BLOCK_AAD_LEN])
{
	memcpy(aad, bc->file_id, FILE_ID_LEN);
	put_be64(aad + FILE_ID_LEN, blockno);
	aad[FILE_ID_LEN + 8] = kind;
	aad[FILE_ID_LEN + 9] = (uint8_t)layer;
}

static int seal_kind(const struct block_ctx *bc, uint64_t blockno,
		     uint8_t kind, const uint8_t *pt, size_t len,
		     const uint8_t n_inner[static AEAD_NONCE_LEN],
		     const uint8_t n_outer[static AEAD_NONCE_LEN], uint8_t *out)
{
	uint8_t aad[BLOCK_AAD_LEN];
	uint8_t *mid = out + AEAD_NONCE_LEN;	/* start of the outer plaintext */
	size_t mid_len = AEAD_NONCE_LEN + len + AEAD_TAG_LEN;
	int rc;

	memcpy(mid, n_inner, AEAD_NONCE_LEN);
	block_aad(bc, blockno, kind, LAYER_INNER, aad);
	rc = aead_seal(bc->inner, n_inner, aad, sizeof(aad), pt, len,
		       mid + AEAD_NONCE_LEN, mid + AEAD_NONCE_LEN + len);
	if (rc < 0)
		return rc;
	memcpy(out, n_outer, AEAD_NONCE_LEN);
	block_aad(bc, blockno, kind, LAYER_OUTER, aad);
	return aead_seal(bc->outer, n_outer, aad, sizeof(aad), mid, mid_len,
			 mid, mid + mid_len);
}

int block_seal_nonces(const struct block_ctx *bc, uint64_t blockno, bool last,
		      const uint8_t *pt, size_t len,
		      const uint8_t n_inner[static AEAD_NONCE_LEN],
		      const uint8_t n_outer[static AEAD_NONCE_LEN],
		      uint8_t *out)
{
	return seal_kind(bc, blockno, last ? 1 : 0, pt, len, n_inner, n_outer,
			 out);
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

static int open_kind(const struct block_ctx *bc, uint64_t blockno,
		     uint8_t kind, uint8_t *ct, size_t ct_len, uint8_t *pt)
{
	uint8_t aad[BLOCK_AAD_LEN];
	uint8_t *mid = ct + AEAD_NONCE_LEN;
	size_t len, mid_len;
	int rc;

	if (ct_len < BLOCK_OVERHEAD)
		return -EBADMSG;
	len = ct_len - BLOCK_OVERHEAD;
	mid_len = AEAD_NONCE_LEN + len + AEAD_TAG_LEN;
	block_aad(bc, blockno, kind, LAYER_OUTER, aad);
	rc = aead_open(bc->outer, ct, aad, sizeof(aad), mid, mid_len, mid,
		       mid + mid_len);
	if (rc < 0)
		return rc;
	block_aad(bc, blockno, kind, LAYER_INNER, aad);
	rc = aead_open(bc->inner, mid, aad, sizeof(aad), mid + AEAD_NONCE_LEN,
		       len, pt, mid + AEAD_NONCE_LEN + len);
	return rc;
}

int block_open(const struct block_ctx *bc, uint64_t blockno, bool last,
	       uint8_t *ct, size_t ct_len, uint8_t *pt)
{
	return open_kind(bc, blockno, last ? 1 : 0, ct, ct_len, pt);
}

int block_seal_hole(const struct block_ctx *bc, uint64_t blockno,
		    uint64_t start, uint8_t out[static BLOCK_HOLE_LEN])
{
	uint8_t pt[8], nonces[2 * AEAD_NONCE_LEN];
	int rc;

	if (start > blockno)
		return -EINVAL;
	put_be64(pt, start);
	rc = rand_bytes(nonces, sizeof(nonces));
	if (rc < 0)
		return rc;
	return seal_kind(bc, blockno, KIND_HOLE, pt, sizeof(pt), nonces,
			 nonces + AEAD_NONCE_LEN, out);
}

int block_open_hole(const struct block_ctx *bc, uint64_t blockno,
		    const uint8_t in[static BLOCK_HOLE_LEN], uint64_t *start)
{
	uint8_t ct[BLOCK_HOLE_LEN], pt[8];
	uint64_t s = 0;
	int rc;

	memcpy(ct, in, sizeof(ct));	/* open_kind clobbers its input */
	rc = open_kind(bc, blockno, KIND_HOLE, ct, sizeof(ct), pt);
	if (rc < 0)
		return -EBADMSG;
	for (int i = 0; i < 8; i++)
		s = s << 8 | pt[i];
	if (s > blockno)		/* a hole ends at its record */
		return -EBADMSG;
	*start = s;
	return 0;
}
