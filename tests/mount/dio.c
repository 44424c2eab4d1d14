/*
 * dio.c - O_DIRECT and buffered I/O on one file, checked against a model.
 *
 * Usage: dio [-s SEED] [-n ITERATIONS] [-t SECONDS] FILE
 *
 * FILE (made anew) holds NBLK blocks of 4 KiB. Every block written is the
 * pattern of (block, version): its first bytes say which, the rest follow
 * from the seed, so any block read can be checked whole and dated. The
 * model is, per block, the last version whose write has returned.
 *
 *   seq      buffered read of a block (it is now cached), an O_DIRECT
 *            write of its next version (plain, then through AIO), then a
 *            buffered read: it must return the new version;
 *   reverse  O_DIRECT read, buffered write, O_DIRECT read: the new one;
 *   race     a writer doing O_DIRECT writes (plain and AIO) while a
 *            reader does buffered reads of the same blocks; then a writer
 *            doing buffered writes while a reader does O_DIRECT reads:
 *            every read returns a whole version, at least the one the
 *            model had when the read began and at most the newest begun;
 *   final    the whole file, buffered and O_DIRECT, equals the model.
 *
 * Each phase runs ITERATIONS steps (default 2000) or until SECONDS
 * (default 10) have passed, whichever comes first; the time only bounds
 * the run. The seed (default 1) makes the pattern and the choice of
 * blocks repeatable; the interleaving of the race is the scheduler's.
 * Prints "ok PHASE ..." or "FAIL ..." lines; exit 0 all passed, 1
 * failures, 99 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define BS 4096
#define NBLK 64
#define RACE_NBLK 4	/* the race keeps to a few blocks: more overlap */
#define MAXFAIL 20

