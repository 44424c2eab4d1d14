/* src/azure/azauth.c — Entra ID tokens: client secret, client certificate
 * (JWT client assertion, PS256, x5t#S256), workload identity, managed
 * identity (IMDS, App Service, Azure Arc). Endpoints and fields as
 * documented for the Microsoft identity platform ("client credentials
 * flow", "certificate credentials") and Azure managed identities (IMDS
 * api-version 2018-02-01, App Service api-version 2019-08-01, Azure Arc
 * "Authenticate against Azure resources with Azure Arc-enabled servers":
 * api-version 2020-06-01, a 401 whose WWW-Authenticate "Basic realm=" names
 * a key file under /var/opt/azcmagent/tokens/, sent back as
 * "Authorization: Basic <contents>"; the checks on that file are MSAL for
 * Node's AzureArc source: ".key" extension, directly in the token
 * directory, at most 4096 bytes). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/azauth.h"
#include "cmkfs/azerr.h"
#include "cmkfs/b64.h"
#include "cmkfs/json.h"
#include "cmkfs/log.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"
#include "cmkfs/sign.h"

#define AUTHORITY_DEFAULT "https://login.microsoftonline.com"
#define IMDS_DEFAULT "http://169.254.169.254"
#define REFRESH_MARGIN_SEC 300
#define FORM_MAX 16384

/* Tokens per (tenant, scope): a vault and a Managed HSM (or vaults of two
 * tenants) used by one process each keep theirs instead of evicting each
 * other's at every request. */
#define AUTH_TOKENS 4

struct cached {
	char *token;			/* secmem, AUTH_TOKEN_MAX; "" = none */
	char scope[512], tenant[128];
	time_t exp;
	unsigned long used;		/* for replacing the least recently used */
};

struct azauth {
	pthread_mutex_t mtx;
	enum auth_kind kind;
	struct http_opts http;
	char tenant[128], client_id[128], authority[512];
	char cert_path[1024], token_file[1024];
	char mi_endpoint[1024];
	char arc_dir[1024];		/* Arc token directory, ends in '/' */
	char *secret;			/* secmem: client secret or App Service header */
	struct signer *signer;
	char allowed[1024];		/* AZURE_ADDITIONALLY_ALLOWED_TENANTS */
	struct cached tok[AUTH_TOKENS];	/* protected by mtx */
	unsigned long tick;		/* protected by mtx */
};

const char *azauth_kind_name(enum auth_kind k)
{
	static const char *const n[] = { "client_secret", "client_certificate",
					  "workload_identity",
					  "managed_identity_appservice",
					  "managed_identity_imds",
					  "managed_identity_arc" };

	return (unsigned)k < CMK_ARRAY_LEN(n) ? n[k] : "unknown";
}

enum auth_kind azauth_kind(const struct azauth *a)
{
	return a->kind;
}

int64_t azauth_cert_not_after(const struct azauth *a)
{
	return a->signer != NULL ? sign_cert_not_after(a->signer) : 0;
}

static const char *env(const char *name)
{
	const char *v = getenv(name);

	return (v != NULL && *v != '\0') ? v : NULL;
}

static int keep_secret(struct azauth *a, const char *v)
{
	size_t n = strlen(v);
	int rc;

	if (n >= 4096)
		return -EINVAL;
	rc = secmem_zalloc(4096, (void **)&a->secret);
	if (rc == 0)
		memcpy(a->secret, v, n + 1);
	return rc;
}

/* CMKFS_TEST_ARC_TOKEN_DIR is for the test suite: a directory anybody
 * else could write to (or read) would let a fake identity endpoint name a
 * file of its choosing, so only a private one of our own is taken. */
