/* tests/fuzz/fuzz_header.c — file header parser; a parsed header must
 * serialise back to the same bytes. */
#include <string.h>

#include "cmkfs/header.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t back[HEADER_LEN];
	struct header h;

	if (header_parse(data, size, &h) == 0) {
		header_serialize(&h, back);
		FUZZ_ASSERT(size == HEADER_LEN && memcmp(back, data, size) == 0);
	}
	return 0;
}
