/* tests/unit/test_azure.c — the pure parts of the Azure client: key URIs,
 * WWW-Authenticate challenges, error mapping (status + codes, never
 * messages), backoff bounds. The network paths are tested against the Key
 * Vault test server (tests/mount/t_cmk.sh). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmkfs/azauth.h"
#include "cmkfs/http.h"
#include "cmkfs/kv.h"
#include "../lib/tap.h"

static void uris(void)
{
	struct kv_uri u;
	static const char *const bad[] = {
		"http://v.vault.azure.net/keys/k/1",
		"https://v.vault.azure.net/keys/k",
		"https://v.vault.azure.net/keys/k/",
		"https://v.vault.azure.net/secrets/k/1",
		"https://v.vault.azure.net/keys/k/1/extra",
		"https://v.vault.azure.net/keys/k/1?x=1",
		"https://v.vault.azure.net/keys/k/1#f",
		"https://user@v.vault.azure.net/keys/k/1",
		"https:///keys/k/1",
		"https://v.vault.azure.net/keys/k_x/1",
		"https://v.vault.azure.net/keys//1",
		"",
	};

	CHECK_RC(kv_parse_uri("https://myvault.vault.azure.net/keys/cmk/"
			      "0123456789abcdef0123456789abcdef",
			      &u),
		 0);
	CHECK(strcmp(u.vault, "https://myvault.vault.azure.net") == 0 &&
		      strcmp(u.host, "myvault.vault.azure.net") == 0 &&
		      strcmp(u.name, "cmk") == 0 &&
		      strcmp(u.version, "0123456789abcdef0123456789abcdef") == 0 &&
		      !u.hsm,
	      "vault uri");
	CHECK_RC(kv_parse_uri("https://h.managedhsm.azure.net/keys/k-1/v2", &u),
		 0);
	CHECK(u.hsm && strcmp(u.name, "k-1") == 0, "hsm uri");
	CHECK_RC(kv_parse_uri("https://127.0.0.1:8443/keys/k/v/", &u), 0);
	CHECK(strcmp(u.vault, "https://127.0.0.1:8443") == 0 &&
		      strcmp(u.host, "127.0.0.1") == 0,
	      "port kept in vault, not host");
	for (size_t i = 0; i < CMK_ARRAY_LEN(bad); i++)
		CHECK(kv_parse_uri(bad[i], &u) == -EINVAL, "accepted %s", bad[i]);
	CHECK(strcmp(kv_alg_for("RSA-HSM"), "RSA-OAEP-256") == 0 &&
		      strcmp(kv_alg_for("oct-HSM"), "A256KW") == 0 &&
		      kv_alg_for("EC") == NULL,
	      "algorithms");
}

static void challenges(void)
{
	char t[128], s[512], r[512];

	CHECK_RC(azauth_parse_challenge(
			 "Bearer authorization=\"https://login.microsoftonline.com/"
			 "72f988bf-86f1-41af-91ab-2d7cd011db47\", "
			 "resource=\"https://vault.azure.net\"",
			 t, sizeof(t), s, sizeof(s), r, sizeof(r)),
		 0);
	CHECK(strcmp(t, "72f988bf-86f1-41af-91ab-2d7cd011db47") == 0 &&
		      strcmp(s, "https://vault.azure.net/.default") == 0 &&
		      strcmp(r, "https://vault.azure.net") == 0,
	      "vault challenge: %s %s", t, s);
	CHECK_RC(azauth_parse_challenge(
			 "Bearer authorization=\"https://login.microsoftonline.com/"
			 "tid\", scope=\"https://managedhsm.azure.net/.default\"",
			 t, sizeof(t), s, sizeof(s), r, sizeof(r)),
		 0);
	CHECK(strcmp(s, "https://managedhsm.azure.net/.default") == 0 &&
		      strcmp(r, "https://managedhsm.azure.net") == 0,
	      "scope form");
	static const char *const bad[] = {
		"Basic realm=\"x\"",
		"Bearer resource=\"https://vault.azure.net\"",
		"Bearer authorization=\"https://login/t\"",
		"Bearer authorization=\"http://login/t\", resource=\"https://v\"",
		"Bearer authorization=\"https://login/t\", resource=\"http://v\"",
		"Bearer authorization=https://login/t",
		"Bearer authorization=\"https://login/t?x\", resource=\"https://v\"",
		"Bearer authorization=\"https://login/",
	};
	for (size_t i = 0; i < CMK_ARRAY_LEN(bad); i++)
		CHECK(azauth_parse_challenge(bad[i], t, sizeof(t), s, sizeof(s),
					     r, sizeof(r)) == -EPROTO,
		      "accepted %s", bad[i]);
}

static void errors(void)
{
	char m[256];
	const char *dis = "{\"error\":{\"code\":\"Forbidden\",\"message\":"
			  "\"Operation unwrapKey is not allowed on a disabled "
			  "key.\",\"innererror\":{\"code\":\"KeyDisabled\"}}}";
	const char *pol = "{\"error\":{\"code\":\"Forbidden\",\"message\":"
			  "\"KeyNotFound lies in the message\",\"innererror\":"
			  "{\"code\":\"ForbiddenByPolicy\"}}}";
	const char *exp = "{\"error\":{\"code\":\"Forbidden\",\"innererror\":"
			  "{\"code\":\"KeyExpired\"}}}";
	const char *nf = "{\"error\":{\"code\":\"KeyNotFound\"}}";

	CHECK_RC(kv_map_error(403, dis, strlen(dis), m, sizeof(m)), -EKEYREVOKED);
	CHECK(strstr(m, "KeyDisabled") != NULL, "message %s", m);
	CHECK_RC(kv_map_error(403, pol, strlen(pol), m, sizeof(m)), -EKEYREVOKED);
	CHECK_RC(kv_map_error(403, exp, strlen(exp), m, sizeof(m)), -EKEYEXPIRED);
	CHECK_RC(kv_map_error(404, nf, strlen(nf), m, sizeof(m)), -EKEYREVOKED);
	CHECK_RC(kv_map_error(401, "", 0, m, sizeof(m)), -EKEYREVOKED);
	CHECK_RC(kv_map_error(429, "", 0, m, sizeof(m)), -EAGAIN);
	CHECK_RC(kv_map_error(503, "<html>", 6, m, sizeof(m)), -EAGAIN);
	CHECK_RC(kv_map_error(400, nf, strlen(nf), m, sizeof(m)), -EPROTO);
	CHECK_RC(kv_map_error(302, "", 0, m, sizeof(m)), -EPROTO);
	/* a hostile code cannot forge a log line */
	const char *evil = "{\"error\":{\"code\":\"a\\nERROR fake\"}}";

	(void)kv_map_error(500, evil, strlen(evil), m, sizeof(m));
	CHECK(strchr(m, '\n') == NULL, "newline in message");
	CHECK(http_transient(0, 429) && http_transient(0, 500) &&
		      http_transient(0, 408) && !http_transient(0, 403) &&
		      !http_transient(0, 404) && http_transient(-ETIMEDOUT, 0) &&
		      !http_transient(-EPROTO, 0),
	      "transient classes");
	for (int n = 1; n < 20; n++) {
		long b = http_backoff_ms(n, -1);

		CHECK(b >= 500 && b <= 32000, "backoff %d = %ld", n, b);
	}
	CHECK(http_backoff_ms(1, 3) == 3000, "Retry-After honoured");
	CHECK(http_backoff_ms(1, 90) == 90000,
	      "Retry-After over 60 s honoured (the caller's budget judges)");
	CHECK(http_backoff_ms(1, 10000000) == HTTP_WAIT_MAX_SEC * 1000,
	      "Retry-After capped at a day");
}

