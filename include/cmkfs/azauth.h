/* include/cmkfs/azauth.h — Entra ID credentials as the Azure SDKs take them
 * (DefaultAzureCredential order and environment variable names):
 *   1. client secret:      AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET
 *   2. client certificate: AZURE_TENANT_ID, AZURE_CLIENT_ID,
 *                          AZURE_CLIENT_CERTIFICATE_PATH (PEM key + cert,
 *                          or PKCS#12/PFX), AZURE_CLIENT_CERTIFICATE_PASSWORD
 *                          if the key or the PFX is encrypted
 *   3. workload identity:  AZURE_TENANT_ID, AZURE_CLIENT_ID,
 *                          AZURE_FEDERATED_TOKEN_FILE
 *   4. managed identity:   IDENTITY_ENDPOINT + IDENTITY_HEADER (App
 *                          Service), else IDENTITY_ENDPOINT + IMDS_ENDPOINT
 *                          (Azure Arc: 401 "Basic realm=<file>" challenge,
 *                          the file read from AZAUTH_ARC_TOKEN_DIR and sent
 *                          back as Authorization: Basic; system-assigned
 *                          identity only), else IMDS at 169.254.169.254
 *                          (AZURE_POD_IDENTITY_AUTHORITY_HOST overrides);
 *                          AZURE_CLIENT_ID picks a user-assigned identity.
 * AZURE_AUTHORITY_HOST replaces https://login.microsoftonline.com.
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS: tenants other than AZURE_TENANT_ID a
 * vault's challenge may name (";"-separated, "*" = any).
 * Tokens are cached in secret memory per (tenant, scope) (the last four)
 * and refreshed five
 * minutes before they expire; they are never logged. Thread-safe. */
#ifndef CMKFS_AZAUTH_H
#define CMKFS_AZAUTH_H

#include <time.h>

#include "cmkfs/azerr.h"
#include "cmkfs/common.h"
#include "cmkfs/http.h"

#define AUTH_TOKEN_MAX 8192

enum auth_kind {
	AUTH_CLIENT_SECRET,
	AUTH_CLIENT_CERT,
	AUTH_WORKLOAD_IDENTITY,
	AUTH_MANAGED_IDENTITY_APPSERVICE,
	AUTH_MANAGED_IDENTITY_IMDS,
	AUTH_MANAGED_IDENTITY_ARC,
};

/* Where the Azure Connected Machine agent writes its challenge files on
 * Linux; a realm naming any other file is refused (as MSAL's AzureArc
 * source does). CMKFS_TEST_ARC_TOKEN_DIR replaces it for the test suite
 * only: it is honoured only for a directory owned by the effective user
 * and closed to group and others (a test's private tmpdir), and every use
 * is logged as a warning. */
#define AZAUTH_ARC_TOKEN_DIR "/var/opt/azcmagent/tokens/"
/* MSAL's AZURE_ARC_SECRET_FILE_MAX_SIZE_BYTES */
#define AZAUTH_ARC_SECRET_MAX 4096

struct azauth;

/* Pick the credential from the environment. Errors: -EINVAL (incomplete
 * settings, e.g. AZURE_CLIENT_ID without a secret or certificate path is
 * taken as managed identity; a secret without a tenant is -EINVAL). */
CMK_MUST_CHECK int azauth_new(const struct http_opts *o, struct azauth **out);
void azauth_free(struct azauth *a);	/* NULL-safe, wipes */
enum auth_kind azauth_kind(const struct azauth *a);
/* The notAfter of the client certificate (Unix time), 0 for any other
 * credential: it stops working then, so callers warn ahead. */
int64_t azauth_cert_not_after(const struct azauth *a);
const char *azauth_kind_name(enum auth_kind k);

/* A bearer token for `scope` ("https://vault.azure.net/.default"); tenant
 * from the challenge or NULL for the configured one. Copies the token into
 * out (caller wipes). Every request sends a fresh x-ms-client-request-id;
 * a failure is recorded as the thread's azerr_last() with both ids.
 * Errors: -EACCES (credential refused), -EAGAIN, -ETIMEDOUT (transient),
 * -EPROTO (hostile reply). */
CMK_MUST_CHECK int azauth_token(struct azauth *a, const char *tenant,
				const char *scope, char *out, size_t cap);
/* Forget every cached token (a lock). */
void azauth_drop(struct azauth *a);
/* Forget the token of (tenant, scope) (a 401 with it). */
void azauth_drop_scope(struct azauth *a, const char *tenant,
		       const char *scope);
/* May this credential get a token of `tenant` (a challenge's)? As the
 * Azure SDKs (azure-identity additionallyAllowedTenants): yes for the
 * configured AZURE_TENANT_ID, for one listed in
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS (";"-separated, "*" = any), for any
 * when no tenant is configured, and for a managed identity. Pure. */
bool azauth_tenant_allowed(const struct azauth *a, const char *tenant);
/* Does the environment hold a credential secret (AZURE_CLIENT_SECRET,
 * AZURE_CLIENT_CERTIFICATE_PASSWORD, IDENTITY_HEADER)? */
bool azauth_env_has_secret(void);
/* Overwrite the values of those variables in place and unset them, once
 * azauth_new() has copied them into secret memory: /proc/PID/environ
 * shows a process's initial environment for its whole life. Uses getenv()
 * and unsetenv(): call before starting threads. */
void azauth_scrub_env(void);

/* Parse a WWW-Authenticate Bearer challenge into tenant and scope
 * ("<resource>/.default"). Errors: -EPROTO. Pure. */
CMK_MUST_CHECK int azauth_parse_challenge(const char *hdr, char *tenant,
					  size_t tcap, char *scope,
					  size_t scap, char *resource,
					  size_t rcap);

/* A token endpoint's reply (Entra ID v2.0, IMDS or App Service: expires_on
 * as a number or a string of digits, else expires_in) from `src`: the
 * status and error body first (azerr_classify(); err, if not NULL, gets
 * cause, status and code, AADSTS number included), then access_token
 * (non-empty, under cap and AUTH_TOKEN_MAX, no whitespace or quote: it
 * goes into a header) into tok (caller wipes) and its expiry, `now` based,
 * into *exp. tok is untouched on error.
 * Errors: -EACCES (the credential was refused), -EAGAIN (transient: 429,
 * 5xx, IMDS 404/410), -EPROTO (other status, hostile or malformed body). */
CMK_MUST_CHECK int azauth_parse_token_reply(enum azerr_src src, long status,
					    const char *body, size_t len,
					    time_t now, char *tok, size_t cap,
					    time_t *exp, struct azerr *err);
/* The client assertion of a workload identity from the federated token
 * file's len bytes (trailing CR/LF dropped, at most cap - 1 bytes kept) into
 * NUL-terminated out; raw and out may be the same buffer.
 * Errors: -EACCES (empty file). Pure. */
CMK_MUST_CHECK int azauth_parse_assertion(const char *raw, size_t len,
					  char *out, size_t cap);
/* The secret file an Azure Arc identity endpoint's 401 challenge names
 * ("Basic realm=<path>", as WWW-Authenticate) into path: a file directly
 * in `dir` (which ends in '/') whose name ends in ".key" and holds no '/'
 * (MSAL's AzureArc checks: extension, then dir + basename == path).
 * Errors: -EPROTO (not a Basic realm challenge), -EACCES (a path outside
 * the agent's token directory or not a .key file). Pure. */
CMK_MUST_CHECK int azauth_parse_arc_challenge(const char *hdr,
					      const char *dir, char *path,
					      size_t cap);

#endif
