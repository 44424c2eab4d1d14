/* tests/fuzz/fuzz_block.c — the two-layer block opener on hostile bytes:
 * nothing may open without the right keys. */
#include <stdbool.h>
#include <string.h>

#include "cmkfs/block.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct block_ctx bc;
	static uint8_t fid[FILE_ID_LEN], ct[4096 + BLOCK_OVERHEAD], pt[4096];
	uint8_t k1[32], k2[32];

	if (bc.inner == NULL) {
		fuzz_key(k1, 32, 1);
		fuzz_key(k2, 32, 2);
		if (aead_new(k1, &bc.inner) != 0 || aead_new(k2, &bc.outer) != 0)
			abort();
		bc.file_id = fid;
	}
	if (size < 1 || size - 1 > sizeof(ct))
		return 0;
	memcpy(ct, data + 1, size - 1);
	/* Random bytes never authenticate (2^-128 per try). */
	FUZZ_ASSERT(block_open(&bc, data[0] >> 1, data[0] & 1, ct, size - 1, pt) != 0);
	return 0;
}
