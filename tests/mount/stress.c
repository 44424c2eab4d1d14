/*
 * stress.c - concurrent, model-checked workload on a cmkfs mount.
 *
 * Many threads and a few forked processes work at once in a fresh tree
 * DIR/st, every result checked against an in-memory model:
 *
 *   model files  d1/ and d2/ hold files f<i> or g<i>; each has a model
 *                (bytes + size + path) behind a mutex that its user holds
 *                across the system call and the model update, so the model
 *                is exact while different files run fully concurrently.
 *                Ops: pwrite at random offsets and sizes (unaligned, across
 *                the 4 KiB block boundary, holes past EOF, through an
 *                O_APPEND descriptor too), pread (exact short counts),
 *                ftruncate/truncate shrink and grow, rename within and
 *                across directories, MAP_SHARED read and write + msync,
 *                fsync, reopen, and fstat sizes. Child processes own some
 *                of these files and run the same loop.
 *   shared files sh/s<k>: several writers (one of them a forked process)
 *                write disjoint 1000-byte granules with no lock, so two
 *                writers change bytes of one 4 KiB block at the same time
 *                (the daemon's read-modify-write must not lose either).
 *                Every write stamps its granule with a version; writers
 *                read their own granule back exactly, readers check that
 *                every byte they get belongs to a version that was current
 *                at some instant of their read.
 *   churn        d0/ has files and directories created, renamed, read and
 *                removed (some with names long enough for long-name side
 *                files) next to fixed files keep<i>, while a reader lists
 *                every directory: no unknown or duplicate names, the fixed
 *                files always there.
 *   lock         with -L CMKFS, `cmkfs lock DIR` runs a few times during the
 *                run, each ended by `cmkfs unlock DIR` (a key check of the
 *                daemon's own, then the resume). EKEYREVOKED is accepted only
 *                from a call that overlapped a lock window; a write, a
 *                truncate, a rename or a create that failed so must not
 *                have happened (checked before the file is touched again),
 *                and everything works again after the resume.
 *
 * At the end every file is compared with its model, the directories'
 * listings with the model's names, and the expected tree is written to
 * EXPECT (-e) so that the caller can remount and `diff -r` it.
 *
 * Usage: stress [-t SECS] [-s SEED] [-T THREADS] [-P PROCS] [-L CMKFS]
 *               [-l LOCKS] -e EXPECT DIR
 * Exit status: 0 pass, 1 failure, 99 usage or setup error. The last line
 * is "stress: N passed, M failed" (N counts operations).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BS		4096u
#define MAXSZ		(640u * 1024)	/* model files */
#define MAX_WRITE	(512u * 1024)	/* > 256 KiB: crypto over the pool */
#define FILES_PARENT	10
#define FILES_CHILD	3
#define MAX_PROCS	4
#define MAX_FILES	(FILES_PARENT + MAX_PROCS * FILES_CHILD)
#define NSHARED		2
#define SH_SIZE		40000u		/* not a multiple of 4096 */
#define GRAN		1000u		/* granules straddle blocks */
#define NGRAN		((SH_SIZE + GRAN - 1) / GRAN)
#define NWRITERS	3
#define NKEEP		8
#define CHURN_THREADS	2
#define CHURN_MAX	16
#define LONG_PAD	200		/* long names: over NAME_LONG_THRESHOLD */
#define WAIT_TRIES	6000		/* x 20 ms: how long a lock may last */

struct shm {
	_Atomic uint64_t lockgen;	/* odd while a lock window is open */
	_Atomic uint64_t revoked;	/* EKEYREVOKED taken inside windows */
	_Atomic uint64_t ops;
	_Atomic uint64_t short_writes;
	_Atomic int failed;
	_Atomic int stop;
	_Atomic int nmsg;
	pthread_rwlock_t gate;		/* mmap ops (read) vs lock windows */
	struct {
		_Atomic uint32_t pend[NGRAN];	/* version being written */
		_Atomic uint32_t done[NGRAN];	/* version written */
	} sf[NSHARED];
};

struct mfile {
	pthread_mutex_t mu;
	int idx, owner;
	int fd;			/* -1: open on next use */
	bool append;		/* fd has O_APPEND */
	int dir, alt;		/* path: d<dir>/<"fg"[alt]><idx> */
	uint8_t *data;
	size_t size;
	uint32_t ver;
};

struct churn_ent {
	char name[LONG_PAD + 32];
	bool isdir;
	uint32_t len;		/* file: content length */
};

static struct shm *S;
static struct mfile F[MAX_FILES];
static int nfiles;
static const char *top;		/* DIR/st */
static const char *expect;
static const char *cmkfs;
static const char *mnt;
static uint64_t seed = 1;
static struct churn_ent churn[CHURN_THREADS][CHURN_MAX];
static int nchurn[CHURN_THREADS];

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&S->nmsg, 1) < 30) {
		fprintf(stderr, "stress[%ld]: FAIL: ", (long)getpid());
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	atomic_store(&S->failed, 1);
	atomic_store(&S->stop, 1);
}

static bool stopping(void)
{
	return atomic_load(&S->stop) != 0;
}

/* ---- random numbers and patterns ---- */

