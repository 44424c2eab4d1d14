/* src/azure/http.c — libcurl, carefully (curl docs/libcurl/libcurl-security.md:
 * restrict protocols, no redirects, verify TLS, cap what is read). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <malloc.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>

#include "cmkfs/http.h"
#include "cmkfs/tclock.h"
#include "cmkfs/log.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"

#define SYSTEM_CA_DIR "/etc/ssl/certs"

/* libcurl copies what it sends (the Authorization header with the bearer
 * token, wrapkey bodies with a KEK) into buffers of its own and frees
 * them without wiping: after a lock the token was still in the daemon's
 * freed heap (tests/mount/t_keymem.sh checks). So curl allocates through
 * these, which wipe every block it frees or moves. */
static void wfree(void *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

static void *wrealloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		wfree(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	q = malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, old);
	wfree(p);
	return q;
}

int http_global_init(void)
{
	return curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wfree,
				    wrealloc, strdup, calloc) == CURLE_OK ?
		       0 :
		       -EIO;
}

void http_opts_default(struct http_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connect_timeout_ms = 5000;
	o->timeout_ms = 20000;
	o->max_attempts = 5;
	o->max_total_ms = 60000;
	o->ca_file = getenv("CMKFS_CA_FILE");
}

void http_resp_free(struct http_resp *rs)
{
	if (rs == NULL)
		return;
	secmem_free(rs->body, HTTP_BODY_MAX + 1);
	rs->body = NULL;
	rs->body_len = 0;
}

struct sink {
	struct http_resp *rs;
	bool overflow;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct sink *s = ud;
	size_t len = size * n;

	if (len > HTTP_BODY_MAX - s->rs->body_len) {
		s->overflow = true;
		return 0;	/* makes curl fail with CURLE_WRITE_ERROR */
	}
	memcpy(s->rs->body + s->rs->body_len, p, len);
	s->rs->body_len += len;
	s->rs->body[s->rs->body_len] = '\0';
	return len;
}

void http_parse_header(const char *p, size_t len, struct http_resp *rs)
{
	size_t vlen;
	const char *v;

	if (len > 17 && strncasecmp(p, "WWW-Authenticate:", 17) == 0 &&
	    rs->www_authenticate[0] == '\0') {
		v = p + 17;
		vlen = len - 17;
		while (vlen > 0 && (*v == ' ' || *v == '\t')) {
			v++;
			vlen--;
		}
		while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
			vlen--;
		if (vlen >= sizeof(rs->www_authenticate))
			vlen = sizeof(rs->www_authenticate) - 1;
		memcpy(rs->www_authenticate, v, vlen);
		rs->www_authenticate[vlen] = '\0';
	} else if (len > 12 && strncasecmp(p, "Retry-After:", 12) == 0) {
		char buf[64];
		long sec;

		vlen = len - 12 < sizeof(buf) - 1 ? len - 12 : sizeof(buf) - 1;
		memcpy(buf, p + 12, vlen);
		buf[vlen] = '\0';
		if (http_retry_after_parse(buf, time(NULL), &sec) == 0)
			rs->retry_after_sec = sec;
	} else if (len > 16 && strncasecmp(p, "x-ms-request-id:", 16) == 0) {
		size_t n = 0;

		/* Key Vault's id of this request (its AuditEvent log has it):
		 * printable ASCII only, so the audit line stays one line. */
		for (size_t i = 16; i < len && n + 1 < sizeof(rs->request_id);
		     i++) {
			if (p[i] > 0x20 && p[i] < 0x7f && p[i] != '"' &&
			    p[i] != '\\')
				rs->request_id[n++] = p[i];
		}
		rs->request_id[n] = '\0';
	}
}

/* RFC 9110 §10.2.3: Retry-After = HTTP-date / delay-seconds; the date in
 * the preferred IMF-fixdate form ("Sun, 06 Nov 1994 08:49:37 GMT"). */
int http_retry_after_parse(const char *v, time_t now, long *sec)
{
	char buf[64], *end;
	struct tm tm;
	size_t n;
	long s;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strcspn(v, "\r\n");
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, v, n);
	buf[n] = '\0';
	if (buf[0] >= '0' && buf[0] <= '9') {
		errno = 0;
		s = strtol(buf, &end, 10);
		if (errno != 0 || *end != '\0')
			return -EINVAL;
		*sec = s;
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (end == NULL || *end != '\0')
		return -EINVAL;
	s = (long)(timegm(&tm) - now);
	*sec = s > 0 ? s : 0;	/* a date passed: retry now */
	return 0;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	http_parse_header(p, size * n, ud);
	return size * n;
}

/* OpenSSL keeps the last record it decrypted (an unwrapkey reply holds a
 * KEK in base64) in its read buffer, readable in a core after a lock
 * (t_keymem.sh), unless told to wipe each record once it is read. */
