/* src/azure/kv.c — Key Vault REST: paths, api-version, bodies, errors.
 * Microsoft Learn "Azure Key Vault REST API reference" (Keys: Get Key, Wrap
 * Key, Unwrap Key) and "Azure Key Vault authentication" (the challenge). */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cmkfs/azerr.h"
#include "cmkfs/b64.h"
#include "cmkfs/json.h"
#include "cmkfs/kv.h"
#include "cmkfs/log.h"
#include "cmkfs/secmem.h"

/* What a vault's 401 challenge said, per vault origin: a token is only
 * ever sent to the host whose challenge asked for its audience, and a
 * vault and a Managed HSM used by one process each keep their own. */
#define KV_VAULTS 8

struct kv_challenge {
	char vault[600];	/* https://host[:port]; "" = free */
	char tenant[128];
	char scope[512];
	unsigned long used;	/* for replacing the least recently used */
};

struct kv {
	pthread_mutex_t mtx;
	struct http_opts http;
	struct azauth *auth;
	struct kv_challenge ch[KV_VAULTS];	/* protected by mtx */
	unsigned long tick;			/* protected by mtx */
};

/* The challenge learnt from u's vault into tenant and scope; false if
 * none yet. Caller holds kv->mtx. */
static bool challenge_get(struct kv *kv, const struct kv_uri *u, char *tenant,
			  size_t tcap, char *scope, size_t scap)
{
	for (int i = 0; i < KV_VAULTS; i++) {
		if (strcmp(kv->ch[i].vault, u->vault) == 0) {
			kv->ch[i].used = ++kv->tick;
			snprintf(tenant, tcap, "%s", kv->ch[i].tenant);
			snprintf(scope, scap, "%s", kv->ch[i].scope);
			return true;
		}
	}
	return false;
}

/* Caller holds kv->mtx. */
static void challenge_set(struct kv *kv, const struct kv_uri *u,
			  const char *tenant, const char *scope)
{
	int pick = 0;

	for (int i = 0; i < KV_VAULTS; i++) {
		if (strcmp(kv->ch[i].vault, u->vault) == 0) {
			pick = i;
			break;
		}
		if (kv->ch[i].used < kv->ch[pick].used)
			pick = i;
	}
	snprintf(kv->ch[pick].vault, sizeof(kv->ch[pick].vault), "%s",
		 u->vault);
	snprintf(kv->ch[pick].tenant, sizeof(kv->ch[pick].tenant), "%s",
		 tenant);
	snprintf(kv->ch[pick].scope, sizeof(kv->ch[pick].scope), "%s", scope);
	kv->ch[pick].used = ++kv->tick;
}

static __thread char last_err[256];

const char *kv_last_error(void)
{
	return last_err[0] ? last_err : "no error";
}

/* A call starts: nothing from an earlier one may describe its result. */
void kv_clear_error(void)
{
	last_err[0] = '\0';
	azerr_reset();
}

/* Record a result that is not a reply (network error, no token, a reply
 * refused before its status was judged) and say it in last_err. */
static int fail(int rc, enum azerr_cause cause, const char *creq,
		const char *fmt, ...) CMK_PRINTF(4, 5);
static int fail(int rc, enum azerr_cause cause, const char *creq,
		const char *fmt, ...)
{
	struct azerr e = *azerr_last();
	const char *name = azerr_cause_name(cause);
	size_t n;
	va_list ap;

	if (strcmp(e.client_request_id, creq) != 0) {
		/* not about the reply recorded last */
		memset(&e, 0, sizeof(e));
		e.src = AZERR_SRC_KV;
		snprintf(e.client_request_id, sizeof(e.client_request_id),
			 "%s", creq);
	}
	e.cause = cause;
	azerr_set(&e);
	n = (size_t)snprintf(last_err, sizeof(last_err), "%s%s", name,
			     *name ? ": " : "");
	if (n >= sizeof(last_err))
		return rc;
	va_start(ap, fmt);
	vsnprintf(last_err + n, sizeof(last_err) - n, fmt, ap);
	va_end(ap);
	return rc;
}