static int arc_token_dir(struct azauth *a)
{
	const char *t = env("CMKFS_TEST_ARC_TOKEN_DIR");
	struct stat st;
	size_t n;

	if (t == NULL) {
		snprintf(a->arc_dir, sizeof(a->arc_dir), "%s",
			 AZAUTH_ARC_TOKEN_DIR);
		return 0;
	}
	if (t[0] != '/' || stat(t, &st) < 0 || !S_ISDIR(st.st_mode) ||
	    st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		log_err("CMKFS_TEST_ARC_TOKEN_DIR %s: not an absolute path to "
			"a directory of this user closed to group and others",
			t);
		return -EPERM;
	}
	n = (size_t)snprintf(a->arc_dir, sizeof(a->arc_dir), "%s", t);
	while (n > 1 && a->arc_dir[n - 1] == '/')
		a->arc_dir[--n] = '\0';
	if (n + 2 > sizeof(a->arc_dir))
		return -ENAMETOOLONG;
	memcpy(a->arc_dir + n, "/", 2);
	log_warn("test-only Azure Arc token directory %s in use",
		 a->arc_dir);
	return 0;
}

static int load_cert(struct azauth *a, const char *path)
{
	int rc = sign_load(path, env("AZURE_CLIENT_CERTIFICATE_PASSWORD"),
			   &a->signer);

	/* Name the file and what is wrong with it, never the password. */
	if (rc == -EKEYREJECTED)
		log_err("AZURE_CLIENT_CERTIFICATE_PATH %s: cannot decrypt the "
			"key (AZURE_CLIENT_CERTIFICATE_PASSWORD missing or "
			"wrong)",
			path);
	else if (rc == -EPERM)
		log_err("AZURE_CLIENT_CERTIFICATE_PATH %s: not a regular file "
			"closed to group and others",
			path);
	else if (rc == -EBADMSG)
		log_err("AZURE_CLIENT_CERTIFICATE_PATH %s: no RSA private key "
			"and certificate (PEM or PKCS#12/PFX)",
			path);
	else if (rc < 0)
		log_err("AZURE_CLIENT_CERTIFICATE_PATH %s: %s", path,
			strerror(-rc));
	return rc;
}

int azauth_new(const struct http_opts *o, struct azauth **out)
{
	struct azauth *a = calloc(1, sizeof(*a));
	const char *tenant = env("AZURE_TENANT_ID"), *cid = env("AZURE_CLIENT_ID");
	const char *v;
	int rc = 0;

	if (a == NULL)
		return -ENOMEM;
	pthread_mutex_init(&a->mtx, NULL);
	a->http = *o;
	snprintf(a->authority, sizeof(a->authority), "%s",
		 env("AZURE_AUTHORITY_HOST") ? env("AZURE_AUTHORITY_HOST") :
					       AUTHORITY_DEFAULT);
	while (strlen(a->authority) > 0 &&
	       a->authority[strlen(a->authority) - 1] == '/')
		a->authority[strlen(a->authority) - 1] = '\0';
	snprintf(a->tenant, sizeof(a->tenant), "%s", tenant ? tenant : "");
	snprintf(a->client_id, sizeof(a->client_id), "%s", cid ? cid : "");
	if ((v = env("AZURE_CLIENT_SECRET")) != NULL) {
		a->kind = AUTH_CLIENT_SECRET;
		rc = (tenant && cid) ? keep_secret(a, v) : -EINVAL;
	} else if ((v = env("AZURE_CLIENT_CERTIFICATE_PATH")) != NULL) {
		a->kind = AUTH_CLIENT_CERT;
		snprintf(a->cert_path, sizeof(a->cert_path), "%s", v);
		rc = (tenant && cid) ? load_cert(a, v) : -EINVAL;
	} else if ((v = env("AZURE_FEDERATED_TOKEN_FILE")) != NULL) {
		a->kind = AUTH_WORKLOAD_IDENTITY;
		snprintf(a->token_file, sizeof(a->token_file), "%s", v);
		rc = (tenant && cid) ? 0 : -EINVAL;
	} else if ((v = env("IDENTITY_ENDPOINT")) != NULL &&
		   env("IDENTITY_HEADER") != NULL) {
		a->kind = AUTH_MANAGED_IDENTITY_APPSERVICE;
		snprintf(a->mi_endpoint, sizeof(a->mi_endpoint), "%s", v);
		rc = keep_secret(a, env("IDENTITY_HEADER"));
	} else if ((v = env("IDENTITY_ENDPOINT")) != NULL &&
		   env("IMDS_ENDPOINT") != NULL) {
		a->kind = AUTH_MANAGED_IDENTITY_ARC;
		snprintf(a->mi_endpoint, sizeof(a->mi_endpoint), "%s", v);
		rc = arc_token_dir(a);
		if (rc == 0 && cid != NULL) {
			/* As MSAL (unableToCreateAzureArc): Arc has only
			 * the machine's system-assigned identity. */
			log_err("Azure Arc managed identity: user-assigned "
				"identities are not supported; unset "
				"AZURE_CLIENT_ID");
			rc = -EINVAL;
		}
	} else {
		a->kind = AUTH_MANAGED_IDENTITY_IMDS;
		v = env("AZURE_POD_IDENTITY_AUTHORITY_HOST");
		snprintf(a->mi_endpoint, sizeof(a->mi_endpoint),
			 "%s/metadata/identity/oauth2/token",
			 v ? v : IMDS_DEFAULT);
	}
	snprintf(a->allowed, sizeof(a->allowed), "%s",
		 env("AZURE_ADDITIONALLY_ALLOWED_TENANTS") ?
			 env("AZURE_ADDITIONALLY_ALLOWED_TENANTS") :
			 "");
	for (int i = 0; rc == 0 && i < AUTH_TOKENS; i++)
		rc = secmem_zalloc(AUTH_TOKEN_MAX, (void **)&a->tok[i].token);
	if (rc < 0) {
		azauth_free(a);
		return rc;
	}
	*out = a;
	return 0;
}

