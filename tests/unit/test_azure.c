/* tests/unit/test_azure.c — the pure parts of the Azure client: key URIs,
 * WWW-Authenticate challenges, error mapping (status + codes, never
 * messages), backoff bounds. The network paths are tested against the Key
 * Vault test server (tests/mount/t_cmk.sh). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/azauth.h"
#include "cmkfs/azerr.h"
#include "cmkfs/http.h"
#include "cmkfs/kv.h"
#include "../lib/tap.h"

static void uris(void)
{
	struct kv_uri u;
	static const char *const bad[] = {
		"http://v.vault.azure.net/keys/k/1",
		"https://v.vault.azure.net/keys/",
		"https://v.vault.azure.net/keys//",
		"https://v.vault.azure.net/keys/k//",
		"https://v.vault.azure.net/keys/k?x=1",
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
	/* versionless: the key's current version, followed */
	CHECK_RC(kv_parse_uri("https://v.vault.azure.net/keys/k", &u), 0);
	CHECK(strcmp(u.name, "k") == 0 && u.version[0] == '\0' &&
		      strcmp(u.vault, "https://v.vault.azure.net") == 0,
	      "versionless uri");
	CHECK_RC(kv_parse_uri("https://v.vault.azure.net/keys/k-2/", &u), 0);
	CHECK(strcmp(u.name, "k-2") == 0 && u.version[0] == '\0',
	      "versionless uri with a slash");
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

/* Real error bodies (shortened only where marked), as Azure sends them:
 * the firewall 403 from hashicorp/terraform-provider-azurerm#20742, the
 * expired secret from Azure-Samples/ms-identity-python-webapp#67 and
 * vcheckzen/FODI#23, the invalid secret from MicrosoftDocs/azure-docs
 * #33356, IMDS's from "How to use managed identities on a VM to acquire
 * an access token". The classifier must name each cause and sort it into
 * denial or transient as doc/KEYS.md "Azure events" says. */
