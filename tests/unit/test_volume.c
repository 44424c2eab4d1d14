/* tests/unit/test_volume.c — volume config bytes: round trip, a frozen
 * encoding (any format change shows here first), every bit flip refused by
 * the parser or the MAC, every truncation and a trailing byte refused,
 * unknown version/flags/suite/provider, block sizes, key ids with a NUL. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/volume.h"
#include "../lib/tap.h"

/* Offsets in the encoding of fixed() (doc/FORMAT.md §1). */
#define OFF_VERSION 8
#define OFF_FLAGS 10
#define OFF_BS 28
#define OFF_SUITE 32
#define OFF_L0 46			/* layer 0: prov, id_len, id, ... */
#define FIXED_KEYID "local:0011223344556677"
#define FIXED_WRAPPED 60
#define OFF_L0_ID (OFF_L0 + 3)
#define OFF_L0_WLEN (OFF_L0_ID + sizeof(FIXED_KEYID) - 1)
#define OFF_L1 (OFF_L0_WLEN + 2 + FIXED_WRAPPED)
#define FIXED_LEN (OFF_L1 + (OFF_L1 - OFF_L0) + HMAC_LEN)

/* Cross-checked with Python's struct + hmac (HMAC-SHA256), an independent
 * encoder of doc/FORMAT.md §1. Never regenerate: a mismatch is a format
 * change. */
static const char fixed_hex[] =
	"434d4b4653564f4c00010000000102030405060708090a0b0c0d0e0f00001000"
	"000100000001000000006553f1000100166c6f63616c3a303031313232333334"
	"34353536363737003c7235548658c86f6cc4124f3194e4b6afc90cd076938c24"
	"572f11a572e726191ca3ed7e9f9442f5e70a1a787d72160008238398ddb196fb"
	"02b2ff98260100166c6f63616c3a30303131323233333434353536363737003c"
	"220f0f83d9cd5d153c6c8b4b82c497289e6697e0f95581ea588eaeb6e508d0b7"
	"117da703091b7fb0dd441f6f5b5a163c3d4dcb51b67098250f94618f163ce0d2"
	"76c98dfae00130490616e57878cce00a3fa801ef0f09941c16f46d1e";

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void fixed(struct volume *v, uint8_t mac_key[static 32])
{
	memset(v, 0, sizeof(*v));
	v->version = 1;	/* the frozen bytes are format 1's */
	for (int i = 0; i < VOLUME_ID_LEN; i++)
		v->volume_id[i] = (uint8_t)i;
	v->block_size = 4096;
	v->suite = VOLUME_SUITE_GCM_GCM_SIV;
	v->kek_gen = 1;
	v->created_sec = 1700000000;
	for (int i = 0; i < 2; i++) {
		v->layer[i].prov = KPROV_LOCAL;
		strcpy(v->layer[i].key_id, FIXED_KEYID);
		v->layer[i].wrapped_len = FIXED_WRAPPED;
		t_fill(v->layer[i].wrapped, FIXED_WRAPPED, (uint32_t)i + 1);
	}
	t_fill(mac_key, 32, 3);
}

static int vol_eq(const struct volume *a, const struct volume *b)
{
	if (memcmp(a->volume_id, b->volume_id, VOLUME_ID_LEN) != 0 ||
	    a->block_size != b->block_size || a->suite != b->suite ||
	    a->kek_gen != b->kek_gen || a->created_sec != b->created_sec ||
	    memcmp(a->mac, b->mac, HMAC_LEN) != 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		const struct vol_layer *x = &a->layer[i], *y = &b->layer[i];

		if (x->prov != y->prov || strcmp(x->key_id, y->key_id) != 0 ||
		    x->wrapped_len != y->wrapped_len ||
		    memcmp(x->wrapped, y->wrapped, x->wrapped_len) != 0)
			return 0;
	}
	return 1;
}