const char *kv_alg_for(const char *kty)
{
	if (strcmp(kty, "RSA") == 0 || strcmp(kty, "RSA-HSM") == 0)
		return "RSA-OAEP-256";
	if (strcmp(kty, "oct") == 0 || strcmp(kty, "oct-HSM") == 0)
		return "A256KW";
	return NULL;
}

/* Managed HSM "Key types, algorithms, and operations": oct keys of 128,
 * 192 and 256 bits with AES-KW; RFC 7518 §4.4 names AES Key Wrap by the
 * key's size (A128KW, A192KW, A256KW) and a KEK of another size fails. */
const char *kv_key_alg(const struct kv_key *k)
{
	const char *alg = kv_alg_for(k->kty);

	if (alg == NULL || strcmp(alg, "A256KW") != 0)
		return alg;
	switch (k->oct_bits) {
	case 128:
		return "A128KW";
	case 192:
		return "A192KW";
	default:
		return "A256KW";
	}
}

static int seg_ok(const char *s, size_t n, size_t max)
{
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || c == '-'))
			return 0;
	}
	return 1;
}

/* HOST[:PORT] or [IPV6][:PORT] with a non-empty host and a port of 1 to 5
 * digits: the length of the host part, or 0 if malformed. */
static size_t authority_ok(const char *h, size_t hl)
{
	size_t i = 0, n;

	if (h[0] == '[') {
		while (++i < hl && h[i] != ']') {
			char c = h[i];

			if (!((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') ||
			      (c >= '0' && c <= '9') || c == ':' || c == '.'))
				return 0;
		}
		if (i == hl || i < 2)
			return 0;
		n = ++i;	/* the host keeps its brackets */
	} else {
		for (; i < hl; i++) {
			char c = h[i];

			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '-' || c == '.'))
				break;
		}
		n = i;
	}
	if (n == 0 || i == hl)
		return n;
	if (h[i] != ':' || hl - i - 1 == 0 || hl - i - 1 > 5)
		return 0;
	for (i++; i < hl; i++) {
		if (h[i] < '0' || h[i] > '9')
			return 0;
	}
	return n;
}

int kv_parse_uri(const char *uri, struct kv_uri *out)
{
	struct kv_uri u;
	const char *h, *p, *name, *ver, *end;
	size_t hl, nl;

	memset(&u, 0, sizeof(u));
	if (strlen(uri) >= KV_URI_MAX || strncmp(uri, "https://", 8) != 0)
		return -EINVAL;
	h = uri + 8;
	p = strchr(h, '/');
	if (p == NULL || p == h)
		return -EINVAL;
	hl = (size_t)(p - h);
	if (hl >= sizeof(u.host) || strncmp(p, "/keys/", 6) != 0)
		return -EINVAL;
	nl = authority_ok(h, hl);
	if (nl == 0)
		return -EINVAL;	/* no userinfo, no odd or empty hosts */
	memcpy(u.vault, uri, 8 + hl);
	u.vault[8 + hl] = '\0';
	memcpy(u.host, h, nl);	/* without the port */
	u.host[nl] = '\0';
	name = p + 6;
	ver = strchr(name, '/');
	if (ver == NULL) {	/* versionless: .../keys/NAME */
		if (!seg_ok(name, strlen(name), 127))
			return -EINVAL;
		memcpy(u.name, name, strlen(name));
		goto host;
	}
	if (!seg_ok(name, (size_t)(ver - name), 127))
		return -EINVAL;
	memcpy(u.name, name, (size_t)(ver - name));
	ver++;
	end = ver + strlen(ver);
	if (end > ver && end[-1] == '/')
		end--;
	if (end == ver && *ver == '\0')
		goto host;	/* .../keys/NAME/ is versionless too */
	if (!seg_ok(ver, (size_t)(end - ver), 63))
		return -EINVAL;	/* seg_ok refuses '/', '?', '#' too */
	memcpy(u.version, ver, (size_t)(end - ver));
host:
	{
		const char *suffix = ".managedhsm.azure.net";
		size_t sl = strlen(suffix), l = strlen(u.host);

		u.hsm = l > sl && strcasecmp(u.host + l - sl, suffix) == 0;
	}
	*out = u;
	return 0;
}