static CURLcode on_ssl_ctx(CURL *c, void *ctx, void *ud)
{
	(void)c;
	(void)ud;
	SSL_CTX_set_options(ctx, SSL_OP_CLEANSE_PLAINTEXT);
	return CURLE_OK;
}

/* One kept handle per origin (scheme, host, port): libcurl keeps the
 * handle's connection open and its TLS session cached between requests,
 * so a key check costs no TCP or TLS handshake once the first one is
 * made. A handle serves one request at a time; a thread that finds the
 * origin's handle busy (the monitor and a control command at once) gets
 * a handle of its own for that request. */
#define POOL_MAX 8
#define ORIGIN_MAX 256

struct pooled {
	CURL *c;
	char origin[ORIGIN_MAX];
	bool busy, drop;
};

static pthread_mutex_t pool_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct pooled pool[POOL_MAX];	/* protected by pool_mtx */

/* "https://host:port" of a URL, or "" when it does not fit. */
static void origin_of(const char *url, char out[static ORIGIN_MAX])
{
	const char *p = strstr(url, "://"), *e;
	size_t n;

	out[0] = '\0';
	if (p == NULL)
		return;
	e = strpbrk(p + 3, "/?#");
	n = e != NULL ? (size_t)(e - url) : strlen(url);
	if (n < ORIGIN_MAX) {
		memcpy(out, url, n);
		out[n] = '\0';
	}
}

/* A handle for url's origin: the idle pooled one, else a new one put in a
 * free or idle slot, else a new unpooled one (*slot = -1). */
static CURL *pool_take(const char *url, int *slot)
{
	char origin[ORIGIN_MAX];
	int i, free_slot = -1, idle_slot = -1;
	CURL *c = NULL;

	origin_of(url, origin);
	*slot = -1;
	pthread_mutex_lock(&pool_mtx);
	for (i = 0; origin[0] != '\0' && i < POOL_MAX; i++) {
		if (pool[i].c == NULL) {
			free_slot = free_slot < 0 ? i : free_slot;
		} else if (!pool[i].busy &&
			   strcmp(pool[i].origin, origin) == 0) {
			break;
		} else if (!pool[i].busy) {
			idle_slot = idle_slot < 0 ? i : idle_slot;
		}
	}
	if (origin[0] != '\0' && i < POOL_MAX) {
		c = pool[i].c;
		pool[i].busy = true;
		*slot = i;
	} else if (origin[0] != '\0' && (free_slot >= 0 || idle_slot >= 0)) {
		i = free_slot >= 0 ? free_slot : idle_slot;
		if (pool[i].c != NULL)
			curl_easy_cleanup(pool[i].c);	/* least needed */
		pool[i].c = c = curl_easy_init();
		if (c != NULL) {
			snprintf(pool[i].origin, sizeof(pool[i].origin), "%s",
				 origin);
			pool[i].busy = true;
			pool[i].drop = false;
			*slot = i;
		}
	}
	pthread_mutex_unlock(&pool_mtx);
	if (c != NULL) {
		curl_easy_reset(c);	/* keeps connections and TLS sessions */
		return c;
	}
	return curl_easy_init();
}

static void pool_give(CURL *c, int slot)
{
	if (slot < 0) {
		curl_easy_cleanup(c);
		return;
	}
	pthread_mutex_lock(&pool_mtx);
	pool[slot].busy = false;
	if (pool[slot].drop) {
		curl_easy_cleanup(c);
		pool[slot].c = NULL;
		pool[slot].drop = false;
	}
	pthread_mutex_unlock(&pool_mtx);
}

void http_flush(void)
{
	pthread_mutex_lock(&pool_mtx);
	for (int i = 0; i < POOL_MAX; i++) {
		if (pool[i].c == NULL)
			continue;
		if (pool[i].busy) {
			pool[i].drop = true;	/* its user closes it */
		} else {
			curl_easy_cleanup(pool[i].c);
			pool[i].c = NULL;
		}
	}
	pthread_mutex_unlock(&pool_mtx);
}

static int curl_err(CURLcode c)
{
	switch (c) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_GOT_NOTHING:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EPROTO;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
		return -EBADE;	/* TLS: not transient, not the key's fault */
	default:
		return -EIO;
	}
}

int http_once(const struct http_opts *o, const struct http_req *rq,
	      struct http_resp *rs)
{
	struct curl_slist *hdrs = NULL;
	struct sink sink = { rs, false };
	CURL *c;
	CURLcode cc;
	int rc, slot;

