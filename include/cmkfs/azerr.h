/* include/cmkfs/azerr.h — what an Azure reply means: the one classifier of
 * Key Vault and token-endpoint replies (doc/KEYS.md "Azure events"), and
 * the calling thread's last result with its request ids for the audit.
 * Decisions are made on the endpoint, the HTTP status and the structured
 * codes of the body (Key Vault error.code / error.innererror.code, Entra ID
 * error / error_codes), never on message text. */
#ifndef CMKFS_AZERR_H
#define CMKFS_AZERR_H

#include <stdbool.h>
#include <stddef.h>

#include "cmkfs/common.h"

/* Who answered. */
enum azerr_src {
	AZERR_SRC_KV,		/* Key Vault / Managed HSM data plane */
	AZERR_SRC_ENTRA,	/* Entra ID token endpoint (oauth2/v2.0/token) */
	AZERR_SRC_IMDS,		/* Azure Instance Metadata Service identity */
	AZERR_SRC_APPSERVICE,	/* App Service / Functions identity endpoint */
	AZERR_SRC_ARC,		/* Azure Arc (HIMDS) identity endpoint */
};

/* Why a request did not succeed. The first group are denials (the monitor
 * locks once a second check confirms them), the second transient (served
 * within the grace period). */
enum azerr_cause {
	AZERR_NONE = 0,		/* success, or nothing known */
	AZERR_DISABLED,		/* key disabled (enabled:false, KeyDisabled) */
	AZERR_EXPIRED,		/* key expired or not yet valid */
	AZERR_DELETED,		/* key deleted (404 KeyNotFound) */
	AZERR_PERMISSION,	/* 403 access policy / RBAC, 401 after a fresh token */
	AZERR_TOKEN,		/* the identity platform refused the credential */
	AZERR_FIREWALL,		/* 403 ForbiddenByFirewall: network rules */
	AZERR_THROTTLED,	/* 429 */
	AZERR_OUTAGE,		/* 408, 5xx, IMDS 404/410, network errors */
	AZERR_PROTOCOL,		/* a malformed or unexpected reply */
};

#define AZERR_ID_MAX 72

/* One classified result. */
struct azerr {
	enum azerr_cause cause;
	enum azerr_src src;
	long status;			/* HTTP status, 0 without a reply */
	char code[AZERR_ID_MAX];	/* "Forbidden/KeyDisabled", "AADSTS7000222" */
	char request_id[AZERR_ID_MAX];	/* the reply's x-ms-request-id */
	char client_request_id[40];	/* the x-ms-client-request-id we sent */
};

/* The one classifier. Fills *e (cause, src, status, code; ids untouched)
 * and returns 0 for a 200, else the errno callers act on:
 *   -EKEYREVOKED  disabled, deleted, permission (Key Vault)
 *   -EKEYEXPIRED  expired or not yet valid (Key Vault)
 *   -EACCES       the token endpoint refused the credential
 *   -EAGAIN       firewall, throttled, outage
 *   -EPROTO       any other status (3xx, 400 from Key Vault)
 * Codes are cut to fit and stripped of control characters. Pure. */
CMK_MUST_CHECK int azerr_classify(enum azerr_src src, long status,
				  const char *body, size_t len,
				  struct azerr *e);
/* "disabled", "expired", "deleted", "permission", "token", "firewall",
 * "throttled", "outage", "protocol"; "" for AZERR_NONE. */
const char *azerr_cause_name(enum azerr_cause c);
/* True for the denial causes. */
bool azerr_is_denial(enum azerr_cause c);
/* A sentence: "<cause>: HTTP <status> (<code>)". Pure. */
void azerr_format(const struct azerr *e, char *out, size_t cap);
/* A fresh random UUID v4 (RFC 9562) for x-ms-client-request-id, 36
 * characters and a NUL. Errors: -EIO. */
CMK_MUST_CHECK int azerr_new_request_id(char out[static 37]);

/* The calling thread's last Azure result. azerr_reset() forgets it (a
 * check or call starts); azerr_set() records one (a reply, a network
 * error, a key judged unusable); azerr_last() returns it. */
void azerr_reset(void);
void azerr_set(const struct azerr *e);
const struct azerr *azerr_last(void);

#endif