int kv_new(const struct http_opts *o, struct azauth *auth, struct kv **out)
{
	struct kv *kv = calloc(1, sizeof(*kv));

	if (kv == NULL)
		return -ENOMEM;
	pthread_mutex_init(&kv->mtx, NULL);
	kv->http = *o;
	kv->auth = auth;
	*out = kv;
	return 0;
}

void kv_free(struct kv *kv)
{
	if (kv == NULL)
		return;
	pthread_mutex_destroy(&kv->mtx);
	free(kv);
}

int kv_map_error(long status, const char *body, size_t len, char *msg,
		 size_t cap)
{
	struct azerr e;
	int rc = azerr_classify(AZERR_SRC_KV, status, body, len, &e);

	azerr_format(&e, msg, cap);
	return rc;
}

/* Verify that the vault host ends in the challenge resource's host (the
 * SDKs' challenge resource verification). */
static int resource_ok(const struct kv_uri *u, const char *resource)
{
	const char *rh = resource + 8, *e;
	char host[512], *dot;
	size_t hl, ul = strlen(u->host);
	const char *v = getenv("CMKFS_DISABLE_CHALLENGE_RESOURCE_VERIFICATION");

	if (v != NULL && strcmp(v, "1") == 0)
		return 1;
	e = strpbrk(rh, "/:");
	hl = e ? (size_t)(e - rh) : strlen(rh);
	if (hl == 0 || hl >= sizeof(host))
		return 0;
	memcpy(host, rh, hl);
	host[hl] = '\0';
	/* "vault.azure.net" -> any "*.vault.azure.net" */
	dot = host;
	if (ul <= hl + 1)
		return 0;
	return strcasecmp(u->host + ul - hl, dot) == 0 &&
	       u->host[ul - hl - 1] == '.';
}

/* The token endpoint refused or failed: its reply (recorded by azauth,
 * ids included) says why. */
static int token_failed(int rc)
{
	const struct azerr *e = azerr_last();
	char what[160];

	if (e->src == AZERR_SRC_KV || e->cause == AZERR_NONE) {
		struct azerr t = { .cause = rc == -EACCES ? AZERR_TOKEN :
							    AZERR_OUTAGE,
				   .src = AZERR_SRC_ENTRA };

		azerr_set(&t);	/* no reply: a network error or our own */
	}
	azerr_format(azerr_last(), what, sizeof(what));
	snprintf(last_err, sizeof(last_err), "%s (token endpoint%s)", what,
		 rc == -EACCES ? " refused the credential" : " unavailable");
	return rc;
}

/* One authenticated call: challenge when needed, token, and one retry
 * with a fresh token after a 401. *rs is owned by the caller on 0. */
static int call(struct kv *kv, const struct kv_uri *u, const char *method,
		const char *url, const char *body, size_t body_len,
		struct http_resp *rs, char creq[static 37])
{
	char *token = NULL, *hauth = NULL, tenant[128], scope[512],
	     resource[512], hreq[64], used_tenant[128], used_scope[512];
	const char *hdrs[4];
	struct http_req rq = { .method = method, .url = url, .body = body,
			       .body_len = body_len, .headers = hdrs };
	bool fresh = false;
	int rc, tries = 0;

