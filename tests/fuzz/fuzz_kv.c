/* tests/fuzz/fuzz_kv.c — Key Vault reply bodies as kv.c reads them: a key
 * bundle (GET key), a wrapkey/unwrapkey result, and an error body under
 * each status that decides something. */
#include <errno.h>
#include <string.h>

#include "cmkfs/kv.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* 403 is decided on the inner code too; the others on status alone */
	static const long status[] = { 400, 403, 429 };
	const char *body = (const char *)data;
	uint8_t out[512];
	char msg[256];
	struct kv_key k;
	size_t n = 0;
	int rc;

	rc = kv_parse_key_reply(body, size, &k);
	FUZZ_ASSERT(rc == 0 || rc == -EPROTO || rc == -EOPNOTSUPP);
	if (rc == 0 || rc == -EOPNOTSUPP) {
		FUZZ_ASSERT(strlen(k.kid) < sizeof(k.kid) &&
			    strlen(k.kty) < sizeof(k.kty) &&
			    strlen(k.recovery_level) < sizeof(k.recovery_level));
		FUZZ_ASSERT((kv_alg_for(k.kty) != NULL) == (rc == 0));
		FUZZ_ASSERT(k.rsa_bits >= 0 && k.rsa_bits <= 8192 &&
			    k.rsa_bits % 8 == 0);
	}
	rc = kv_parse_op_reply(body, size, out, sizeof(out), &n);
	FUZZ_ASSERT(rc == 0 ? n <= sizeof(out) : rc == -EPROTO);
	for (size_t i = 0; i < sizeof(status) / sizeof(status[0]); i++) {
		rc = kv_map_error(status[i], body, size, msg, sizeof(msg));
		FUZZ_ASSERT(rc == -EKEYREVOKED || rc == -EKEYEXPIRED ||
			    rc == -EAGAIN || rc == -EPROTO);
		FUZZ_ASSERT(rc != -EKEYEXPIRED || status[i] == 403);
		for (const char *p = msg; *p; p++)
			FUZZ_ASSERT((unsigned char)*p >= 0x20 && *p != 0x7f);
	}
	return 0;
}