static uint64_t mix(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ull;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint64_t rnd(uint64_t *st)
{
	*st += 0x9e3779b97f4a7c15ull;
	return mix(*st);
}

static uint64_t below(uint64_t *st, uint64_t n)
{
	return n ? rnd(st) % n : 0;
}

/* Byte at offset o of version v of file (or shared file) id. */
static uint8_t pat(uint32_t id, uint64_t o, uint32_t v)
{
	if (v == 0)
		return 0;
	return (uint8_t)(mix(o * 0x9e3779b97f4a7c15ull ^ ((uint64_t)v << 20) ^
			     ((uint64_t)id << 52)) >> 56);
}

/* Offsets near block boundaries, tiny and large lengths. */
static uint64_t pick_off(uint64_t *st, uint64_t max)
{
	uint64_t o;

	switch (below(st, 4)) {
	case 0:
		o = below(st, max / BS + 1) * BS;
		o = o + below(st, 121) - 60;
		if ((int64_t)o < 0)
			o = 0;
		break;
	case 1:
		o = below(st, 64);
		break;
	default:
		o = below(st, max + 1);
	}
	return o > max ? max : o;
}

static size_t pick_len(uint64_t *st)
{
	switch (below(st, 20)) {
	case 0:
		return 1 + below(st, MAX_WRITE);
	case 1: case 2: case 3: case 4:
		return 1 + below(st, 64 * 1024);
	case 5: case 6: case 7: case 8: case 9: case 10: case 11:
		return 1 + below(st, 9000);
	default:
		return 1 + below(st, 17);
	}
}

static void nap(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- lock windows ---- */

static uint64_t gen(void)
{
	return atomic_load(&S->lockgen);
}

/* A call that began at generation g0 failed with err: was that a lock? */
static bool revoked_ok(int err, uint64_t g0)
{
	if (err != EKEYREVOKED)
		return false;
	if ((g0 & 1) == 0 && gen() == g0) {
		fail("EKEYREVOKED outside a lock window");
		return false;
	}
	atomic_fetch_add(&S->revoked, 1);
	nap(5);		/* no busy loop while the mount is locked */
	return true;
}

/* A short count from a call that began at generation g0: a write that the
 * kernel sends as two requests (a partial page first) may have its second
 * refused by a lock; at any other time it is an error. */
static bool short_ok(uint64_t g0, const char *what)
{
	if ((g0 & 1) == 0 && gen() == g0) {
		fail("%s: short count outside a lock window", what);
		return false;
	}
	atomic_fetch_add(&S->short_writes, 1);
	return true;
}

/* Retry a call that failed with err inside a lock window, for a while. */
static bool again(int err, uint64_t g0, int *tries)
{
	if (!revoked_ok(err, g0))
		return false;
	if (++*tries > WAIT_TRIES) {
		fail("mount still locked after %d s", WAIT_TRIES / 50);
		return false;
	}
	nap(20);
	return true;
}

/* pread until len or EOF; *got is what arrived (checked even on error). */
static ssize_t read_full(int fd, uint8_t *buf, size_t len, uint64_t off,
			 size_t *got)
{
	ssize_t n;

	*got = 0;
	while (*got < len) {
		n = pread(fd, buf + *got, len - *got, (off_t)(off + *got));
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		*got += (size_t)n;
	}
	return (ssize_t)*got;
}

static int churn_exists(const char *p);

/* ---- model files ---- */

static void mpath(const struct mfile *f, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/d%d/%c%d", top, f->dir, "fg"[f->alt], f->idx);
}

static int mf_open(struct mfile *f, uint64_t *st)
{
	char p[4096];
	int tries = 0, fd;
	uint64_t g0;

	if (f->fd >= 0)
		return 0;
	mpath(f, p, sizeof(p));
	f->append = below(st, 6) == 0;
	do {
		g0 = gen();
		fd = open(p, O_RDWR | O_CLOEXEC | (f->append ? O_APPEND : 0));
	} while (fd < 0 && again(errno, g0, &tries));
	if (fd < 0) {
		if (!stopping())
			fail("open %s: %s", p, strerror(errno));
		return -1;
	}
	f->fd = fd;
	return 0;
}

static bool cmp_model(const struct mfile *f, const uint8_t *buf, size_t n,
		      uint64_t off, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		if (buf[i] != f->data[off + i]) {
			fail("%s: file %d (d%d/%c%d, size %zu): byte %" PRIu64
			     " is %#x, model %#x", what, f->idx, f->dir,
			     "fg"[f->alt], f->idx, f->size, off + i, buf[i],
			     f->data[off + i]);
			return false;
		}
	}
	return true;
}

/* The whole file, through a fresh descriptor, equals the model: after a
 * call failed in a lock window, and at the end. Waits out a lock. */
static bool mf_verify(struct mfile *f, const char *why)
{
	char p[4096];
	uint8_t *buf = malloc(MAXSZ + 1);
	struct stat sb;
	size_t got = 0;
	int fd = -1, tries = 0;
	uint64_t g0;
	bool ok = false;

	if (buf == NULL) {
		fail("out of memory");
		return false;
	}
	mpath(f, p, sizeof(p));
	for (;;) {
		g0 = gen();
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && fstat(fd, &sb) == 0 &&
		    read_full(fd, buf, MAXSZ + 1, 0, &got) >= 0)
			break;
		if (!again(errno, g0, &tries)) {
			fail("%s: %s: %s", why, p, strerror(errno));
			goto out;
		}
		if (fd >= 0)
			close(fd);
		fd = -1;
	}
	if ((size_t)sb.st_size != f->size || got != f->size) {
		fail("%s: %s: size %lld, read %zu, model %zu", why, p,
		     (long long)sb.st_size, got, f->size);
		goto out;
	}
	ok = cmp_model(f, buf, got, 0, why);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ok;
}

static void model_write(struct mfile *f, uint64_t off, const uint8_t *b,
			size_t n)
{
	if (off > f->size)
		memset(f->data + f->size, 0, off - f->size);
	memcpy(f->data + off, b, n);
	if (off + n > f->size)
		f->size = off + n;
}

static void model_truncate(struct mfile *f, size_t sz)
{
	if (sz > f->size)
		memset(f->data + f->size, 0, sz - f->size);
	f->size = sz;
}

static void op_write(struct mfile *f, uint64_t *st, uint8_t *buf)
{
	uint64_t off = pick_off(st, MAXSZ - 1), g0;
	size_t len = pick_len(st);
	ssize_t n;
	uint32_t v = ++f->ver;

	if (f->append)
		off = f->size;
	if (off + len > MAXSZ)
		len = MAXSZ - off;
	if (len == 0)
		return;
	for (size_t i = 0; i < len; i++)
		buf[i] = pat((uint32_t)f->idx, off + i, v);
	g0 = gen();
	n = pwrite(f->fd, buf, len, (off_t)off);
	if (n < 0) {
		if (revoked_ok(errno, g0))
			mf_verify(f, "a write refused in a lock window landed");
		else
			fail("pwrite file %d off %" PRIu64 " len %zu: %s",
			     f->idx, off, len, strerror(errno));
		return;
	}
	model_write(f, off, buf, (size_t)n);
	/* Exactly the first n bytes landed. */
	if ((size_t)n != len && short_ok(g0, "pwrite"))
		mf_verify(f, "after a short write in a lock window");
}

