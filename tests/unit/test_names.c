/* tests/unit/test_names.c — name, symlink and xattr encryption: known
 * answers from tests/vectors/ref_format.py, round trips at every length,
 * long-name switch, directory binding, tamper and hostile plaintexts. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include "cmkfs/b64.h"
#include "cmkfs/names.h"
#include "../lib/tap.h"

/* Flip every byte of raw (n bytes, base64url-encoded for a target) and
 * expect each to fail to open. */
static int flips_target(const uint8_t *key, const struct names_loc *loc,
			const char *enc)
{
	static uint8_t raw[ENCLINK_MAX];
	static char e2[ENCLINK_MAX], back[ENCLINK_MAX];
	size_t rl = 0, n;

	CHECK_RC(b64_decode(enc, strlen(enc), raw, sizeof(raw), &rl), 0);
	for (size_t i = 0; i < rl; i++) {
		raw[i] ^= 0x01;
		CHECK_RC(b64_encode(raw, rl, e2, sizeof(e2)), 0);
		CHECK_RC(names_target_open3(key, loc, e2, strlen(e2), back,
					    sizeof(back), &n),
			 -EBADMSG);
		raw[i] ^= 0x01;
	}
	return 0;
}

/* Format 3: randomized targets and xattr values bound to their owner. */
static int test_v3(const uint8_t *key, const uint8_t *dirid,
		   const uint8_t *dirid2)
{
	static char e1[ENCLINK_MAX], e2[ENCLINK_MAX], back[ENCLINK_MAX],
		big[SYMLINK_TARGET_MAX + 2];
	struct names_loc loc, other;
	uint8_t nonce[NAMES_NONCE_LEN], owner[NAMES_OWNER_LEN],
		owner2[NAMES_OWNER_LEN], key2[NAME_KEY_LEN], val[40],
		s1[40 + XATTR_VALUE3_OVERHEAD], s2[40 + XATTR_VALUE3_OVERHEAD],
		out[40 + XATTR_VALUE3_OVERHEAD], old[40 + XATTR_VALUE_OVERHEAD];
	size_t n;

	memcpy(key2, key, NAME_KEY_LEN);
	key2[0] ^= 1;
	CHECK_RC(names_loc_set(&loc, dirid, "abc"), 0);

	/* Known answer from tests/vectors/ref_format.py (python3-cryptography
	 * AESSIV with a list of AAD components). */
	t_fill(nonce, sizeof(nonce), 23);
	CHECK_RC(names_target_seal3_nonce(key, &loc, nonce, "../target", 9, e1,
					  sizeof(e1)),
		 0);
	CHECK(strcmp(e1, "GwWBWskjqvwvBLaMOO1WtEekSqSYvm3uy0SppPOp8TMq7XuLRWXF"
			 "COc9uNxgy-_j") == 0,
	      "frozen format-3 target: %s", e1);
	{
		static const char want[] =
			"bbba358f13d80750cc80df6cb01a30dba02d36a5573ecf6f41f5"
			"b41edb1e7e94fad55a0179356ce0993c5d";
		char hex[2 * (10 + XATTR_VALUE3_OVERHEAD) + 1];

		t_fill(owner, sizeof(owner), 24);
		t_fill(nonce, sizeof(nonce), 25);
		CHECK_RC(names_xattr_value_seal3_nonce(
				 key, owner, "user.acl", nonce,
				 (const uint8_t *)"role=admin", 10, s1),
			 0);
		for (size_t i = 0; i < 10 + XATTR_VALUE3_OVERHEAD; i++)
			snprintf(hex + 2 * i, 3, "%02x", s1[i]);
		CHECK(strcmp(hex, want) == 0, "frozen format-3 value: %s", hex);
	}

	/* Round trips at the edges; randomized: two seals differ. */
	memset(big, 'y', SYMLINK_TARGET_MAX);
	static const size_t lens[] = { 1, 15, 16, 2991, 2992, 4095 };
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		CHECK_RC(names_target_seal3(key, &loc, big, lens[i], e1,
					    sizeof(e1)),
			 0);
		CHECK_RC(names_target_seal3(key, &loc, big, lens[i], e2,
					    sizeof(e2)),
			 0);
		CHECK(strcmp(e1, e2) != 0, "format-3 target not randomized");
		CHECK_RC(names_target_open3(key, &loc, e1, strlen(e1), back,
					    sizeof(back), &n),
			 0);
		CHECK(n == lens[i] && memcmp(back, big, n) == 0,
		      "format-3 target round trip %zu", lens[i]);
		CHECK(strlen(e1) < ENCLINK_MAX, "format-3 target too long");
	}
	/* The inline/side-file switch (linktgt.h, 4032 characters): 2991
	 * bytes inline, 2992 and more in a side file. */
	CHECK_RC(names_target_seal3(key, &loc, big, 2991, e1, sizeof(e1)), 0);
	CHECK(strlen(e1) == 4032, "2991 bytes: %zu chars", strlen(e1));
	CHECK_RC(names_target_seal3(key, &loc, big, 2992, e1, sizeof(e1)), 0);
	CHECK(strlen(e1) > 4032, "2992 bytes: %zu chars", strlen(e1));
	CHECK_RC(names_target_seal3(key, &loc, big, 4095, e1, sizeof(e1)), 0);
	CHECK(strlen(e1) == 5504, "4095 bytes: %zu chars", strlen(e1));
	CHECK_RC(names_target_seal3(key, &loc, big, 0, e1, sizeof(e1)), -ENOENT);
	CHECK_RC(names_target_seal3(key, &loc, big, 4096, e1, sizeof(e1)),
		 -ENAMETOOLONG);

	/* Bound: another directory, another name, another key fail. */
	CHECK_RC(names_target_seal3(key, &loc, "../target", 9, e1, sizeof(e1)),
		 0);
	other = loc;
	memcpy(other.dirid, dirid2, DIRID_LEN);
	CHECK_RC(names_target_open3(key, &other, e1, strlen(e1), back,
				    sizeof(back), &n),
		 -EBADMSG);
	CHECK_RC(names_loc_set(&other, dirid, "abd"), 0);
	CHECK_RC(names_target_open3(key, &other, e1, strlen(e1), back,
				    sizeof(back), &n),
		 -EBADMSG);
	CHECK_RC(names_target_open3(key2, &loc, e1, strlen(e1), back,
				    sizeof(back), &n),
		 -EBADMSG);
	if (flips_target(key, &loc, e1) < 0)
		return -1;
	/* A format-1/2 target is refused as format 3, and the other way. */
	CHECK_RC(names_symlink_encrypt(key, "../target", 9, e2, sizeof(e2)), 0);
	CHECK_RC(names_target_open3(key, &loc, e2, strlen(e2), back,
				    sizeof(back), &n),
		 -EBADMSG);
	CHECK(names_symlink_decrypt(key, e1, strlen(e1), back, sizeof(back),
				    &n) < 0,
	      "format-3 target opened as format 1");
	CHECK_RC(names_target_open(key, NULL, e2, strlen(e2), back,
				   sizeof(back), &n),
		 0);
	CHECK_RC(names_target_open(key, &loc, e1, strlen(e1), back,
				   sizeof(back), &n),
		 0);
	/* Hostile plaintexts: a NUL inside. */
	CHECK_RC(names_target_seal3(key, &loc, "a\0b", 3, e1, sizeof(e1)), 0);
	CHECK_RC(names_target_open3(key, &loc, e1, strlen(e1), back,
				    sizeof(back), &n),
		 -EBADMSG);

	/* Xattr values. */
	t_fill(val, sizeof(val), 26);
	memcpy(owner2, owner, sizeof(owner));
	owner2[15] ^= 0x80;
	CHECK_RC(names_xattr_value_seal3(key, owner, "user.a", val, sizeof(val),
					 s1),
		 0);
	CHECK_RC(names_xattr_value_seal3(key, owner, "user.a", val, sizeof(val),
					 s2),
		 0);
	CHECK(memcmp(s1, s2, sizeof(s1)) != 0, "format-3 value not randomized");
	CHECK_RC(names_xattr_value_open3(key, owner, "user.a", s1, sizeof(s1),
					 out),
		 0);
	CHECK(memcmp(out, val, sizeof(val)) == 0, "format-3 value round trip");
	CHECK_RC(names_xattr_value_open3(key, owner2, "user.a", s1, sizeof(s1),
					 out),
		 -EBADMSG);
	CHECK_RC(names_xattr_value_open3(key, owner, "user.b", s1, sizeof(s1),
					 out),
		 -EBADMSG);
	CHECK_RC(names_xattr_value_open3(key2, owner, "user.a", s1, sizeof(s1),
					 out),
		 -EBADMSG);
	for (size_t i = 0; i < sizeof(s1); i++) {
		s1[i] ^= 0x01;
		CHECK_RC(names_xattr_value_open3(key, owner, "user.a", s1,
						 sizeof(s1), out),
			 -EBADMSG);
		s1[i] ^= 0x01;
	}
	for (size_t l = 0; l < XATTR_VALUE3_OVERHEAD; l++)
		CHECK_RC(names_xattr_value_open3(key, owner, "user.a", s1, l,
						 out),
			 -EBADMSG);
	/* empty value */
	CHECK_RC(names_xattr_value_seal3(key, owner, "user.e", val, 0, s2), 0);
	CHECK_RC(names_xattr_value_open3(key, owner, "user.e", s2,
					 XATTR_VALUE3_OVERHEAD, out),
		 0);
	/* A format-1/2 value is refused as format 3 (same length too: the
	 * old one padded by the nonce's 16 bytes). */
	CHECK_RC(names_xattr_value_seal(key, "user.a", val, sizeof(val), old),
		 0);
	CHECK_RC(names_xattr_value_open3(key, owner, "user.a", old, sizeof(old),
					 out),
		 -EBADMSG);
	CHECK_RC(names_xattr_value_seal(key, "user.a", val, sizeof(val) - 16,
					old),
		 0);
	memcpy(s2, old, sizeof(val) - 16 + XATTR_VALUE_OVERHEAD);
	CHECK_RC(names_xattr_value_open3(key, owner, "user.a", s2,
					 sizeof(val) - 16 + XATTR_VALUE_OVERHEAD,
					 out),
		 -EBADMSG);
	CHECK_RC(names_xattr_open(key, owner, "user.a", s1, sizeof(s1), out),
		 0);
	CHECK(names_xattr_overhead(owner) == XATTR_VALUE3_OVERHEAD &&
		      names_xattr_overhead(NULL) == XATTR_VALUE_OVERHEAD,
	      "overheads");
	return 0;
}