	rc = secmem_zalloc(AUTH_TOKEN_MAX + 64, (void **)&hauth);
	if (rc == 0)
		rc = secmem_zalloc(AUTH_TOKEN_MAX, (void **)&token);
	if (rc < 0)
		goto out;
	for (;;) {
		int n = 0;

		pthread_mutex_lock(&kv->mtx);
		bool have = challenge_get(kv, u, tenant, sizeof(tenant), scope,
					  sizeof(scope));
		pthread_mutex_unlock(&kv->mtx);
		creq[0] = '\0';
		if (have) {
			rc = azauth_token(kv->auth, tenant, scope, token,
					  AUTH_TOKEN_MAX);
			if (rc < 0) {
				/* azauth recorded the token endpoint's reply */
				rc = token_failed(rc);
				goto out;
			}
			snprintf(hauth, AUTH_TOKEN_MAX + 64,
				 "Authorization: Bearer %s", token);
			hdrs[n++] = hauth;
		}
		if (body != NULL)
			hdrs[n++] = "Content-Type: application/json";
		/* A fresh id per request: Key Vault logs it as the
		 * AuditEvent's correlationId, the audit line carries it. */
		rc = azerr_new_request_id(creq);
		if (rc < 0)
			goto out;
		snprintf(hreq, sizeof(hreq), "x-ms-client-request-id: %s", creq);
		hdrs[n++] = hreq;
		hdrs[n] = NULL;
		rc = http_do(&kv->http, &rq, rs);
		secmem_wipe(hauth, AUTH_TOKEN_MAX + 64);
		if (rc < 0) {
			rc = fail(http_transient(rc, 0) ? -EAGAIN : rc,
				  AZERR_OUTAGE, creq, "%s: %s", u->vault,
				  strerror(-rc));
			goto out;
		}
		if (rs->status != 401 || ++tries > 2)
			break;
		/* 401: a challenge. Learn it, or drop a stale token. */
		snprintf(used_tenant, sizeof(used_tenant), "%s", tenant);
		snprintf(used_scope, sizeof(used_scope), "%s", scope);
		if (azauth_parse_challenge(rs->www_authenticate, tenant,
					   sizeof(tenant), scope, sizeof(scope),
					   resource, sizeof(resource)) < 0) {
			http_resp_free(rs);
			rc = fail(-EPROTO, AZERR_PROTOCOL, creq,
				  "%s: 401 without a usable challenge",
				  u->vault);
			goto out;
		}
		if (!resource_ok(u, resource)) {
			http_resp_free(rs);
			rc = fail(-EPROTO, AZERR_PROTOCOL, creq,
				  "challenge resource %s does not match the "
				  "vault host (CMKFS_DISABLE_CHALLENGE_"
				  "RESOURCE_VERIFICATION=1 for test servers)",
				  resource);
			goto out;
		}
		if (!azauth_tenant_allowed(kv->auth, tenant)) {
			for (char *p = tenant; *p != '\0'; p++) {
				if (!isalnum((unsigned char)*p) && *p != '-' &&
				    *p != '.')
					*p = '?';	/* no forged log lines */
			}
			http_resp_free(rs);
			rc = fail(-EACCES, AZERR_TOKEN, creq,
				  "%s asks for a token of tenant %.64s, not "
				  "AZURE_TENANT_ID: add it to "
				  "AZURE_ADDITIONALLY_ALLOWED_TENANTS "
				  "(or \"*\") to allow it",
				  u->vault, tenant);
			goto out;
		}
		http_resp_free(rs);
		if (have) {
			if (fresh)
				break;	/* fresh token refused: a denial */
			azauth_drop_scope(kv->auth, used_tenant, used_scope);
			fresh = true;
		}
		pthread_mutex_lock(&kv->mtx);
		challenge_set(kv, u, tenant, scope);
		pthread_mutex_unlock(&kv->mtx);
	}
	rc = 0;
out:
	secmem_free(hauth, AUTH_TOKEN_MAX + 64);
	secmem_free(token, AUTH_TOKEN_MAX);
	return rc;
}

/* Judge a reply and record it, with both request ids, for the audit. */
static int check_status(struct http_resp *rs, const char *creq)
{
	struct azerr e;
	int rc;

	rc = azerr_classify(AZERR_SRC_KV, rs->status, rs->body, rs->body_len,
			    &e);
	snprintf(e.request_id, sizeof(e.request_id), "%s", rs->request_id);
	snprintf(e.client_request_id, sizeof(e.client_request_id), "%s",
		 creq);
	azerr_set(&e);
	if (rc < 0)
		azerr_format(&e, last_err, sizeof(last_err));
	return rc;
}

