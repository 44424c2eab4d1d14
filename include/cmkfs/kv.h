/* include/cmkfs/kv.h — Azure Key Vault / Managed HSM keys data plane
 * (REST api-version 7.4): get key, wrapkey, unwrapkey. Challenge-based
 * authentication (first request without a token; tenant and scope from the
 * 401's WWW-Authenticate; the vault host must end in the challenge
 * resource's host unless CMKFS_DISABLE_CHALLENGE_RESOURCE_VERIFICATION=1;
 * the challenge's tenant must be allowed by azauth_tenant_allowed()).
 * Challenges are remembered per vault origin (https://host[:port]), so a
 * token goes only to the host whose challenge asked for its audience.
 * Decisions are made on HTTP status + error.code + error.innererror.code,
 * never on message text. Thread-safe. */
#ifndef CMKFS_KV_H
#define CMKFS_KV_H

#include <stdbool.h>
#include <time.h>

#include "cmkfs/azauth.h"
#include "cmkfs/common.h"
#include "cmkfs/http.h"

#define KV_API_VERSION "7.4"
#define KV_URI_MAX 1024

struct kv_uri {
	char vault[600];	/* https://host[:port] */
	char host[512];		/* without port */
	char name[128];
	char version[64];
	bool hsm;		/* *.managedhsm.azure.net */
};

struct kv_key {
	bool enabled;
	int64_t exp, nbf;	/* 0 when absent */
	char kty[16];		/* RSA, RSA-HSM, oct, oct-HSM */
	char recovery_level[64];
	bool op_wrap, op_unwrap;
	char kid[KV_URI_MAX];
	int rsa_bits;		/* from the modulus, 0 for oct */
	int oct_bits;		/* oct: the JWK's key_size (128, 192, 256) if
				 * sent, else 0 */
};

struct kv;

/* Parse https://HOST/keys/NAME/VERSION or the versionless
 * https://HOST/keys/NAME (out->version "": the key's current version)
 * strictly (any https host; one trailing '/' allowed). Errors: -EINVAL
 * with no other effect. Pure. */
CMK_MUST_CHECK int kv_parse_uri(const char *uri, struct kv_uri *out);

CMK_MUST_CHECK int kv_new(const struct http_opts *o, struct azauth *auth,
			  struct kv **out);
void kv_free(struct kv *kv);	/* NULL-safe */

/* Errors of all calls (azerr_classify() decides; azerr.h):
 *   -EKEYREVOKED  access denied: 401 after a fresh token, 403 (permission
 *                 removed: ForbiddenByPolicy/ForbiddenByRbac, KeyDisabled),
 *                 404 (KeyNotFound: deleted)
 *   -EKEYEXPIRED  the key is expired or not yet valid
 *   -EAGAIN, -ETIMEDOUT, -ECONNREFUSED  transient (after retries), 403
 *                 ForbiddenByFirewall included
 *   -EPROTO       hostile or malformed reply
 *   -EACCES       the token endpoint refused our credential, or the
 *                 challenge names a tenant the credential is not allowed
 * Every call starts afresh: kv_last_error() then describes this call's
 * failure on this thread ("no error" after a success), and azerr_last() its
 * cause and the request ids of its last request (x-ms-client-request-id,
 * sent fresh with every request, and the reply's x-ms-request-id). */
/* kv_get_key of a versionless u reads the current version: k->kid names
 * it. kv_wrap and kv_unwrap need a version (-EINVAL without): a wrap must
 * name the version that can undo it. */
CMK_MUST_CHECK int kv_get_key(struct kv *kv, const struct kv_uri *u,
			      struct kv_key *k);
/* alg "RSA-OAEP-256" or "A256KW". */
CMK_MUST_CHECK int kv_wrap(struct kv *kv, const struct kv_uri *u,
			   const char *alg, const uint8_t *in, size_t len,
			   uint8_t *out, size_t cap, size_t *out_len);
CMK_MUST_CHECK int kv_unwrap(struct kv *kv, const struct kv_uri *u,
			     const char *alg, const uint8_t *in, size_t len,
			     uint8_t *out, size_t cap, size_t *out_len);
const char *kv_last_error(void);
/* Forget this thread's last result (every call starts with it). */
void kv_clear_error(void);
/* Is the key k, read by this thread's last kv_get_key(), usable at `now`?
 * 0, or -EKEYREVOKED (disabled) / -EKEYEXPIRED (expired, not yet valid),
 * recorded as the last result (cause, request ids of that GET). */
CMK_MUST_CHECK int kv_judge_key(const struct kv_key *k, time_t now);
/* The wrap algorithm for a key type: RSA-OAEP-256 or A256KW; NULL if none. */
const char *kv_alg_for(const char *kty);
/* The wrap algorithm for a key as read: RSA-OAEP-256 for RSA, A128KW /
 * A192KW / A256KW by an oct key's size (Managed HSM oct-HSM keys are 128,
 * 192 or 256 bits, each with its own AES-KW), A256KW when the reply gave
 * no size; NULL if none. Pure. */
const char *kv_key_alg(const struct kv_key *k);

/* The bodies of 200 replies (exposed for fuzzing). Pure.
 * kv_parse_key_reply: a key bundle ({"key": JWK, "attributes": ...}) into
 * *k (zeroed first). Errors: -EPROTO (malformed), -EOPNOTSUPP (k->kty is
 * neither RSA nor oct; the rest of *k is filled).
 * kv_parse_op_reply: a wrapkey/unwrapkey result's base64url "value" into
 * out (at most cap bytes). Errors: -EPROTO (malformed or too long). */
CMK_MUST_CHECK int kv_parse_key_reply(const char *body, size_t len,
				      struct kv_key *k);
CMK_MUST_CHECK int kv_parse_op_reply(const char *body, size_t len,
				     uint8_t *out, size_t cap,
				     size_t *out_len);

/* Map a Key Vault reply to an errno and a sentence naming its cause
 * (azerr_classify(); 0 for a 200; exposed for fuzzing). Pure. */
int kv_map_error(long status, const char *body, size_t len, char *msg,
		 size_t cap);

#endif
