/*
 * fsx.c - randomized, model-based file system exerciser.
 *
 * Written from scratch in the spirit of fsx from xfstests.  A number of
 * files is created in a fresh subdirectory "fsx.XXXXXX" of DIR and an
 * in-memory model (byte array + size) is kept for each of them.  Random
 * operations are applied to both the real files and the model, and every
 * result is checked against the model:
 *
 *   write      pwrite at a random offset (possibly past EOF: holes must
 *              read back as zeros)
 *   read       pread of a random range (inside the file, across EOF and
 *              past EOF: the exact short count is checked)
 *   truncate   ftruncate up and down (mid-block, on block boundaries, 0)
 *   fallocate  mode 0 (extends the size past EOF)
 *   falloc_keep FALLOC_FL_KEEP_SIZE (size must not change)
 *   append     write through a second, O_APPEND file descriptor
 *   reopen     close and reopen the file, sometimes with O_TRUNC
 *   fsync      fsync or fdatasync
 *   mapread    MAP_SHARED read-only mmap of a range (and the zeroed tail
 *              of the page that contains EOF)
 *   mapwrite   MAP_SHARED read-write mmap of a range, msync, then pread
 *   punch      FALLOC_FL_PUNCH_HOLE | KEEP_SIZE inside the file (-H only)
 *   zero       FALLOC_FL_ZERO_RANGE, possibly past EOF (-H only)
 *
 * After every operation fstat() must report the model size; every 1000
 * operations and at the end the whole of every file is compared with its
 * model.  Offsets and lengths are biased towards 4096-byte block
 * boundaries (+-1, +-56), tiny lengths (1..17) and lengths spanning many
 * blocks (up to 256 KiB).  The random generator is private and seeded
 * from -s, so a run is reproducible for a given seed on a correct file
 * system.
 *
 * If fallocate fails with EOPNOTSUPP the first time it is tried, that
 * fallocate mode is disabled and reported in the summary (not a failure).
 *
 * On the first error the last 20 operations are printed, the test
 * directory is left in place for inspection and fsx exits with 1.
 *
 * Usage: fsx [-n OPS] [-s SEED] [-N NFILES] [-m MAXLEN] [-f STOPFILE]
 *            [-k MODELDIR] DIR
 *   -n OPS     number of operations (default 100000)
 *   -s SEED    random seed (default 1)
 *   -N NFILES  number of files (default 3)
 *   -m MAXLEN  maximum file length, K/M/G suffixes allowed (default 8M)
 *   -f STOPFILE run until STOPFILE exists, then 1000 more operations
 *              (-n is then only the upper bound); for a load that must
 *              run across another command and go on after it ended
 *   -k MODELDIR keep the files at the end and write each model to
 *              MODELDIR/fN (the size is the model's), so that a later
 *              remount can be compared with what fsx expected
 *   -H         also punch holes and zero ranges (fstests generic/014,
 *              129, 130 spirit); off by default so that the sequences of
 *              the other seeds stay as they were
 *
 * Example: ./fsx -n 100000 -s 42 /mnt/cmkfs
 *
 * Exit status: 0 all passed, 1 failure, 77 DIR is unusable (skip),
 * 99 usage or internal error (bad arguments, out of memory).
 * The last line is "fsx: N passed, M failed" (N counts operations).
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define BS		4096ULL
#define MAX_OP_LEN	(256ULL * 1024)
#define LOG_SIZE	20
#define FULL_EVERY	1000
#define MAX_FILES	64

enum {
	OP_WRITE,
	OP_READ,
	OP_TRUNC,
	OP_FALLOC,
	OP_FALLOC_KEEP,
	OP_APPEND,
	OP_REOPEN,
	OP_FSYNC,
	OP_MAPREAD,
	OP_MAPWRITE,
	OP_PUNCH,
	OP_ZERO,
	OP_NR
};

static const char *const op_names[OP_NR] = {
	[OP_WRITE]	= "write",
	[OP_READ]	= "read",
	[OP_TRUNC]	= "truncate",
	[OP_FALLOC]	= "fallocate",
	[OP_FALLOC_KEEP] = "falloc_keep",
	[OP_APPEND]	= "append",
	[OP_REOPEN]	= "reopen",
	[OP_FSYNC]	= "fsync",
	[OP_MAPREAD]	= "mapread",
	[OP_MAPWRITE]	= "mapwrite",
	[OP_PUNCH]	= "punch",
	[OP_ZERO]	= "zero",
};

/* relative frequency of each operation */
/* OP_PUNCH and OP_ZERO weigh 0 unless -H */
static unsigned int op_weights[OP_NR] = {
	[OP_WRITE]	= 22,
	[OP_READ]	= 22,
	[OP_TRUNC]	= 8,
	[OP_FALLOC]	= 4,
	[OP_FALLOC_KEEP] = 4,
	[OP_APPEND]	= 7,
	[OP_REOPEN]	= 3,
	[OP_FSYNC]	= 2,
	[OP_MAPREAD]	= 8,
	[OP_MAPWRITE]	= 5,
};