/* Retry-After is delay-seconds or an HTTP-date (RFC 9110 §10.2.3). */
static void retry_after(void)
{
	const time_t now = 784111777;	/* Sun, 06 Nov 1994 08:49:37 GMT */
	static const struct {
		const char *v;
		int rc;
		long sec;
	} rows[] = {
		{ "120", 0, 120 },
		{ " 7 \r\n", 0, 7 },
		{ "0", 0, 0 },
		{ "Sun, 06 Nov 1994 08:51:37 GMT", 0, 120 },
		{ "Sun, 06 Nov 1994 08:49:37 GMT", 0, 0 },
		{ "Sat, 05 Nov 1994 08:49:37 GMT", 0, 0 },	/* passed */
		{ "Mon, 07 Nov 1994 08:49:37 GMT\r\n", 0, 86400 },
		{ "-5", -EINVAL, 0 },
		{ "12abc", -EINVAL, 0 },
		{ "Sun, 06 Nov 1994 08:51:37", -EINVAL, 0 },
		{ "Sunday, 06-Nov-94 08:49:37 GMT", -EINVAL, 0 },
		{ "", -EINVAL, 0 },
	};
	struct http_resp rs;
	long sec;

	for (size_t i = 0; i < CMK_ARRAY_LEN(rows); i++) {
		sec = -1;
		int rc = http_retry_after_parse(rows[i].v, now, &sec);

		CHECK(rc == rows[i].rc && (rc < 0 || sec == rows[i].sec),
		      "Retry-After '%s': rc %d sec %ld", rows[i].v, rc, sec);
	}
	memset(&rs, 0, sizeof(rs));
	rs.retry_after_sec = -1;
	http_parse_header("Retry-After: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
			  44, &rs);
	CHECK(rs.retry_after_sec == 0, "header with a past date: %ld",
	      rs.retry_after_sec);
}

