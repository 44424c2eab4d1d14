/* src/format/names.c — name, symlink and xattr encryption
 * (doc/FORMAT.md §4). Names are padded to 16 bytes (PKCS#7) so only their
 * length class leaks, as gocryptfs does (Documentation/file-format.md). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cmkfs/b64.h"
#include "cmkfs/kdf.h"
#include "cmkfs/names.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"

#define PAD 16
#define NAME_MAX_PLAIN 255
#define AAD_MAX (1 + 256)

enum { DOM_NAME = 'N', DOM_LINK = 'L', DOM_XNAME = 'X', DOM_XVAL = 'V' };

/* Seal pad16(data) under `aad`, write base64url(tag ‖ ct) into out. */
static int seal_b64(const uint8_t key[static NAME_KEY_LEN], const uint8_t *aad,
		    size_t aad_len, const char *data, size_t len, char *out,
		    size_t cap)
{
	size_t plen = (len / PAD + 1) * PAD;
	uint8_t *buf;
	int rc;

	buf = malloc(SIV_TAG_LEN + 2 * plen);
	if (buf == NULL)
		return -ENOMEM;
	uint8_t *pt = buf + SIV_TAG_LEN + plen;

	memcpy(pt, data, len);
	memset(pt + len, (int)(plen - len), plen - len);
	rc = aead_siv_seal(key, aad, aad_len, pt, plen, buf + SIV_TAG_LEN, buf);
	if (rc == 0)
		rc = b64_encode(buf, SIV_TAG_LEN + plen, out, cap);
	secmem_wipe(buf, SIV_TAG_LEN + 2 * plen);
	free(buf);
	return rc;
}

/* Inverse of seal_b64: out gets the unpadded bytes (not NUL-terminated). */
static int open_b64(const uint8_t key[static NAME_KEY_LEN], const uint8_t *aad,
		    size_t aad_len, const char *enc, size_t enc_len,
		    uint8_t *out, size_t cap, size_t *out_len)
{
	size_t raw_cap = enc_len, raw_len, plen, pad;
	uint8_t *raw;
	int rc = -EBADMSG;

	if (enc_len < 4 || enc_len > ENCLINK_MAX + 64)
		return -EBADMSG;
	raw = malloc(raw_cap);
	if (raw == NULL)
		return -ENOMEM;
	if (b64_decode(enc, enc_len, raw, raw_cap, &raw_len) < 0 ||
	    raw_len < SIV_TAG_LEN + PAD ||
	    (raw_len - SIV_TAG_LEN) % PAD != 0)
		goto out;
	plen = raw_len - SIV_TAG_LEN;
	rc = aead_siv_open(key, aad, aad_len, raw + SIV_TAG_LEN, plen,
			   raw + SIV_TAG_LEN, raw);
	if (rc < 0) {
		rc = -EBADMSG;
		goto out;
	}
	rc = -EBADMSG;
	pad = raw[raw_len - 1];
	if (pad == 0 || pad > PAD || pad > plen)
		goto out;
	for (size_t i = 0; i < pad; i++) {
		if (raw[raw_len - 1 - i] != pad)
			goto out;
	}
	if (plen - pad > cap)
		goto out;
	memcpy(out, raw + SIV_TAG_LEN, plen - pad);
	*out_len = plen - pad;
	rc = 0;
out:
	secmem_wipe(raw, raw_cap);
	free(raw);
	return rc;
}

static int name_valid(const char *name, size_t len)
{
	if (len == 0 || len > NAME_MAX_PLAIN)
		return 0;
	if (memchr(name, '/', len) || memchr(name, '\0', len))
		return 0;
	if ((len == 1 && name[0] == '.') ||
	    (len == 2 && name[0] == '.' && name[1] == '.'))
		return 0;
	return 1;
}

int names_encrypt(const uint8_t key[static NAME_KEY_LEN],
		  const uint8_t dirid[static DIRID_LEN], const char *name,
		  size_t len, char *out, size_t cap)
{
	uint8_t aad[1 + DIRID_LEN];

	if (len > NAME_MAX_PLAIN)
		return -ENAMETOOLONG;
	if (!name_valid(name, len))
		return -EINVAL;
	aad[0] = DOM_NAME;
	memcpy(aad + 1, dirid, DIRID_LEN);
	return seal_b64(key, aad, sizeof(aad), name, len, out, cap);
}