	memset(rs, 0, sizeof(*rs));
	rs->retry_after_sec = -1;
	rc = secmem_zalloc(HTTP_BODY_MAX + 1, (void **)&rs->body);
	if (rc < 0)
		return rc;
	c = pool_take(rq->url, &slot);
	if (c == NULL) {
		http_resp_free(rs);
		return -ENOMEM;
	}
	for (const char *const *h = rq->headers; h != NULL && *h != NULL; h++) {
		struct curl_slist *n = curl_slist_append(hdrs, *h);

		if (n == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		hdrs = n;
	}
	/* Expect: 100-continue only adds a round trip. */
	hdrs = curl_slist_append(hdrs, "Expect:");
	curl_easy_setopt(c, CURLOPT_URL, rq->url);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
			 rq->allow_http ? "http,https" : "https");
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, o->timeout_ms);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &sink);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, rs);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "cmkfs/" PACKAGE_VERSION);
	curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
	/* Otherwise libcurl reads http_proxy/https_proxy/no_proxy as usual. */
	if (rq->no_proxy)
		curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
	if (o->ca_file != NULL && *o->ca_file != '\0') {
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
		curl_easy_setopt(c, CURLOPT_CAPATH, SYSTEM_CA_DIR);
	}
	if (strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)rq->body_len);
	}
	cc = curl_easy_perform(c);
	rs->attempts = 1;
	if (sink.overflow) {
		rc = -EPROTO;
		goto out;
	}
	if (cc != CURLE_OK) {
		rc = curl_err(cc);
		log_debug("http %s %s: %s", rq->method, rq->url,
			  curl_easy_strerror(cc));
		goto out;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rs->status);
	rc = 0;
out:
	/* A kept handle must not point at the freed list */
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
	curl_slist_free_all(hdrs);
	pool_give(c, slot);
	if (rc < 0)
		http_resp_free(rs);
	return rc;
}

int http_transient(int rc, long status)
{
	if (rc < 0)
		return rc == -ETIMEDOUT || rc == -ECONNREFUSED ||
		       rc == -ECONNRESET || rc == -EHOSTUNREACH || rc == -EIO;
	return status == 408 || status == 429 || status >= 500;
}

long http_backoff_ms(int n, long retry_after_sec)
{
	long base = 250L << (n < 6 ? n : 6);	/* 500 ms, 1 s, 2 s, ... 16 s */
	uint32_t r = 0;

	/* Whether the wait fits is the caller's budget to judge (http_do) */
	if (retry_after_sec >= 0)
		return (retry_after_sec > HTTP_WAIT_MAX_SEC ? HTTP_WAIT_MAX_SEC :
							      retry_after_sec) *
		       1000;
	if (rand_bytes(&r, sizeof(r)) < 0)
		r = 0;
	return base + (long)(r % (uint32_t)base);	/* full jitter on top */
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* The caller's budget for this thread's requests (a monitor: what is left
 * of its grace period), as a CLOCK_MONOTONIC deadline in ms; 0 = none. */
static __thread long budget_deadline;

/* Waits between attempts end early once http_interrupt(true) is called
 * (a monitor stopping must not sit out a long Retry-After). */
static pthread_mutex_t wait_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wait_cond = PTHREAD_COND_INITIALIZER;
static bool interrupted;	/* protected by wait_mtx */

void http_set_budget(long ms)
{
	budget_deadline = ms > 0 ? now_ms() + ms : 0;
}

void http_interrupt(bool on)
{
	pthread_mutex_lock(&wait_mtx);
	interrupted = on;
	pthread_cond_broadcast(&wait_cond);
	pthread_mutex_unlock(&wait_mtx);
}

/* Sleep ms unless interrupted; false if interrupted. */
static bool wait_ms(long ms)
{
	struct timespec ts;
	bool go;

	tclock_deadline_ms(ms, &ts);
	pthread_mutex_lock(&wait_mtx);
	while (!interrupted &&
	       pthread_cond_timedwait(&wait_cond, &wait_mtx, &ts) == 0)
		;
	go = !interrupted;
	pthread_mutex_unlock(&wait_mtx);
	return go;
}

int http_do(const struct http_opts *o, const struct http_req *rq,
	    struct http_resp *rs)
{
	long start = now_ms(), wait, limit = o->max_total_ms;
	int rc, n = 0;

	/* A budget replaces the usual bound: longer for a Retry-After the
	 * grace period has time for, shorter so that no retry outlasts it
	 * (doc/KEYS.md "Grace period"). */
	if (budget_deadline != 0)
		limit = budget_deadline - start;
	for (;;) {
		rc = http_once(o, rq, rs);
		n++;
		if (!http_transient(rc, rc == 0 ? rs->status : 0) ||
		    n >= o->max_attempts)
			break;
		wait = http_backoff_ms(n, rc == 0 ? rs->retry_after_sec : -1);
		if (now_ms() - start + wait > limit)
			break;	/* the caller gets the transient reply */
		log_info("http %s %s: %s, retry %d in %ld ms", rq->method,
			 rq->url, rc < 0 ? strerror(-rc) : "transient status",
			 n, wait);
		if (rc == 0)
			http_resp_free(rs);
		if (!wait_ms(wait)) {
			rc = -ETIMEDOUT;	/* stopping: give up, transient */
			break;
		}
	}
	if (rc == 0)
		rs->attempts = n;
	return rc;
}
