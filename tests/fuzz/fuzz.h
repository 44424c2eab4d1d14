/* tests/fuzz/fuzz.h — shared bits of the fuzz targets. Each fuzz_*.c
 * defines LLVMFuzzerTestOneInput; linked with -fsanitize=fuzzer it is a
 * libFuzzer binary, linked with replay.c it replays a corpus (make check). */
#ifndef CMKFS_FUZZ_H
#define CMKFS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A target's invariant failed: crash loudly so the fuzzer keeps the input. */
#define FUZZ_ASSERT(c)                  \
	do {                            \
		if (!(c))               \
			abort();        \
	} while (0)

/* Results the target does not judge still count as used. */
static inline void fuzz_ignore(int rc)
{
	(void)rc;
}

/* Fixed keys: the same bytes every run, so corpora stay meaningful. */
static inline void fuzz_key(uint8_t *k, size_t n, uint8_t base)
{
	for (size_t i = 0; i < n; i++)
		k[i] = (uint8_t)(base + i);
}

#endif