/* Serialise and parse back; 1 if every field survived. */
static int round_trip(const struct volume *v)
{
	static uint8_t buf[2 * VOLUME_MAX_LEN];
	struct volume back;
	size_t len;

	memset(&back, 0xee, sizeof(back));
	if (volume_serialize(v, buf, sizeof(buf), &len) < 0 ||
	    volume_parse(buf, len, &back) < 0)
		return 0;
	return vol_eq(v, &back);
}

static int v2_eq(const struct volume *a, const struct volume *b)
{
	if (!vol_eq(a, b) || a->version != b->version || a->flags != b->flags ||
	    memcmp(a->secret_wrapped, b->secret_wrapped,
		   VOLUME_SECRET_WRAPPED_LEN) != 0)
		return 0;
	if (!(a->flags & VOLUME_FLAG_REKEY))
		return 1;
	if (a->prev_gen != b->prev_gen)
		return 0;
	for (int i = 0; i < 2; i++)
		if (a->prev_wrapped_len[i] != b->prev_wrapped_len[i] ||
		    memcmp(a->prev_wrapped[i], b->prev_wrapped[i],
			   a->prev_wrapped_len[i]) != 0)
			return 0;
	return 1;
}

/* Format 2 (doc/FORMAT.md §1): the v1 fields, then the wrapped secret and,
 * with the rekey flag, the previous generation. Expected bytes are built
 * here field by field from the spec, not by volume.c. */
