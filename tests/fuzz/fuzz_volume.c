/* tests/fuzz/fuzz_volume.c — volume config parser and MAC check; a parsed
 * config must serialise back to the same bytes. */
#include <string.h>

#include "cmkfs/volume.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t back[VOLUME_MAX_LEN];
	static struct volume v;
	uint8_t key[32];
	size_t len = 0;

	if (volume_parse(data, size, &v) != 0)
		return 0;
	FUZZ_ASSERT(volume_serialize(&v, back, sizeof(back), &len) == 0);
	FUZZ_ASSERT(len == size && memcmp(back, data, size) == 0);
	fuzz_key(key, sizeof(key), 7);
	fuzz_ignore(volume_check_mac(&v, key) != 0);
	return 0;
}
