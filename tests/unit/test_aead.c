/* tests/unit/test_aead.c — AES-256-GCM against the GCM spec's test cases
 * 13/14 (McGrew & Viega, "The Galois/Counter Mode of Operation", AES-256
 * with an all-zero key), AES-256-SIV frozen vector, key wrap, and tamper
 * every byte. Frozen vectors were cross-checked with python3-cryptography
 * (AESGCM, AESSIV), an independent implementation. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/aead.h"
#include "../lib/tap.h"

static void gcm_kat(void)
{
	uint8_t key[32] = { 0 }, nonce[12] = { 0 }, pt[16] = { 0 }, ct[16],
		tag[16], back[16];
	struct aead *a = NULL;

	CHECK_RC(aead_new(key, &a), 0);
	/* Test case 13: empty plaintext. */
	CHECK_RC(aead_seal(a, nonce, NULL, 0, NULL, 0, ct, tag), 0);
	CHECK(t_eq_hex(tag, 16, "530f8afbc74536b9a963b4f1c4cb738b"), "tc13");
	/* Test case 14: one zero block. */
	CHECK_RC(aead_seal(a, nonce, NULL, 0, pt, 16, ct, tag), 0);
	CHECK(t_eq_hex(ct, 16, "cea7403d4d606b6e074ec5d3baf39d18"), "tc14 ct");
	CHECK(t_eq_hex(tag, 16, "d0d1c8a799996bf0265b98b5d48ab919"),
	      "tc14 tag");
	CHECK_RC(aead_open(a, nonce, NULL, 0, ct, 16, back, tag), 0);
	CHECK(memcmp(back, pt, 16) == 0, "tc14 open");
	/* Any bit of ct, tag, nonce or aad changed: refused, output wiped. */
	for (int i = 0; i < 16 * 8; i++) {
		ct[i / 8] ^= (uint8_t)(1 << (i % 8));
		memset(back, 0xaa, sizeof(back));
		CHECK_RC(aead_open(a, nonce, NULL, 0, ct, 16, back, tag),
			 -EBADMSG);
		CHECK(back[0] == 0 && back[15] == 0, "unverified output left");
		ct[i / 8] ^= (uint8_t)(1 << (i % 8));
	}
	for (int i = 0; i < 16; i++) {
		tag[i] ^= 0x80;
		CHECK_RC(aead_open(a, nonce, NULL, 0, ct, 16, back, tag),
			 -EBADMSG);
		tag[i] ^= 0x80;
	}
	nonce[11] = 1;
	CHECK_RC(aead_open(a, nonce, NULL, 0, ct, 16, back, tag), -EBADMSG);
	nonce[11] = 0;
	CHECK_RC(aead_open(a, nonce, (const uint8_t *)"x", 1, ct, 16, back,
			   tag),
		 -EBADMSG);
	/* In place. */
	memcpy(back, pt, 16);
	CHECK_RC(aead_seal(a, nonce, NULL, 0, back, 16, back, tag), 0);
	CHECK(t_eq_hex(back, 16, "cea7403d4d606b6e074ec5d3baf39d18"),
	      "in place");
	CHECK_RC(aead_open(a, nonce, NULL, 0, back, 16, back, tag), 0);
	CHECK(memcmp(back, pt, 16) == 0, "in place open");
	aead_free(a);
}

static void wrap(void)
{
	uint8_t kek[32], kek2[32], key[32], out[AEAD_WRAP_LEN], back[32],
		nonce[12];

	t_fill(kek, 32, 1);
	t_fill(kek2, 32, 2);
	t_fill(key, 32, 3);
	t_fill(nonce, 12, 4);
	CHECK_RC(aead_wrap_key_nonce(kek, (const uint8_t *)"aad", 3, key, nonce,
				     out),
		 0);
	CHECK(t_eq_hex(out, AEAD_WRAP_LEN,
		       "2715e09da73d205df2c60eb69a27b2e7c3cafc53ef82d7a73a2ed6eb"
		       "248b82c78756b94883cd75cf9de9583caadf5d51849457800a0036"
		       "9abcc68393"),
	      "frozen wrap");
	CHECK_RC(aead_unwrap_key(kek, (const uint8_t *)"aad", 3, out, back), 0);
	CHECK(memcmp(back, key, 32) == 0, "unwrap");
	CHECK_RC(aead_unwrap_key(kek2, (const uint8_t *)"aad", 3, out, back),
		 -EKEYREJECTED);
	CHECK_RC(aead_unwrap_key(kek, (const uint8_t *)"aae", 3, out, back),
		 -EKEYREJECTED);
	for (size_t i = 0; i < AEAD_WRAP_LEN; i++) {
		out[i] ^= 1;
		CHECK_RC(aead_unwrap_key(kek, (const uint8_t *)"aad", 3, out,
					 back),
			 -EKEYREJECTED);
		out[i] ^= 1;
	}
	/* Random nonces: two wraps of the same key differ. */
	uint8_t o1[AEAD_WRAP_LEN], o2[AEAD_WRAP_LEN];

	CHECK_RC(aead_wrap_key(kek, NULL, 0, key, o1), 0);
	CHECK_RC(aead_wrap_key(kek, NULL, 0, key, o2), 0);
	CHECK(memcmp(o1, o2, AEAD_WRAP_LEN) != 0, "nonce reuse");
}

