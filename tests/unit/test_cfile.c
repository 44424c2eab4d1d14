/* tests/unit/test_cfile.c — struct cfile on a real backing file: plain <->
 * cipher sizes, a randomized model test of write/truncate/fallocate/read
 * against an in-memory copy (block sizes 4096 and 512), reopen, and tampering
 * with the backing file: flipped, zeroed, swapped, foreign and punched
 * blocks, every truncation, foreign and flipped headers; and the sealing
 * budget under a lowered test budget (its variable refused when nonsense
 * or higher): the count in the header always covers every seal made (a
 * crash at any point, a failed write, a reopen), and the file re-keyed
 * exactly when its DEKs reach the budget, file id kept, every byte intact;
 * sparse files (format 3) killed at every backing change of a growth over a
 * hole, a write into a hole, a punch or a shrink into a hole read back old
 * or new, with no EIO and no fsck finding, and still so after a full
 * rekey re-seals them (alone or in a batch), which leaves no old last
 * block of a growth cut short (holes_crash).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <inttypes.h>
#include <limits.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "cmkfs/cfile.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "cmkfs/reseal.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define MODEL_CAP (4u << 20)	/* largest plain size of the model file */
#define BIG_JUMP (1u << 20)	/* crosses cfile.c's 1 MiB chunks */

/* Under valgrind or the sanitizers (scripts/check.sh): a twentieth of the
 * model ops and sparser tampering, since every cfile.c call allocates and
 * wipes 1 MiB buffers, which both make slow. */
static bool slow;

/* ---- helpers ---------------------------------------------------------- */

/* An anonymous backing file: created in /tmp and unlinked at once. */
static int tmpfd(void)
{
	char path[] = "/tmp/cmkfs-test_cfile.XXXXXX";
	int fd = mkstemp(path);

	if (fd >= 0)
		unlink(path);
	return fd;
}

static uint64_t backing_size(int fd)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return UINT64_MAX;
	return (uint64_t)st.st_size;
}

/* Expected failures log an error each; keep them off the test output
 * (TEST_VERBOSE=1 shows them). CHECK runs only with stderr restored. */
static int saved_stderr = -1;

static void quiet(bool on)
{
	static int null_fd = -1;

	if (getenv("TEST_VERBOSE") != NULL)
		return;
	fflush(stderr);
	if (on) {
		if (null_fd < 0)
			null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null_fd < 0)
			return;
		saved_stderr = dup(2);
		if (saved_stderr >= 0)
			dup2(null_fd, 2);
	} else if (saved_stderr >= 0) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
}

static int q_read(struct cfile *cf, int fd, uint64_t off, size_t len,
		  uint8_t *out, size_t *got)
{
	int rc;

	quiet(true);
	rc = cfile_read(cf, fd, off, len, out, got);
	quiet(false);
	return rc;
}

static int q_size(struct cfile *cf, int fd, uint64_t *plain)
{
	int rc;

	quiet(true);
	rc = cfile_size(cf, fd, plain);
	quiet(false);
	return rc;
}

/* cfile_load() into a fresh cfile; returns its rc. */
static int q_fresh_load(struct keyring *kr, uint32_t bs, int fd)
{
	struct cfile cf;
	int rc;

	cfile_init(&cf, kr, bs, fd);
	quiet(true);
	rc = cfile_load(&cf, fd);
	quiet(false);
	cfile_destroy(&cf);
	return rc;
}

/* ---- sizes ------------------------------------------------------------ */

static void sizes(uint32_t bs)
{
	const uint64_t cb = (uint64_t)bs + BLOCK_OVERHEAD;
	uint64_t c, p, prev = 0, top, valid = 0, bad = UINT64_MAX;
	static const uint64_t big[] = { 1ull << 40, (1ull << 40) + 5,
					(1ull << 40) - 1, (1ull << 50) + 12345,
					1ull << 55 };

	/* Inverse on 0 .. 3 bs + 1, growing by one byte inside a block and
	 * by the overhead at each block boundary. */
	for (p = 0; p <= 3 * (uint64_t)bs + 1 && bad == UINT64_MAX; p++) {
		uint64_t q = UINT64_MAX, step;

		step = p % bs == 1 && p > 1 ? 1 + BLOCK_OVERHEAD : 1;
		if (cfile_cipher_size(p, bs, &c) < 0 ||
		    cfile_plain_size(c, bs, &q) < 0 || q != p ||
		    (p == 0 ? c != HEADER_LEN + BLOCK_OVERHEAD :
			      c != prev + step))
			bad = p;
		prev = c;
	}
	CHECK(bad == UINT64_MAX, "bs %u: plain size %llu", bs,
	      (unsigned long long)bad);
	/* Every backing size up to there: valid exactly for the images. */
	top = prev;
	for (c = 0; c <= top && bad == UINT64_MAX; c++) {
		uint64_t back;

		if (cfile_plain_size(c, bs, &p) < 0)
			continue;
		valid++;
		if (cfile_cipher_size(p, bs, &back) < 0 || back != c)
			bad = c;
	}
	CHECK(bad == UINT64_MAX, "bs %u: cipher size %llu", bs,
	      (unsigned long long)bad);
	CHECK(valid == 3 * (uint64_t)bs + 2, "valid sizes %llu",
	      (unsigned long long)valid);

	/* Impossible sizes. */
	for (c = 0; c < HEADER_LEN + BLOCK_OVERHEAD; c++)
		CHECK_RC(cfile_plain_size(c, bs, &p), -EBADMSG);
	CHECK_RC(cfile_plain_size(HEADER_LEN + 10, bs, &p), -EBADMSG);
	for (uint64_t k = 0; k < 4; k++) {
		for (uint64_t r = 1; r < BLOCK_OVERHEAD; r++)
			CHECK_RC(cfile_plain_size(HEADER_LEN + k * cb + r, bs,
						  &p),
				 -EBADMSG);
		if (k > 0)
			CHECK_RC(cfile_plain_size(HEADER_LEN + BLOCK_OVERHEAD +
							  k * cb,
						  bs, &p),
				 -EBADMSG);
	}
	CHECK_RC(cfile_plain_size(HEADER_LEN + BLOCK_OVERHEAD +
					  (1ull << 30) * cb,
				  bs, &p),
		 -EBADMSG);
	CHECK_RC(cfile_plain_size(HEADER_LEN + (1ull << 30) * cb + 55, bs, &p),
		 -EBADMSG);

	/* Large ones. */
	for (size_t i = 0; i < CMK_ARRAY_LEN(big); i++) {
		uint64_t q = 0;

		CHECK_RC(cfile_cipher_size(big[i], bs, &c), 0);
		CHECK_RC(cfile_plain_size(c, bs, &q), 0);
		CHECK(q == big[i], "big %llu -> %llu",
		      (unsigned long long)big[i], (unsigned long long)q);
		/* One byte less: one byte shorter, unless that leaves an
		 * empty last block. */
		if (big[i] % bs == 1) {
			CHECK_RC(cfile_plain_size(c - 1, bs, &q), -EBADMSG);
		} else {
			CHECK_RC(cfile_plain_size(c - 1, bs, &q), 0);
			CHECK(q == big[i] - 1, "big - 1");
		}
	}
	CHECK_RC(cfile_cipher_size(UINT64_MAX, bs, &c), -EFBIG);
	CHECK_RC(cfile_cipher_size(INT64_MAX, bs, &c), -EFBIG);
	CHECK_RC(cfile_cipher_size((uint64_t)INT64_MAX - HEADER_LEN -
					   BLOCK_OVERHEAD,
				   bs, &c),
		 -EFBIG);
}

/* ---- model test ------------------------------------------------------- */

struct model {
	uint8_t *data;		/* MODEL_CAP bytes */
	uint64_t size;
};

static uint64_t rs;

static uint64_t rnd(uint64_t n)
{
	rs ^= rs >> 12;
	rs ^= rs << 25;
	rs ^= rs >> 27;
	return n == 0 ? 0 : (rs * 0x2545f4914f6cdd1dull >> 11) % n;
}

static void m_resize(struct model *m, uint64_t n)
{
	if (n > m->size)
		memset(m->data + m->size, 0, n - m->size);
	m->size = n;
}

/* Compare cfile_read(off, len) with the model. */
static void m_cmp(struct cfile *cf, int fd, const struct model *m,
		  uint64_t off, size_t len, uint8_t *buf)
{
	size_t got = SIZE_MAX, want;
	int rc;

	want = off >= m->size ? 0 :
	       m->size - off < len ? (size_t)(m->size - off) : len;
	rc = cfile_read(cf, fd, off, len, buf, &got);
	CHECK(rc == 0, "read %llu+%zu: %d", (unsigned long long)off, len, rc);
	if (rc < 0)
		return;
	CHECK(got == want, "read %llu+%zu: got %zu, want %zu",
	      (unsigned long long)off, len, got, want);
	if (got == want && want > 0 && memcmp(buf, m->data + off, want) != 0) {
		size_t i = 0;

		while (buf[i] == m->data[off + i])
			i++;
		CHECK(0, "read %llu+%zu: first difference at %llu",
		      (unsigned long long)off, len,
		      (unsigned long long)(off + i));
	}
}

static void m_cmp_all(struct cfile *cf, int fd, const struct model *m,
		      uint8_t *buf)
{
	m_cmp(cf, fd, m, 0, (size_t)m->size + 17, buf);
}

/* Size as reported and as stored. */
static void m_cmp_size(struct cfile *cf, int fd, const struct model *m,
		       uint32_t bs)
{
	uint64_t plain = UINT64_MAX, c = 0;

	CHECK_RC(cfile_size(cf, fd, &plain), 0);
	CHECK(plain == m->size, "size %llu, model %llu",
	      (unsigned long long)plain, (unsigned long long)m->size);
	CHECK_RC(cfile_cipher_size(m->size, bs, &c), 0);
	CHECK(backing_size(fd) == c, "backing size %llu, want %llu",
	      (unsigned long long)backing_size(fd), (unsigned long long)c);
}

static uint64_t pick_off(uint64_t size, uint32_t bs)
{
	uint64_t o;

	switch (rnd(8)) {
	case 0:
	case 1:
	case 2:
		return rnd(size + 1);
	case 3:
		return size + rnd(2 * (uint64_t)bs);	/* past EOF */
	case 4:					/* near a block edge */
		o = rnd(size / bs + 2) * bs + rnd(3);
		return o > 0 ? o - 1 : 0;
	case 5:					/* near EOF */
		return size - rnd((size < bs ? size : bs) + 1);
	case 6:
		return rnd(size + 3 * (uint64_t)bs);
	default:
		return rnd(4) == 0 ? 0 : rnd(size + 1) / bs * bs;
	}
}

static const int fl_modes[] = {
	0,
	FALLOC_FL_KEEP_SIZE,
	FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
	FALLOC_FL_ZERO_RANGE,
	FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
};

