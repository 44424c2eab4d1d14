/* tests/fuzz/fuzz_block.c — the two-layer block opener on hostile bytes:
 * nothing may open without the right keys; a block sealed from the input
 * opens back to it, and not with any one bit flipped, nor as another block
 * number or with the other "last" flag. Hole records (format 3) likewise:
 * hostile bytes never open as one, a record opens back to its start only
 * at its own slot, never as a data block, and no data block opens as a
 * record. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "cmkfs/block.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct block_ctx bc;
	static uint8_t fid[FILE_ID_LEN], ct[4096 + BLOCK_OVERHEAD],
		sealed[4096 + BLOCK_OVERHEAD], pt[4096];
	uint8_t k1[32], k2[32], n1[AEAD_NONCE_LEN], n2[AEAD_NONCE_LEN];
	uint64_t blockno;
	size_t len, bit;
	bool last;

	if (bc.inner == NULL) {
		fuzz_key(k1, 32, 1);
		fuzz_key(k2, 32, 2);
		if (aead_new(k1, &bc.inner) != 0 || aead_new(k2, &bc.outer) != 0)
			abort();
		bc.file_id = fid;
	}
	if (size < 1 || size - 1 > sizeof(ct))
		return 0;
	blockno = data[0] >> 1;
	last = data[0] & 1;
	len = size - 1;
	memcpy(ct, data + 1, len);
	/* Random bytes never authenticate (2^-128 per try). */
	FUZZ_ASSERT(block_open(&bc, blockno, last, ct, len, pt) != 0);
	if (len >= BLOCK_HOLE_LEN) {
		uint64_t start = 0, s2 = 0;
		uint8_t rec[BLOCK_HOLE_LEN];

		FUZZ_ASSERT(block_open_hole(&bc, blockno, data + 1, &s2) != 0);
		start = blockno - (data[1] % (blockno + 1));
		FUZZ_ASSERT(block_seal_hole(&bc, blockno, start, rec) == 0);
		FUZZ_ASSERT(block_open_hole(&bc, blockno, rec, &s2) == 0 &&
			    s2 == start);
		FUZZ_ASSERT(block_open_hole(&bc, blockno + 1, rec, &s2) != 0);
		memcpy(ct, rec, sizeof(rec));
		FUZZ_ASSERT(block_open(&bc, blockno, false, ct, sizeof(rec),
				       pt) != 0);
		memcpy(ct, rec, sizeof(rec));
		FUZZ_ASSERT(block_open(&bc, blockno, true, ct, sizeof(rec),
				       pt) != 0);
		FUZZ_ASSERT(block_seal_hole(&bc, blockno, blockno + 1, rec) ==
			    -EINVAL);
	}
	if (len > sizeof(pt))
		return 0;
	fuzz_key(n1, sizeof(n1), data[0]);
	fuzz_key(n2, sizeof(n2), (uint8_t)len);
	FUZZ_ASSERT(block_seal_nonces(&bc, blockno, last, data + 1, len, n1, n2,
				      sealed) == 0);
	memcpy(ct, sealed, len + BLOCK_OVERHEAD);
	FUZZ_ASSERT(block_open(&bc, blockno, last, ct, len + BLOCK_OVERHEAD,
			       pt) == 0 &&
		    memcmp(pt, data + 1, len) == 0);
	bit = (len * 131 + data[0]) % (8 * (len + BLOCK_OVERHEAD));
	memcpy(ct, sealed, len + BLOCK_OVERHEAD);
	ct[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	FUZZ_ASSERT(block_open(&bc, blockno, last, ct, len + BLOCK_OVERHEAD,
			       pt) != 0);
	memcpy(ct, sealed, len + BLOCK_OVERHEAD);
	FUZZ_ASSERT(block_open(&bc, blockno + 1, last, ct, len + BLOCK_OVERHEAD,
			       pt) != 0);
	memcpy(ct, sealed, len + BLOCK_OVERHEAD);
	FUZZ_ASSERT(block_open(&bc, blockno, !last, ct, len + BLOCK_OVERHEAD,
			       pt) != 0);
	if (len == 8) {		/* a data block of 8 bytes is not a record */
		uint64_t s3;

		FUZZ_ASSERT(block_open_hole(&bc, blockno, sealed, &s3) != 0);
	}
	return 0;
}
