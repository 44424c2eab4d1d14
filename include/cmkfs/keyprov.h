/* include/cmkfs/keyprov.h — key-encryption-key providers and their registry.
 * A provider wraps and unwraps a volume KEK (32 bytes) for one layer:
 * `local` under a key derived from the service key file, `akv` through Azure
 * Key Vault. keyprov.c holds the table of providers and opens the one a
 * volume layer names; callers above it use the table through keyprov_*()
 * and need not know a provider by name. Providers own no caching of KEKs;
 * the keyring holds the unwrapped KEKs. */
#ifndef CMKFS_KEYPROV_H
#define CMKFS_KEYPROV_H

#include <stdbool.h>

#include "cmkfs/aead.h"
#include "cmkfs/common.h"
#include "cmkfs/volume.h"

struct keyprov;

/* The calling thread's last provider result in parts, for audit lines
 * (doc/KEYS.md "Audit log"): empty strings when unknown. */
struct keyprov_why {
	char cause[16];			/* "disabled", "firewall", ... */
	char code[72];			/* "Forbidden/KeyDisabled", "AADSTS7000222" */
	char request_id[72];		/* the service's id of the request */
	char client_request_id[40];	/* the id we sent */
};

/* One provider kind: the registry hooks (open, forget, last_error) and the
 * instance ops (wrap, unwrap, check, close). The table of kinds is in
 * keyprov.c. */
struct keyprov_ops {
	const char *name;
	uint8_t type;	/* enum kprov_type */
	/* Open the provider for layer `layer` (0 = S, 1 = C) of volume v as
	 * v->layer[layer] records it (and v->flags: VOLUME_FLAG_FOLLOW);
	 * service_key is the loaded service key (SERVICE_KEY_LEN bytes).
	 * Errors: the provider's. */
	CMK_MUST_CHECK int (*open)(const struct volume *v, int layer,
				   const uint8_t *service_key,
				   struct keyprov **out);
	/* Wipe credentials the kind caches process-wide (bearer tokens).
	 * NULL: it caches none. */
	void (*forget)(void);
	/* A sentence for the calling thread's last failure of this kind, or
	 * NULL if the kind keeps none. */
	const char *(*last_error)(void);
	/* The same result in parts into *w (zeroed by the caller). NULL:
	 * the kind keeps none. */
	void (*last_why)(struct keyprov_why *w);
	/* Forget the calling thread's last result (a check starts). */
	void (*clear_error)(void);
	CMK_MUST_CHECK int (*wrap)(struct keyprov *kp, const uint8_t *aad,
				   size_t aad_len,
				   const uint8_t key[static AEAD_KEY_LEN],
				   uint8_t *out, size_t cap, size_t *out_len);
	/* Errors: -EKEYREJECTED (wrong key / tampered), -EKEYREVOKED, ... */
	CMK_MUST_CHECK int (*unwrap)(struct keyprov *kp, const uint8_t *aad,
				     size_t aad_len, const uint8_t *in,
				     size_t len,
				     uint8_t key[static AEAD_KEY_LEN]);
	/* Is the key still usable (Key Vault: enabled, not expired, not yet
	 * valid)? Errors as unwrap. NULL: always usable. */
	CMK_MUST_CHECK int (*check)(struct keyprov *kp);
	/* A provider that follows its key's latest version (kp->follow):
	 * the id of a newer version, enabled, valid now and allowing wrap
	 * and unwrap, into out (cap bytes): 1; 0 when the one in use is the
	 * latest, or the latest is not usable (it is not followed then), or
	 * it could not be read (the next check asks again). NULL: never. */
	int (*newer)(struct keyprov *kp, char *out, size_t cap);
	void (*close)(struct keyprov *kp);
	/* When the key (as read at open) and the credential used to reach it
	 * stop working by themselves: Unix times, 0 = never or unknown.
	 * NULL: neither expires. */
	void (*expiry)(const struct keyprov *kp, int64_t *key_exp,
		       int64_t *cred_exp);
};

struct keyprov {
	const struct keyprov_ops *ops;
	char key_id[VOLUME_KEYID_MAX + 1];	/* e.g. local:1a2b3c4d5e6f7081 */
	/* The layer wrapped by this provider follows the key's latest
	 * version (a versionless Key Vault key URI): the keyring records
	 * VOLUME_FLAG_FOLLOW with it. key_id is the version in use. */
	bool follow;
	void *priv;
};

void keyprov_close(struct keyprov *kp);	/* NULL-safe */

/* Registry. Open the provider a volume layer names (local or akv).
 * Errors: -EOPNOTSUPP (a kind this build lacks), the provider's. */
CMK_MUST_CHECK int keyprov_for_layer(const struct volume *v, int layer,
				     const uint8_t *service_key,
				     struct keyprov **out);
/* Wipe every kind's cached credentials (on lock: a locked mount holds no
 * secret). Thread-safe. */
void keyprov_forget(void);
/* The calling thread's last provider failure in words (Key Vault's error
 * code and message), or "no error". */
