/* include/cmkfs/names.h — encryption of file names, symlink targets and
 * user xattrs (doc/FORMAT.md §4). AES-256-SIV under the volume name key,
 * which is derived from both layers' KEKs, so both are needed to read a
 * name. Names are bound to their directory's random id; base64url text on
 * disk never contains '.', so every backing name that starts with
 * RESERVED_PREFIX (reserved.h) is ours. Pure, thread-safe. */
#ifndef CMKFS_NAMES_H
#define CMKFS_NAMES_H

#include "cmkfs/aead.h"
#include "cmkfs/common.h"
#include "cmkfs/reserved.h"

#define NAME_KEY_LEN SIV_KEY_LEN
#define DIRID_LEN 16
#define LONGNAME_HASH_B64 43			/* SHA-256, base64url */
#define LONGNAME_LEN (sizeof(LONGNAME_PREFIX) - 1 + LONGNAME_HASH_B64)
#define ENCNAME_MAX 400				/* b64(16 + 256) = 363 + slack */
#define NAME_LONG_THRESHOLD 255			/* longer encodings go long */
#define SYMLINK_TARGET_MAX 4095			/* PATH_MAX - 1, as Linux */
#define ENCLINK_MAX 5536			/* format 3: b64(32 + 4096) =
					 * 5504 + NUL, rounded up */
#define XATTR_PREFIX "user."
#define XATTR_NAME_PLAIN_MAX 160		/* after "user." */

/* Encrypt a name (1..255 bytes, no '/' or NUL, not . or ..) in directory
 * `dirid` into NUL-terminated base64url `out`.
 * Errors: -EINVAL (bad name), -ENAMETOOLONG, -EIO. */
CMK_MUST_CHECK int names_encrypt(const uint8_t key[static NAME_KEY_LEN],
				 const uint8_t dirid[static DIRID_LEN],
				 const char *name, size_t len, char *out,
				 size_t cap);
/* Decrypt `enc` (enc_len chars) to a NUL-terminated name in out (cap >= 256).
 * Errors: -EBADMSG (not ours, tampered, or decrypts to an invalid name). */
CMK_MUST_CHECK int names_decrypt(const uint8_t key[static NAME_KEY_LEN],
				 const uint8_t dirid[static DIRID_LEN],
				 const char *enc, size_t enc_len, char *out,
				 size_t cap);
/* The backing name for an encrypted name: itself if short enough, else
 * LONGNAME_PREFIX + base64url(SHA-256(enc)). out has LONGNAME_LEN+1 bytes
 * at least, or strlen(enc)+1. Returns 1 if it is a long name, 0 if not. */
CMK_MUST_CHECK int names_backing(const char *enc, char *out, size_t cap);
/* The encrypted name behind long-name entry `bname` from the len bytes of
 * its side file in buf (which has room for len + 1): NUL-terminated in
 * place, it must be long and hash to bname. Errors: -EBADMSG. */
CMK_MUST_CHECK int names_longname_open(const char *bname, char *buf,
				       size_t len);
/* 1 if `bname` is a long-name entry (not its .name side file). */
int names_is_longname(const char *bname);
/* 1 if `bname` is one of ours (starts with RESERVED_PREFIX): a long-name
 * entry, its side file, a temporary or a fixed name of reserved.h. The one
 * test for "not an encrypted name"; callers that list entries keep
 * names_is_longname() ones. */
int names_is_reserved(const char *bname);
/* 1 if `bname` is a temporary of an operation in flight (TMP_PREFIX). */
int names_is_tmp(const char *bname);
/* The side file of long-name entry `bname`: bname + LONGNAME_SUFFIX,
 * NUL-terminated in out. Errors: -ENAMETOOLONG (does not fit in cap). */
CMK_MUST_CHECK int names_side_name(const char *bname, char *out, size_t cap);
/* 1 if `bname` has the form of a side file: a reserved name ending in
 * LONGNAME_SUFFIX, with something before it. */
