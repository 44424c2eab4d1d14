/* include/cmkfs/block.h — one content block, sealed by two AEAD layers
 * (doc/FORMAT.md §3). Seal inner first, open outer first. Both layers bind
 * file id, block number and the "last block" flag, so blocks cannot be
 * moved, swapped between files, or cut off at a block boundary unseen.
 * No I/O, no offsets beyond one block. Thread-safe given distinct aead
 * contexts. */
#ifndef CMKFS_BLOCK_H
#define CMKFS_BLOCK_H

#include <stdbool.h>

#include "cmkfs/aead.h"
#include "cmkfs/header.h"

/* outer nonce ‖ E_outer(inner nonce ‖ E_inner(data) ‖ inner tag) ‖ outer tag */
#define BLOCK_OVERHEAD (2 * AEAD_NONCE_LEN + 2 * AEAD_TAG_LEN)	/* 56 */
#define BLOCK_AAD_LEN (FILE_ID_LEN + 8 + 1 + 1)

struct block_ctx {
	struct aead *inner;	/* keyed with DEK_1 */
	struct aead *outer;	/* keyed with DEK_2 */
	const uint8_t *file_id;	/* FILE_ID_LEN bytes */
};

/* Seal `len` bytes (0..block size) into `out` (len + BLOCK_OVERHEAD bytes)
 * with fresh random nonces. Errors: -EIO. */
CMK_MUST_CHECK int block_seal(const struct block_ctx *bc, uint64_t blockno,
			      bool last, const uint8_t *pt, size_t len,
			      uint8_t *out);
/* Same with given nonces (known-answer tests only). */
CMK_MUST_CHECK int block_seal_nonces(const struct block_ctx *bc,
				     uint64_t blockno, bool last,
				     const uint8_t *pt, size_t len,
				     const uint8_t n_inner[static AEAD_NONCE_LEN],
				     const uint8_t n_outer[static AEAD_NONCE_LEN],
				     uint8_t *out);
/* Open `ct_len` bytes (>= BLOCK_OVERHEAD); `ct` is used as scratch and
 * clobbered. Writes ct_len - BLOCK_OVERHEAD bytes to pt.
 * Errors: -EBADMSG (any layer fails; pt wiped). */
CMK_MUST_CHECK int block_open(const struct block_ctx *bc, uint64_t blockno,
			      bool last, uint8_t *ct, size_t ct_len,
			      uint8_t *pt);

/* Hole records (format 3, doc/FORMAT.md §3.4): the first BLOCK_HOLE_LEN
 * bytes of slot `blockno` seal the 8-byte big-endian first block `start`
 * of the hole that ends at this slot, with kind 2 in place of the "last"
 * flag in both layers' AAD. */
#define BLOCK_HOLE_LEN (8 + BLOCK_OVERHEAD)	/* 64 */

/* Seal the record of hole [start, blockno] into out. Errors: -EINVAL
 * (start > blockno), -EIO. */
CMK_MUST_CHECK int block_seal_hole(const struct block_ctx *bc,
				   uint64_t blockno, uint64_t start,
				   uint8_t out[static BLOCK_HOLE_LEN]);
/* Open the record in slot `blockno` (in is not changed): *start gets the
 * hole's first block. Errors: -EBADMSG (does not open as this file's
 * record of this slot, or a start past the slot). */
CMK_MUST_CHECK int block_open_hole(const struct block_ctx *bc,
				   uint64_t blockno,
				   const uint8_t in[static BLOCK_HOLE_LEN],
				   uint64_t *start);

#endif