struct tfile {
	char path[PATH_MAX];
	int fd;			/* O_RDWR */
	int afd;		/* O_WRONLY | O_APPEND */
	unsigned char *model;	/* maxlen bytes, zero beyond size */
	uint64_t size;
};

struct logent {
	uint64_t opnum;
	int op;
	int file;
	uint64_t off;
	uint64_t len;
	uint64_t size_before;
	uint64_t size_after;
	const char *note;
};

static struct tfile files[MAX_FILES];
static unsigned int nfiles = 3;
static uint64_t maxlen = 8ULL * 1024 * 1024;
static uint64_t nops = 100000;
static uint64_t seed = 1;
static char testdir[PATH_MAX];
static const char *stopfile;
static const char *modeldir;
static size_t pagesize;

static uint64_t rng_state;
static uint64_t opnum;
static uint64_t passed;
static uint64_t op_count[OP_NR];
static uint64_t full_compares;
static int falloc_disabled[2];	/* [0] mode 0, [1] KEEP_SIZE */
static int falloc_tried[2];
static int in_full_compare;

static struct logent oplog[LOG_SIZE];
static uint64_t nlogged;

static unsigned char *buf;	/* data to write, MAX_OP_LEN */
static unsigned char *rbuf;	/* data read back, MAX_OP_LEN */

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

/* ------------------------------------------------------------------ */
/* random numbers                                                      */

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* xorshift64* */
static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dULL;
}

/* uniform in [0, n), 0 if n == 0 */
static uint64_t rnd_below(uint64_t n)
{
	if (n == 0)
		return 0;
	return (uint64_t)(((unsigned __int128)rnd() * n) >> 64);
}

/* fill with pseudo random bytes derived from one 64-bit seed */
static void fill_data(unsigned char *p, size_t n, uint64_t s)
{
	uint64_t v;

	while (n >= 8) {
		v = splitmix64(&s);
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		v = splitmix64(&s);
		memcpy(p, &v, n);
	}
}

/* ------------------------------------------------------------------ */
/* reporting                                                           */

static struct logent *log_op(int op, int fi, uint64_t off, uint64_t len)
{
	struct logent *e = &oplog[nlogged % LOG_SIZE];

	e->opnum = opnum;
	e->op = op;
	e->file = fi;
	e->off = off;
	e->len = len;
	e->size_before = files[fi].size;
	e->size_after = files[fi].size;
	e->note = "";
	nlogged++;
	return e;
}

static void dump_log(void)
{
	uint64_t i, first;
	struct logent *e;

	first = nlogged > LOG_SIZE ? nlogged - LOG_SIZE : 0;
	fprintf(stderr, "fsx: last %" PRIu64 " operations (oldest first):\n",
		nlogged - first);
	fprintf(stderr, "  %8s %-11s %4s %12s %10s %12s -> %-12s\n",
		"op#", "op", "file", "offset", "len", "size", "new size");
	for (i = first; i < nlogged; i++) {
		e = &oplog[i % LOG_SIZE];
		fprintf(stderr,
			"  %8" PRIu64 " %-11s f%-3d %12" PRIu64 " %10" PRIu64
			" %12" PRIu64 " -> %-12" PRIu64 " %s\n",
			e->opnum, op_names[e->op], e->file, e->off, e->len,
			e->size_before, e->size_after, e->note);
	}
}

static void print_counts(void)
{
	int i;

	printf("fsx: op counts:");
	for (i = 0; i < OP_NR; i++)
		printf(" %s=%" PRIu64, op_names[i], op_count[i]);
	printf(" fullcompare=%" PRIu64 "\n", full_compares);
	if (falloc_disabled[0])
		printf("fsx: note: fallocate mode 0 not supported "
		       "(EOPNOTSUPP), op disabled\n");
	if (falloc_disabled[1])
		printf("fsx: note: fallocate FALLOC_FL_KEEP_SIZE not supported "
		       "(EOPNOTSUPP), op disabled\n");
}