static void op_read(struct mfile *f, uint64_t *st, uint8_t *buf)
{
	uint64_t off = pick_off(st, f->size + 100), g0;
	size_t len = pick_len(st), want, got = 0;
	char p[4096];
	int fd = f->fd, tries = 0;

	want = off >= f->size ? 0 : (f->size - off < len ? f->size - off : len);
	if (below(st, 3) == 0) {	/* through lookup + open */
		int direct = below(st, 2) ? O_DIRECT : 0;	/* daemon */

		mpath(f, p, sizeof(p));
		do {
			g0 = gen();
			fd = open(p, O_RDONLY | O_CLOEXEC | direct);
		} while (fd < 0 && again(errno, g0, &tries));
		if (fd < 0) {
			if (!stopping())
				fail("open %s: %s", p, strerror(errno));
			return;
		}
	}
	g0 = gen();
	if (read_full(fd, buf, len, off, &got) < 0) {
		if (!revoked_ok(errno, g0))
			fail("pread file %d: %s", f->idx, strerror(errno));
		cmp_model(f, buf, got, off, "partial read in a lock window");
	} else if (got != want) {
		fail("pread file %d off %" PRIu64 " len %zu: got %zu, model %zu "
		     "(size %zu)", f->idx, off, len, got, want, f->size);
	} else {
		cmp_model(f, buf, got, off, "pread");
	}
	if (fd != f->fd)
		close(fd);
}

static void op_truncate(struct mfile *f, uint64_t *st)
{
	uint64_t sz = pick_off(st, MAXSZ), g0;
	char p[4096];
	int r;

	if (below(st, 3) == 0 && sz > f->size)
		sz = f->size + below(st, 3 * BS);	/* small growth */
	if (sz > MAXSZ)
		sz = MAXSZ;
	mpath(f, p, sizeof(p));
	g0 = gen();
	r = below(st, 2) ? ftruncate(f->fd, (off_t)sz) : truncate(p, (off_t)sz);
	if (r < 0) {
		if (revoked_ok(errno, g0))
			mf_verify(f, "a truncate refused in a lock window "
				     "happened");
		else
			fail("truncate file %d to %" PRIu64 ": %s", f->idx, sz,
			     strerror(errno));
		return;
	}
	model_truncate(f, sz);
}

static void op_rename(struct mfile *f, uint64_t *st)
{
	char from[4096], to[4096];
	int odir = f->dir, oalt = f->alt;
	uint64_t g0;

	mpath(f, from, sizeof(from));
	if (below(st, 2))
		f->dir = 3 - f->dir;	/* across directories */
	else
		f->alt = !f->alt;	/* within one */
	mpath(f, to, sizeof(to));
	g0 = gen();
	if (rename(from, to) == 0)
		return;
	f->dir = odir;
	f->alt = oalt;
	if (!revoked_ok(errno, g0)) {
		fail("rename %s -> %s: %s", from, to, strerror(errno));
		return;
	}
	mf_verify(f, "a rename refused in a lock window happened");
	if (churn_exists(to) != 0)
		fail("%s exists after its rename was refused", to);
}

static void op_mmap(struct mfile *f, uint64_t *st)
{
	uint64_t off, pg;
	size_t len, mlen;
	uint8_t *m;
	uint32_t v;

	if (f->size == 0 || f->append)
		return;
	off = pick_off(st, f->size - 1);
	len = 1 + below(st, 64 * 1024);
	if (off + len > f->size)
		len = f->size - off;
	pg = off & ~(uint64_t)(BS - 1);
	mlen = off + len - pg;
	/* Not while a lock can start: page faults on a locked mount are
	 * SIGBUS, and dirty pages cannot be written without keys. */
	pthread_rwlock_rdlock(&S->gate);
	m = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd,
		 (off_t)pg);
	if (m == MAP_FAILED) {
		fail("mmap file %d: %s", f->idx, strerror(errno));
		goto out;
	}
	if (!cmp_model(f, m + (off - pg), len, off, "mmap read"))
		goto unmap;
	if (below(st, 2)) {
		v = ++f->ver;
		for (size_t i = 0; i < len; i++)
			m[off - pg + i] = pat((uint32_t)f->idx, off + i, v);
		if (msync(m, mlen, MS_SYNC) < 0) {
			fail("msync file %d: %s", f->idx, strerror(errno));
			goto unmap;
		}
		memcpy(f->data + off, m + (off - pg), len);
	}
unmap:
	munmap(m, mlen);
out:
	pthread_rwlock_unlock(&S->gate);
}

static void op_other(struct mfile *f, uint64_t *st)
{
	struct stat sb;
	uint64_t g0 = gen();
	int r;

	switch (below(st, 3)) {
	case 0:
		r = below(st, 2) ? fsync(f->fd) : fdatasync(f->fd);
		if (r < 0 && !revoked_ok(errno, g0))
			fail("fsync file %d: %s", f->idx, strerror(errno));
		break;
	case 1:
		close(f->fd);	/* reopen, maybe with O_APPEND */
		f->fd = -1;
		mf_open(f, st);
		break;
	default:
		if (below(st, 10) == 0)
			mf_verify(f, "full read");
		break;
	}
	if (f->fd < 0)
		return;
	g0 = gen();
	if (fstat(f->fd, &sb) < 0) {
		if (!revoked_ok(errno, g0))
			fail("fstat file %d: %s", f->idx, strerror(errno));
	} else if ((size_t)sb.st_size != f->size) {
		fail("fstat file %d: size %lld, model %zu", f->idx,
		     (long long)sb.st_size, f->size);
	}
}

struct worker {
	int owner, id;
	pthread_t t;
};

static void *model_worker(void *arg)
{
	struct worker *w = arg;
	uint64_t st = seed * 1000003u + (uint64_t)w->owner * 1009 +
		      (uint64_t)w->id;
	uint8_t *buf = malloc(MAX_WRITE + MAXSZ);
	int mine[MAX_FILES], n = 0;

	if (buf == NULL) {
		fail("out of memory");
		return NULL;
	}
	for (int i = 0; i < nfiles; i++)
		if (F[i].owner == w->owner)
			mine[n++] = i;
	while (!stopping()) {
		struct mfile *f = &F[mine[below(&st, (uint64_t)n)]];
		uint64_t k = below(&st, 100);

		pthread_mutex_lock(&f->mu);
		if (mf_open(f, &st) == 0) {
			if (k < 38)
				op_write(f, &st, buf);
			else if (k < 70)
				op_read(f, &st, buf);
			else if (k < 78)
				op_truncate(f, &st);
			else if (k < 83)
				op_rename(f, &st);
			else if (k < 90)
				op_mmap(f, &st);
			else
				op_other(f, &st);
		}
		pthread_mutex_unlock(&f->mu);
		atomic_fetch_add(&S->ops, 1);
	}
	free(buf);
	return NULL;
}

/* ---- shared files: disjoint writers without a lock ---- */

struct shw {
	int file, w;		/* writer w of file, or -1: reader */
	pthread_t t;
};

static void shpath(int k, char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/sh/s%d", top, k);
}

