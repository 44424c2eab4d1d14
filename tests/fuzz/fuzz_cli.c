/* tests/fuzz/fuzz_cli.c — what the command line hands to the library:
 * transient TTLs ("90m", "24h"), volume paths of transient zones, and Key
 * Vault key URIs. Whatever is accepted must be canonical: parsing the
 * normalised form again gives the same result. */
#include <stdio.h>
#include <string.h>

#include "cmkfs/kv.h"
#include "cmkfs/transient.h"
#include "fuzz.h"

static void ttl(const char *s)
{
	char again[32];
	long sec = -1, sec2 = -1;

	if (transient_parse_ttl(s, &sec) != 0)
		return;
	FUZZ_ASSERT(sec >= 1 && sec <= TRANSIENT_TTL_MAX);
	snprintf(again, sizeof(again), "%lds", sec);
	FUZZ_ASSERT(transient_parse_ttl(again, &sec2) == 0 && sec2 == sec);
}

static void zone_path(const char *s)
{
	static const struct tzone z[] = { { "/relay", 60 }, { "/relay/in", 60 },
					  { "/a/b", 60 } };
	char out[1024], again[1024];
	int i;

	if (transient_norm_path(s, out, sizeof(out)) != 0)
		return;
	FUZZ_ASSERT(out[0] == '/' && out[strlen(out) - 1] != '/' &&
		    strstr(out, "//") == NULL && strstr(out, "/./") == NULL &&
		    strstr(out, "/../") == NULL);
	FUZZ_ASSERT(transient_norm_path(out, again, sizeof(again)) == 0 &&
		    strcmp(out, again) == 0);
	i = transient_zone_of(z, sizeof(z) / sizeof(z[0]), out);
	FUZZ_ASSERT(i < 0 || (i < 3 && strncmp(out, z[i].path,
					       strlen(z[i].path)) == 0));
	FUZZ_ASSERT(i != 1);	/* "/relay" is outermost */
}

static void key_uri(const char *s)
{
	static struct kv_uri u, u2;
	char again[KV_URI_MAX + 64];

	if (kv_parse_uri(s, &u) != 0)
		return;
	FUZZ_ASSERT(strncmp(u.vault, "https://", 8) == 0 && u.host[0] != '\0' &&
		    u.name[0] != '\0');
	/* versionless (the key's current version) or with a version */
	snprintf(again, sizeof(again), "%s/keys/%s%s%s", u.vault, u.name,
		 u.version[0] ? "/" : "", u.version);
	FUZZ_ASSERT(kv_parse_uri(again, &u2) == 0 &&
		    strcmp(u.vault, u2.vault) == 0 &&
		    strcmp(u.host, u2.host) == 0 &&
		    strcmp(u.name, u2.name) == 0 &&
		    strcmp(u.version, u2.version) == 0 && u.hsm == u2.hsm);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char s[2048];
	size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;

	memcpy(s, data, n);
	s[n] = '\0';
	ttl(s);
	zone_path(s);
	key_uri(s);
	return 0;
}
