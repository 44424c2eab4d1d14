/* src/cipherdir/cfile.c — plain <-> cipher offsets, RMW, zero fill, truncation
 * (doc/FORMAT.md §3, doc/DESIGN.md "file layer").
 *
 * Spaces: plain_off (what applications see), blockno, cipher_off (backing
 * file). cb = bs + BLOCK_OVERHEAD. Block b lives at HEADER_LEN + b * cb. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/cfile.h"
#include "cmkfs/linkset.h"
#include "cmkfs/log.h"
#include "cmkfs/names.h"
#include "cmkfs/par.h"
#include "cmkfs/secmem.h"
#include "cmkfs/trec.h"

#define CHUNK_BYTES (1u << 20)	/* plaintext per batched pread/pwrite */
/* Block crypto of a request is split over the worker pool from this many
 * bytes per part on (below it, waking a thread costs more than it saves). */
#define PAR_MIN_BYTES (128u << 10)
/* Internal result of the write paths: the DEKs' sealing budget is spent,
 * nothing was written; the caller drops its locks and re-keys the file. */
#define NEED_REKEY 1
/* A request retried after this many re-keys fails (-EFBIG): it needs more
 * seals than fresh DEKs may make, or other writers of the file use up each
 * fresh budget first (only conceivable with a tiny test budget). */
#define REKEY_TRIES 4

/* Set once by cfile_budget_from_env() before any thread starts. */
static uint64_t seal_budget = CFILE_SEAL_BUDGET;
static uint64_t seal_unit = HEADER_SEAL_UNIT;

/* The backing path for log lines (gocryptfs doRead logs ino + block; we
 * name the ciphertext file so fsck and operators can find it). */
/* cfile_test_crash_at(): changes seen, and the one a simulated kill stops
 * at (0: none). Only tests arm it. */
static long crash_at, crash_seen;

void cfile_test_crash_at(long n)
{
	crash_at = n;
	crash_seen = 0;
}

long cfile_test_changes(void)
{
	return crash_seen;
}

/* Called at the entry of each backing change: whether the simulated kill
 * has happened (then the change must not be made). */
static bool killed(void)
{
	long n = __atomic_add_fetch(&crash_seen, 1, __ATOMIC_RELAXED);

	return crash_at > 0 && n >= crash_at;
}

static bool was_killed(void)
{
	return crash_at > 0 && crash_seen >= crash_at;
}

/* backing_pwrite_full() of a file's blocks, counted for the test hook. */
static int blk_pwrite(int fd, const void *p, size_t n, off_t off)
{
	if (killed())
		return -ECANCELED;
	return backing_pwrite_full(fd, p, n, off);
}

static int blk_truncate(int fd, off_t len)
{
	if (killed())
		return -ECANCELED;
	return ftruncate(fd, len) < 0 ? -errno : 0;
}

const char *cfile_where(const struct cfile *cf, char *buf, size_t cap)
{
	char proc[32];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", cf->path_fd);
	n = readlink(proc, buf, cap - 1);
	if (n < 0)
		snprintf(buf, cap, "(backing fd %d)", cf->path_fd);
	else
		buf[n] = '\0';
	return buf;
}