int kv_judge_key(const struct kv_key *k, time_t now)
{
	struct azerr e = *azerr_last();	/* the GET that read k, ids and all */
	int rc = 0;

	if (!k->enabled) {
		e.cause = AZERR_DISABLED;
		snprintf(e.code, sizeof(e.code), "enabled=false");
		rc = -EKEYREVOKED;
	} else if (k->exp != 0 && k->exp <= now) {
		e.cause = AZERR_EXPIRED;
		snprintf(e.code, sizeof(e.code), "exp=%lld",
			 (long long)k->exp);
		rc = -EKEYEXPIRED;
	} else if (k->nbf != 0 && k->nbf > now) {
		e.cause = AZERR_EXPIRED;	/* not yet valid */
		snprintf(e.code, sizeof(e.code), "nbf=%lld",
			 (long long)k->nbf);
		rc = -EKEYEXPIRED;
	}
	if (rc < 0) {
		azerr_set(&e);
		snprintf(last_err, sizeof(last_err), "%s: key attributes %s",
			 azerr_cause_name(e.cause), e.code);
	}
	return rc;
}

int kv_parse_key_reply(const char *body, size_t len, struct kv_key *k)
{
	const struct json *key, *attr, *ops;
	struct json *j = NULL;
	const char *kid, *kty, *n64, *rl;
	size_t nops;
	int rc = -EPROTO;

	memset(k, 0, sizeof(*k));
	if (json_parse(body, len, &j) < 0 ||
	    json_obj(j, "key", &key) < 0 || json_obj(j, "attributes", &attr) < 0 ||
	    json_str(key, "kid", &kid) < 0 || json_str(key, "kty", &kty) < 0 ||
	    json_bool(attr, "enabled", &k->enabled) < 0 ||
	    strlen(kid) >= sizeof(k->kid) || strlen(kty) >= sizeof(k->kty))
		goto out;
	snprintf(k->kid, sizeof(k->kid), "%s", kid);
	snprintf(k->kty, sizeof(k->kty), "%s", kty);
	if (json_has(attr, "exp") && json_int(attr, "exp", &k->exp) < 0)
		goto out;
	if (json_has(attr, "nbf") && json_int(attr, "nbf", &k->nbf) < 0)
		goto out;
	if (json_str(attr, "recoveryLevel", &rl) == 0)
		snprintf(k->recovery_level, sizeof(k->recovery_level), "%s",
			 rl);
	if (json_array(key, "key_ops", &ops, &nops) == 0) {
		for (size_t i = 0; i < nops; i++) {
			const char *op = json_array_str(ops, i);

			if (op != NULL && strcmp(op, "wrapKey") == 0)
				k->op_wrap = true;
			if (op != NULL && strcmp(op, "unwrapKey") == 0)
				k->op_unwrap = true;
		}
	}
	if (json_str(key, "n", &n64) == 0) {
		size_t nl = 0;
		uint8_t nb[1024];

		if (b64_decode(n64, strlen(n64), nb, sizeof(nb), &nl) < 0)
			goto out;
		while (nl > 0 && nb[0] == 0 && nl--)
			memmove(nb, nb + 1, nl);
		k->rsa_bits = (int)nl * 8;
	}
	/* An oct key's size is not in the JWK of api-version 7.4 (no "k"
	 * either: the key never leaves the HSM); newer api-versions add
	 * key_size. Only the three AES sizes are taken. */
	if (json_has(key, "key_size")) {
		int64_t bits = 0;

		if (json_int(key, "key_size", &bits) < 0)
			goto out;
		if (bits == 128 || bits == 192 || bits == 256)
			k->oct_bits = (int)bits;
	}
	rc = kv_alg_for(k->kty) == NULL ? -EOPNOTSUPP : 0;
out:
	json_free(j);
	return rc;
}

