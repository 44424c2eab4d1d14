/* tests/fuzz/fuzz_azure.c — Key Vault error replies (status from the first
 * two bytes), WWW-Authenticate challenges and key URIs. */
#include <string.h>

#include "cmkfs/auth.h"
#include "cmkfs/kv.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[4096], msg[256], t[128], s[512], r[512];
	struct kv_uri u;
	size_t n;
	int rc;

	if (size < 2)
		return 0;
	rc = kv_map_error(100 + (data[0] << 8 | data[1]) % 500,
			  (const char *)data + 2, size - 2, msg, sizeof(msg));
	FUZZ_ASSERT(rc < 0 && strchr(msg, '\n') == NULL);
	n = size - 2 < sizeof(text) - 1 ? size - 2 : sizeof(text) - 1;
	memcpy(text, data + 2, n);
	text[n] = '\0';
	if (azauth_parse_challenge(text, t, sizeof(t), s, sizeof(s), r,
				   sizeof(r)) == 0)
		FUZZ_ASSERT(strncmp(r, "https://", 8) == 0 && t[0] != '\0');
	if (kv_parse_uri(text, &u) == 0)
		FUZZ_ASSERT(strncmp(u.vault, "https://", 8) == 0 &&
			    u.name[0] != '\0' && u.version[0] != '\0');
	return 0;
}
