/* tests/unit/test_header.c — file header codec: frozen bytes, round trip,
 * every field checked, the sealing count, no leftovers accepted. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/header.h"
#include "../lib/tap.h"

static const char FROZEN[] =
	"434d4b4800010000"	/* magic "CMKH", version 1, count 0 */
	"00000007"		/* kek_gen 7 */
	"000102030405060708090a0b0c0d0e0f"	/* file id */
	"7235548658c86f6cc4124f3194e4b6afc90cd076938c24572f11a572e726191ca3ed7e9f9442f5e70a1a787d72160008238398ddb196fb02b2ff9826"	/* wrap_inner */
	"220f0f83d9cd5d153c6c8b4b82c497289e6697e0f95581ea588eaeb6e508d0b7117da703091b7fb0dd441f6f5b5a163c3d4dcb51b67098250f94618f";	/* wrap_outer */

int main(void)
{
	uint8_t buf[HEADER_LEN], big[HEADER_LEN + 1], aad[HEADER_AAD_LEN];
	struct header h, g;

	memset(&h, 0, sizeof(h));
	h.kek_gen = 7;
	for (int i = 0; i < FILE_ID_LEN; i++)
		h.file_id[i] = (uint8_t)i;
	t_fill(h.wrap_inner, AEAD_WRAP_LEN, 1);
	t_fill(h.wrap_outer, AEAD_WRAP_LEN, 2);
	header_serialize(&h, buf);
	CHECK(HEADER_LEN == 148, "HEADER_LEN %d", HEADER_LEN);
	CHECK(t_eq_hex(buf, HEADER_LEN, FROZEN), "frozen header bytes");
	CHECK_RC(header_parse(buf, sizeof(buf), &g), 0);
	CHECK(memcmp(&g, &h, sizeof(h)) == 0, "round trip");

	/* Each of magic, version: any change refused. */
	for (int i = 0; i < 6; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1 << bit);
			CHECK_RC(header_parse(buf, sizeof(buf), &g), -EBADMSG);
			buf[i] ^= (uint8_t)(1 << bit);
		}
	}
	/* Bytes 6..7, once "flags" (always 0), are the sealing count
	 * (doc/FORMAT.md §3.3): every value parses and round-trips, big
	 * endian; a file written before it reads as count 0. */
	h.seal_units = 0xa55a;
	header_serialize(&h, buf);
	CHECK(buf[6] == 0xa5 && buf[7] == 0x5a, "count at bytes 6..7");
	CHECK_RC(header_parse(buf, sizeof(buf), &g), 0);
	CHECK(g.seal_units == 0xa55a && memcmp(&g, &h, sizeof(h)) == 0,
	      "count round trip");
	h.seal_units = 0;
	header_serialize(&h, buf);
	CHECK(t_eq_hex(buf, HEADER_LEN, FROZEN), "count 0: old bytes");

	/* Every length but the right one refused. */
	for (size_t n = 0; n < HEADER_LEN; n++)
		CHECK_RC(header_parse(buf, n, &g), -EBADMSG);
	memcpy(big, buf, HEADER_LEN);
	big[HEADER_LEN] = 0;
	CHECK_RC(header_parse(big, sizeof(big), &g), -EBADMSG);

	/* The wrap AAD is the first 28 bytes and the layer. */
	header_aad(&h, LAYER_OUTER, aad);
	CHECK(memcmp(aad, buf, HEADER_PREFIX_LEN) == 0 &&
		      aad[HEADER_PREFIX_LEN] == LAYER_OUTER,
	      "aad");
	return t_done("test_header");
}