static void classify(void)
{
	static const char fw[] =
		"{\"error\":{\"code\":\"Forbidden\",\"message\":\"Client address "
		"is not authorized and caller is not a trusted service.\\r\\n"
		"Client address: 203.0.113.7\\r\\nCaller: appid=...;oid=...;"
		"iss=https://sts.windows.net/.../\\r\\nVault: v;location=x\","
		"\"innererror\":{\"code\":\"ForbiddenByFirewall\"}}}";
	static const char pol[] =
		"{\"error\":{\"code\":\"Forbidden\",\"message\":\"The user, "
		"group or application 'appid=...;oid=...;iss=https://sts.windows."
		"net/.../' does not have keys get permission on key vault 'v;"
		"location=x'. For help resolving this issue, please see https://"
		"go.microsoft.com/fwlink/?linkid=2125287\",\"innererror\":"
		"{\"code\":\"ForbiddenByPolicy\"}}}";
	static const char rbac[] =
		"{\"error\":{\"code\":\"Forbidden\",\"message\":\"Caller is not "
		"authorized to perform action on resource.\",\"innererror\":"
		"{\"code\":\"ForbiddenByRbac\"}}}";
	static const char dis[] =
		"{\"error\":{\"code\":\"Forbidden\",\"message\":\"Operation "
		"unwrapKey is not allowed on a disabled key.\",\"innererror\":"
		"{\"code\":\"KeyDisabled\"}}}";
	static const char nf[] =
		"{\"error\":{\"code\":\"KeyNotFound\",\"message\":\"A key with "
		"(name/id) cmk was not found in this key vault. If you recently "
		"deleted this key you may be able to recover it using the correct "
		"recovery command. For help resolving this issue, please see "
		"https://go.microsoft.com/fwlink/?linkid=2125182\"}}";
	static const char thr[] =
		"{\"error\":{\"code\":\"Throttled\",\"message\":\"Request was "
		"not processed because too many requests were received.\"}}";
	static const char expired_secret[] =
		"{\"error\":\"invalid_client\",\"error_description\":"
		"\"AADSTS7000222: The provided client secret keys for app '...' "
		"are expired. Visit the Azure portal to create new keys for your "
		"app: https://aka.ms/NewClientSecret, or consider using "
		"certificate credentials for added security: https://aka.ms/"
		"certCreds.\\r\\nTrace ID: 8c95acf1-cc04-40a1-ad14-481862cf1801"
		"\\r\\nCorrelation ID: d65574ea-000b-4526-8595-ddaae8b4250d\\r\\n"
		"Timestamp: 2023-01-09 14:06:14Z\",\"error_codes\":[7000222],"
		"\"timestamp\":\"2023-01-09 14:06:14Z\",\"trace_id\":"
		"\"8c95acf1-cc04-40a1-ad14-481862cf1801\",\"correlation_id\":"
		"\"d65574ea-000b-4526-8595-ddaae8b4250d\",\"error_uri\":"
		"\"https://login.microsoftonline.com/error?code=7000222\"}";
	static const char bad_secret[] =
		"{\"error\":\"invalid_client\",\"error_description\":"
		"\"AADSTS7000215: Invalid client secret provided. Ensure the "
		"secret being sent in the request is the client secret value, not "
		"the client secret ID.\",\"error_codes\":[7000215]}";
	static const char no_app[] =
		"{\"error\":\"unauthorized_client\",\"error_description\":"
		"\"AADSTS700016: Application with identifier '...' was not found "
		"in the directory '...'.\",\"error_codes\":[700016]}";
	static const char busy[] =
		"{\"error\":\"temporarily_unavailable\",\"error_description\":"
		"\"AADSTS50196: ...\",\"error_codes\":[50196]}";
	static const char imds_id[] =
		"{\"error\":\"invalid_request\",\"error_description\":"
		"\"Identity not found\"}";
	static const struct {
		enum azerr_src src;
		long status;
		const char *body;
		int rc;
		enum azerr_cause cause;
		const char *code;
	} rows[] = {
		{ AZERR_SRC_KV, 200, "{}", 0, AZERR_NONE, "" },
		{ AZERR_SRC_KV, 403, fw, -EAGAIN, AZERR_FIREWALL,
		  "Forbidden/ForbiddenByFirewall" },
		{ AZERR_SRC_KV, 403, pol, -EKEYREVOKED, AZERR_PERMISSION,
		  "Forbidden/ForbiddenByPolicy" },
		{ AZERR_SRC_KV, 403, rbac, -EKEYREVOKED, AZERR_PERMISSION,
		  "Forbidden/ForbiddenByRbac" },
		{ AZERR_SRC_KV, 403, dis, -EKEYREVOKED, AZERR_DISABLED,
		  "Forbidden/KeyDisabled" },
		{ AZERR_SRC_KV, 404, nf, -EKEYREVOKED, AZERR_DELETED,
		  "KeyNotFound" },
		{ AZERR_SRC_KV, 429, thr, -EAGAIN, AZERR_THROTTLED, "Throttled" },
		{ AZERR_SRC_KV, 503, "<html>", -EAGAIN, AZERR_OUTAGE, "" },
		{ AZERR_SRC_KV, 401, "", -EKEYREVOKED, AZERR_PERMISSION, "" },
		{ AZERR_SRC_KV, 400, nf, -EPROTO, AZERR_PROTOCOL, "KeyNotFound" },
		{ AZERR_SRC_ENTRA, 401, expired_secret, -EACCES, AZERR_TOKEN,
		  "AADSTS7000222" },
		{ AZERR_SRC_ENTRA, 401, bad_secret, -EACCES, AZERR_TOKEN,
		  "AADSTS7000215" },
		{ AZERR_SRC_ENTRA, 400, no_app, -EACCES, AZERR_TOKEN,
		  "AADSTS700016" },
		{ AZERR_SRC_ENTRA, 503, busy, -EAGAIN, AZERR_OUTAGE,
		  "AADSTS50196" },
		{ AZERR_SRC_ENTRA, 400, busy, -EAGAIN, AZERR_OUTAGE,
		  "AADSTS50196" },
		{ AZERR_SRC_ENTRA, 429, "", -EAGAIN, AZERR_THROTTLED, "" },
		{ AZERR_SRC_ENTRA, 404, "", -EACCES, AZERR_TOKEN, "" },
		{ AZERR_SRC_IMDS, 404, "", -EAGAIN, AZERR_OUTAGE, "" },
		{ AZERR_SRC_IMDS, 410, "", -EAGAIN, AZERR_OUTAGE, "" },
		{ AZERR_SRC_ARC, 404, "", -EAGAIN, AZERR_OUTAGE, "" },
		{ AZERR_SRC_ARC, 503, "", -EAGAIN, AZERR_OUTAGE, "" },
		{ AZERR_SRC_ARC, 401, "", -EACCES, AZERR_TOKEN, "" },
		{ AZERR_SRC_IMDS, 429, "", -EAGAIN, AZERR_THROTTLED, "" },
		{ AZERR_SRC_IMDS, 500, "", -EAGAIN, AZERR_OUTAGE, "" },
		{ AZERR_SRC_IMDS, 400, imds_id, -EACCES, AZERR_TOKEN,
		  "invalid_request" },
		{ AZERR_SRC_APPSERVICE, 404, "", -EACCES, AZERR_TOKEN, "" },
	};
	struct azerr e;
	char tok[64], m[256], id[37], id2[37];
	time_t exp;

	for (size_t i = 0; i < CMK_ARRAY_LEN(rows); i++) {
		int rc = azerr_classify(rows[i].src, rows[i].status,
					rows[i].body, strlen(rows[i].body), &e);

		CHECK(rc == rows[i].rc && e.cause == rows[i].cause &&
			      e.status == rows[i].status &&
			      strcmp(e.code, rows[i].code) == 0 &&
			      azerr_is_denial(e.cause) ==
				      (rc == -EKEYREVOKED || rc == -EACCES ||
				       rc == -EKEYEXPIRED),
		      "row %zu (src %d, HTTP %ld): rc %d cause %s code '%s'", i,
		      rows[i].src, rows[i].status, rc,
		      azerr_cause_name(e.cause), e.code);
	}
	/* Key Vault's own mapping agrees and names the cause. */
	CHECK_RC(kv_map_error(403, fw, strlen(fw), m, sizeof(m)), -EAGAIN);
	CHECK(strcmp(m, "firewall: HTTP 403 (Forbidden/ForbiddenByFirewall)") ==
		      0,
	      "firewall message '%s'", m);
	/* The token reply parser classifies by endpoint: one IMDS 404 is
	 * an update in progress, not a refused identity. */
	CHECK_RC(azauth_parse_token_reply(AZERR_SRC_IMDS, 404, "", 0, 0, tok,
					  sizeof(tok), &exp, &e),
		 -EAGAIN);
	CHECK(e.cause == AZERR_OUTAGE, "IMDS 404 cause %s",
	      azerr_cause_name(e.cause));
	CHECK_RC(azauth_parse_token_reply(AZERR_SRC_ENTRA, 401, expired_secret,
					  strlen(expired_secret), 0, tok,
					  sizeof(tok), &exp, &e),
		 -EACCES);
	CHECK(e.cause == AZERR_TOKEN && strcmp(e.code, "AADSTS7000222") == 0,
	      "expired secret: %s %s", azerr_cause_name(e.cause), e.code);
	/* A code from a hostile body cannot forge an audit or log line. */
	static const char evil[] =
		"{\"error\":{\"code\":\"a\\n{\\\"event\\\":1}\"}}";

	CHECK_RC(azerr_classify(AZERR_SRC_KV, 500, evil, strlen(evil), &e),
		 -EAGAIN);
	CHECK(strpbrk(e.code, "\n\"\\") == NULL, "code '%s'", e.code);
	/* Request ids: UUID v4, fresh each time. */
	CHECK_RC(azerr_new_request_id(id), 0);
	CHECK_RC(azerr_new_request_id(id2), 0);
	CHECK(strlen(id) == 36 && id[8] == '-' && id[13] == '-' &&
		      id[14] == '4' && strchr("89ab", id[19]) != NULL &&
		      id[23] == '-' && strcmp(id, id2) != 0,
	      "request ids %s %s", id, id2);
	/* The thread's last result starts empty after a reset. */
	e.cause = AZERR_DISABLED;
	azerr_set(&e);
	azerr_reset();
	CHECK(azerr_last()->cause == AZERR_NONE &&
		      strcmp(kv_last_error(), "no error") == 0,
	      "reset");
}