int kv_get_key(struct kv *kv, const struct kv_uri *u, struct kv_key *k)
{
	struct http_resp rs;
	char url[KV_URI_MAX + 64], creq[37];
	int rc;

	kv_clear_error();
	memset(k, 0, sizeof(*k));
	/* versionless: the key's current version */
	snprintf(url, sizeof(url), "%s/keys/%s%s%s?api-version=" KV_API_VERSION,
		 u->vault, u->name, u->version[0] ? "/" : "", u->version);
	rc = call(kv, u, "GET", url, NULL, 0, &rs, creq);
	if (rc < 0)
		return rc;
	rc = check_status(&rs, creq);
	if (rc == 0) {
		rc = kv_parse_key_reply(rs.body, rs.body_len, k);
		if (rc == -EOPNOTSUPP)
			rc = fail(-EPROTO, AZERR_PROTOCOL, creq,
				  "%s: unsupported key type %s", u->vault,
				  k->kty);
		else if (rc < 0)
			rc = fail(-EPROTO, AZERR_PROTOCOL, creq,
				  "%s: malformed key bundle", u->vault);
	}
	http_resp_free(&rs);
	return rc;
}

int kv_parse_op_reply(const char *body, size_t len, uint8_t *out, size_t cap,
		      size_t *out_len)
{
	struct json *j = NULL;
	const char *val;
	int rc = -EPROTO;

	if (json_parse(body, len, &j) == 0 && json_str(j, "value", &val) == 0 &&
	    b64_decode(val, strlen(val), out, cap, out_len) == 0)
		rc = 0;
	json_free(j);
	return rc;
}

static int keyop(struct kv *kv, const struct kv_uri *u, const char *op,
		 const char *alg, const uint8_t *in, size_t len, uint8_t *out,
		 size_t cap, size_t *out_len)
{
	char url[KV_URI_MAX + 64], *body = NULL, creq[37];
	struct http_resp rs;
	size_t blen = b64_enc_len(len) + 64, pos;
	int rc;

	kv_clear_error();
	/* A wrap names the version that can undo it (kv.h). */
	if (len > 1024 || strlen(alg) > 16 || u->version[0] == '\0')
		return -EINVAL;
	rc = secmem_zalloc(blen + 64, (void **)&body);
	if (rc < 0)
		return rc;
	pos = (size_t)snprintf(body, blen, "{\"alg\":\"%s\",\"value\":\"", alg);
	rc = b64_encode(in, len, body + pos, blen - pos - 3);
	if (rc < 0)
		goto free_body;
	pos += strlen(body + pos);
	memcpy(body + pos, "\"}", 3);	/* room reserved above */
	snprintf(url, sizeof(url), "%s/keys/%s/%s/%s?api-version=" KV_API_VERSION,
		 u->vault, u->name, u->version, op);
	rc = call(kv, u, "POST", url, body, strlen(body), &rs, creq);
	if (rc < 0)
		goto free_body;
	rc = check_status(&rs, creq);
	if (rc == 0 && kv_parse_op_reply(rs.body, rs.body_len, out, cap,
					 out_len) < 0)
		rc = fail(-EPROTO, AZERR_PROTOCOL, creq, "%s: malformed %s reply",
			  u->vault, op);
	http_resp_free(&rs);
free_body:
	secmem_free(body, blen + 64);
	return rc;
}

int kv_wrap(struct kv *kv, const struct kv_uri *u, const char *alg,
	    const uint8_t *in, size_t len, uint8_t *out, size_t cap,
	    size_t *out_len)
{
	return keyop(kv, u, "wrapkey", alg, in, len, out, cap, out_len);
}

int kv_unwrap(struct kv *kv, const struct kv_uri *u, const char *alg,
	      const uint8_t *in, size_t len, uint8_t *out, size_t cap,
	      size_t *out_len)
{
	return keyop(kv, u, "unwrapkey", alg, in, len, out, cap, out_len);
}