void azauth_free(struct azauth *a)
{
	if (a == NULL)
		return;
	secmem_free(a->secret, 4096);
	for (int i = 0; i < AUTH_TOKENS; i++)
		secmem_free(a->tok[i].token, AUTH_TOKEN_MAX);
	sign_free(a->signer);
	pthread_mutex_destroy(&a->mtx);
	free(a);
}

static void forget(struct cached *c)
{
	if (c->token != NULL)
		secmem_wipe(c->token, AUTH_TOKEN_MAX);
	c->exp = 0;
	c->scope[0] = c->tenant[0] = '\0';
}

void azauth_drop(struct azauth *a)
{
	pthread_mutex_lock(&a->mtx);
	for (int i = 0; i < AUTH_TOKENS; i++)
		forget(&a->tok[i]);
	pthread_mutex_unlock(&a->mtx);
}

void azauth_drop_scope(struct azauth *a, const char *tenant,
		       const char *scope)
{
	pthread_mutex_lock(&a->mtx);
	for (int i = 0; i < AUTH_TOKENS; i++) {
		if (strcmp(a->tok[i].scope, scope) == 0 &&
		    strcmp(a->tok[i].tenant, tenant) == 0)
			forget(&a->tok[i]);
	}
	pthread_mutex_unlock(&a->mtx);
}

/* As azure-identity's processMultiTenantRequest: a credential configured
 * for a tenant gets tokens of another tenant only when that one is in
 * AZURE_ADDITIONALLY_ALLOWED_TENANTS (";"-separated) or the list holds
 * "*"; one configured for no tenant, and a managed identity (which has no
 * tenant to choose), take the tenant they are asked for. Tenant ids and
 * domain names compare without case. */
bool azauth_tenant_allowed(const struct azauth *a, const char *tenant)
{
	const char *p = a->allowed;

	if (a->kind == AUTH_MANAGED_IDENTITY_APPSERVICE ||
	    a->kind == AUTH_MANAGED_IDENTITY_IMDS ||
	    a->kind == AUTH_MANAGED_IDENTITY_ARC || a->tenant[0] == '\0' ||
	    strcasecmp(a->tenant, tenant) == 0)
		return true;
	while (*p != '\0') {
		size_t n;

		p += strspn(p, "; \t");
		n = strcspn(p, "; \t");
		if (n == 1 && *p == '*')
			return true;
		if (n > 0 && n == strlen(tenant) && strncasecmp(p, tenant, n) == 0)
			return true;
		p += n;
	}
	return false;
}

static const char *const secret_vars[] = {
	"AZURE_CLIENT_SECRET", "AZURE_CLIENT_CERTIFICATE_PASSWORD",
	"IDENTITY_HEADER"
};

bool azauth_env_has_secret(void)
{
	for (size_t i = 0; i < CMK_ARRAY_LEN(secret_vars); i++) {
		if (env(secret_vars[i]) != NULL)
			return true;
	}
	return false;
}

