/* src/util/secmem.c — locked, undumpable, wiped memory for secrets.
 * Follows the habits of libsodium sodium_mlock() and s2n utils/s2n_mem.c:
 * whole pages so madvise/mlock apply to nothing else. */
#include "config.h"

#include <errno.h>
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
