/* include/cmkfs/volume.h — volume configuration bytes <-> struct
 * (doc/FORMAT.md §1). The file `cmkfs.conf` at the root of the ciphertext
 * directory. Parsing is pure and refuses unknown versions, flags, suites,
 * providers and trailing bytes; the MAC at the end is checked by the
 * keyring once both KEKs are unwrapped (volume_mac()). */
#ifndef CMKFS_VOLUME_H
#define CMKFS_VOLUME_H

#include "cmkfs/common.h"
#include "cmkfs/kdf.h"
#include "cmkfs/reserved.h"		/* VOLUME_FILE */

#define VOLUME_MAGIC "CMKFSVOL"
#define VOLUME_VERSION 3		/* what init writes; 1 and 2 are still read */
#define VOLUME_VERSION_MIN 1
#define VOLUME_FLAG_REKEY 0x0001	/* v2: a rekey is in progress (prev set) */
/* v2, only with REKEY: a full rekey is in progress — the previous
 * generation's volume secret is kept too (prev_secret_wrapped), since
 * names and files still under it are being re-encrypted. */
#define VOLUME_FLAG_FULL 0x0002
/* v3, never with REKEY: `cmkfs upgrade` of a format-1/2 volume is in
 * progress — objects in the old encodings may remain, so nothing but the
 * upgrade opens the volume until it clears the flag (doc/FORMAT.md
 * "Upgrade"). */
#define VOLUME_FLAG_UPGRADE 0x0004
/* v2+, only with a Key Vault key on layer C: the customer layer follows
 * its key's latest version (the customer gave a versionless key URI).
 * layer[1].key_id is still the version that wrapped KEK_C, the one that
 * unwraps it; the key-check loop re-wraps to a newer version when one
 * appears (doc/KEYS.md "Automatic rotation"). */
#define VOLUME_FLAG_FOLLOW 0x0008
#define VOLUME_SECRET_LEN 64		/* v2: the volume secret M */
/* nonce_o ‖ GCM(KEK_C, nonce_i ‖ GCM(KEK_S, M) ‖ tag_i) ‖ tag_o */
#define VOLUME_SECRET_WRAPPED_LEN (VOLUME_SECRET_LEN + 2 * (12 + 16))
#define VOLUME_ID_LEN 16
#define VOLUME_SUITE_GCM_GCM_SIV 1	/* the only suite of format v1 */
#define VOLUME_KEYID_MAX 1024
#define VOLUME_WRAPPED_MAX 1024
#define VOLUME_MAX_LEN 8192	/* v1 configs are at most 4096 */
#define BLOCK_SIZE_MIN 512u
#define BLOCK_SIZE_MAX (1u << 20)
#define BLOCK_SIZE_DEFAULT 4096u

enum kprov_type {
	KPROV_LOCAL = 1,	/* wrapped under a key derived from the service key */
	KPROV_AKV = 2,		/* wrapped by Azure Key Vault / Managed HSM */
};

/* Index 0: layer S (inner, service side); 1: layer C (outer, customer side). */
struct vol_layer {
	uint8_t prov;				/* enum kprov_type */
	char key_id[VOLUME_KEYID_MAX + 1];	/* NUL-terminated, no NULs inside */
	uint16_t wrapped_len;
	uint8_t wrapped[VOLUME_WRAPPED_MAX];
};

struct volume {
	uint16_t version;	/* 1, 2 or 3 (doc/FORMAT.md §1) */
	uint16_t flags;		/* v2: VOLUME_FLAG_REKEY */
	uint8_t volume_id[VOLUME_ID_LEN];
	uint32_t block_size;
	uint16_t suite;
	uint32_t kek_gen;
	uint64_t created_sec;
	struct vol_layer layer[2];
	/* v2: M wrapped by KEK_S, then by KEK_C (keyring.c). */
	uint8_t secret_wrapped[VOLUME_SECRET_WRAPPED_LEN];
	/* v2 with VOLUME_FLAG_REKEY: the previous generation's KEKs, wrapped
	 * by the same providers as layer[] (rekey keeps them until every
	 * header is re-wrapped). */
	uint32_t prev_gen;
	uint16_t prev_wrapped_len[2];
	uint8_t prev_wrapped[2][VOLUME_WRAPPED_MAX];
	/* v2 with VOLUME_FLAG_FULL: the previous generation's M, wrapped as
	 * secret_wrapped is but by the previous KEKs and naming prev_gen. */
	uint8_t prev_secret_wrapped[VOLUME_SECRET_WRAPPED_LEN];
	/* v3: the version of the sealed transient-zone list the volume has
	 * (0: none), so that deleting or rolling back the list alone is
	 * seen (doc/FORMAT.md §1, "Format 3"). */
	uint64_t zones_version;
	uint8_t mac[HMAC_LEN];
};

/* Errors: -EBADMSG (malformed or unknown anything). */
CMK_MUST_CHECK int volume_parse(const uint8_t *buf, size_t len,
				struct volume *v);
/* Serialise everything including v->mac. *len gets the total length; the
 * MAC covers the first *len - HMAC_LEN bytes. Errors: -ENOSPC, -EINVAL. */
CMK_MUST_CHECK int volume_serialize(const struct volume *v, uint8_t *buf,
				    size_t cap, size_t *len);
/* Compute the MAC of `v` under mac_key into v->mac. */
CMK_MUST_CHECK int volume_seal_mac(struct volume *v,
				   const uint8_t mac_key[static 32]);
/* 0 if v->mac is right under mac_key, else -EBADMSG. */
CMK_MUST_CHECK int volume_check_mac(const struct volume *v,
				    const uint8_t mac_key[static 32]);
/* A valid block size: power of two in [BLOCK_SIZE_MIN, BLOCK_SIZE_MAX]. */
int volume_block_size_ok(uint64_t bs);
const char *volume_prov_name(uint8_t prov);
/* The volume id as 32 lowercase hex digits (logs, audit, status). */
#define VOLUME_ID_HEX_LEN (2 * VOLUME_ID_LEN + 1)
void volume_id_hex(const struct volume *v, char out[static VOLUME_ID_HEX_LEN]);

#endif