int cfile_budget_from_env(void)
{
	const char *e = getenv(CFILE_TEST_BUDGET_ENV);
	unsigned long long n;
	char *end;

	if (e == NULL || *e == '\0')
		return 0;
	/* digits only: strtoull would take "-1" as 2^64 - 1 */
	if (*e < '0' || *e > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(e, &end, 10);
	if (errno != 0 || *end != '\0' || n < CFILE_TEST_BUDGET_MIN ||
	    n > CFILE_SEAL_BUDGET)
		return -EINVAL;
	seal_budget = n;
	seal_unit = n / 16 < HEADER_SEAL_UNIT ? n / 16 : HEADER_SEAL_UNIT;
	return 0;
}

uint64_t cfile_budget(void)
{
	return seal_budget;
}

uint64_t cfile_seal_unit(void)
{
	return seal_unit;
}

uint64_t cfile_seal_limit(const struct header *h)
{
	return ((uint64_t)h->seal_units + 1) * seal_unit;
}

uint16_t cfile_units_for(uint64_t seals)
{
	uint64_t u = seals <= seal_unit ? 0 : (seals - 1) / seal_unit;

	return u > HEADER_SEAL_UNITS_MAX ? HEADER_SEAL_UNITS_MAX : (uint16_t)u;
}

void cfile_init(struct cfile *cf, struct keyring *kr, uint32_t bs,
		int path_fd)
{
	memset(cf, 0, sizeof(*cf));
	cf->path_fd = path_fd;
	cf->jfd = -1;
	cf->rootfd = -1;
	pthread_rwlock_init(&cf->rwlock, NULL);
	rangelock_init(&cf->ranges);
	pthread_mutex_init(&cf->mtx, NULL);
	pthread_mutex_init(&cf->budget_mtx, NULL);
	cf->kr = kr;
	cf->bs = bs;
}

void cfile_destroy(struct cfile *cf)
{
	struct filekeys *fk = cf->pool;

	while (fk != NULL) {
		struct filekeys *next = fk->next;

		keyring_filekeys_free(fk);
		fk = next;
	}
	cf->pool = NULL;
	pthread_rwlock_destroy(&cf->rwlock);
	rangelock_destroy(&cf->ranges);
	pthread_mutex_destroy(&cf->mtx);
	pthread_mutex_destroy(&cf->budget_mtx);
}

static uint64_t nblocks(uint64_t plain, uint32_t bs)
{
	return plain == 0 ? 1 : (plain - 1) / bs + 1;
}

/* Backing offset of block b; -EFBIG past what off_t holds. */
static int cipher_off(uint64_t b, uint32_t bs, uint64_t *off)
{
	uint64_t cb = (uint64_t)bs + BLOCK_OVERHEAD;

	if (__builtin_mul_overflow(b, cb, off) ||
	    __builtin_add_overflow(*off, HEADER_LEN, off) || *off > INT64_MAX)
		return -EFBIG;
	return 0;
}

int cfile_plain_size(uint64_t csize, uint32_t bs, uint64_t *plain)
{
	uint64_t cb = (uint64_t)bs + BLOCK_OVERHEAD, c, nfull, rem;

	if (csize < HEADER_LEN + BLOCK_OVERHEAD)
		return -EBADMSG;
	c = csize - HEADER_LEN;
	nfull = c / cb;
	rem = c % cb;
	if (rem == 0) {
		*plain = nfull * bs;
		return 0;
	}
	/* A partial last block carries its 56 bytes of overhead; an empty one
	 * is only valid as the single block of an empty file. */
	if (rem < BLOCK_OVERHEAD || (rem == BLOCK_OVERHEAD && nfull > 0))
		return -EBADMSG;
	*plain = nfull * bs + (rem - BLOCK_OVERHEAD);
	return 0;
}

int cfile_cipher_size(uint64_t plain, uint32_t bs, uint64_t *cipher)
{
	uint64_t nb = nblocks(plain, bs), off;
	int rc;

	rc = cipher_off(nb - 1, bs, &off);
	if (rc < 0)
		return rc;
	*cipher = off + (plain - (nb - 1) * bs) + BLOCK_OVERHEAD;
	return *cipher > INT64_MAX ? -EFBIG : 0;
}

int cfile_read_header(int fd, struct header *h)
{
	uint8_t buf[HEADER_LEN];
	int rc;

	rc = backing_pread_full(fd, buf, sizeof(buf), 0);
	return rc < 0 ? rc : header_parse(buf, sizeof(buf), h);
}

/* Take keyed contexts from the pool, or make new ones. */
static int fk_get(struct cfile *cf, int fd, struct filekeys **out)
{
	uint64_t gen = keyring_generation(cf->kr);
	struct filekeys *fk;
	struct header h;
	int rc;

	pthread_mutex_lock(&cf->mtx);
	fk = cf->pool;
	if (fk != NULL)
		cf->pool = fk->next;
	pthread_mutex_unlock(&cf->mtx);
	if (fk != NULL && fk->generation == gen) {
		*out = fk;
		return 0;
	}
	/* Stale generation: the keyring was locked since; never reuse. */
	keyring_filekeys_free(fk);
	pthread_mutex_lock(&cf->mtx);
	h = cf->hdr;
	pthread_mutex_unlock(&cf->mtx);
	rc = keyring_open_file(cf->kr, &h, out);
	if (rc != -EKEYREJECTED)
		return rc;
	/* `cmkfs rekey` may have re-wrapped the header since we read it
	 * (same file id and DEKs, newer KEK generation): read it again. */
	if (cfile_read_header(fd, &h) < 0 ||
	    memcmp(h.file_id, cf->hdr.file_id, FILE_ID_LEN) != 0)
		return -EKEYREJECTED;
	rc = keyring_open_file(cf->kr, &h, out);
	if (rc == 0) {
		pthread_mutex_lock(&cf->mtx);
		cf->hdr = h;
		pthread_mutex_unlock(&cf->mtx);
	}
	return rc;
}

/* Back to the pool, unless the keyring was locked meanwhile: then the key
 * schedule is wiped now (checked under cf->mtx, which cfile_drop_keys
 * also takes, so no context outlives a lock in the pool). */
static void fk_put(struct cfile *cf, struct filekeys *fk)
{
	pthread_mutex_lock(&cf->mtx);
	if (fk->generation == keyring_generation(cf->kr)) {
		fk->next = cf->pool;
		cf->pool = fk;
		fk = NULL;
	}
	pthread_mutex_unlock(&cf->mtx);
	keyring_filekeys_free(fk);
}

/* ---- sealing budget (doc/FORMAT.md §3.3) ---- */

/* Write the header again with its count raised to cover `need` seals,
 * before any of them is made: a crash of the process at any point leaves
 * a header that counts every seal made (and at most a unit more). Under
 * the header lock, from the header on disk (a live `cmkfs rekey` may have
 * re-wrapped it under a newer generation meanwhile). Durable against a
 * power cut too, by fdatasync, except the first reservation after a load
 * or create: that one is the common case (the first write to a file after
 * a mount, ~0.7 ms per file measured, doc/PERFORMANCE.md), a later one or
 * any fsync of the file makes it durable, and until then a power cut can
 * lose at most that one reservation per file, which the margin of
 * CFILE_SEAL_MARGIN absorbs (doc/SECURITY.md "Nonce budget"). Caller
 * holds cf->budget_mtx. */
static int reserve(struct cfile *cf, int fd, uint64_t need)
{
	uint8_t buf[HEADER_LEN], id[FILE_ID_LEN];
	uint16_t units = cfile_units_for(need);
	struct header h, nh;
	int rc;

	pthread_mutex_lock(&cf->mtx);
	memcpy(id, cf->hdr.file_id, FILE_ID_LEN);
	pthread_mutex_unlock(&cf->mtx);
	backing_lock_head(fd, HEADER_LEN, true);
	rc = cfile_read_header(fd, &h);
	if (rc == 0 && memcmp(h.file_id, id, FILE_ID_LEN) != 0)
		rc = -EKEYREJECTED;
	if (rc == 0 && h.seal_units > units)
		units = h.seal_units;	/* never lower what is on disk */
	if (rc == 0)
		rc = keyring_header_units(cf->kr, &h, units, &nh);
	if (rc == 0) {
		header_serialize(&nh, buf);
		rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
	}
	if (rc == 0 && cf->reserved && fdatasync(fd) < 0)
		rc = -errno;
	backing_lock_head(fd, HEADER_LEN, false);
	if (rc == 0) {
		cf->reserved = true;
		pthread_mutex_lock(&cf->mtx);
		cf->hdr = nh;
		pthread_mutex_unlock(&cf->mtx);
	}
	return rc;
}

/* n more seals under cf->mtx: 0 counted, NEED_REKEY past the budget,
 * -EAGAIN past what the header reserves. */
static int take_locked(struct cfile *cf, uint64_t n)
{
	if (n > seal_budget || cf->seals > seal_budget - n) {
		cf->rekey_due = true;
		return NEED_REKEY;
	}
	if (cf->seals + n > cfile_seal_limit(&cf->hdr))
		return -EAGAIN;
	cf->seals += n;
	return 0;
}

/* Count n seals against the file's DEKs before they are made: 0, or
 * NEED_REKEY (nothing counted), or -errno of the reservation. The caller
 * holds cf->rwlock (shared or alone), so no reseal changes the DEKs
 * meanwhile. A header write every unit of seals, one at a time. */
static int budget_take(struct cfile *cf, int fd, uint64_t n)
{
	uint64_t need;
	int rc;

	pthread_mutex_lock(&cf->mtx);
	rc = take_locked(cf, n);
	pthread_mutex_unlock(&cf->mtx);
	if (rc != -EAGAIN)
		return rc;
	pthread_mutex_lock(&cf->budget_mtx);
	for (;;) {
		pthread_mutex_lock(&cf->mtx);
		rc = take_locked(cf, n);
		need = cf->seals + n;
		pthread_mutex_unlock(&cf->mtx);
		if (rc != -EAGAIN)
			break;
		rc = reserve(cf, fd, need);
		if (rc < 0)
			break;
	}
	pthread_mutex_unlock(&cf->budget_mtx);
	return rc;
}

/* After NEED_REKEY, with no lock held: the owner's re-key, then the
 * caller tries again. */
static int rekey_now(struct cfile *cf, int fd, int *tries)
{
	char wbuf[4096];

	if (cf->rekey == NULL) {
		log_err("%s: the file's data keys have made their %llu seals "
			"and nothing here can re-key it",
			cfile_where(cf, wbuf, sizeof(wbuf)),
			(unsigned long long)seal_budget);
		return -EFBIG;
	}
	if (++*tries > REKEY_TRIES) {
		log_err("%s: a write needs more seals than fresh data keys "
			"may make (%llu)", cfile_where(cf, wbuf, sizeof(wbuf)),
			(unsigned long long)seal_budget);
		return -EFBIG;
	}
	return cf->rekey(cf, fd, cf->rekey_arg);
}

bool cfile_rekey_due(struct cfile *cf)
{
	bool due;

	pthread_mutex_lock(&cf->mtx);
	due = cf->rekey_due;
	pthread_mutex_unlock(&cf->mtx);
	return due;
}

void cfile_adopt_keys(struct cfile *cf, const struct header *h,
		      struct filekeys *fk, uint64_t seals)
{
	struct filekeys *old;

	pthread_mutex_lock(&cf->mtx);
	old = cf->pool;
	cf->hdr = *h;
	cf->loaded = true;
	fk->next = NULL;
	cf->pool = fk;
	cf->seals = seals;
	cf->rekey_due = false;
	pthread_mutex_unlock(&cf->mtx);
	while (old != NULL) {
		struct filekeys *next = old->next;

		keyring_filekeys_free(old);
		old = next;
	}
}

/* ---- block crypto over the worker pool (include/cmkfs/par.h) ---- */

/* Blocks [b0, b0 + n) of a file whose last block is nb - 1 and whose
 * plain size is `size`; ciphertext back to back in ct (block i at i * cb:
 * only the file's last block is short, and it is last in any range). */
struct crypt_job {
	struct filekeys *fk[PAR_MAX];
	uint32_t bs;
	uint64_t b0, nb, size;
	uint8_t *ct;
	uint8_t *out;			/* open: plaintext, block i at i * bs */
	const uint8_t *const *src;	/* seal: plaintext of block i */
	uint64_t bad[PAR_MAX];		/* open: a block that failed, by part */
	const uint8_t *kinds;		/* open: enum slot_kind of block i, or
					 * NULL (all data) */
	struct cfile *grown;		/* open, format 3: where to look for
					 * a growth cut short (open_grown) */
	int fd;
};

static int open_grown(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t nb, uint64_t b, uint8_t *out);

static size_t job_len(const struct crypt_job *j, uint64_t b)
{
	return b == j->nb - 1 ? j->size - b * j->bs : j->bs;
}

static int open_part(size_t lo, size_t hi, unsigned part, void *arg)
{
	struct crypt_job *j = arg;
	size_t cb = j->bs + BLOCK_OVERHEAD;

	for (size_t i = lo; i < hi; i++) {
		uint64_t b = j->b0 + i;

		if (j->kinds != NULL && j->kinds[i] != 0) {
			/* a hole slot: zeros, once its record verifies */
			memset(j->out + i * j->bs, 0, job_len(j, b));
			continue;
		}
		if (block_open(&j->fk[part]->bc, b, b == j->nb - 1,
			       j->ct + i * cb, job_len(j, b) + BLOCK_OVERHEAD,
			       j->out + i * j->bs) < 0 &&
		    (j->grown == NULL || b >= j->nb - 1 ||
		     open_grown(j->grown, j->fk[part], j->fd, j->nb, b,
				j->out + i * j->bs) < 0)) {
			j->bad[part] = b;
			return -EBADMSG;
		}
	}
	return 0;
}

static int seal_part(size_t lo, size_t hi, unsigned part, void *arg)
{
	struct crypt_job *j = arg;
	size_t cb = j->bs + BLOCK_OVERHEAD;
	int rc = 0;

	for (size_t i = lo; i < hi && rc == 0; i++) {
		uint64_t b = j->b0 + i;

		rc = block_seal(&j->fk[part]->bc, b, b == j->nb - 1, j->src[i],
				job_len(j, b), j->ct + i * cb);
	}
	return rc;
}

/* Run fn over n blocks, in parallel when they are many: fk[0] is the
 * caller's context; the others come from (and go back to) the pool. */
static int crypt_blocks(struct cfile *cf, int fd, struct crypt_job *j,
			uint64_t n, int (*fn)(size_t, size_t, unsigned, void *))
{
	unsigned parts = 1, want = (unsigned)((n * j->bs) / PAR_MIN_BYTES);
	int rc;

	if (want > par_width())
		want = par_width();
	while (parts < want && fk_get(cf, fd, &j->fk[parts]) == 0)
		parts++;
	rc = par_for(n, parts, fn, j);
	for (unsigned i = 1; i < parts; i++)
		fk_put(cf, j->fk[i]);
	return rc;
}

void cfile_drop_keys(struct cfile *cf)
{
	struct filekeys *fk;

	pthread_mutex_lock(&cf->mtx);
	fk = cf->pool;
	cf->pool = NULL;
	pthread_mutex_unlock(&cf->mtx);
	while (fk != NULL) {
		struct filekeys *next = fk->next;

		keyring_filekeys_free(fk);
		fk = next;
	}
}

static int cfile_linkset_has(const struct cfile *cf, const struct header *h,
			     const char *bname)
{
	int rc;

	if (cf->rootfd < 0)
		return CFILE_LOC_NOSET;
	rc = linkset_has(cf->kr, cf->rootfd, h, bname);
	return rc == 0 ? 0 : rc == 1 ? CFILE_LOC_ELSEWHERE : CFILE_LOC_NOSET;
}

static bool vol_v3(struct cfile *cf)
{
	return keyring_version(cf->kr) >= 3;
}

int cfile_location(const struct cfile *cf, const struct header *h,
		   const char *bname)
{
	uint8_t tok[NAMES_TOKEN_LEN];
	int rc;

	if (keyring_version(cf->kr) < 3)
		return 0;
	if (h->version != HEADER_VERSION_3)
		return CFILE_LOC_OLD;
	if (header_is_set(h))
		return cfile_linkset_has(cf, h, bname);
	rc = names_link_token(bname, tok);
	if (rc < 0)
		return rc;
	return header_slot_has(h, tok) ? 0 : CFILE_LOC_ELSEWHERE;
}

/* The base name cf was reached by, from its path_fd; NULL if unknown or
 * unlinked (then nothing is checked: the name is gone, the open file is
 * what the process holds). */
static const char *reached_as(const struct cfile *cf, char *buf, size_t cap)
{
	static const char gone[] = " (deleted)";
	size_t n;
	char *slash;

	if (cf->path_fd < 0)
		return NULL;
	cfile_where(cf, buf, cap);
	n = strlen(buf);
	slash = strrchr(buf, '/');
	if (buf[0] != '/' || slash == NULL ||
	    (n >= sizeof(gone) - 1 &&
	     strcmp(buf + n - (sizeof(gone) - 1), gone) == 0))
		return NULL;
	return slash + 1;
}

const char *cfile_location_msg(int rc)
{
	switch (rc) {
	case CFILE_LOC_OLD:
		return "header of an older format in a format-3 volume "
		       "(not bound to a location)";
	case CFILE_LOC_ELSEWHERE:
		return "contents bound to another location (moved, copied or "
		       "swapped in the cipher directory)";
	case CFILE_LOC_NOSET:
		return "hard-link set missing or not matching the header";
	default:
		return strerror(-rc);
	}
}

/* The slots of h once `drop` is taken out and `add` put in (either may be
 * NULL; exact: the slots are {add, drop} as given). Errors: -EMLINK (no
 * free slot for add). */
static int slots_edit(const struct header *h, const char *add,
		      const char *drop, bool exact,
		      uint8_t slot[2][HEADER_SLOT_LEN])
{
	static const uint8_t zero[HEADER_SLOT_LEN];
	uint8_t ta[HEADER_SLOT_LEN], td[HEADER_SLOT_LEN];
	int rc = 0;

	memset(ta, 0, sizeof(ta));
	memset(td, 0, sizeof(td));
	if (add != NULL)
		rc = names_link_token(add, ta);
	if (rc == 0 && drop != NULL)
		rc = names_link_token(drop, td);
	if (rc < 0)
		return rc;
	if (exact) {
		memcpy(slot[0], ta, HEADER_SLOT_LEN);
		memcpy(slot[1], td, HEADER_SLOT_LEN);
		return 0;
	}
	memcpy(slot, h->slot, 2 * HEADER_SLOT_LEN);
	for (int i = 0; i < 2 && drop != NULL; i++)
		if (memcmp(slot[i], td, HEADER_SLOT_LEN) == 0)
			memset(slot[i], 0, HEADER_SLOT_LEN);
	if (add == NULL || memcmp(slot[0], ta, HEADER_SLOT_LEN) == 0 ||
	    memcmp(slot[1], ta, HEADER_SLOT_LEN) == 0)
		return 0;
	for (int i = 0; i < 2; i++)
		if (memcmp(slot[i], zero, HEADER_SLOT_LEN) == 0) {
			memcpy(slot[i], ta, HEADER_SLOT_LEN);
			return 0;
		}
	return -EMLINK;
}

static bool has_tok(const struct linkset *s, const uint8_t *t)
{
	for (uint32_t i = 0; i < s->n; i++)
		if (memcmp(s->tok[i], t, HEADER_SLOT_LEN) == 0)
			return true;
	return false;
}

/* The slots of h once `drop` is out and `add` in, through a link set
 * (linkset.h): h's set (or its slots) edited; back to plain slots if two
 * tokens or fewer are left (*unset: the set file goes once the header is
 * written), else stored durably as the next version, which slot b then
 * names. */
static int to_set(struct cfile *cf, const struct header *h, const char *add,
		  const char *drop, const struct linkset *keep,
		  uint8_t slot[2][HEADER_SLOT_LEN], bool *unset)
{
	static const uint8_t zero[HEADER_SLOT_LEN];
	struct linkset cur = { 0 }, next = { 0 };
	uint8_t ta[HEADER_SLOT_LEN], td[HEADER_SLOT_LEN];
	bool set = header_is_set(h);
	int rc = 0;

	if (cf->rootfd < 0)
		return -EMLINK;
	memset(ta, 0, sizeof(ta));
	memset(td, 0, sizeof(td));
	if (add != NULL)
		rc = names_link_token(add, ta);
	if (rc == 0 && drop != NULL)
		rc = names_link_token(drop, td);
	if (rc == 0 && set)
		rc = linkset_load(cf->kr, cf->rootfd, h, &cur);
	if (rc < 0)
		return rc;
	if (!set) {
		cur.tok = calloc(2, HEADER_SLOT_LEN);
		if (cur.tok == NULL)
			return -ENOMEM;
		for (int i = 0; i < 2; i++)
			if (memcmp(h->slot[i], zero, HEADER_SLOT_LEN) != 0)
				memcpy(cur.tok[cur.n++], h->slot[i],
				       HEADER_SLOT_LEN);
	}
	next.tok = calloc(cur.n + 1, HEADER_SLOT_LEN);
	if (next.tok == NULL) {
		free(cur.tok);
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < cur.n; i++)
		if ((drop == NULL ||
		     memcmp(cur.tok[i], td, HEADER_SLOT_LEN) != 0) &&
		    (keep == NULL || has_tok(keep, cur.tok[i])))
			memcpy(next.tok[next.n++], cur.tok[i], HEADER_SLOT_LEN);
	if (add != NULL && !has_tok(&next, ta))
		memcpy(next.tok[next.n++], ta, HEADER_SLOT_LEN);
	memset(slot, 0, 2 * HEADER_SLOT_LEN);
	if (next.n <= 2) {
		for (uint32_t i = 0; i < next.n; i++)
			memcpy(slot[i], next.tok[i], HEADER_SLOT_LEN);
		*unset = set;
	} else if (next.n > LINKSET_MAX) {
		rc = -EMLINK;
	} else {
		next.version = set ? cur.version + 1 : 1;
		rc = linkset_store(cf->kr, cf->rootfd, h->file_id, &next,
				   set ? &cur : NULL);
		memset(slot[0], HEADER_SLOT_SET, HEADER_SLOT_LEN);
		for (int i = 0; i < HEADER_SLOT_LEN; i++)
			slot[1][i] = (uint8_t)(next.version >>
					       (8 * (HEADER_SLOT_LEN - 1 - i)));
	}
	free(cur.tok);
	free(next.tok);
	return rc;
}

static int slots_write(struct cfile *cf, int fd, const char *add,
		       const char *drop, bool exact, const struct linkset *keep,
		       bool durable)
{
	uint8_t buf[HEADER_LEN], slot[2][HEADER_SLOT_LEN];
	struct header h, nh;
	struct stat st;
	bool unset = false;
	int rc;

	if (!vol_v3(cf))
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* Excludes a reseal of this file (whose new header must carry these
	 * slots) and the header's other writers (reserve(), rekey). */
	pthread_rwlock_wrlock(&cf->rwlock);
	backing_lock_head(fd, HEADER_LEN, true);
	rc = cfile_read_header(fd, &h);
	if (rc == 0 && h.version != HEADER_VERSION_3)
		rc = -EBADMSG;
	if (rc == 0 && (exact || !header_is_set(&h)))
		rc = slots_edit(&h, add, drop, exact, slot);
	if ((rc == 0 && !exact && header_is_set(&h)) || rc == -EMLINK)
		rc = to_set(cf, &h, add, drop, keep, slot, &unset);
	else if (rc == 0 && header_is_set(&h))
		unset = true;	/* exact slots: back from a link set */
	if (rc == 0 && memcmp(h.slot, slot, sizeof(slot)) == 0)
		goto unlock;
	if (rc == 0)
		rc = keyring_header_slots(cf->kr, &h, (const uint8_t(*)[HEADER_SLOT_LEN])slot, &nh);
	if (rc == 0) {
		header_serialize(&nh, buf);
		rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
	}
	if (rc == 0 && durable)
		rc = backing_order_data(fd);
	if (rc == 0 && unset)	/* the header no longer names it */
		linkset_remove(cf->rootfd, nh.file_id);
	if (rc == 0) {
		/* the contents did not change: a rename keeps the times */
		struct timespec t[2] = { st.st_atim, st.st_mtim };

		if (futimens(fd, t) < 0)
			rc = -errno;
	}
	if (rc == 0) {
		pthread_mutex_lock(&cf->mtx);
		if (cf->loaded &&
		    memcmp(cf->hdr.file_id, nh.file_id, FILE_ID_LEN) == 0)
			cf->hdr = nh;
		pthread_mutex_unlock(&cf->mtx);
	}
unlock:
	backing_lock_head(fd, HEADER_LEN, false);
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

int cfile_set_slots(struct cfile *cf, int fd, const char *a, const char *b,
		    bool durable)
{
	return slots_write(cf, fd, a, b, true, NULL, durable);
}

int cfile_edit_slots(struct cfile *cf, int fd, const char *add,
		     const char *drop, bool durable)
{
	return slots_write(cf, fd, add, drop, false, NULL, durable);
}

int cfile_keep_names(struct cfile *cf, int fd, const char *const *names,
		     size_t n, bool durable)
{
	struct linkset keep = { 0 };
	int rc = 0;

	if (n == 0)
		return -EINVAL;
	if (n <= 2)
		return slots_write(cf, fd, names[0], n == 2 ? names[1] : NULL,
				   true, NULL, durable);
	if (n > LINKSET_MAX)
		return -EMLINK;
	keep.tok = calloc(n, HEADER_SLOT_LEN);
	if (keep.tok == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < n && rc == 0; i++)
		rc = names_link_token(names[i], keep.tok[keep.n++]);
	/* Only a link set holds more than two names: its set is rewritten
	 * with the tokens of `names` alone (plain slots hold two at most,
	 * which then stay as they are). */
	if (rc == 0)
		rc = slots_write(cf, fd, NULL, NULL, false, &keep, durable);
	free(keep.tok);
	return rc;
}

int cfile_create(struct cfile *cf, int fd, const char *bname)
{
	uint8_t buf[HEADER_LEN + BLOCK_OVERHEAD];
	struct filekeys *fk = NULL;
	struct header h;
	int rc;

	memset(&h, 0, sizeof(h));
	if (bname != NULL && vol_v3(cf)) {
		rc = names_link_token(bname, h.slot[0]);
		if (rc < 0)
			return rc;
	}
	rc = keyring_new_file(cf->kr, &h, &fk);
	if (rc < 0)
		return rc;
	header_serialize(&h, buf);
	rc = block_seal(&fk->bc, 0, true, NULL, 0, buf + HEADER_LEN);
	if (rc == 0)
		rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
	/* A rekey that began after keyring_new_file() may already have
	 * walked past this file: re-wrap it ourselves (rekey.h). */
	if (rc == 0) {
		struct header nh;

		rc = keyring_rewrap_header(cf->kr, &h, &nh);
		if (rc == 1) {
			h = nh;
			header_serialize(&h, buf);
			rc = backing_pwrite_full(fd, buf, HEADER_LEN, 0);
		}
	}
	if (rc < 0) {
		keyring_filekeys_free(fk);
		return rc;
	}
	pthread_mutex_lock(&cf->mtx);
	cf->hdr = h;
	cf->loaded = true;
	cf->seals = 1;		/* the empty block, within the first unit */
	fk->next = cf->pool;
	cf->pool = fk;
	pthread_mutex_unlock(&cf->mtx);
	return 0;
}

int cfile_load(struct cfile *cf, int fd)
{
	struct filekeys *fk = NULL;
	struct header h;
	char wbuf[4096];
	int rc;

	pthread_mutex_lock(&cf->mtx);
	if (cf->loaded) {
		pthread_mutex_unlock(&cf->mtx);
		return 0;
	}
	/* Twice on a wrong key: a concurrent `cmkfs rekey` rewrites the
	 * header in place with one pwrite, which a read may see half done. */
	for (int tries = 0; tries < 2; tries++) {
		rc = cfile_read_header(fd, &h);
		if (rc == 0)
			rc = keyring_open_file(cf->kr, &h, &fk);
		if (rc != -EKEYREJECTED && rc != -EBADMSG)
			break;
	}
	if (rc == 0) {
		char nbuf[4096];
		const char *bn = reached_as(cf, nbuf, sizeof(nbuf));

		if (bn != NULL || (vol_v3(cf) && h.version != HEADER_VERSION_3))
			rc = cfile_location(cf, &h, bn != NULL ? bn : "");
		if (rc != 0) {
			log_err("%s: %s", cfile_where(cf, wbuf, sizeof(wbuf)),
				cfile_location_msg(rc));
			keyring_filekeys_free(fk);
			pthread_mutex_unlock(&cf->mtx);
			return -EBADMSG;
		}
	}
	if (rc == 0) {
		cf->hdr = h;
		cf->loaded = true;
		/* Unknown how many of the reserved seals were made: all. */
		cf->seals = cfile_seal_limit(&h);
		fk->next = cf->pool;
		cf->pool = fk;
	}
	pthread_mutex_unlock(&cf->mtx);
	if (rc < 0)
		log_err("%s: file header: %s", cfile_where(cf, wbuf, sizeof(wbuf)),
			rc == -EKEYREJECTED ? "wrong key or tampered header" :
			rc == -EBADMSG	    ? "malformed or truncated header" :
					      strerror(-rc));
	return rc;
}

static int size_locked(struct cfile *cf, int fd, uint64_t *plain)
{
	char wbuf[4096];
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	rc = cfile_plain_size((uint64_t)st.st_size, cf->bs, plain);
	if (rc < 0)
		log_err("%s: backing file size %lld is impossible (cut short?)",
			cfile_where(cf, wbuf, sizeof(wbuf)), (long long)st.st_size);
	return rc;
}

static int read_blocks(struct cfile *cf, struct filekeys *fk, int fd,
		       uint64_t size, uint64_t b0, uint64_t n, uint8_t *ct,
		       uint8_t *out);

int cfile_check_tail(struct cfile *cf, int fd)
{
	struct filekeys *fk = NULL;
	uint8_t *buf = NULL;
	size_t cb = cf->bs + BLOCK_OVERHEAD;
	uint64_t size;
	int rc;

	struct range r;

	pthread_rwlock_rdlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc == 0)
		rc = fk_get(cf, fd, &fk);
	if (rc == 0) {
		uint64_t last = nblocks(size, cf->bs) - 1;

		buf = malloc(cb + cf->bs);
		rangelock_acquire(&cf->ranges, &r, last, last, false);
		rc = buf ? read_blocks(cf, fk, fd, size, last, 1, buf,
				       buf + cb) :
			   -ENOMEM;
		rangelock_release(&cf->ranges, &r);
	}
	if (fk != NULL)
		fk_put(cf, fk);
	pthread_rwlock_unlock(&cf->rwlock);
	if (buf != NULL)
		secmem_wipe(buf, cb + cf->bs);
	free(buf);
	return rc;
}

int cfile_size(struct cfile *cf, int fd, uint64_t *plain)
{
	int rc;

	pthread_rwlock_rdlock(&cf->rwlock);
	rc = size_locked(cf, fd, plain);
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

/* ---- holes (format 3, doc/FORMAT.md §3.4) ---- */

/* What a slot holds. The last block is always data. Elsewhere a slot is
 * a data block, all zero (inside a hole), or a hole record: a 64-byte
 * seal, then zeros. A data block's nonces and ciphertext are never all
 * zero, so the shape tells them apart; what it claims is then verified. */
enum slot_kind { SLOT_DATA, SLOT_ZERO, SLOT_REC };

/* Enough of a slot to tell its kind: the record and 16 bytes after. */
#define PROBE_LEN (BLOCK_HOLE_LEN + 16)

static bool holes_on(struct cfile *cf)
{
	return keyring_version(cf->kr) >= 3;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

static enum slot_kind slot_kind(const uint8_t *p, size_t len)
{
	if (len <= BLOCK_HOLE_LEN ||
	    !all_zero(p + BLOCK_HOLE_LEN, len - BLOCK_HOLE_LEN))
		return SLOT_DATA;
	return all_zero(p, BLOCK_HOLE_LEN) ? SLOT_ZERO : SLOT_REC;
}

/* The kind of slot b (< nb - 1) from its first PROBE_LEN bytes: a hint,
 * verified by hole_cover() before a hole is believed. */
static int probe(const struct cfile *cf, int fd, uint64_t b,
		 enum slot_kind *k)
{
	uint8_t p[PROBE_LEN];
	uint64_t off;
	int rc;

	rc = cipher_off(b, cf->bs, &off);
	if (rc == 0)
		rc = backing_pread_full(fd, p, sizeof(p), (off_t)off);
	if (rc == 0)
		*k = slot_kind(p, sizeof(p));
	return rc;
}

static bool hv_get(struct cfile *cf, uint64_t z, uint64_t *s, uint64_t *e)
{
	bool hit;

	pthread_mutex_lock(&cf->mtx);
	hit = cf->hv_ok && z >= cf->hv_lo && z <= cf->hv_e;
	if (hit) {
		*s = cf->hv_s;
		*e = cf->hv_e;
	}
	pthread_mutex_unlock(&cf->mtx);
	return hit;
}

static void hv_put(struct cfile *cf, uint64_t lo, uint64_t s, uint64_t e)
{
	pthread_mutex_lock(&cf->mtx);
	if (cf->hv_ok && cf->hv_e == e && cf->hv_lo < lo)
		lo = cf->hv_lo;
	cf->hv_ok = true;
	cf->hv_lo = lo;
	cf->hv_s = s;
	cf->hv_e = e;
	pthread_mutex_unlock(&cf->mtx);
}

static void hv_clear(struct cfile *cf)
{
	pthread_mutex_lock(&cf->mtx);
	cf->hv_ok = false;
	pthread_mutex_unlock(&cf->mtx);
}

/* The hole that slot z (zero or a record, z < nb - 1) lies in, verified:
 * the first non-zero slot at or after z must open as this file's hole
 * record of that slot with a start at most z; *s gets the start, *e the
 * record's slot. Zero runs the backing file keeps as holes are skipped
 * with SEEK_DATA, so a big hole costs a few reads. -EBADMSG otherwise:
 * a zeroed or punched data block never reads as zeros. */
static int hole_cover(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t nb, uint64_t z, uint64_t *s, uint64_t *e)
{
	size_t cb = cf->bs + BLOCK_OVERHEAD;
	const char *what = NULL;
	uint64_t b = z, off = 0;
	char wbuf[4096];
	uint8_t *p;
	int rc = 0;

	if (hv_get(cf, z, s, e))
		return 0;
	p = malloc(cb);
	if (p == NULL)
		return -ENOMEM;
	for (;;) {
		enum slot_kind k;
		off_t next;
		uint64_t nk;

		if (b >= nb - 1) {
			what = "no hole record covers it";
			break;
		}
		rc = cipher_off(b, cf->bs, &off);
		if (rc == 0)
			rc = backing_pread_full(fd, p, cb, (off_t)off);
		if (rc < 0)
			break;
		k = slot_kind(p, cb);
		if (k == SLOT_DATA) {
			what = "no hole record covers it";
			break;
		}
		if (k == SLOT_REC) {
			if (block_open_hole(&fk->bc, b, p, s) < 0)
				what = "its hole record does not open";
			else if (*s > z)
				what = "its hole record starts after it";
			break;
		}
		next = lseek(fd, (off_t)(off + cb), SEEK_DATA);
		if (next < 0) {
			if (errno == ENXIO)
				what = "no hole record covers it";
			else
				rc = -errno;
			break;
		}
		nk = ((uint64_t)next - HEADER_LEN) / cb;
		b = nk > b + 1 ? nk : b + 1;
	}
	free(p);
	if (rc == 0 && what != NULL) {
		log_err("%s: block %llu reads as a hole but %s (slot %llu: "
			"zeroed or punched data, or a moved record?)",
			cfile_where(cf, wbuf, sizeof(wbuf)),
			(unsigned long long)z, what, (unsigned long long)b);
		rc = -EBADMSG;
	}
	if (rc == 0) {
		*e = b;
		hv_put(cf, z, *s, b);
	}
	return rc;
}

/* The record of hole [start, b] into slot b. `whole` writes the slot's
 * zeros too (it held a data block); a slot that was zero or a record
 * already has them, and only the 64 bytes are written. */
static int write_record(struct cfile *cf, struct filekeys *fk, int fd,
			uint64_t b, uint64_t start, bool whole)
{
	size_t len = whole ? cf->bs + BLOCK_OVERHEAD : BLOCK_HOLE_LEN;
	uint8_t *p;
	uint64_t off;
	int rc;

	p = calloc(1, len);
	if (p == NULL)
		return -ENOMEM;
	rc = block_seal_hole(&fk->bc, b, start, p);
	if (rc == 0)
		rc = cipher_off(b, cf->bs, &off);
	if (rc == 0)
		rc = blk_pwrite(fd, p, len, (off_t)off);
	free(p);
	hv_clear(cf);
	return rc;
}

/* The same, its seal counted first: 0, NEED_REKEY or -errno. */
static int put_record(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t b, uint64_t start, bool whole)
{
	int rc = budget_take(cf, fd, 1);

	return rc != 0 ? rc : write_record(cf, fk, fd, b, start, whole);
}

/* Trailing zero bytes a sealed block may end with before open_grown()
 * stops trying: a real one ends with more in 2^-128 of cases. */
#define GROWN_SLACK 16

/* Slot b (b + 1 < nb - 1) as a growth killed between its two writes
 * leaves it (doc/FORMAT.md §3.4, "Growth"): the old last block, sealed
 * with last = 1 at its old length and zeros after it in the slot, right
 * before a hole that starts at b + 1. It then reads as its bytes and
 * zeros after them (bs bytes into out). -EBADMSG otherwise. */
static int open_grown(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t nb, uint64_t b, uint8_t *out)
{
	size_t cb = cf->bs + BLOCK_OVERHEAD, m = cb;
	enum slot_kind k = SLOT_DATA;
	uint64_t s = 0, e, off;
	uint8_t *p = NULL;
	int rc;

	if (b + 1 >= nb - 1)
		return -EBADMSG;
	rc = probe(cf, fd, b + 1, &k);
	if (rc == 0 && k == SLOT_DATA)
		return -EBADMSG;
	if (rc == 0)
		rc = hole_cover(cf, fk, fd, nb, b + 1, &s, &e);
	if (rc == 0 && s != b + 1)
		rc = -EBADMSG;
	if (rc == 0)
		rc = cipher_off(b, cf->bs, &off);
	p = rc == 0 ? malloc(2 * cb) : NULL;
	if (rc == 0 && p == NULL)
		rc = -ENOMEM;
	if (rc == 0)
		rc = backing_pread_full(fd, p, cb, (off_t)off);
	if (rc < 0)
		goto out;
	while (m > BLOCK_OVERHEAD && p[m - 1] == 0)
		m--;
	rc = -EBADMSG;
	for (size_t len = m; len <= cb && len <= m + GROWN_SLACK; len++) {
		memcpy(p + cb, p, len);	/* block_open clobbers its input */
		if (block_open(&fk->bc, b, true, p + cb, len, out) == 0) {
			memset(out + (len - BLOCK_OVERHEAD), 0,
			       cb - len);
			rc = 0;
			break;
		}
	}
out:
	if (p != NULL)
		secmem_wipe(p, 2 * cb);
	free(p);
	return rc;
}

/* The kind of slot b (< nb - 1) for a change to make: as probe(), but a
 * slot shaped like a record that does not open as one and is the old last
 * block of a growth cut short (open_grown) is data. */
static int slot_probe(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t nb, uint64_t b, enum slot_kind *k)
{
	uint8_t p[PROBE_LEN], *out;
	uint64_t off, s;
	int rc;

	rc = cipher_off(b, cf->bs, &off);
	if (rc == 0)
		rc = backing_pread_full(fd, p, sizeof(p), (off_t)off);
	if (rc < 0)
		return rc;
	*k = slot_kind(p, sizeof(p));
	if (*k != SLOT_REC || block_open_hole(&fk->bc, b, p, &s) == 0)
		return 0;
	out = malloc(cf->bs);
	if (out == NULL)
		return -ENOMEM;
	if (open_grown(cf, fk, fd, nb, b, out) == 0)
		*k = SLOT_DATA;
	secmem_wipe(out, cf->bs);
	free(out);
	return 0;
}

int cfile_open_slot(struct cfile *cf, struct filekeys *fk, int fd, uint64_t nb,
		    uint64_t b, uint8_t *out)
{
	size_t cb = cf->bs + BLOCK_OVERHEAD;
	enum slot_kind k;
	uint64_t off, s, e;
	uint8_t *p;
	int rc;

	if (b + 1 >= nb)
		return -EINVAL;
	rc = cipher_off(b, cf->bs, &off);
	if (rc < 0)
		return rc;
	p = malloc(cb);
	if (p == NULL)
		return -ENOMEM;
	rc = backing_pread_full(fd, p, cb, (off_t)off);
	if (rc < 0)
		goto out;
	k = holes_on(cf) ? slot_kind(p, cb) : SLOT_DATA;
	/* a record's shape that does not open as one may be an old last
	 * block of at most 8 bytes: tried below, with the data */
	if (k == SLOT_REC && block_open_hole(&fk->bc, b, p, &s) < 0)
		k = SLOT_DATA;
	if (k != SLOT_DATA) {
		rc = hole_cover(cf, fk, fd, nb, b, &s, &e);
		if (rc == 0) {
			memset(out, 0, cf->bs);
			rc = CFILE_SLOT_HOLE;
		}
		goto out;
	}
	if (block_open(&fk->bc, b, false, p, cb, out) == 0)
		rc = CFILE_SLOT_DATA;
	else if (holes_on(cf) && open_grown(cf, fk, fd, nb, b, out) == 0)
		rc = CFILE_SLOT_GROWN;
	else
		rc = -EBADMSG;
out:
	secmem_wipe(p, cb);
	free(p);
	return rc;
}

/* Slots [a, b] become zero: punched (the space is freed), or written
 * with zeros where the backing file system cannot punch. */
static int zero_slots(struct cfile *cf, int fd, uint64_t a, uint64_t b)
{
	uint64_t cb = (uint64_t)cf->bs + BLOCK_OVERHEAD, off, len;
	static const uint8_t zeros[64 << 10];
	int rc;

	hv_clear(cf);
	rc = cipher_off(a, cf->bs, &off);
	if (rc < 0)
		return rc;
	if (__builtin_mul_overflow(b - a + 1, cb, &len))
		return -EFBIG;
	if (killed())
		return -ECANCELED;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      (off_t)off, (off_t)len) == 0)
		return 0;
	if (errno != EOPNOTSUPP)
		return -errno;
	for (uint64_t done = 0; done < len && rc == 0;) {
		size_t n = len - done < sizeof(zeros) ? (size_t)(len - done) :
							sizeof(zeros);

		rc = backing_pwrite_full(fd, zeros, n, (off_t)(off + done));
		done += n;
	}
	return rc;
}

/* Whether blocks [first, last] of a file with nb blocks are all data:
 * then writing them changes no hole. */
static int range_dense(struct cfile *cf, int fd, uint64_t nb, uint64_t first,
		       uint64_t last, bool *dense)
{
	enum slot_kind k = SLOT_DATA;
	int rc = 0;

	*dense = true;
	for (uint64_t b = first; b <= last && b < nb - 1 && rc == 0; b++) {
		rc = probe(cf, fd, b, &k);
		if (rc == 0 && k != SLOT_DATA) {
			*dense = false;
			break;
		}
	}
	return rc;
}

/* The kinds of blocks [b0, b0 + n) from their ciphertext (back to back
 * in ct), into a new array in *kinds; NULL when all are data. */
static int hole_kinds(uint64_t nb, uint64_t b0, uint64_t n, const uint8_t *ct,
		      size_t cb, uint8_t **kinds)
{
	uint8_t *k = NULL;

	*kinds = NULL;
	for (uint64_t i = 0; i < n; i++) {
		enum slot_kind sk = b0 + i == nb - 1 ?
					    SLOT_DATA :
					    slot_kind(ct + i * cb, cb);

		if (sk == SLOT_DATA)
			continue;
		if (k == NULL)
			k = calloc(n, 1);
		if (k == NULL)
			return -ENOMEM;
		k[i] = (uint8_t)sk;
	}
	*kinds = k;
	return 0;
}

/* Read and open blocks [b0, b0 + n) of a file with nb blocks and plain
 * size `size` into out (n * bs bytes, the last may be short). */
static int read_blocks(struct cfile *cf, struct filekeys *fk, int fd,
		       uint64_t size, uint64_t b0, uint64_t n, uint8_t *ct,
		       uint8_t *out)
{
	uint64_t nb = nblocks(size, cf->bs), off, clen = 0;
	char wbuf[4096];
	int rc;

	rc = cipher_off(b0, cf->bs, &off);
	if (rc < 0)
		return rc;
	for (uint64_t b = b0; b < b0 + n; b++)
		clen += (b == nb - 1 ? size - b * cf->bs : cf->bs) +
			BLOCK_OVERHEAD;
	rc = backing_pread_full(fd, ct, clen, (off_t)off);
	if (rc < 0) {
		log_err("%s: blocks %llu..%llu: %s",
			cfile_where(cf, wbuf, sizeof(wbuf)),
			(unsigned long long)b0, (unsigned long long)(b0 + n - 1),
			rc == -EBADMSG ? "backing file cut short" :
					 strerror(-rc));
		return rc;
	}
	{
		struct crypt_job j = { .fk = { fk }, .bs = cf->bs, .b0 = b0,
				       .nb = nb, .size = size, .ct = ct,
				       .out = out, .fd = fd };
		size_t cb = cf->bs + BLOCK_OVERHEAD;
		uint8_t *kinds = NULL;

		rc = holes_on(cf) ? hole_kinds(nb, b0, n, ct, cb, &kinds) : 0;
		if (rc < 0)
			return rc;
		j.kinds = kinds;
		j.grown = holes_on(cf) ? cf : NULL;
		for (unsigned i = 0; i < PAR_MAX; i++)
			j.bad[i] = UINT64_MAX;
		rc = crypt_blocks(cf, fd, &j, n, open_part);
		/* Each hole slot read as zeros only once its record verifies;
		 * one record covers its whole run. */
		for (uint64_t i = 0, upto = 0; kinds != NULL && rc == 0 && i < n;
		     i++) {
			uint64_t hs, he;
			bool rec;
			int hrc;

			if (kinds[i] == SLOT_DATA || i < upto)
				continue;
			/* an old last block of at most 8 bytes has a record's
			 * shape: a growth cut short (open_grown), tried before
			 * hole_cover() logs the record as damage (ct still
			 * holds the slot: open_part skips hole slots) */
			rec = kinds[i] == SLOT_REC &&
			      block_open_hole(&fk->bc, b0 + i, ct + i * cb,
					      &hs) == 0;
			if (kinds[i] == SLOT_REC && !rec &&
			    open_grown(cf, fk, fd, nb, b0 + i,
				       out + i * cf->bs) == 0)
				continue;
			hrc = hole_cover(cf, fk, fd, nb, b0 + i, &hs, &he);
			if (hrc < 0) {
				free(kinds);
				return hrc;
			}
			upto = he - b0 + 1;
		}
		free(kinds);
		for (unsigned i = 1; i < PAR_MAX; i++)
			if (j.bad[i] < j.bad[0])
				j.bad[0] = j.bad[i];
		if (rc < 0) {
			log_err("%s: block %llu failed authentication "
				"(tampered, moved, or file cut at a block "
				"boundary)",
				cfile_where(cf, wbuf, sizeof(wbuf)),
				(unsigned long long)j.bad[0]);
			return -EBADMSG;
		}
	}
	return 0;
}

/* Whether blocks [b, b + n) of a format-3 file all lie in what the
 * backing file keeps as a hole (all zero slots, none the last block). */
static bool sparse_chunk(struct cfile *cf, int fd, uint64_t size, uint64_t b,
			 uint64_t n)
{
	uint64_t lo, hi;
	off_t next;

	if (!holes_on(cf) || b + n >= nblocks(size, cf->bs) ||
	    cipher_off(b, cf->bs, &lo) < 0 || cipher_off(b + n, cf->bs, &hi) < 0)
		return false;
	next = lseek(fd, (off_t)lo, SEEK_DATA);
	return next >= 0 && (uint64_t)next >= hi;
}

static size_t chunk_blocks(const struct cfile *cf)
{
	size_t n = CHUNK_BYTES / cf->bs;

	return n > 0 ? n : 1;
}

int cfile_read(struct cfile *cf, int fd, uint64_t off, size_t len,
	       uint8_t *out, size_t *got)
{
	struct filekeys *fk = NULL;
	uint8_t *ct = NULL, *pt = NULL;
	uint64_t size, end, b0, b1;
	size_t cb = cf->bs + BLOCK_OVERHEAD, done = 0, cn = chunk_blocks(cf);
	struct range r;
	bool locked = false;
	int rc;

	*got = 0;
	pthread_rwlock_rdlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc < 0 || len == 0)
		goto out;
	if (size == 0) {
		/* Still prove the empty block is there and sealed as last: a
		 * file cut to the shape of an empty one must not read as
		 * empty. 56 bytes of work. */
		pthread_rwlock_unlock(&cf->rwlock);
		return cfile_check_tail(cf, fd);
	}
	if (off >= size)
		goto out;
	end = size - off < len ? size : off + len;
	b0 = off / cf->bs;
	b1 = (end - 1) / cf->bs;
	if (b1 - b0 + 1 < cn)
		cn = b1 - b0 + 1;	/* buffers for what is read, not more */
	rangelock_acquire(&cf->ranges, &r, b0, b1, false);
	locked = true;
	rc = fk_get(cf, fd, &fk);
	if (rc < 0)
		goto out;
	ct = malloc(cn * cb);
	pt = malloc(cn * cf->bs);
	if (ct == NULL || pt == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t b = b0; b <= b1; b += cn) {
		uint64_t n = b1 - b + 1 < cn ? b1 - b + 1 : cn;
		uint64_t lo = b * cf->bs, hi = (b + n) * cf->bs;
		uint64_t from = off > lo ? off : lo, to = end < hi ? end : hi;

		if (sparse_chunk(cf, fd, size, b, n)) {
			/* all inside one hole the backing file keeps sparse:
			 * its record verified (once per hole), no read */
			uint64_t hs, he;

			rc = hole_cover(cf, fk, fd, nblocks(size, cf->bs), b,
					&hs, &he);
			if (rc < 0)
				goto out;
			memset(out + done, 0, to - from);
			done += to - from;
			continue;
		}
		rc = read_blocks(cf, fk, fd, size, b, n, ct, pt);
		if (rc < 0)
			goto out;
		memcpy(out + done, pt + (from - lo), to - from);
		done += to - from;
	}
	*got = done;
out:
	if (fk != NULL)
		fk_put(cf, fk);
	if (locked)
		rangelock_release(&cf->ranges, &r);
	pthread_rwlock_unlock(&cf->rwlock);
	if (pt != NULL)
		secmem_wipe(pt, cn * cf->bs);
	free(pt);
	free(ct);
	return rc;
}