static void format2(void)
{
	static uint8_t buf[VOLUME_MAX_LEN], want[VOLUME_MAX_LEN];
	uint8_t key[32];
	struct volume v, back;
	size_t len = 0, n;

	fixed(&v, key);
	v.version = 2;
	v.kek_gen = 7;
	t_fill(v.secret_wrapped, VOLUME_SECRET_WRAPPED_LEN, 60);
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	/* v1 bytes up to the MAC, version 2, generation 7, then the secret. */
	CHECK_RC(volume_serialize(&(struct volume){ 0 }, want, 0, &n), -EINVAL);
	{
		struct volume v1 = v;

		v1.version = 1;
		CHECK_RC(volume_serialize(&v1, want, sizeof(want), &n), 0);
	}
	n -= HMAC_LEN;
	put16(want + OFF_VERSION, 2);
	put16(want + n, VOLUME_SECRET_WRAPPED_LEN);
	memcpy(want + n + 2, v.secret_wrapped, VOLUME_SECRET_WRAPPED_LEN);
	n += 2 + VOLUME_SECRET_WRAPPED_LEN;
	memcpy(want + n, v.mac, HMAC_LEN);
	n += HMAC_LEN;
	CHECK(len == n && memcmp(buf, want, n) == 0, "v2 bytes (len %zu/%zu)",
	      len, n);
	CHECK_RC(volume_parse(buf, len, &back), 0);
	CHECK(v2_eq(&v, &back), "v2 round trip");
	/* The rekey flag adds prev_gen and two wrapped KEKs. */
	v.flags = VOLUME_FLAG_REKEY;
	v.prev_gen = 6;
	for (int i = 0; i < 2; i++) {
		v.prev_wrapped_len[i] = (uint16_t)(60 + i);
		t_fill(v.prev_wrapped[i], 60 + (size_t)i, 70 + (uint32_t)i);
	}
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	n -= HMAC_LEN;
	put16(want + OFF_FLAGS, VOLUME_FLAG_REKEY);
	want[n] = 0, want[n + 1] = 0, want[n + 2] = 0, want[n + 3] = 6;
	n += 4;
	for (int i = 0; i < 2; i++) {
		put16(want + n, v.prev_wrapped_len[i]);
		memcpy(want + n + 2, v.prev_wrapped[i], v.prev_wrapped_len[i]);
		n += 2 + v.prev_wrapped_len[i];
	}
	memcpy(want + n, v.mac, HMAC_LEN);
	n += HMAC_LEN;
	CHECK(len == n && memcmp(buf, want, n) == 0, "v2 rekey bytes");
	CHECK_RC(volume_parse(buf, len, &back), 0);
	CHECK(v2_eq(&v, &back), "v2 rekey round trip");
	/* Every truncation is refused; so is a previous generation that is
	 * not older, a wrong secret length, an unknown flag, and the rekey
	 * flag in a v1 config. */
	for (size_t k = 0; k < len; k++)
		CHECK_RC(volume_parse(buf, k, &back), -EBADMSG);
	memcpy(want, buf, len);
	/* prev_gen's last byte: before the two wrapped KEKs and the MAC. */
	CHECK(want[n - HMAC_LEN - (2 + 61) - (2 + 60) - 1] == 6, "prev_gen");
	want[n - HMAC_LEN - (2 + 61) - (2 + 60) - 1] = 7;
	CHECK_RC(volume_parse(want, len, &back), -EBADMSG);
	memcpy(want, buf, len);
	put16(want + OFF_FLAGS, 2);
	CHECK_RC(volume_parse(want, len, &back), -EBADMSG);
	v.prev_gen = 7;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
	v.prev_gen = 6;
	v.version = 1;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
	v.version = 4;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
	/* Format 3: the v2 bytes, then the zone list's version (8 bytes),
	 * then the MAC. */
	v.version = 2;
	v.flags = 0;
	CHECK_RC(volume_serialize(&v, want, sizeof(want), &n), 0);
	v.version = 3;
	v.zones_version = 0x0102030405060708ull;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	CHECK(len == n + 8, "v3 length %zu, v2 %zu", len, n);
	put16(want + OFF_VERSION, 3);
	CHECK(memcmp(buf, want, n - HMAC_LEN) == 0, "v3 starts as v2");
	CHECK(memcmp(buf + n - HMAC_LEN, "\1\2\3\4\5\6\7\10", 8) == 0,
	      "zones_version bytes");
	CHECK_RC(volume_parse(buf, len, &back), 0);
	CHECK(back.version == 3 && back.zones_version == v.zones_version,
	      "v3 round trip");
	for (size_t k = 0; k < len; k++)
		CHECK_RC(volume_parse(buf, k, &back), -EBADMSG);
	/* v2 bytes labelled 3 lack the field: refused. */
	CHECK_RC(volume_parse(want, n, &back), -EBADMSG);
	/* A v1 config with the flag set, made by patching bytes. */
	fixed(&v, key);
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	put16(buf + OFF_FLAGS, VOLUME_FLAG_REKEY);
	CHECK_RC(volume_parse(buf, len, &back), -EBADMSG);
	/* Generation 0 is not a generation. */
	fixed(&v, key);
	v.kek_gen = 0;
	CHECK(!round_trip(&v), "kek_gen 0 accepted");
}

/* FOLLOW: v2 and later, only over a Key Vault layer C; round-trips. */
static void follow_flag(void)
{
	uint8_t key[32], buf[VOLUME_MAX_LEN];
	struct volume v, back;
	size_t len;

	fixed(&v, key);
	v.version = 3;
	v.flags = VOLUME_FLAG_FOLLOW;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
	v.layer[1].prov = KPROV_AKV;
	strcpy(v.layer[1].key_id, "https://v.vault.azure.net/keys/k/0123");
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	CHECK_RC(volume_parse(buf, len, &back), 0);
	CHECK(back.flags == VOLUME_FLAG_FOLLOW, "follow round trip");
	v.flags = VOLUME_FLAG_FOLLOW | VOLUME_FLAG_REKEY;
	v.prev_gen = 0;
	v.kek_gen = 2;
	for (int i = 0; i < 2; i++) {
		v.prev_wrapped_len[i] = 60;
		t_fill(v.prev_wrapped[i], 60, 80 + (uint32_t)i);
	}
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	CHECK_RC(volume_parse(buf, len, &back), 0);
	CHECK(back.flags == (VOLUME_FLAG_FOLLOW | VOLUME_FLAG_REKEY),
	      "follow survives a rekey");
	/* patched onto a local layer C, or into a v1 config: refused */
	v.layer[1].prov = KPROV_LOCAL;
	v.flags = 0;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	put16(buf + OFF_FLAGS, VOLUME_FLAG_FOLLOW);
	CHECK_RC(volume_parse(buf, len, &back), -EBADMSG);
	fixed(&v, key);
	v.layer[1].prov = KPROV_AKV;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	put16(buf + OFF_FLAGS, VOLUME_FLAG_FOLLOW);
	CHECK_RC(volume_parse(buf, len, &back), -EBADMSG);
	v.flags = VOLUME_FLAG_FOLLOW;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
}