static void fail(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void fail(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "fsx: FAIL at %sop #%" PRIu64 ": ",
		in_full_compare ? "full compare after " : "", opnum);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	dump_log();
	fprintf(stderr, "fsx: files left in %s\n", testdir);
	fprintf(stderr, "fsx: reproduce with: fsx -n %" PRIu64 " -s %" PRIu64
		" -N %u -m %" PRIu64 " DIR\n", nops, seed, nfiles, maxlen);
	print_counts();
	printf("fsx: %" PRIu64 " passed, 1 failed\n", passed);
	exit(1);
}

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fsx: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(99);
}

/*
 * Compare n bytes read from file fi at offset off with the model and fail
 * with the first differing byte.  'what' names the operation.
 */
static void check_data(const char *what, int fi, uint64_t off,
		       const unsigned char *got, uint64_t n)
{
	const unsigned char *exp = files[fi].model + off;
	uint64_t i, first, nbad = 0;

	if (memcmp(got, exp, n) == 0)
		return;
	for (i = 0; i < n; i++)
		if (got[i] != exp[i])
			break;
	first = i;
	for (; i < n; i++)
		if (got[i] != exp[i])
			nbad++;
	fail("%s f%d: data mismatch at offset %" PRIu64 " (0x%" PRIx64
	     ", checked range %" PRIu64 "+%" PRIu64 ", model size %" PRIu64
	     "): expected 0x%02x got 0x%02x, %" PRIu64 " bytes differ",
	     what, fi, off + first, off + first, off, n, files[fi].size,
	     exp[first], got[first], nbad);
}

/* ------------------------------------------------------------------ */
/* SIGBUS-safe access to mappings                                      */