static void model_run(struct keyring *kr, uint32_t bs, uint64_t seed,
		      int nops)
{
	struct model m = { NULL, 0 };
	uint8_t *buf = NULL, *src = NULL;
	const size_t maxlen = 3 * (size_t)bs + 8;
	struct cfile cf;
	char what[160] = "create";
	int fd, fails0 = t_fails, stat[4] = { 0 };

	rs = seed;
	fd = tmpfd();
	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	cfile_init(&cf, kr, bs, fd);
	m.data = calloc(MODEL_CAP, 1);
	buf = malloc(MODEL_CAP + maxlen + 64);
	src = malloc(maxlen);
	if (m.data == NULL || buf == NULL || src == NULL) {
		CHECK(0, "out of memory");
		goto out;
	}
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	m_cmp_size(&cf, fd, &m, bs);

	for (int i = 0; i < nops && t_fails == fails0; i++) {
		uint64_t r = rnd(100), off, len, at = UINT64_MAX, old = m.size;
		int rc;

		if (r < 40) {			/* write */
			bool append = rnd(10) == 0, zeros = rnd(20) == 0;

			off = pick_off(m.size, bs);
			if (rnd(300) == 0 && m.size < MODEL_CAP / 2)
				off = m.size + BIG_JUMP + rnd(3 * bs);
			len = rnd(maxlen + 1);
			/* A zero-length write past EOF: see write0(). */
			if (len == 0 && off > m.size)
				len = 1;
			if (append)
				off = m.size;
			if (off + len > MODEL_CAP)
				continue;
			t_fill(src, len, (uint32_t)rnd(1u << 31));
			snprintf(what, sizeof(what),
				 "write%s%s %llu+%llu (size %llu)",
				 append ? " append" : "", zeros ? " zeros" : "",
				 (unsigned long long)off,
				 (unsigned long long)len,
				 (unsigned long long)old);
			/* With append, the offset given is ignored. */
			rc = cfile_write(&cf, fd,
					 append ? rnd(m.size + 9) : off,
					 zeros ? NULL : src, len, append, &at);
			CHECK_RC(rc, 0);
			CHECK(at == off, "written at %llu",
			      (unsigned long long)at);
			if (len > 0) {
				if (off + len > m.size)
					m_resize(&m, off + len);
				if (zeros)
					memset(m.data + off, 0, len);
				else
					memcpy(m.data + off, src, len);
			}
			stat[0]++;
		} else if (r < 55) {		/* truncate */
			switch (rnd(6)) {
			case 0:
				off = rnd(4) == 0 ? 0 : rnd(m.size / 2 + 1);
				break;
			case 1:
				off = rnd(m.size / bs + 3) * bs;
				break;
			case 2:
				off = m.size + rnd(3 * (uint64_t)bs);
				break;
			case 3:
				off = rnd(m.size + 1);
				break;
			case 4:
				off = m.size + rnd(2 * (uint64_t)bs + 1);
				off = off > bs ? off - bs : 0;
				break;
			default:
				off = m.size;
				break;
			}
			if (m.size > MODEL_CAP / 2)
				off = rnd(m.size / 4);
			snprintf(what, sizeof(what),
				 "truncate %llu (size %llu)",
				 (unsigned long long)off,
				 (unsigned long long)old);
			CHECK_RC(cfile_truncate(&cf, fd, off), 0);
			m_resize(&m, off);
			len = 0;
			stat[1]++;
		} else if (r < 70) {		/* fallocate */
			int mode = fl_modes[rnd(CMK_ARRAY_LEN(fl_modes))];
			uint64_t end, zend;

			off = pick_off(m.size, bs);
			len = 1 + rnd(maxlen);
			end = off + len;
			if (end > MODEL_CAP)
				continue;
			snprintf(what, sizeof(what),
				 "fallocate 0x%x %llu+%llu (size %llu)", mode,
				 (unsigned long long)off,
				 (unsigned long long)len,
				 (unsigned long long)old);
			CHECK_RC(cfile_fallocate(&cf, fd, mode, off, len), 0);
			if (!(mode & FALLOC_FL_KEEP_SIZE) && end > m.size)
				m_resize(&m, end);
			zend = end < m.size ? end : m.size;
			if ((mode & (FALLOC_FL_PUNCH_HOLE |
				     FALLOC_FL_ZERO_RANGE)) &&
			    off < zend)
				memset(m.data + off, 0, zend - off);
			stat[2]++;
		} else {			/* read */
			off = rnd(m.size + bs + 1);
			if (rnd(4) == 0)
				off = rnd(m.size / bs + 1) * bs;
			len = rnd(maxlen + 1);
			snprintf(what, sizeof(what),
				 "read %llu+%llu (size %llu)",
				 (unsigned long long)off,
				 (unsigned long long)len,
				 (unsigned long long)old);
			m_cmp(&cf, fd, &m, off, len, buf);
			stat[3]++;
			goto next;
		}
		m_cmp_size(&cf, fd, &m, bs);
		/* The bytes around the op and the old end, in one read. */
		{
			uint64_t lo = off < old ? off : old;
			uint64_t hi = off + len > old ? off + len : old;

			lo = lo > bs ? lo - bs : 0;
			m_cmp(&cf, fd, &m, lo, (size_t)(hi - lo) + bs, buf);
		}
next:
		if (i % 512 == 511)
			m_cmp_all(&cf, fd, &m, buf);
		if (i == nops / 2 || i == nops / 4) {
			/* Reopen on the same descriptor. */
			snprintf(what, sizeof(what), "reopen (size %llu)",
				 (unsigned long long)m.size);
			cfile_destroy(&cf);
			cfile_init(&cf, kr, bs, fd);
			CHECK_RC(cfile_load(&cf, fd), 0);
			CHECK_RC(cfile_load(&cf, fd), 0);
			m_cmp_size(&cf, fd, &m, bs);
			m_cmp_all(&cf, fd, &m, buf);
		}
		if (t_fails != fails0)
			fprintf(stderr, "  bs %u seed %llu op %d: %s\n", bs,
				(unsigned long long)seed, i, what);
	}
	m_cmp_all(&cf, fd, &m, buf);
	m_cmp_size(&cf, fd, &m, bs);
	if (t_fails == fails0)
		CHECK(stat[0] > nops / 3 && stat[1] > nops / 10 &&
			      stat[2] > nops / 10 && stat[3] > nops / 10,
		      "op mix %d/%d/%d/%d", stat[0], stat[1], stat[2],
		      stat[3]);
out:
	cfile_destroy(&cf);
	close(fd);
	free(m.data);
	free(buf);
	free(src);
}

/* ---- contract details ------------------------------------------------- */

/* write(2) of zero bytes changes nothing, even past EOF. */
static void write0(struct keyring *kr, uint32_t bs)
{
	uint8_t data[100], back[200];
	uint64_t size = UINT64_MAX, at = 0;
	struct cfile cf;
	size_t got = 0;
	int fd = tmpfd();

	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	t_fill(data, sizeof(data), 60);
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	CHECK_RC(cfile_write(&cf, fd, 0, data, sizeof(data), false, NULL), 0);
	CHECK_RC(cfile_write(&cf, fd, 50, data, 0, false, &at), 0);
	CHECK(at == 50, "at %llu", (unsigned long long)at);
	CHECK_RC(cfile_write(&cf, fd, 0, data, 0, true, &at), 0);
	CHECK(at == 100, "append at %llu", (unsigned long long)at);
	CHECK_RC(cfile_write(&cf, fd, 3 * bs + 5, data, 0, false, NULL), 0);
	CHECK_RC(cfile_size(&cf, fd, &size), 0);
	CHECK(size == 100, "a zero-length write at %u moved EOF to %llu",
	      3 * bs + 5, (unsigned long long)size);
	CHECK_RC(cfile_read(&cf, fd, 0, sizeof(back), back, &got), 0);
	CHECK(got == 100 && memcmp(back, data, 100) == 0, "contents");
	cfile_destroy(&cf);
	close(fd);
}

static void errors(struct keyring *kr, uint32_t bs)
{
	uint8_t b[16] = { 0 };
	struct cfile cf;
	uint64_t size = 0;
	size_t got = 1;
	int fd = tmpfd();

	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	CHECK_RC(cfile_truncate(&cf, fd, UINT64_MAX), -EFBIG);
	CHECK_RC(cfile_truncate(&cf, fd, INT64_MAX), -EFBIG);
	CHECK_RC(cfile_write(&cf, fd, UINT64_MAX - 4, b, sizeof(b), false,
			     NULL),
		 -EFBIG);
	CHECK_RC(cfile_write(&cf, fd, INT64_MAX - 4, b, sizeof(b), false,
			     NULL),
		 -EFBIG);
	CHECK_RC(cfile_fallocate(&cf, fd, 0, UINT64_MAX - 4, 16), -EFBIG);
	CHECK_RC(cfile_fallocate(&cf, fd, FALLOC_FL_PUNCH_HOLE, 0, 16),
		 -EINVAL);
	CHECK_RC(cfile_fallocate(&cf, fd, FALLOC_FL_COLLAPSE_RANGE, 0, bs),
		 -EOPNOTSUPP);
	CHECK_RC(cfile_fallocate(&cf, fd, FALLOC_FL_INSERT_RANGE, 0, bs),
		 -EOPNOTSUPP);
	CHECK_RC(cfile_size(&cf, fd, &size), 0);
	CHECK(size == 0, "size %llu after refused ops",
	      (unsigned long long)size);
	CHECK(backing_size(fd) == HEADER_LEN + BLOCK_OVERHEAD, "backing");
	/* Reads of an empty file, and past EOF. */
	CHECK_RC(cfile_read(&cf, fd, 0, sizeof(b), b, &got), 0);
	CHECK(got == 0, "got %zu", got);
	got = 1;
	CHECK_RC(cfile_read(&cf, fd, UINT64_MAX, sizeof(b), b, &got), 0);
	CHECK(got == 0, "got %zu", got);
	cfile_destroy(&cf);
	close(fd);
}

/* Bytes this process has handed to write(2) and pwrite(2) so far. */
static uint64_t wchar(void)
{
	char line[128];
	uint64_t v = 0;
	FILE *f = fopen("/proc/self/io", "r");

	if (f == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "wchar: %" SCNu64, &v) == 1)
			break;
	fclose(f);
	return v;
}

/* A growth far past what the backing file may or can hold is refused up
 * front, with the file untouched and without writing the zeros first:
 * past RLIMIT_FSIZE with -EFBIG, past the free space with -ENOSPC. */