static void frozen(void)
{
	uint8_t key[32], buf[VOLUME_MAX_LEN];
	struct volume v;
	size_t len = 0;

	fixed(&v, key);
	CHECK_RC(volume_seal_mac(&v, key), 0);
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), 0);
	CHECK(len == FIXED_LEN, "len %zu, want %zu", len, (size_t)FIXED_LEN);
	CHECK(t_eq_hex(buf, len, fixed_hex), "frozen config bytes");
	CHECK(memcmp(buf, VOLUME_MAGIC, 8) == 0, "magic");
	CHECK_RC(volume_check_mac(&v, key), 0);
	key[31] ^= 1;
	CHECK_RC(volume_check_mac(&v, key), -EBADMSG);
	key[31] ^= 1;
	/* The MAC covers everything before it: the same bytes, MAC'ed. */
	CHECK(memcmp(buf + len - HMAC_LEN, v.mac, HMAC_LEN) == 0, "mac place");
	CHECK(round_trip(&v), "round trip of the frozen volume");
}

static void round_trips(void)
{
	struct volume v;
	uint8_t key[32];

	fixed(&v, key);
	CHECK_RC(volume_seal_mac(&v, key), 0);
	CHECK(round_trip(&v), "fixed");
	/* Other values in every field. */
	t_fill(v.volume_id, VOLUME_ID_LEN, 50);
	v.block_size = BLOCK_SIZE_MAX;
	v.kek_gen = 0xfedcba98;
	v.created_sec = UINT64_MAX;
	v.layer[1].prov = KPROV_AKV;
	strcpy(v.layer[1].key_id,
	       "https://vault.example.net/keys/cmk/0123456789abcdef");
	v.layer[1].wrapped_len = 512;
	t_fill(v.layer[1].wrapped, 512, 51);
	t_fill(v.mac, HMAC_LEN, 52);
	CHECK(round_trip(&v), "varied");
	/* Empty key id, one-byte wrap. */
	v.layer[0].key_id[0] = '\0';
	v.layer[0].wrapped_len = 1;
	v.block_size = BLOCK_SIZE_MIN;
	CHECK(round_trip(&v), "minimal layer");
	/* The largest layer that still fits VOLUME_MAX_LEN. */
	memset(v.layer[0].key_id, 'k', VOLUME_KEYID_MAX);
	v.layer[0].key_id[VOLUME_KEYID_MAX] = '\0';
	v.layer[0].wrapped_len = VOLUME_WRAPPED_MAX;
	t_fill(v.layer[0].wrapped, VOLUME_WRAPPED_MAX, 53);
	v.layer[1].key_id[0] = '\0';
	v.layer[1].wrapped_len = 1;
	CHECK(round_trip(&v), "long layer");
	CHECK_RC(volume_seal_mac(&v, key), 0);
	CHECK_RC(volume_check_mac(&v, key), 0);
}