const char *keyprov_last_error(void);
/* The same, in parts (all empty if no kind has one). */
void keyprov_last_why(struct keyprov_why *w);
/* Forget the calling thread's last failure of every kind: what a check
 * then reports is its own. */
void keyprov_clear_error(void);

/* The provider kinds (entries of the registry). */
extern const struct keyprov_ops kp_local_ops;
extern const struct keyprov_ops kp_akv_ops;

/* The default service key path: $CMKFS_SERVICE_KEY, else the systemd
 * credential $CREDENTIALS_DIRECTORY/cmkfs.service-key if the unit passed
 * one (LoadCredential=cmkfs.service-key:FILE), else SERVICE_KEY_DEFAULT. */
#define SERVICE_KEY_DEFAULT "/etc/cmkfs/service.key"
#define SERVICE_KEY_CREDENTIAL "cmkfs.service-key"
#define SERVICE_KEY_LEN 32
const char *kp_local_default_path(void);

/* A service key source is a file path, or "fd:N" (--service-key-fd N):
 * 32 bytes read once from descriptor N up to end of file, which is then
 * closed (a pipe works). */
#define SERVICE_KEY_FD_PREFIX "fd:"
bool kp_local_is_fd(const char *source);

/* Read the service key from `path` (a source as above) into secmem (*key,
 * SERVICE_KEY_LEN bytes). Refuses files readable or writable by
 * group/other, or of another size; a descriptor that is a regular file
 * gets the same mode rule, a pipe or socket none. Once the source is
 * pinned (kp_local_pin) and was loaded once, a copy of that key, without
 * touching the file again. An "fd:" source is read only once: pinned.
 * Errors: -ENOENT, -EPERM (modes, not a regular file), -EBADMSG (size),
 * -EBADF (no such descriptor), -errno. */
CMK_MUST_CHECK int kp_local_load(const char *path, uint8_t **key);
/* Keep the key of `source` process-wide from its first successful
 * kp_local_load() on (the mount daemon: the key is read once at mount, a
 * later chmod, move or edit of the file does not reach a running mount).
 * One source per process; a later call replaces the earlier (wiped).
 * Errors: -ENOMEM. */
CMK_MUST_CHECK int kp_local_pin(const char *source);
/* Wipe the pinned key and forget the source. */
void kp_local_unpin(void);
/* Read a key from `source` without pinning it (service-key change: the
 * new key). An "fd:" source is consumed. Errors as kp_local_load(). */
CMK_MUST_CHECK int kp_local_read(const char *source, uint8_t **key);
/* Create the service key file (0600, O_EXCL, 32 random bytes, fsynced).
 * Returns 1 if created, 0 if it existed already (or path is an "fd:"
 * source: the descriptor brings the key). */
CMK_MUST_CHECK int kp_local_create(const char *path);
/* A provider for layer index `layer` (0 = S, 1 = C) of volume `volume_id`.
 * Takes a copy of the service key. */
CMK_MUST_CHECK int kp_local_open(const uint8_t *service_key,
				 const uint8_t volume_id[static VOLUME_ID_LEN],
				 int layer, struct keyprov **out);

/* Azure Key Vault / Managed HSM provider for `key_uri`. Reads the key once
 * (type, attributes) to pick the algorithm: RSA-OAEP-256 for RSA keys,
 * A256KW for oct(-HSM) keys. A versionless URI means the key's current
 * version: the provider's key_id is that version's URI (the kid Key Vault
 * returns, which must name the same vault and key) and it follows the key
 * (kp->follow). Uses the process's Key Vault client (kp_akv_client).
 * Errors: as kv_get_key(), -EINVAL (bad URI), -EPROTO (a kid for another
 * key). */
CMK_MUST_CHECK int kp_akv_open(const char *key_uri, struct keyprov **out);
/* The versionless URI of a key URI (https://HOST/keys/NAME) into out.
 * Errors: -EINVAL (not a key URI), -ENAMETOOLONG. */
CMK_MUST_CHECK int kp_akv_versionless(const char *key_uri, char *out,
				      size_t cap);
/* The process's Key Vault client, made on first use from the environment
 * (azauth.h) and the CA file set here or $CMKFS_CA_FILE. */
void kp_akv_set_ca_file(const char *path);
struct kv;
CMK_MUST_CHECK int kp_akv_client(struct kv **out);
/* For a daemon, at start-up: if the environment holds a credential
 * secret, make the Key Vault client now (it copies the secret into secret
 * memory, no network) and wipe the secret from the environment
 * (azauth_scrub_env). Later Key Vault use, a CMK enabled on the live mount
 * included, goes through that client. Call before starting threads.
 * Errors: as kp_akv_client(); the environment is left alone then. */
CMK_MUST_CHECK int kp_akv_take_credentials(void);
/* The key attributes read at open (for cmk enable/rotate checks). */
struct kv_key;
const struct kv_key *kp_akv_key(const struct keyprov *kp);

#endif
