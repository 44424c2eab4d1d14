/* src/azure/azerr.c — the meaning of Key Vault and token-endpoint replies.
 * Sources (doc/KEYS.md "Azure events" cites them in full):
 *  - Key Vault REST error codes: 401 token, 403 permission, 404 not found,
 *    429 throttled; a 403 whose innererror is ForbiddenByFirewall comes from
 *    the vault's network rules (firewall, private endpoint, egress address);
 *  - managed identities, "How to use managed identities on a VM to acquire
 *    an access token", Error handling: IMDS 404 "endpoint is updating" and
 *    429 retry with backoff, 410 "available within 70 seconds", 5xx retry;
 *    other 4xx are design-time errors; Azure Arc (HIMDS): MSAL for Node
 *    retries 404, 408, 429, 500, 503, 504 from managed identity endpoints;
 *  - Microsoft identity platform error responses: {"error",
 *    "error_description", "error_codes": [AADSTS number]}; RFC 6749 §5.2
 *    and §4.1.2.1 "temporarily_unavailable". */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cmkfs/azerr.h"
#include "cmkfs/json.h"
#include "cmkfs/rand.h"

static __thread struct azerr last;

const char *azerr_cause_name(enum azerr_cause c)
{
	static const char *const n[] = {
		[AZERR_NONE] = "",		[AZERR_DISABLED] = "disabled",
		[AZERR_EXPIRED] = "expired",	[AZERR_DELETED] = "deleted",
		[AZERR_PERMISSION] = "permission", [AZERR_TOKEN] = "token",
		[AZERR_FIREWALL] = "firewall",	[AZERR_THROTTLED] = "throttled",
		[AZERR_OUTAGE] = "outage",	[AZERR_PROTOCOL] = "protocol",
	};

	return (unsigned)c < CMK_ARRAY_LEN(n) && n[c] ? n[c] : "";
}

bool azerr_is_denial(enum azerr_cause c)
{
	return c == AZERR_DISABLED || c == AZERR_EXPIRED ||
	       c == AZERR_DELETED || c == AZERR_PERMISSION || c == AZERR_TOKEN;
}

/* Copy a code from a reply, cut to fit; control characters would let a
 * hostile server forge log and audit lines. */
static void put_code(char *dst, size_t cap, const char *a, const char *b)
{
	snprintf(dst, cap, "%.32s%s%.32s", a, *a && *b ? "/" : "", b);
	for (char *p = dst; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f || *p == '"' ||
		    *p == '\\')
			*p = '?';
	}
}

static int kv_reply(long status, const struct json *j, struct azerr *e)
{
	const struct json *err = NULL, *inner = NULL;
	const char *code = "", *icode = "";

	if (j != NULL && json_obj(j, "error", &err) == 0) {
		if (json_str(err, "code", &code) < 0)
			code = "";
		if (json_obj(err, "innererror", &inner) < 0 ||
		    json_str(inner, "code", &icode) < 0)
			icode = "";
	}
	put_code(e->code, sizeof(e->code), code, icode);
	if (status == 403) {
		if (strcmp(icode, "KeyExpired") == 0 ||
		    strcmp(icode, "KeyNotYetValid") == 0) {
			e->cause = AZERR_EXPIRED;
			return -EKEYEXPIRED;
		}
		if (strcmp(icode, "ForbiddenByFirewall") == 0 ||
		    strcmp(code, "ForbiddenByFirewall") == 0) {
			/* Network rules, not the key's owner: a private
			 * endpoint or egress change, often put right. */
			e->cause = AZERR_FIREWALL;
			return -EAGAIN;
		}
		e->cause = strcmp(icode, "KeyDisabled") == 0 ? AZERR_DISABLED :
							      AZERR_PERMISSION;
		return -EKEYREVOKED;
	}
	if (status == 401) {
		e->cause = AZERR_PERMISSION;	/* a fresh token refused */
		return -EKEYREVOKED;
	}
	if (status == 404) {
		e->cause = AZERR_DELETED;
		return -EKEYREVOKED;
	}
	if (status == 429) {
		e->cause = AZERR_THROTTLED;
		return -EAGAIN;
	}
	if (status == 408 || (status >= 500 && status <= 599)) {
		e->cause = AZERR_OUTAGE;
		return -EAGAIN;
	}
	e->cause = AZERR_PROTOCOL;	/* 400, 3xx and anything unexpected */
	return -EPROTO;
}

static int token_reply(enum azerr_src src, long status, const struct json *j,
		       struct azerr *e)
{
	const struct json *codes;
	const char *err = "";
	int64_t n = 0;
	size_t nc = 0;

	if (j != NULL && json_str(j, "error", &err) < 0)
		err = "";
	if (j != NULL && json_array(j, "error_codes", &codes, &nc) == 0 &&
	    nc > 0 && json_array_int(codes, 0, &n) == 0 && n > 0)
		snprintf(e->code, sizeof(e->code), "AADSTS%lld", (long long)n);
	else
		put_code(e->code, sizeof(e->code), err, "");
	if (status == 429) {
		e->cause = AZERR_THROTTLED;
		return -EAGAIN;
	}
	if (status == 408 || (status >= 500 && status <= 599) ||
	    strcmp(err, "temporarily_unavailable") == 0) {
		e->cause = AZERR_OUTAGE;
		return -EAGAIN;
	}
	if ((src == AZERR_SRC_IMDS && (status == 404 || status == 410)) ||
	    (src == AZERR_SRC_ARC && status == 404)) {
		/* IMDS: "endpoint is updating" / "available within 70 s";
		 * Arc: MSAL retries a managed identity endpoint's 404 (its
		 * MANAGED_IDENTITY_HTTP_STATUS_CODES_TO_RETRY_ON) */
		e->cause = AZERR_OUTAGE;
		return -EAGAIN;
	}
	if (status >= 400 && status <= 499) {
		e->cause = AZERR_TOKEN;	/* invalid or expired credential, ... */
		return -EACCES;
	}
	e->cause = AZERR_PROTOCOL;
	return -EPROTO;
}

int azerr_classify(enum azerr_src src, long status, const char *body,
		   size_t len, struct azerr *e)
{
	struct json *j = NULL;
	int rc;

	e->cause = AZERR_NONE;
	e->src = src;
	e->status = status;
	e->code[0] = '\0';
	if (status == 200)
		return 0;
	if (len > 0 && json_parse(body, len, &j) < 0)
		j = NULL;
	rc = src == AZERR_SRC_KV ? kv_reply(status, j, e) :
				   token_reply(src, status, j, e);
	json_free(j);
	return rc;
}

void azerr_format(const struct azerr *e, char *out, size_t cap)
{
	const char *name = azerr_cause_name(e->cause);

	if (e->status == 0)
		snprintf(out, cap, "%s%sno reply", name, *name ? ": " : "");
	else
		snprintf(out, cap, "%s%sHTTP %ld%s%s%s", name,
			 *name ? ": " : "", e->status, *e->code ? " (" : "",
			 e->code, *e->code ? ")" : "");
}

int azerr_new_request_id(char out[static 37])
{
	uint8_t b[16];
	int rc = rand_bytes(b, sizeof(b));

	if (rc < 0)
		return rc;
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);	/* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);	/* variant 10 */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
	return 0;
}

void azerr_reset(void)
{
	memset(&last, 0, sizeof(last));
}

void azerr_set(const struct azerr *e)
{
	last = *e;
}

const struct azerr *azerr_last(void)
{
	return &last;
}