/* A grown file whose backing writes failed part way (ENOSPC, EDQUOT,
 * EIO): cut it back to its old size and put back its old last block, whose
 * bytes or "last" flag the first write may already have changed. The cut
 * frees the space the growth took, and the old last block lies wholly
 * inside what is kept, so on a full disk the undo needs no new space. */
static void undo_growth(struct cfile *cf, int fd, const uint8_t *tail,
			size_t tail_len, uint64_t tail_off)
{
	char wbuf[4096];
	int rc = 0;

	if (was_killed())
		return;		/* a simulated kill: nothing runs after it */
	if (ftruncate(fd, (off_t)(tail_off + tail_len)) < 0)
		rc = -errno;
	if (rc == 0)
		rc = backing_pwrite_full(fd, tail, tail_len, (off_t)tail_off);
	if (rc < 0)
		log_err("%s: a failed write could not be undone (%s): the "
			"file's last block may fail authentication",
			cfile_where(cf, wbuf, sizeof(wbuf)), strerror(-rc));
}

/* Below this many new backing bytes a growth is not checked up front: the
 * write itself finds a full disk (ENOSPC, undone by undo_growth()) having
 * written at most this much. Above it, one fstatvfs (about a microsecond)
 * keeps a write or truncate far past the end from first filling the disk
 * with sealed zeros only to be undone. */
