/* include/cmkfs/secmem.h — memory for key material.
 * Owns allocations that hold secrets: page-aligned, mlock()ed where the
 * RLIMIT_MEMLOCK allows, excluded from core dumps (MADV_DONTDUMP), and wiped
 * with OPENSSL_cleanse before they are returned to the system.
 * Thread-safe. */
#ifndef CMKFS_SECMEM_H
#define CMKFS_SECMEM_H

#include <stdbool.h>

#include "cmkfs/common.h"

/* Allocate `len` zeroed bytes of secret memory in *out.
 * Errors: -ENOMEM. A failed mlock is not an error (said once in the log). */
CMK_MUST_CHECK int secmem_zalloc(size_t len, void **out);
/* Wipe and free; NULL-safe. `len` must be the length given to zalloc. */
void secmem_free(void *p, size_t len);
/* Wipe a stack or heap buffer (OPENSSL_cleanse). */
void secmem_wipe(void *p, size_t len);
/* Make the process undumpable and disable core files (daemon start). */
void secmem_harden_process(void);
/* Number of secmem bytes currently allocated (tests). */
size_t secmem_in_use(void);

/* OpenSSL's own allocations for keyed contexts (key schedules).
 * secmem_ossl_install() routes every OpenSSL allocation through cmkfs's
 * hooks; call it first thing in main(), before OpenSSL or libcurl allocate.
 * `arena_len` (a power of two, >= 256 KiB) sizes OpenSSL's secure heap,
 * set up at the first secmem_ossl_enter() (after any fork: mlock is not
 * inherited); it shrinks while RLIMIT_MEMLOCK refuses to lock it.
 * Errors: -EBUSY (OpenSSL already allocated: contexts stay in ordinary
 * heap), -EINVAL. Without it (unit tests, fuzzers) everything works the
 * same from ordinary heap. */
#define SECMEM_OSSL_ARENA_LEN ((size_t)64 << 20)
CMK_MUST_CHECK int secmem_ossl_install(size_t arena_len);
/* Between enter and leave (nesting, per thread), what OpenSSL allocates
 * comes from the secure heap: locked, MADV_DONTDUMP, wiped on free. Wrap
 * every call that creates a keyed context or keys one. When the heap is
 * full or absent, ordinary heap (one log line, counted in `fallbacks`). */
void secmem_ossl_enter(void);
void secmem_ossl_leave(void);
struct secmem_ossl_stats {
	bool hooked;		/* secmem_ossl_install() succeeded */
	bool heap;		/* the secure heap is set up */
	size_t arena_len;	/* its size */
	size_t used;		/* bytes in use there */
	size_t fallbacks;	/* allocations that went to ordinary heap */
};
void secmem_ossl_stats(struct secmem_ossl_stats *st);

#endif
