/* tests/fuzz/fuzz_token.c — the token endpoints' replies as azauth.c reads
 * them (Entra ID v2.0, IMDS, App Service: azauth_parse_token_reply) and the
 * workload identity's federated token file (azauth_parse_assertion). The
 * input is the reply body, or the file's bytes. */
#include <errno.h>
#include <string.h>

#include "cmkfs/azauth.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const long refused[] = { 0, 201, 302, 400, 401, 403, 404, 408,
					429, 500, 503 };
	static char tok[AUTH_TOKEN_MAX], buf[4096];
	const char *body = (const char *)data;
	const time_t now = 1700000000;
	time_t exp = 0;
	size_t n;
	int rc;

	memset(tok, '#', 8);
	rc = azauth_parse_token_reply(AZERR_SRC_ENTRA, 200, body, size, now,
				      tok, sizeof(tok), &exp, NULL);
	if (rc == 0) {
		n = strlen(tok);
		/* The token goes into an Authorization header. */
		FUZZ_ASSERT(n > 0 && n < sizeof(tok) &&
			    strpbrk(tok, "\r\n \t\"") == NULL && exp > 0);
		/* Too long for the caller's buffer: refused, not cut. */
		memset(buf, '#', 8);
		FUZZ_ASSERT(azauth_parse_token_reply(AZERR_SRC_IMDS, 200, body,
						     size, now, buf, n, &exp,
						     NULL) == -EPROTO &&
			    memcmp(buf, "########", 8) == 0);
	} else {
		FUZZ_ASSERT(rc == -EPROTO && memcmp(tok, "########", 8) == 0);
	}
	/* Any other status is an error of a known class with a code safe to
	 * log, whatever the body says. */
	for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		for (int src = AZERR_SRC_ENTRA; src <= AZERR_SRC_APPSERVICE;
		     src++) {
			struct azerr e;

			rc = azauth_parse_token_reply((enum azerr_src)src,
						      refused[i], body, size,
						      now, tok, sizeof(tok),
						      &exp, &e);
			FUZZ_ASSERT(rc == -EACCES || rc == -EAGAIN ||
				    rc == -EPROTO);
			FUZZ_ASSERT((rc == -EACCES) ==
				    azerr_is_denial(e.cause));
			FUZZ_ASSERT(strlen(e.code) < sizeof(e.code));
			for (const char *p = e.code; *p; p++)
				FUZZ_ASSERT((unsigned char)*p >= 0x20 &&
					    *p != 0x7f && *p != '"');
		}
	}
	/* The same bytes as a federated token file, copied and in place. */
	rc = azauth_parse_assertion(body, size, buf, sizeof(buf));
	FUZZ_ASSERT(size == 0 ? rc == -EACCES : rc == 0);
	if (rc == 0) {
		n = strlen(buf);
		FUZZ_ASSERT(n <= size && n < sizeof(buf));
		/* (a NUL inside ends the assertion early, trailing CR/LF and all) */
		FUZZ_ASSERT(n == 0 || memchr(data, '\0', size) != NULL ||
			    (buf[n - 1] != '\n' && buf[n - 1] != '\r'));
		n = size < sizeof(buf) ? size : sizeof(buf);
		memcpy(buf, data, n);
		FUZZ_ASSERT(azauth_parse_assertion(buf, n, buf, sizeof(buf)) ==
			    (n == 0 ? -EACCES : 0));
	}
	return 0;
}