/* x-ms-request-id is read from the reply's headers, safely. */
static void headers(void)
{
	struct http_resp rs;
	static const char h[] = "x-ms-request-id: 5f1c2b3a-0000-4000-8000-"
				"00000000abcd\r\n";
	static const char evil[] = "X-MS-Request-Id: a\"b\\c d\r\n";

	memset(&rs, 0, sizeof(rs));
	http_parse_header(h, strlen(h), &rs);
	CHECK(strcmp(rs.request_id, "5f1c2b3a-0000-4000-8000-00000000abcd") == 0,
	      "request id '%s'", rs.request_id);
	http_parse_header(evil, strlen(evil), &rs);
	CHECK(strcmp(rs.request_id, "abcd") == 0, "hostile id '%s'",
	      rs.request_id);
}

/* Azure Arc's challenge names the key file; only a .key file directly in
 * the agent's token directory is read (MSAL's AzureArc checks). */
static void arc_challenges(void)
{
	static const struct {
		const char *hdr;
		int rc;
	} rows[] = {
		{ "Basic realm=/var/opt/azcmagent/tokens/a1b2.key", 0 },
		{ "basic realm=/var/opt/azcmagent/tokens/x.key", 0 },
		{ "Basic realm=/var/opt/azcmagent/tokens/a1b2.txt", -EACCES },
		{ "Basic realm=/var/opt/azcmagent/tokens/.key", -EACCES },
		{ "Basic realm=/var/opt/azcmagent/tokens/sub/a.key", -EACCES },
		{ "Basic realm=/var/opt/azcmagent/tokens/../../../etc/x.key",
		  -EACCES },
		{ "Basic realm=/etc/ssl/private/server.key", -EACCES },
		{ "Basic realm=/var/opt/azcmagent/tokensX/a.key", -EACCES },
		{ "Basic realm=a.key", -EACCES },
		{ "Basic realm=", -EPROTO },
		{ "Bearer realm=/var/opt/azcmagent/tokens/a.key", -EPROTO },
		{ "Basic realm=/var/opt/azcmagent/tokens/a.key\r\nX: y",
		  -EPROTO },
		{ "", -EPROTO },
	};
	char path[1024];

	for (size_t i = 0; i < CMK_ARRAY_LEN(rows); i++) {
		int rc = azauth_parse_arc_challenge(rows[i].hdr,
						    AZAUTH_ARC_TOKEN_DIR, path,
						    sizeof(path));

		CHECK(rc == rows[i].rc, "arc challenge '%s': %d, want %d",
		      rows[i].hdr, rc, rows[i].rc);
		if (rc == 0)
			CHECK(strcmp(path, rows[i].hdr + 12) == 0, "path '%s'",
			      path);
	}
}

