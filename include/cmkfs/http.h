/* include/cmkfs/http.h — the only libcurl user.
 * HTTPS with TLS always verified (system CAs plus an optional private CA
 * file), no redirects followed, timeouts on connect and on the whole
 * request, response bodies capped and kept in wiped secret memory (they
 * carry tokens and unwrapped keys), retries with exponential backoff and
 * jitter for 408/429/5xx and network errors, honouring Retry-After.
 * Never logs bodies or Authorization headers. Thread-safe after
 * http_global_init(). */
#ifndef CMKFS_HTTP_H
#define CMKFS_HTTP_H

#include <stdbool.h>
#include <time.h>

#include "cmkfs/common.h"

#define HTTP_BODY_MAX (64 * 1024)

struct http_opts {
	long connect_timeout_ms;	/* default 5000 */
	long timeout_ms;		/* whole request, default 20000 */
	int max_attempts;		/* default 5 (1 = no retry) */
	long max_total_ms;		/* all attempts and waits, default 60000 */
	const char *ca_file;		/* private CA in addition to system CAs */
};

struct http_req {
	const char *method;		/* "GET" or "POST" */
	const char *url;
	const char *const *headers;	/* NULL-terminated "Name: value" */
	const char *body;		/* may hold secrets; never logged */
	size_t body_len;
	bool allow_http;		/* plain http: IMDS on loopback/link-local only */
	bool no_proxy;			/* never through a proxy (host-local identity
					 * endpoints: IMDS, App Service, Arc) */
};

struct http_resp {
	long status;
	char *body;			/* secmem, NUL-terminated, body_len bytes */
	size_t body_len;
	char www_authenticate[2048];	/* first WWW-Authenticate header or "" */
	long retry_after_sec;		/* Retry-After in seconds (from now), or -1 */
	char request_id[72];		/* x-ms-request-id (cut to fit) or "" */
	int attempts;			/* how many requests were sent */
};

/* Requests to one origin (scheme, host, port) reuse one kept connection
 * and its TLS session while it stays open (libcurl closes connections
 * idle for more than 118 s). http_flush() closes every kept connection
 * and wipes what libcurl buffered for it (the last reply, e.g. an
 * unwrapped key): call it when the keys are wiped. Thread-safe. */
void http_flush(void);

/* Once, before threads start. Errors: -EIO. */
CMK_MUST_CHECK int http_global_init(void);
void http_opts_default(struct http_opts *o);

/* One request. Errors: -ETIMEDOUT, -ECONNREFUSED, -EHOSTUNREACH (network),
 * -EPROTO (body too large, bad URL scheme), -EIO. A reply with any status
 * is success at this level. */
CMK_MUST_CHECK int http_once(const struct http_opts *o,
			     const struct http_req *rq, struct http_resp *rs);
/* With retries: network errors and 408/429/5xx are retried within the
 * bounds of `o`; returns the last reply or error. */
CMK_MUST_CHECK int http_do(const struct http_opts *o, const struct http_req *rq,
			   struct http_resp *rs);
/* One raw response header line (len bytes, not NUL-terminated, CRLF
 * included or not) into rs: the first WWW-Authenticate value (cut to fit),
 * Retry-After in seconds (from delay-seconds or an HTTP-date) and
 * x-ms-request-id (only characters that may stand in a log line, cut to
 * fit). Pure but for the clock; for libcurl's header callback and fuzzing. */
void http_parse_header(const char *line, size_t len, struct http_resp *rs);
/* 1 for statuses and errors worth retrying. */
int http_transient(int rc, long status);
void http_resp_free(struct http_resp *rs);	/* wipes; NULL-safe */

/* Backoff before attempt `n` (1-based count of failures so far), with
 * jitter, honouring retry_after_sec when >= 0 (up to HTTP_WAIT_MAX_SEC).
 * Pure but for the jitter. */
#define HTTP_WAIT_MAX_SEC 86400L
long http_backoff_ms(int n, long retry_after_sec);
/* A Retry-After value (delay-seconds or an IMF-fixdate HTTP-date, RFC 9110
 * §10.2.3) as seconds from `now` (0 for a date passed) into *sec.
 * Errors: -EINVAL (anything else). Pure. */
CMK_MUST_CHECK int http_retry_after_parse(const char *v, time_t now,
					  long *sec);

/* Retry budget of the calling thread's requests, from now: http_do()
 * retries (as Retry-After asks, or with backoff) for up to ms, longer or
 * shorter than max_total_ms (a monitor: what is left of its grace period,
 * so no retry waits past it); a wait that would end past it is not
 * started and the transient reply is returned (the first attempt is
 * always made). 0 = no budget (max_total_ms). */
void http_set_budget(long ms);
/* on: end every wait between attempts now and start none until called
 * with false (a monitor stopping). Thread-safe. */
void http_interrupt(bool on);

#endif