static size_t glen(uint32_t g)
{
	return g == NGRAN - 1 ? SH_SIZE - g * GRAN : GRAN;
}

static uint32_t sid(int k)
{
	return 0x5000u + (uint32_t)k;
}

/* Read back one's own granule: exactly version v. */
static void sh_check_own(int fd, int k, uint32_t g, uint32_t v,
			 const char *what)
{
	uint8_t b[GRAN];
	size_t got = 0;
	int tries = 0;
	uint64_t g0;

	for (;;) {
		g0 = gen();
		if (read_full(fd, b, glen(g), (uint64_t)g * GRAN, &got) >= 0)
			break;
		if (!again(errno, g0, &tries)) {
			if (!stopping())
				fail("s%d: pread granule %u: %s", k, g,
				     strerror(errno));
			return;
		}
	}
	if (got != glen(g)) {
		fail("s%d: granule %u: short read %zu", k, g, got);
		return;
	}
	for (size_t i = 0; i < got; i++) {
		uint64_t o = (uint64_t)g * GRAN + i;

		if (b[i] != pat(sid(k), o, v)) {
			fail("s%d: %s: granule %u byte %zu (offset %" PRIu64
			     ") is not version %u: an update was lost",
			     k, what, g, i, o, v);
			return;
		}
	}
}