int names_decrypt(const uint8_t key[static NAME_KEY_LEN],
		  const uint8_t dirid[static DIRID_LEN], const char *enc,
		  size_t enc_len, char *out, size_t cap)
{
	uint8_t aad[1 + DIRID_LEN];
	size_t n;
	int rc;

	if (cap < NAME_MAX_PLAIN + 1)
		return -ENOSPC;
	aad[0] = DOM_NAME;
	memcpy(aad + 1, dirid, DIRID_LEN);
	rc = open_b64(key, aad, sizeof(aad), enc, enc_len, (uint8_t *)out,
		      cap - 1, &n);
	if (rc < 0)
		return rc;
	if (!name_valid(out, n))
		return -EBADMSG;	/* hostile: '/', NUL, "." or ".." */
	out[n] = '\0';
	return 0;
}

int names_backing(const char *enc, char *out, size_t cap)
{
	size_t len = strlen(enc);
	uint8_t md[32];
	size_t pl = sizeof(LONGNAME_PREFIX) - 1;

	if (len <= NAME_LONG_THRESHOLD) {
		if (cap < len + 1)
			return -ENOSPC;
		memcpy(out, enc, len + 1);
		return 0;
	}
	if (cap < LONGNAME_LEN + 1 || kdf_sha256(enc, len, md) < 0)
		return -ENOSPC;
	memcpy(out, LONGNAME_PREFIX, pl);
	if (b64_encode(md, sizeof(md), out + pl, cap - pl) < 0)
		return -ENOSPC;
	return 1;
}

int names_longname_open(const char *bname, char *buf, size_t len)
{
	char check[LONGNAME_LEN + 1];

	buf[len] = '\0';
	if (names_backing(buf, check, sizeof(check)) != 1 ||
	    strcmp(check, bname) != 0)
		return -EBADMSG;
	return 0;
}

int names_is_longname(const char *bname)
{
	return strncmp(bname, LONGNAME_PREFIX, sizeof(LONGNAME_PREFIX) - 1) ==
		       0 &&
	       strlen(bname) == LONGNAME_LEN;
}

int names_is_reserved(const char *bname)
{
	return strncmp(bname, RESERVED_PREFIX, sizeof(RESERVED_PREFIX) - 1) ==
	       0;
}

