/* src/util/secmem.c — locked, undumpable, wiped memory for secrets.
 * Follows the habits of libsodium sodium_mlock() and s2n utils/s2n_mem.c:
 * whole pages so madvise/mlock apply to nothing else. */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmkfs/log.h"
#include "cmkfs/secmem.h"

static atomic_size_t in_use;
static atomic_int mlock_warned;

static size_t round_pages(size_t len)
{
	size_t pg = (size_t)sysconf(_SC_PAGESIZE);

	return (len + pg - 1) / pg * pg;
}

/* Small secrets (a file's two DEKs while they are wrapped or unwrapped:
 * twice per file created or opened) come from slots of one locked,
 * undumpable mapping instead of an mmap + madvise + mlock + munlock +
 * munmap each (doc/PERFORMANCE.md). Slots are wiped on free. */
#define SLOT_LEN 128u
#define SLOTS 512u
static struct {
	pthread_mutex_t mtx;
	uint8_t *base;		/* SLOTS * SLOT_LEN bytes, or NULL */
	uint16_t free[SLOTS];	/* stack of free slot numbers */
	unsigned nfree;
	int tried;
} slots = { .mtx = PTHREAD_MUTEX_INITIALIZER };

static int map_locked(size_t map_len, void **out)
{
	void *p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return -ENOMEM;
#ifndef CMKFS_SANITIZED
	/* ASan keeps its own shadow of this range; s2n skips DONTDUMP too. */
	(void)madvise(p, map_len, MADV_DONTDUMP);
#endif
	if (mlock(p, map_len) != 0 && atomic_exchange(&mlock_warned, 1) == 0)
		log_warn("cannot lock key memory (%s); raise RLIMIT_MEMLOCK",
			 strerror(errno));
	*out = p;
	return 0;
}

static void *slot_get(void)
{
	void *p = NULL;

	pthread_mutex_lock(&slots.mtx);
	if (!slots.tried) {
		slots.tried = 1;
		if (map_locked(SLOTS * SLOT_LEN, (void **)&slots.base) == 0) {
			for (unsigned i = 0; i < SLOTS; i++)
				slots.free[i] = (uint16_t)(SLOTS - 1 - i);
			slots.nfree = SLOTS;
		}
	}
	if (slots.nfree > 0)
		p = slots.base + (size_t)slots.free[--slots.nfree] * SLOT_LEN;
	pthread_mutex_unlock(&slots.mtx);
	return p;
}

static int slot_put(void *p)
{
	uint8_t *b = p;
	int mine;

	pthread_mutex_lock(&slots.mtx);
	mine = slots.base != NULL && b >= slots.base &&
	       b < slots.base + SLOTS * SLOT_LEN;
	if (mine) {
		OPENSSL_cleanse(b, SLOT_LEN);
		slots.free[slots.nfree++] =
			(uint16_t)((size_t)(b - slots.base) / SLOT_LEN);
	}
	pthread_mutex_unlock(&slots.mtx);
	return mine;
}

int secmem_zalloc(size_t len, void **out)
{
	size_t map_len;
	void *p;

	if (len == 0)
		len = 1;
	if (len <= SLOT_LEN && (p = slot_get()) != NULL) {
		/* wiped when it was freed; the mapping started zeroed */
		atomic_fetch_add(&in_use, SLOT_LEN);
		*out = p;
		return 0;
	}
	map_len = round_pages(len);
	if (map_locked(map_len, &p) < 0)
		return -ENOMEM;
	atomic_fetch_add(&in_use, map_len);
	*out = p;
	return 0;
}

void secmem_free(void *p, size_t len)
{
	size_t map_len;

	if (p == NULL)
		return;
	if (len == 0)
		len = 1;
	if (len <= SLOT_LEN && slot_put(p)) {
		atomic_fetch_sub(&in_use, SLOT_LEN);
		return;
	}
	map_len = round_pages(len);
	OPENSSL_cleanse(p, map_len);
	(void)munlock(p, map_len);
	(void)munmap(p, map_len);
	atomic_fetch_sub(&in_use, map_len);
}

void secmem_wipe(void *p, size_t len)
{
	if (p != NULL && len > 0)
		OPENSSL_cleanse(p, len);
}