/* getenv() points into the environment block the kernel copied to the
 * top of the initial stack, the very bytes /proc/PID/environ reads (to
 * root, and to the daemon's user): unsetenv() alone only drops the
 * pointer from environ[], so the value is wiped where it lies first. */
void azauth_scrub_env(void)
{
	for (size_t i = 0; i < CMK_ARRAY_LEN(secret_vars); i++) {
		char *v = getenv(secret_vars[i]);

		if (v == NULL)
			continue;
		secmem_wipe(v, strlen(v));
		(void)unsetenv(secret_vars[i]);
	}
}

/* application/x-www-form-urlencoded (RFC 3986 unreserved kept). */
static int form_add(char *buf, size_t cap, size_t *pos, const char *k,
		    const char *v)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t p = *pos;

	if (p > 0) {
		if (p + 1 >= cap)
			return -ENOSPC;
		buf[p++] = '&';
	}
	for (int part = 0; part < 2; part++) {
		const char *s = part ? v : k;

		if (part) {
			if (p + 1 >= cap)
				return -ENOSPC;
			buf[p++] = '=';
		}
		for (; *s; s++) {
			unsigned char c = (unsigned char)*s;

			if (p + 3 >= cap)
				return -ENOSPC;
			if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
			    c == '_' || c == '~') {
				buf[p++] = (char)c;
			} else {
				buf[p++] = '%';
				buf[p++] = hex[c >> 4];
				buf[p++] = hex[c & 15];
			}
		}
	}
	buf[p] = '\0';
	*pos = p;
	return 0;
}

/* base64url of a string or bytes into out. */
static int b64s(const void *in, size_t n, char *out, size_t cap)
{
	return b64_encode(in, n, out, cap);
}

/* A signed client assertion (Microsoft identity platform "certificate
 * credentials": aud = token endpoint, iss = sub = client id). */
static int make_assertion(struct azauth *a, const char *token_url, char *out,
			  size_t cap)
{
	char hdr[256], pay[3072], h64[512], p64[4200], x5t[64], jti[33];
	uint8_t md[32], rnd[16], sig[512];
	size_t sig_len, used;
	time_t now = time(NULL);
	int rc;

	sign_cert_sha256(a->signer, md);
	rc = b64s(md, sizeof(md), x5t, sizeof(x5t));
	if (rc == 0)
		rc = rand_bytes(rnd, sizeof(rnd));
	if (rc < 0)
		return rc;
	for (int i = 0; i < 16; i++)
		snprintf(jti + 2 * i, 3, "%02x", rnd[i]);
	snprintf(hdr, sizeof(hdr),
		 "{\"alg\":\"PS256\",\"typ\":\"JWT\",\"x5t#S256\":\"%s\"}", x5t);
	snprintf(pay, sizeof(pay),
		 "{\"aud\":\"%s\",\"iss\":\"%s\",\"sub\":\"%s\",\"jti\":\"%s\","
		 "\"nbf\":%lld,\"iat\":%lld,\"exp\":%lld}",
		 token_url, a->client_id, a->client_id, jti, (long long)now,
		 (long long)now, (long long)now + 600);
	if (b64s(hdr, strlen(hdr), h64, sizeof(h64)) < 0 ||
	    b64s(pay, strlen(pay), p64, sizeof(p64)) < 0)
		return -ENOSPC;
	used = (size_t)snprintf(out, cap, "%s.%s", h64, p64);
	if (used + 2 >= cap)
		return -ENOSPC;
	rc = sign_ps256(a->signer, out, used, sig, sizeof(sig), &sig_len);
	if (rc < 0)
		return rc;
	out[used++] = '.';
	return b64s(sig, sig_len, out + used, cap - used);
}

int azauth_parse_assertion(const char *raw, size_t len, char *out,
			    size_t cap)
{
	if (len == 0 || cap == 0)
		return -EACCES;
	if (len > cap - 1)
		len = cap - 1;
	memmove(out, raw, len);
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r'))
		len--;
	out[len] = '\0';
	return 0;
}

static int read_token_file(const char *path, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, out, cap - 1);
	close(fd);
	if (n <= 0)
		return -EACCES;
	return azauth_parse_assertion(out, (size_t)n, out, cap);
}