/* IDENTITY_ENDPOINT + IMDS_ENDPOINT (no IDENTITY_HEADER) is Azure Arc, as
 * in MSAL and azure-identity; IDENTITY_HEADER makes it App Service. The
 * test-only token directory must be private to this user. */
static void arc_select(void)
{
	char dir[] = "/tmp/cmkfs-arc-XXXXXX";
	struct http_opts o;
	struct azauth *a = NULL;
	int rc;

	http_opts_default(&o);
	unsetenv("AZURE_CLIENT_SECRET");
	unsetenv("AZURE_CLIENT_CERTIFICATE_PATH");
	unsetenv("AZURE_FEDERATED_TOKEN_FILE");
	unsetenv("AZURE_CLIENT_ID");
	unsetenv("CMKFS_TEST_ARC_TOKEN_DIR");
	setenv("IDENTITY_ENDPOINT",
	       "http://localhost:40342/metadata/identity/oauth2/token", 1);
	setenv("IMDS_ENDPOINT", "http://localhost:40342", 1);
	rc = azauth_new(&o, &a);
	CHECK(rc == 0 && azauth_kind(a) == AUTH_MANAGED_IDENTITY_ARC &&
		      strcmp(azauth_kind_name(azauth_kind(a)),
			     "managed_identity_arc") == 0,
	      "Arc selected (%d)", rc);
	CHECK(rc == 0 && azauth_tenant_allowed(a, "any-tenant"),
	      "Arc takes the challenge's tenant");
	azauth_free(a);
	a = NULL;
	setenv("IDENTITY_HEADER", "h", 1);
	rc = azauth_new(&o, &a);
	CHECK(rc == 0 && azauth_kind(a) == AUTH_MANAGED_IDENTITY_APPSERVICE,
	      "IDENTITY_HEADER means App Service (%d)", rc);
	azauth_free(a);
	a = NULL;
	unsetenv("IDENTITY_HEADER");
	setenv("AZURE_CLIENT_ID", "user-assigned", 1);
	CHECK(azauth_new(&o, &a) == -EINVAL, "Arc with AZURE_CLIENT_ID");
	unsetenv("AZURE_CLIENT_ID");
	if (mkdtemp(dir) == NULL) {
		CHECK(0, "mkdtemp");
		return;
	}
	setenv("CMKFS_TEST_ARC_TOKEN_DIR", dir, 1);
	CHECK(azauth_new(&o, &a) == 0, "private test token directory");
	azauth_free(a);
	a = NULL;
	CHECK(chmod(dir, 0755) == 0, "chmod");
	CHECK(azauth_new(&o, &a) == -EPERM,
	      "a test token directory others can read is refused");
	setenv("CMKFS_TEST_ARC_TOKEN_DIR", "relative", 1);
	CHECK(azauth_new(&o, &a) == -EPERM, "a relative directory");
	rmdir(dir);
	unsetenv("CMKFS_TEST_ARC_TOKEN_DIR");
	unsetenv("IDENTITY_ENDPOINT");
	unsetenv("IMDS_ENDPOINT");
}