/* azure-identity's rule for a challenge's tenant: the configured one,
 * one listed in AZURE_ADDITIONALLY_ALLOWED_TENANTS, any with "*", any when
 * none is configured or the credential is a managed identity. */
static void tenants(void)
{
	static const struct {
		const char *tenant, *allowed, *asked;
		bool ok;
	} rows[] = {
		{ "t-home", NULL, "t-home", true },
		{ "t-home", NULL, "T-HOME", true },
		{ "t-home", NULL, "t-other", false },
		{ "t-home", "", "t-other", false },
		{ "t-home", "t-a;t-other", "t-other", true },
		{ "t-home", " t-a ; t-other ", "t-other", true },
		{ "t-home", "t-a;t-othe", "t-other", false },
		{ "t-home", "t-a;t-other-x", "t-other", false },
		{ "t-home", "*", "t-other", true },
		{ "t-home", "t-a;*", "anything", true },
		{ NULL, NULL, "t-other", true },	/* no tenant configured */
	};
	struct http_opts o;
	struct azauth *a;

	http_opts_default(&o);
	unsetenv("AZURE_CLIENT_CERTIFICATE_PATH");
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	unsetenv("IDENTITY_ENDPOINT");
	for (size_t i = 0; i < CMK_ARRAY_LEN(rows); i++) {
		if (rows[i].tenant != NULL) {
			setenv("AZURE_TENANT_ID", rows[i].tenant, 1);
			setenv("AZURE_CLIENT_SECRET", "test-secret", 1);
		} else {	/* a managed identity has no tenant */
			unsetenv("AZURE_TENANT_ID");
			unsetenv("AZURE_CLIENT_SECRET");
		}
		setenv("AZURE_CLIENT_ID", "app", 1);
		if (rows[i].allowed != NULL)
			setenv("AZURE_ADDITIONALLY_ALLOWED_TENANTS",
			       rows[i].allowed, 1);
		else
			unsetenv("AZURE_ADDITIONALLY_ALLOWED_TENANTS");
		if (azauth_new(&o, &a) != 0) {
			CHECK(0, "azauth_new row %zu", i);
			continue;
		}
		CHECK(azauth_tenant_allowed(a, rows[i].asked) == rows[i].ok,
		      "tenant %s, allowed '%s', asked %s: want %s",
		      rows[i].tenant ? rows[i].tenant : "(none)",
		      rows[i].allowed ? rows[i].allowed : "(unset)",
		      rows[i].asked, rows[i].ok ? "allowed" : "refused");
		azauth_free(a);
	}
}

int main(void)
{
	uris();
	tenants();
	challenges();
	errors();
	retry_after();
	return t_done("test_azure");
}