static void bus_handler(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* memcpy that returns -1 instead of dying when it hits SIGBUS */
static int guarded_copy(void *dst, const void *src, size_t n)
{
	if (sigsetjmp(bus_jmp, 1)) {
		bus_armed = 0;
		return -1;
	}
	bus_armed = 1;
	memcpy(dst, src, n);
	bus_armed = 0;
	return 0;
}

/* ------------------------------------------------------------------ */
/* offset / length generators                                          */

static int64_t small_delta(void)
{
	switch (rnd_below(10)) {
	case 0:
	case 1:
	case 2:
	case 3:
		return 0;
	case 4:
		return -1;
	case 5:
		return 1;
	case 6:
		return -56;
	case 7:
		return 56;
	default:
		return (int64_t)rnd_below(2 * BS) - (int64_t)BS;
	}
}

static uint64_t clamp(int64_t v, uint64_t lo, uint64_t hi)
{
	if (v < (int64_t)lo)
		return lo;
	if ((uint64_t)v > hi)
		return hi;
	return (uint64_t)v;
}

/* an offset in [0, limit] biased towards block boundaries and EOF */
static uint64_t gen_offset(const struct tfile *f, uint64_t limit)
{
	int64_t o;

	switch (rnd_below(10)) {
	case 0:
	case 1:
	case 2:
	case 3:
		/* block boundary anywhere */
		o = (int64_t)(rnd_below(limit / BS + 1) * BS) + small_delta();
		break;
	case 4:
	case 5:
		/* around the current EOF */
		o = (int64_t)f->size + small_delta() +
		    ((int64_t)rnd_below(5) - 2) * (int64_t)BS;
		break;
	case 6:
	case 7:
		/* the first few blocks */
		o = (int64_t)(rnd_below(4) * BS) + small_delta();
		break;
	default:
		o = (int64_t)rnd_below(limit + 1);
		break;
	}
	return clamp(o, 0, limit);
}

/* a length in [1, MAX_OP_LEN] */
static uint64_t gen_len(void)
{
	int64_t l;

	switch (rnd_below(10)) {
	case 0:
	case 1:
	case 2:
		l = 1 + (int64_t)rnd_below(17);
		break;
	case 3:
	case 4:
	case 5:
		l = (int64_t)((1 + rnd_below(4)) * BS) + small_delta();
		break;
	case 6:
	case 7:
		l = 1 + (int64_t)rnd_below(16 * BS);
		break;
	case 8:
		l = (int64_t)((1 + rnd_below(MAX_OP_LEN / BS)) * BS) +
		    small_delta();
		break;
	default:
		l = 1 + (int64_t)rnd_below(MAX_OP_LEN);
		break;
	}
	return clamp(l, 1, MAX_OP_LEN);
}

/* a range [off, off+len) with len >= 1 inside [0, maxlen) */
static void gen_range(const struct tfile *f, uint64_t *off, uint64_t *len)
{
	*off = gen_offset(f, maxlen - 1);
	*len = gen_len();
	if (*off + *len > maxlen)
		*len = maxlen - *off;
}

/* a range inside [0, size) of a non-empty file */
static void gen_range_inside(const struct tfile *f, uint64_t *off,
			     uint64_t *len)
{
	*off = gen_offset(f, f->size - 1);
	if (rnd_below(4) == 0) {
		/* up to EOF */
		*len = f->size - *off;
		if (*len > MAX_OP_LEN)
			*len = MAX_OP_LEN;
		return;
	}
	*len = gen_len();
	if (*off + *len > f->size)
		*len = f->size - *off;
}

/* ------------------------------------------------------------------ */
/* file helpers                                                        */

static void model_set_size(struct tfile *f, uint64_t newsize)
{
	if (newsize < f->size)
		memset(f->model + newsize, 0, f->size - newsize);
	f->size = newsize;
}

static void check_size(int fi, const char *what)
{
	struct tfile *f = &files[fi];
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		fail("%s f%d: fstat: %s", what, fi, strerror(errno));
	if (!S_ISREG(st.st_mode))
		fail("%s f%d: fstat: not a regular file (mode 0%o)", what, fi,
		     (unsigned int)st.st_mode);
	if ((uint64_t)st.st_size != f->size)
		fail("%s f%d: fstat: size expected %" PRIu64 " got %" PRIu64,
		     what, fi, f->size, (uint64_t)st.st_size);
}

/* pread exactly the expected count, fail otherwise */
static void do_pread(const char *what, int fi, unsigned char *dst,
		     uint64_t off, uint64_t len, uint64_t expect)
{
	ssize_t r;

	r = pread(files[fi].fd, dst, len, (off_t)off);
	if (r < 0)
		fail("%s f%d: pread offset %" PRIu64 " len %" PRIu64 ": %s",
		     what, fi, off, len, strerror(errno));
	if ((uint64_t)r != expect)
		fail("%s f%d: pread offset %" PRIu64 " len %" PRIu64
		     " (size %" PRIu64 "): expected %" PRIu64
		     " bytes, got %zd", what, fi, off, len, files[fi].size,
		     expect, r);
}

static void open_file(int fi, int trunc)
{
	struct tfile *f = &files[fi];

	f->fd = open(f->path, O_RDWR | (trunc ? O_TRUNC : 0));
	if (f->fd < 0)
		fail("reopen f%d: open(%s%s): %s", fi, f->path,
		     trunc ? ", O_TRUNC" : "", strerror(errno));
}

static void open_append(int fi)
{
	struct tfile *f = &files[fi];

	f->afd = open(f->path, O_WRONLY | O_APPEND);
	if (f->afd < 0)
		fail("reopen f%d: open(%s, O_APPEND): %s", fi, f->path,
		     strerror(errno));
}

/* ------------------------------------------------------------------ */
/* operations                                                          */

static void op_write(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off, len;
	struct logent *e;
	ssize_t r;

	gen_range(f, &off, &len);
	e = log_op(OP_WRITE, fi, off, len);
	fill_data(buf, len, rnd());
	r = pwrite(f->fd, buf, len, (off_t)off);
	if (r < 0)
		fail("write f%d: pwrite offset %" PRIu64 " len %" PRIu64
		     ": %s", fi, off, len, strerror(errno));
	if ((uint64_t)r != len)
		fail("write f%d: pwrite offset %" PRIu64 " len %" PRIu64
		     ": short write, expected %" PRIu64 " got %zd",
		     fi, off, len, len, r);
	memcpy(f->model + off, buf, len);
	if (off + len > f->size)
		f->size = off + len;
	e->size_after = f->size;
	if (off > e->size_before)
		e->note = "(hole)";
}

static void op_read(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off, len, expect;
	struct logent *e;

	if (f->size > 0 && rnd_below(5) != 0) {
		gen_range_inside(f, &off, &len);
	} else {
		/* anywhere, possibly crossing or past EOF */
		off = gen_offset(f, f->size + BS);
		len = gen_len();
	}
	e = log_op(OP_READ, fi, off, len);
	expect = 0;
	if (off < f->size)
		expect = f->size - off < len ? f->size - off : len;
	if (expect < len)
		e->note = "(EOF)";
	do_pread("read", fi, rbuf, off, len, expect);
	check_data("read", fi, off, rbuf, expect);
}

static void op_trunc(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t newsize;
	struct logent *e;
	int64_t v;

	switch (rnd_below(8)) {
	case 0:
		v = rnd_below(2) ? 0 : (int64_t)rnd_below(BS);
		break;
	case 1:
	case 2:
		v = (int64_t)(rnd_below(maxlen / BS + 1) * BS);
		break;
	case 3:
		v = (int64_t)rnd_below(maxlen + 1);
		break;
	case 4:
	case 5:
		v = (int64_t)f->size + small_delta();
		break;
	case 6:
		v = (int64_t)(f->size / 2) + small_delta();
		break;
	default:
		v = (int64_t)f->size + (int64_t)gen_len() *
		    (rnd_below(2) ? 1 : -1);
		break;
	}
	newsize = clamp(v, 0, maxlen);
	e = log_op(OP_TRUNC, fi, newsize, 0);
	e->note = newsize < f->size ? "(down)" :
		  newsize > f->size ? "(up)" : "(same)";
	if (ftruncate(f->fd, (off_t)newsize) < 0)
		fail("truncate f%d: ftruncate to %" PRIu64 " (from %" PRIu64
		     "): %s", fi, newsize, f->size, strerror(errno));
	model_set_size(f, newsize);
	e->size_after = f->size;
}

/* returns 0 if the op was done, -1 if the mode turned out unsupported */
static int op_falloc(int fi, int keep)
{
	struct tfile *f = &files[fi];
	int op = keep ? OP_FALLOC_KEEP : OP_FALLOC;
	uint64_t off, len;
	struct logent *e;

	gen_range(f, &off, &len);
	e = log_op(op, fi, off, len);
	if (fallocate(f->fd, keep ? FALLOC_FL_KEEP_SIZE : 0, (off_t)off,
		      (off_t)len) < 0) {
		if (errno == EOPNOTSUPP && !falloc_tried[keep]) {
			falloc_disabled[keep] = 1;
			falloc_tried[keep] = 1;
			e->note = "(EOPNOTSUPP, disabled)";
			return -1;
		}
		fail("%s f%d: fallocate(%s) offset %" PRIu64 " len %" PRIu64
		     ": %s", op_names[op], fi, keep ? "KEEP_SIZE" : "0", off,
		     len, strerror(errno));
	}
	falloc_tried[keep] = 1;
	if (!keep && off + len > f->size)
		f->size = off + len;
	if (off + len > e->size_before)
		e->note = "(past EOF)";
	e->size_after = f->size;
	return 0;
}

/* PUNCH_HOLE|KEEP_SIZE inside the file, or ZERO_RANGE anywhere: the
 * range reads as zeros after; ZERO_RANGE may grow the file. */
static void op_punch(int fi, int zero)
{
	struct tfile *f = &files[fi];
	int op = zero ? OP_ZERO : OP_PUNCH;
	int mode = zero ? FALLOC_FL_ZERO_RANGE :
			  FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	uint64_t off, len, end;
	struct logent *e;

	if (zero)
		gen_range(f, &off, &len);
	else
		gen_range_inside(f, &off, &len);
	e = log_op(op, fi, off, len);
	if (fallocate(f->fd, mode, (off_t)off, (off_t)len) < 0)
		fail("%s f%d: offset %" PRIu64 " len %" PRIu64 ": %s",
		     op_names[op], fi, off, len, strerror(errno));
	end = off + len;
	if (zero && end > f->size) {
		e->note = "(past EOF)";
		model_set_size(f, end);
	}
	if (off < f->size)
		memset(f->model + off, 0,
		       (end < f->size ? end : f->size) - off);
	e->size_after = f->size;
}

static void op_append(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t len;
	struct logent *e;
	struct stat st;
	off_t pos;
	ssize_t r;

	len = gen_len();
	if (len > maxlen - f->size)
		len = maxlen - f->size;
	e = log_op(OP_APPEND, fi, f->size, len);
	fill_data(buf, len, rnd());
	r = write(f->afd, buf, len);
	if (r < 0)
		fail("append f%d: write len %" PRIu64 " at EOF %" PRIu64
		     ": %s", fi, len, f->size, strerror(errno));
	if ((uint64_t)r != len)
		fail("append f%d: write at EOF %" PRIu64 ": short write, "
		     "expected %" PRIu64 " got %zd", fi, f->size, len, r);
	memcpy(f->model + f->size, buf, len);
	f->size += len;
	e->size_after = f->size;
	pos = lseek(f->afd, 0, SEEK_CUR);
	if (pos < 0 || (uint64_t)pos != f->size)
		fail("append f%d: file offset after O_APPEND write expected %"
		     PRIu64 " got %lld", fi, f->size, (long long)pos);
	if (fstat(f->afd, &st) < 0)
		fail("append f%d: fstat(append fd): %s", fi, strerror(errno));
	if ((uint64_t)st.st_size != f->size)
		fail("append f%d: fstat(append fd): size expected %" PRIu64
		     " got %" PRIu64, fi, f->size, (uint64_t)st.st_size);
}

static void op_reopen(int fi)
{
	struct tfile *f = &files[fi];
	int trunc = rnd_below(5) == 0;
	int reappend = rnd_below(2) == 0;
	struct logent *e;

	e = log_op(OP_REOPEN, fi, 0, 0);
	e->note = trunc ? "(O_TRUNC)" : "";
	if (close(f->fd) < 0)
		fail("reopen f%d: close: %s", fi, strerror(errno));
	f->fd = -1;
	if (reappend) {
		if (close(f->afd) < 0)
			fail("reopen f%d: close(append fd): %s", fi,
			     strerror(errno));
		f->afd = -1;
	}
	open_file(fi, trunc);
	if (reappend)
		open_append(fi);
	if (trunc)
		model_set_size(f, 0);
	e->size_after = f->size;
}

static void op_fsync(int fi)
{
	struct tfile *f = &files[fi];
	int data = rnd_below(2);
	struct logent *e;

	e = log_op(OP_FSYNC, fi, 0, 0);
	e->note = data ? "(fdatasync)" : "(fsync)";
	if ((data ? fdatasync(f->fd) : fsync(f->fd)) < 0)
		fail("fsync f%d: %s: %s", fi, data ? "fdatasync" : "fsync",
		     strerror(errno));
}

static void op_mapread(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off, len, moff, mlen, end, tail = 0, i;
	struct logent *e;
	unsigned char *map;

	gen_range_inside(f, &off, &len);
	e = log_op(OP_MAPREAD, fi, off, len);
	moff = off & ~((uint64_t)pagesize - 1);
	end = off + len;
	/* also look at the zero-filled rest of the page holding EOF */
	if (end == f->size && f->size % pagesize) {
		tail = pagesize - f->size % pagesize;
		e->note = "(EOF page)";
	}
	mlen = end + tail - moff;
	map = mmap(NULL, mlen, PROT_READ, MAP_SHARED, f->fd, (off_t)moff);
	if (map == MAP_FAILED)
		fail("mapread f%d: mmap offset %" PRIu64 " len %" PRIu64
		     ": %s", fi, moff, mlen, strerror(errno));
	if (guarded_copy(rbuf, map + (off - moff), len + tail) < 0)
		fail("mapread f%d: SIGBUS reading mapping at offset %" PRIu64
		     " len %" PRIu64 " (size %" PRIu64 ")", fi, off, len,
		     f->size);
	if (munmap(map, mlen) < 0)
		fail("mapread f%d: munmap: %s", fi, strerror(errno));
	check_data("mapread", fi, off, rbuf, len);
	for (i = 0; i < tail; i++)
		if (rbuf[len + i])
			fail("mapread f%d: mapped page past EOF not zero at "
			     "offset %" PRIu64 ": expected 0x00 got 0x%02x",
			     fi, end + i, rbuf[len + i]);
}

static void op_mapwrite(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off, len, moff, mlen;
	unsigned char *map;

	gen_range_inside(f, &off, &len);
	log_op(OP_MAPWRITE, fi, off, len);
	moff = off & ~((uint64_t)pagesize - 1);
	mlen = off + len - moff;
	fill_data(buf, len, rnd());
	map = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, f->fd,
		   (off_t)moff);
	if (map == MAP_FAILED)
		fail("mapwrite f%d: mmap offset %" PRIu64 " len %" PRIu64
		     ": %s", fi, moff, mlen, strerror(errno));
	if (guarded_copy(map + (off - moff), buf, len) < 0)
		fail("mapwrite f%d: SIGBUS writing mapping at offset %" PRIu64
		     " len %" PRIu64 " (size %" PRIu64 ")", fi, off, len,
		     f->size);
	if (msync(map, mlen, MS_SYNC) < 0)
		fail("mapwrite f%d: msync offset %" PRIu64 " len %" PRIu64
		     ": %s", fi, moff, mlen, strerror(errno));
	if (munmap(map, mlen) < 0)
		fail("mapwrite f%d: munmap: %s", fi, strerror(errno));
	memcpy(f->model + off, buf, len);
	do_pread("mapwrite", fi, rbuf, off, len, len);
	check_data("mapwrite (pread after msync)", fi, off, rbuf, len);
}