/* AZURE_CLIENT_CERTIFICATE_PASSWORD is a secret like AZURE_CLIENT_SECRET:
 * seen, then wiped from the environment. */
static void scrub(void)
{
	unsetenv("AZURE_CLIENT_SECRET");
	unsetenv("IDENTITY_HEADER");
	setenv("AZURE_CLIENT_CERTIFICATE_PASSWORD", "pfx-pass", 1);
	CHECK(azauth_env_has_secret(), "certificate password is a secret");
	azauth_scrub_env();
	CHECK(getenv("AZURE_CLIENT_CERTIFICATE_PASSWORD") == NULL,
	      "certificate password scrubbed");
}

/* An oct-HSM key wraps with the AES-KW of its size. */
static void oct_sizes(void)
{
	static const struct {
		const char *jwk;
		const char *alg;
	} rows[] = {
		{ "\"kty\":\"oct-HSM\",\"key_size\":128", "A128KW" },
		{ "\"kty\":\"oct-HSM\",\"key_size\":192", "A192KW" },
		{ "\"kty\":\"oct-HSM\",\"key_size\":256", "A256KW" },
		{ "\"kty\":\"oct-HSM\"", "A256KW" },
		{ "\"kty\":\"oct-HSM\",\"key_size\":512", "A256KW" },
		{ "\"kty\":\"RSA-HSM\",\"key_size\":128", "RSA-OAEP-256" },
	};
	char body[512];
	struct kv_key k;

	for (size_t i = 0; i < CMK_ARRAY_LEN(rows); i++) {
		snprintf(body, sizeof(body),
			 "{\"key\":{\"kid\":\"https://h.managedhsm.azure.net/"
			 "keys/k/1\",%s,\"key_ops\":[\"wrapKey\"]},"
			 "\"attributes\":{\"enabled\":true}}",
			 rows[i].jwk);
		CHECK(kv_parse_key_reply(body, strlen(body), &k) == 0 &&
			      strcmp(kv_key_alg(&k), rows[i].alg) == 0,
		      "%s: %s, want %s", rows[i].jwk, kv_key_alg(&k),
		      rows[i].alg);
	}
	snprintf(body, sizeof(body), "%s",
		 "{\"key\":{\"kid\":\"x\",\"kty\":\"oct-HSM\",\"key_size\":"
		 "\"x\"},\"attributes\":{\"enabled\":true}}");
	CHECK(kv_parse_key_reply(body, strlen(body), &k) == -EPROTO,
	      "key_size not a number");
}

int main(void)
{
	oct_sizes();
	uris();
	arc_challenges();
	arc_select();
	scrub();
	tenants();
	challenges();
	errors();
	classify();
	headers();
	retry_after();
	return t_done("test_azure");
}