int names_is_side(const char *bname);
/* The inverse of names_side_name(): the entry whose side file is `side`
 * (side without LONGNAME_SUFFIX), NUL-terminated in out. Errors: -EINVAL
 * (not names_is_side()), -ENAMETOOLONG (does not fit in cap). */
CMK_MUST_CHECK int names_side_owner(const char *side, char *out, size_t cap);

/* Format 3: the location token of backing entry `bname` (its base name
 * in its backing directory): the first NAMES_TOKEN_LEN bytes of
 * SHA-256("cmkfs v3 link" ‖ bname). An encrypted name is already bound to
 * its directory's id, so the token names a (directory, name) pair; it is a
 * function of public bytes and reveals nothing. File headers and
 * directory ids carry the tokens of where they live (doc/FORMAT.md §2,
 * §4.1). Errors: -EIO. */
#define NAMES_TOKEN_LEN 8
CMK_MUST_CHECK int names_link_token(const char *bname,
				    uint8_t out[static NAMES_TOKEN_LEN]);

CMK_MUST_CHECK int names_symlink_encrypt(const uint8_t key[static NAME_KEY_LEN],
					 const char *target, size_t len,
					 char *out, size_t cap);
CMK_MUST_CHECK int names_symlink_decrypt(const uint8_t key[static NAME_KEY_LEN],
					 const char *enc, size_t enc_len,
					 char *out, size_t cap, size_t *out_len);

/* xattr "user.X" -> backing "user." + b64(SIV(X)); values SIV-sealed with
 * the plaintext name as AAD: tag ‖ SIV(0x01 ‖ value), that is
 * value_len + XATTR_VALUE_OVERHEAD bytes. */
#define XATTR_VALUE_VERSION 1
#define XATTR_VALUE_OVERHEAD (SIV_TAG_LEN + 1)
CMK_MUST_CHECK int names_xattr_name_encrypt(const uint8_t key[static NAME_KEY_LEN],
					    const char *name, char *out,
					    size_t cap);
CMK_MUST_CHECK int names_xattr_name_decrypt(const uint8_t key[static NAME_KEY_LEN],
					    const char *bname, char *out,
					    size_t cap);
CMK_MUST_CHECK int names_xattr_value_seal(const uint8_t key[static NAME_KEY_LEN],
					  const char *name, const uint8_t *val,
					  size_t len, uint8_t *out);
CMK_MUST_CHECK int names_xattr_value_open(const uint8_t key[static NAME_KEY_LEN],
					  const char *name, const uint8_t *in,
					  size_t in_len, uint8_t *out);

/* Format 3 (doc/FORMAT.md §4.3, §4.4): symlink targets and xattr values
 * are randomized (a fresh 16-byte nonce as the last AAD component of SIV,
 * RFC 5297 §3) and bound to their owner, so that equal values do not show
 * and none can be copied or moved to another owner. The format-1/2
 * encodings above never open here. */
#define NAMES_NONCE_LEN 16

/* Where a symlink lives: the id of its directory and the location token
 * of its own backing name. */
struct names_loc {
	uint8_t dirid[DIRID_LEN];
	uint8_t tok[NAMES_TOKEN_LEN];
};
/* loc for backing entry `bname` in the directory of id `dirid`.
 * Errors: as names_link_token(). */
CMK_MUST_CHECK int names_loc_set(struct names_loc *loc,
				 const uint8_t dirid[static DIRID_LEN],
				 const char *bname);

/* E3 = base64url(nonce ‖ tag ‖ SIV(key, AAD ["L3", dirid, tok, nonce],
 * pad16(target))) into out (NUL-terminated; cap >= ENCLINK_MAX for any
 * target). _nonce takes the nonce (known-answer tests); the other draws
 * it at random. Errors: -ENOENT (empty), -ENAMETOOLONG, -ENOSPC, -EIO. */