static void full_compare(int fi)
{
	struct tfile *f = &files[fi];
	uint64_t off, n;

	check_size(fi, "fullcompare");
	for (off = 0; off < f->size; off += n) {
		n = f->size - off < MAX_OP_LEN ? f->size - off : MAX_OP_LEN;
		do_pread("fullcompare", fi, rbuf, off, n, n);
		check_data("fullcompare", fi, off, rbuf, n);
	}
	/* nothing past EOF */
	do_pread("fullcompare", fi, rbuf, f->size, 1, 0);
}

static void full_compare_all(void)
{
	unsigned int i;

	in_full_compare = 1;
	for (i = 0; i < nfiles; i++)
		full_compare((int)i);
	in_full_compare = 0;
	full_compares++;
}

/* pick an operation that makes sense for the file's current state */
static int pick_op(const struct tfile *f)
{
	unsigned int total = 0, r;
	int op;

	for (op = 0; op < OP_NR; op++)
		total += op_weights[op];
	for (;;) {
		r = (unsigned int)rnd_below(total);
		for (op = 0; op < OP_NR; op++) {
			if (r < op_weights[op])
				break;
			r -= op_weights[op];
		}
		if (op == OP_FALLOC && falloc_disabled[0])
			continue;
		if (op == OP_FALLOC_KEEP && falloc_disabled[1])
			continue;
		if ((op == OP_MAPREAD || op == OP_MAPWRITE || op == OP_PUNCH) &&
		    f->size == 0)
			continue;
		if (op == OP_APPEND && f->size >= maxlen)
			continue;
		return op;
	}
}