static uint64_t seed = 1;
static long iterations = 2000;
static double seconds = 10;
static const char *file;
static atomic_int failures;
static _Atomic uint32_t done_ver[NBLK];	/* last version whose write returned */
static _Atomic uint32_t begun_ver[NBLK];	/* newest version whose write began */
static atomic_bool writer_done;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (atomic_fetch_add(&failures, 1) >= MAXFAIL)
		return;
	printf("FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void fill(uint8_t *buf, uint32_t blk, uint32_t ver)
{
	uint64_t s = seed ^ ((uint64_t)blk << 40) ^ ((uint64_t)ver << 8);

	for (size_t i = 0; i < BS; i += 8) {
		uint64_t r = splitmix64(&s);

		memcpy(buf + i, &r, 8);
	}
	memcpy(buf, &blk, 4);
	memcpy(buf + 4, &ver, 4);
}

/* The version a block read holds, or -1 if it is no whole version of blk. */
static int64_t version_of(const uint8_t *buf, uint32_t blk)
{
	static _Thread_local uint8_t want[BS];
	uint32_t b, v;

	memcpy(&b, buf, 4);
	memcpy(&v, buf + 4, 4);
	if (b != blk)
		return -1;
	fill(want, blk, v);
	return memcmp(want, buf, BS) == 0 ? (int64_t)v : -1;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int rw_block(int fd, uint8_t *buf, uint32_t blk, int write)
{
	ssize_t n = write ? pwrite(fd, buf, BS, (off_t)blk * BS) :
			    pread(fd, buf, BS, (off_t)blk * BS);

	if (n != BS) {
		fail("%s block %u: %s", write ? "pwrite" : "pread", blk,
		     n < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

/* One O_DIRECT write through Linux AIO (io_submit), waited for. */
static int aio_write_block(aio_context_t ctx, int fd, uint8_t *buf,
			   uint32_t blk)
{
	struct iocb cb, *cbs[1] = { &cb };
	struct io_event ev;

	memset(&cb, 0, sizeof(cb));
	cb.aio_lio_opcode = IOCB_CMD_PWRITE;
	cb.aio_fildes = (uint32_t)fd;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = BS;
	cb.aio_offset = (int64_t)blk * BS;
	if (syscall(SYS_io_submit, ctx, 1, cbs) != 1 ||
	    syscall(SYS_io_getevents, ctx, 1, 1, &ev, NULL) != 1) {
		fail("aio write block %u: %s", blk, strerror(errno));
		return -1;
	}
	if (ev.res != BS) {
		fail("aio write block %u: result %lld", blk,
		     (long long)ev.res);
		return -1;
	}
	return 0;
}

struct io {
	int fdb, fdd;		/* buffered, O_DIRECT */
	aio_context_t ctx;
	uint8_t *buf;		/* BS, aligned */
	uint64_t rng;
};

static int io_open(struct io *io, uint64_t rng)
{
	memset(io, 0, sizeof(*io));
	io->rng = rng;
	io->fdb = open(file, O_RDWR);
	io->fdd = open(file, O_RDWR | O_DIRECT);
	if (io->fdb < 0 || io->fdd < 0 ||
	    posix_memalign((void **)&io->buf, BS, BS) != 0 ||
	    syscall(SYS_io_setup, 1, &io->ctx) < 0) {
		fail("open %s (buffered and O_DIRECT), aio: %s", file,
		     strerror(errno));
		return -1;
	}
	return 0;
}

static void io_close(struct io *io)
{
	if (io->ctx)
		syscall(SYS_io_destroy, io->ctx);
	if (io->fdb >= 0)
		close(io->fdb);
	if (io->fdd >= 0)
		close(io->fdd);
	free(io->buf);
}

/* Write the next version of blk through `how` ('d' O_DIRECT, 'a' AIO,
 * 'b' buffered) and record it in the model. */
static int write_next(struct io *io, uint32_t blk, int how)
{
	uint32_t v = atomic_load(&begun_ver[blk]) + 1;
	int rc;

	fill(io->buf, blk, v);
	atomic_store(&begun_ver[blk], v);
	if (how == 'a')
		rc = aio_write_block(io->ctx, io->fdd, io->buf, blk);
	else
		rc = rw_block(how == 'b' ? io->fdb : io->fdd, io->buf, blk, 1);
	if (rc == 0)
		atomic_store(&done_ver[blk], v);
	return rc;
}

/* Read blk through fd and check it against the model: a whole version,
 * no older than `lo`, no newer than the newest begun. */
static int read_check(struct io *io, int fd, uint32_t blk, uint32_t lo,
		      const char *what)
{
	int64_t v;

	if (rw_block(fd, io->buf, blk, 0) < 0)
		return -1;
	v = version_of(io->buf, blk);
	if (v < 0) {
		fail("%s: block %u read is no whole version of it", what, blk);
		return -1;
	}
	if (v < lo || v > atomic_load(&begun_ver[blk])) {
		fail("%s: block %u read as version %" PRId64 ", want %u%s",
		     what, blk, v, lo,
		     v < lo ? " (stale: an older version)" : " or older");
		return -1;
	}
	return 0;
}

static int setup(void)
{
	struct io io;
	int rc = 0;

	unlink(file);
	if (close(open(file, O_RDWR | O_CREAT | O_EXCL, 0644)) < 0) {
		fail("create %s: %s", file, strerror(errno));
		return -1;
	}
	if (io_open(&io, seed) < 0) {
		io_close(&io);
		return -1;
	}
	for (uint32_t b = 0; b < NBLK && rc == 0; b++) {
		atomic_store(&begun_ver[b], 0);
		atomic_store(&done_ver[b], 0);
		fill(io.buf, b, 0);
		rc = rw_block(io.fdb, io.buf, b, 1);
	}
	io_close(&io);
	return rc;
}

/* Cache with a buffered read, write behind the cache, read the cache. */
static void phase_seq(void)
{
	double end = now() + seconds;
	struct io io;
	long i;

	if (io_open(&io, seed ^ 0x5e9) < 0)
		goto out;
	for (i = 0; i < iterations && now() < end; i++) {
		uint32_t blk = (uint32_t)(splitmix64(&io.rng) % NBLK);
		int how = i % 2 ? 'a' : 'd';

		if (read_check(&io, io.fdb, blk, atomic_load(&done_ver[blk]),
			       "seq, before the write") < 0 ||
		    write_next(&io, blk, how) < 0 ||
		    read_check(&io, io.fdb, blk, atomic_load(&done_ver[blk]),
			       how == 'a' ? "seq, buffered read after an AIO "
					    "O_DIRECT write" :
					    "seq, buffered read after an "
					    "O_DIRECT write") < 0)
			break;
	}
	if (atomic_load(&failures) == 0)
		printf("ok seq: %ld O_DIRECT writes (half AIO) between "
		       "buffered reads\n", i);
out:
	io_close(&io);
}

static void phase_reverse(void)
{
	double end = now() + seconds;
	struct io io;
	long i;

	if (io_open(&io, seed ^ 0x7e7) < 0)
		goto out;
	for (i = 0; i < iterations && now() < end; i++) {
		uint32_t blk = (uint32_t)(splitmix64(&io.rng) % NBLK);

		if (read_check(&io, io.fdd, blk, atomic_load(&done_ver[blk]),
			       "reverse, before the write") < 0 ||
		    write_next(&io, blk, 'b') < 0 ||
		    read_check(&io, io.fdd, blk, atomic_load(&done_ver[blk]),
			       "reverse, O_DIRECT read after a buffered "
			       "write") < 0)
			break;
	}
	if (atomic_load(&failures) == 0)
		printf("ok reverse: %ld buffered writes between O_DIRECT "
		       "reads\n", i);
out:
	io_close(&io);
}

struct racer {
	int direct_writes;	/* 1: O_DIRECT writer, buffered reader */
	long steps;
	pthread_t t;
};

static void *race_writer(void *arg)
{
	struct racer *r = arg;
	double end = now() + seconds;
	struct io io;

	if (io_open(&io, seed ^ 0xa11) == 0) {
		for (r->steps = 0; r->steps < iterations && now() < end &&
				   atomic_load(&failures) == 0;
		     r->steps++) {
			uint32_t blk =
				(uint32_t)(splitmix64(&io.rng) % RACE_NBLK);
			int how = !r->direct_writes	   ? 'b' :
				  r->steps % 2 ? 'a' :
						   'd';

			if (write_next(&io, blk, how) < 0)
				break;
		}
	}
	io_close(&io);
	atomic_store(&writer_done, true);
	return NULL;
}

static void *race_reader(void *arg)
{
	struct racer *r = arg;
	struct io io;

	if (io_open(&io, seed ^ 0xbee) == 0) {
		for (r->steps = 0; !atomic_load(&writer_done); r->steps++) {
			uint32_t blk =
				(uint32_t)(splitmix64(&io.rng) % RACE_NBLK);
			uint32_t lo = atomic_load(&done_ver[blk]);

			if (read_check(&io, r->direct_writes ? io.fdb : io.fdd,
				       blk, lo,
				       r->direct_writes ?
					       "race, buffered read during "
					       "O_DIRECT writes" :
					       "race, O_DIRECT read during "
					       "buffered writes") < 0)
				break;
		}
	}
	io_close(&io);
	return NULL;
}

static void phase_race(int direct_writes)
{
	struct racer w = { direct_writes, 0, 0 }, rd = { direct_writes, 0, 0 };

	atomic_store(&writer_done, false);
	if (pthread_create(&rd.t, NULL, race_reader, &rd) != 0 ||
	    pthread_create(&w.t, NULL, race_writer, &w) != 0) {
		fail("pthread_create");
		exit(1);
	}
	pthread_join(w.t, NULL);
	pthread_join(rd.t, NULL);
	if (atomic_load(&failures) == 0)
		printf("ok race: %ld %s writes, %ld %s reads\n", w.steps,
		       direct_writes ? "O_DIRECT (half AIO)" : "buffered",
		       rd.steps, direct_writes ? "buffered" : "O_DIRECT");
}

static void phase_final(void)
{
	struct io io;

	if (io_open(&io, seed) < 0)
		goto out;
	for (uint32_t b = 0; b < NBLK; b++) {
		uint32_t v = atomic_load(&done_ver[b]);

		if (v != atomic_load(&begun_ver[b]))
			fail("final: block %u: a write did not finish", b);
		if (read_check(&io, io.fdb, b, v, "final, buffered") < 0 ||
		    read_check(&io, io.fdd, b, v, "final, O_DIRECT") < 0)
			break;
	}
	if (atomic_load(&failures) == 0)
		printf("ok final: %d blocks equal the model, buffered and "
		       "O_DIRECT\n", NBLK);
out:
	io_close(&io);
}

int main(int argc, char **argv)
{
	int c;

	while ((c = getopt(argc, argv, "s:n:t:")) != -1) {
		switch (c) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			iterations = strtol(optarg, NULL, 0);
			break;
		case 't':
			seconds = strtod(optarg, NULL);
			break;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1)
		goto usage;
	file = argv[optind];
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (setup() < 0)
		return 1;
	phase_seq();
	phase_reverse();
	phase_race(1);
	phase_race(0);
	phase_final();
	printf("dio: seed %" PRIu64 ", %d failures\n", seed,
	       atomic_load(&failures));
	if (atomic_load(&failures) == 0)
		unlink(file);
	return atomic_load(&failures) ? 1 : 0;
usage:
	fprintf(stderr, "usage: dio [-s SEED] [-n ITERATIONS] [-t SECONDS] "
			"FILE\n");
	return 99;
}
