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
	return t_done("test_names");
}