static void run_op(int fi)
{
	int op = pick_op(&files[fi]);

	switch (op) {
	case OP_WRITE:
		op_write(fi);
		break;
	case OP_READ:
		op_read(fi);
		break;
	case OP_TRUNC:
		op_trunc(fi);
		break;
	case OP_FALLOC:
	case OP_FALLOC_KEEP:
		if (op_falloc(fi, op == OP_FALLOC_KEEP) < 0) {
			/* unsupported: do something else instead */
			run_op(fi);
			return;
		}
		break;
	case OP_PUNCH:
	case OP_ZERO:
		op_punch(fi, op == OP_ZERO);
		break;
	case OP_APPEND:
		op_append(fi);
		break;
	case OP_REOPEN:
		op_reopen(fi);
		break;
	case OP_FSYNC:
		op_fsync(fi);
		break;
	case OP_MAPREAD:
		op_mapread(fi);
		break;
	case OP_MAPWRITE:
		op_mapwrite(fi);
		break;
	}
	op_count[op]++;
	check_size(fi, op_names[op]);
}

/* ------------------------------------------------------------------ */
/* setup                                                               */

static int parse_u64(const char *s, uint64_t *out, int suffixes)
{
	unsigned long long v;
	uint64_t mult = 1;
	char *end;

	if (!*s || *s == '-')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s)
		return -1;
	if (suffixes && *end) {
		switch (*end) {
		case 'k':
		case 'K':
			mult = 1024;
			break;
		case 'm':
		case 'M':
			mult = 1024 * 1024;
			break;
		case 'g':
		case 'G':
			mult = 1024 * 1024 * 1024;
			break;
		default:
			return -1;
		}
		end++;
	}
	if (*end)
		return -1;
	if (v > UINT64_MAX / mult)
		return -1;
	*out = (uint64_t)v * mult;
	return 0;
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr,
		"usage: fsx [-n OPS] [-s SEED] [-N NFILES] [-m MAXLEN] DIR\n"
		"  -n OPS     number of operations (default 100000)\n"
		"  -s SEED    random seed (default 1)\n"
		"  -N NFILES  number of files, 1..%d (default 3)\n"
		"  -m MAXLEN  maximum file length, K/M/G suffix (default 8M)\n"
		"  -f STOPFILE run until STOPFILE exists, then 1000 more ops\n"
		"  -k MODELDIR keep the files, write each model to MODELDIR/fN\n"
		"  -H         also punch holes and zero ranges\n",
		MAX_FILES);
	exit(99);
}