int azauth_parse_token_reply(enum azerr_src src, long status,
			     const char *body, size_t len, time_t now, char *tok,
			     size_t cap, time_t *exp, struct azerr *err)
{
	struct json *j = NULL;
	const char *t, *type;
	int64_t exp_in = 0, exp_on = 0;
	struct azerr e;
	int rc;

	rc = azerr_classify(src, status, body, len, &e);
	if (err != NULL) {
		err->cause = e.cause;
		err->src = e.src;
		err->status = e.status;
		memcpy(err->code, e.code, sizeof(err->code));
	}
	if (rc < 0)
		return rc;
	rc = json_parse(body, len, &j);
	if (rc == 0)
		rc = json_str(j, "access_token", &t);
	if (rc == 0 && json_str(j, "token_type", &type) == 0 &&
	    strcasecmp(type, "Bearer") != 0)
		rc = -EPROTO;
	if (rc == 0 && json_int(j, "expires_on", &exp_on) < 0 &&
	    json_int(j, "expires_in", &exp_in) < 0)
		rc = -EPROTO;
	if (rc == 0 && (strlen(t) == 0 || strlen(t) >= AUTH_TOKEN_MAX ||
			strlen(t) >= cap || strpbrk(t, "\r\n \t\"") != NULL))
		rc = -EPROTO;	/* must be safe to place in a header */
	if (rc == 0) {
		if (exp_on > 0)
			*exp = (time_t)exp_on;
		else if (exp_in > 0 && exp_in < 86400 * 30)
			*exp = now + (time_t)exp_in;
		else
			rc = -EPROTO;
	}
	if (rc == 0)
		memcpy(tok, t, strlen(t) + 1);
	else if (err != NULL)
		err->cause = AZERR_PROTOCOL;
	json_free(j);
	return rc;
}

static enum azerr_src src_of(enum auth_kind k)
{
	return k == AUTH_MANAGED_IDENTITY_IMDS	     ? AZERR_SRC_IMDS :
	       k == AUTH_MANAGED_IDENTITY_APPSERVICE ? AZERR_SRC_APPSERVICE :
	       k == AUTH_MANAGED_IDENTITY_ARC	     ? AZERR_SRC_ARC :
						       AZERR_SRC_ENTRA;
}

int azauth_parse_arc_challenge(const char *hdr, const char *dir, char *path,
			       size_t cap)
{
	static const char pfx[] = "Basic realm=";
	const char *p = hdr, *name;
	size_t n, dl = strlen(dir);

	if (strncasecmp(p, pfx, sizeof(pfx) - 1) != 0)
		return -EPROTO;
	p += sizeof(pfx) - 1;
	n = strlen(p);
	if (n == 0 || n >= cap || strpbrk(p, "\r\n\"") != NULL)
		return -EPROTO;
	name = strrchr(p, '/');
	name = name != NULL ? name + 1 : p;
	if (strlen(name) <= 4 || strcmp(name + strlen(name) - 4, ".key") != 0)
		return -EACCES;
	/* dir + basename must be the whole path: nothing in between, so no
	 * "..", no subdirectory and no other directory. */
	if (dl == 0 || dir[dl - 1] != '/' || n != dl + strlen(name) ||
	    strncmp(p, dir, dl) != 0 || strcmp(name, ".key") == 0)
		return -EACCES;
	memcpy(path, p, n + 1);
	return 0;
}

/* The Arc agent's challenge file, as "Authorization: Basic <contents>"
 * into hdr (secret: the caller wipes it). The contents are a credential:
 * read into wiped memory, never logged. */
