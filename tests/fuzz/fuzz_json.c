/* tests/fuzz/fuzz_json.c — bounded JSON and every typed getter, as the
 * Key Vault, token and IMDS replies are read. */
#include "cmkfs/json.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const keys[] = { "access_token", "expires_in",
					    "expires_on", "token_type", "error",
					    "key", "attributes", "value", "kid" };
	const struct json *o, *arr;
	struct json *j = NULL;
	const char *s;
	int64_t v;
	bool b;
	size_t n;

	if (json_parse((const char *)data, size, &j) != 0)
		return 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		fuzz_ignore(json_str(j, keys[i], &s) != 0);
		fuzz_ignore(json_int(j, keys[i], &v) != 0);
		fuzz_ignore(json_bool(j, keys[i], &b) != 0);
		if (json_obj(j, keys[i], &o) == 0) {
			fuzz_ignore(json_str(o, "code", &s) != 0);
			fuzz_ignore(json_bool(o, "enabled", &b) != 0);
			fuzz_ignore(json_int(o, "exp", &v) != 0);
			if (json_array(o, "key_ops", &arr, &n) == 0)
				for (size_t k = 0; k < n && k < 64; k++)
					fuzz_ignore(json_array_str(arr, k) != 0);
		}
	}
	json_free(j);
	return 0;
}
