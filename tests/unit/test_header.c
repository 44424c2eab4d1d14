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
	h.version = HEADER_VERSION;
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

	/* Each of magic, version: any change refused, but version 1 -> 3,
	 * which parses as a version-3 header (whose wraps then fail). */
	for (int i = 0; i < 6; i++) {
		for (int bit = 0; bit < 8; bit++) {
			buf[i] ^= (uint8_t)(1 << bit);
			if (i == 5 && bit == 1)
				CHECK_RC(header_parse(buf, sizeof(buf), &g), 0);
			else
				CHECK_RC(header_parse(buf, sizeof(buf), &g),
					 -EBADMSG);
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
	/* Version 3 (doc/FORMAT.md §2): same length; birth time at 28, slots
	 * at 36 and 44, SIV wraps of 48 bytes at 52 and 100; the AAD is the
	 * first 52 bytes and the layer. */
	{
		uint8_t b3[HEADER_LEN];
		struct header h3 = h;

		h3.version = HEADER_VERSION_3;
		h3.birth_ns = 0x0102030405060708ull;
		memset(h3.slot[0], 0xa1, HEADER_SLOT_LEN);
		memset(h3.slot[1], 0xb2, HEADER_SLOT_LEN);
		memset(h3.wrap_inner, 0, AEAD_WRAP_LEN);
		memset(h3.wrap_outer, 0, AEAD_WRAP_LEN);
		t_fill(h3.wrap_inner, HEADER_WRAP3_LEN, 3);
		t_fill(h3.wrap_outer, HEADER_WRAP3_LEN, 4);
		header_serialize(&h3, b3);
		CHECK(t_eq_hex(b3, 12, "434d4b4800030000" "00000007"),
		      "v3 magic, version, count, generation");
		CHECK(memcmp(b3 + 12, h3.file_id, FILE_ID_LEN) == 0, "v3 id");
		CHECK(t_eq_hex(b3 + 28, 8, "0102030405060708"), "birth");
		CHECK(b3[36] == 0xa1 && b3[43] == 0xa1 && b3[44] == 0xb2 &&
			      b3[51] == 0xb2,
		      "slots");
		CHECK(memcmp(b3 + 52, h3.wrap_inner, 48) == 0 &&
			      memcmp(b3 + 100, h3.wrap_outer, 48) == 0,
		      "v3 wraps");
		CHECK_RC(header_parse(b3, sizeof(b3), &g), 0);
		CHECK(memcmp(&g, &h3, sizeof(h3)) == 0, "v3 round trip");
		CHECK(header_aad(&h3, LAYER_INNER, aad) == 53 &&
			      memcmp(aad, b3, 52) == 0 && aad[52] == LAYER_INNER,
		      "v3 aad");
		CHECK(header_slot_has(&h3, h3.slot[1]) &&
			      !header_slot_has(&h3, (uint8_t[8]){ 0 }) &&
			      !header_is_set(&h3),
		      "slots match");
		CHECK(!header_slot_has(&h, h3.slot[0]), "v1 has no slots");
		memset(h3.slot[0], HEADER_SLOT_SET, HEADER_SLOT_LEN);
		CHECK(header_is_set(&h3) && !header_slot_has(&h3, h3.slot[0]),
		      "a link set matches through its set only");
		/* versions 0, 2, 4 refused */
		for (int v = 0; v <= 4; v += 2) {
			b3[5] = (uint8_t)v;
			CHECK_RC(header_parse(b3, sizeof(b3), &g), -EBADMSG);
		}
	}
	return t_done("test_header");
}
