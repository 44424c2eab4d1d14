/* src/util/secmem.c — locked, undumpable, wiped memory for secrets.
 * Follows the habits of libsodium sodium_mlock() and s2n utils/s2n_mem.c:
 * whole pages so madvise/mlock apply to nothing else. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
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

int secmem_zalloc(size_t len, void **out)
{
	size_t map_len;
	void *p;

	if (len == 0)
		len = 1;
	map_len = round_pages(len);
	p = mmap(NULL, map_len, PROT_READ | PROT_WRITE,
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
