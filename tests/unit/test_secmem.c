/* tests/unit/test_secmem.c — secret memory: slots and pages wiped and
 * returned, and OpenSSL's allocations for keyed contexts in its secure heap
 * (locked, MADV_DONTDUMP) through secmem_ossl_*: what is allocated between
 * enter and leave is secure, a secure block stays secure through realloc
 * (whoever grows it), an ordinary block grown inside is moved in, a full
 * arena falls back to ordinary heap and counts it, and the AEAD contexts
 * (GCM and SIV) land there and leave nothing in it when freed. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cmkfs/aead.h"
#include "cmkfs/secmem.h"
#include "../lib/tap.h"

#define ARENA ((size_t)256 << 10)	/* the smallest: easy to fill */

static size_t used(void)
{
	struct secmem_ossl_stats st;

	secmem_ossl_stats(&st);
	return st.used;
}

static void slots_and_pages(void)
{
	size_t base = secmem_in_use();
	uint8_t *a = NULL, *b = NULL;

	CHECK_RC(secmem_zalloc(32, (void **)&a), 0);
	CHECK_RC(secmem_zalloc(10000, (void **)&b), 0);
	CHECK(a != NULL && b != NULL && a[31] == 0 && b[9999] == 0, "zeroed");
	memset(a, 0x5a, 32);
	secmem_free(a, 32);
	secmem_free(b, 10000);
	CHECK(secmem_in_use() == base, "in use %zu, was %zu", secmem_in_use(),
	      base);
	/* a slot comes back wiped */
	CHECK_RC(secmem_zalloc(32, (void **)&a), 0);
	CHECK(a[0] == 0 && a[31] == 0, "slot not wiped");
	secmem_free(a, 32);
}

static void hooks(void)
{
	struct secmem_ossl_stats st;
	uint8_t *p, *q;
	EVP_CIPHER_CTX *c;

	secmem_ossl_stats(&st);
	CHECK(st.hooked && !st.heap, "hooked, heap set up at first use");
	/* outside: ordinary heap */
	c = EVP_CIPHER_CTX_new();
	CHECK(c != NULL && !CRYPTO_secure_allocated(c), "outside: ordinary");
	EVP_CIPHER_CTX_free(c);

	secmem_ossl_enter();
	secmem_ossl_enter();	/* nests */
	secmem_ossl_leave();
	c = EVP_CIPHER_CTX_new();
	p = OPENSSL_malloc(100);
	secmem_ossl_leave();
	secmem_ossl_stats(&st);
	CHECK(st.heap && st.arena_len == ARENA, "heap %d, arena %zu", st.heap,
	      st.arena_len);
	CHECK(c != NULL && CRYPTO_secure_allocated(c), "inside: secure");
	CHECK(p != NULL && CRYPTO_secure_allocated(p), "inside: secure");
	EVP_CIPHER_CTX_free(c);

	/* grown outside: stays secure, content kept */
	memset(p, 0x42, 100);
	p = OPENSSL_realloc(p, 5000);
	CHECK(p != NULL && CRYPTO_secure_allocated(p), "realloc left it");
	CHECK(p[0] == 0x42 && p[99] == 0x42, "realloc lost content");
	OPENSSL_free(p);

	/* an ordinary block grown inside moves in */
	q = OPENSSL_malloc(64);
	CHECK(q != NULL && !CRYPTO_secure_allocated(q), "ordinary");
	memset(q, 0x17, 64);
	secmem_ossl_enter();
	q = OPENSSL_realloc(q, 128);
	secmem_ossl_leave();
	CHECK(q != NULL && CRYPTO_secure_allocated(q), "not moved in");
	CHECK(q[0] == 0x17 && q[63] == 0x17, "move lost content");
	OPENSSL_free(q);
	CHECK(used() == 0, "secure heap not empty: %zu", used());
}

static void full_arena(void)
{
	struct secmem_ossl_stats st;
	void *blk[8] = { 0 };
	size_t before;

	secmem_ossl_stats(&st);
	before = st.fallbacks;
	secmem_ossl_enter();
	for (int i = 0; i < 8; i++)
		blk[i] = OPENSSL_malloc(ARENA / 4);
	secmem_ossl_leave();
	secmem_ossl_stats(&st);
	for (int i = 0; i < 8; i++)
		CHECK(blk[i] != NULL, "block %d: no fallback", i);
	/* the arena holds at most 4 of them */
	CHECK(st.fallbacks >= before + 4, "fallbacks %zu, were %zu",
	      st.fallbacks, before);
	for (int i = 0; i < 8; i++)
		OPENSSL_free(blk[i]);
	CHECK(used() == 0, "secure heap not empty: %zu", used());
}

static void aead_contexts(void)
{
	uint8_t key[AEAD_KEY_LEN] = { 1 }, nonce[AEAD_NONCE_LEN] = { 0 },
		skey[SIV_KEY_LEN] = { 2 }, ct[40], back[40], tag[16];
	uint8_t pt[40] = "forty bytes of plain text, three blocks";
	const uint8_t *ad = (const uint8_t *)"ad";
	struct aead *a = NULL;
	size_t base, one;

	/* warm-up: per-thread OpenSSL state may be allocated on first use */
	CHECK_RC(aead_new(key, &a), 0);
	aead_free(a);
	a = NULL;
	base = used();
	CHECK_RC(aead_new(key, &a), 0);
	one = used() - base;
	CHECK(one > 0, "GCM contexts not in the secure heap");
	printf("secure heap per struct aead (GCM enc+dec): %zu bytes\n", one);
	CHECK_RC(aead_seal(a, nonce, NULL, 0, pt, sizeof(pt), ct, tag), 0);
	CHECK_RC(aead_open(a, nonce, NULL, 0, ct, sizeof(ct), back, tag), 0);
	CHECK(memcmp(back, pt, sizeof(pt)) == 0, "GCM round trip");
	aead_free(a);
	CHECK(used() == base, "GCM left %zu bytes", used() - base);

	CHECK_RC(aead_siv_seal(skey, ad, 2, pt, sizeof(pt), ct, tag), 0);
	CHECK_RC(aead_siv_open(skey, ad, 2, ct, sizeof(ct), back, tag), 0);
	CHECK(memcmp(back, pt, sizeof(pt)) == 0, "SIV round trip");
	CHECK(used() == base, "SIV left %zu bytes", used() - base);
}

int main(void)
{
	/* first: before OpenSSL allocates anything */
	CHECK_RC(secmem_ossl_install(ARENA), 0);
	CHECK_RC(secmem_ossl_install(ARENA), 0);	/* idempotent */
	CHECK_RC(secmem_ossl_install(ARENA + 1), -EINVAL);
	CHECK_RC(aead_global_init(), 0);
	slots_and_pages();
	hooks();
	full_arena();
	aead_contexts();
	return t_done("test_secmem");
}