static int arc_answer(struct azauth *a, const struct http_resp *rs, char *hdr,
		      size_t cap, struct azerr *e)
{
	char path[1024], *buf = NULL;
	struct stat st;
	ssize_t n = 0;
	int fd = -1, rc;

	rc = azauth_parse_arc_challenge(rs->www_authenticate, a->arc_dir, path,
					sizeof(path));
	if (rc < 0) {
		log_err("Azure Arc identity endpoint: unusable challenge%s "
			"(the key file must be a .key file in %s)",
			rc == -EACCES ? " file" : "", a->arc_dir);
		e->cause = AZERR_PROTOCOL;
		return -EPROTO;
	}
	rc = secmem_zalloc(AZAUTH_ARC_SECRET_MAX + 1, (void **)&buf);
	if (rc < 0)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0) {
		rc = -errno;
	} else if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
		   st.st_size > AZAUTH_ARC_SECRET_MAX) {
		rc = -EPROTO;
	} else {
		n = read(fd, buf, AZAUTH_ARC_SECRET_MAX + 1);
		if (n < 0)
			rc = -errno;
		else if (n == 0 || n > AZAUTH_ARC_SECRET_MAX ||
			 strlen(buf) != (size_t)n ||
			 strpbrk(buf, "\r\n") != NULL)
			rc = -EPROTO;	/* it goes into a header */
	}
	if (fd >= 0)
		close(fd);
	if (rc == -EACCES || rc == -EPERM) {
		/* the agent's files are for root and the himds group */
		log_err("Azure Arc key file %s: %s (run as root or as a "
			"member of the himds group)",
			path, strerror(-rc));
		e->cause = AZERR_TOKEN;
	} else if (rc == -ENOENT) {
		/* the agent removed it (restart, or a new challenge) */
		e->cause = AZERR_OUTAGE;
		rc = -EAGAIN;
	} else if (rc < 0) {
		log_err("Azure Arc key file %s: not a regular file of at most "
			"%d bytes on one line",
			path, AZAUTH_ARC_SECRET_MAX);
		e->cause = AZERR_PROTOCOL;
		rc = -EPROTO;
	} else if ((size_t)snprintf(hdr, cap, "Authorization: Basic %s",
				    buf) >= cap) {
		rc = -ENOSPC;
	}
	secmem_free(buf, AZAUTH_ARC_SECRET_MAX + 1);
	return rc;
}

/* Copy a token reply's access_token and lifetime into the cache. */
static int take_token(struct azauth *a, struct cached *c,
		      const struct http_resp *rs, const char *tenant,
		      const char *scope, struct azerr *e)
{
	time_t exp = 0;
	int rc;

	forget(c);
	rc = azauth_parse_token_reply(src_of(a->kind), rs->status, rs->body,
				      rs->body_len, time(NULL), c->token,
				      AUTH_TOKEN_MAX, &exp, e);
	if (rc == 0) {
		c->exp = exp;
		snprintf(c->scope, sizeof(c->scope), "%s", scope);
		snprintf(c->tenant, sizeof(c->tenant), "%s", tenant);
	}
	return rc;
}