CMK_MUST_CHECK int names_target_seal3(const uint8_t key[static NAME_KEY_LEN],
				      const struct names_loc *loc,
				      const char *target, size_t len,
				      char *out, size_t cap);
CMK_MUST_CHECK int names_target_seal3_nonce(
	const uint8_t key[static NAME_KEY_LEN], const struct names_loc *loc,
	const uint8_t nonce[static NAMES_NONCE_LEN], const char *target,
	size_t len, char *out, size_t cap);
/* Open E3 (enc_len characters) into out, NUL-terminated, its length in
 * *out_len. Errors: -EBADMSG (not E3, another location or key, tampered,
 * an empty target or one with a NUL), -ENOSPC. */
CMK_MUST_CHECK int names_target_open3(const uint8_t key[static NAME_KEY_LEN],
				      const struct names_loc *loc,
				      const char *enc, size_t enc_len,
				      char *out, size_t cap, size_t *out_len);
/* Either format: loc NULL is format 1/2 (names_symlink_*), else format 3. */
CMK_MUST_CHECK int names_target_seal(const uint8_t key[static NAME_KEY_LEN],
				     const struct names_loc *loc,
				     const char *target, size_t len, char *out,
				     size_t cap);
CMK_MUST_CHECK int names_target_open(const uint8_t key[static NAME_KEY_LEN],
				     const struct names_loc *loc,
				     const char *enc, size_t enc_len, char *out,
				     size_t cap, size_t *out_len);

/* An xattr value in format 3: nonce ‖ tag ‖ SIV(key, AAD ["V3", owner,
 * name, nonce], 0x02 ‖ value), value_len + XATTR_VALUE3_OVERHEAD bytes.
 * owner: the regular file's file id (header bytes 12..27) or the
 * directory's id; name: the plaintext "user.X". */
#define NAMES_OWNER_LEN 16
#define XATTR_VALUE3_VERSION 2
#define XATTR_VALUE3_OVERHEAD (NAMES_NONCE_LEN + SIV_TAG_LEN + 1)
CMK_MUST_CHECK int names_xattr_value_seal3(
	const uint8_t key[static NAME_KEY_LEN],
	const uint8_t owner[static NAMES_OWNER_LEN], const char *name,
	const uint8_t *val, size_t len, uint8_t *out);
CMK_MUST_CHECK int names_xattr_value_seal3_nonce(
	const uint8_t key[static NAME_KEY_LEN],
	const uint8_t owner[static NAMES_OWNER_LEN], const char *name,
	const uint8_t nonce[static NAMES_NONCE_LEN], const uint8_t *val,
	size_t len, uint8_t *out);
/* Open in_len bytes into out (room for in_len bytes); the value is
 * in_len - XATTR_VALUE3_OVERHEAD bytes. Errors: -EBADMSG, -ENOMEM. */
CMK_MUST_CHECK int names_xattr_value_open3(
	const uint8_t key[static NAME_KEY_LEN],
	const uint8_t owner[static NAMES_OWNER_LEN], const char *name,
	const uint8_t *in, size_t in_len, uint8_t *out);
/* Either format: owner NULL is format 1/2. The overhead of each. */
static inline size_t names_xattr_overhead(const uint8_t *owner)
{
	return owner != NULL ? XATTR_VALUE3_OVERHEAD : XATTR_VALUE_OVERHEAD;
}
CMK_MUST_CHECK int names_xattr_seal(const uint8_t key[static NAME_KEY_LEN],
				    const uint8_t *owner, const char *name,
				    const uint8_t *val, size_t len,
				    uint8_t *out);
CMK_MUST_CHECK int names_xattr_open(const uint8_t key[static NAME_KEY_LEN],
				    const uint8_t *owner, const char *name,
				    const uint8_t *in, size_t in_len,
				    uint8_t *out);

#endif