int main(void)
{
	uint8_t key[NAME_KEY_LEN], dirid[DIRID_LEN], dirid2[DIRID_LEN];
	char enc[ENCNAME_MAX], back[300], name[300], bn[ENCNAME_MAX];
	uint8_t raw[400], val[64], sealed[64 + XATTR_VALUE_OVERHEAD];
	size_t n;

	t_fill(key, sizeof(key), 21);
	t_fill(dirid, sizeof(dirid), 22);
	memcpy(dirid2, dirid, DIRID_LEN);
	dirid2[0] ^= 1;

	CHECK_RC(names_encrypt(key, dirid, "hello.txt", 9, enc, sizeof(enc)), 0);
	CHECK(strcmp(enc, "zaWXDPvaP01FoPJfkQCkSLv5z823PuBUf_Sxjfez1FM") == 0,
	      "frozen name: %s", enc);
	CHECK_RC(names_encrypt(key, dirid, "0123456789abcdef", 16, enc,
			       sizeof(enc)),
		 0);
	CHECK(strcmp(enc, "4WxEHxAGORrc94tspvuiiPyqexsPRilCgdNDXkvwbUPSulJcQB5"
			  "6noHgMD3MAV18") == 0,
	      "frozen 16-byte name (full pad block): %s", enc);

	/* Location tokens (format 3): SHA-256("cmkfs v3 link" ‖ name)[:8],
	 * frozen against python3 hashlib; different names differ. */
	{
		uint8_t tok[NAMES_TOKEN_LEN], tok2[NAMES_TOKEN_LEN];
		static const uint8_t want[NAMES_TOKEN_LEN] = {
			0x7c, 0x97, 0x72, 0x37, 0x89, 0x91, 0x7e, 0x13 };
		char big[NAME_MAX + 2];

		CHECK_RC(names_link_token("abc", tok), 0);
		CHECK(memcmp(tok, want, sizeof(want)) == 0, "frozen token");
		CHECK_RC(names_link_token("abd", tok2), 0);
		CHECK(memcmp(tok, tok2, sizeof(tok)) != 0, "tokens differ");
		memset(big, 'x', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\0';
		CHECK_RC(names_link_token(big, tok), -ENAMETOOLONG);
	}

	/* Round trip at every length; long names switch to the hashed form. */
	for (size_t len = 1; len <= 255; len++) {
		int is_long;

		memset(name, 'a' + (int)(len % 26), len);
		name[len] = '\0';
		CHECK_RC(names_encrypt(key, dirid, name, len, enc, sizeof(enc)),
			 0);
		CHECK(strchr(enc, '.') == NULL, "dot in encrypted name");
		CHECK_RC(names_decrypt(key, dirid, enc, strlen(enc), back,
				       sizeof(back)),
			 0);
		CHECK(strcmp(back, name) == 0, "round trip %zu", len);
		CHECK(names_decrypt(key, dirid2, enc, strlen(enc), back,
				    sizeof(back)) == -EBADMSG,
		      "name decrypted in another directory");
		is_long = names_backing(enc, bn, sizeof(bn));
		CHECK(is_long == (strlen(enc) > NAME_LONG_THRESHOLD ? 1 : 0),
		      "long switch at %zu", len);
		CHECK(strlen(bn) <= 255, "backing name too long");
		CHECK(names_is_longname(bn) == is_long, "is_longname");
		CHECK(names_is_reserved(bn) == is_long, "reserved");
	}
	/* doc/FORMAT.md §4.2: names of 160 bytes or more take the long form */
	memset(name, 'q', 160);
	CHECK_RC(names_encrypt(key, dirid, name, 159, enc, sizeof(enc)), 0);
	CHECK(names_backing(enc, bn, sizeof(bn)) == 0, "159 bytes went long");
	CHECK_RC(names_encrypt(key, dirid, name, 160, enc, sizeof(enc)), 0);
	CHECK(names_backing(enc, bn, sizeof(bn)) == 1, "160 bytes stayed short");
	CHECK_RC(names_encrypt(key, dirid, name, 256, enc, sizeof(enc)),
		 -ENAMETOOLONG);
	CHECK_RC(names_encrypt(key, dirid, "a/b", 3, enc, sizeof(enc)), -EINVAL);
	CHECK_RC(names_encrypt(key, dirid, ".", 1, enc, sizeof(enc)), -EINVAL);
	CHECK_RC(names_encrypt(key, dirid, "..", 2, enc, sizeof(enc)), -EINVAL);
	CHECK_RC(names_encrypt(key, dirid, "", 0, enc, sizeof(enc)), -EINVAL);

	/* Tamper every character of an encrypted name. */
	CHECK_RC(names_encrypt(key, dirid, "hello.txt", 9, enc, sizeof(enc)), 0);
	for (size_t i = 0; i < strlen(enc); i++) {
		char save = enc[i];

		enc[i] = save == 'A' ? 'B' : 'A';
		CHECK_RC(names_decrypt(key, dirid, enc, strlen(enc), back,
				       sizeof(back)),
			 -EBADMSG);
		enc[i] = save;
	}
	for (size_t l = 0; l < strlen(enc); l++)
		CHECK_RC(names_decrypt(key, dirid, enc, l, back, sizeof(back)),
			 -EBADMSG);
	CHECK_RC(names_decrypt(key, dirid, "cmkfs.conf", 10, back, sizeof(back)),
		 -EBADMSG);

	/* Hostile plaintexts sealed with the right key are still refused. */
	{
		static const char *const evil[] = { "a/b", ".", "..", "x\0y" };
		static const size_t evil_len[] = { 3, 1, 2, 3 };
		uint8_t aad[1 + DIRID_LEN], pt[16];

		aad[0] = 'N';
		memcpy(aad + 1, dirid, DIRID_LEN);
		for (size_t i = 0; i < 4; i++) {
			size_t pl = 16 - evil_len[i];

			memcpy(pt, evil[i], evil_len[i]);
			memset(pt + evil_len[i], (int)pl, pl);
			CHECK_RC(aead_siv_seal(key, aad, sizeof(aad), pt, 16,
					       raw + SIV_TAG_LEN, raw),
				 0);
			CHECK_RC(b64_encode(raw, 32, enc, sizeof(enc)), 0);
			CHECK_RC(names_decrypt(key, dirid, enc, strlen(enc),
					       back, sizeof(back)),
				 -EBADMSG);
		}
	}

	/* Symlink targets. */
	CHECK_RC(names_symlink_encrypt(key, "../target", 9, enc, sizeof(enc)), 0);
	CHECK_RC(names_symlink_decrypt(key, enc, strlen(enc), back,
				       sizeof(back), &n),
		 0);
	CHECK(n == 9 && strcmp(back, "../target") == 0, "symlink round trip");
	enc[3] ^= 1;
	CHECK(names_symlink_decrypt(key, enc, strlen(enc), back, sizeof(back),
				    &n) < 0,
	      "tampered symlink accepted");
	{
		static char big[SYMLINK_TARGET_MAX + 2], benc[ENCLINK_MAX],
			bback[ENCLINK_MAX];

		/* 3,000 bytes: the longest target earlier versions stored,
		 * 4,032 characters; 4,095 (PATH_MAX - 1) is the longest. */
		memset(big, 'x', SYMLINK_TARGET_MAX);
		CHECK_RC(names_symlink_encrypt(key, big, 3000, benc,
					       sizeof(benc)),
			 0);
		CHECK(strlen(benc) == 4032, "3000-byte target: %zu chars",
		      strlen(benc));
		CHECK_RC(names_symlink_encrypt(key, big, SYMLINK_TARGET_MAX,
					       benc, sizeof(benc)),
			 0);
		CHECK(strlen(benc) < ENCLINK_MAX, "encrypted target too long");
		CHECK_RC(names_symlink_decrypt(key, benc, strlen(benc), bback,
					       sizeof(bback), &n),
			 0);
		CHECK(n == SYMLINK_TARGET_MAX && SYMLINK_TARGET_MAX == 4095,
		      "long target");
		CHECK_RC(names_symlink_encrypt(key, big, SYMLINK_TARGET_MAX + 1,
					       benc, sizeof(benc)),
			 -ENAMETOOLONG);
	}

	/* Xattrs: names and values; a value is bound to its name. */
	CHECK_RC(names_xattr_name_encrypt(key, "user.test", enc, sizeof(enc)), 0);
	CHECK(strncmp(enc, "user.", 5) == 0 && strstr(enc, "test") == NULL,
	      "xattr name %s", enc);
	CHECK_RC(names_xattr_name_decrypt(key, enc, back, sizeof(back)), 0);
	CHECK(strcmp(back, "user.test") == 0, "xattr name round trip");
	CHECK_RC(names_xattr_name_encrypt(key, "security.x", enc, sizeof(enc)),
		 -EOPNOTSUPP);
	t_fill(val, sizeof(val), 7);
	CHECK_RC(names_xattr_value_seal(key, "user.a", val, sizeof(val), sealed),
		 0);
	CHECK_RC(names_xattr_value_open(key, "user.a", sealed, sizeof(sealed),
					raw),
		 0);
	CHECK(memcmp(raw, val, sizeof(val)) == 0, "xattr value");
	CHECK_RC(names_xattr_value_open(key, "user.b", sealed, sizeof(sealed),
					raw),
		 -EBADMSG);
	CHECK_RC(names_xattr_value_seal(key, "user.e", val, 0, sealed), 0);
	CHECK_RC(names_xattr_value_open(key, "user.e", sealed,
					XATTR_VALUE_OVERHEAD, raw),
		 0);
	CHECK_RC(names_xattr_value_open(key, "user.e", sealed, SIV_TAG_LEN, raw),
		 -EBADMSG);
	CHECK_RC(names_xattr_value_seal(key, "user.a", val, sizeof(val), sealed),
		 0);
	sealed[20] ^= 1;
	CHECK_RC(names_xattr_value_open(key, "user.a", sealed, sizeof(sealed),
					raw),
		 -EBADMSG);
	if (test_v3(key, dirid, dirid2) < 0)
		return 1;
	return t_done("test_names");
}