static int fetch(struct azauth *a, struct cached *c, const char *tenant,
		 const char *scope)
{
	char url[2048], resource[512], *form = NULL, *assertion = NULL;
	const char *hdrs[4] = { NULL, NULL, NULL, NULL };
	char hbuf[4200], hreq[64], hreq2[64];
	struct azerr e = { .src = src_of(a->kind) };
	struct http_req rq = { 0 };
	struct http_resp rs;
	size_t pos = 0;
	int rc;

	snprintf(resource, sizeof(resource), "%s", scope);
	if (strlen(resource) > 9 &&
	    strcmp(resource + strlen(resource) - 9, "/.default") == 0)
		resource[strlen(resource) - 9] = '\0';
	rc = secmem_zalloc(FORM_MAX, (void **)&form);
	if (rc == 0)
		rc = secmem_zalloc(FORM_MAX, (void **)&assertion);
	if (rc < 0)
		goto out;
	switch (a->kind) {
	case AUTH_MANAGED_IDENTITY_IMDS:
		snprintf(url, sizeof(url),
			 "%s?api-version=2018-02-01&resource=%s%s%s",
			 a->mi_endpoint, resource,
			 a->client_id[0] ? "&client_id=" : "", a->client_id);
		hdrs[0] = "Metadata: true";
		rq.method = "GET";
		rq.allow_http = true;
		/* IMDS: "the request must not go through a proxy" */
		rq.no_proxy = true;
		break;
	case AUTH_MANAGED_IDENTITY_APPSERVICE:
		snprintf(url, sizeof(url),
			 "%s?api-version=2019-08-01&resource=%s%s%s",
			 a->mi_endpoint, resource,
			 a->client_id[0] ? "&client_id=" : "", a->client_id);
		snprintf(hbuf, sizeof(hbuf), "X-IDENTITY-HEADER: %s", a->secret);
		hdrs[0] = hbuf;
		rq.method = "GET";
		rq.allow_http = true;
		rq.no_proxy = true;	/* a host-local endpoint, as IMDS */
		break;
	case AUTH_MANAGED_IDENTITY_ARC:
		snprintf(url, sizeof(url),
			 "%s?api-version=2020-06-01&resource=%s",
			 a->mi_endpoint, resource);
		hdrs[0] = "Metadata: true";
		rq.method = "GET";
		rq.allow_http = true;
		rq.no_proxy = true;	/* the agent on this host */
		break;
	default:
		snprintf(url, sizeof(url), "%s/%s/oauth2/v2.0/token",
			 a->authority, tenant);
		rc = form_add(form, FORM_MAX, &pos, "client_id", a->client_id);
		if (rc == 0)
			rc = form_add(form, FORM_MAX, &pos, "scope", scope);
		if (rc == 0)
			rc = form_add(form, FORM_MAX, &pos, "grant_type",
				      "client_credentials");
		if (rc == 0 && a->kind == AUTH_CLIENT_SECRET)
			rc = form_add(form, FORM_MAX, &pos, "client_secret",
				      a->secret);
		if (rc == 0 && a->kind != AUTH_CLIENT_SECRET) {
			rc = a->kind == AUTH_CLIENT_CERT ?
				     make_assertion(a, url, assertion,
						    FORM_MAX) :
				     read_token_file(a->token_file, assertion,
						     FORM_MAX);
			if (rc == 0)
				rc = form_add(
					form, FORM_MAX, &pos,
					"client_assertion_type",
					"urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
			if (rc == 0)
				rc = form_add(form, FORM_MAX, &pos,
					      "client_assertion", assertion);
		}
		if (rc < 0)
			goto out;
		hdrs[0] = "Content-Type: application/x-www-form-urlencoded";
		rq.method = "POST";
		rq.body = form;
		rq.body_len = pos;
		break;
	}
	/* A fresh id per request, as Key Vault gets: Entra ID logs
	 * client-request-id as the sign-in's correlation id. */
	rc = azerr_new_request_id(e.client_request_id);
	if (rc < 0)
		goto out;
	snprintf(hreq, sizeof(hreq), "x-ms-client-request-id: %s",
		 e.client_request_id);
	hdrs[1] = hreq;
	if (e.src == AZERR_SRC_ENTRA) {
		snprintf(hreq2, sizeof(hreq2), "client-request-id: %s",
			 e.client_request_id);
		hdrs[2] = hreq2;
	}
	rq.url = url;
	rq.headers = hdrs;
	rc = http_do(&a->http, &rq, &rs);
	if (rc == 0 && a->kind == AUTH_MANAGED_IDENTITY_ARC &&
	    rs.status == 401) {
		/* the challenge, answered once with the file it names */
		rc = arc_answer(a, &rs, hbuf, sizeof(hbuf), &e);
		snprintf(e.request_id, sizeof(e.request_id), "%s",
			 rs.request_id);
		http_resp_free(&rs);
		if (rc < 0) {
			e.status = 401;
			azerr_set(&e);
			goto out;
		}
		hdrs[2] = hbuf;
		rc = http_do(&a->http, &rq, &rs);
	}
	secmem_wipe(hbuf, sizeof(hbuf));
	if (rc < 0) {
		rc = http_transient(rc, 0) ? -EAGAIN : rc;
		e.cause = AZERR_OUTAGE;
		azerr_set(&e);
		goto out;
	}
	rc = take_token(a, c, &rs, tenant, scope, &e);
	snprintf(e.request_id, sizeof(e.request_id), "%s", rs.request_id);
	if (rc < 0)
		azerr_set(&e);
	if (rc == -EACCES)
		log_warn("the token endpoint refused the %s credential (HTTP "
			 "%ld%s%s, client request id %s)",
			 azauth_kind_name(a->kind), rs.status,
			 *e.code ? ", " : "", e.code, e.client_request_id);
	http_resp_free(&rs);
out:
	secmem_wipe(hbuf, sizeof(hbuf));
	secmem_free(form, FORM_MAX);
	secmem_free(assertion, FORM_MAX);
	return rc;
}

int azauth_token(struct azauth *a, const char *tenant, const char *scope,
		 char *out, size_t cap)
{
	time_t now = time(NULL);
	struct cached *c = NULL;
	int rc = 0;

	if (tenant == NULL || *tenant == '\0')
		tenant = a->tenant[0] ? a->tenant : "organizations";
	pthread_mutex_lock(&a->mtx);
	for (int i = 0; i < AUTH_TOKENS && c == NULL; i++) {
		if (strcmp(a->tok[i].scope, scope) == 0 &&
		    strcmp(a->tok[i].tenant, tenant) == 0)
			c = &a->tok[i];
	}
	for (int i = 0; i < AUTH_TOKENS && c == NULL; i++) {
		if (a->tok[i].scope[0] == '\0')
			c = &a->tok[i];
	}
	if (c == NULL) {	/* the least recently used one goes */
		c = &a->tok[0];
		for (int i = 1; i < AUTH_TOKENS; i++) {
			if (a->tok[i].used < c->used)
				c = &a->tok[i];
		}
	}
	c->used = ++a->tick;
	if (c->exp - REFRESH_MARGIN_SEC <= now ||
	    strcmp(c->scope, scope) != 0 || strcmp(c->tenant, tenant) != 0)
		rc = fetch(a, c, tenant, scope);
	if (rc == 0) {
		if (strlen(c->token) + 1 > cap)
			rc = -ENOSPC;
		else
			memcpy(out, c->token, strlen(c->token) + 1);
	}
	pthread_mutex_unlock(&a->mtx);
	return rc;
}

/* Bearer authorization="https://login.../TENANT", resource="https://vault.azure.net"
 * (or scope="https://vault.azure.net/.default"). */
int azauth_parse_challenge(const char *hdr, char *tenant, size_t tcap,
			   char *scope, size_t scap, char *resource,
			   size_t rcap)
{
	char auth[1024] = "", res[1024] = "", sc[1024] = "";
	const char *p = hdr;

	if (strncasecmp(p, "Bearer", 6) != 0 || (p[6] != ' ' && p[6] != '\0'))
		return -EPROTO;
	p += 6;
	while (*p != '\0') {
		char key[64], val[1024];
		size_t kl = 0, vl = 0;

		while (*p == ' ' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		while (*p && *p != '=' && kl < sizeof(key) - 1)
			key[kl++] = *p++;
		key[kl] = '\0';
		if (*p++ != '=' || *p++ != '"')
			return -EPROTO;
		while (*p && *p != '"' && vl < sizeof(val) - 1)
			val[vl++] = *p++;
		val[vl] = '\0';
		if (*p++ != '"')
			return -EPROTO;
		if (strcasecmp(key, "authorization") == 0 ||
		    strcasecmp(key, "authorization_uri") == 0)
			snprintf(auth, sizeof(auth), "%s", val);
		else if (strcasecmp(key, "resource") == 0)
			snprintf(res, sizeof(res), "%s", val);
		else if (strcasecmp(key, "scope") == 0)
			snprintf(sc, sizeof(sc), "%s", val);
	}
	if (auth[0] == '\0' || (res[0] == '\0' && sc[0] == '\0'))
		return -EPROTO;
	/* The tenant is the authorization URL's last path segment. */
	const char *t = strrchr(auth, '/');

	if (t == NULL || t[1] == '\0' || strncmp(auth, "https://", 8) != 0 ||
	    strlen(t + 1) >= tcap || strpbrk(t + 1, "?#&") != NULL)
		return -EPROTO;
	snprintf(tenant, tcap, "%s", t + 1);
	if (sc[0] != '\0') {
		snprintf(scope, scap, "%s", sc);
		snprintf(res, sizeof(res), "%s", sc);
		if (strlen(res) > 9 &&
		    strcmp(res + strlen(res) - 9, "/.default") == 0)
			res[strlen(res) - 9] = '\0';
	} else {
		snprintf(scope, scap, "%s/.default", res);
	}
	if (strncmp(res, "https://", 8) != 0)
		return -EPROTO;
	snprintf(resource, rcap, "%s", res);
	return 0;
}