static void far_growth(struct keyring *kr, uint32_t bs)
{
	uint8_t data[10000], back[sizeof(data)], b[4096];
	struct rlimit old, lim = { 64u << 20, 0 };
	uint64_t size = 0, w0, tib16 = 16ull << 40, bsize;
	struct cfile cf;
	size_t got = 0;
	int fails = t_fails, fd = tmpfd();

	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	t_fill(data, sizeof(data), 61);
	memset(b, 7, sizeof(b));
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	CHECK_RC(cfile_write(&cf, fd, 0, data, sizeof(data), false, NULL), 0);
	bsize = backing_size(fd);
	CHECK_RC(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim.rlim_max = old.rlim_max;
	signal(SIGXFSZ, SIG_IGN);
	CHECK_RC(setrlimit(RLIMIT_FSIZE, &lim), 0);
	w0 = wchar();
	CHECK_RC(cfile_truncate(&cf, fd, 1ull << 30), -EFBIG);
	CHECK_RC(cfile_write(&cf, fd, tib16 - sizeof(b), b, sizeof(b), false,
			     NULL),
		 -EFBIG);
	CHECK_RC(cfile_fallocate(&cf, fd, 0, tib16, 4096), -EFBIG);
	CHECK(wchar() - w0 < (1u << 20),
	      "%" PRIu64 " bytes written before the file size limit refused "
	      "the growth", wchar() - w0);
	CHECK_RC(setrlimit(RLIMIT_FSIZE, &old), 0);
	/* Only with the up-front check in place: without it the zeros would
	 * go to the disk until it is full. */
	if (t_fails == fails) {
		w0 = wchar();
		int rt, rw;

		/* Refused either way before anything is written: by the
		 * free-space check, or (format 3, where the hole costs no
		 * space) by a backing file system whose largest file is
		 * smaller (ext4: 16 TiB). */
		rt = cfile_truncate(&cf, fd, 1ull << 60);
		CHECK(rt == -ENOSPC || rt == -EFBIG, "truncate to 2^60: %d", rt);
		rw = cfile_write(&cf, fd, (1ull << 60) - sizeof(b), b,
				 sizeof(b), false, NULL);
		CHECK(rw == -ENOSPC || rw == -EFBIG, "write at 2^60: %d", rw);
		CHECK_RC(cfile_fallocate(&cf, fd, 0, 1ull << 60, 4096),
			 -ENOSPC);
		CHECK(wchar() - w0 < (1u << 20), "zeros written before ENOSPC");
	}
	CHECK(backing_size(fd) == bsize, "backing size changed");
	CHECK_RC(cfile_size(&cf, fd, &size), 0);
	CHECK(size == sizeof(data), "size %" PRIu64 " after refused growth",
	      size);
	CHECK_RC(cfile_read(&cf, fd, 0, sizeof(back), back, &got), 0);
	CHECK(got == sizeof(data) && memcmp(back, data, got) == 0, "contents");
	/* Ordinary growth still works, small and past GROW_CHECK_MIN. */
	CHECK_RC(cfile_truncate(&cf, fd, 8u << 20), 0);
	CHECK_RC(cfile_write(&cf, fd, (8u << 20) + 5, b, sizeof(b), false,
			     NULL),
		 0);
	CHECK_RC(cfile_size(&cf, fd, &size), 0);
	CHECK(size == (8u << 20) + 5 + sizeof(b), "size after growth");
	cfile_destroy(&cf);
	close(fd);
}

/* ---- holes (format 3) -------------------------------------------------- */

static int put(int fd, const void *p, size_t n, uint64_t off);
static bool opens_under(struct filekeys *fk, int fd, uint32_t bs, uint64_t b,
			bool last);

static uint64_t allocated(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? UINT64_MAX : (uint64_t)st.st_blocks * 512;
}

static uint64_t slot_at(uint32_t bs, uint64_t b)
{
	return HEADER_LEN + b * ((uint64_t)bs + BLOCK_OVERHEAD);
}

/* Slot b's shape: 0 all zero, 1 a hole record (64 bytes, then zeros),
 * 2 anything else. */
static int shape(int fd, uint32_t bs, uint64_t b)
{
	size_t cb = bs + BLOCK_OVERHEAD;
	uint8_t *p = calloc(1, cb);
	int k = 2;

	if (p != NULL && pread(fd, p, cb, (off_t)slot_at(bs, b)) == (ssize_t)cb) {
		bool lo = true, hi = true;

		for (size_t i = 0; i < cb; i++) {
			if (p[i] != 0 && i < BLOCK_HOLE_LEN)
				lo = false;
			else if (p[i] != 0)
				hi = false;
		}
		k = !hi ? 2 : lo ? 0 : 1;
	}
	free(p);
	return k;
}

struct findings {
	unsigned n;
	char last[200];
};

static void finding(void *arg, uint64_t b, const char *what)
{
	struct findings *f = arg;

	f->n++;
	snprintf(f->last, sizeof(f->last), "block %" PRIu64 ": %s", b, what);
}

static unsigned q_findings(struct cfile *cf, int fd, struct findings *f)
{
	uint64_t nb = 0;
	int rc;

	memset(f, 0, sizeof(*f));
	quiet(true);
	rc = cfile_check_blocks(cf, fd, finding, f, &nb);
	quiet(false);
	return rc < 0 ? 1000 : f->n;
}

/* Plain bytes [off, off + len) read back equal to model (NULL: zeros). */
static bool reads_as(struct cfile *cf, int fd, uint64_t off, size_t len,
		     const uint8_t *model)
{
	uint8_t *p = malloc(len + 1);
	size_t got = 0;
	bool ok = p != NULL && q_read(cf, fd, off, len, p, &got) == 0 &&
		  got == len;

	for (size_t i = 0; ok && i < len; i++)
		ok = p[i] == (model ? model[i] : 0);
	free(p);
	return ok;
}

/* A hole costs no disk and no time: growth by truncate and by writes far
 * past the end allocates almost nothing and reads back as zeros. */
static void holes_sparse(struct keyring *kr, uint32_t bs)
{
	uint8_t head[10], blk[4096];
	uint64_t size = 0, gib = 1ull << 30;
	struct cfile cf;
	int fd = tmpfd();

	CHECK(fd >= 0, "mkstemp");
	if (fd < 0)
		return;
	t_fill(head, sizeof(head), 71);
	t_fill(blk, sizeof(blk), 72);
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	CHECK_RC(cfile_write(&cf, fd, 0, head, sizeof(head), false, NULL), 0);
	CHECK_RC(cfile_truncate(&cf, fd, 2 * gib), 0);
	CHECK(allocated(fd) < (64u << 10),
	      "truncate to 2 GiB allocated %" PRIu64 " bytes", allocated(fd));
	CHECK_RC(cfile_size(&cf, fd, &size), 0);
	CHECK(size == 2 * gib, "size %" PRIu64, size);
	CHECK(reads_as(&cf, fd, 0, sizeof(head), head), "head after truncate");
	CHECK(reads_as(&cf, fd, sizeof(head), 3 * bs, NULL), "zeros after head");
	CHECK(reads_as(&cf, fd, gib - 1000, 1 << 20, NULL), "zeros mid hole");
	CHECK(reads_as(&cf, fd, 2 * gib - 5000, 5000, NULL), "zeros at the end");
	CHECK_RC(cfile_write(&cf, fd, 4 * gib, blk, sizeof(blk), false, NULL),
		 0);
	CHECK_RC(cfile_write(&cf, fd, 1ull << 40, blk, sizeof(blk), false,
			     NULL),
		 0);
	CHECK(allocated(fd) < (256u << 10),
	      "writes at 4 GiB and 1 TiB allocated %" PRIu64 " bytes",
	      allocated(fd));
	CHECK(reads_as(&cf, fd, 4 * gib, sizeof(blk), blk), "data at 4 GiB");
	CHECK(reads_as(&cf, fd, (1ull << 40), sizeof(blk), blk),
	      "data at 1 TiB");
	CHECK(reads_as(&cf, fd, 3 * gib, 1 << 20, NULL), "zeros at 3 GiB");
	CHECK(reads_as(&cf, fd, 4 * gib - 7, 7, NULL), "zeros before 4 GiB");
	CHECK(reads_as(&cf, fd, 512 * gib, 1 << 20, NULL), "zeros at 512 GiB");
	/* fallocate mode 0 still means real bytes: refused up front */
	CHECK_RC(cfile_fallocate(&cf, fd, 0, 1ull << 60, 4096), -ENOSPC);
	cfile_destroy(&cf);
	close(fd);
}

/* The file of holes_tamper(): data blocks 0..3, a hole, data block 50,
 * a hole, data block 100 (the last, 10 bytes). */
static void holes_make(struct cfile *cf, int fd, uint32_t bs, uint8_t *model)
{
	size_t len = 100 * (size_t)bs + 10;

	memset(model, 0, len);
	t_fill(model, 4 * (size_t)bs, 81);
	t_fill(model + 50 * (size_t)bs, bs, 82);
	t_fill(model + 100 * (size_t)bs, 10, 83);
	CHECK_RC(cfile_create(cf, fd, t_bname(fd)), 0);
	CHECK_RC(cfile_write(cf, fd, 0, model, 4 * (size_t)bs, false, NULL), 0);
	CHECK_RC(cfile_truncate(cf, fd, len), 0);
	CHECK_RC(cfile_write(cf, fd, 100 * (uint64_t)bs, model + 100 * bs, 10,
			     false, NULL),
		 0);
	CHECK_RC(cfile_write(cf, fd, 50 * (uint64_t)bs, model + 50 * bs, bs,
			     false, NULL),
		 0);
}

/* From the adversary's seat, on the backing file: a zeroed or punched
 * data block, a zeroed or punched record, a record moved to another slot
 * or taken from another file: every one reads EIO and is a finding. */
static void holes_tamper(struct keyring *kr, uint32_t bs)
{
	size_t cb = bs + BLOCK_OVERHEAD, len = 100 * (size_t)bs + 10;
	uint8_t *model = malloc(len), *save = malloc(cb), *zero = calloc(1, cb);
	struct cfile cf, cf2;
	struct findings fi;
	int fd = tmpfd(), fd2 = tmpfd();
	uint64_t free0;
	struct {
		const char *what;
		uint64_t slot;		/* changed */
		int how;		/* 0 zero, 1 punch, 2 from slot src,
					 * 3 from the other file's slot */
		uint64_t src;
		uint64_t bad;		/* a block that must read EIO */
	} cases[] = {
		{ "zeroed data block in the middle of two holes", 50, 0, 0, 50 },
		{ "punched data block", 2, 1, 0, 2 },
		{ "zeroed data block before a hole", 3, 0, 0, 3 },
		{ "zeroed record", 99, 0, 0, 60 },
		{ "punched record", 49, 1, 0, 10 },
		{ "record moved to a zero slot", 70, 2, 99, 60 },
		{ "record moved onto another record", 49, 2, 99, 20 },
		{ "record from another file", 99, 3, 99, 98 },
	};

	CHECK(fd >= 0 && fd2 >= 0 && model && save && zero, "setup");
	if (fd < 0 || fd2 < 0 || !model || !save || !zero)
		return;
	cfile_init(&cf, kr, bs, fd);
	cfile_init(&cf2, kr, bs, fd2);
	holes_make(&cf, fd, bs, model);
	holes_make(&cf2, fd2, bs, model);
	CHECK(reads_as(&cf, fd, 0, len, model), "contents");
	/* the hole [4..99] split by block 50: records in 49 (start 4) and
	 * 99 (start 51) */
	CHECK(shape(fd, bs, 49) == 1 && shape(fd, bs, 99) == 1 &&
		      shape(fd, bs, 4) == 0 && shape(fd, bs, 98) == 0 &&
		      shape(fd, bs, 50) == 2,
	      "slots: 49 %d, 99 %d, 4 %d, 98 %d, 50 %d", shape(fd, bs, 49),
	      shape(fd, bs, 99), shape(fd, bs, 4), shape(fd, bs, 98),
	      shape(fd, bs, 50));
	CHECK(q_findings(&cf, fd, &fi) == 0, "clean file: %u findings (%s)",
	      fi.n, fi.last);
	free0 = allocated(fd);
	for (size_t i = 0; i < CMK_ARRAY_LEN(cases); i++) {
		uint64_t off = slot_at(bs, cases[i].slot);
		struct cfile fresh;
		int rc = 0;

		CHECK(pread(fd, save, cb, (off_t)off) == (ssize_t)cb, "save");
		if (cases[i].how == 0) {
			rc = put(fd, zero, cb, off);
		} else if (cases[i].how == 1) {
			rc = fallocate(fd, FALLOC_FL_PUNCH_HOLE |
						   FALLOC_FL_KEEP_SIZE,
				       (off_t)off, (off_t)cb);
		} else {
			int src = cases[i].how == 2 ? fd : fd2;
			uint8_t *p = malloc(cb);

			rc = p && pread(src, p, cb,
					(off_t)slot_at(bs, cases[i].src)) ==
					  (ssize_t)cb ?
				     put(fd, p, cb, off) :
				     -1;
			free(p);
		}
		CHECK_RC(rc, 0);
		/* a fresh cfile: nothing verified before the change */
		cfile_init(&fresh, kr, bs, fd);
		CHECK(q_fresh_load(kr, bs, fd) == 0 &&
			      cfile_load(&fresh, fd) == 0,
		      "load");
		CHECK(!reads_as(&fresh, fd, cases[i].bad * bs, bs,
				model + cases[i].bad * bs),
		      "%s: block %" PRIu64 " read back", cases[i].what,
		      cases[i].bad);
		CHECK(q_findings(&fresh, fd, &fi) > 0, "%s: no finding",
		      cases[i].what);
		if (getenv("TEST_VERBOSE") != NULL)
			printf("# %s: %u findings, last %s\n", cases[i].what,
			       fi.n, fi.last);
		cfile_destroy(&fresh);
		CHECK_RC(put(fd, save, cb, off), 0);
	}
	CHECK(reads_as(&cf, fd, 0, len, model), "contents restored");
	CHECK(q_findings(&cf, fd, &fi) == 0, "restored: %u findings (%s)",
	      fi.n, fi.last);
	(void)free0;
	cfile_destroy(&cf);
	cfile_destroy(&cf2);
	close(fd);
	close(fd2);
	free(model);
	free(save);
	free(zero);
}

/* Holes split, merged, shrunk into, punched and zeroed, against a model:
 * contents, no finding after any step, and the space punched freed. */
static void holes_ops(struct keyring *kr, uint32_t bs)
{
	size_t len = 100 * (size_t)bs + 10;
	uint8_t *model = malloc(len), *data = malloc(len);
	uint64_t a0, size = 0, res = 0;
	struct cfile cf;
	struct findings fi;
	int fd = tmpfd();

	CHECK(fd >= 0 && model && data, "setup");
	if (fd < 0 || !model || !data)
		return;
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	t_fill(model, len, 91);
	CHECK_RC(cfile_write(&cf, fd, 0, model, len, false, NULL), 0);
	a0 = allocated(fd);
	/* punch 10.5 .. 40.5 blocks: 11..39 become a hole, edges zeros */
	CHECK_RC(cfile_fallocate(&cf, fd,
				 FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 10 * (uint64_t)bs + bs / 2, 30 * (uint64_t)bs),
		 0);
	memset(model + 10 * bs + bs / 2, 0, 30 * (size_t)bs);
	CHECK(reads_as(&cf, fd, 0, len, model), "after punch");
	CHECK(shape(fd, bs, 39) == 1 && shape(fd, bs, 11) == 0 &&
		      shape(fd, bs, 10) == 2 && shape(fd, bs, 40) == 2,
	      "punch: slots 10 %d 11 %d 39 %d 40 %d", shape(fd, bs, 10),
	      shape(fd, bs, 11), shape(fd, bs, 39), shape(fd, bs, 40));
	CHECK(allocated(fd) + 20 * (uint64_t)bs < a0,
	      "punch freed %" PRIu64 " of %" PRIu64 " bytes", a0 - allocated(fd),
	      a0);
	CHECK(q_findings(&cf, fd, &fi) == 0, "punch: %s", fi.last);
	/* merge on both sides: 5..60, then 60..70 zero range */
	CHECK_RC(cfile_fallocate(&cf, fd,
				 FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				 5 * (uint64_t)bs, 55 * (uint64_t)bs),
		 0);
	CHECK_RC(cfile_fallocate(&cf, fd, FALLOC_FL_ZERO_RANGE,
				 60 * (uint64_t)bs, 10 * (uint64_t)bs),
		 0);
	memset(model + 5 * bs, 0, 65 * (size_t)bs);
	CHECK(reads_as(&cf, fd, 0, len, model), "after merges");
	CHECK(shape(fd, bs, 69) == 1 && shape(fd, bs, 59) == 0 &&
		      shape(fd, bs, 39) == 0 && shape(fd, bs, 5) == 0,
	      "merged: slots 69 %d 59 %d 39 %d", shape(fd, bs, 69),
	      shape(fd, bs, 59), shape(fd, bs, 39));
	CHECK(q_findings(&cf, fd, &fi) == 0, "merge: %s", fi.last);
	/* split: a write inside the hole, then one over its record */
	t_fill(data, 3 * (size_t)bs, 92);
	CHECK_RC(cfile_write(&cf, fd, 30 * (uint64_t)bs + 7, data,
			     2 * (size_t)bs, false, NULL),
		 0);
	memcpy(model + 30 * bs + 7, data, 2 * (size_t)bs);
	CHECK_RC(cfile_write(&cf, fd, 69 * (uint64_t)bs, data, bs, false,
			     NULL),
		 0);
	memcpy(model + 69 * bs, data, bs);
	CHECK(reads_as(&cf, fd, 0, len, model), "after splits");
	CHECK(q_findings(&cf, fd, &fi) == 0, "split: %s", fi.last);
	/* SEEK_DATA / SEEK_HOLE: holes [5..29], [33..68] */
	CHECK(cfile_seek(&cf, fd, 0, SEEK_HOLE, &res) == 0 && res == 5 * bs,
	      "SEEK_HOLE 0: %" PRIu64, res);
	CHECK(cfile_seek(&cf, fd, 5 * bs + 3, SEEK_HOLE, &res) == 0 &&
		      res == 5 * bs + 3,
	      "SEEK_HOLE in a hole: %" PRIu64, res);
	CHECK(cfile_seek(&cf, fd, 5 * bs, SEEK_DATA, &res) == 0 &&
		      res == 30 * bs,
	      "SEEK_DATA 5 blocks: %" PRIu64, res);
	CHECK(cfile_seek(&cf, fd, 34 * bs, SEEK_DATA, &res) == 0 &&
		      res == 69 * bs,
	      "SEEK_DATA 34 blocks: %" PRIu64, res);
	CHECK(cfile_seek(&cf, fd, 70 * bs, SEEK_HOLE, &res) == 0 && res == len,
	      "SEEK_HOLE at the end: %" PRIu64, res);
	CHECK(cfile_seek(&cf, fd, len, SEEK_DATA, &res) == -ENXIO &&
		      cfile_seek(&cf, fd, len, SEEK_HOLE, &res) == -ENXIO,
	      "seek at EOF: ENXIO");
	/* shrink into the hole, then grow again */
	CHECK_RC(cfile_truncate(&cf, fd, 50 * (uint64_t)bs + 5), 0);
	CHECK_RC(cfile_size(&cf, fd, &size), 0);
	CHECK(size == 50 * (uint64_t)bs + 5, "size after shrink");
	CHECK(reads_as(&cf, fd, 0, size, model), "after shrink into hole");
	CHECK(q_findings(&cf, fd, &fi) == 0, "shrink: %s", fi.last);
	CHECK_RC(cfile_truncate(&cf, fd, len), 0);
	memset(model + size, 0, len - size);
	CHECK(reads_as(&cf, fd, 0, len, model), "grown again");
	CHECK(q_findings(&cf, fd, &fi) == 0, "grown: %s", fi.last);
	/* a zeroed data block next to a hole is still EIO */
	{
		size_t cb = bs + BLOCK_OVERHEAD;
		uint8_t *z = calloc(1, cb);

		CHECK_RC(put(fd, z, cb, slot_at(bs, 30)), 0);
		CHECK(!reads_as(&cf, fd, 30 * bs, bs, model + 30 * bs),
		      "zeroed data block 30 read back");
		CHECK(q_findings(&cf, fd, &fi) > 0, "zeroed block 30: none");
		free(z);
	}
	cfile_destroy(&cf);
	close(fd);
	free(model);
	free(data);
}

/* ---- crash windows of the sparse paths (format 3) ---------------------- */

/* One change of the file of holes_make(): a write (data from seed), a
 * truncate, or an fallocate mode with KEEP_SIZE. */
enum cw_kind { CW_WRITE, CW_TRUNC, CW_FALLOC };

struct cw_op {
	const char *what;
	enum cw_kind kind;
	uint64_t off, len; /* blocks ×bs + bytes, see cw_bytes */
	int mode;	   /* CW_FALLOC */
};

/* The file, then `op` applied to model (cap bytes, *size in use). */
static int cw_apply(struct cfile *cf, int fd, const struct cw_op *op,
		    uint8_t *model, uint64_t *size)
{
	uint8_t *buf = NULL;
	int rc;

	switch (op->kind) {
	case CW_WRITE:
		buf = malloc(op->len);
		if (buf == NULL)
			return -ENOMEM;
		t_fill(buf, op->len, 91);
		rc = cfile_write(cf, fd, op->off, buf, op->len, false, NULL);
		memcpy(model + op->off, buf, op->len);
		if (op->off + op->len > *size)
			*size = op->off + op->len;
		free(buf);
		return rc;
	case CW_TRUNC:
		rc = cfile_truncate(cf, fd, op->off);
		if (op->off > *size)
			memset(model + *size, 0, op->off - *size);
		*size = op->off;
		return rc;
	default:
		rc = cfile_fallocate(cf, fd, op->mode, op->off, op->len);
		memset(model + op->off, 0, op->len);
		return rc;
	}
}

/* Slots before the last that look like data but do not open as full
 * blocks under the file's keys: the old last block a growth cut short
 * leaves (doc/FORMAT.md §3.4, "Growth"). UINT_MAX if it cannot tell. */
static unsigned cut_short_slots(struct keyring *kr, int fd, uint32_t bs)
{
	struct filekeys *fk = NULL;
	struct header h;
	uint64_t plain = 0, nb;
	unsigned n = 0;

	if (cfile_plain_size(backing_size(fd), bs, &plain) < 0 ||
	    cfile_read_header(fd, &h) < 0 || keyring_open_file(kr, &h, &fk) < 0)
		return UINT_MAX;
	nb = plain == 0 ? 1 : (plain - 1) / bs + 1;
	for (uint64_t b = 0; b + 1 < nb; b++)
		n += shape(fd, bs, b) == 2 && !opens_under(fk, fd, bs, b, false);
	keyring_filekeys_free(fk);
	return n;
}

static void release_none(void *ctx)
{
	(void)ctx;
}

/* A re-key of the file as a full rekey makes it: alone (reseal_file,
 * big files) or in a batch (small ones). 1 if re-sealed, -errno. */
static int q_reseal(struct cfile *cf, int fd, struct reseal_slot *s,
		    bool batch)
{
	struct reseal_batch rb;
	int rc;

	quiet(true);
	if (!batch) {
		rc = reseal_file(cf, fd, s, true);
	} else {
		rc = reseal_batch_init(&rb, s);
		if (rc == 0)
			rc = reseal_batch_add(&rb, cf, fd, true, release_none,
					      NULL);
		if (rc >= 0 && reseal_batch_flush(&rb) < 0)
			rc = -EIO;
		reseal_batch_destroy(&rb);
	}
	quiet(false);
	return rc;
}

/*
 * kill -9 at the entry of every backing change of each operation on a
 * sparse file (cfile_test_crash_at): after the "mount" (a fresh load, the
 * file's truncate record resolved), the size is the old or the new one,
 * every block reads as its old or its new bytes (nothing reads EIO), and
 * the block check (fsck) finds nothing. Growth past the end with a hole,
 * truncate up, writes into a hole (splitting it), punches, zero ranges
 * and shrinks into a hole each take several changes.
 */
static void holes_crash(struct keyring *kr, uint32_t bs)
{
	const uint64_t B = bs;
	const struct cw_op ops[] = {
	    {"write past the end over a hole", CW_WRITE, 120 * B + 5, 10, 0},
	    {"write past the end, hole, two chunks", CW_WRITE, 200 * B + 3,
	     (1u << 20) + 2 * B, 0},
	    {"write just past the end (no hole)", CW_WRITE, 100 * B + 20, B, 0},
	    {"truncate up over a hole", CW_TRUNC, 130 * B + 7, 0, 0},
	    {"truncate up, block aligned", CW_TRUNC, 140 * B, 0, 0},
	    {"write inside a hole", CW_WRITE, 20 * B + 100, 2 * B, 0},
	    {"write at a hole's start", CW_WRITE, 4 * B, B, 0},
	    {"write over a hole's record", CW_WRITE, 49 * B, B, 0},
	    {"write over hole, data, hole", CW_WRITE, 45 * B + 7, 10 * B, 0},
	    {"punch next to a hole", CW_FALLOC, 2 * B, 2 * B,
	     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
	    {"punch a block between holes", CW_FALLOC, 50 * B, B,
	     FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE},
	    {"zero range over data and hole", CW_FALLOC, B + 9, 8 * B,
	     FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE},
	    {"shrink into a hole", CW_TRUNC, 30 * B + 100, 0, 0},
	    {"shrink into a hole, block aligned", CW_TRUNC, 70 * B, 0, 0},
	};
	size_t cap = 520 * (size_t)bs + (2u << 20);
	uint8_t *m0 = calloc(1, cap), *m1 = calloc(1, cap), *got = malloc(cap),
		*got2 = malloc(cap);
	char jdir[] = "/tmp/cmkfs-test_cfile.j.XXXXXX";
	struct reseal_slot slot = { .fd = -1 };
	unsigned grown = 0;
	int jfd = -1;

	CHECK(m0 != NULL && m1 != NULL && got != NULL && got2 != NULL,
	      "alloc");
	CHECK(mkdtemp(jdir) != NULL, "mkdtemp");
	jfd = open(jdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(jfd >= 0, "journal dir");
	if (jfd >= 0)
		CHECK_RC(reseal_slot_open(&slot, jfd, "t"), 0);
	for (size_t i = 0;
	     m0 && m1 && got && jfd >= 0 && i < CMK_ARRAY_LEN(ops); i++) {
		const struct cw_op *op = &ops[i];
		uint64_t size0 = 100 * B + 10, size1 = size0;
		long n = 0;

		/* the whole operation: its changes counted, its result */
		for (long k = 0; k <= n; k++) {
			struct cfile cf, cf2;
			struct findings f;
			uint64_t size = 0, sz1 = size0;
			const char *why = NULL;
			size_t rd = 0;
			int fd = tmpfd(), rc;

			if (fd < 0)
				break;
			cfile_init(&cf, kr, bs, fd);
			cf.jfd = jfd;
			holes_make(&cf, fd, bs, m0);
			memcpy(m1, m0, size0);
			memset(m1 + size0, 0, cap - size0);
			cfile_test_crash_at(k);
			quiet(true);
			rc = cw_apply(&cf, fd, op, m1, &sz1);
			quiet(false);
			if (k == 0) {
				n = cfile_test_changes();
				size1 = sz1;
				CHECK_RC(rc, 0);
			} else {
				CHECK(rc < 0,
				      "%s: killed at change %ld of %ld "
				      "but it succeeded",
				      op->what, k, n);
			}
			cfile_test_crash_at(0);
			cfile_destroy(&cf);
			/* the next mount */
			cfile_init(&cf2, kr, bs, fd);
			cf2.jfd = jfd;
			quiet(true);
			rc = cfile_load(&cf2, fd);
			if (rc == 0)
				rc = cfile_resolve_truncate(&cf2, fd, jfd,
							    false, &why);
			quiet(false);
			CHECK(rc >= 0, "%s, killed at change %ld: load %d",
			      op->what, k, rc);
			if (rc >= 0)
				rc = q_size(&cf2, fd, &size);
			if (rc == 0 && size != size0 && size != size1) {
				CHECK(false,
				      "%s, killed at change %ld of %ld: "
				      "size %" PRIu64 ", not %" PRIu64
				      " or %" PRIu64,
				      op->what, k, n, size, size0, size1);
			}
			if (rc == 0)
				rc = q_read(&cf2, fd, 0, size, got, &rd);
			CHECK(rc == 0 && rd == size,
			      "%s, killed at change %ld "
			      "of %ld: read %d (fsynced data lost)",
			      op->what, k, n, rc);
			for (uint64_t b = 0; rc == 0 && b * B < size; b++) {
				size_t bl = size - b * B < B ? size - b * B : B;
				uint8_t *p = got + b * B;

				/* old bytes (zeros past the old end), or new */
				if (memcmp(p, m0 + b * B, bl) != 0 &&
				    memcmp(p, m1 + b * B, bl) != 0) {
					CHECK(false,
					      "%s, killed at change %ld: "
					      "block %" PRIu64 " neither old "
					      "nor new",
					      op->what, k, b);
					break;
				}
			}
			if (rc == 0)
				CHECK(q_findings(&cf2, fd, &f) == 0,
				      "%s, killed at change %ld of %ld: fsck: "
				      "%u findings, %s",
				      op->what, k, n, f.n, f.last);
			/* Then a full rekey re-seals every block (alone or in
			 * a batch): the file reads back the same, fsck finds
			 * nothing, and no cut-short slot is left. */
			if (rc == 0) {
				unsigned cut = cut_short_slots(kr, fd, bs);

				grown += cut != UINT_MAX ? cut : 0;
				rc = q_reseal(&cf2, fd, &slot, k % 2 == 1);
				CHECK(rc == 1,
				      "%s, killed at change %ld of %ld: "
				      "reseal %d (%u cut-short slots)",
				      op->what, k, n, rc, cut);
				cfile_destroy(&cf2);
				cfile_init(&cf2, kr, bs, fd);
				cf2.jfd = jfd;
				rd = 0;
				quiet(true);
				rc = cfile_load(&cf2, fd);
				quiet(false);
				if (rc == 0)
					rc = q_read(&cf2, fd, 0, size, got2,
						    &rd);
				CHECK(rc == 0 && rd == size &&
					      memcmp(got, got2, size) == 0,
				      "%s, killed at change %ld: after the "
				      "reseal: read %d, not as before",
				      op->what, k, rc);
				CHECK(q_findings(&cf2, fd, &f) == 0,
				      "%s, killed at change %ld: after the "
				      "reseal: fsck: %u findings, %s",
				      op->what, k, f.n, f.last);
				CHECK(cut_short_slots(kr, fd, bs) == 0,
				      "%s, killed at change %ld: the reseal "
				      "left a cut-short slot",
				      op->what, k);
			}
			cfile_destroy(&cf2);
			close(fd);
			if (k == 0)
				CHECK(n >= 1, "%s: %ld changes", op->what, n);
		}
	}
	/* the window between a growth's two writes was hit */
	CHECK(grown > 0, "no kill left a growth cut short");
	reseal_slot_close(&slot, true);
	if (jfd >= 0)
		close(jfd);
	rmdir(jdir);
	free(m0);
	free(m1);
	free(got);
	free(got2);
}

/* ---- tampering -------------------------------------------------------- */

/* A file of `len` plain bytes, and a copy of its backing bytes. */
struct tf {
	int fd;
	struct cfile cf;
	uint32_t bs;
	uint8_t *data;		/* plain */
	size_t len;
	uint8_t *back;		/* backing bytes */
	size_t blen;
	uint64_t nb;		/* blocks */
};

static int tf_make(struct tf *f, struct keyring *kr, uint32_t bs, size_t len,
		   uint32_t seed)
{
	int rc;

	memset(f, 0, sizeof(*f));
	f->bs = bs;
	f->len = len;
	f->nb = len == 0 ? 1 : (len - 1) / bs + 1;
	f->fd = tmpfd();
	cfile_init(&f->cf, kr, bs, f->fd);
	f->data = malloc(len + 1);
	if (f->fd < 0 || f->data == NULL)
		return -ENOMEM;
	t_fill(f->data, len, seed);
	rc = cfile_create(&f->cf, f->fd, t_bname(f->fd));
	if (rc == 0)
		rc = cfile_write(&f->cf, f->fd, 0, f->data, len, false, NULL);
	if (rc < 0)
		return rc;
	f->blen = backing_size(f->fd);
	f->back = malloc(f->blen);
	if (f->back == NULL)
		return -ENOMEM;
	if (pread(f->fd, f->back, f->blen, 0) != (ssize_t)f->blen)
		return -EIO;
	return 0;
}

static void tf_free(struct tf *f)
{
	cfile_destroy(&f->cf);
	if (f->fd >= 0)
		close(f->fd);
	free(f->data);
	free(f->back);
	f->fd = -1;
}

/* Put the original backing bytes back. */
static int tf_restore(struct tf *f)
{
	if (ftruncate(f->fd, (off_t)f->blen) < 0 ||
	    pwrite(f->fd, f->back, f->blen, 0) != (ssize_t)f->blen)
		return -errno;
	return 0;
}

static uint64_t tf_boff(const struct tf *f, uint64_t b)
{
	return HEADER_LEN + b * ((uint64_t)f->bs + BLOCK_OVERHEAD);
}

static size_t tf_bclen(const struct tf *f, uint64_t b)
{
	size_t plain = b == f->nb - 1 ? f->len - b * f->bs : f->bs;

	return plain + BLOCK_OVERHEAD;
}

/* Read block b through the cfile: 0 and right contents, or the error. */
static int tf_read_block(struct tf *f, uint64_t b)
{
	uint8_t *out = malloc(f->bs);
	size_t got = 0, want;
	int rc;

	if (out == NULL)
		return -ENOMEM;
	want = b == f->nb - 1 ? f->len - b * f->bs : f->bs;
	rc = q_read(&f->cf, f->fd, b * f->bs, f->bs, out, &got);
	if (rc == 0 && (got != want || memcmp(out, f->data + b * f->bs,
					      want) != 0))
		rc = -EIO;	/* wrong plaintext: never expected */
	free(out);
	return rc;
}

static int tf_read_all(struct tf *f)
{
	uint8_t *out = malloc(f->len + 1);
	size_t got = 0;
	int rc;

	if (out == NULL)
		return -ENOMEM;
	rc = q_read(&f->cf, f->fd, 0, f->len + 1, out, &got);
	if (rc == 0 && (got != f->len || memcmp(out, f->data, f->len) != 0))
		rc = -EIO;
	free(out);
	return rc;
}

/* Block `bad` fails with -EBADMSG, every other block reads right. */
static void tf_expect_bad(struct tf *f, uint64_t bad, const char *what)
{
	for (uint64_t b = 0; b < f->nb; b++) {
		int rc = tf_read_block(f, b);

		if (b == bad)
			CHECK(rc == -EBADMSG, "%s: block %llu read %d", what,
			      (unsigned long long)b, rc);
		else
			CHECK(rc == 0, "%s: good block %llu read %d", what,
			      (unsigned long long)b, rc);
	}
	CHECK(tf_read_all(f) == -EBADMSG, "%s: whole file read", what);
}

/* Which backing offsets to tamper with: all of them for small blocks; for
 * large ones (or when slow) the first and last 64 bytes of each block
 * and every 29th byte between (the run time is in cfile.c's per-call 1 MiB
 * wipe). */
static bool tf_pick(const struct tf *f, uint64_t off)
{
	uint64_t cb = (uint64_t)f->bs + BLOCK_OVERHEAD, r;

	if ((f->bs <= 1024 && !slow) || off < HEADER_LEN + 64)
		return true;
	r = (off - HEADER_LEN) % cb;
	return r < 64 || r >= cb - 64 || off + 64 >= f->blen ||
	       r % (slow ? 97 : 29) == 0;
}

static int put(int fd, const void *p, size_t n, uint64_t off)
{
	return pwrite(fd, p, n, (off_t)off) == (ssize_t)n ? 0 : -EIO;
}

static void tamper_blocks(struct keyring *kr, uint32_t bs)
{
	const size_t len = 3 * (size_t)bs + bs / 2;
	struct tf f, g;
	uint8_t *tmp = NULL;
	char what[64];

	CHECK_RC(tf_make(&f, kr, bs, len, 70), 0);
	CHECK_RC(tf_make(&g, kr, bs, len, 71), 0);
	tmp = malloc(2 * ((size_t)bs + BLOCK_OVERHEAD));
	if (f.back == NULL || g.back == NULL || tmp == NULL)
		goto out;
	CHECK(f.nb == 4 && f.blen == tf_boff(&f, 3) + bs / 2 + BLOCK_OVERHEAD,
	      "layout: %zu backing bytes", f.blen);
	CHECK_RC(tf_read_all(&f), 0);
	for (uint64_t b = 0; b < f.nb; b++)
		CHECK_RC(tf_read_block(&f, b), 0);

	/* Every byte of every block, one at a time. */
	for (size_t i = HEADER_LEN; i < f.blen; i++) {
		uint64_t b = (i - HEADER_LEN) / (bs + BLOCK_OVERHEAD);
		uint8_t x = f.back[i] ^ (uint8_t)(1 << (i % 8));
		int rc;

		if (!tf_pick(&f, i))
			continue;
		if (put(f.fd, &x, 1, i) < 0)
			break;
		rc = tf_read_block(&f, b);
		CHECK(rc == -EBADMSG, "byte %zu (block %llu): read %d", i,
		      (unsigned long long)b, rc);
		/* The open-time check looks at the last block only. */
		quiet(true);
		rc = cfile_check_tail(&f.cf, f.fd);
		quiet(false);
		CHECK(rc == (b == f.nb - 1 ? -EBADMSG : 0),
		      "byte %zu (block %llu): check_tail %d", i,
		      (unsigned long long)b, rc);
		/* The others still read, at a few positions per block. */
		if ((i - HEADER_LEN) % (bs + BLOCK_OVERHEAD) % 331 == 0) {
			snprintf(what, sizeof(what), "byte %zu", i);
			tf_expect_bad(&f, b, what);
		}
		CHECK_RC(put(f.fd, &f.back[i], 1, i), 0);
	}
	CHECK_RC(tf_read_all(&f), 0);

	/* A whole block zeroed. */
	for (uint64_t b = 0; b < f.nb; b++) {
		memset(tmp, 0, tf_bclen(&f, b));
		CHECK_RC(put(f.fd, tmp, tf_bclen(&f, b), tf_boff(&f, b)), 0);
		snprintf(what, sizeof(what), "zeroed block %llu",
			 (unsigned long long)b);
		tf_expect_bad(&f, b, what);
		CHECK_RC(tf_restore(&f), 0);
	}

	/* Two full blocks swapped; one copied over another. */
	for (uint64_t b = 0; b + 1 < f.nb - 1; b++) {
		size_t cl = bs + BLOCK_OVERHEAD;

		CHECK_RC(put(f.fd, f.back + tf_boff(&f, b), cl,
			     tf_boff(&f, b + 1)),
			 0);
		snprintf(what, sizeof(what), "block %llu copied over next",
			 (unsigned long long)b);
		tf_expect_bad(&f, b + 1, what);
		CHECK_RC(put(f.fd, f.back + tf_boff(&f, b + 1), cl,
			     tf_boff(&f, b)),
			 0);
		CHECK(tf_read_block(&f, b) == -EBADMSG &&
			      tf_read_block(&f, b + 1) == -EBADMSG,
		      "blocks %llu and %llu swapped", (unsigned long long)b,
		      (unsigned long long)b + 1);
		CHECK_RC(tf_restore(&f), 0);
	}
	/* The last (short) block moved to an earlier place, the file cut
	 * after it: block 1's bytes there as the last block. */
	CHECK_RC(ftruncate(f.fd, (off_t)tf_boff(&f, 2)), 0);
	CHECK_RC(put(f.fd, f.back + tf_boff(&f, 3), tf_bclen(&f, 3),
		     tf_boff(&f, 2)),
		 0);
	{
		uint8_t out[16];
		size_t got;

		CHECK_RC(q_read(&f.cf, f.fd, 2 * (uint64_t)bs, sizeof(out),
				out, &got),
			 -EBADMSG);
	}
	CHECK_RC(tf_restore(&f), 0);

	/* The same block number of another file of the same volume. */
	for (uint64_t b = 0; b < f.nb; b++) {
		CHECK_RC(put(f.fd, g.back + tf_boff(&g, b), tf_bclen(&g, b),
			     tf_boff(&f, b)),
			 0);
		snprintf(what, sizeof(what), "block %llu of another file",
			 (unsigned long long)b);
		tf_expect_bad(&f, b, what);
		CHECK_RC(tf_restore(&f), 0);
	}
	/* Another file's blocks under this file's header: none reads. */
	CHECK_RC(put(f.fd, g.back + HEADER_LEN, g.blen - HEADER_LEN,
		     HEADER_LEN),
		 0);
	for (uint64_t b = 0; b < f.nb; b++)
		CHECK_RC(tf_read_block(&f, b), -EBADMSG);
	CHECK_RC(tf_restore(&f), 0);

	/* A whole cipher block punched out of the backing file. */
	for (uint64_t b = 0; b < f.nb; b++) {
		uint64_t o = tf_boff(&f, b);
		size_t cl = tf_bclen(&f, b);
		int rc = fallocate(f.fd,
				   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   (off_t)o, (off_t)cl);

		if (rc < 0) {
			fprintf(stderr, "  skip punch test: fallocate: %s\n",
				strerror(errno));
			break;
		}
		memset(tmp, 0xaa, cl);
		CHECK(pread(f.fd, tmp, cl, (off_t)o) == (ssize_t)cl &&
			      tmp[0] == 0 && tmp[cl - 1] == 0,
		      "punched block %llu not zero", (unsigned long long)b);
		CHECK(backing_size(f.fd) == f.blen, "punch changed the size");
		snprintf(what, sizeof(what), "punched block %llu",
			 (unsigned long long)b);
		tf_expect_bad(&f, b, what);
		CHECK_RC(tf_restore(&f), 0);
	}
	CHECK_RC(tf_read_all(&f), 0);
out:
	free(tmp);
	tf_free(&f);
	tf_free(&g);
}

static int q_tail(struct tf *f)
{
	int rc;

	quiet(true);
	rc = cfile_check_tail(&f->cf, f->fd);
	quiet(false);
	return rc;
}

static void tamper_truncation(struct keyring *kr, uint32_t bs)
{
	const size_t len = 3 * (size_t)bs + bs / 2;
	uint64_t size = 0;
	struct tf f, e;
	int rc;

	CHECK_RC(tf_make(&f, kr, bs, len, 80), 0);
	CHECK_RC(tf_make(&e, kr, bs, 0, 81), 0);
	if (f.back == NULL || e.back == NULL)
		goto out;

	/* The last block dropped exactly: the new last block was sealed as
	 * not-last. */
	CHECK_RC(q_tail(&f), 0);
	CHECK_RC(q_tail(&e), 0);
	CHECK_RC(ftruncate(f.fd, (off_t)tf_boff(&f, 3)), 0);
	CHECK_RC(cfile_size(&f.cf, f.fd, &size), 0);
	CHECK(size == 3 * (uint64_t)bs, "size %llu", (unsigned long long)size);
	CHECK_RC(q_tail(&f), -EBADMSG);
	CHECK_RC(tf_read_block(&f, 2), -EBADMSG);
	CHECK_RC(tf_read_block(&f, 0), 0);
	CHECK_RC(tf_read_block(&f, 1), 0);
	CHECK_RC(ftruncate(f.fd, (off_t)tf_boff(&f, 2)), 0);
	CHECK_RC(tf_read_block(&f, 1), -EBADMSG);
	CHECK_RC(ftruncate(f.fd, (off_t)tf_boff(&f, 1)), 0);
	CHECK_RC(tf_read_block(&f, 0), -EBADMSG);
	CHECK_RC(tf_restore(&f), 0);

	/* Mid-block: in the overhead (size refused) or in the data (the
	 * block fails). */
	CHECK_RC(ftruncate(f.fd, (off_t)(tf_boff(&f, 3) + 30)), 0);
	CHECK_RC(q_size(&f.cf, f.fd, &size), -EBADMSG);
	CHECK_RC(tf_read_block(&f, 0), -EBADMSG);
	CHECK_RC(ftruncate(f.fd, (off_t)(tf_boff(&f, 2) + 100)), 0);
	CHECK_RC(tf_read_block(&f, 2), -EBADMSG);
	CHECK_RC(tf_restore(&f), 0);

	/* Cut to exactly the header: an error, not an empty file. */
	CHECK_RC(ftruncate(f.fd, HEADER_LEN), 0);
	CHECK_RC(q_size(&f.cf, f.fd, &size), -EBADMSG);
	CHECK_RC(q_tail(&f), -EBADMSG);
	CHECK_RC(tf_read_block(&f, 0), -EBADMSG);
	CHECK_RC(tf_restore(&f), 0);
	CHECK_RC(ftruncate(e.fd, HEADER_LEN), 0);
	CHECK_RC(q_size(&e.cf, e.fd, &size), -EBADMSG);
	CHECK_RC(q_tail(&e), -EBADMSG);
	CHECK_RC(tf_restore(&e), 0);
	/* Cut to the header plus an empty block's worth: looks like an
	 * empty file, and the first block's bytes are no empty last block. */
	CHECK_RC(ftruncate(f.fd, HEADER_LEN + BLOCK_OVERHEAD), 0);
	CHECK_RC(q_tail(&f), -EBADMSG);
	CHECK_RC(tf_restore(&f), 0);
	CHECK_RC(cfile_size(&e.cf, e.fd, &size), 0);
	CHECK(size == 0, "empty file size %llu", (unsigned long long)size);

	/* Every shorter length: the open-time check fails, and so does
	 * reading the whole file -- except at HEADER_LEN + BLOCK_OVERHEAD,
	 * which has the size of an empty file, where a read returns nothing
	 * and only cfile_check_tail() can tell. */
	for (size_t n = f.blen; n-- > 0;) {
		if (!tf_pick(&f, n))
			continue;
		if (ftruncate(f.fd, (off_t)n) < 0)
			break;
		rc = q_tail(&f);
		CHECK(rc == -EBADMSG, "cut to %zu: check_tail %d", n, rc);
		rc = tf_read_all(&f);
		if (n != HEADER_LEN + BLOCK_OVERHEAD)
			CHECK(rc == -EBADMSG, "cut to %zu: read %d", n, rc);
		if (n < HEADER_LEN)
			CHECK_RC(q_fresh_load(kr, bs, f.fd), -EBADMSG);
	}
	CHECK_RC(tf_restore(&f), 0);
	CHECK_RC(tf_read_all(&f), 0);
out:
	tf_free(&f);
	tf_free(&e);
}

static void tamper_header(struct keyring *kr, struct keyring *kr_other,
			  uint32_t bs)
{
	const size_t len = 3 * (size_t)bs + bs / 2;
	struct tf f, g, x;
	struct header h;
	struct cfile cf;
	int parsed = 0;

	CHECK_RC(tf_make(&f, kr, bs, len, 90), 0);
	CHECK_RC(tf_make(&g, kr, bs, len, 91), 0);
	CHECK_RC(tf_make(&x, kr_other, bs, len, 92), 0);
	if (f.back == NULL || g.back == NULL || x.back == NULL)
		goto out;
	CHECK_RC(q_fresh_load(kr, bs, f.fd), 0);

	/* Every bit of the header. */
	for (size_t i = 0; i < HEADER_LEN * 8; i++) {
		uint8_t c = f.back[i / 8] ^ (uint8_t)(1 << (i % 8));
		int rc;

		if (put(f.fd, &c, 1, i / 8) < 0)
			break;
		rc = q_fresh_load(kr, bs, f.fd);
		CHECK(rc == -EBADMSG || rc == -EKEYREJECTED,
		      "header bit %zu: load %d", i, rc);
		parsed += rc == -EKEYREJECTED;
		CHECK_RC(put(f.fd, &f.back[i / 8], 1, i / 8), 0);
	}
	/* Magic and version refused by the parser, but for version 3 -> 1
	 * (an older header: refused in a format-3 volume); the sealing count
	 * (bytes 6..7) parses, and its wraps refuse it changed. */
	CHECK(parsed == (HEADER_LEN - 6) * 8 + 1, "%d flips parsed", parsed);
	CHECK_RC(q_fresh_load(kr, bs, f.fd), 0);

	/* A header of another volume: the DEKs do not unwrap. */
	CHECK_RC(put(f.fd, x.back, HEADER_LEN, 0), 0);
	CHECK_RC(q_fresh_load(kr, bs, f.fd), -EKEYREJECTED);
	CHECK_RC(tf_restore(&f), 0);

	/* A header of another file of the same volume is a valid header,
	 * so it loads; its file id is not the one the blocks are bound to,
	 * so no block reads. */
	CHECK_RC(put(f.fd, g.back, HEADER_LEN, 0), 0);
	cfile_init(&cf, kr, bs, f.fd);
	CHECK_RC(cfile_load(&cf, f.fd), 0);
	for (uint64_t b = 0; b < f.nb; b++) {
		uint8_t out[8];
		size_t got;

		CHECK_RC(q_read(&cf, f.fd, b * bs, sizeof(out), out, &got),
			 -EBADMSG);
	}
	cfile_destroy(&cf);
	CHECK_RC(tf_restore(&f), 0);
	/* A header shorter than HEADER_LEN. */
	CHECK_RC(ftruncate(f.fd, HEADER_LEN - 1), 0);
	CHECK_RC(cfile_read_header(f.fd, &h), -EBADMSG);
	CHECK_RC(q_fresh_load(kr, bs, f.fd), -EBADMSG);
	CHECK_RC(ftruncate(f.fd, 0), 0);
	CHECK_RC(q_fresh_load(kr, bs, f.fd), -EBADMSG);
	CHECK_RC(tf_restore(&f), 0);
	CHECK_RC(q_fresh_load(kr, bs, f.fd), 0);
	/* Bytes to struct without keys: the file id is the one created. */
	CHECK_RC(cfile_read_header(f.fd, &h), 0);
	CHECK(memcmp(h.file_id, f.cf.hdr.file_id, FILE_ID_LEN) == 0,
	      "cfile_read_header: file id");
	CHECK_RC(put(f.fd, x.back, HEADER_LEN, 0), 0);
	CHECK_RC(cfile_read_header(f.fd, &h), 0);
	CHECK(memcmp(h.file_id, f.cf.hdr.file_id, FILE_ID_LEN) != 0,
	      "another volume's header parses: unwrapping is not ours");
	CHECK_RC(tf_restore(&f), 0);
out:
	tf_free(&f);
	tf_free(&g);
	tf_free(&x);
}

/* ---- sealing budget (doc/FORMAT.md §3.3) ------------------------------- */

#define BG_BLOCKS 8		/* file size in blocks */
#define BG_BUDGET 1600		/* CMKFS_TEST_SEAL_BUDGET: unit 100 */

static void budget_env(void)
{
	static const char *const bad[] = {
		"0", "15", "abc", "-1", "+100", " 100", "100x", "1e6",
		"4026531841",		/* CFILE_SEAL_BUDGET + 1: raises it */
		"4294967296", "18446744073709551615",
		"99999999999999999999999",
	};

	CHECK(cfile_budget() == CFILE_SEAL_BUDGET &&
		      CFILE_SEAL_BUDGET == 4026531840ull &&
		      cfile_seal_unit() == HEADER_SEAL_UNIT,
	      "default budget %llu, unit %llu",
	      (unsigned long long)cfile_budget(),
	      (unsigned long long)cfile_seal_unit());
	for (size_t i = 0; i < CMK_ARRAY_LEN(bad); i++) {
		setenv(CFILE_TEST_BUDGET_ENV, bad[i], 1);
		CHECK_RC(cfile_budget_from_env(), -EINVAL);
		CHECK(cfile_budget() == CFILE_SEAL_BUDGET, "'%s' changed it",
		      bad[i]);
	}
	setenv(CFILE_TEST_BUDGET_ENV, "", 1);
	CHECK_RC(cfile_budget_from_env(), 0);
	CHECK(cfile_budget() == CFILE_SEAL_BUDGET, "empty");
	setenv(CFILE_TEST_BUDGET_ENV, "4026531840", 1);	/* the default */
	CHECK_RC(cfile_budget_from_env(), 0);
	CHECK(cfile_budget() == CFILE_SEAL_BUDGET &&
		      cfile_seal_unit() == HEADER_SEAL_UNIT, "at the default");
	setenv(CFILE_TEST_BUDGET_ENV, "1600", 1);
	CHECK_RC(cfile_budget_from_env(), 0);
	CHECK(cfile_budget() == BG_BUDGET && cfile_seal_unit() == 100,
	      "lowered: budget %llu unit %llu",
	      (unsigned long long)cfile_budget(),
	      (unsigned long long)cfile_seal_unit());
	unsetenv(CFILE_TEST_BUDGET_ENV);
}

static int disk_header(int fd, struct header *h)
{
	return cfile_read_header(fd, h);
}

/* The header on disk reserves at least `made` seals. */
static bool covered(int fd, uint64_t made, uint64_t *limit)
{
	struct header h;

	*limit = 0;
	if (disk_header(fd, &h) < 0)
		return false;
	*limit = cfile_seal_limit(&h);
	return made <= *limit;
}

/* Does block b of the backing file open under fk? */
static bool opens_under(struct filekeys *fk, int fd, uint32_t bs, uint64_t b,
			bool last)
{
	size_t cb = bs + BLOCK_OVERHEAD;
	uint8_t *ct = malloc(cb), *pt = malloc(bs);
	bool ok = ct && pt &&
		  pread(fd, ct, cb, HEADER_LEN + (off_t)(b * cb)) ==
			  (ssize_t)cb &&
		  block_open(&fk->bc, b, last, ct, cb, pt) == 0;

	free(ct);
	free(pt);
	return ok;
}

static void budget_cmp(struct cfile *cf, int fd, const uint8_t *model,
		       size_t len, const char *when)
{
	uint8_t *back = malloc(len + 1);
	size_t got = 0;

	CHECK(back != NULL, "malloc");
	if (back == NULL)
		return;
	CHECK_RC(cfile_read(cf, fd, 0, len + 1, back, &got), 0);
	CHECK(got == len && memcmp(back, model, len) == 0,
	      "%s: contents differ (%zu bytes read)", when, got);
	free(back);
}

static void budget(struct keyring *kr, uint32_t bs)
{
	const size_t len = BG_BLOCKS * (size_t)bs;
	char jdir[] = "/tmp/cmkfs-test_cfile-journal.XXXXXX";
	uint8_t *model = malloc(len), *blk = malloc(bs), *big = NULL;
	uint64_t made, limit = 0, rekeys = 0, unit = cfile_seal_unit();
	struct filekeys *old_fk = NULL;
	struct reseal_budget rb;
	struct header h0, h1, h;
	struct cfile cf, snap;
	int fd = tmpfd(), sfd = tmpfd(), jfd = -1;
	unsigned reservations = 0, uncovered = 0, over = 0;
	uint16_t units_seen;

	CHECK(model && blk && fd >= 0 && sfd >= 0 && mkdtemp(jdir) != NULL,
	      "setup");
	jfd = open(jdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (!model || !blk || fd < 0 || sfd < 0 || jfd < 0)
		goto out;
	t_fill(model, len, 300);

	/* 1. A new file: the empty block is the first unit's first seal;
	 * then 8 blocks (9 seals), all inside the first unit: no header
	 * write. */
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_create(&cf, fd, t_bname(fd)), 0);
	CHECK_RC(disk_header(fd, &h0), 0);
	CHECK(h0.seal_units == 0, "new file count %u", h0.seal_units);
	CHECK_RC(cfile_write(&cf, fd, 0, model, len, false, NULL), 0);
	made = 1 + BG_BLOCKS;
	CHECK_RC(disk_header(fd, &h), 0);
	CHECK(memcmp(&h, &h0, sizeof(h)) == 0, "header written inside the "
	      "first unit");

	/* 2. Rewritten in place, one block at a time: after every write the
	 * header on disk counts every seal made (a crash anywhere leaves
	 * the count at or above the truth), and it is written once a unit. */
	units_seen = h0.seal_units;
	for (unsigned i = 0; i < 450; i++) {
		uint64_t b = i % BG_BLOCKS;

		t_fill(model + b * bs, bs, 1000 + i);
		CHECK_RC(cfile_write(&cf, fd, b * bs, model + b * bs, bs,
				     false, NULL), 0);
		made++;
		uncovered += !covered(fd, made, &limit);
		over += limit > made + unit;	/* reserves ahead by a unit */
		if (disk_header(fd, &h) == 0 && h.seal_units != units_seen) {
			reservations++;
			units_seen = h.seal_units;
		}
	}
	CHECK(uncovered == 0, "%u writes left seals uncounted", uncovered);
	CHECK(over == 0, "%u writes reserved more than a unit ahead", over);
	CHECK(reservations == (made - 1) / unit,
	      "%u header writes for %llu seals", reservations,
	      (unsigned long long)made);
	CHECK_RC(disk_header(fd, &h1), 0);
	CHECK(memcmp(h1.file_id, h0.file_id, FILE_ID_LEN) == 0 &&
		      h1.kek_gen == h0.kek_gen,
	      "reservations keep file id and generation");
	budget_cmp(&cf, fd, model, len, "after the rewrites");

	/* 3. A crash now (the backing file as it is, no close): a new load
	 * counts every seal the header reserves, at least those made; its
	 * first write reserves a new unit above them. */
	{
		uint8_t *copy = malloc(backing_size(fd));
		ssize_t n = copy ? pread(fd, copy, backing_size(fd), 0) : -1;

		CHECK(n > 0 && pwrite(sfd, copy, (size_t)n, 0) == n, "copy");
		free(copy);
	}
	cfile_init(&snap, kr, bs, sfd);
	CHECK_RC(cfile_load(&snap, sfd), 0);
	CHECK(snap.seals >= made && snap.seals == cfile_seal_limit(&h1),
	      "after a crash: %llu counted, %llu made",
	      (unsigned long long)snap.seals, (unsigned long long)made);
	CHECK_RC(cfile_write(&snap, sfd, 0, model, 1, false, NULL), 0);
	CHECK_RC(disk_header(sfd, &h), 0);
	CHECK(h.seal_units == h1.seal_units + 1 &&
		      cfile_seal_limit(&h) > made,
	      "first write after the crash: units %u -> %u", h1.seal_units,
	      h.seal_units);
	budget_cmp(&snap, sfd, model, len, "the crashed copy");
	cfile_destroy(&snap);

	/* 4. Closed and reopened: the count is what the header says, and a
	 * growth that fails half way (file size limit) counts its seals
	 * all the same: they were reserved before they were made. */
	cfile_destroy(&cf);
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_load(&cf, fd), 0);
	CHECK(cf.seals == cfile_seal_limit(&h1), "reopened count %llu",
	      (unsigned long long)cf.seals);
	made = cf.seals;	/* from now on: counted as the header says */
	{
		struct rlimit old, lim;
		uint64_t grow = 16;

		big = calloc(grow, bs);
		signal(SIGXFSZ, SIG_IGN);
		CHECK_RC(getrlimit(RLIMIT_FSIZE, &old), 0);
		lim = old;
		lim.rlim_cur = backing_size(fd) + bs;
		CHECK_RC(setrlimit(RLIMIT_FSIZE, &lim), 0);
		quiet(true);
		CHECK(big != NULL && cfile_write(&cf, fd, len, big, grow * bs,
						 false, NULL) == -EFBIG,
		      "growth past the file size limit");
		quiet(false);
		CHECK_RC(setrlimit(RLIMIT_FSIZE, &old), 0);
		made += 1 + grow;	/* old last block and the new ones */
		CHECK(covered(fd, made, &limit),
		      "a failed write's seals: %llu made, %llu reserved",
		      (unsigned long long)made, (unsigned long long)limit);
		budget_cmp(&cf, fd, model, len, "after the failed growth");
	}

	/* 5. The budget: written on until it is reached three times. Each
	 * time the file is re-keyed (fresh DEKs, same id, every block
	 * re-sealed, count back to the blocks it holds), exactly when the
	 * next seal would pass the budget; the old DEKs open none of it. */
	reseal_budget_init(&rb);
	cf.jfd = jfd;
	cf.rekey = reseal_budget_rekey;
	cf.rekey_arg = &rb;
	CHECK_RC(disk_header(fd, &h0), 0);
	CHECK_RC(keyring_open_file(kr, &h0, &old_fk), 0);
	uncovered = 0;
	for (unsigned i = 0; i < 5000 && rekeys < 3; i++) {
		uint64_t b = (i * 3) % BG_BLOCKS, before = made, n = 1;
		bool trunc = i % 37 == 36;

		if (trunc) {
			/* a shrink re-seals the new last block; the
			 * growth back re-seals it again: 2 seals */
			memset(model + len - bs + 100, 0, bs - 100);
			CHECK_RC(cfile_truncate(&cf, fd, len - bs + 100), 0);
			CHECK_RC(cfile_truncate(&cf, fd, len), 0);
			n = 2;
		} else {
			t_fill(model + b * bs, bs, 5000 + i);
			CHECK_RC(cfile_write(&cf, fd, b * bs, model + b * bs,
					     bs, false, NULL), 0);
		}
		pthread_mutex_lock(&rb.mtx);
		if (rb.rekeys != rekeys) {
			CHECK(rb.rekeys == rekeys + 1, "two re-keys at once");
			rekeys = rb.rekeys;
			/* re-keyed before this op's first (or, for the
			 * truncate pair, second) seal: the old DEKs made
			 * exactly the budget */
			CHECK(trunc ? (before + 1 == cfile_budget() ||
				       before == cfile_budget()) :
				      before == cfile_budget(),
			      "re-keyed after %llu seals, budget %llu",
			      (unsigned long long)before,
			      (unsigned long long)cfile_budget());
			made = BG_BLOCKS +
			       (trunc && before + 1 == cfile_budget() ? 1 : n);
			CHECK_RC(disk_header(fd, &h), 0);
			CHECK(memcmp(h.file_id, h0.file_id, FILE_ID_LEN) == 0,
			      "re-key keeps the file id");
			CHECK(memcmp(h.wrap_inner, h0.wrap_inner,
				     AEAD_WRAP_LEN) != 0 &&
				      memcmp(h.wrap_outer, h0.wrap_outer,
					     AEAD_WRAP_LEN) != 0,
			      "re-key: new wraps");
			CHECK(h.seal_units ==
				      cfile_units_for(BG_BLOCKS + unit),
			      "count after the re-key: %u units",
			      h.seal_units);
			for (uint64_t k = 0; k < BG_BLOCKS; k++)
				CHECK(!opens_under(old_fk, fd, bs, k,
						   k == BG_BLOCKS - 1),
				      "block %llu still opens under the "
				      "first DEKs", (unsigned long long)k);
			budget_cmp(&cf, fd, model, len, "after a re-key");
		} else {
			made += n;
		}
		pthread_mutex_unlock(&rb.mtx);
		CHECK(made <= cfile_budget(), "%llu seals under one key",
		      (unsigned long long)made);
		uncovered += !covered(fd, made, &limit);
	}
	CHECK(rekeys == 3, "%llu re-keys", (unsigned long long)rekeys);
	CHECK(uncovered == 0, "%u ops left seals uncounted", uncovered);
	budget_cmp(&cf, fd, model, len, "at the end");
	{
		struct stat st;

		CHECK(fstatat(jfd, "reseal.budget", &st, 0) == 0 &&
			      st.st_size == 0,
		      "the re-key's record is left empty");
	}
	cfile_destroy(&cf);
	/* reopened: everything reads, the tail authenticates */
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_load(&cf, fd), 0);
	CHECK_RC(cfile_check_tail(&cf, fd), 0);
	budget_cmp(&cf, fd, model, len, "reopened");
	cfile_destroy(&cf);

	/* 6. Without a re-key hook a spent budget fails the write and
	 * changes nothing. */
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_load(&cf, fd), 0);
	cf.seals = cfile_budget();
	quiet(true);
	CHECK_RC(cfile_write(&cf, fd, 0, blk, 1, false, NULL), -EFBIG);
	quiet(false);
	budget_cmp(&cf, fd, model, len, "after a refused write");
	cfile_destroy(&cf);
	reseal_budget_destroy(&rb);
	CHECK(!tvol_exists(jfd, "reseal.budget"),
	      "an empty record is removed at the end");
out:
	keyring_filekeys_free(old_fk);
	free(big);
	free(model);
	free(blk);
	if (jfd >= 0) {
		(void)unlinkat(jfd, "reseal.budget", 0);
		close(jfd);
		rmdir(jdir);
	}
	if (fd >= 0)
		close(fd);
	if (sfd >= 0)
		close(sfd);
}

