/* tests/fuzz/fuzz_names.c — encrypted names, long-name side files, symlink
 * targets, xattr names and values, base64url; whatever decrypts must be a
 * valid name and re-encrypt to the same text. */
#include <errno.h>
#include <string.h>

#include "cmkfs/b64.h"
#include "cmkfs/names.h"
#include "fuzz.h"

/* The input as the content of a long-name side file (dir.c reads at most
 * ENCNAME_MAX - 1 bytes of it), once under the entry name it hashes to and
 * once under another. */
static void side_file(const uint8_t *data, size_t size)
{
	static const char other[] = LONGNAME_PREFIX
		"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	char side[ENCNAME_MAX], bname[LONGNAME_LEN + 1];
	size_t n = size < sizeof(side) - 1 ? size : sizeof(side) - 1;
	int is_long;

	FUZZ_ASSERT(names_is_longname(other));
	memcpy(side, data, n);
	/* Anything else would be a SHA-256 preimage. */
	FUZZ_ASSERT(names_longname_open(other, side, n) == -EBADMSG);
	side[n] = '\0';
	is_long = names_backing(side, bname, sizeof(bname));
	if (is_long != 1)
		return;
	FUZZ_ASSERT(names_is_longname(bname) && strlen(side) > NAME_LONG_THRESHOLD);
	memcpy(side, data, n);
	FUZZ_ASSERT(names_longname_open(bname, side, n) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[NAME_KEY_LEN], dirid[DIRID_LEN], raw[8192];
	char text[ENCLINK_MAX + 64], out[ENCLINK_MAX], again[ENCNAME_MAX];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1, rl;

	fuzz_key(key, sizeof(key), 0);
	fuzz_key(dirid, sizeof(dirid), 0);
	memcpy(text, data, n);
	text[n] = '\0';
	fuzz_ignore(b64_decode(text, n, raw, sizeof(raw), &rl) != 0);
	if (names_decrypt(key, dirid, text, n, out, sizeof(out)) == 0) {
		FUZZ_ASSERT(strlen(out) >= 1 && strlen(out) <= 255 &&
			    strchr(out, '/') == NULL);
		FUZZ_ASSERT(names_encrypt(key, dirid, out, strlen(out), again,
					  sizeof(again)) == 0 &&
			    strlen(again) == n && memcmp(again, text, n) == 0);
	}
	side_file(data, size);
	fuzz_ignore(names_symlink_decrypt(key, text, n, out, sizeof(out), &rl) != 0);
	fuzz_ignore(names_xattr_name_decrypt(key, text, out, sizeof(out)) != 0);
	(void)names_is_longname(text);
	fuzz_ignore(names_xattr_value_open(key, "user.x", data, size < 4096 ? size : 4096,
				     raw) != 0);
	return 0;
}
