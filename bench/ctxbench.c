/* bench/ctxbench.c — cost of keyed cipher contexts in OpenSSL's secure
 * heap (doc/PERFORMANCE.md, "Key schedules in locked memory"): the two
 * GCM contexts of one file made and freed (what every open and create
 * pays), one AES-SIV name seal, and N files' contexts held at once.
 * Argument 1 installs the secure-heap hooks as cmkfs's main() does.
 *
 *   cc -O2 -Ibuild/release -Iinclude bench/ctxbench.c \
 *      build/release/libcmkfs.a -lcrypto -lpthread -o /tmp/ctxbench
 *   /tmp/ctxbench 0; /tmp/ctxbench 1     (interleave a few rounds) */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "cmkfs/aead.h"
#include "cmkfs/secmem.h"

#define ROUNDS 200000
#define HELD 10000

static double now_sec(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static struct aead *held[2 * HELD];
	uint8_t k1[AEAD_KEY_LEN] = { 1 }, k2[AEAD_KEY_LEN] = { 2 },
		sk[SIV_KEY_LEN] = { 3 }, pt[20] = "a file name", ct[20],
		tag[SIV_TAG_LEN];
	int hook = argc > 1 && atoi(argv[1]) != 0;
	struct secmem_ossl_stats st;
	double t0, t1, t2, t3;

	if (hook && secmem_ossl_install(SECMEM_OSSL_ARENA_LEN) < 0)
		return 2;
	if (aead_global_init() < 0)
		return 1;
	t0 = now_sec();
	for (int i = 0; i < ROUNDS; i++) {
		struct aead *a = NULL, *b = NULL;

		if (aead_new(k1, &a) < 0 || aead_new(k2, &b) < 0)
			return 1;
		aead_free(a);
		aead_free(b);
	}
	t1 = now_sec();
	for (int i = 0; i < ROUNDS; i++)
		if (aead_siv_seal(sk, (const uint8_t *)"d", 1, pt, sizeof(pt),
				  ct, tag) < 0)
			return 1;
	t2 = now_sec();
	for (int i = 0; i < 2 * HELD; i++)
		if (aead_new(i % 2 ? k2 : k1, &held[i]) < 0)
			return 1;
	secmem_ossl_stats(&st);
	for (int i = 0; i < 2 * HELD; i++)
		aead_free(held[i]);
	t3 = now_sec();
	printf("hooks %d: file contexts %.2f us, SIV seal %.2f us, "
	       "%d files held: %.2f us each, secure heap %zu KiB used, "
	       "%zu fallbacks\n",
	       hook, (t1 - t0) / ROUNDS * 1e6, (t2 - t1) / ROUNDS * 1e6, HELD,
	       (t3 - t2) / HELD * 1e6, st.used >> 10, st.fallbacks);
	return 0;
}