void secmem_harden_process(void)
{
	struct rlimit rl = { 0, 0 };

	/* OpenSSH platform-tracing.c: no core files, no ptrace by peers. */
	(void)setrlimit(RLIMIT_CORE, &rl);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

size_t secmem_in_use(void)
{
	return atomic_load(&in_use);
}

/* OpenSSL keeps an AES key schedule (the raw key is its first round keys)
 * in the provider context it allocates inside EVP_*Init: no EVP call lets
 * us place it. So every OpenSSL allocation passes through the hooks below;
 * while this thread is inside secmem_ossl_enter() they come from OpenSSL's
 * secure heap (one mapping, mlocked and MADV_DONTDUMP, wiped on free),
 * otherwise from malloc. A full or absent secure heap degrades to malloc:
 * said once in the log, counted (secmem_ossl_stats()). */
static _Thread_local unsigned ossl_depth;
static atomic_int ossl_hooked;
static size_t ossl_arena_len;
static pthread_once_t ossl_once = PTHREAD_ONCE_INIT;
static atomic_int ossl_heap;	/* secure heap usable */
static atomic_size_t ossl_fallbacks;
static atomic_int ossl_warned;

#define OSSL_ARENA_MIN ((size_t)256 << 10)
#define OSSL_BLOCK_MIN 64	/* buddy allocator's smallest block */

static void ossl_fallback(size_t n)
{
	atomic_fetch_add(&ossl_fallbacks, 1);
	if (atomic_exchange(&ossl_warned, 1) == 0)
		log_warn("secure heap for cipher contexts full (%zu bytes "
			 "wanted): key schedules go to ordinary memory", n);
}

static void *ossl_malloc(size_t n, const char *file, int line)
{
	void *p;

	if (ossl_depth > 0) {
		if (atomic_load(&ossl_heap)) {
			p = CRYPTO_secure_malloc(n, file, line);
			if (p != NULL)
				return p;
		}
		ossl_fallback(n);
	}
	return malloc(n);
}

/* Moves a block into the secure heap (or keeps it there): copy, then wipe
 * and free the old one, so no key schedule is left behind in the heap. */
static void *ossl_move(void *old, size_t old_len, size_t n, const char *file,
		       int line)
{
	void *p = ossl_malloc(n, file, line);

	if (p == NULL)
		return NULL;
	memcpy(p, old, old_len < n ? old_len : n);
	if (CRYPTO_secure_allocated(old)) {
		CRYPTO_secure_clear_free(old, old_len, file, line);
	} else {
		OPENSSL_cleanse(old, old_len);
		free(old);
	}
	return p;
}

static void *ossl_realloc(void *old, size_t n, const char *file, int line)
{
	if (old == NULL)
		return ossl_malloc(n, file, line);
	if (CRYPTO_secure_allocated(old)) {
		unsigned saved = ossl_depth;
		void *p;

		/* secure stays secure, whoever grows it */
		ossl_depth = 1;
		p = ossl_move(old, CRYPTO_secure_actual_size(old), n, file,
			      line);
		ossl_depth = saved;
		return p;
	}
	if (ossl_depth > 0 && atomic_load(&ossl_heap))
		return ossl_move(old, malloc_usable_size(old), n, file, line);
	return realloc(old, n);
}

static void ossl_free(void *p, const char *file, int line)
{
	if (p != NULL && CRYPTO_secure_allocated(p))
		CRYPTO_secure_clear_free(p, 0, file, line);
	else
		free(p);
}

int secmem_ossl_install(size_t arena_len)
{
	if (arena_len < OSSL_ARENA_MIN ||
	    (arena_len & (arena_len - 1)) != 0)
		return -EINVAL;
	if (atomic_load(&ossl_hooked))
		return 0;
	/* Refused once OpenSSL has allocated anything: too late to tell
	 * which of its blocks are whose. */
	if (CRYPTO_set_mem_functions(ossl_malloc, ossl_realloc, ossl_free) !=
	    1)
		return -EBUSY;
	ossl_arena_len = arena_len;
	atomic_store(&ossl_hooked, 1);
	return 0;
}

/* First use, not install time: cmkfs mount forks before it serves, and a
 * child does not inherit mlock()ed pages. Halve the arena while mlock
 * fails (RLIMIT_MEMLOCK); keep the smallest unlocked one if need be, it
 * is still dump-excluded. */
static void ossl_heap_init(void)
{
	size_t len = ossl_arena_len;
	int r;

	for (;;) {
		r = CRYPTO_secure_malloc_init(len, OSSL_BLOCK_MIN);
		if (r != 2 || len / 2 < OSSL_ARENA_MIN)
			break;
		(void)CRYPTO_secure_malloc_done();
		len /= 2;
	}
	if (r == 0) {
		/* every context falls back: counted, said once here */
		atomic_store(&ossl_warned, 1);
		log_warn("no secure heap for cipher contexts: key schedules go "
			 "to ordinary memory");
		return;
	}
	/* the same one warning as map_locked() */
	if (r == 2 && atomic_exchange(&mlock_warned, 1) == 0)
		log_warn("cannot lock key memory (%s); raise RLIMIT_MEMLOCK",
			 "secure heap for cipher contexts");
	ossl_arena_len = len;
	atomic_store(&ossl_heap, 1);
}

void secmem_ossl_enter(void)
{
	if (atomic_load(&ossl_hooked))
		(void)pthread_once(&ossl_once, ossl_heap_init);
	ossl_depth++;
}

void secmem_ossl_leave(void)
{
	if (ossl_depth > 0)
		ossl_depth--;
}

void secmem_ossl_stats(struct secmem_ossl_stats *st)
{
	st->hooked = atomic_load(&ossl_hooked) != 0;
	st->heap = atomic_load(&ossl_heap) != 0;
	st->arena_len = st->heap ? ossl_arena_len : 0;
	st->used = st->heap ? CRYPTO_secure_used() : 0;
	st->fallbacks = atomic_load(&ossl_fallbacks);
}