/* the model of file i as MODELDIR/fi, written whole or fsx fails */
static void save_model(unsigned int i)
{
	char path[PATH_MAX];
	uint64_t done = 0;
	ssize_t r;
	int fd, n;

	n = snprintf(path, sizeof(path), "%s/f%u", modeldir, i);
	if (n < 0 || (size_t)n >= sizeof(path))
		die("model path too long");
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		die("open %s: %s", path, strerror(errno));
	while (done < files[i].size) {
		r = write(fd, files[i].model + done, files[i].size - done);
		if (r <= 0)
			die("write %s: %s", path,
			    r < 0 ? strerror(errno) : "short write");
		done += (uint64_t)r;
	}
	if (close(fd) < 0)
		die("close %s: %s", path, strerror(errno));
}

static void cleanup(void)
{
	unsigned int i;

	for (i = 0; i < nfiles; i++) {
		if (files[i].fd >= 0 && close(files[i].fd) < 0)
			fail("cleanup f%u: close: %s", i, strerror(errno));
		if (files[i].afd >= 0 && close(files[i].afd) < 0)
			fail("cleanup f%u: close(append fd): %s", i,
			     strerror(errno));
		if (modeldir) {
			save_model(i);
			free(files[i].model);
			continue;
		}
		if (unlink(files[i].path) < 0)
			fail("cleanup f%u: unlink(%s): %s", i, files[i].path,
			     strerror(errno));
		free(files[i].model);
	}
	if (!modeldir && rmdir(testdir) < 0)
		fail("cleanup: rmdir(%s): %s", testdir, strerror(errno));
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	uint64_t v, s, stop_at = 0;
	unsigned int i;
	int c, n;

	while ((c = getopt(argc, argv, "n:s:N:m:f:k:H")) != -1) {
		switch (c) {
		case 'H':
			op_weights[OP_PUNCH] = 6;
			op_weights[OP_ZERO] = 4;
			break;
		case 'n':
			if (parse_u64(optarg, &nops, 0) < 0)
				usage();
			break;
		case 's':
			if (parse_u64(optarg, &seed, 0) < 0)
				usage();
			break;
		case 'N':
			if (parse_u64(optarg, &v, 0) < 0 || v < 1 ||
			    v > MAX_FILES)
				usage();
			nfiles = (unsigned int)v;
			break;
		case 'm':
			if (parse_u64(optarg, &maxlen, 1) < 0 || maxlen < 1 ||
			    maxlen > ((uint64_t)1 << 40))
				usage();
			break;
		case 'f':
			stopfile = optarg;
			break;
		case 'k':
			modeldir = optarg;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();

	setvbuf(stdout, NULL, _IOLBF, 0);
	pagesize = (size_t)sysconf(_SC_PAGESIZE);
	s = seed;
	rng_state = splitmix64(&s);
	if (!rng_state)
		rng_state = 1;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bus_handler;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGBUS, &sa, NULL) < 0)
		die("sigaction: %s", strerror(errno));

	buf = malloc(MAX_OP_LEN);
	rbuf = malloc(MAX_OP_LEN + 65536);	/* + room for EOF page tail */
	if (!buf || !rbuf)
		die("out of memory");

	n = snprintf(testdir, sizeof(testdir), "%s/fsx.XXXXXX", argv[optind]);
	if (n < 0 || (size_t)n >= sizeof(testdir)) {
		printf("fsx: SKIP: directory name too long\n");
		return 77;
	}
	if (!mkdtemp(testdir)) {
		printf("fsx: SKIP: cannot create a directory in %s: %s\n",
		       argv[optind], strerror(errno));
		return 77;
	}
	for (i = 0; i < nfiles; i++) {
		struct tfile *f = &files[i];

		n = snprintf(f->path, sizeof(f->path), "%s/f%u", testdir, i);
		if (n < 0 || (size_t)n >= sizeof(f->path))
			die("path too long");
		f->model = calloc(1, maxlen);
		if (!f->model)
			die("out of memory for a %" PRIu64 " byte model",
			    maxlen);
		f->size = 0;
		f->fd = open(f->path, O_RDWR | O_CREAT | O_EXCL, 0644);
		if (f->fd < 0) {
			if (i == 0) {
				printf("fsx: SKIP: cannot create %s: %s\n",
				       f->path, strerror(errno));
				rmdir(testdir);
				return 77;
			}
			fail("setup f%u: create %s: %s", i, f->path,
			     strerror(errno));
		}
		open_append((int)i);
	}

	printf("fsx: dir %s, seed %" PRIu64 ", %" PRIu64 " ops, %u files, "
	       "maxlen %" PRIu64 "\n", testdir, seed, nops, nfiles, maxlen);

	for (opnum = 1; opnum <= nops; opnum++) {
		run_op((int)rnd_below(nfiles));
		passed++;
		if (opnum % FULL_EVERY == 0)
			full_compare_all();
		/*
		 * The operations after the stop file appeared are the ones
		 * that see the finished state of whatever ran beside fsx.
		 */
		if (stopfile && !stop_at && access(stopfile, F_OK) == 0) {
			stop_at = opnum + FULL_EVERY;
			printf("fsx: %s seen at op %" PRIu64 "\n", stopfile,
			       opnum);
		}
		if (stop_at && opnum == stop_at)
			break;
	}
	if (stopfile && !stop_at)
		fail("%s did not appear within %" PRIu64 " ops", stopfile,
		     nops);
	if (opnum > nops)
		opnum = nops;
	full_compare_all();
	cleanup();

	print_counts();
	printf("fsx: %" PRIu64 " passed, 0 failed\n", passed);
	return 0;
}