static void serialize_errors(void)
{
	uint8_t key[32], buf[VOLUME_MAX_LEN];
	struct volume v;
	size_t len = 0, want;

	fixed(&v, key);
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &want), 0);
	for (size_t cap = 0; cap < want; cap++)
		CHECK_RC(volume_serialize(&v, buf, cap, &len), -ENOSPC);
	CHECK_RC(volume_serialize(&v, buf, want, &len), 0);
	CHECK(len == want, "len %zu", len);
	v.layer[1].wrapped_len = 0;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
	v.layer[1].wrapped_len = VOLUME_WRAPPED_MAX + 1;
	CHECK_RC(volume_serialize(&v, buf, sizeof(buf), &len), -EINVAL);
	/* Both layers at their maximum exceed VOLUME_MAX_LEN: no MAC. */
	fixed(&v, key);
	for (int i = 0; i < 2; i++) {
		memset(v.layer[i].key_id, 'k', VOLUME_KEYID_MAX);
		v.layer[i].wrapped_len = VOLUME_WRAPPED_MAX;
	}
	CHECK(volume_seal_mac(&v, key) < 0, "oversized config sealed");
}

/* The fixed volume's sealed bytes in buf; returns the length. */
static size_t sealed(uint8_t *buf, size_t cap, struct volume *v,
		     uint8_t key[static 32])
{
	size_t len = 0;

	fixed(v, key);
	if (volume_seal_mac(v, key) < 0 ||
	    volume_serialize(v, buf, cap, &len) < 0)
		return 0;
	return len;
}

/* 0 if buf parses and its MAC checks under key, else the error. */
static int accept(const uint8_t *buf, size_t len, const uint8_t *key)
{
	struct volume v;
	int rc;

	rc = volume_parse(buf, len, &v);
	if (rc == 0)
		rc = volume_check_mac(&v, key);
	return rc;
}

static void tamper(void)
{
	uint8_t key[32], buf[VOLUME_MAX_LEN + 1], t[VOLUME_MAX_LEN + 1];
	struct volume v, out;
	size_t len;
	int parsed = 0;

	len = sealed(buf, sizeof(buf), &v, key);
	CHECK(len == FIXED_LEN, "len %zu", len);
	if (len != FIXED_LEN)
		return;
	CHECK_RC(accept(buf, len, key), 0);
	/* Every bit. */
	for (size_t i = 0; i < len * 8; i++) {
		int rc;

		memcpy(t, buf, len);
		t[i / 8] ^= (uint8_t)(1 << (i % 8));
		rc = volume_parse(t, len, &out);
		if (rc == 0) {
			parsed++;
			rc = volume_check_mac(&out, key);
		}
		CHECK(rc == -EBADMSG, "bit %zu accepted (%d)", i, rc);
	}
	CHECK(parsed > 0, "no flip got past the parser");
	/* Every truncation, a trailing byte, a trailing block. */
	for (size_t n = 0; n < len; n++) {
		memset(&out, 0x5a, sizeof(out));
		CHECK_RC(volume_parse(buf, n, &out), -EBADMSG);
		CHECK(out.block_size == 0x5a5a5a5a, "output touched (%zu)", n);
	}
	memcpy(t, buf, len);
	t[len] = 0;
	CHECK_RC(volume_parse(t, len + 1, &out), -EBADMSG);
	CHECK_RC(volume_parse(NULL, 0, &out), -EBADMSG);

	/* Unknown version, flags, magic: the parser refuses before any MAC;
	 * suites and providers through the serialiser, which does not judge
	 * them. */
	memcpy(t, buf, len);
	put16(t + OFF_VERSION, VOLUME_VERSION + 1);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	put16(t + OFF_VERSION, 2);	/* v1 bytes are not a v2 config */
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	put16(t + OFF_VERSION, 0);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	memcpy(t, buf, len);
	put16(t + OFF_FLAGS, 1);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	put16(t + OFF_FLAGS, 0x8000);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	memcpy(t, buf, len);
	t[0] = 'c';
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);

	fixed(&v, key);
	v.suite = 0;
	CHECK(!round_trip(&v), "suite 0 accepted");
	v.suite = 2;
	CHECK(!round_trip(&v), "suite 2 accepted");
	for (int i = 0; i < 2; i++) {
		static const uint8_t bad[] = { 0, 3, 0x81, 0xff };

		for (size_t j = 0; j < sizeof(bad); j++) {
			fixed(&v, key);
			v.layer[i].prov = bad[j];
			CHECK(!round_trip(&v), "layer %d prov %u accepted", i,
			      bad[j]);
		}
		fixed(&v, key);
		v.layer[i].prov = KPROV_AKV;
		CHECK(round_trip(&v), "layer %d akv refused", i);
	}
	CHECK(strcmp(volume_prov_name(KPROV_LOCAL), "local") == 0, "local");
	CHECK(strcmp(volume_prov_name(KPROV_AKV), "akv") == 0, "akv");
	CHECK(strcmp(volume_prov_name(9), "unknown") == 0, "unknown");

	/* A NUL inside a key id: the serialiser cannot make one, so patch
	 * the bytes (first, middle, last character of each layer's id). */
	for (int i = 0; i < 2; i++) {
		size_t id = (i == 0 ? OFF_L0 : OFF_L1) + 3;
		size_t n = sizeof(FIXED_KEYID) - 1;
		size_t at[] = { id, id + n / 2, id + n - 1 };

		CHECK(memcmp(buf + id, FIXED_KEYID, n) == 0, "id at %zu", id);
		for (size_t j = 0; j < CMK_ARRAY_LEN(at); j++) {
			memcpy(t, buf, len);
			t[at[j]] = '\0';
			CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
		}
	}
	/* Lengths inside a layer that point past the end, or are zero. */
	memcpy(t, buf, len);
	put16(t + OFF_L0_WLEN, 0);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	put16(t + OFF_L0_WLEN, VOLUME_WRAPPED_MAX + 1);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	memcpy(t, buf, len);
	put16(t + OFF_L0 + 1, VOLUME_KEYID_MAX + 1);
	CHECK_RC(volume_parse(t, len, &out), -EBADMSG);
	/* Longer than VOLUME_MAX_LEN, whatever it holds. */
	memset(t, 0, sizeof(t));
	memcpy(t, buf, len);
	CHECK_RC(volume_parse(t, VOLUME_MAX_LEN + 1, &out), -EBADMSG);
}