int names_is_tmp(const char *bname)
{
	return strncmp(bname, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0;
}

int names_side_name(const char *bname, char *out, size_t cap)
{
	size_t n = strlen(bname);

	if (n + sizeof(LONGNAME_SUFFIX) > cap)
		return -ENAMETOOLONG;
	memcpy(out, bname, n);
	memcpy(out + n, LONGNAME_SUFFIX, sizeof(LONGNAME_SUFFIX));
	return 0;
}

int names_is_side(const char *bname)
{
	size_t n = strlen(bname), sl = sizeof(LONGNAME_SUFFIX) - 1;

	return names_is_reserved(bname) && n > sl &&
	       strcmp(bname + n - sl, LONGNAME_SUFFIX) == 0;
}

int names_side_owner(const char *side, char *out, size_t cap)
{
	size_t n;

	if (!names_is_side(side))
		return -EINVAL;
	n = strlen(side) - (sizeof(LONGNAME_SUFFIX) - 1);
	if (n >= cap)
		return -ENAMETOOLONG;
	memcpy(out, side, n);
	out[n] = '\0';
	return 0;
}

int names_symlink_encrypt(const uint8_t key[static NAME_KEY_LEN],
			  const char *target, size_t len, char *out, size_t cap)
{
	uint8_t aad = DOM_LINK;

	if (len == 0)
		return -ENOENT;
	if (len > SYMLINK_TARGET_MAX)
		return -ENAMETOOLONG;
	return seal_b64(key, &aad, 1, target, len, out, cap);
}

int names_symlink_decrypt(const uint8_t key[static NAME_KEY_LEN],
			  const char *enc, size_t enc_len, char *out,
			  size_t cap, size_t *out_len)
{
	uint8_t aad = DOM_LINK;
	int rc;

	if (cap < 1)
		return -ENOSPC;
	rc = open_b64(key, &aad, 1, enc, enc_len, (uint8_t *)out, cap - 1,
		      out_len);
	if (rc == 0)
		out[*out_len] = '\0';
	return rc;
}

int names_xattr_name_encrypt(const uint8_t key[static NAME_KEY_LEN],
			     const char *name, char *out, size_t cap)
{
	size_t pl = sizeof(XATTR_PREFIX) - 1, len;
	uint8_t aad = DOM_XNAME;

	if (strncmp(name, XATTR_PREFIX, pl) != 0)
		return -EOPNOTSUPP;
	len = strlen(name + pl);
	if (len == 0)
		return -EINVAL;
	if (len > XATTR_NAME_PLAIN_MAX)
		return -ERANGE;
	if (cap < pl + 1)
		return -ERANGE;
	memcpy(out, XATTR_PREFIX, pl);
	return seal_b64(key, &aad, 1, name + pl, len, out + pl, cap - pl);
}

int names_xattr_name_decrypt(const uint8_t key[static NAME_KEY_LEN],
			     const char *bname, char *out, size_t cap)
{
	size_t pl = sizeof(XATTR_PREFIX) - 1, n;
	uint8_t aad = DOM_XNAME;
	int rc;

	if (strncmp(bname, XATTR_PREFIX, pl) != 0 || cap < pl + 1)
		return -EBADMSG;
	memcpy(out, XATTR_PREFIX, pl);
	rc = open_b64(key, &aad, 1, bname + pl, strlen(bname + pl),
		      (uint8_t *)out + pl, cap - pl - 1, &n);
	if (rc < 0)
		return rc;
	if (n == 0 || memchr(out + pl, '\0', n))
		return -EBADMSG;
	out[pl + n] = '\0';
	return 0;
}

int names_xattr_value_seal(const uint8_t key[static NAME_KEY_LEN],
			   const char *name, const uint8_t *val, size_t len,
			   uint8_t *out)
{
	uint8_t aad[AAD_MAX], *pt;
	size_t nl = strnlen(name, AAD_MAX - 1);
	int rc;

	/* A version byte first: SIV through EVP cannot seal empty data, and
	 * empty xattr values are common (rsync -X). */
	pt = malloc(len + 1);
	if (pt == NULL)
		return -ENOMEM;
	pt[0] = XATTR_VALUE_VERSION;
	if (len > 0)
		memcpy(pt + 1, val, len);
	aad[0] = DOM_XVAL;
	memcpy(aad + 1, name, nl);
	rc = aead_siv_seal(key, aad, 1 + nl, pt, len + 1, out + SIV_TAG_LEN,
			   out);
	secmem_wipe(pt, len + 1);
	free(pt);
	return rc;
}

int names_xattr_value_open(const uint8_t key[static NAME_KEY_LEN],
			   const char *name, const uint8_t *in, size_t in_len,
			   uint8_t *out)
{
	uint8_t aad[AAD_MAX], *pt;
	size_t nl = strnlen(name, AAD_MAX - 1), len;
	int rc;

	if (in_len < XATTR_VALUE_OVERHEAD)
		return -EBADMSG;
	len = in_len - SIV_TAG_LEN;
	pt = malloc(len);
	if (pt == NULL)
		return -ENOMEM;
	aad[0] = DOM_XVAL;
	memcpy(aad + 1, name, nl);
	rc = aead_siv_open(key, aad, 1 + nl, in + SIV_TAG_LEN, len, pt, in);
	if (rc == 0 && pt[0] != XATTR_VALUE_VERSION)
		rc = -EBADMSG;
	if (rc == 0 && len > 1)
		memcpy(out, pt + 1, len - 1);
	secmem_wipe(pt, len);
	free(pt);
	return rc;
}

int names_link_token(const char *bname, uint8_t out[static NAMES_TOKEN_LEN])
{
	static const char label[] = "cmkfs v3 link";
	size_t n = strlen(bname);
	uint8_t buf[sizeof(label) - 1 + NAME_MAX + 1];
	uint8_t md[32];
	int rc;

	if (n > NAME_MAX)
		return -ENAMETOOLONG;
	memcpy(buf, label, sizeof(label) - 1);
	memcpy(buf + sizeof(label) - 1, bname, n);
	rc = kdf_sha256(buf, sizeof(label) - 1 + n, md);
	if (rc == 0)
		memcpy(out, md, NAMES_TOKEN_LEN);
	return rc;
}

int names_loc_set(struct names_loc *loc, const uint8_t dirid[static DIRID_LEN],
		  const char *bname)
{
	memcpy(loc->dirid, dirid, DIRID_LEN);
	return names_link_token(bname, loc->tok);
}

/* The AAD components of a format-3 target: the nonce last (RFC 5297 §3). */
static void link_parts(const struct names_loc *loc, const uint8_t *nonce,
		       struct aead_part p[static 4])
{
	static const uint8_t dom[2] = { 'L', '3' };

	p[0] = (struct aead_part){ dom, sizeof(dom) };
	p[1] = (struct aead_part){ loc->dirid, DIRID_LEN };
	p[2] = (struct aead_part){ loc->tok, NAMES_TOKEN_LEN };
	p[3] = (struct aead_part){ nonce, NAMES_NONCE_LEN };
}

int names_target_seal3_nonce(const uint8_t key[static NAME_KEY_LEN],
			     const struct names_loc *loc,
			     const uint8_t nonce[static NAMES_NONCE_LEN],
			     const char *target, size_t len, char *out,
			     size_t cap)
{
	const size_t hl = NAMES_NONCE_LEN + SIV_TAG_LEN;
	struct aead_part parts[4];
	size_t plen = (len / PAD + 1) * PAD;
	uint8_t *buf;
	int rc;

	if (len == 0)
		return -ENOENT;
	if (len > SYMLINK_TARGET_MAX)
		return -ENAMETOOLONG;
	buf = malloc(hl + 2 * plen);
	if (buf == NULL)
		return -ENOMEM;
	uint8_t *pt = buf + hl + plen;

	memcpy(pt, target, len);
	memset(pt + len, (int)(plen - len), plen - len);
	memcpy(buf, nonce, NAMES_NONCE_LEN);
	link_parts(loc, buf, parts);
	rc = aead_siv_seal_parts(key, parts, 4, pt, plen, buf + hl,
				 buf + NAMES_NONCE_LEN);
	if (rc == 0)
		rc = b64_encode(buf, hl + plen, out, cap);
	secmem_wipe(buf, hl + 2 * plen);
	free(buf);
	return rc;
}

int names_target_seal3(const uint8_t key[static NAME_KEY_LEN],
		       const struct names_loc *loc, const char *target,
		       size_t len, char *out, size_t cap)
{
	uint8_t nonce[NAMES_NONCE_LEN];
	int rc = rand_bytes(nonce, sizeof(nonce));

	return rc < 0 ? rc : names_target_seal3_nonce(key, loc, nonce, target,
						       len, out, cap);
}

int names_target_open3(const uint8_t key[static NAME_KEY_LEN],
		       const struct names_loc *loc, const char *enc,
		       size_t enc_len, char *out, size_t cap, size_t *out_len)
{
	const size_t hl = NAMES_NONCE_LEN + SIV_TAG_LEN;
	struct aead_part parts[4];
	size_t raw_len, plen, pad, n;
	uint8_t *raw;
	int rc = -EBADMSG;

	if (cap < 1)
		return -ENOSPC;
	if (enc_len < 4 || enc_len > ENCLINK_MAX)
		return -EBADMSG;
	raw = malloc(enc_len);
	if (raw == NULL)
		return -ENOMEM;
	if (b64_decode(enc, enc_len, raw, enc_len, &raw_len) < 0 ||
	    raw_len < hl + PAD || (raw_len - hl) % PAD != 0)
		goto out;
	plen = raw_len - hl;
	link_parts(loc, raw, parts);
	if (aead_siv_open_parts(key, parts, 4, raw + hl, plen, raw + hl,
				raw + NAMES_NONCE_LEN) < 0)
		goto out;
	pad = raw[raw_len - 1];
	if (pad == 0 || pad > PAD)
		goto out;
	for (size_t i = 0; i < pad; i++)
		if (raw[raw_len - 1 - i] != pad)
			goto out;
	n = plen - pad;
	/* hostile: a target the kernel could never have handed us */
	if (n == 0 || n > SYMLINK_TARGET_MAX || memchr(raw + hl, 0, n) != NULL)
		goto out;
	if (n > cap - 1) {
		rc = -ENOSPC;
		goto out;
	}
	memcpy(out, raw + hl, n);
	out[n] = '\0';
	*out_len = n;
	rc = 0;
out:
	secmem_wipe(raw, enc_len);
	free(raw);
	return rc;
}

int names_target_seal(const uint8_t key[static NAME_KEY_LEN],
		      const struct names_loc *loc, const char *target,
		      size_t len, char *out, size_t cap)
{
	if (loc == NULL)
		return names_symlink_encrypt(key, target, len, out, cap);
	return names_target_seal3(key, loc, target, len, out, cap);
}

int names_target_open(const uint8_t key[static NAME_KEY_LEN],
		      const struct names_loc *loc, const char *enc,
		      size_t enc_len, char *out, size_t cap, size_t *out_len)
{
	if (loc == NULL)
		return names_symlink_decrypt(key, enc, enc_len, out, cap,
					     out_len);
	return names_target_open3(key, loc, enc, enc_len, out, cap, out_len);
}

static int xval_parts(const uint8_t *owner, const char *name,
		      const uint8_t *nonce, struct aead_part p[static 4])
{
	static const uint8_t dom[2] = { 'V', '3' };
	size_t nl = strnlen(name, AAD_MAX);

	if (nl >= AAD_MAX)
		return -EINVAL;
	p[0] = (struct aead_part){ dom, sizeof(dom) };
	p[1] = (struct aead_part){ owner, NAMES_OWNER_LEN };
	p[2] = (struct aead_part){ (const uint8_t *)name, nl };
	p[3] = (struct aead_part){ nonce, NAMES_NONCE_LEN };
	return 0;
}

int names_xattr_value_seal3_nonce(const uint8_t key[static NAME_KEY_LEN],
				  const uint8_t owner[static NAMES_OWNER_LEN],
				  const char *name,
				  const uint8_t nonce[static NAMES_NONCE_LEN],
				  const uint8_t *val, size_t len, uint8_t *out)
{
	const size_t hl = NAMES_NONCE_LEN + SIV_TAG_LEN;
	struct aead_part parts[4];
	uint8_t *pt;
	int rc;

	pt = malloc(len + 1);
	if (pt == NULL)
		return -ENOMEM;
	pt[0] = XATTR_VALUE3_VERSION;
	if (len > 0)
		memcpy(pt + 1, val, len);
	memcpy(out, nonce, NAMES_NONCE_LEN);
	rc = xval_parts(owner, name, out, parts);
	if (rc == 0)
		rc = aead_siv_seal_parts(key, parts, 4, pt, len + 1, out + hl,
					 out + NAMES_NONCE_LEN);
	secmem_wipe(pt, len + 1);
	free(pt);
	return rc;
}

int names_xattr_value_seal3(const uint8_t key[static NAME_KEY_LEN],
			    const uint8_t owner[static NAMES_OWNER_LEN],
			    const char *name, const uint8_t *val, size_t len,
			    uint8_t *out)
{
	uint8_t nonce[NAMES_NONCE_LEN];
	int rc = rand_bytes(nonce, sizeof(nonce));

	return rc < 0 ? rc : names_xattr_value_seal3_nonce(key, owner, name,
							   nonce, val, len,
							   out);
}

int names_xattr_value_open3(const uint8_t key[static NAME_KEY_LEN],
			    const uint8_t owner[static NAMES_OWNER_LEN],
			    const char *name, const uint8_t *in, size_t in_len,
			    uint8_t *out)
{
	const size_t hl = NAMES_NONCE_LEN + SIV_TAG_LEN;
	struct aead_part parts[4];
	uint8_t *pt;
	size_t len;
	int rc;

	if (in_len < XATTR_VALUE3_OVERHEAD)
		return -EBADMSG;
	len = in_len - hl;
	if (xval_parts(owner, name, in, parts) < 0)
		return -EBADMSG;
	pt = malloc(len);
	if (pt == NULL)
		return -ENOMEM;
	rc = aead_siv_open_parts(key, parts, 4, in + hl, len, pt,
				 in + NAMES_NONCE_LEN);
	if (rc == 0 && pt[0] != XATTR_VALUE3_VERSION)
		rc = -EBADMSG;
	if (rc < 0)
		rc = -EBADMSG;
	else if (len > 1)
		memcpy(out, pt + 1, len - 1);
	secmem_wipe(pt, len);
	free(pt);
	return rc;
}

int names_xattr_seal(const uint8_t key[static NAME_KEY_LEN],
		     const uint8_t *owner, const char *name,
		     const uint8_t *val, size_t len, uint8_t *out)
{
	if (owner == NULL)
		return names_xattr_value_seal(key, name, val, len, out);
	return names_xattr_value_seal3(key, owner, name, val, len, out);
}

int names_xattr_open(const uint8_t key[static NAME_KEY_LEN],
		     const uint8_t *owner, const char *name, const uint8_t *in,
		     size_t in_len, uint8_t *out)
{
	if (owner == NULL)
		return names_xattr_value_open(key, name, in, in_len, out);
	return names_xattr_value_open3(key, owner, name, in, in_len, out);
}