int main(void)
{
	static const uint32_t bss[] = { 4096, 512 };

	/* cfile.c allocates 1 MiB chunk buffers per call; keep glibc from
	 * returning them to the kernel after every call (page faults
	 * dominated the run time). */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 64 << 20);
#ifdef CMKFS_SANITIZED
	slow = true;
#else
	slow = RUNNING_ON_VALGRIND;
#endif
	CHECK_RC(aead_global_init(), 0);
	for (size_t i = 0; i < CMK_ARRAY_LEN(bss); i++) {
		uint32_t bs = bss[i];
		struct tvol_mem vo, other;

		sizes(bs);
		CHECK_RC(tvol_mem_make(&vo, bs, 100 + (uint32_t)i), 0);
		CHECK_RC(tvol_mem_make(&other, bs, 200 + (uint32_t)i), 0);
		if (vo.kr != NULL && other.kr != NULL) {
			errors(vo.kr, bs);
			holes_sparse(vo.kr, bs);
			holes_tamper(vo.kr, bs);
			holes_ops(vo.kr, bs);
			holes_crash(vo.kr, bs);
			/* the growth guard of real bytes, as formats 1 and
			 * 2 grow (sealed zeros): the volume read as one */
			keyring_test_set_version(vo.kr, 2);
			far_growth(vo.kr, bs);
			keyring_test_set_version(vo.kr, 3);
			write0(vo.kr, bs);
			model_run(vo.kr, bs, 0x9e3779b97f4a7c15ull + bs,
				  (bs == 4096 ? 20000 : 10000) /
					  (slow ? 20 : 1));
			tamper_blocks(vo.kr, bs);
			tamper_truncation(vo.kr, bs);
			tamper_header(vo.kr, other.kr, bs);
		}
		tvol_mem_free(&vo);
		tvol_mem_free(&other);
	}
	sizes(BLOCK_SIZE_MAX);
	/* Last: it lowers the process's budget. */
	budget_env();
	{
		struct tvol_mem vo;

		CHECK_RC(tvol_mem_make(&vo, 4096, 300), 0);
		if (vo.kr != NULL)
			budget(vo.kr, 4096);
		tvol_mem_free(&vo);
	}
	return t_done("test_cfile");
}