static void *sh_writer(void *arg)
{
	struct shw *w = arg;
	uint64_t st = seed * 7919u + (uint64_t)w->file * 31 + (uint64_t)w->w;
	uint8_t b[GRAN];
	char p[4096];
	int fd, dfd;

	shpath(w->file, p, sizeof(p));
	fd = open(p, O_RDWR | O_CLOEXEC);
	/* O_DIRECT reads come from the daemon, not the page cache. */
	dfd = open(p, O_RDONLY | O_DIRECT | O_CLOEXEC);
	if (fd < 0 || dfd < 0) {
		fail("open %s: %s", p, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (!stopping()) {
		uint32_t g = (uint32_t)(below(&st, NGRAN / NWRITERS + 1) *
					NWRITERS + (uint64_t)w->w);
		uint32_t v, old;
		uint64_t g0;
		ssize_t n;

		if (g >= NGRAN)
			continue;
		old = atomic_load(&S->sf[w->file].done[g]);
		v = old + 1;
		atomic_store(&S->sf[w->file].pend[g], v);
		for (size_t i = 0; i < glen(g); i++)
			b[i] = pat(sid(w->file), (uint64_t)g * GRAN + i, v);
		g0 = gen();
		n = pwrite(fd, b, glen(g), (off_t)g * GRAN);
		if (n < 0 && revoked_ok(errno, g0)) {
			sh_check_own(dfd, w->file, g, old,
				     "a write refused in a lock window landed");
			atomic_store(&S->sf[w->file].pend[g], old);
			continue;
		}
		/* Short in a lock window: the granule mixes old and v (every
		 * byte still one of them); write all of it again. */
		for (int tries = 0; n >= 0 && n < (ssize_t)glen(g) &&
				    short_ok(g0, "shared pwrite");) {
			do {
				g0 = gen();
				n = pwrite(fd, b, glen(g), (off_t)g * GRAN);
			} while (n < 0 && again(errno, g0, &tries));
		}
		if (n != (ssize_t)glen(g)) {
			fail("s%d: pwrite granule %u: %s", w->file, g,
			     n < 0 ? strerror(errno) : "short");
			break;
		}
		atomic_store(&S->sf[w->file].done[g], v);
		if (below(&st, 3) == 0)
			sh_check_own(below(&st, 2) ? fd : dfd, w->file, g, v,
				     "own read-back");
		atomic_fetch_add(&S->ops, 1);
	}
	close(fd);
	close(dfd);
	return NULL;
}

static void *sh_reader(void *arg)
{
	struct shw *w = arg;
	uint64_t st = seed * 104729u + (uint64_t)w->file;
	uint32_t lo[NGRAN], hi[NGRAN];
	uint8_t *b = malloc(SH_SIZE);
	char p[4096];
	int fds[2];

	shpath(w->file, p, sizeof(p));
	fds[0] = open(p, O_RDONLY | O_CLOEXEC);
	fds[1] = open(p, O_RDONLY | O_DIRECT | O_CLOEXEC);	/* daemon */
	if (b == NULL || fds[0] < 0 || fds[1] < 0) {
		free(b);
		fail("open %s: %s", p, strerror(errno));
		return NULL;
	}
	while (!stopping()) {
		uint64_t off = pick_off(&st, SH_SIZE - 1), g0;
		size_t len = pick_len(&st), got = 0;
		int fd = fds[below(&st, 2)];
		uint32_t g1, g2;

		if (off + len > SH_SIZE)
			len = SH_SIZE - off;
		g1 = (uint32_t)(off / GRAN);
		g2 = (uint32_t)((off + len - 1) / GRAN);
		for (uint32_t g = g1; g <= g2; g++)
			lo[g] = atomic_load(&S->sf[w->file].done[g]);
		g0 = gen();
		if (read_full(fd, b, len, off, &got) < 0 &&
		    !revoked_ok(errno, g0)) {
			fail("s%d: pread: %s", w->file, strerror(errno));
			break;
		}
		if (got != len && gen() == g0 && (g0 & 1) == 0) {
			fail("s%d: pread off %" PRIu64 " len %zu: got %zu",
			     w->file, off, len, got);
			break;
		}
		for (uint32_t g = g1; g <= g2; g++)
			hi[g] = atomic_load(&S->sf[w->file].pend[g]);
		for (size_t i = 0; i < got; i++) {
			uint64_t o = off + i;
			uint32_t g = (uint32_t)(o / GRAN), v;

			for (v = lo[g]; v <= hi[g]; v++)
				if (b[i] == pat(sid(w->file), o, v))
					break;
			if (v > hi[g]) {
				uint32_t m = UINT32_MAX;
				uint8_t again1 = 0;

				for (uint32_t x = 0; x < hi[g] + 16; x++)
					if (b[i] == pat(sid(w->file), o, x))
						m = x;
				if (pread(fd, &again1, 1, (off_t)o) != 1)
					again1 = 0;
				fail("s%d: offset %" PRIu64 " reads %#x, no "
				     "version in %u..%u has it (last match "
				     "%u; read off %" PRIu64 " len %zu; "
				     "reads %#x now, done %u)", w->file, o,
				     b[i], lo[g], hi[g], m, off, len, again1,
				     atomic_load(&S->sf[w->file].done[g]));
				break;
			}
		}
		atomic_fetch_add(&S->ops, 1);
	}
	close(fds[0]);
	close(fds[1]);
	free(b);
	return NULL;
}

/* ---- churn in d0 and directory listings ---- */

static void churn_name(char *buf, size_t cap, int t, uint64_t n, bool lng)
{
	int k = snprintf(buf, cap, "c%d_%" PRIu64, t, n);

	if (lng) {
		buf[k++] = '_';
		memset(buf + k, 'x', LONG_PAD);
		buf[k + LONG_PAD] = '\0';
	}
}

static uint8_t cpat(const char *name, uint64_t o)
{
	uint64_t h = 1469598103934665603ull;
	int under = 0;

	/* The content belongs to the name it was created with: "cT_N", which
	 * renames keep (they change what follows a second '_'). */
	for (const char *p = name; *p && !(*p == '_' && under++ == 1); p++)
		h = (h ^ (uint8_t)*p) * 1099511628211ull;
	return (uint8_t)(mix(h ^ o) >> 56);
}

/* Run one call that may be refused in a lock window: r is -2 when it was
 * (a refusal in a window), -1 for any other failure. */
#define LOCKED_CALL(r, call)                                  \
	do {                                                  \
		uint64_t g0_ = gen();                         \
		(r) = (call);                                 \
		if ((r) < 0 && revoked_ok(errno, g0_))        \
			(r) = -2;                             \
	} while (0)

static bool churn_check_file(const char *p, const char *name, uint32_t len)
{
	uint8_t *b = malloc(len + 1);
	size_t got = 0;
	int fd, tries = 0;
	uint64_t g0;
	bool ok = true;

	if (b == NULL)
		return false;
	for (;;) {
		g0 = gen();
		fd = open(p, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && read_full(fd, b, len + 1, 0, &got) >= 0)
			break;
		if (fd >= 0)
			close(fd);
		if (!again(errno, g0, &tries)) {
			fail("churn: read %s: %s", p, strerror(errno));
			free(b);
			return false;
		}
	}
	close(fd);
	if (got != len) {
		fail("churn: %s: %zu bytes, want %u", p, got, len);
		ok = false;
	}
	for (size_t i = 0; ok && i < got; i++) {
		if (b[i] != cpat(name, i)) {
			fail("churn: %s: byte %zu differs", p, i);
			ok = false;
		}
	}
	free(b);
	return ok;
}

/* Exists (1) or not (0), waiting out a lock. */
static int churn_exists(const char *p)
{
	struct stat sb;
	int tries = 0;
	uint64_t g0;

	for (;;) {
		g0 = gen();
		if (lstat(p, &sb) == 0)
			return 1;
		if (errno == ENOENT)
			return 0;
		if (!again(errno, g0, &tries)) {
			fail("churn: lstat %s: %s", p, strerror(errno));
			return -1;
		}
	}
}

static void churn_create(int t, uint64_t *st, uint64_t *serial)
{
	struct churn_ent *e = &churn[t][nchurn[t]];
	char p[4096];
	uint8_t *b;
	int fd, r;

	churn_name(e->name, sizeof(e->name), t, (*serial)++, below(st, 4) == 0);
	snprintf(p, sizeof(p), "%s/d0/%s", top, e->name);
	e->isdir = below(st, 5) == 0;
	if (e->isdir) {
		LOCKED_CALL(r, mkdir(p, 0755));
		if (r == -2 && churn_exists(p) != 0)
			fail("churn: mkdir refused in a lock window: %s exists",
			     e->name);
		else if (r == -1)
			fail("churn: mkdir %s: %s", p, strerror(errno));
		if (r == 0)
			nchurn[t]++;
		return;
	}
	e->len = (uint32_t)below(st, 3 * BS);
	LOCKED_CALL(fd, open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
	if (fd == -2) {
		if (churn_exists(p) != 0)
			fail("churn: create refused in a lock window: %s exists",
			     e->name);
		return;
	}
	if (fd < 0) {
		fail("churn: create %s: %s", p, strerror(errno));
		return;
	}
	nchurn[t]++;
	b = malloc(e->len + 1);
	if (b == NULL) {
		close(fd);
		fail("out of memory");
		return;
	}
	for (uint32_t i = 0; i < e->len; i++)
		b[i] = cpat(e->name, i);
	for (int tries = 0;;) {
		uint64_t g0 = gen();
		ssize_t n = pwrite(fd, b, e->len, 0);
		struct stat sb;

		if (n == (ssize_t)e->len)
			break;
		if (n >= 0 || !again(errno, g0, &tries)) {
			fail("churn: write %s: %s", p,
			     n < 0 ? strerror(errno) : "short");
			break;
		}
		/* Refused: nothing landed. */
		do {
			g0 = gen();
			r = fstat(fd, &sb);
		} while (r < 0 && again(errno, g0, &tries));
		if (r == 0 && sb.st_size != 0)
			fail("churn: a write refused in a lock window left "
			     "%lld bytes", (long long)sb.st_size);
	}
	free(b);
	close(fd);
}

static void churn_step(int t, uint64_t *st, uint64_t *serial)
{
	struct churn_ent *e;
	char p[4096], q[4096];
	uint64_t k = below(st, 100);
	int i, r;

	if (nchurn[t] == 0 || (nchurn[t] < CHURN_MAX && k < 35)) {
		churn_create(t, st, serial);
		return;
	}
	i = (int)below(st, (uint64_t)nchurn[t]);
	e = &churn[t][i];
	snprintf(p, sizeof(p), "%s/d0/%s", top, e->name);
	if (k < 55) {			/* remove */
		LOCKED_CALL(r, e->isdir ? rmdir(p) : unlink(p));
		if (r == -2) {
			if (churn_exists(p) != 1)
				fail("churn: remove refused in a lock window "
				     "happened: %s", e->name);
			return;
		}
		if (r < 0) {
			fail("churn: remove %s: %s", p, strerror(errno));
			return;
		}
		*e = churn[t][--nchurn[t]];
	} else if (k < 75) {		/* rename: same prefix, new suffix */
		char nn[sizeof(e->name)], *u = strchr(e->name, '_') + 1;
		int k2;

		u += strcspn(u, "_");	/* keep "cT_N", change the rest */
		k2 = snprintf(nn, sizeof(nn), "%.*s_r%" PRIu64,
			      (int)(u - e->name), e->name, below(st, 1000));
		if (below(st, 3) == 0) {	/* long <-> short */
			nn[k2++] = '_';
			memset(nn + k2, 'x', LONG_PAD);
			nn[k2 + LONG_PAD] = '\0';
		}
		if (strcmp(nn, e->name) == 0)
			return;
		snprintf(q, sizeof(q), "%s/d0/%s", top, nn);
		LOCKED_CALL(r, rename(p, q));
		if (r == -2) {
			if (churn_exists(p) != 1 || churn_exists(q) != 0)
				fail("churn: rename refused in a lock window "
				     "happened: %s", e->name);
			return;
		}
		if (r < 0) {
			fail("churn: rename %s: %s", p, strerror(errno));
			return;
		}
		snprintf(e->name, sizeof(e->name), "%s", nn);
	} else if (!e->isdir) {
		churn_check_file(p, e->name, e->len);
	}
}

static void *churn_worker(void *arg)
{
	int t = (int)(intptr_t)arg;
	uint64_t st = seed * 15485863u + (uint64_t)t, serial = 0;

	while (!stopping()) {
		churn_step(t, &st, &serial);
		atomic_fetch_add(&S->ops, 1);
	}
	return NULL;
}

static bool name_ok(const char *dir, const char *n)
{
	unsigned long i;
	char c;

	if (strcmp(dir, "d0") == 0) {
		if (sscanf(n, "keep%lu%c", &i, &c) == 1)
			return i < NKEEP;
		return n[0] == 'c' && sscanf(n + 1, "%lu_%lu%c", &i, &i, &c) >= 2;
	}
	if (strcmp(dir, "sh") == 0)
		return sscanf(n, "s%lu%c", &i, &c) == 1 && i < NSHARED;
	return (n[0] == 'f' || n[0] == 'g') &&
	       sscanf(n + 1, "%lu%c", &i, &c) == 1 && i < (unsigned long)nfiles;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* List DIR/st/<d>: known names only, no duplicates, keep files present.
 * With want != NULL the listing must be exactly want[0..nwant). */
static bool list_dir(const char *d, char **want, size_t nwant)
{
	char p[4096], *names[512];
	size_t n = 0;
	struct dirent *de;
	bool ok = true;
	DIR *dh;
	uint64_t g0 = gen();

	snprintf(p, sizeof(p), "%s/%s", top, d);
	dh = opendir(p);
	if (dh == NULL) {
		if (!revoked_ok(errno, g0))
			fail("opendir %s: %s", p, strerror(errno));
		return false;
	}
	for (;;) {
		errno = 0;
		de = readdir(dh);
		if (de == NULL)
			break;
		if (strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		if (!name_ok(d, de->d_name)) {
			fail("%s lists an unknown name '%.60s'", d, de->d_name);
			ok = false;
			break;
		}
		if (n == sizeof(names) / sizeof(names[0])) {
			fail("%s lists too many names", d);
			ok = false;
			break;
		}
		names[n++] = strdup(de->d_name);
	}
	if (ok && errno != 0) {
		if (!revoked_ok(errno, g0))
			fail("readdir %s: %s", p, strerror(errno));
		ok = false;
	}
	closedir(dh);
	qsort(names, n, sizeof(names[0]), cmp_str);
	for (size_t i = 1; ok && i < n; i++) {
		if (strcmp(names[i - 1], names[i]) == 0) {
			fail("%s lists '%.60s' twice", d, names[i]);
			ok = false;
		}
	}
	for (int k = 0; ok && strcmp(d, "d0") == 0 && k < NKEEP; k++) {
		char kn[16];
		bool found = false;

		snprintf(kn, sizeof(kn), "keep%d", k);
		for (size_t i = 0; i < n && !found; i++)
			found = strcmp(names[i], kn) == 0;
		if (!found) {
			fail("d0 listing lacks %s", kn);
			ok = false;
		}
	}
	if (ok && want != NULL) {
		qsort(want, nwant, sizeof(want[0]), cmp_str);
		if (n != nwant)
			fail("%s lists %zu names, model %zu", d, n, nwant);
		for (size_t i = 0; n == nwant && i < n; i++) {
			if (strcmp(names[i], want[i]) != 0) {
				fail("%s lists '%.60s', model '%.60s'", d,
				     names[i], want[i]);
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	return ok;
}

static void *lister(void *arg)
{
	static const char *dirs[] = { "d0", "d1", "d2", "sh" };
	uint64_t st = seed * 2654435761u;

	(void)arg;
	while (!stopping()) {
		list_dir(dirs[below(&st, 4)], NULL, 0);
		if (below(&st, 8) == 0) {	/* a keep file's contents */
			char p[4096], kn[16];
			int k = (int)below(&st, NKEEP);

			snprintf(kn, sizeof(kn), "c%d_keep", k);
			snprintf(p, sizeof(p), "%s/d0/keep%d", top, k);
			churn_check_file(p, kn, (uint32_t)(k * 1111));
		}
		atomic_fetch_add(&S->ops, 1);
	}
	return NULL;
}

/* ---- lock controller ---- */

/* `cmkfs VERB MNT` (lock, unlock): its exit status, -1 if it did not run. */
static int run_cmkfs(const char *verb)
{
	char *argv[] = { (char *)"cmkfs", (char *)verb, (char *)mnt, NULL };
	posix_spawn_file_actions_t fa;
	extern char **environ;
	int status, e;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	e = posix_spawn(&pid, cmkfs, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (e != 0) {
		fail("spawn %s: %s", cmkfs, strerror(e));
		return -1;
	}
	if (waitpid(pid, &status, 0) != pid) {
		fail("waitpid: %s", strerror(errno));
		return -1;
	}
	if (WIFSIGNALED(status)) {
		fail("cmkfs %s killed by signal %d", verb, WTERMSIG(status));
		return -1;
	}
	return WEXITSTATUS(status);
}

/* One lock: no mmap op in flight; cmkfs lock; the mount refuses at once
 * and holds (key checks do not end a manual lock); cmkfs unlock; wait for
 * the resume. Returns 1 if the lock was seen, 0 if not, -1 on failure. */
static int lock_cycle(void)
{
	char p[4096];
	struct stat sb;
	int seen = 0, rc;
	double t0;

	snprintf(p, sizeof(p), "%s/d0/keep0", top);
	pthread_rwlock_wrlock(&S->gate);
	atomic_fetch_add(&S->lockgen, 1);	/* odd: window open */
	rc = run_cmkfs("lock");
	if (rc != 0) {
		fail("cmkfs lock %s exited %d", mnt, rc);
		goto out;
	}
	if (stat(p, &sb) < 0) {
		if (errno != EKEYREVOKED) {
			fail("stat while locked: %s, want EKEYREVOKED",
			     strerror(errno));
			goto out;
		}
		seen = 1;
	}
	nap(50);	/* the other threads meet the lock */
	rc = run_cmkfs("unlock");
	if (rc != 0) {
		fail("cmkfs unlock %s exited %d", mnt, rc);
		goto out;
	}
	t0 = now();
	while (stat(p, &sb) < 0) {
		if (errno != EKEYREVOKED) {
			fail("stat while locked: %s", strerror(errno));
			break;
		}
		if (now() - t0 > 120) {
			fail("no resume within 120 s of cmkfs unlock");
			break;
		}
		nap(20);
	}
	printf("# lock: %s, resumed %.2f s after cmkfs unlock\n",
	       seen ? "refused at once" : "not seen", now() - t0);
out:
	atomic_fetch_add(&S->lockgen, 1);	/* even: window closed */
	pthread_rwlock_unlock(&S->gate);
	return stopping() ? -1 : seen;
}

/* ---- setup, children, end ---- */

static int mkdirs(const char *base)
{
	static const char *sub[] = { "", "/d0", "/d1", "/d2", "/sh" };
	char p[4096];

	for (size_t i = 0; i < sizeof(sub) / sizeof(sub[0]); i++) {
		snprintf(p, sizeof(p), "%s%s", base, sub[i]);
		if (mkdir(p, 0755) < 0) {
			fprintf(stderr, "stress: mkdir %s: %s\n", p,
				strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int write_file(const char *p, const uint8_t *b, size_t n)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	int rc = 0;

	if (fd < 0)
		return -1;
	if (n > 0 && write(fd, b, n) != (ssize_t)n)
		rc = -1;
	if (close(fd) < 0)
		rc = -1;
	return rc;
}

static int setup(void)
{
	char p[4096];
	uint8_t *b = malloc(NKEEP * 1111 + 1);

	if (b == NULL || mkdirs(top) < 0 || mkdirs(expect) < 0)
		return -1;
	for (int k = 0; k < NKEEP; k++) {
		char kn[16];
		size_t n = (size_t)k * 1111;

		snprintf(kn, sizeof(kn), "c%d_keep", k);
		for (size_t i = 0; i < n; i++)
			b[i] = cpat(kn, i);
		snprintf(p, sizeof(p), "%s/d0/keep%d", top, k);
		if (write_file(p, b, n) < 0)
			return -1;
		snprintf(p, sizeof(p), "%s/d0/keep%d", expect, k);
		if (write_file(p, b, n) < 0)
			return -1;
	}
	free(b);
	for (int i = 0; i < nfiles; i++) {
		struct mfile *f = &F[i];

		pthread_mutex_init(&f->mu, NULL);
		f->idx = i;
		f->fd = -1;
		f->dir = 1;
		f->data = calloc(1, MAXSZ);
		if (f->data == NULL)
			return -1;
		mpath(f, p, sizeof(p));
		if (write_file(p, NULL, 0) < 0)
			return -1;
	}
	for (int k = 0; k < NSHARED; k++) {
		int fd;

		shpath(k, p, sizeof(p));
		fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd < 0 || ftruncate(fd, SH_SIZE) < 0 || close(fd) < 0)
			return -1;
	}
	return 0;
}

/* Final check of this process's model files, then their expected copies. */
static void finish_files(int owner)
{
	char p[4096];

	for (int i = 0; i < nfiles; i++) {
		struct mfile *f = &F[i];

		if (f->owner != owner)
			continue;
		if (f->fd >= 0)
			close(f->fd);
		f->fd = -1;
		mf_verify(f, "final compare");
		snprintf(p, sizeof(p), "%s/d%d/%c%d", expect, f->dir,
			 "fg"[f->alt], f->idx);
		if (write_file(p, f->data, f->size) < 0)
			fail("write %s: %s", p, strerror(errno));
	}
}

static void finish_shared(void)
{
	uint8_t *b = malloc(SH_SIZE);
	char p[4096];

	if (b == NULL)
		return;
	for (int k = 0; k < NSHARED; k++) {
		for (uint32_t g = 0; g < NGRAN; g++) {
			uint32_t v = atomic_load(&S->sf[k].done[g]);

			if (atomic_load(&S->sf[k].pend[g]) != v)
				fail("s%d: granule %u: write %u pending at "
				     "the end", k, g, v + 1);
			for (size_t i = 0; i < glen(g); i++)
				b[g * GRAN + i] = pat(sid(k), g * GRAN + i, v);
		}
		snprintf(p, sizeof(p), "%s/sh/s%d", expect, k);
		if (write_file(p, b, SH_SIZE) < 0)
			fail("write %s: %s", p, strerror(errno));
	}
	free(b);
}

static void finish_churn(void)
{
	char p[4096];
	uint8_t *b = malloc(3 * BS);

	if (b == NULL)
		return;
	for (int t = 0; t < CHURN_THREADS; t++) {
		for (int i = 0; i < nchurn[t]; i++) {
			struct churn_ent *e = &churn[t][i];

			if (snprintf(p, sizeof(p), "%s/d0/%s", expect,
				     e->name) >= (int)sizeof(p)) {
				fail("path too long: %s", expect);
				break;
			}
			if (e->isdir) {
				if (mkdir(p, 0755) < 0)
					fail("mkdir %s: %s", p,
					     strerror(errno));
				continue;
			}
			for (uint32_t j = 0; j < e->len; j++)
				b[j] = cpat(e->name, j);
			if (write_file(p, b, e->len) < 0)
				fail("write %s: %s", p, strerror(errno));
		}
	}
	free(b);
}

static int child_main(int c)
{
	struct worker w = { .owner = c, .id = 0 };
	struct shw sw = { .file = 0, .w = NWRITERS - 1 };
	bool writer = c == 1;

	if (pthread_create(&w.t, NULL, model_worker, &w) != 0 ||
	    (writer && pthread_create(&sw.t, NULL, sh_writer, &sw) != 0)) {
		fail("child %d: pthread_create", c);
		return 1;
	}
	pthread_join(w.t, NULL);
	if (writer)
		pthread_join(sw.t, NULL);
	finish_files(c);
	return atomic_load(&S->failed) ? 1 : 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: stress [-t SECS] [-s SEED] [-T THREADS] "
		"[-P PROCS] [-L CMKFS] [-l LOCKS] -e EXPECT DIR\n");
	exit(99);
}

int main(int argc, char **argv)
{
	int secs = 60, nthreads = 8, nprocs = 2, nlocks = 3, opt, seen = 0;
	struct worker *w;
	struct shw shw[NSHARED * (NWRITERS + 1)];
	pthread_t churn_t[CHURN_THREADS], list_t;
	pid_t kids[MAX_PROCS];
	char topbuf[4096];
	int nshw = 0, status;
	double t0;

	while ((opt = getopt(argc, argv, "t:s:T:P:L:l:e:")) != -1) {
		switch (opt) {
		case 't': secs = atoi(optarg); break;
		case 's': seed = strtoull(optarg, NULL, 10); break;
		case 'T': nthreads = atoi(optarg); break;
		case 'P': nprocs = atoi(optarg); break;
		case 'L': cmkfs = optarg; break;
		case 'l': nlocks = atoi(optarg); break;
		case 'e': expect = optarg; break;
		default: usage();
		}
	}
	if (optind != argc - 1 || expect == NULL || secs < 1 ||
	    nthreads < 1 || nthreads > 64 || nprocs < 1 || nprocs > MAX_PROCS)
		usage();
	mnt = argv[optind];
	snprintf(topbuf, sizeof(topbuf), "%s/st", mnt);
	top = topbuf;
	setvbuf(stdout, NULL, _IOLBF, 0);
	S = mmap(NULL, sizeof(*S), PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (S == MAP_FAILED)
		return 99;
	{
		/* Shared with the children; the lock controller must get its
		 * turn between mmap ops. */
		pthread_rwlockattr_t ra;

		pthread_rwlockattr_init(&ra);
		pthread_rwlockattr_setpshared(&ra, PTHREAD_PROCESS_SHARED);
		pthread_rwlockattr_setkind_np(&ra,
			PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&S->gate, &ra);
		pthread_rwlockattr_destroy(&ra);
	}
	nfiles = FILES_PARENT + nprocs * FILES_CHILD;
	for (int i = 0; i < nfiles; i++)
		F[i].owner = i < FILES_PARENT ? 0 :
				1 + (i - FILES_PARENT) / FILES_CHILD;
	if (setup() < 0) {
		fprintf(stderr, "stress: setup in %s: %s\n", top,
			strerror(errno));
		return 99;
	}
	/* Children first: fork before any thread exists. */
	for (int c = 1; c <= nprocs; c++) {
		kids[c - 1] = fork();
		if (kids[c - 1] < 0)
			return 99;
		if (kids[c - 1] == 0)
			_exit(child_main(c));
	}
	w = calloc((size_t)nthreads, sizeof(*w));
	if (w == NULL)
		return 99;
	for (int i = 0; i < nthreads; i++) {
		w[i].owner = 0;
		w[i].id = i;
		if (pthread_create(&w[i].t, NULL, model_worker, &w[i]) != 0)
			fail("pthread_create");
	}
	for (int k = 0; k < NSHARED; k++) {
		for (int j = 0; j <= NWRITERS; j++) {
			if (k == 0 && j == NWRITERS - 1)
				continue;	/* a child process writes it */
			shw[nshw].file = k;
			shw[nshw].w = j < NWRITERS ? j : -1;
			if (pthread_create(&shw[nshw].t, NULL,
					   j < NWRITERS ? sh_writer : sh_reader,
					   &shw[nshw]) != 0)
				fail("pthread_create");
			nshw++;
		}
	}
	for (int t = 0; t < CHURN_THREADS; t++)
		if (pthread_create(&churn_t[t], NULL, churn_worker,
				   (void *)(intptr_t)t) != 0)
			fail("pthread_create");
	if (pthread_create(&list_t, NULL, lister, NULL) != 0)
		fail("pthread_create");

	t0 = now();
	for (int i = 0, done = 0; !stopping() && now() - t0 < secs;) {
		/* Locks at (i + 1) / (nlocks + 1) of the run, and one more for
		 * each that the key check resumed before anything saw it. */
		if (cmkfs != NULL && done < nlocks && i < 2 * nlocks &&
		    now() - t0 >= (double)secs * (done + 1) / (nlocks + 1)) {
			int r = lock_cycle();

			i++;
			if (r > 0) {
				done++;
				seen++;
			}
			continue;
		}
		nap(50);
	}
	atomic_store(&S->stop, 1);
	for (int i = 0; i < nthreads; i++)
		pthread_join(w[i].t, NULL);
	free(w);
	for (int i = 0; i < nshw; i++)
		pthread_join(shw[i].t, NULL);
	for (int t = 0; t < CHURN_THREADS; t++)
		pthread_join(churn_t[t], NULL);
	pthread_join(list_t, NULL);
	for (int c = 0; c < nprocs; c++) {
		if (waitpid(kids[c], &status, 0) != kids[c] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fail("child %d failed (status %#x)", c + 1, status);
	}
	if (!atomic_load(&S->failed)) {
		char *want[MAX_FILES];
		char nb[MAX_FILES][NAME_MAX + 1];

		finish_files(0);
		finish_shared();
		finish_churn();
		/* Listings equal the model (children dumped their paths). */
		for (int d = 1; d <= 2; d++) {
			size_t n = 0;
			char p[4096];
			DIR *dh;
			struct dirent *de;

			snprintf(p, sizeof(p), "%s/d%d", expect, d);
			dh = opendir(p);
			while (dh != NULL && (de = readdir(dh)) != NULL) {
				if (de->d_name[0] == '.')
					continue;
				snprintf(nb[n], sizeof(nb[n]), "%s", de->d_name);
				want[n] = nb[n];
				n++;
			}
			if (dh != NULL)
				closedir(dh);
			list_dir(d == 1 ? "d1" : "d2", want, n);
		}
	}
	if (cmkfs != NULL && nlocks > 0 && seen == 0)
		fail("no lock was seen: every cmkfs lock resumed before a "
		     "stat");
	if (cmkfs != NULL && nlocks > 0 && atomic_load(&S->revoked) == 0)
		fail("no operation saw EKEYREVOKED during the locks");
	printf("# %d threads, %d processes, %d s, seed %" PRIu64 ": %" PRIu64
	       " ops, %d locks seen, %" PRIu64 " EKEYREVOKED in windows, %"
	       PRIu64 " short writes\n", nthreads, nprocs, secs, seed,
	       atomic_load(&S->ops), seen, atomic_load(&S->revoked),
	       atomic_load(&S->short_writes));
	printf("stress: %" PRIu64 " passed, %d failed\n",
	       atomic_load(&S->ops), atomic_load(&S->failed));
	return atomic_load(&S->failed) ? 1 : 0;
}