static void siv(void)
{
	uint8_t key[64], ct[32], tag[16], back[32];
	const char *msg = "hello, names";
	size_t n = strlen(msg);

	t_fill(key, 64, 5);
	CHECK_RC(aead_siv_seal(key, (const uint8_t *)"ad", 2,
			       (const uint8_t *)msg, n, ct, tag),
		 0);
	CHECK(t_eq_hex(tag, 16, "63ed57a2d53f2c17a3436fde67c56bdf"), "frozen siv tag");
	CHECK(t_eq_hex(ct, n, "a0e9d6768db3876631feb172"), "frozen siv ct");
	CHECK_RC(aead_siv_open(key, (const uint8_t *)"ad", 2, ct, n, back, tag),
		 0);
	CHECK(memcmp(back, msg, n) == 0, "siv open");
	for (size_t i = 0; i < n; i++) {
		ct[i] ^= 4;
		CHECK_RC(aead_siv_open(key, (const uint8_t *)"ad", 2, ct, n,
				       back, tag),
			 -EBADMSG);
		ct[i] ^= 4;
	}
	tag[3] ^= 1;
	CHECK_RC(aead_siv_open(key, (const uint8_t *)"ad", 2, ct, n, back, tag),
		 -EBADMSG);
	tag[3] ^= 1;
	CHECK_RC(aead_siv_open(key, (const uint8_t *)"ae", 2, ct, n, back, tag),
		 -EBADMSG);
}

/* A pinned key gives the frozen vector too, for sealing, opening and
 * refusing; pins are per owner, bounded, and gone after unpin. */
static void siv_pins(void)
{
	uint8_t key[64], other[64], ct[32], tag[16], back[32];
	const char *msg = "hello, names";
	size_t n = strlen(msg);
	int o1, o2;

	t_fill(key, 64, 5);
	t_fill(other, 64, 6);
	CHECK(aead_siv_pinned() == 0, "pins before any");
	CHECK_RC(aead_siv_pin(&o1, key), 0);
	CHECK_RC(aead_siv_pin(&o1, key), 0);
	CHECK(aead_siv_pinned() == 1, "a key pinned twice by one owner: %u",
	      aead_siv_pinned());
	for (int round = 0; round < 3; round++) {
		CHECK_RC(aead_siv_seal(key, (const uint8_t *)"ad", 2,
				       (const uint8_t *)msg, n, ct, tag),
			 0);
		CHECK(t_eq_hex(tag, 16, "63ed57a2d53f2c17a3436fde67c56bdf"),
		      "pinned: frozen siv tag (round %d)", round);
		CHECK(t_eq_hex(ct, n, "a0e9d6768db3876631feb172"),
		      "pinned: frozen siv ct");
		memset(back, 0, sizeof(back));
		CHECK_RC(aead_siv_open(key, (const uint8_t *)"ad", 2, ct, n,
				       back, tag),
			 0);
		CHECK(memcmp(back, msg, n) == 0, "pinned: siv open");
		CHECK_RC(aead_siv_open(key, (const uint8_t *)"ae", 2, ct, n,
				       back, tag),
			 -EBADMSG);
		/* another key, unpinned, still keys its own context */
		CHECK_RC(aead_siv_open(other, (const uint8_t *)"ad", 2, ct,
				       n, back, tag),
			 -EBADMSG);
	}
	CHECK_RC(aead_siv_pin(&o2, key), 0);
	CHECK(aead_siv_pinned() == 2, "one pin per owner");
	aead_siv_unpin(&o1);
	CHECK(aead_siv_pinned() == 1, "unpin took another owner's pin");
	CHECK_RC(aead_siv_open(key, (const uint8_t *)"ad", 2, ct, n, back,
			       tag),
		 0);
	aead_siv_unpin(&o2);
	CHECK(aead_siv_pinned() == 0, "pins left after unpin");
	for (int i = 0; i < AEAD_SIV_PINS + 2; i++) {
		other[0] = (uint8_t)i;
		CHECK_RC(aead_siv_pin(&o1, other), 0);
	}
	CHECK(aead_siv_pinned() == AEAD_SIV_PINS, "pins beyond the bound: %u",
	      aead_siv_pinned());
	CHECK_RC(aead_siv_seal(key, (const uint8_t *)"ad", 2,
			       (const uint8_t *)msg, n, ct, tag),
		 0);
	CHECK(t_eq_hex(tag, 16, "63ed57a2d53f2c17a3436fde67c56bdf"),
	      "full table: frozen siv tag");
	aead_siv_unpin(&o1);
	CHECK(aead_siv_pinned() == 0, "pins left after unpin");
}

int main(void)
{
	CHECK_RC(aead_global_init(), 0);
	gcm_kat();
	wrap();
	siv();
	siv_pins();
	return t_done("test_aead");
}
