/* tests/unit/test_b64.c — base64url without padding: RFC 4648 §10 vectors
 * (in the url alphabet, unpadded), canonical decoding only. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/b64.h"
#include "../lib/tap.h"

int main(void)
{
	static const char *const vec[][2] = {
		{ "", "" },	    { "f", "Zg" },	  { "fo", "Zm8" },
		{ "foo", "Zm9v" },  { "foob", "Zm9vYg" }, { "fooba", "Zm9vYmE" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const char *const bad[] = { "Zg==", "Z", "Zh", "Zm9", "a+b/",
					   "Zm 9", "Zm9v\n" };
	char enc[64];
	uint8_t dec[64], all[256];
	size_t n;

	for (size_t i = 0; i < CMK_ARRAY_LEN(vec); i++) {
		size_t l = strlen(vec[i][0]);

		CHECK_RC(b64_encode((const uint8_t *)vec[i][0], l, enc,
				    sizeof(enc)),
			 0);
		CHECK(strcmp(enc, vec[i][1]) == 0, "enc %s -> %s", vec[i][0],
		      enc);
		CHECK_RC(b64_decode(vec[i][1], strlen(vec[i][1]), dec,
				    sizeof(dec), &n),
			 0);
		CHECK(n == l && memcmp(dec, vec[i][0], l) == 0, "dec %s",
		      vec[i][1]);
	}
	/* url alphabet: 0xfb 0xff -> "-_8" */
	all[0] = 0xfb;
	all[1] = 0xff;
	CHECK_RC(b64_encode(all, 2, enc, sizeof(enc)), 0);
	CHECK(strcmp(enc, "-_8") == 0, "url alphabet: %s", enc);
	for (size_t i = 0; i < CMK_ARRAY_LEN(bad); i++)
		CHECK(b64_decode(bad[i], strlen(bad[i]), dec, sizeof(dec),
				 &n) < 0,
		      "accepted non-canonical '%s'", bad[i]);
	for (int i = 0; i < 256; i++)
		all[i] = (uint8_t)i;
	for (size_t l = 0; l <= 40; l++) {
		CHECK_RC(b64_encode(all + l, l, enc, sizeof(enc)), 0);
		CHECK(strlen(enc) == b64_enc_len(l), "len %zu", l);
		CHECK_RC(b64_decode(enc, strlen(enc), dec, sizeof(dec), &n), 0);
		CHECK(n == l && memcmp(dec, all + l, l) == 0, "round trip %zu",
		      l);
	}
	CHECK_RC(b64_encode(all, 30, enc, 41), 0);	/* 40 chars + NUL */
	CHECK_RC(b64_encode(all, 30, enc, 40), -ENAMETOOLONG);
	CHECK_RC(b64_decode("Zm9vYmFy", 8, dec, 5, &n), -ENOSPC);
	return t_done("test_b64");
}