static void block_sizes(void)
{
	static const uint64_t good[] = { 512, 1024, 4096, 65536, 1 << 20 };
	static const uint64_t bad[] = { 0, 1, 256, 511, 513, 4095, 4097,
					3 << 20, 2 << 20, 3 << 10, 1ull << 32,
					(1ull << 32) + 4096, UINT64_MAX };
	uint8_t key[32], buf[VOLUME_MAX_LEN];
	struct volume v;
	size_t len;

	for (size_t i = 0; i < CMK_ARRAY_LEN(good); i++) {
		CHECK(volume_block_size_ok(good[i]), "%llu refused",
		      (unsigned long long)good[i]);
		fixed(&v, key);
		v.block_size = (uint32_t)good[i];
		CHECK(round_trip(&v), "parse refused %llu",
		      (unsigned long long)good[i]);
	}
	for (size_t i = 0; i < CMK_ARRAY_LEN(bad); i++) {
		CHECK(!volume_block_size_ok(bad[i]), "%llu accepted",
		      (unsigned long long)bad[i]);
		if (bad[i] > UINT32_MAX)
			continue;
		fixed(&v, key);
		v.block_size = (uint32_t)bad[i];
		CHECK(!round_trip(&v), "parse accepted %llu",
		      (unsigned long long)bad[i]);
	}
	/* The same through the raw field of a sealed config. */
	len = sealed(buf, sizeof(buf), &v, key);
	put32(buf + OFF_BS, 4095);
	CHECK_RC(volume_parse(buf, len, &v), -EBADMSG);
	put32(buf + OFF_BS, 512);
	CHECK_RC(accept(buf, len, key), -EBADMSG);
	CHECK(get16(buf + OFF_SUITE) == VOLUME_SUITE_GCM_GCM_SIV,
	      "suite offset");
}

int main(void)
{
	frozen();
	round_trips();
	serialize_errors();
	tamper();
	block_sizes();
	format2();
	follow_flag();
	return t_done("test_volume");
}