#define GROW_CHECK_MIN (4u << 20)

/* Whether growing the file from `size` to `new_size` plaintext bytes can
 * fit: -EFBIG past the process's file size limit (RLIMIT_FSIZE, which the
 * backing writes would hit), -ENOSPC past the backing file system's free
 * space (what root may use when running as root). Errors of the checks
 * themselves let the growth go on: the writes report what happens. */
static int growth_fits(int fd, uint32_t bs, uint64_t size, uint64_t new_size,
		       uint64_t hole_slots)
{
	uint64_t from = 0, to = 0, need, avail, hole_len;
	struct statvfs sv;
	struct rlimit rl;

	if (cfile_cipher_size(size, bs, &from) < 0 ||
	    cfile_cipher_size(new_size, bs, &to) < 0)
		return -EFBIG;
	/* A hole takes no disk (format 3): only the bytes really written
	 * count against the free space; the file size limit counts the
	 * hole too (the backing file's size passes it). */
	hole_len = hole_slots * ((uint64_t)bs + BLOCK_OVERHEAD);
	need = to - from > hole_len ? to - from - hole_len : 0;
	if (need < GROW_CHECK_MIN && hole_slots == 0)
		return 0;
	if (getrlimit(RLIMIT_FSIZE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    to > rl.rlim_cur)
		return -EFBIG;
	if (need < GROW_CHECK_MIN)
		return 0;
	if (fstatvfs(fd, &sv) < 0)
		return 0;
	avail = geteuid() == 0 ? sv.f_bfree : sv.f_bavail;
	if (__builtin_mul_overflow(avail, (uint64_t)sv.f_frsize, &avail))
		return 0;
	return need > avail ? -ENOSPC : 0;
}

/*
 * Replace the contents: bytes [off, off+len) from buf (zeros when buf is
 * NULL), zeros in [size, new_size) elsewhere. With `sparse` (format 3), the
 * whole blocks of a growth that nothing is written to become a hole: no
 * bytes, and its record written last. Rewrites every block whose
 * bytes or "last" flag change, in chunks of one batched pwrite each, in
 * ascending order. A growth that fails part way is undone (undo_growth):
 * the file keeps its old size and content, not a torn tail that would
 * make all of it unreadable. Caller holds cf->rwlock for writing, or,
 * when the size stays (new_size == size), shared with blocks
 * [off / bs, (off + len - 1) / bs] held alone in cf->ranges.
 */
static int rewrite(struct cfile *cf, struct filekeys *fk, int fd,
		   uint64_t size, uint64_t new_size, uint64_t off,
		   const uint8_t *buf, size_t len, bool sparse)
{
	uint32_t bs = cf->bs;
	size_t cb = bs + BLOCK_OVERHEAD, cn = chunk_blocks(cf);
	uint64_t old_nb = nblocks(size, bs), new_nb = nblocks(new_size, bs);
	uint64_t first = UINT64_MAX, last = 0, wend = off + len;
	uint8_t *ct = NULL, *pt = NULL, *old = NULL, *tail = NULL;
	const uint8_t **src = NULL;
	uint64_t tail_off = 0, hole_lo = 1, hole_hi = 0, hole_n = 0, c0, n;
	size_t tail_len = 0;
	bool wrote = false;
	int rc = 0;

	if (len > 0) {
		first = off / bs;
		last = (wend - 1) / bs;
	}
	if (sparse && new_nb > old_nb) {
		/* New blocks before the first one written (or before the new
		 * last block, which is always data) hold nothing. */
		uint64_t dfirst = len > 0 ? first : new_nb - 1;

		if (dfirst > old_nb) {
			hole_lo = old_nb;
			hole_hi = dfirst - 1;
			hole_n = hole_hi - hole_lo + 1;
		}
	}
	if (new_nb != old_nb || new_size > size) {
		/* The old last block changes length or loses its flag. */
		first = first < old_nb - 1 ? first : old_nb - 1;
		last = last > new_nb - 1 ? last : new_nb - 1;
	}
	if (first == UINT64_MAX)
		return 0;
	if (new_size > size) {
		rc = growth_fits(fd, bs, size, new_size, hole_n);
		if (rc < 0)
			return rc;
	}
	/* the record of a hole counts as one seal */
	rc = budget_take(cf, fd, last - first + 1 - hole_n + (hole_n > 0));
	if (rc != 0)
		return rc;
	if (last - first + 1 < cn)
		cn = last - first + 1;
	if (new_nb > old_nb) {
		/* A growth's blocks from the first past the hole (or the
		 * old last block) to the new last go out in one pwrite when
		 * they are at most two chunks (a FUSE write is at most one,
		 * unaligned): a kill cannot leave the file ending in a block
		 * sealed as not last. */
		uint64_t span = last - (hole_n > 0 ? hole_hi + 1 : first) + 1;

		if (span <= 2 * cn + 1)
			cn = span;
	}
	/* one slot more: the hole's record goes out with the first chunk */
	ct = malloc((cn + 1) * cb);
	pt = malloc(cn * bs);
	old = malloc(cb + bs);
	src = malloc(cn * sizeof(*src));
	if (ct == NULL || pt == NULL || old == NULL || src == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (new_size > size) {
		/* Keep the old last block as it is on disk, to undo with. */
		tail_len = size - (old_nb - 1) * bs + BLOCK_OVERHEAD;
		tail = malloc(tail_len);
		rc = tail ? cipher_off(old_nb - 1, bs, &tail_off) : -ENOMEM;
		if (rc == 0)
			rc = backing_pread_full(fd, tail, tail_len,
						(off_t)tail_off);
		if (rc < 0)
			goto out;
	}
	/*
	 * Growth over a hole, in two steps (doc/FORMAT.md §3.4): first the
	 * hole's record with the blocks after it up to the new last block,
	 * in one pwrite past the old end; then the old last block re-sealed
	 * as not last. Between them the old last block, still sealed last
	 * at its old length, is followed by a hole that starts right after
	 * it, which reads as the grown file (open_grown). Otherwise one
	 * pass over [first, last].
	 */
	for (int pass = 0; pass < 2 && rc == 0; pass++) {
		uint64_t plo = first, phi = last;

		if (hole_n > 0) {
			plo = pass == 0 ? hole_hi + 1 : first;
			phi = pass == 0 ? last : hole_lo - 1;
		} else if (pass == 1) {
			break;
		}
		for (c0 = plo; c0 <= phi; c0 += n) {
			bool rec = hole_n > 0 && pass == 0 && c0 == plo;
			uint64_t coff;
			size_t pos = rec ? cb : 0;

			n = phi - c0 + 1 < cn ? phi - c0 + 1 : cn;
			struct crypt_job j = {.fk = {fk},
					      .bs = bs,
					      .b0 = c0,
					      .nb = new_nb,
					      .size = new_size,
					      .ct = rec ? ct + cb : ct,
					      .src = src};

			for (uint64_t b = c0; b < c0 + n; b++) {
				uint64_t lo = b * bs;
				size_t blen =
				    b == new_nb - 1 ? new_size - lo : bs;
				uint8_t *p = pt + (b - c0) * bs;
				bool covered =
				    len > 0 && off <= lo && wend >= lo + blen;

				pos += blen + BLOCK_OVERHEAD;
				src[b - c0] = p;
				if (covered && buf != NULL) {
					/* Sealed straight from the caller's
					 * buffer. */
					src[b - c0] = buf + (lo - off);
					continue;
				}
				memset(p, 0, blen);
				if (!covered && b < old_nb) {
					size_t olen =
					    b == old_nb - 1 ? size - lo : bs;

					rc = read_blocks(cf, fk, fd, size, b, 1,
							 old, old + cb);
					if (rc < 0)
						goto out;
					memcpy(p, old + cb,
					       olen < blen ? olen : blen);
				}
				if (len > 0 && off < lo + blen && wend > lo) {
					uint64_t from = off > lo ? off : lo;
					uint64_t to =
					    wend < lo + blen ? wend : lo + blen;

					if (buf != NULL)
						memcpy(p + (from - lo),
						       buf + (from - off),
						       to - from);
					else
						memset(p + (from - lo), 0,
						       to - from);
				}
			}
			rc = crypt_blocks(cf, fd, &j, n, seal_part);
			if (rc == 0 && rec) {
				memset(ct, 0, cb);
				rc = block_seal_hole(&fk->bc, hole_hi, hole_lo,
						     ct);
			}
			if (rc == 0)
				rc = cipher_off(rec ? hole_hi : c0, bs, &coff);
			if (rc == 0) {
				wrote = true;
				rc = blk_pwrite(fd, ct, pos, (off_t)coff);
			}
			if (rc < 0)
				goto out;
		}
	}
out:
	if (hole_n > 0)
		hv_clear(cf);
	if (rc < 0 && wrote && tail != NULL)
		undo_growth(cf, fd, tail, tail_len, tail_off);
	free(tail);
	if (pt != NULL)
		secmem_wipe(pt, cn * bs);
	if (old != NULL)
		secmem_wipe(old, cb + bs);
	free(pt);
	free(old);
	free(ct);
	free(src);
	return rc;
}

/* Before data goes into blocks [first, last] of a format-3 file of plain
 * size `size`, under cf->rwlock alone: the part of a hole before `first`
 * gets its own record (slot first - 1) now, so it stays covered while the
 * data goes in. The part of a hole after `last` is still covered by its
 * record, which must then start at last + 1 (else zeroing the new data
 * would pass for the hole): *post_e gets that record's slot, to write
 * once the data is in, or UINT64_MAX. 0, NEED_REKEY or -errno. */
static int split_hole(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t size, uint64_t first, uint64_t last,
		      uint64_t *post_e)
{
	uint64_t nb = nblocks(size, cf->bs), s, e;
	enum slot_kind k = SLOT_DATA;
	int rc;

	*post_e = UINT64_MAX;
	if (first >= nb - 1)
		return 0;	/* the last block and past it: no hole */
	if (last < nb - 1) {
		rc = slot_probe(cf, fk, fd, nb, last, &k);
		if (rc == 0 && k != SLOT_DATA)
			rc = hole_cover(cf, fk, fd, nb, last, &s, &e);
		if (rc < 0)
			return rc;
		if (k != SLOT_DATA && e > last)
			*post_e = e;
	}
	rc = slot_probe(cf, fk, fd, nb, first, &k);
	if (rc == 0 && k != SLOT_DATA)
		rc = hole_cover(cf, fk, fd, nb, first, &s, &e);
	if (rc == 0 && k != SLOT_DATA && s < first)
		rc = put_record(cf, fk, fd, first - 1, s, false);
	return rc;
}

static int write_once(struct cfile *cf, int fd, uint64_t off,
		      const uint8_t *buf, size_t len, bool append,
		      uint64_t *written_at)
{
	struct filekeys *fk = NULL;
	uint64_t size, new_size, csize, post_e = UINT64_MAX;
	int rc;

	if (!append && len > 0) {
		/* Inside the file: size and last block stay, so only the
		 * blocks written are held, and readers and writers of other
		 * blocks go on (random I/O from several threads). */
		struct range r;

		bool dense = true;

		pthread_rwlock_rdlock(&cf->rwlock);
		rc = size_locked(cf, fd, &size);
		if (rc == 0 && off < size && len <= size - off) {
			rangelock_acquire(&cf->ranges, &r, off / cf->bs,
					  (off + len - 1) / cf->bs, true);
			/* Data over data changes no hole; a write into a
			 * hole splits it, which takes the file alone. */
			if (holes_on(cf))
				rc = range_dense(cf, fd, nblocks(size, cf->bs),
						 off / cf->bs,
						 (off + len - 1) / cf->bs,
						 &dense);
			if (rc == 0 && !dense) {
				rangelock_release(&cf->ranges, &r);
				pthread_rwlock_unlock(&cf->rwlock);
				goto alone;
			}
			if (rc == 0)
				rc = fk_get(cf, fd, &fk);
			if (rc == 0)
				rc = rewrite(cf, fk, fd, size, size, off, buf,
					     len, false);
			if (fk != NULL)
				fk_put(cf, fk);
			rangelock_release(&cf->ranges, &r);
			pthread_rwlock_unlock(&cf->rwlock);
			if (rc == 0 && written_at != NULL)
				*written_at = off;
			return rc;
		}
		pthread_rwlock_unlock(&cf->rwlock);
		if (rc < 0)
			return rc;
	}
alone:
	pthread_rwlock_wrlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc < 0)
		goto out;
	if (append)
		off = size;
	if (len == 0) {
		/* pwrite(2) of nothing changes nothing, even past EOF. */
		if (written_at != NULL)
			*written_at = off;
		goto out;
	}
	if (__builtin_add_overflow(off, len, &new_size) ||
	    cfile_cipher_size(new_size, cf->bs, &csize) < 0) {
		rc = -EFBIG;
		goto out;
	}
	if (new_size < size)
		new_size = size;
	rc = fk_get(cf, fd, &fk);
	if (rc == 0 && holes_on(cf))
		rc = split_hole(cf, fk, fd, size, off / cf->bs,
				(off + len - 1) / cf->bs, &post_e);
	if (rc == 0)
		rc = rewrite(cf, fk, fd, size, new_size, off, buf, len,
			     holes_on(cf));
	if (rc == 0 && post_e != UINT64_MAX)
		rc = put_record(cf, fk, fd, post_e, (off + len - 1) / cf->bs + 1,
				false);
	if (rc == 0 && written_at != NULL)
		*written_at = off;
out:
	hv_clear(cf);
	if (fk != NULL)
		fk_put(cf, fk);
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

int cfile_write(struct cfile *cf, int fd, uint64_t off, const uint8_t *buf,
		size_t len, bool append, uint64_t *written_at)
{
	int rc, tries = 0;

	while ((rc = write_once(cf, fd, off, buf, len, append, written_at)) ==
	       NEED_REKEY) {
		rc = rekey_now(cf, fd, &tries);
		if (rc < 0)
			break;
	}
	return rc;
}

void cfile_journal_name(const uint8_t id[FILE_ID_LEN],
			char out[static JOURNAL_NAME_LEN + 1])
{
	for (size_t i = 0; i < FILE_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

/* The record version a volume writes and accepts (doc/FORMAT.md §3.1):
 * 2 in format 3, 1 in formats 1 and 2 (whose older binaries read only 1). */
static unsigned trec_version(struct keyring *kr)
{
	return keyring_version(kr) >= 3 ? 2 : 1;
}

static int journal_put(struct cfile *cf, const char *name,
		       const uint8_t file_id[static FILE_ID_LEN], uint64_t b,
		       const uint8_t *blk, size_t len)
{
	uint8_t hdr[TREC_HDR_MAX];
	int fd, rc, hlen;

	hlen = trec_header(trec_version(cf->kr), file_id, b, len, cf->bs, hdr);
	if (hlen < 0)
		return hlen;
	fd = openat(cf->jfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
		    0600);
	if (fd < 0)
		return -errno;
	rc = backing_pwrite_full(fd, hdr, (size_t)hlen, 0);
	if (rc == 0)
		rc = backing_pwrite_full(fd, blk, len, hlen);
	/* on disk before the cut that makes it needed */
	if (rc == 0)
		rc = backing_order_data(fd);
	close(fd);
	if (rc < 0)
		(void)unlinkat(cf->jfd, name, 0);
	return rc;
}

/* Shrink to new_size < size: re-seal the new last block, cut the rest.
 * Neither order of the cut and the write is safe alone (doc/DESIGN.md,
 * "Durability and crash windows"): the re-sealed block goes to a truncate
 * record first, so a kill in between is completed at the next mount. */
static int shrink(struct cfile *cf, struct filekeys *fk, int fd, uint64_t size,
		  uint64_t new_size)
{
	uint32_t bs = cf->bs;
	size_t cb = bs + BLOCK_OVERHEAD;
	uint64_t b = nblocks(new_size, bs) - 1, boff;
	size_t blen = new_size - b * bs;
	char jname[JOURNAL_NAME_LEN + 1];
	bool rec = false;
	uint8_t *buf;
	int rc;

	rc = budget_take(cf, fd, 1);
	if (rc != 0)
		return rc;
	buf = malloc(2 * cb);
	if (buf == NULL)
		return -ENOMEM;
	rc = read_blocks(cf, fk, fd, size, b, 1, buf, buf + cb);
	if (rc == 0)
		rc = block_seal(&fk->bc, b, true, buf + cb, blen, buf);
	if (rc == 0)
		rc = cipher_off(b, bs, &boff);
	if (rc == 0 && cf->jfd >= 0) {
		cfile_journal_name(fk->file_id, jname);
		rc = journal_put(cf, jname, fk->file_id, b, buf,
				 blen + BLOCK_OVERHEAD);
		rec = rc == 0;
	}
	if (rc == 0)
		rc = blk_truncate(fd, (off_t)boff);
	if (rc == 0)
		rc = blk_pwrite(fd, buf, blen + BLOCK_OVERHEAD, (off_t)boff);
	/* Kept if the cut or the write failed: the next mount completes it. */
	if (rc == 0 && rec)
		(void)unlinkat(cf->jfd, jname, 0);
	secmem_wipe(buf, 2 * cb);
	free(buf);
	return rc;
}

/* Whether record t may complete this file, whose backing length is
 * `blen`: NULL if so, else why not (doc/FORMAT.md §3.1). */
static const char *trec_refusal(struct cfile *cf, const struct trec *t,
				uint64_t blen)
{
	unsigned want = trec_version(cf->kr);

	if (t->version != want)
		return want == 2 ? "a format-1/2 record (CMKFSTR1) in a "
				   "format-3 volume" :
				   "a format-3 record (CMKFSTR2) in a "
				   "format-1/2 volume";
	/* The name says the same, but the name is not authenticated. */
	if (t->version == 2 &&
	    memcmp(t->file_id, cf->hdr.file_id, FILE_ID_LEN) != 0)
		return "the record names another file";
	/* the cut reached at least block b (else the tail would be whole) */
	if (blen < t->l_cut)
		return "the file is shorter than the record's cut";
	/* Version 2: the cut made exactly l_cut bytes and the write adds at
	 * most the block; any other length is a state the record was not
	 * written for (an old record against a file that changed since). */
	if (t->version == 2 && blen > t->l_new)
		return "the file is longer than the record's cut and block";
	return NULL;
}

/* Complete the file from record t: write its block, cut after it, sync. */
static int trec_apply(struct cfile *cf, int fd, const struct trec *t)
{
	int rc;

	pthread_rwlock_wrlock(&cf->rwlock);
	rc = backing_pwrite_full(fd, t->blk, t->blk_len, (off_t)t->l_cut);
	if (rc == 0 && ftruncate(fd, (off_t)t->l_new) < 0)
		rc = -errno;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

int cfile_resolve_truncate(struct cfile *cf, int fd, int jfd, bool dry,
			   const char **why)
{
	char jname[JOURNAL_NAME_LEN + 1], wbuf[4096];
	size_t cb = cf->bs + BLOCK_OVERHEAD, len = 0;
	const char *refused = NULL;
	struct filekeys *fk = NULL;
	uint8_t *rec = NULL, *plain = NULL, *scratch;
	struct trec t = { 0 };
	struct stat st;
	int rfd, rc;

	if (why != NULL)
		*why = NULL;
	if (jfd < 0)
		return 0;
	pthread_mutex_lock(&cf->mtx);
	cfile_journal_name(cf->hdr.file_id, jname);
	pthread_mutex_unlock(&cf->mtx);
	rfd = openat(jfd, jname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (rfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (cfile_check_tail(cf, fd) == 0) {	/* stale: never cut, or done */
		close(rfd);
		if (!dry)
			(void)unlinkat(jfd, jname, 0);
		return 0;
	}
	rec = malloc(TREC_HDR_MAX + 2 * cb);	/* record, then scratch */
	plain = malloc(cf->bs);
	rc = rec && plain ? 0 : -ENOMEM;
	if (rc == 0 && fstat(rfd, &st) < 0)
		rc = -errno;
	if (rc == 0 && (uint64_t)st.st_size > TREC_HDR_MAX + cb)
		refused = "malformed record";
	else if (rc == 0)
		len = (size_t)st.st_size;
	if (rc == 0 && refused == NULL)
		rc = backing_pread_full(rfd, rec, len, 0);
	if (rc == 0 && refused == NULL && trec_parse(rec, len, cf->bs, &t) < 0)
		refused = "malformed record";
	if (rc == 0 && refused == NULL) {
		rc = fstat(fd, &st) < 0 ? -errno : 0;
		if (rc == 0)
			refused = trec_refusal(cf, &t, (uint64_t)st.st_size);
	}
	if (rc == 0 && refused == NULL)
		rc = fk_get(cf, fd, &fk);
	/* It must open as this file's last block b: nothing else is written. */
	if (rc == 0 && refused == NULL) {
		scratch = rec + TREC_HDR_MAX + cb;
		memcpy(scratch, t.blk, t.blk_len);
		if (block_open(&fk->bc, t.blockno, true, scratch, t.blk_len,
			       plain) < 0)
			refused = "its block does not open as this file's "
				  "last block";
	}
	if (rc == 0 && refused != NULL)
		rc = -EBADMSG;
	if (rc == 0 && !dry) {
		rc = trec_apply(cf, fd, &t);
		if (rc == 0)
			(void)unlinkat(jfd, jname, 0);
		if (rc == 0)
			log_info("%s: completed a truncate interrupted by a "
				 "crash (block %llu)",
				 cfile_where(cf, wbuf, sizeof(wbuf)),
				 (unsigned long long)t.blockno);
	}
	if (why != NULL)
		*why = refused;
	if (fk != NULL)
		fk_put(cf, fk);
	close(rfd);
	if (plain != NULL)
		secmem_wipe(plain, cf->bs);
	if (rec != NULL)
		secmem_wipe(rec + TREC_HDR_MAX + cb, cb);
	free(plain);
	free(rec);
	return rc < 0 ? rc : 1;
}

/* A cut whose new last block b lies in a hole [s, e] of a format-3 file:
 * the part before b gets its record (slot b - 1) first; shrink() then
 * seals b as a data block of zeros, the new last block. */
static int shrink_into_hole(struct cfile *cf, struct filekeys *fk, int fd,
			    uint64_t size, uint64_t new_size)
{
	uint64_t nb = nblocks(size, cf->bs), b = nblocks(new_size, cf->bs) - 1;
	uint64_t s, e;
	enum slot_kind k = SLOT_DATA;
	int rc;

	if (b >= nb - 1)
		return 0;
	rc = slot_probe(cf, fk, fd, nb, b, &k);
	if (rc < 0 || k == SLOT_DATA)
		return rc;
	rc = hole_cover(cf, fk, fd, nb, b, &s, &e);
	if (rc == 0 && s < b)
		rc = put_record(cf, fk, fd, b - 1, s, false);
	return rc;
}

static int truncate_once(struct cfile *cf, int fd, uint64_t new_size)
{
	struct filekeys *fk = NULL;
	uint64_t size, csize;
	int rc;

	if (cfile_cipher_size(new_size, cf->bs, &csize) < 0)
		return -EFBIG;
	pthread_rwlock_wrlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc < 0 || new_size == size)
		goto out;
	rc = fk_get(cf, fd, &fk);
	if (rc < 0)
		goto out;
	if (new_size > size)
		rc = rewrite(cf, fk, fd, size, new_size, size, NULL, 0,
			     holes_on(cf));
	else if (holes_on(cf))
		rc = shrink_into_hole(cf, fk, fd, size, new_size);
	if (rc == 0 && new_size < size)
		rc = shrink(cf, fk, fd, size, new_size);
out:
	hv_clear(cf);
	if (fk != NULL)
		fk_put(cf, fk);
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

int cfile_truncate(struct cfile *cf, int fd, uint64_t new_size)
{
	int rc, tries = 0;

	while ((rc = truncate_once(cf, fd, new_size)) == NEED_REKEY) {
		rc = rekey_now(cf, fd, &tries);
		if (rc < 0)
			break;
	}
	return rc;
}

/* Slots [p0, p1] (none the last block)
 * join a hole, merged with the holes next to them: the merged hole's
 * record first (in slot E, start S), then the slots before it zeroed
 * (punched), so that at every step each zero slot is covered. */
static int punch_blocks(struct cfile *cf, struct filekeys *fk, int fd,
			uint64_t nb, uint64_t p0, uint64_t p1)
{
	uint64_t S = p0, E = p1, zlo = p0, zhi = p1, s, e;
	enum slot_kind k = SLOT_DATA;
	bool whole;
	int rc = 0;

	while (rc == 0 && S > 0) {
		rc = slot_probe(cf, fk, fd, nb, S - 1, &k);
		if (rc < 0 || k == SLOT_DATA)
			break;
		rc = hole_cover(cf, fk, fd, nb, S - 1, &s, &e);
		if (rc == 0 && e < zlo)
			zlo = e;	/* its record goes */
		S = s;
	}
	if (rc == 0)
		rc = slot_probe(cf, fk, fd, nb, p1, &k);
	whole = k == SLOT_DATA;
	if (rc == 0 && k != SLOT_DATA)
		rc = hole_cover(cf, fk, fd, nb, p1, &s, &E);
	while (rc == 0 && E + 1 < nb - 1) {
		rc = slot_probe(cf, fk, fd, nb, E + 1, &k);
		if (rc < 0 || k == SLOT_DATA)
			break;
		zhi = E;		/* a record inside the merged hole */
		whole = false;
		rc = hole_cover(cf, fk, fd, nb, E + 1, &s, &E);
	}
	if (rc == 0)
		rc = put_record(cf, fk, fd, E, S, whole);
	if (zhi > E - 1)
		zhi = E - 1;
	if (rc == 0 && E > zlo)
		rc = zero_slots(cf, fd, zlo, zhi);
	return rc;
}

/* PUNCH_HOLE or ZERO_RANGE of plain bytes [off, end) (end <= size) in a
 * format-3 file: the blocks wholly inside become a hole (punch_blocks),
 * the partial blocks at the edges and the last block (always data) are
 * sealed with zeros unless they are in a hole already. */
static int punch(struct cfile *cf, struct filekeys *fk, int fd, uint64_t size,
		 uint64_t off, uint64_t end)
{
	uint32_t bs = cf->bs;
	uint64_t nb = nblocks(size, bs), p0 = (off + bs - 1) / bs;
	uint64_t p1e = end / bs, edges[3];	/* whole blocks: [p0, p1e) */
	unsigned ne = 0;
	int rc = 0;

	if (p1e > nb - 1)
		p1e = nb - 1;
	if (p0 >= p1e) {
		p0 = p1e = 0;
		for (uint64_t b = off / bs; b <= (end - 1) / bs; b++)
			edges[ne++] = b;
	} else {
		if (off < p0 * bs)
			edges[ne++] = off / bs;
		if (end > p1e * bs)
			edges[ne++] = p1e;
		if ((end - 1) / bs > p1e)
			edges[ne++] = (end - 1) / bs;
	}
	for (unsigned i = 0; i < ne && rc == 0; i++) {
		uint64_t b = edges[i], lo = b * bs, hi = (b + 1) * bs;
		enum slot_kind k = SLOT_DATA;

		if (b < nb - 1)
			rc = slot_probe(cf, fk, fd, nb, b, &k);
		if (rc < 0 || k != SLOT_DATA)
			continue;	/* already zeros (verified on read) */
		lo = lo > off ? lo : off;
		hi = hi < end ? hi : end;
		rc = rewrite(cf, fk, fd, size, size, lo, NULL, hi - lo, false);
	}
	if (rc == 0 && p0 < p1e)
		rc = punch_blocks(cf, fk, fd, nb, p0, p1e - 1);
	return rc;
}

static int fallocate_once(struct cfile *cf, int fd, int mode, uint64_t off,
			  uint64_t len)
{
	struct filekeys *fk = NULL;
	uint64_t size, end, new_size, coff, cend;
	bool keep = mode & FALLOC_FL_KEEP_SIZE;
	int rc;

	if (__builtin_add_overflow(off, len, &end) ||
	    cfile_cipher_size(end, cf->bs, &cend) < 0)
		return -EFBIG;
	if (mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE |
		     FALLOC_FL_ZERO_RANGE))
		return -EOPNOTSUPP;
	if ((mode & FALLOC_FL_PUNCH_HOLE) && !keep)
		return -EINVAL;
	pthread_rwlock_wrlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc < 0)
		goto out;
	new_size = (!keep && end > size) ? end : size;
	if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) &&
	    holes_on(cf)) {
		/* Format 3: whole blocks become a hole (space freed), the
		 * partial ones at the edges sealed zeros. */
		rc = fk_get(cf, fd, &fk);
		if (rc == 0 && new_size > size)
			rc = rewrite(cf, fk, fd, size, new_size, size, NULL, 0,
				     true);
		if (rc == 0 && off < new_size)
			rc = punch(cf, fk, fd, new_size, off,
				   end < new_size ? end : new_size);
		goto out;
	}
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) {
		/* Holes are stored as sealed zeros (doc/DESIGN.md: an attacker
		 * must not be able to punch a block into reading as zeros). */
		uint64_t zend = end < new_size ? end : new_size;

		rc = fk_get(cf, fd, &fk);
		if (rc == 0 && off < zend)
			rc = rewrite(cf, fk, fd, size, new_size, off, NULL,
				     zend - off, false);
		else if (rc == 0)
			rc = rewrite(cf, fk, fd, size, new_size, size, NULL, 0,
				     false);
		goto out;
	}
	if (new_size > size) {
		/* mode 0 reserves space: sealed zeros, as before holes */
		rc = fk_get(cf, fd, &fk);
		if (rc == 0)
			rc = rewrite(cf, fk, fd, size, new_size, size, NULL, 0,
				     false);
	} else if (keep && end > size) {
		/* Reserve backing space past EOF; the size stays. */
		rc = cipher_off(off / cf->bs, cf->bs, &coff);
		if (rc == 0 && fallocate(fd, FALLOC_FL_KEEP_SIZE, (off_t)coff,
					 (off_t)(cend - coff)) < 0 &&
		    errno != EOPNOTSUPP)
			rc = -errno;
	}
out:
	hv_clear(cf);
	if (fk != NULL)
		fk_put(cf, fk);
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

int cfile_fallocate(struct cfile *cf, int fd, int mode, uint64_t off,
		    uint64_t len)
{
	int rc, tries = 0;

	while ((rc = fallocate_once(cf, fd, mode, off, len)) == NEED_REKEY) {
		rc = rekey_now(cf, fd, &tries);
		if (rc < 0)
			break;
	}
	return rc;
}

/* ---- SEEK_DATA / SEEK_HOLE and the check of every block ---- */

static int seek_locked(struct cfile *cf, struct filekeys *fk, int fd,
		       uint64_t size, uint64_t off, int whence, uint64_t *res)
{
	uint64_t nb = nblocks(size, cf->bs), b = off / cf->bs, s, e;
	enum slot_kind k = SLOT_DATA;
	int rc = 0;

	/* A hole is reported only once its record verifies: a zeroed data
	 * block must not become a hole that cp --sparse skips unread. */
	for (; rc == 0; b++) {
		uint64_t at = b * cf->bs > off ? b * cf->bs : off;

		if (b >= nb - 1) {	/* the last block: data */
			*res = whence == SEEK_DATA ? at : size;
			break;
		}
		rc = slot_probe(cf, fk, fd, nb, b, &k);
		if (rc == 0 && k != SLOT_DATA)
			rc = hole_cover(cf, fk, fd, nb, b, &s, &e);
		if (rc < 0)
			break;
		if ((k == SLOT_DATA) == (whence == SEEK_DATA)) {
			*res = at;
			break;
		}
		if (k != SLOT_DATA)
			b = e;		/* the rest of the hole */
	}
	return rc;
}

int cfile_seek(struct cfile *cf, int fd, uint64_t off, int whence,
	       uint64_t *res)
{
	struct filekeys *fk = NULL;
	uint64_t size;
	int rc;

	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return -EINVAL;
	pthread_rwlock_rdlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc == 0 && off >= size)
		rc = -ENXIO;
	if (rc == 0 && !holes_on(cf)) {
		*res = whence == SEEK_DATA ? off : size;
		goto out;
	}
	if (rc == 0)
		rc = fk_get(cf, fd, &fk);
	if (rc == 0)
		rc = seek_locked(cf, fk, fd, size, off, whence, res);
out:
	if (fk != NULL)
		fk_put(cf, fk);
	pthread_rwlock_unlock(&cf->rwlock);
	return rc;
}

/* One slot of cfile_check_blocks(): *run is the first slot of the zero
 * run before b (UINT64_MAX: none). Returns the number of findings. */
static int check_slot(struct cfile *cf, struct filekeys *fk, int fd,
		      uint64_t b, uint64_t nb, uint8_t *p, size_t len,
		      uint8_t *pt,
		      uint64_t *run,
		      void (*bad)(void *arg, uint64_t b, const char *what),
		      void *arg)
{
	enum slot_kind k = SLOT_DATA;
	uint64_t s, want;
	char what[160];
	int n = 0;

	if (holes_on(cf) && b != nb - 1)
		k = slot_kind(p, len);
	switch (k) {
	case SLOT_ZERO:
		if (*run == UINT64_MAX)
			*run = b;
		return 0;
	case SLOT_REC:
		want = *run == UINT64_MAX ? b : *run;
		*run = UINT64_MAX;
		if (block_open_hole(&fk->bc, b, p, &s) < 0) {
			if (want == b && open_grown(cf, fk, fd, nb, b, pt) == 0)
				return 0;	/* data: a growth cut short */
			bad(arg, b, "hole record does not open (tampered, "
				    "moved or from another file)");
			return 1;
		}
		/* A start before the zero run claims slots that are not its
		 * zeros: reads the same (a zero slot needs start <= it),
		 * and a write into a hole or a punch killed part way leaves
		 * it (doc/FORMAT.md §3.4). After it: zeros uncovered. */
		if (s > want) {
			snprintf(what, sizeof(what),
				 "hole record's start is wrong: says block "
				 "%llu, the zero blocks start at %llu",
				 (unsigned long long)s,
				 (unsigned long long)want);
			bad(arg, b, what);
			return 1;
		}
		return 0;
	default:
		if (*run != UINT64_MAX) {
			snprintf(what, sizeof(what),
				 "zero blocks %llu..%llu have no hole record "
				 "(zeroed or punched data?)",
				 (unsigned long long)*run,
				 (unsigned long long)(b - 1));
			bad(arg, *run, what);
			n++;
			*run = UINT64_MAX;
		}
		if (block_open(&fk->bc, b, b == nb - 1, p, len, pt) < 0 &&
		    (!holes_on(cf) || b == nb - 1 ||
		     open_grown(cf, fk, fd, nb, b, pt) < 0)) {
			bad(arg, b, "block fails authentication");
			n++;
		}
		return n;
	}
}

int cfile_check_blocks(struct cfile *cf, int fd,
		       void (*bad)(void *arg, uint64_t b, const char *what),
		       void *arg, uint64_t *blocks)
{
	return cfile_check_blocks_tick(cf, fd, bad, NULL, arg, blocks);
}

int cfile_check_blocks_tick(struct cfile *cf, int fd,
			    void (*bad)(void *arg, uint64_t b,
					const char *what),
			    void (*tick)(void *arg, uint64_t done),
			    void *arg, uint64_t *blocks)
{
	size_t cb = cf->bs + BLOCK_OVERHEAD, cn = chunk_blocks(cf);
	uint64_t size = 0, nb = 0, run = UINT64_MAX;
	struct filekeys *fk = NULL;
	uint8_t *ct = NULL, *pt = NULL;
	int rc, found = 0;

	pthread_rwlock_rdlock(&cf->rwlock);
	rc = size_locked(cf, fd, &size);
	if (rc == 0)
		rc = fk_get(cf, fd, &fk);
	nb = nblocks(size, cf->bs);
	ct = malloc(cn * cb);
	pt = malloc(cf->bs);
	if (rc == 0 && (ct == NULL || pt == NULL))
		rc = -ENOMEM;
	for (uint64_t b0 = 0; rc == 0 && b0 < nb;) {
		uint64_t n = nb - b0 < cn ? nb - b0 : cn, off, clen = 0;

		if (sparse_chunk(cf, fd, size, b0, n)) {
			if (run == UINT64_MAX)
				run = b0;
			b0 += n;
			continue;
		}
		for (uint64_t b = b0; b < b0 + n; b++)
			clen += (b == nb - 1 ? size - b * cf->bs : cf->bs) +
				BLOCK_OVERHEAD;
		rc = cipher_off(b0, cf->bs, &off);
		if (rc == 0)
			rc = backing_pread_full(fd, ct, clen, (off_t)off);
		for (uint64_t i = 0; rc == 0 && i < n; i++) {
			uint64_t b = b0 + i;
			size_t len = b == nb - 1 ?
					     size - b * cf->bs + BLOCK_OVERHEAD :
					     cb;

			found += check_slot(cf, fk, fd, b, nb, ct + i * cb, len,
					    pt, &run, bad, arg);
		}
		b0 += n;
		if (tick != NULL)	/* fsck's progress within a file */
			tick(arg, b0);
	}
	if (fk != NULL)
		fk_put(cf, fk);
	pthread_rwlock_unlock(&cf->rwlock);
	if (pt != NULL)
		secmem_wipe(pt, cf->bs);
	free(pt);
	free(ct);
	*blocks = nb;
	return rc < 0 ? rc : found;
}
