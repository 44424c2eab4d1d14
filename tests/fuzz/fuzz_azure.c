/* tests/fuzz/fuzz_azure.c — Key Vault error replies (status from the first
 * two bytes), response header lines (WWW-Authenticate, Retry-After,
 * x-ms-request-id) and
 * the challenges they carry, and key URIs. */
#include <string.h>

#include "cmkfs/azauth.h"
#include "cmkfs/http.h"
#include "cmkfs/kv.h"
#include "fuzz.h"

static void challenge(const char *text)
{
	char t[128], s[512], r[512];

	if (azauth_parse_challenge(text, t, sizeof(t), s, sizeof(s), r,
				   sizeof(r)) == 0)
		FUZZ_ASSERT(strncmp(r, "https://", 8) == 0 && t[0] != '\0' &&
			    strpbrk(t, "/?#&") == NULL && s[0] != '\0');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct http_resp rs;
	char text[4096], msg[256];
	struct kv_uri u;
	size_t n;
	int rc;

	if (size < 2)
		return 0;
	long status = 100 + (data[0] << 8 | data[1]) % 500;

	rc = kv_map_error(status, (const char *)data + 2, size - 2, msg,
			  sizeof(msg));
	FUZZ_ASSERT((rc < 0) == (status != 200) && strchr(msg, '\n') == NULL);
	n = size - 2 < sizeof(text) - 1 ? size - 2 : sizeof(text) - 1;
	memcpy(text, data + 2, n);
	text[n] = '\0';
	challenge(text);
	if (kv_parse_uri(text, &u) == 0)	/* version "": versionless */
		FUZZ_ASSERT(strncmp(u.vault, "https://", 8) == 0 &&
			    u.name[0] != '\0');
	/* The raw bytes as a header line, as libcurl hands them over. */
	memset(&rs, 0, sizeof(rs));
	rs.retry_after_sec = -1;
	http_parse_header((const char *)data + 2, size - 2, &rs);
	FUZZ_ASSERT(strlen(rs.www_authenticate) < sizeof(rs.www_authenticate) &&
		    rs.retry_after_sec >= -1 &&
		    strlen(rs.request_id) < sizeof(rs.request_id));
	/* the request id goes into audit lines as it is */
	for (const char *p = rs.request_id; *p; p++)
		FUZZ_ASSERT(*p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\');
	if (rs.retry_after_sec >= 0)
		FUZZ_ASSERT(http_backoff_ms(1, rs.retry_after_sec) <=
			    HTTP_WAIT_MAX_SEC * 1000);
	if (rs.www_authenticate[0] != '\0')
		challenge(rs.www_authenticate);
	return 0;
}
