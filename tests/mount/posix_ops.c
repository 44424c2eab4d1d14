/*
 * posix_ops.c - POSIX behaviour checker for a mounted file system.
 *
 * Written from scratch in the spirit of libfuse's test/test_syscalls.c.
 * Every check is a named test function that runs in its own
 * subdirectory of a fresh directory "posix_ops.XXXXXX" created in DIR.
 * A failing test does not stop the run.  Each test prints one line:
 *
 *   ok NAME               passed (possibly followed by "(note: ...)")
 *   skip NAME: why        the file system does not support the feature
 *                         (only for fallocate and user xattrs returning
 *                         EOPNOTSUPP, and the large file test without -x)
 *   FAIL NAME: reason     what was done, on which file, expected vs got
 *
 * Covered: create/open/read/write at various offsets, owner of new
 * files, open errors, O_EXCL, O_TRUNC, O_APPEND through two descriptors,
 * truncate and ftruncate up and down (mid-block and on 4096 boundaries),
 * holes,
 * fallocate (mode 0 and KEEP_SIZE), mkdir/rmdir, readdir of 3000 entries
 * (names of many lengths, one of 255 bytes, UTF-8, odd bytes), 255-byte
 * names, 256-byte names (ENAMETOOLONG), rename (file over file, directory
 * over empty/non-empty directory, type mismatches, same file, across
 * directories, renameat2 RENAME_NOREPLACE and RENAME_EXCHANGE), unlink or
 * rename of an open file, symlinks, hard links, chmod, chown, utimensat
 * with nanoseconds, UTIME_NOW and UTIME_OMIT, statvfs, fsync/fdatasync,
 * fcntl POSIX locks against a forked child, flock, shared mmap, user
 * xattrs, mkfifo, 8 threads writing one file concurrently, 64 open
 * descriptors, a 20 MiB file, and with -x a sparse file past 4 GiB.
 * Directory st_nlink is deliberately not checked.
 *
 * Usage: posix_ops [-x] DIR
 *   -x  also run the large file test (1 MiB written at 4 GiB + 12345)
 *
 * Example: ./posix_ops -x /mnt/cmkfs
 *
 * Exit status: 0 all passed, 1 some test failed, 77 DIR is unusable
 * (skip), 99 usage error.  The last line is
 * "posix_ops: N passed, M failed".  On success the test directory is
 * removed; after a failure it is left in place for inspection.
 */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>

#define SKIP		1
#define BS		4096
#define NPATHBUF	16

static char base[PATH_MAX];
static char tdir[PATH_MAX];
static char reason[2048];
static char note_buf[512];
static char pathbufs[NPATHBUF][PATH_MAX];
static unsigned int pathidx;
static size_t pagesize;

static sigjmp_buf bus_jmp;
static volatile sig_atomic_t bus_armed;

/* ------------------------------------------------------------------ */
/* helpers                                                             */

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* record the first failure reason of the current test */
static void fail(const char *fmt, ...)
{
	va_list ap;

	if (reason[0])
		return;
	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	if (!reason[0])
		snprintf(reason, sizeof(reason), "(no reason given)");
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void note(const char *fmt, ...)
{
	size_t len = strlen(note_buf);
	va_list ap;

	if (len && len < sizeof(note_buf) - 2) {
		note_buf[len++] = ';';
		note_buf[len++] = ' ';
		note_buf[len] = '\0';
	}
	va_start(ap, fmt);
	vsnprintf(note_buf + len, sizeof(note_buf) - len, fmt, ap);
	va_end(ap);
}

#define CHECK(cond, ...)						\
	do {								\
		if (!(cond)) {						\
			fail(__VA_ARGS__);				\
			goto out;					\
		}							\
	} while (0)

/* r must not be negative */
#define CHECK_OK(r, what)						\
	CHECK((r) >= 0, "%s: unexpected error %s", (what), es(-1))

/* r must be -1 with errno e */
#define CHECK_ERR(r, e, what)						\
	CHECK((r) == -1 && errno == (e), "%s: expected %s, got %s",	\
	      (what), en(e), es(r))

/* r must be -1 with errno e1 or e2 */
/* renameat2 result r must not be negative; hint when flags are refused */
#define CHECK_RENAME2(r, what)						\
	CHECK((r) >= 0, "%s: unexpected error %s%s", (what), es(-1),	\
	      errno == EINVAL ? " - renameat2 flags not supported by the "\
	      "file system?" : "")

#define CHECK_ERR2(r, e1, e2, what)					\
	CHECK((r) == -1 && (errno == (e1) || errno == (e2)),		\
	      "%s: expected %s or %s, got %s", (what), en(e1), en(e2),	\
	      es(r))

static const char *en(int e)
{
	static char b[4][32];
	static unsigned int i;
	char *p;

	switch (e) {
	case EPERM: return "EPERM";
	case ENOENT: return "ENOENT";
	case EIO: return "EIO";
	case EBADF: return "EBADF";
	case EAGAIN: return "EAGAIN";
	case ENOMEM: return "ENOMEM";
	case EACCES: return "EACCES";
	case EBUSY: return "EBUSY";
	case EEXIST: return "EEXIST";
	case EXDEV: return "EXDEV";
	case ENOTDIR: return "ENOTDIR";
	case EISDIR: return "EISDIR";
	case EINVAL: return "EINVAL";
	case EFBIG: return "EFBIG";
	case ENOSPC: return "ENOSPC";
	case EROFS: return "EROFS";
	case EMLINK: return "EMLINK";
	case ERANGE: return "ERANGE";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case ENOSYS: return "ENOSYS";
	case ENOTEMPTY: return "ENOTEMPTY";
	case ELOOP: return "ELOOP";
	case ENODATA: return "ENODATA";
	case EOPNOTSUPP: return "EOPNOTSUPP";
	case E2BIG: return "E2BIG";
	case EDQUOT: return "EDQUOT";
	case ESTALE: return "ESTALE";
	case EOVERFLOW: return "EOVERFLOW";
	case ENXIO: return "ENXIO";
	case ETXTBSY: return "ETXTBSY";
	case ENODEV: return "ENODEV";
	}
	p = b[i++ % 4];
	snprintf(p, sizeof(b[0]), "errno %d", e);
	return p;
}

/* "success (r)" or "ENAME (text)" for the current errno */
static const char *es(long r)
{
	static char b[4][96];
	static unsigned int i;
	char *p = b[i++ % 4];
	int e = errno;

	if (r >= 0)
		snprintf(p, sizeof(b[0]), "success (%ld)", r);
	else
		snprintf(p, sizeof(b[0]), "%s (%s)", en(e), strerror(e));
	errno = e;
	return p;
}

/* printable version of a file name for messages */
static const char *esc(const char *s)
{
	static char b[4][200];
	static unsigned int i;
	char *p = b[i++ % 4];
	size_t len = strlen(s), o = 0, k;

	for (k = 0; k < len && o < 150; k++) {
		unsigned char c = (unsigned char)s[k];

		if (c < 0x20 || c >= 0x7f || c == '\\')
			o += (size_t)snprintf(p + o, sizeof(b[0]) - o,
					      "\\x%02x", c);
		else
			p[o++] = (char)c;
	}
	p[o] = '\0';
	if (k < len)
		snprintf(p + o, sizeof(b[0]) - o, "...(%zu bytes)", len);
	return p;
}

/* path of NAME (printf format) inside the current test directory */
static const char *P(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static const char *P(const char *fmt, ...)
{
	char *b = pathbufs[pathidx++ % NPATHBUF];
	va_list ap;
	int n;

	n = snprintf(b, PATH_MAX, "%s/", tdir);
	va_start(ap, fmt);
	vsnprintf(b + n, (size_t)(PATH_MAX - n), fmt, ap);
	va_end(ap);
	return b;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* deterministic pseudo random bytes, different for each seed */
static void pattern(void *buf, size_t n, uint64_t seed)
{
	unsigned char *p = buf;
	uint64_t v;

	while (n >= 8) {
		v = splitmix64(&seed);
		memcpy(p, &v, 8);
		p += 8;
		n -= 8;
	}
	if (n) {
		v = splitmix64(&seed);
		memcpy(p, &v, n);
	}
}

static uint64_t fnv1a(uint64_t h, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static int all_zero(const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* pwrite all of buf, retrying short writes; 0 or -1 with errno */
static int pwrite_all(int fd, const void *buf, size_t n, off_t off)
{
	const char *p = buf;
	ssize_t r;

	while (n) {
		r = pwrite(fd, p, n, off);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
		off += r;
	}
	return 0;
}

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	ssize_t r;

	while (n) {
		r = write(fd, p, n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0) {
			errno = EIO;
			return -1;
		}
		p += r;
		n -= (size_t)r;
	}
	return 0;
}

/* pread up to n bytes, stopping only at EOF; bytes read or -1 */
static ssize_t pread_full(int fd, void *buf, size_t n, off_t off)
{
	char *p = buf;
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = pread(fd, p + done, n - done, off + (off_t)done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

static ssize_t read_full(int fd, void *buf, size_t n)
{
	char *p = buf;
	size_t done = 0;
	ssize_t r;

	while (done < n) {
		r = read(fd, p + done, n - done);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (r == 0)
			break;
		done += (size_t)r;
	}
	return (ssize_t)done;
}

/* compare got with exp, fail with the first difference */
static int cmp_buf(const unsigned char *got, const unsigned char *exp,
		   size_t n, uint64_t base_off, const char *what)
{
	size_t i;

	if (memcmp(got, exp, n) == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (got[i] != exp[i])
			break;
	fail("%s: data mismatch at offset %" PRIu64 ": expected 0x%02x got "
	     "0x%02x", what, base_off + i, exp[i], got[i]);
	return -1;
}

/* create (or truncate) path with the given content */
static int create_file(const char *path, const void *data, size_t n)
{
	int fd, e;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd < 0)
		return -1;
	if (n && write_all(fd, data, n) < 0) {
		e = errno;
		close(fd);
		errno = e;
		return -1;
	}
	return close(fd);
}

static int create_str(const char *path, const char *s)
{
	return create_file(path, s, strlen(s));
}

/*
 * The file at fd must have exactly size n and content exp (checked in
 * chunks with pread).
 */
static int check_fd(int fd, const unsigned char *exp, size_t n,
		    const char *what)
{
	unsigned char *b = NULL;
	size_t chunk = 1 << 20, off, k;
	struct stat st;
	ssize_t r;
	int ret = -1;

	CHECK(fstat(fd, &st) == 0, "%s: fstat: %s", what, es(-1));
	CHECK((uint64_t)st.st_size == n, "%s: size expected %zu got %" PRIu64,
	      what, n, (uint64_t)st.st_size);
	b = malloc(chunk);
	CHECK(b, "%s: out of memory", what);
	for (off = 0; off < n; off += k) {
		k = n - off < chunk ? n - off : chunk;
		r = pread_full(fd, b, k, (off_t)off);
		CHECK(r >= 0, "%s: pread offset %zu: %s", what, off, es(r));
		CHECK((size_t)r == k, "%s: pread offset %zu len %zu: expected "
		      "%zu bytes got %zd (early EOF)", what, off, k, k, r);
		if (cmp_buf(b, exp + off, k, off, what) < 0)
			goto out;
	}
	r = pread(fd, b, 1, (off_t)n);
	CHECK(r == 0, "%s: pread at EOF offset %zu: expected 0 bytes, got %s",
	      what, n, es(r));
	ret = 0;
out:
	free(b);
	return ret;
}

static int check_path(const char *path, const void *exp, size_t n,
		      const char *what)
{
	int fd, ret;

	fd = open(path, O_RDONLY);
	if (fd < 0) {
		fail("%s: open: %s", what, es(-1));
		return -1;
	}
	ret = check_fd(fd, exp, n, what);
	close(fd);
	return ret;
}

static int check_str(const char *path, const char *s, const char *what)
{
	return check_path(path, s, strlen(s), what);
}

/* in-memory model of a file: data beyond size is always zero */
struct model {
	unsigned char *d;
	size_t size;
	size_t cap;
};

static int model_init(struct model *m, size_t cap)
{
	m->d = calloc(1, cap);
	m->size = 0;
	m->cap = cap;
	return m->d ? 0 : -1;
}

static void model_write(struct model *m, size_t off, const void *p, size_t n)
{
	memcpy(m->d + off, p, n);
	if (off + n > m->size)
		m->size = off + n;
}

static void model_trunc(struct model *m, size_t n)
{
	if (n < m->size)
		memset(m->d + n, 0, m->size - n);
	m->size = n;
}

/* SIGBUS-safe memcpy for mappings: 0 or -1 on SIGBUS */
static void bus_handler(int sig)
{
	if (bus_armed)
		siglongjmp(bus_jmp, 1);
	signal(sig, SIG_DFL);
	raise(sig);
}

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

/* does directory dir contain an entry called name? 1/0, -1 on error */
static int dir_has(const char *dir, const char *name)
{
	struct dirent *de;
	int found = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -1;
	errno = 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, name) == 0)
			found++;
	if (errno) {
		closedir(d);
		return -1;
	}
	closedir(d);
	return found;
}

/* number of entries other than "." and "..", or -1 */
static int dir_count(const char *dir)
{
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir(dir);
	if (!d)
		return -1;
	errno = 0;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	if (errno) {
		closedir(d);
		return -1;
	}
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* tests                                                               */

static int t_create_rw(void)
{
	static const struct {
		size_t off;
		size_t len;
	} w[] = {
		{ 4096, 100 }, { 8191, 2 }, { 10000, 3000 }, { 1, 3 },
		{ 65539, 5000 }, { 4095, 1 }, { 12288, 4096 },
	};
	unsigned char tmp[5000], rb[777];
	struct model m = { 0 };
	struct stat st;
	int fd = -1, fd2 = -1, ret = -1;
	size_t i, off;
	ssize_t r;
	off_t pos;

	CHECK(model_init(&m, 1 << 20) == 0, "out of memory");
	fd = open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create f");
	CHECK(fstat(fd, &st) == 0, "fstat f: %s", es(-1));
	CHECK(S_ISREG(st.st_mode), "new file f: not S_IFREG (mode 0%o)",
	      (unsigned int)st.st_mode);
	CHECK((st.st_mode & 07777) == 0644, "new file f: mode expected 0644 "
	      "got 0%o", (unsigned int)(st.st_mode & 07777));
	CHECK(st.st_size == 0, "new file f: size expected 0 got %lld",
	      (long long)st.st_size);
	CHECK(st.st_nlink == 1, "new file f: st_nlink expected 1 got %lu",
	      (unsigned long)st.st_nlink);

	r = write(fd, "hello", 5);
	CHECK(r == 5, "write 5 bytes at 0: expected 5, got %s", es(r));
	model_write(&m, 0, "hello", 5);
	for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
		pattern(tmp, w[i].len, i + 1);
		r = pwrite(fd, tmp, w[i].len, (off_t)w[i].off);
		CHECK(r == (ssize_t)w[i].len, "pwrite offset %zu len %zu: "
		      "expected %zu, got %s", w[i].off, w[i].len, w[i].len,
		      es(r));
		model_write(&m, w[i].off, tmp, w[i].len);
	}
	pos = lseek(fd, 0, SEEK_CUR);
	CHECK(pos == 5, "file offset after pwrite: expected 5 got %lld",
	      (long long)pos);
	r = write(fd, "XY", 2);
	CHECK(r == 2, "write 2 bytes at offset 5: %s", es(r));
	model_write(&m, 5, "XY", 2);
	if (check_fd(fd, m.d, m.size, "f after writes") < 0)
		goto out;

	r = pread(fd, tmp, 100, (off_t)m.size + 100);
	CHECK(r == 0, "pread past EOF: expected 0 bytes got %s", es(r));
	r = pread(fd, tmp, 100, (off_t)m.size - 10);
	CHECK(r == 10, "pread of 100 bytes 10 before EOF: expected 10 got %s",
	      es(r));
	pos = lseek(fd, 0, SEEK_END);
	CHECK(pos == (off_t)m.size, "lseek SEEK_END: expected %zu got %lld",
	      m.size, (long long)pos);
	pos = lseek(fd, 4096, SEEK_SET);
	CHECK(pos == 4096, "lseek SEEK_SET 4096: got %lld", (long long)pos);
	r = read(fd, tmp, 100);
	CHECK(r == 100, "read 100 at 4096: got %s", es(r));
	if (cmp_buf(tmp, m.d + 4096, 100, 4096, "read at 4096") < 0)
		goto out;
	CHECK(close(fd) == 0, "close f: %s", es(-1));
	fd = -1;

	/* sequential read() with an odd buffer size through a new fd */
	fd2 = open(P("f"), O_RDONLY);
	CHECK_OK(fd2, "reopen f");
	for (off = 0;; off += (size_t)r) {
		r = read(fd2, rb, sizeof(rb));
		CHECK(r >= 0, "read at %zu: %s", off, es(r));
		if (r == 0)
			break;
		CHECK(off + (size_t)r <= m.size, "read at %zu returned data "
		      "past EOF %zu", off, m.size);
		if (cmp_buf(rb, m.d + off, (size_t)r, off,
			    "sequential read") < 0)
			goto out;
	}
	CHECK(off == m.size, "sequential read: got %zu bytes, expected %zu",
	      off, m.size);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	free(m.d);
	return ret;
}

/* new files belong to the creator (group: egid, or BSD style the dir's) */
static int t_new_owner(void)
{
	struct stat st, dst;
	int ret = -1;

	CHECK_OK(create_str(P("f"), "x"), "create f");
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK(stat(tdir, &dst) == 0, "stat test directory: %s", es(-1));
	CHECK(stat(P("f"), &st) == 0, "stat f: %s", es(-1));
	CHECK(st.st_uid == geteuid(), "new file f: owner uid expected %u got "
	      "%u", (unsigned int)geteuid(), (unsigned int)st.st_uid);
	CHECK(st.st_gid == getegid() || st.st_gid == dst.st_gid, "new file f: "
	      "group expected %u got %u", (unsigned int)getegid(),
	      (unsigned int)st.st_gid);
	CHECK(stat(P("d"), &st) == 0, "stat d: %s", es(-1));
	CHECK(st.st_uid == geteuid(), "new directory d: owner uid expected %u "
	      "got %u", (unsigned int)geteuid(), (unsigned int)st.st_uid);
	CHECK(st.st_gid == getegid() || st.st_gid == dst.st_gid, "new "
	      "directory d: group expected %u got %u", (unsigned int)getegid(),
	      (unsigned int)st.st_gid);
	ret = 0;
out:
	return ret;
}

static int t_open_errors(void)
{
	unsigned char b[8];
	struct stat st;
	int fd = -1, ret = -1;
	ssize_t r;

	CHECK_OK(create_str(P("f"), "abc"), "create f");
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");

	fd = open(P("missing"), O_RDONLY);
	CHECK_ERR(fd, ENOENT, "open missing file");
	fd = open(P("missing/x"), O_RDWR | O_CREAT, 0644);
	CHECK_ERR(fd, ENOENT, "create missing/x");
	fd = open(P("d"), O_WRONLY);
	CHECK_ERR(fd, EISDIR, "open directory O_WRONLY");
	fd = open(P("d"), O_RDWR);
	CHECK_ERR(fd, EISDIR, "open directory O_RDWR");
	fd = open(P("f"), O_RDONLY | O_DIRECTORY);
	CHECK_ERR(fd, ENOTDIR, "open file with O_DIRECTORY");
	fd = open(P("f/x"), O_RDONLY);
	CHECK_ERR(fd, ENOTDIR, "open f/x (f is a file)");

	fd = open(P("f"), O_RDONLY);
	CHECK_OK(fd, "open f O_RDONLY");
	r = write(fd, "x", 1);
	CHECK_ERR(r, EBADF, "write to O_RDONLY fd");
	close(fd);
	fd = open(P("f"), O_WRONLY);
	CHECK_OK(fd, "open f O_WRONLY");
	r = read(fd, b, 1);
	CHECK_ERR(r, EBADF, "read from O_WRONLY fd");
	close(fd);

	/* O_CREAT without O_EXCL opens the existing file untouched */
	fd = open(P("f"), O_RDWR | O_CREAT, 0600);
	CHECK_OK(fd, "open existing f with O_CREAT");
	close(fd);
	fd = -1;
	if (check_str(P("f"), "abc", "f after O_CREAT open") < 0)
		goto out;
	CHECK(stat(P("f"), &st) == 0, "stat f: %s", es(-1));
	CHECK((st.st_mode & 07777) == 0644, "O_CREAT on existing f changed "
	      "mode: expected 0644 got 0%o",
	      (unsigned int)(st.st_mode & 07777));

	/* creation modes with umask 022 */
	fd = open(P("g"), O_WRONLY | O_CREAT, 0640);
	CHECK_OK(fd, "create g 0640");
	close(fd);
	fd = open(P("h"), O_WRONLY | O_CREAT, 0777);
	CHECK_OK(fd, "create h 0777");
	close(fd);
	fd = -1;
	CHECK(stat(P("g"), &st) == 0, "stat g: %s", es(-1));
	CHECK((st.st_mode & 07777) == 0640, "create g 0640: mode got 0%o",
	      (unsigned int)(st.st_mode & 07777));
	CHECK(stat(P("h"), &st) == 0, "stat h: %s", es(-1));
	CHECK((st.st_mode & 07777) == 0755, "create h 0777 (umask 022): "
	      "mode expected 0755 got 0%o", (unsigned int)(st.st_mode & 07777));
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_excl(void)
{
	struct stat st;
	int fd = -1, ret = -1, r;

	CHECK_OK(create_str(P("f"), "data"), "create f");
	fd = open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_ERR(fd, EEXIST, "O_CREAT|O_EXCL on existing file f");
	if (check_str(P("f"), "data", "f after failed O_EXCL") < 0)
		goto out;
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	fd = open(P("d"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_ERR(fd, EEXIST, "O_CREAT|O_EXCL on existing directory d");
	CHECK_OK(symlink("nonexistent", P("dangling")), "symlink dangling");
	fd = open(P("dangling"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK_ERR(fd, EEXIST, "O_CREAT|O_EXCL on dangling symlink");
	r = lstat(P("nonexistent"), &st);
	CHECK_ERR(r, ENOENT, "lstat symlink target after O_EXCL");
	fd = open(P("new"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "O_CREAT|O_EXCL of new file");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_o_trunc(void)
{
	unsigned char data[10000], b[16];
	struct stat st;
	int fd = -1, fd2 = -1, ret = -1;
	ssize_t r;

	pattern(data, sizeof(data), 7);
	CHECK_OK(create_file(P("f"), data, sizeof(data)), "create f");
	fd2 = open(P("f"), O_RDONLY);
	CHECK_OK(fd2, "open f O_RDONLY");
	fd = open(P("f"), O_WRONLY | O_TRUNC);
	CHECK_OK(fd, "open f O_WRONLY|O_TRUNC");
	CHECK(fstat(fd, &st) == 0, "fstat: %s", es(-1));
	CHECK(st.st_size == 0, "size after O_TRUNC: expected 0 got %lld",
	      (long long)st.st_size);
	CHECK(fstat(fd2, &st) == 0, "fstat: %s", es(-1));
	CHECK(st.st_size == 0, "size seen by other fd after O_TRUNC: expected "
	      "0 got %lld", (long long)st.st_size);
	r = pread(fd2, b, 1, 0);
	CHECK(r == 0, "read after O_TRUNC: expected 0 bytes got %s", es(r));
	r = write(fd, "new", 3);
	CHECK(r == 3, "write after O_TRUNC: %s", es(r));
	if (check_fd(fd2, (const unsigned char *)"new", 3,
		     "other fd after O_TRUNC+write") < 0)
		goto out;
	close(fd);
	/* O_TRUNC of an empty file and of a file opened O_RDWR */
	fd = open(P("f"), O_RDWR | O_TRUNC);
	CHECK_OK(fd, "open f O_RDWR|O_TRUNC");
	if (check_fd(fd, data, 0, "f after second O_TRUNC") < 0)
		goto out;
	close(fd);
	fd = open(P("f"), O_RDWR | O_TRUNC);
	CHECK_OK(fd, "O_TRUNC of empty f");
	if (check_fd(fd, data, 0, "empty f after O_TRUNC") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	return ret;
}

static int t_append(void)
{
	unsigned char tmp[9200];
	struct model m = { 0 };
	int fd1 = -1, fd2 = -1, fd, ret = -1, i;
	size_t len;
	off_t pos;
	ssize_t r;

	CHECK(model_init(&m, 1 << 20) == 0, "out of memory");
	CHECK_OK(create_str(P("f"), "start"), "create f");
	model_write(&m, 0, "start", 5);
	fd1 = open(P("f"), O_WRONLY | O_APPEND);
	CHECK_OK(fd1, "open f O_WRONLY|O_APPEND");
	fd2 = open(P("f"), O_RDWR | O_APPEND);
	CHECK_OK(fd2, "open f O_RDWR|O_APPEND");
	for (i = 0; i < 60; i++) {
		fd = i % 2 ? fd2 : fd1;
		len = 1 + (size_t)(i * 97 % 5000) + (i % 3 == 0 ? BS : 0);
		pattern(tmp, len, 100 + (uint64_t)i);
		/* the position must not matter with O_APPEND */
		if (i % 4 == 0)
			lseek(fd, 0, SEEK_SET);
		r = write(fd, tmp, len);
		CHECK(r == (ssize_t)len, "append #%d (fd%d) of %zu bytes at "
		      "EOF %zu: got %s", i, i % 2 + 1, len, m.size, es(r));
		model_write(&m, m.size, tmp, len);
		pos = lseek(fd, 0, SEEK_CUR);
		CHECK(pos == (off_t)m.size, "append #%d: file offset after "
		      "write expected %zu got %lld", i, m.size, (long long)pos);
	}
	if (check_fd(fd2, m.d, m.size, "f after interleaved appends") < 0)
		goto out;
	ret = 0;
out:
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	free(m.d);
	return ret;
}

/* sizes used by the truncate tests: mid-block, boundaries, 0, up, down */
static const size_t trunc_sizes[] = {
	5000, 12288, 4096, 4097, 0, 8248, 20000, 4095, 12288, 1, 16383, 8192,
};

static int t_truncate(void)
{
	unsigned char data[3 * BS + 100];
	struct model m = { 0 };
	char what[64];
	struct stat st;
	size_t i;
	int ret = -1, r;

	CHECK(model_init(&m, 65536) == 0, "out of memory");
	pattern(data, sizeof(data), 11);
	CHECK_OK(create_file(P("f"), data, sizeof(data)), "create f");
	model_write(&m, 0, data, sizeof(data));
	for (i = 0; i < sizeof(trunc_sizes) / sizeof(trunc_sizes[0]); i++) {
		size_t ns = trunc_sizes[i];

		snprintf(what, sizeof(what), "truncate f %zu -> %zu", m.size,
			 ns);
		CHECK(truncate(P("f"), (off_t)ns) == 0, "%s: %s", what,
		      es(-1));
		model_trunc(&m, ns);
		CHECK(stat(P("f"), &st) == 0, "stat f: %s", es(-1));
		CHECK((size_t)st.st_size == ns, "%s: stat size got %lld",
		      what, (long long)st.st_size);
		if (check_path(P("f"), m.d, m.size, what) < 0)
			goto out;
		if (i == 7) {
			/* write right at the new EOF */
			int fd = open(P("f"), O_WRONLY);

			CHECK_OK(fd, "open f");
			CHECK(pwrite(fd, "Q", 1, 4095) == 1, "pwrite 1 byte at "
			      "4095: %s", es(-1));
			close(fd);
			model_write(&m, 4095, "Q", 1);
		}
	}
	r = truncate(P("missing"), 0);
	CHECK_ERR(r, ENOENT, "truncate missing");
	ret = 0;
out:
	free(m.d);
	return ret;
}

static int t_ftruncate(void)
{
	unsigned char data[3 * BS], b[4094];
	struct model m = { 0 };
	int fd = -1, fd2 = -1, ro = -1, ret = -1, r;
	char what[64];
	size_t i;

	CHECK(model_init(&m, 65536) == 0, "out of memory");
	pattern(data, sizeof(data), 12);
	fd = open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create f");
	fd2 = open(P("f"), O_RDONLY);
	CHECK_OK(fd2, "open f second fd");
	CHECK(pwrite_all(fd, data, sizeof(data), 0) == 0, "write 12288 bytes: "
	      "%s", es(-1));
	model_write(&m, 0, data, sizeof(data));

	CHECK(ftruncate(fd, 6000) == 0, "ftruncate 12288 -> 6000: %s", es(-1));
	model_trunc(&m, 6000);
	if (check_fd(fd, m.d, m.size, "f after ftruncate to 6000") < 0)
		goto out;
	/* hole between 6000 and 9000: old data must not reappear */
	CHECK(pwrite(fd, "AAAAAAAAAA", 10, 9000) == 10, "pwrite 10 at 9000: %s",
	      es(-1));
	model_write(&m, 9000, "AAAAAAAAAA", 10);
	if (check_fd(fd2, m.d, m.size, "f (other fd) after write at 9000") < 0)
		goto out;
	for (i = 0; i < sizeof(trunc_sizes) / sizeof(trunc_sizes[0]); i++) {
		size_t ns = trunc_sizes[i];

		snprintf(what, sizeof(what), "ftruncate f %zu -> %zu", m.size,
			 ns);
		CHECK(ftruncate(fd, (off_t)ns) == 0, "%s: %s", what, es(-1));
		model_trunc(&m, ns);
		if (check_fd(fd, m.d, m.size, what) < 0)
			goto out;
		if (check_fd(fd2, m.d, m.size, what) < 0)
			goto out;
		if (i == 4) {
			pattern(b, sizeof(b), 13);
			CHECK(pwrite_all(fd, b, sizeof(b), 1) == 0,
			      "pwrite 4094 at 1: %s", es(-1));
			model_write(&m, 1, b, sizeof(b));
		}
	}
	r = ftruncate(fd, -1);
	CHECK_ERR(r, EINVAL, "ftruncate to -1");
	ro = open(P("f"), O_RDONLY);
	CHECK_OK(ro, "open f O_RDONLY");
	r = ftruncate(ro, 0);
	CHECK_ERR2(r, EINVAL, EBADF, "ftruncate of O_RDONLY fd");
	if (check_fd(fd, m.d, m.size, "f after failed ftruncates") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	if (ro >= 0)
		close(ro);
	free(m.d);
	return ret;
}

static int t_holes(void)
{
	unsigned char a[BS];
	struct model m = { 0 };
	int fd = -1, ret = -1;

	CHECK(model_init(&m, (1 << 20) + 4 * BS) == 0, "out of memory");
	fd = open(P("sparse1"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create sparse1");
	CHECK(pwrite(fd, "x", 1, (1 << 20) + 3) == 1, "pwrite 1 byte at "
	      "1 MiB + 3: %s", es(-1));
	model_write(&m, (1 << 20) + 3, "x", 1);
	if (check_fd(fd, m.d, m.size, "sparse1 (hole before 1 MiB + 3)") < 0)
		goto out;
	close(fd);

	model_trunc(&m, 0);
	fd = open(P("sparse2"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create sparse2");
	memset(a, 'a', sizeof(a));
	CHECK(pwrite_all(fd, a, BS, 0) == 0, "pwrite 4096 at 0: %s", es(-1));
	model_write(&m, 0, a, BS);
	memset(a, 'b', sizeof(a));
	CHECK(pwrite_all(fd, a, BS, 3 * BS + 10) == 0, "pwrite 4096 at "
	      "12298: %s", es(-1));
	model_write(&m, 3 * BS + 10, a, BS);
	if (check_fd(fd, m.d, m.size, "sparse2 (hole 4096..12298)") < 0)
		goto out;
	close(fd);

	model_trunc(&m, 0);
	fd = open(P("sparse3"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create sparse3");
	CHECK(ftruncate(fd, 100000) == 0, "ftruncate to 100000: %s", es(-1));
	model_trunc(&m, 100000);
	if (check_fd(fd, m.d, m.size, "sparse3 (ftruncate hole)") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(m.d);
	return ret;
}

static int t_fallocate(void)
{
	unsigned char data[100];
	struct model m = { 0 };
	int fd = -1, ro = -1, ret = -1, r;

	CHECK(model_init(&m, 65536) == 0, "out of memory");
	fd = open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create f");
	r = fallocate(fd, 0, 0, 10000);
	if (r < 0 && errno == EOPNOTSUPP) {
		note("fallocate not supported (EOPNOTSUPP)");
		ret = SKIP;
		goto out;
	}
	CHECK_OK(r, "fallocate(0, 0, 10000) on empty file");
	model_trunc(&m, 10000);
	if (check_fd(fd, m.d, m.size, "f after fallocate 0+10000") < 0)
		goto out;
	pattern(data, sizeof(data), 21);
	CHECK(pwrite_all(fd, data, sizeof(data), 0) == 0, "pwrite: %s",
	      es(-1));
	model_write(&m, 0, data, sizeof(data));
	CHECK(fallocate(fd, 0, 0, 50) == 0, "fallocate(0, 0, 50): %s", es(-1));
	if (check_fd(fd, m.d, m.size, "f after fallocate inside data") < 0)
		goto out;
	CHECK(fallocate(fd, 0, 4000, 10000) == 0, "fallocate(0, 4000, 10000): "
	      "%s", es(-1));
	model_trunc(&m, 14000);
	if (check_fd(fd, m.d, m.size, "f after fallocate 4000+10000") < 0)
		goto out;

	r = fallocate(fd, FALLOC_FL_KEEP_SIZE, 14000, 8192);
	if (r < 0 && errno == EOPNOTSUPP) {
		note("FALLOC_FL_KEEP_SIZE not supported (EOPNOTSUPP)");
	} else {
		CHECK_OK(r, "fallocate(KEEP_SIZE, 14000, 8192)");
		if (check_fd(fd, m.d, m.size,
			     "f after KEEP_SIZE fallocate past EOF") < 0)
			goto out;
		CHECK(fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, 5000) == 0,
		      "fallocate(KEEP_SIZE, 0, 5000): %s", es(-1));
		if (check_fd(fd, m.d, m.size,
			     "f after KEEP_SIZE fallocate inside") < 0)
			goto out;
		CHECK(ftruncate(fd, 30000) == 0, "ftruncate 30000: %s", es(-1));
		model_trunc(&m, 30000);
		CHECK(pwrite(fd, "x", 1, 20000) == 1, "pwrite at 20000: %s",
		      es(-1));
		model_write(&m, 20000, "x", 1);
		if (check_fd(fd, m.d, m.size,
			     "f after ftruncate over preallocated range") < 0)
			goto out;
	}
	r = fallocate(fd, 0, 0, 0);
	CHECK_ERR(r, EINVAL, "fallocate with length 0");
	ro = open(P("f"), O_RDONLY);
	CHECK_OK(ro, "open f O_RDONLY");
	r = fallocate(ro, 0, 0, 100000);
	CHECK_ERR(r, EBADF, "fallocate on O_RDONLY fd");
	if (check_fd(fd, m.d, m.size, "f at end") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ro >= 0)
		close(ro);
	free(m.d);
	return ret;
}

static int t_mkdir_rmdir(void)
{
	struct stat st;
	int ret = -1, r, n;

	CHECK_OK(mkdir(P("d"), 0750), "mkdir d 0750");
	CHECK(stat(P("d"), &st) == 0, "stat d: %s", es(-1));
	CHECK(S_ISDIR(st.st_mode), "d is not a directory (mode 0%o)",
	      (unsigned int)st.st_mode);
	CHECK((st.st_mode & 07777) == 0750, "mkdir d 0750: mode got 0%o",
	      (unsigned int)(st.st_mode & 07777));
	n = dir_count(P("d"));
	CHECK(n == 0, "readdir of empty d: expected 0 entries, got %d", n);
	r = mkdir(P("d"), 0755);
	CHECK_ERR(r, EEXIST, "mkdir d again");
	CHECK_OK(create_str(P("d/f"), "x"), "create d/f");
	r = rmdir(P("d"));
	CHECK_ERR2(r, ENOTEMPTY, EEXIST, "rmdir non-empty d");
	r = unlink(P("d"));
	CHECK_ERR2(r, EISDIR, EPERM, "unlink of directory d");
	r = rmdir(P("d/f"));
	CHECK_ERR(r, ENOTDIR, "rmdir of file d/f");
	CHECK_OK(unlink(P("d/f")), "unlink d/f");
	CHECK_OK(rmdir(P("d")), "rmdir emptied d");
	r = stat(P("d"), &st);
	CHECK_ERR(r, ENOENT, "stat removed d");

	CHECK_OK(mkdir(P("a"), 0755), "mkdir a");
	CHECK_OK(mkdir(P("a/b"), 0755), "mkdir a/b");
	CHECK_OK(mkdir(P("a/b/c"), 0755), "mkdir a/b/c");
	CHECK_OK(create_str(P("a/b/c/f"), "deep"), "create a/b/c/f");
	if (check_str(P("a/b/c/f"), "deep", "a/b/c/f") < 0)
		goto out;
	r = rmdir(P("a"));
	CHECK_ERR2(r, ENOTEMPTY, EEXIST, "rmdir non-empty a");
	CHECK_OK(unlink(P("a/b/c/f")), "unlink a/b/c/f");
	CHECK_OK(rmdir(P("a/b/c")), "rmdir a/b/c");
	CHECK_OK(rmdir(P("a/b")), "rmdir a/b");
	CHECK_OK(rmdir(P("a")), "rmdir a");
	r = mkdir(P("missing/x"), 0755);
	CHECK_ERR(r, ENOENT, "mkdir missing/x");
	r = rmdir(P("missing"));
	CHECK_ERR(r, ENOENT, "rmdir missing");
	n = dir_count(tdir);
	CHECK(n == 0, "test directory should be empty, has %d entries", n);
	ret = 0;
out:
	return ret;
}

#define NR_DIRENTS	3000

static char names[NR_DIRENTS][NAME_MAX + 1];

static const char *const special_names[] = {
	".hidden", "...", "-dash", " leading space", "trailing space ",
	"a", "CaseTest", "casetest", "tab\tname", "new\nline",
	"\xff\xfe-not-utf8", "percent%s%n", "back\\slash", "*?[glob]",
};

static const char *const utf8_units[] = {
	"\xc3\xa9",		/* e acute, 2 bytes */
	"\xe6\x97\xa5",		/* CJK "sun", 3 bytes */
	"\xf0\x9f\x98\x80",	/* emoji, 4 bytes */
	"\xd0\x96",		/* Cyrillic zhe, 2 bytes */
};

static const char ascii_fill[] = "abcXYZ019 .-_=+,@#~'!";

/* build a unique name of a deterministic length and character mix */
static void make_dirent_name(char *b, int i)
{
	size_t len, target;
	const char *u;
	int k = 0;

	len = (size_t)snprintf(b, NAME_MAX + 1, "%d_", i);
	if (i == 0 || i == 1)
		target = NAME_MAX;
	else
		target = 1 + (size_t)(i * 7919 % NAME_MAX);
	if (target < len)
		target = len;
	while (len < target) {
		if (i == 1 || (i % 5 == 2 && k % 3 == 0))
			u = utf8_units[i == 1 ? 1 : (size_t)(i + k) % 4];
		else
			u = NULL;
		if (u && len + strlen(u) <= target) {
			memcpy(b + len, u, strlen(u));
			len += strlen(u);
		} else {
			b[len++] = ascii_fill[(size_t)(i + k) %
					      (sizeof(ascii_fill) - 1)];
		}
		k++;
	}
	b[len] = '\0';
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * Read directory dir and compare the names (minus "." and "..") with the
 * n names in want (sorted in place).
 */
static int check_dir_names(const char *dir, char **want, size_t n,
			   const char *what)
{
	size_t cap = n + 64, got_n = 0, i, j;
	char **got = NULL;
	struct dirent *de;
	int ret = -1, c;
	DIR *d = NULL;

	got = calloc(cap, sizeof(*got));
	CHECK(got, "out of memory");
	d = opendir(dir);
	CHECK(d, "%s: opendir: %s", what, es(-1));
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de)
			break;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		CHECK(de->d_type == DT_UNKNOWN || de->d_type == DT_REG,
		      "%s: entry \"%s\" has d_type %d, expected DT_REG",
		      what, esc(de->d_name), de->d_type);
		CHECK(got_n < cap, "%s: readdir returned more than %zu "
		      "entries (expected %zu)", what, cap, n);
		got[got_n] = strdup(de->d_name);
		CHECK(got[got_n], "out of memory");
		got_n++;
	}
	CHECK(errno == 0, "%s: readdir: %s", what, es(-1));
	qsort(want, n, sizeof(*want), cmp_str);
	qsort(got, got_n, sizeof(*got), cmp_str);
	for (i = 1; i < got_n; i++)
		CHECK(strcmp(got[i - 1], got[i]), "%s: readdir returned "
		      "\"%s\" more than once", what, esc(got[i]));
	for (i = 0, j = 0; i < n || j < got_n;) {
		if (i == n)
			c = 1;
		else if (j == got_n)
			c = -1;
		else
			c = strcmp(want[i], got[j]);
		CHECK(c >= 0, "%s: created name \"%s\" (%zu bytes) missing "
		      "from readdir (got %zu entries, expected %zu)", what,
		      esc(want[i]), strlen(want[i]), got_n, n);
		CHECK(c <= 0, "%s: readdir returned unexpected name \"%s\" "
		      "(%zu bytes; got %zu entries, expected %zu)", what,
		      esc(got[j]), strlen(got[j]), got_n, n);
		i++;
		j++;
	}
	ret = 0;
out:
	if (d)
		closedir(d);
	if (got)
		for (i = 0; i < got_n; i++)
			free(got[i]);
	free(got);
	return ret;
}

static int t_readdir_3000(void)
{
	size_t nspecial = sizeof(special_names) / sizeof(special_names[0]);
	char *want[NR_DIRENTS], dirp[PATH_MAX];
	size_t i, n, nw;
	struct stat st;
	int fd, ret = -1, count;
	struct dirent *de;
	DIR *d = NULL;

	snprintf(dirp, sizeof(dirp), "%s", P("big"));
	CHECK_OK(mkdir(dirp, 0755), "mkdir big");
	for (i = 0; i < NR_DIRENTS; i++) {
		if (i < nspecial)
			snprintf(names[i], sizeof(names[i]), "%s",
				 special_names[i]);
		else
			make_dirent_name(names[i], (int)(i - nspecial));
	}
	for (i = 0; i < NR_DIRENTS; i++) {
		fd = open(P("big/%s", names[i]), O_WRONLY | O_CREAT | O_EXCL,
			  0644);
		CHECK(fd >= 0, "create big/\"%s\" (%zu bytes, #%zu): %s",
		      esc(names[i]), strlen(names[i]), i, es(fd));
		close(fd);
		want[i] = names[i];
	}
	CHECK(strlen(names[nspecial]) == NAME_MAX &&
	      strlen(names[nspecial + 1]) == NAME_MAX,
	      "internal: 255-byte names not generated");
	if (check_dir_names(dirp, want, NR_DIRENTS, "readdir of 3000") < 0)
		goto out;

	/* rewinddir must give the same number again */
	d = opendir(dirp);
	CHECK(d, "opendir big: %s", es(-1));
	for (count = 0; (de = readdir(d)) != NULL;)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			count++;
	rewinddir(d);
	for (n = 0; (de = readdir(d)) != NULL;)
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			n++;
	CHECK(count == NR_DIRENTS && n == NR_DIRENTS, "readdir big: %d "
	      "entries, after rewinddir %zu, expected %d", count, n,
	      NR_DIRENTS);
	closedir(d);
	d = NULL;

	/* every entry stats as a regular file */
	for (i = 0; i < NR_DIRENTS; i++) {
		CHECK(stat(P("big/%s", names[i]), &st) == 0, "stat big/\"%s\": "
		      "%s", esc(names[i]), es(-1));
		CHECK(S_ISREG(st.st_mode), "big/\"%s\" is not a regular file",
		      esc(names[i]));
	}

	/* remove every third entry and list again */
	for (i = 0, nw = 0; i < NR_DIRENTS; i++) {
		if (i % 3 == 1) {
			CHECK(unlink(P("big/%s", names[i])) == 0, "unlink "
			      "big/\"%s\": %s", esc(names[i]), es(-1));
		} else {
			want[nw++] = names[i];
		}
	}
	if (check_dir_names(dirp, want, nw, "readdir after unlinking 1/3") < 0)
		goto out;
	ret = 0;
out:
	if (d)
		closedir(d);
	return ret;
}

static int t_name_255(void)
{
	char n1[NAME_MAX + 1], n2[NAME_MAX + 1], n3[NAME_MAX + 1];
	char lb[64];
	struct stat st;
	int fd = -1, ret = -1, r, i;
	ssize_t l;

	memset(n1, 'n', NAME_MAX);
	n1[NAME_MAX] = '\0';
	memset(n2, 'm', NAME_MAX);
	n2[NAME_MAX] = '\0';
	/* 85 three-byte characters */
	for (i = 0; i < NAME_MAX / 3; i++)
		memcpy(n3 + 3 * i, "\xe6\x97\xa5", 3);
	n3[NAME_MAX] = '\0';

	fd = open(P("%s", n1), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create 255-byte name");
	CHECK(write(fd, "data255", 7) == 7, "write to 255-byte name: %s",
	      es(-1));
	close(fd);
	fd = -1;
	CHECK(stat(P("%s", n1), &st) == 0, "stat 255-byte name: %s", es(-1));
	CHECK(st.st_size == 7, "stat 255-byte name: size expected 7 got %lld",
	      (long long)st.st_size);
	r = dir_has(tdir, n1);
	CHECK(r == 1, "readdir: 255-byte name found %d times", r);
	CHECK_OK(rename(P("%s", n1), P("%s", n2)), "rename 255-byte name to "
		 "another 255-byte name");
	r = stat(P("%s", n1), &st);
	CHECK_ERR(r, ENOENT, "stat old 255-byte name after rename");
	if (check_str(P("%s", n2), "data255", "renamed 255-byte file") < 0)
		goto out;
	CHECK_OK(rename(P("%s", n2), P("%s", n3)), "rename to 255-byte UTF-8 "
		 "name");
	if (check_str(P("%s", n3), "data255", "255-byte UTF-8 name") < 0)
		goto out;
	r = dir_has(tdir, n3);
	CHECK(r == 1, "readdir: 255-byte UTF-8 name found %d times", r);
	CHECK_OK(unlink(P("%s", n3)), "unlink 255-byte UTF-8 name");
	r = stat(P("%s", n3), &st);
	CHECK_ERR(r, ENOENT, "stat unlinked 255-byte name");

	CHECK_OK(mkdir(P("%s", n1), 0755), "mkdir 255-byte name");
	CHECK_OK(create_str(P("%s/%s", n1, n2), "inner"), "create 255-byte "
		 "name inside 255-byte directory");
	if (check_str(P("%s/%s", n1, n2), "inner", "255/255 file") < 0)
		goto out;
	CHECK_OK(unlink(P("%s/%s", n1, n2)), "unlink 255/255 file");
	CHECK_OK(rmdir(P("%s", n1)), "rmdir 255-byte name");

	CHECK_OK(symlink("target", P("%s", n2)), "symlink with 255-byte name");
	l = readlink(P("%s", n2), lb, sizeof(lb));
	CHECK(l == 6 && !memcmp(lb, "target", 6), "readlink of 255-byte "
	      "symlink: got %s", es(l));
	CHECK_OK(unlink(P("%s", n2)), "unlink 255-byte symlink");
	r = dir_count(tdir);
	CHECK(r == 0, "test directory should be empty, has %d entries", r);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_name_256(void)
{
	char n[NAME_MAX + 2], u[NAME_MAX + 2];
	struct stat st;
	int fd = -1, ret = -1, r, i;

	memset(n, 'L', NAME_MAX + 1);
	n[NAME_MAX + 1] = '\0';
	for (i = 0; i < NAME_MAX / 3; i++)
		memcpy(u + 3 * i, "\xe6\x97\xa5", 3);
	u[NAME_MAX] = 'x';
	u[NAME_MAX + 1] = '\0';

	fd = open(P("%s", n), O_RDWR | O_CREAT, 0644);
	CHECK_ERR(fd, ENAMETOOLONG, "create 256-byte name");
	fd = open(P("%s", u), O_RDWR | O_CREAT, 0644);
	CHECK_ERR(fd, ENAMETOOLONG, "create 256-byte UTF-8 name");
	r = mkdir(P("%s", n), 0755);
	CHECK_ERR(r, ENAMETOOLONG, "mkdir 256-byte name");
	r = stat(P("%s", n), &st);
	CHECK_ERR(r, ENAMETOOLONG, "stat 256-byte name");
	CHECK_OK(create_str(P("f"), "x"), "create f");
	r = rename(P("f"), P("%s", n));
	CHECK_ERR(r, ENAMETOOLONG, "rename f to 256-byte name");
	r = symlink("f", P("%s", n));
	CHECK_ERR(r, ENAMETOOLONG, "symlink with 256-byte name");
	r = link(P("f"), P("%s", n));
	CHECK_ERR(r, ENAMETOOLONG, "link with 256-byte name");
	r = dir_count(tdir);
	CHECK(r == 1, "after failed 256-byte creates the directory has %d "
	      "entries, expected 1", r);
	if (check_str(P("f"), "x", "f after failed rename") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_rename_file(void)
{
	struct stat sa, sb, st;
	unsigned char b[16];
	int fd = -1, ret = -1, r;
	ssize_t l;

	CHECK_OK(create_str(P("a"), "AAA"), "create a");
	CHECK_OK(create_str(P("b"), "BBBBBB"), "create b");
	CHECK(stat(P("a"), &sa) == 0 && stat(P("b"), &sb) == 0, "stat: %s",
	      es(-1));
	/* an fd on the old target keeps seeing the old content */
	fd = open(P("b"), O_RDONLY);
	CHECK_OK(fd, "open b");
	CHECK_OK(rename(P("a"), P("b")), "rename a over existing b");
	r = stat(P("a"), &st);
	CHECK_ERR(r, ENOENT, "stat a after rename");
	CHECK(stat(P("b"), &st) == 0, "stat b: %s", es(-1));
	CHECK(st.st_ino == sa.st_ino, "rename a -> b: st_ino of b is %llu, "
	      "expected a's %llu", (unsigned long long)st.st_ino,
	      (unsigned long long)sa.st_ino);
	if (check_str(P("b"), "AAA", "b after rename a over b") < 0)
		goto out;
	l = pread_full(fd, b, sizeof(b), 0);
	CHECK(l == 6 && !memcmp(b, "BBBBBB", 6), "fd opened on replaced b: "
	      "expected old content \"BBBBBB\", got %zd bytes", l);
	close(fd);
	fd = -1;
	r = dir_count(tdir);
	CHECK(r == 1, "after rename a over b the directory has %d entries, "
	      "expected 1", r);
	/* rename to a new name */
	CHECK_OK(rename(P("b"), P("c")), "rename b -> c (new name)");
	if (check_str(P("c"), "AAA", "c after rename") < 0)
		goto out;
	r = rename(P("missing"), P("x"));
	CHECK_ERR(r, ENOENT, "rename missing -> x");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_rename_dir_empty(void)
{
	struct stat st;
	int ret = -1, r;

	CHECK_OK(mkdir(P("d1"), 0755), "mkdir d1");
	CHECK_OK(create_str(P("d1/f"), "inside"), "create d1/f");
	CHECK_OK(mkdir(P("d2"), 0755), "mkdir d2");
	CHECK_OK(rename(P("d1"), P("d2")), "rename d1 over empty d2");
	r = stat(P("d1"), &st);
	CHECK_ERR(r, ENOENT, "stat d1 after rename");
	if (check_str(P("d2/f"), "inside", "d2/f after rename") < 0)
		goto out;
	r = dir_count(tdir);
	CHECK(r == 1, "directory has %d entries after rename, expected 1", r);
	/* and a plain directory rename to a new name */
	CHECK_OK(rename(P("d2"), P("d3")), "rename d2 -> d3");
	if (check_str(P("d3/f"), "inside", "d3/f after rename") < 0)
		goto out;
	ret = 0;
out:
	return ret;
}

static int t_rename_dir_nonempty(void)
{
	int ret = -1, r;

	CHECK_OK(mkdir(P("d1"), 0755), "mkdir d1");
	CHECK_OK(create_str(P("d1/f1"), "one"), "create d1/f1");
	CHECK_OK(mkdir(P("d2"), 0755), "mkdir d2");
	CHECK_OK(create_str(P("d2/f2"), "two"), "create d2/f2");
	r = rename(P("d1"), P("d2"));
	CHECK_ERR2(r, ENOTEMPTY, EEXIST, "rename d1 over non-empty d2");
	if (check_str(P("d1/f1"), "one", "d1/f1 after failed rename") < 0 ||
	    check_str(P("d2/f2"), "two", "d2/f2 after failed rename") < 0)
		goto out;
	ret = 0;
out:
	return ret;
}

static int t_rename_types(void)
{
	int ret = -1, r;

	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK_OK(mkdir(P("d/sub"), 0755), "mkdir d/sub");
	CHECK_OK(create_str(P("f"), "file"), "create f");
	r = rename(P("f"), P("d"));
	CHECK_ERR(r, EISDIR, "rename file f over directory d");
	r = rename(P("d"), P("f"));
	CHECK_ERR(r, ENOTDIR, "rename directory d over file f");
	r = rename(P("d"), P("d/sub/x"));
	CHECK_ERR(r, EINVAL, "rename d into its own subdirectory");
	r = rename(P("f"), P("f/x"));
	CHECK_ERR(r, ENOTDIR, "rename f to f/x");
	if (check_str(P("f"), "file", "f after failed renames") < 0)
		goto out;
	ret = 0;
out:
	return ret;
}

static int t_rename_same(void)
{
	struct stat st;
	int ret = -1, r;

	CHECK_OK(create_str(P("a"), "same"), "create a");
	CHECK_OK(rename(P("a"), P("a")), "rename a -> a");
	if (check_str(P("a"), "same", "a after rename to itself") < 0)
		goto out;
	CHECK_OK(link(P("a"), P("b")), "link a b");
	/* same file: rename must succeed and do nothing */
	CHECK_OK(rename(P("a"), P("b")), "rename a over its hard link b");
	r = stat(P("a"), &st);
	CHECK(r == 0, "a must still exist after rename over its own hard link: "
	      "%s", es(r));
	if (check_str(P("b"), "same", "b after rename a over b") < 0)
		goto out;
	ret = 0;
out:
	return ret;
}

static int t_renameat2_noreplace(void)
{
	struct stat st;
	int ret = -1, r;

	CHECK_OK(create_str(P("a"), "aaa"), "create a");
	CHECK_OK(create_str(P("b"), "bbbbb"), "create b");
	r = renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("b"), RENAME_NOREPLACE);
	CHECK_ERR(r, EEXIST, "renameat2(RENAME_NOREPLACE) a over existing b");
	if (check_str(P("a"), "aaa", "a after failed NOREPLACE") < 0 ||
	    check_str(P("b"), "bbbbb", "b after failed NOREPLACE") < 0)
		goto out;
	r = renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("c"), RENAME_NOREPLACE);
	CHECK_RENAME2(r, "renameat2(RENAME_NOREPLACE) a -> new name c");
	r = stat(P("a"), &st);
	CHECK_ERR(r, ENOENT, "stat a after NOREPLACE rename");
	if (check_str(P("c"), "aaa", "c after NOREPLACE rename") < 0)
		goto out;
	ret = 0;
out:
	return ret;
}

static int t_renameat2_exchange_files(void)
{
	struct stat sa, sb, st;
	int ret = -1, r;

	CHECK_OK(create_str(P("a"), "aaa"), "create a");
	CHECK_OK(create_str(P("b"), "bbbbb"), "create b");
	CHECK(stat(P("a"), &sa) == 0 && stat(P("b"), &sb) == 0, "stat: %s",
	      es(-1));
	r = renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("b"), RENAME_EXCHANGE);
	CHECK_RENAME2(r, "renameat2(RENAME_EXCHANGE) a <-> b");
	if (check_str(P("a"), "bbbbb", "a after exchange") < 0 ||
	    check_str(P("b"), "aaa", "b after exchange") < 0)
		goto out;
	CHECK(stat(P("a"), &st) == 0, "stat a: %s", es(-1));
	CHECK(st.st_ino == sb.st_ino, "a after exchange: st_ino %llu, "
	      "expected b's %llu", (unsigned long long)st.st_ino,
	      (unsigned long long)sb.st_ino);
	r = renameat2(AT_FDCWD, P("a"), AT_FDCWD, P("missing"),
		      RENAME_EXCHANGE);
	CHECK_ERR(r, ENOENT, "RENAME_EXCHANGE with missing target");
	ret = 0;
out:
	return ret;
}

static int t_renameat2_exchange_dir(void)
{
	struct stat st;
	int ret = -1, r;

	CHECK_OK(create_str(P("f"), "filedata"), "create f");
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK_OK(create_str(P("d/inner"), "inner"), "create d/inner");
	r = renameat2(AT_FDCWD, P("f"), AT_FDCWD, P("d"), RENAME_EXCHANGE);
	CHECK_RENAME2(r, "renameat2(RENAME_EXCHANGE) file f <-> directory d");
	CHECK(stat(P("f"), &st) == 0, "stat f: %s", es(-1));
	CHECK(S_ISDIR(st.st_mode), "f after exchange is not a directory");
	CHECK(stat(P("d"), &st) == 0, "stat d: %s", es(-1));
	CHECK(S_ISREG(st.st_mode), "d after exchange is not a regular file");
	if (check_str(P("f/inner"), "inner", "f/inner after exchange") < 0 ||
	    check_str(P("d"), "filedata", "d after exchange") < 0)
		goto out;
	ret = 0;
out:
	return ret;
}

static int t_rename_across_dirs(void)
{
	struct stat st;
	int ret = -1, r;

	CHECK_OK(mkdir(P("d1"), 0755), "mkdir d1");
	CHECK_OK(mkdir(P("d2"), 0755), "mkdir d2");
	CHECK_OK(create_str(P("d1/f"), "moving"), "create d1/f");
	CHECK_OK(rename(P("d1/f"), P("d2/g")), "rename d1/f -> d2/g");
	r = stat(P("d1/f"), &st);
	CHECK_ERR(r, ENOENT, "stat d1/f after rename");
	if (check_str(P("d2/g"), "moving", "d2/g after rename") < 0)
		goto out;
	r = dir_count(P("d1"));
	CHECK(r == 0, "d1 should be empty after rename, has %d entries", r);

	/* a directory with content */
	CHECK_OK(mkdir(P("d1/sub"), 0755), "mkdir d1/sub");
	CHECK_OK(create_str(P("d1/sub/x"), "xx"), "create d1/sub/x");
	CHECK_OK(rename(P("d1/sub"), P("d2/sub2")), "rename d1/sub -> d2/sub2");
	if (check_str(P("d2/sub2/x"), "xx", "d2/sub2/x after rename") < 0)
		goto out;
	CHECK_OK(create_str(P("d2/sub2/y"), "yy"), "create in moved dir");
	if (check_str(P("d2/sub2/y"), "yy", "d2/sub2/y") < 0)
		goto out;
	/* and back over an existing file in the other directory */
	CHECK_OK(create_str(P("d1/g"), "old"), "create d1/g");
	CHECK_OK(rename(P("d2/g"), P("d1/g")), "rename d2/g over d1/g");
	if (check_str(P("d1/g"), "moving", "d1/g after rename over") < 0)
		goto out;
	r = rmdir(P("d1"));
	CHECK_ERR2(r, ENOTEMPTY, EEXIST, "rmdir of non-empty d1");
	ret = 0;
out:
	return ret;
}

static int t_unlink_open(void)
{
	unsigned char data[20000], b[20000];
	struct stat st;
	int fd = -1, fd2 = -1, ret = -1, r;
	ssize_t l;

	pattern(data, sizeof(data), 31);
	fd = open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create f");
	CHECK(pwrite_all(fd, data, 10000, 0) == 0, "write: %s", es(-1));
	fd2 = open(P("f"), O_RDONLY);
	CHECK_OK(fd2, "open f second fd");
	CHECK_OK(unlink(P("f")), "unlink open f");
	r = stat(P("f"), &st);
	CHECK_ERR(r, ENOENT, "stat unlinked f");
	r = dir_has(tdir, "f");
	CHECK(r == 0, "readdir still lists unlinked f (%d)", r);
	l = pread_full(fd, b, 10000, 0);
	CHECK(l == 10000, "pread of unlinked f: expected 10000 bytes got %s",
	      es(l));
	if (cmp_buf(b, data, 10000, 0, "read unlinked f") < 0)
		goto out;
	CHECK(pwrite_all(fd, data + 10000, 10000, 10000) == 0, "pwrite to "
	      "unlinked f: %s", es(-1));
	CHECK(ftruncate(fd, 15000) == 0, "ftruncate unlinked f: %s", es(-1));
	if (check_fd(fd, data, 15000, "unlinked f after write+ftruncate") < 0 ||
	    check_fd(fd2, data, 15000, "unlinked f via second fd") < 0)
		goto out;
	/* a new file with the same name is a different file */
	CHECK_OK(create_str(P("f"), "new"), "create new f");
	if (check_str(P("f"), "new", "new f") < 0 ||
	    check_fd(fd, data, 15000, "old unlinked f after new f") < 0)
		goto out;
	CHECK(fsync(fd) == 0, "fsync unlinked f: %s", es(-1));
	close(fd);
	fd = -1;
	if (check_fd(fd2, data, 15000, "unlinked f after first close") < 0)
		goto out;
	close(fd2);
	fd2 = -1;
	if (check_str(P("f"), "new", "new f at end") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	return ret;
}

static int t_rename_open(void)
{
	unsigned char data[9000];
	struct stat st, st2;
	int fd = -1, ret = -1, r;

	pattern(data, sizeof(data), 41);
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	fd = open(P("a"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create a");
	CHECK(pwrite_all(fd, data, 3000, 0) == 0, "write: %s", es(-1));
	CHECK_OK(rename(P("a"), P("b")), "rename open a -> b");
	CHECK(pwrite_all(fd, data + 3000, 3000, 3000) == 0, "write after "
	      "rename: %s", es(-1));
	if (check_path(P("b"), data, 6000, "b after write via fd") < 0)
		goto out;
	CHECK_OK(rename(P("b"), P("d/c")), "rename open b -> d/c");
	CHECK(pwrite_all(fd, data + 6000, 3000, 6000) == 0, "write after "
	      "second rename: %s", es(-1));
	if (check_fd(fd, data, 9000, "fd after renames") < 0 ||
	    check_path(P("d/c"), data, 9000, "d/c after writes via fd") < 0)
		goto out;
	CHECK(fstat(fd, &st) == 0 && stat(P("d/c"), &st2) == 0, "stat: %s",
	      es(-1));
	CHECK(st.st_ino == st2.st_ino, "fstat st_ino %llu != stat(d/c) st_ino "
	      "%llu", (unsigned long long)st.st_ino,
	      (unsigned long long)st2.st_ino);
	r = stat(P("a"), &st);
	CHECK_ERR(r, ENOENT, "stat a");
	r = stat(P("b"), &st);
	CHECK_ERR(r, ENOENT, "stat b");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int check_symlink(const char *name, const char *target)
{
	size_t tl = strlen(target);
	char lb[PATH_MAX];
	struct stat st;
	ssize_t l;
	int ret = -1;

	CHECK_OK(symlink(target, P("%s", name)), name);
	l = readlink(P("%s", name), lb, sizeof(lb));
	CHECK(l == (ssize_t)tl, "readlink %s: expected %zu bytes, got %s",
	      name, tl, es(l));
	CHECK(memcmp(lb, target, tl) == 0, "readlink %s: target differs",
	      name);
	CHECK(lstat(P("%s", name), &st) == 0, "lstat %s: %s", name, es(-1));
	CHECK(S_ISLNK(st.st_mode), "lstat %s: not S_IFLNK (mode 0%o)", name,
	      (unsigned int)st.st_mode);
	CHECK((size_t)st.st_size == tl, "lstat %s: st_size expected %zu "
	      "(target length) got %lld", name, tl, (long long)st.st_size);
	ret = 0;
out:
	return ret;
}

static int t_symlink(void)
{
	char t200[201], t1000[1001], lb[64];
	struct stat st, st2;
	int fd = -1, ret = -1, r, i;
	ssize_t l;

	for (i = 0; i < 200; i++)
		t200[i] = (char)('a' + i % 26);
	t200[200] = '\0';
	for (i = 0; i < 1000; i++)
		t1000[i] = i % 10 == 9 ? '/' : (char)('0' + i % 10);
	t1000[1000] = '\0';
	if (check_symlink("l1", "x") < 0 ||
	    check_symlink("l200", t200) < 0 ||
	    check_symlink("l1000", t1000) < 0)
		goto out;
	l = readlink(P("l200"), lb, 10);
	CHECK(l == 10 && !memcmp(lb, t200, 10), "readlink l200 with a 10-byte "
	      "buffer: expected 10 bytes got %s", es(l));
	fd = open(P("l1"), O_RDONLY);
	CHECK_ERR(fd, ENOENT, "open dangling symlink l1");

	/* relative symlinks that resolve */
	CHECK_OK(mkdir(P("sub"), 0755), "mkdir sub");
	CHECK_OK(create_str(P("sub/file"), "content"), "create sub/file");
	if (check_symlink("rel", "sub/file") < 0)
		goto out;
	if (check_str(P("rel"), "content", "open through symlink rel") < 0)
		goto out;
	CHECK(stat(P("rel"), &st) == 0 && stat(P("sub/file"), &st2) == 0,
	      "stat: %s", es(-1));
	CHECK(S_ISREG(st.st_mode) && st.st_ino == st2.st_ino, "stat through "
	      "symlink rel does not give sub/file");
	CHECK_OK(mkdir(P("sub2"), 0755), "mkdir sub2");
	CHECK_OK(symlink("../sub/file", P("sub2/up")), "symlink sub2/up");
	if (check_str(P("sub2/up"), "content", "open through ../ symlink") < 0)
		goto out;
	CHECK_OK(symlink("sub", P("dlink")), "symlink dlink -> sub");
	if (check_str(P("dlink/file"), "content", "open dlink/file") < 0)
		goto out;
	CHECK_OK(symlink("rel", P("chain")), "symlink chain -> rel");
	if (check_str(P("chain"), "content", "open through symlink chain") < 0)
		goto out;
	/* write through the link */
	fd = open(P("rel"), O_WRONLY | O_APPEND);
	CHECK_OK(fd, "open rel for append");
	CHECK(write(fd, "+more", 5) == 5, "write through symlink: %s", es(-1));
	close(fd);
	fd = -1;
	if (check_str(P("sub/file"), "content+more",
		      "sub/file after write through link") < 0)
		goto out;
	fd = open(P("rel"), O_RDONLY | O_NOFOLLOW);
	CHECK_ERR(fd, ELOOP, "open symlink with O_NOFOLLOW");
	r = symlink("y", P("l1"));
	CHECK_ERR(r, EEXIST, "symlink over existing name l1");
	l = readlink(P("sub/file"), lb, sizeof(lb));
	CHECK_ERR(l, EINVAL, "readlink of a regular file");
	CHECK_OK(unlink(P("rel")), "unlink rel");
	if (check_str(P("sub/file"), "content+more",
		      "sub/file after unlinking link") < 0)
		goto out;
	fd = open(P("chain"), O_RDONLY);
	CHECK_ERR(fd, ENOENT, "open chain after its target link was removed");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_hardlink(void)
{
	struct stat sa, sb;
	unsigned char b[16];
	int fa = -1, fb = -1, ret = -1, r;
	ssize_t l;

	CHECK_OK(create_str(P("a"), "original"), "create a");
	CHECK_OK(link(P("a"), P("b")), "link a b");
	CHECK(stat(P("a"), &sa) == 0 && stat(P("b"), &sb) == 0, "stat: %s",
	      es(-1));
	CHECK(sa.st_nlink == 2 && sb.st_nlink == 2, "st_nlink after link: "
	      "a %lu b %lu, expected 2", (unsigned long)sa.st_nlink,
	      (unsigned long)sb.st_nlink);
	CHECK(sa.st_ino == sb.st_ino, "hard links have different st_ino: %llu "
	      "%llu", (unsigned long long)sa.st_ino,
	      (unsigned long long)sb.st_ino);
	fb = open(P("b"), O_WRONLY);
	CHECK_OK(fb, "open b");
	fa = open(P("a"), O_RDONLY);
	CHECK_OK(fa, "open a");
	CHECK(pwrite(fb, "CHANGED", 7, 0) == 7, "write via b: %s", es(-1));
	l = pread_full(fa, b, sizeof(b), 0);
	CHECK(l == 8 && !memcmp(b, "CHANGEDl", 8), "read via a after write "
	      "via b: expected \"CHANGEDl\", got %zd bytes", l);
	if (check_str(P("a"), "CHANGEDl", "a after write via b") < 0)
		goto out;
	CHECK_OK(unlink(P("a")), "unlink a");
	CHECK(stat(P("b"), &sb) == 0, "stat b: %s", es(-1));
	/*
	 * Only a note: FUSE file systems with an attribute cache timeout can
	 * legitimately show the old count for a while.
	 */
	if (sb.st_nlink != 1)
		note("st_nlink of b right after unlinking a is %lu, expected 1 "
		     "(stale attribute cache?)", (unsigned long)sb.st_nlink);
	if (check_str(P("b"), "CHANGEDl", "b after unlink of a") < 0)
		goto out;
	r = link(P("b"), P("b"));
	CHECK_ERR(r, EEXIST, "link b over existing b");
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	r = link(P("d"), P("dlink"));
	CHECK_ERR(r, EPERM, "link of a directory");
	CHECK_OK(link(P("b"), P("d/c")), "link b d/c (other directory)");
	if (check_str(P("d/c"), "CHANGEDl", "d/c") < 0)
		goto out;
	r = link(P("missing"), P("x"));
	CHECK_ERR(r, ENOENT, "link of a missing file");
	ret = 0;
out:
	if (fa >= 0)
		close(fa);
	if (fb >= 0)
		close(fb);
	return ret;
}

static int check_mode(const char *path, mode_t want, const char *what)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		fail("%s: stat: %s", what, es(-1));
		return -1;
	}
	if ((st.st_mode & 07777) != want) {
		fail("%s: mode expected 0%o got 0%o", what, (unsigned int)want,
		     (unsigned int)(st.st_mode & 07777));
		return -1;
	}
	return 0;
}

static int t_chmod(void)
{
	static const mode_t modes[] = { 0600, 0000, 04755, 0444, 0644 };
	struct stat st;
	char what[64];
	int fd = -1, ret = -1;
	size_t i;

	CHECK_OK(create_str(P("f"), "x"), "create f");
	for (i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		snprintf(what, sizeof(what), "chmod f 0%o",
			 (unsigned int)modes[i]);
		CHECK(chmod(P("f"), modes[i]) == 0, "%s: %s", what, es(-1));
		if (check_mode(P("f"), modes[i], what) < 0)
			goto out;
	}
	fd = open(P("f"), O_RDONLY);
	CHECK_OK(fd, "open f");
	CHECK(fchmod(fd, 0751) == 0, "fchmod 0751: %s", es(-1));
	CHECK(fstat(fd, &st) == 0, "fstat: %s", es(-1));
	CHECK((st.st_mode & 07777) == 0751, "fchmod 0751: fstat mode got 0%o",
	      (unsigned int)(st.st_mode & 07777));
	CHECK(S_ISREG(st.st_mode), "chmod changed the file type");
	if (check_mode(P("f"), 0751, "stat after fchmod 0751") < 0)
		goto out;
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK(chmod(P("d"), 0700) == 0, "chmod d 0700: %s", es(-1));
	if (check_mode(P("d"), 0700, "chmod d 0700") < 0)
		goto out;
	CHECK(chmod(P("d"), 0755) == 0, "chmod d 0755: %s", es(-1));
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int check_owner(const char *path, int follow, uid_t u, gid_t g,
		       const char *what)
{
	struct stat st;
	int r = follow ? stat(path, &st) : lstat(path, &st);

	if (r < 0) {
		fail("%s: stat: %s", what, es(-1));
		return -1;
	}
	if (st.st_uid != u || st.st_gid != g) {
		fail("%s: owner expected %u:%u got %u:%u", what,
		     (unsigned int)u, (unsigned int)g,
		     (unsigned int)st.st_uid, (unsigned int)st.st_gid);
		return -1;
	}
	return 0;
}

static int t_chown(void)
{
	uid_t u = geteuid();
	gid_t g = getegid();
	int fd = -1, ret = -1;

	CHECK_OK(create_str(P("f"), "x"), "create f");
	CHECK_OK(symlink("f", P("l")), "symlink l -> f");
	CHECK(chown(P("f"), u, g) == 0, "chown f to own %u:%u: %s",
	      (unsigned int)u, (unsigned int)g, es(-1));
	if (check_owner(P("f"), 1, u, g, "after chown to self") < 0)
		goto out;
	fd = open(P("f"), O_RDONLY);
	CHECK_OK(fd, "open f");
	CHECK(fchown(fd, (uid_t)-1, (gid_t)-1) == 0, "fchown -1:-1: %s",
	      es(-1));
	CHECK(fchown(fd, u, g) == 0, "fchown to self: %s", es(-1));
	CHECK(lchown(P("l"), u, g) == 0, "lchown symlink to self: %s", es(-1));
	if (u != 0) {
		note("not root: chown to 1234:1234 not tested");
		ret = 0;
		goto out;
	}
	CHECK(chown(P("f"), 1234, 1234) == 0, "chown f 1234:1234: %s", es(-1));
	if (check_owner(P("f"), 1, 1234, 1234, "chown f 1234:1234") < 0)
		goto out;
	CHECK(fchown(fd, 0, (gid_t)-1) == 0, "fchown f 0:-1: %s", es(-1));
	if (check_owner(P("f"), 1, 0, 1234, "fchown f 0:-1") < 0)
		goto out;
	CHECK(fchown(fd, (uid_t)-1, 0) == 0, "fchown f -1:0: %s", es(-1));
	if (check_owner(P("f"), 1, 0, 0, "fchown f -1:0") < 0)
		goto out;
	CHECK(lchown(P("l"), 1234, 1234) == 0, "lchown l 1234:1234: %s",
	      es(-1));
	if (check_owner(P("l"), 0, 1234, 1234, "lchown l 1234:1234") < 0 ||
	    check_owner(P("f"), 1, 0, 0, "target of lchown'ed link") < 0)
		goto out;
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK(chown(P("d"), 1234, 1234) == 0, "chown d 1234:1234: %s", es(-1));
	if (check_owner(P("d"), 1, 1234, 1234, "chown d 1234:1234") < 0)
		goto out;
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int ts_eq(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static int t_utimens(void)
{
	struct timespec ts[2], t0, t1, keep;
	struct stat st;
	int fd = -1, ret = -1;

	CHECK_OK(create_str(P("f"), "x"), "create f");
	ts[0].tv_sec = 1000000000;
	ts[0].tv_nsec = 123456789;
	ts[1].tv_sec = 1200000000;
	ts[1].tv_nsec = 987654321;
	CHECK(utimensat(AT_FDCWD, P("f"), ts, 0) == 0, "utimensat explicit: %s",
	      es(-1));
	CHECK(stat(P("f"), &st) == 0, "stat: %s", es(-1));
	CHECK(ts_eq(&st.st_atim, &ts[0]) && ts_eq(&st.st_mtim, &ts[1]),
	      "utimensat explicit: expected atime %lld.%09ld mtime %lld.%09ld,"
	      " got atime %lld.%09ld mtime %lld.%09ld",
	      (long long)ts[0].tv_sec, ts[0].tv_nsec, (long long)ts[1].tv_sec,
	      ts[1].tv_nsec, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);

	/* atime untouched, mtime now */
	ts[0].tv_nsec = UTIME_OMIT;
	ts[1].tv_nsec = UTIME_NOW;
	clock_gettime(CLOCK_REALTIME, &t0);
	CHECK(utimensat(AT_FDCWD, P("f"), ts, 0) == 0, "utimensat OMIT/NOW: "
	      "%s", es(-1));
	clock_gettime(CLOCK_REALTIME, &t1);
	CHECK(stat(P("f"), &st) == 0, "stat: %s", es(-1));
	CHECK(st.st_atim.tv_sec == 1000000000 &&
	      st.st_atim.tv_nsec == 123456789, "utimensat atime UTIME_OMIT: "
	      "atime changed to %lld.%09ld", (long long)st.st_atim.tv_sec,
	      st.st_atim.tv_nsec);
	CHECK(st.st_mtim.tv_sec >= t0.tv_sec - 2 &&
	      st.st_mtim.tv_sec <= t1.tv_sec + 2, "utimensat mtime UTIME_NOW: "
	      "mtime %lld is not the current time %lld",
	      (long long)st.st_mtim.tv_sec, (long long)t0.tv_sec);
	keep = st.st_mtim;

	/* atime now, mtime untouched */
	ts[0].tv_nsec = UTIME_NOW;
	ts[1].tv_nsec = UTIME_OMIT;
	CHECK(utimensat(AT_FDCWD, P("f"), ts, 0) == 0, "utimensat NOW/OMIT: "
	      "%s", es(-1));
	clock_gettime(CLOCK_REALTIME, &t1);
	CHECK(stat(P("f"), &st) == 0, "stat: %s", es(-1));
	CHECK(ts_eq(&st.st_mtim, &keep), "utimensat mtime UTIME_OMIT: mtime "
	      "changed from %lld.%09ld to %lld.%09ld", (long long)keep.tv_sec,
	      keep.tv_nsec, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	CHECK(st.st_atim.tv_sec >= t0.tv_sec - 2 &&
	      st.st_atim.tv_sec <= t1.tv_sec + 2, "utimensat atime UTIME_NOW: "
	      "atime %lld is not the current time %lld",
	      (long long)st.st_atim.tv_sec, (long long)t0.tv_sec);

	/* futimens with explicit times */
	fd = open(P("f"), O_RDWR);
	CHECK_OK(fd, "open f");
	ts[0].tv_sec = 1500000000;
	ts[0].tv_nsec = 1;
	ts[1].tv_sec = 1600000000;
	ts[1].tv_nsec = 999999999;
	CHECK(futimens(fd, ts) == 0, "futimens: %s", es(-1));
	CHECK(fstat(fd, &st) == 0, "fstat: %s", es(-1));
	CHECK(ts_eq(&st.st_atim, &ts[0]) && ts_eq(&st.st_mtim, &ts[1]),
	      "futimens: expected atime %lld.%09ld mtime %lld.%09ld, got "
	      "atime %lld.%09ld mtime %lld.%09ld",
	      (long long)ts[0].tv_sec, ts[0].tv_nsec, (long long)ts[1].tv_sec,
	      ts[1].tv_nsec, (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	CHECK(stat(P("f"), &st) == 0, "stat: %s", es(-1));
	CHECK(ts_eq(&st.st_mtim, &ts[1]), "stat after futimens: mtime "
	      "%lld.%09ld, expected %lld.%09ld", (long long)st.st_mtim.tv_sec,
	      st.st_mtim.tv_nsec, (long long)ts[1].tv_sec, ts[1].tv_nsec);

	/* write updates mtime */
	CHECK(pwrite(fd, "y", 1, 0) == 1, "pwrite: %s", es(-1));
	CHECK(fstat(fd, &st) == 0, "fstat: %s", es(-1));
	CHECK(st.st_mtim.tv_sec >= t0.tv_sec - 2, "write did not update mtime "
	      "(still %lld)", (long long)st.st_mtim.tv_sec);

	/* times on a directory */
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK(utimensat(AT_FDCWD, P("d"), ts, 0) == 0, "utimensat on d: %s",
	      es(-1));
	CHECK(stat(P("d"), &st) == 0, "stat d: %s", es(-1));
	CHECK(ts_eq(&st.st_mtim, &ts[1]) && ts_eq(&st.st_atim, &ts[0]),
	      "utimensat on directory: got atime %lld.%09ld mtime %lld.%09ld",
	      (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec,
	      (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_statvfs(void)
{
	struct statvfs sv, sv2;
	int fd = -1, ret = -1;

	CHECK(statvfs(tdir, &sv) == 0, "statvfs: %s", es(-1));
	CHECK(sv.f_bsize > 0, "statvfs: f_bsize is 0");
	CHECK(sv.f_frsize > 0, "statvfs: f_frsize is 0");
	CHECK(sv.f_namemax >= 255, "statvfs: f_namemax %lu < 255",
	      (unsigned long)sv.f_namemax);
	CHECK(sv.f_bfree <= sv.f_blocks && sv.f_bavail <= sv.f_blocks,
	      "statvfs: f_blocks %llu f_bfree %llu f_bavail %llu inconsistent",
	      (unsigned long long)sv.f_blocks,
	      (unsigned long long)sv.f_bfree,
	      (unsigned long long)sv.f_bavail);
	CHECK_OK(create_str(P("f"), "x"), "create f");
	fd = open(P("f"), O_RDONLY);
	CHECK_OK(fd, "open f");
	CHECK(fstatvfs(fd, &sv2) == 0, "fstatvfs: %s", es(-1));
	CHECK(sv2.f_bsize > 0 && sv2.f_namemax >= 255, "fstatvfs: f_bsize %lu "
	      "f_namemax %lu", (unsigned long)sv2.f_bsize,
	      (unsigned long)sv2.f_namemax);
	CHECK(statvfs(P("f"), &sv2) == 0, "statvfs of a file: %s", es(-1));
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_fsync(void)
{
	int fd = -1, ro = -1, dfd = -1, ret = -1;

	fd = open(P("f"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create f");
	CHECK(fsync(fd) == 0, "fsync of empty file: %s", es(-1));
	CHECK(write(fd, "data", 4) == 4, "write: %s", es(-1));
	CHECK(fsync(fd) == 0, "fsync: %s", es(-1));
	CHECK(pwrite(fd, "more", 4, 10000) == 4, "pwrite: %s", es(-1));
	CHECK(fdatasync(fd) == 0, "fdatasync: %s", es(-1));
	CHECK(fdatasync(fd) == 0, "fdatasync of clean file: %s", es(-1));
	CHECK(syncfs(fd) == 0, "syncfs: %s", es(-1));
	ro = open(P("f"), O_RDONLY);
	CHECK_OK(ro, "open f O_RDONLY");
	CHECK(fsync(ro) == 0, "fsync of O_RDONLY fd: %s", es(-1));
	dfd = open(tdir, O_RDONLY | O_DIRECTORY);
	CHECK_OK(dfd, "open test directory");
	CHECK(fsync(dfd) == 0, "fsync of a directory: %s", es(-1));
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (ro >= 0)
		close(ro);
	if (dfd >= 0)
		close(dfd);
	return ret;
}

/* ---- POSIX record locks ---- */

typedef int (*child_fn)(const char *path, char *msg, size_t msz);

/* run fn in a forked child; 0 if it returned 0, else -1 with msg */
static int run_child(child_fn fn, const char *path, char *msg, size_t msz)
{
	int pfd[2], status, rc;
	size_t got = 0;
	ssize_t r;
	pid_t pid;

	msg[0] = '\0';
	if (pipe(pfd) < 0) {
		snprintf(msg, msz, "pipe: %s", es(-1));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		snprintf(msg, msz, "fork: %s", es(-1));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		char m[512] = "";

		close(pfd[0]);
		rc = fn(path, m, sizeof(m));
		if (write(pfd[1], m, strlen(m)) < 0)
			_exit(2);
		_exit(rc ? 1 : 0);
	}
	close(pfd[1]);
	while (got < msz - 1) {
		r = read(pfd[0], msg + got, msz - 1 - got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	msg[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			snprintf(msg, msz, "waitpid: %s", es(-1));
			return -1;
		}
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!msg[0]) {
		if (WIFSIGNALED(status))
			snprintf(msg, msz, "child killed by signal %d",
				 WTERMSIG(status));
		else
			snprintf(msg, msz, "child exited with %d",
				 WEXITSTATUS(status));
	}
	return -1;
}

static int set_lock(int fd, int cmd, short type, off_t start, off_t len,
		    struct flock *fl)
{
	memset(fl, 0, sizeof(*fl));
	fl->l_type = type;
	fl->l_whence = SEEK_SET;
	fl->l_start = start;
	fl->l_len = len;
	return fcntl(fd, cmd, fl);
}

/* parent holds F_WRLCK on [0, 100) */
static int child_conflict(const char *path, char *m, size_t msz)
{
	struct flock fl;
	int fd, r;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		snprintf(m, msz, "child: open: %s", es(-1));
		return -1;
	}
	if (set_lock(fd, F_GETLK, F_WRLCK, 50, 10, &fl) < 0) {
		snprintf(m, msz, "child: F_GETLK: %s", es(-1));
		return -1;
	}
	if (fl.l_type != F_WRLCK || fl.l_start != 0 || fl.l_len != 100 ||
	    fl.l_pid != getppid()) {
		snprintf(m, msz, "child: F_GETLK [50,60) expected parent's "
			 "F_WRLCK [0,+100) pid %d, got type %d start %lld "
			 "len %lld pid %d", (int)getppid(), fl.l_type,
			 (long long)fl.l_start, (long long)fl.l_len,
			 (int)fl.l_pid);
		return -1;
	}
	if (set_lock(fd, F_GETLK, F_RDLCK, 0, 0, &fl) < 0) {
		snprintf(m, msz, "child: F_GETLK F_RDLCK: %s", es(-1));
		return -1;
	}
	if (fl.l_type != F_WRLCK) {
		snprintf(m, msz, "child: F_GETLK F_RDLCK whole file: expected "
			 "conflict with F_WRLCK, got type %d", fl.l_type);
		return -1;
	}
	r = set_lock(fd, F_SETLK, F_RDLCK, 50, 10, &fl);
	if (r != -1 || (errno != EAGAIN && errno != EACCES)) {
		snprintf(m, msz, "child: F_SETLK F_RDLCK [50,60) under "
			 "parent's write lock: expected EAGAIN or EACCES, "
			 "got %s", es(r));
		return -1;
	}
	r = set_lock(fd, F_SETLK, F_WRLCK, 100, 100, &fl);
	if (r != 0) {
		snprintf(m, msz, "child: F_SETLK F_WRLCK [100,200) (no "
			 "overlap): %s", es(r));
		return -1;
	}
	close(fd);
	return 0;
}

/* nobody else holds a lock */
static int child_free(const char *path, char *m, size_t msz)
{
	struct flock fl;
	int fd, r;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		snprintf(m, msz, "child: open: %s", es(-1));
		return -1;
	}
	if (set_lock(fd, F_GETLK, F_WRLCK, 0, 0, &fl) < 0) {
		snprintf(m, msz, "child: F_GETLK: %s", es(-1));
		return -1;
	}
	if (fl.l_type != F_UNLCK) {
		snprintf(m, msz, "child: F_GETLK on unlocked file: expected "
			 "F_UNLCK, got type %d start %lld len %lld pid %d",
			 fl.l_type, (long long)fl.l_start,
			 (long long)fl.l_len, (int)fl.l_pid);
		return -1;
	}
	r = set_lock(fd, F_SETLK, F_WRLCK, 0, 100, &fl);
	if (r != 0) {
		snprintf(m, msz, "child: F_SETLK F_WRLCK on unlocked file: %s",
			 es(r));
		return -1;
	}
	close(fd);
	return 0;
}

/* parent holds F_RDLCK on [0, 100) */
static int child_shared(const char *path, char *m, size_t msz)
{
	struct flock fl;
	int fd, r;

	fd = open(path, O_RDWR);
	if (fd < 0) {
		snprintf(m, msz, "child: open: %s", es(-1));
		return -1;
	}
	r = set_lock(fd, F_SETLK, F_RDLCK, 0, 100, &fl);
	if (r != 0) {
		snprintf(m, msz, "child: F_SETLK F_RDLCK under parent's read "
			 "lock: %s", es(r));
		return -1;
	}
	r = set_lock(fd, F_SETLK, F_WRLCK, 0, 100, &fl);
	if (r != -1 || (errno != EAGAIN && errno != EACCES)) {
		snprintf(m, msz, "child: F_SETLK F_WRLCK under parent's read "
			 "lock: expected EAGAIN or EACCES, got %s", es(r));
		return -1;
	}
	close(fd);
	return 0;
}

static int t_posix_lock(void)
{
	char msg[600];
	struct flock fl;
	int fd = -1, fd2 = -1, ret = -1;

	CHECK_OK(create_str(P("f"), "lockfile"), "create f");
	fd = open(P("f"), O_RDWR);
	CHECK_OK(fd, "open f");
	CHECK(set_lock(fd, F_SETLK, F_WRLCK, 0, 100, &fl) == 0, "F_SETLK "
	      "F_WRLCK [0,100): %s", es(-1));
	CHECK(set_lock(fd, F_GETLK, F_WRLCK, 0, 0, &fl) == 0, "F_GETLK: %s",
	      es(-1));
	CHECK(fl.l_type == F_UNLCK, "F_GETLK by the lock owner itself: "
	      "expected F_UNLCK, got type %d", fl.l_type);
	CHECK(run_child(child_conflict, P("f"), msg, sizeof(msg)) == 0,
	      "while locked: %s", msg);
	CHECK(set_lock(fd, F_SETLK, F_UNLCK, 0, 100, &fl) == 0, "F_UNLCK: %s",
	      es(-1));
	CHECK(run_child(child_free, P("f"), msg, sizeof(msg)) == 0,
	      "after unlock: %s", msg);
	CHECK(set_lock(fd, F_SETLK, F_RDLCK, 0, 100, &fl) == 0, "F_SETLK "
	      "F_RDLCK [0,100): %s", es(-1));
	CHECK(run_child(child_shared, P("f"), msg, sizeof(msg)) == 0,
	      "under read lock: %s", msg);
	/* closing any fd of the file drops the process's locks */
	CHECK(set_lock(fd, F_SETLK, F_WRLCK, 0, 100, &fl) == 0, "F_SETLK "
	      "F_WRLCK again: %s", es(-1));
	fd2 = open(P("f"), O_RDONLY);
	CHECK_OK(fd2, "open f second fd");
	close(fd2);
	fd2 = -1;
	CHECK(run_child(child_free, P("f"), msg, sizeof(msg)) == 0,
	      "after closing another fd of the file (POSIX: locks released): "
	      "%s", msg);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	return ret;
}

static int t_flock(void)
{
	int fd1 = -1, fd2 = -1, fd3 = -1, ret = -1, r;

	CHECK_OK(create_str(P("f"), "flock"), "create f");
	fd1 = open(P("f"), O_RDWR);
	CHECK_OK(fd1, "open f (1)");
	fd2 = open(P("f"), O_RDWR);
	CHECK_OK(fd2, "open f (2)");
	CHECK(flock(fd1, LOCK_EX | LOCK_NB) == 0, "flock(fd1, LOCK_EX|LOCK_NB):"
	      " %s", es(-1));
	r = flock(fd2, LOCK_EX | LOCK_NB);
	CHECK_ERR(r, EWOULDBLOCK, "flock(fd2, LOCK_EX|LOCK_NB) while fd1 holds "
		  "LOCK_EX");
	r = flock(fd2, LOCK_SH | LOCK_NB);
	CHECK_ERR(r, EWOULDBLOCK, "flock(fd2, LOCK_SH|LOCK_NB) while fd1 holds "
		  "LOCK_EX");
	fd3 = dup(fd1);
	CHECK_OK(fd3, "dup");
	CHECK(flock(fd3, LOCK_EX | LOCK_NB) == 0, "flock on dup of the lock "
	      "holder: %s", es(-1));
	close(fd3);
	fd3 = -1;
	CHECK(flock(fd1, LOCK_UN) == 0, "flock(fd1, LOCK_UN): %s", es(-1));
	CHECK(flock(fd2, LOCK_SH | LOCK_NB) == 0, "flock(fd2, LOCK_SH) after "
	      "unlock: %s", es(-1));
	CHECK(flock(fd1, LOCK_SH | LOCK_NB) == 0, "second shared flock: %s",
	      es(-1));
	CHECK(flock(fd1, LOCK_UN) == 0, "flock(fd1, LOCK_UN): %s", es(-1));
	/* closing fd2 releases its lock */
	close(fd2);
	fd2 = open(P("f"), O_RDWR);
	CHECK_OK(fd2, "reopen f");
	CHECK(flock(fd2, LOCK_EX | LOCK_NB) == 0, "flock LOCK_EX after the "
	      "shared holder closed: %s", es(-1));
	ret = 0;
out:
	if (fd1 >= 0)
		close(fd1);
	if (fd2 >= 0)
		close(fd2);
	if (fd3 >= 0)
		close(fd3);
	return ret;
}

static int t_mmap(void)
{
	size_t size = 3 * BS + 123, maplen, mlen = 0, i;
	unsigned char *a = NULL, *b = NULL, *tmp = NULL, *map = MAP_FAILED;
	struct model m = { 0 };
	int fd = -1, fd2 = -1, ret = -1;

	maplen = (size + pagesize - 1) / pagesize * pagesize;
	a = malloc(size);
	b = malloc(size);
	tmp = malloc(maplen);
	CHECK(a && b && tmp && model_init(&m, 4 * BS) == 0, "out of memory");
	pattern(a, size, 51);
	pattern(b, size, 52);
	CHECK_OK(create_file(P("f"), a, size), "create f");
	fd = open(P("f"), O_RDWR);
	CHECK_OK(fd, "open f");
	mlen = size;
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED, "mmap MAP_SHARED of %zu bytes: %s", size,
	      es(-1));
	CHECK(guarded_copy(tmp, map, maplen) == 0, "SIGBUS reading mapping");
	if (cmp_buf(tmp, a, size, 0, "mmap read of f") < 0)
		goto out;
	CHECK(all_zero(tmp + size, maplen - size), "mapping past EOF (in the "
	      "last page) is not zero");
	CHECK(guarded_copy(map, b, size) == 0, "SIGBUS writing mapping");
	CHECK(msync(map, size, MS_SYNC) == 0, "msync: %s", es(-1));
	fd2 = open(P("f"), O_RDONLY);
	CHECK_OK(fd2, "open f second fd");
	if (check_fd(fd2, b, size, "pread via other fd after mmap write + "
		     "msync") < 0)
		goto out;
	/* write() is visible through the mapping */
	memset(b + 5000, 'C', 100);
	CHECK(pwrite(fd, b + 5000, 100, 5000) == 100, "pwrite: %s", es(-1));
	CHECK(guarded_copy(tmp, map, size) == 0, "SIGBUS reading mapping");
	if (cmp_buf(tmp, b, size, 0, "mapping after pwrite") < 0)
		goto out;
	CHECK(munmap(map, size) == 0, "munmap: %s", es(-1));
	map = MAP_FAILED;
	close(fd);
	close(fd2);
	fd = fd2 = -1;
	if (check_path(P("f"), b, size, "f after munmap+close+reopen") < 0)
		goto out;

	/* MAP_PRIVATE writes do not reach the file */
	fd = open(P("f"), O_RDWR);
	CHECK_OK(fd, "open f");
	mlen = size;
	map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
	CHECK(map != MAP_FAILED, "mmap MAP_PRIVATE: %s", es(-1));
	CHECK(guarded_copy(map, a, size) == 0, "SIGBUS writing private map");
	CHECK(munmap(map, size) == 0, "munmap: %s", es(-1));
	map = MAP_FAILED;
	close(fd);
	fd = -1;
	if (check_path(P("f"), b, size, "f after MAP_PRIVATE write") < 0)
		goto out;

	/* shared writes into a sparse file made by ftruncate */
	fd = open(P("g"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create g");
	CHECK(ftruncate(fd, 2 * BS + 10) == 0, "ftruncate g: %s", es(-1));
	model_trunc(&m, 2 * BS + 10);
	mlen = 2 * BS + 10;
	map = mmap(NULL, mlen, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	CHECK(map != MAP_FAILED, "mmap g: %s", es(-1));
	for (i = 0; i < 3; i++) {
		static const size_t offs[] = { 100, 5000, 2 * BS + 9 };

		CHECK(guarded_copy(map + offs[i], "Z", 1) == 0,
		      "SIGBUS writing g mapping at %zu", offs[i]);
		model_write(&m, offs[i], "Z", 1);
	}
	CHECK(msync(map, 2 * BS + 10, MS_SYNC) == 0, "msync g: %s", es(-1));
	CHECK(munmap(map, 2 * BS + 10) == 0, "munmap g: %s", es(-1));
	map = MAP_FAILED;
	close(fd);
	fd = -1;
	if (check_path(P("g"), m.d, m.size, "sparse g after mmap writes") < 0)
		goto out;
	ret = 0;
out:
	if (map != MAP_FAILED)
		munmap(map, mlen);
	if (fd >= 0)
		close(fd);
	if (fd2 >= 0)
		close(fd2);
	free(a);
	free(b);
	free(tmp);
	free(m.d);
	return ret;
}

/* 1 if list (listxattr format) contains name exactly once, else 0/-1 */
static int xattr_listed(const char *path, const char *name)
{
	char list[4096];
	ssize_t n, sz;
	size_t off;
	int found = 0;

	sz = listxattr(path, NULL, 0);
	if (sz < 0)
		return -1;
	n = listxattr(path, list, sizeof(list));
	if (n < 0)
		return -1;
	if (n != sz)
		return -2;
	for (off = 0; off < (size_t)n; off += strlen(list + off) + 1)
		if (strcmp(list + off, name) == 0)
			found++;
	return found;
}

static int t_xattr(void)
{
	char v1000[1000], b[2000];
	int fd = -1, ret = -1, r;
	ssize_t n;

	memset(v1000, 0, sizeof(v1000));
	pattern(v1000, sizeof(v1000), 61);
	CHECK_OK(create_str(P("f"), "xattr"), "create f");
	r = setxattr(P("f"), "user.test", "1", 1, 0);
	if (r < 0 && errno == EOPNOTSUPP) {
		note("user xattrs not supported (EOPNOTSUPP)");
		ret = SKIP;
		goto out;
	}
	CHECK_OK(r, "setxattr user.test (1 byte)");
	n = getxattr(P("f"), "user.test", NULL, 0);
	CHECK(n == 1, "getxattr size query: expected 1, got %s", es(n));
	n = getxattr(P("f"), "user.test", b, sizeof(b));
	CHECK(n == 1 && b[0] == '1', "getxattr user.test: expected \"1\", got "
	      "%s", es(n));
	r = xattr_listed(P("f"), "user.test");
	CHECK(r == 1, "listxattr: user.test listed %d times (%s)", r, es(r));
	r = setxattr(P("f"), "user.test", "2", 1, XATTR_CREATE);
	CHECK_ERR(r, EEXIST, "setxattr XATTR_CREATE on existing user.test");
	r = setxattr(P("f"), "user.test", v1000, sizeof(v1000), XATTR_REPLACE);
	CHECK_OK(r, "setxattr XATTR_REPLACE user.test (1000 bytes)");
	n = getxattr(P("f"), "user.test", b, sizeof(b));
	CHECK(n == 1000 && !memcmp(b, v1000, 1000), "getxattr of 1000-byte "
	      "value: got %s%s", es(n), n == 1000 ? " (content differs)" : "");
	n = getxattr(P("f"), "user.test", b, 10);
	CHECK_ERR(n, ERANGE, "getxattr with a too small buffer");
	n = getxattr(P("f"), "user.missing", b, sizeof(b));
	CHECK_ERR(n, ENODATA, "getxattr of missing user.missing");
	r = setxattr(P("f"), "user.missing", "x", 1, XATTR_REPLACE);
	CHECK_ERR(r, ENODATA, "setxattr XATTR_REPLACE of missing attribute");
	r = setxattr(P("f"), "user.empty", "", 0, 0);
	CHECK_OK(r, "setxattr of an empty value");
	n = getxattr(P("f"), "user.empty", b, sizeof(b));
	CHECK(n == 0, "getxattr of an empty value: expected 0, got %s", es(n));

	fd = open(P("f"), O_RDONLY);
	CHECK_OK(fd, "open f");
	CHECK(fsetxattr(fd, "user.fd", "viafd", 5, XATTR_CREATE) == 0,
	      "fsetxattr user.fd: %s", es(-1));
	n = fgetxattr(fd, "user.fd", b, sizeof(b));
	CHECK(n == 5 && !memcmp(b, "viafd", 5), "fgetxattr user.fd: got %s",
	      es(n));
	n = getxattr(P("f"), "user.fd", b, sizeof(b));
	CHECK(n == 5 && !memcmp(b, "viafd", 5), "getxattr of user.fd set via "
	      "fd: got %s", es(n));

	CHECK(removexattr(P("f"), "user.test") == 0, "removexattr user.test: "
	      "%s", es(-1));
	n = getxattr(P("f"), "user.test", b, sizeof(b));
	CHECK_ERR(n, ENODATA, "getxattr after removexattr");
	r = xattr_listed(P("f"), "user.test");
	CHECK(r == 0, "listxattr still lists removed user.test (%d)", r);
	r = removexattr(P("f"), "user.test");
	CHECK_ERR(r, ENODATA, "removexattr of missing attribute");
	/* the file data is untouched */
	if (check_str(P("f"), "xattr", "f after xattr operations") < 0)
		goto out;
	/* on a directory */
	CHECK_OK(mkdir(P("d"), 0755), "mkdir d");
	CHECK(setxattr(P("d"), "user.test", v1000, 100, 0) == 0, "setxattr on "
	      "a directory: %s", es(-1));
	n = getxattr(P("d"), "user.test", b, sizeof(b));
	CHECK(n == 100 && !memcmp(b, v1000, 100), "getxattr on a directory: "
	      "got %s", es(n));
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

static int t_mkfifo(void)
{
	struct stat st;
	char b[4];
	int fd = -1, ret = -1, r;

	CHECK_OK(mkfifo(P("fifo"), 0644), "mkfifo");
	CHECK(lstat(P("fifo"), &st) == 0, "lstat fifo: %s", es(-1));
	CHECK(S_ISFIFO(st.st_mode), "fifo: not S_IFIFO (mode 0%o)",
	      (unsigned int)st.st_mode);
	CHECK((st.st_mode & 07777) == 0644, "fifo: mode expected 0644 got 0%o",
	      (unsigned int)(st.st_mode & 07777));
	r = mkfifo(P("fifo"), 0644);
	CHECK_ERR(r, EEXIST, "mkfifo over existing fifo");
	fd = open(P("fifo"), O_RDWR | O_NONBLOCK);
	CHECK_OK(fd, "open fifo O_RDWR");
	CHECK(write(fd, "pipe", 4) == 4, "write to fifo: %s", es(-1));
	CHECK(read(fd, b, 4) == 4 && !memcmp(b, "pipe", 4), "read from fifo: "
	      "%s", es(-1));
	close(fd);
	fd = -1;
	CHECK_OK(unlink(P("fifo")), "unlink fifo");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	return ret;
}

/* ---- concurrent writers ---- */

#define THR_N		8
#define THR_ABLOCKS	16	/* aligned blocks per thread */
#define THR_STRIPES	40	/* unaligned stripes per thread */
#define THR_STRIPE	1000
#define THR_UBASE	((size_t)THR_N * THR_ABLOCKS * BS + 1000)
#define THR_END		(THR_UBASE + (size_t)THR_N * THR_STRIPES * THR_STRIPE)
#define THR_PASSES	4

struct thr_arg {
	const char *path;
	int id;
	pthread_barrier_t *bar;
	char err[256];
};

static void thr_fill(unsigned char *p, size_t off, size_t n, int id, int pass)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint64_t x = (off + i) * 0x9e3779b97f4a7c15ULL +
			     (uint64_t)(id * 131 + pass * 7);

		p[i] = (unsigned char)((x >> 32) ^ (x >> 13));
	}
}

static void *thr_main(void *v)
{
	struct thr_arg *a = v;
	unsigned char b[BS];
	int fd, pass, k;
	size_t off, l1;

	fd = open(a->path, O_RDWR);
	if (fd < 0)
		snprintf(a->err, sizeof(a->err), "thread %d: open: %s", a->id,
			 strerror(errno));
	pthread_barrier_wait(a->bar);
	if (fd < 0)
		return NULL;
	for (pass = 0; pass < THR_PASSES; pass++) {
		for (k = 0; k < THR_STRIPES || k < THR_ABLOCKS; k++) {
			if (k < THR_ABLOCKS) {
				off = (size_t)(k * THR_N + a->id) * BS;
				thr_fill(b, off, BS, a->id, pass);
				if (pwrite_all(fd, b, BS, (off_t)off) < 0)
					goto err;
			}
			if (k < THR_STRIPES) {
				off = THR_UBASE +
				      (size_t)(k * THR_N + a->id) * THR_STRIPE;
				l1 = 1 + (size_t)(k * 37 + a->id) % 999;
				thr_fill(b, off, THR_STRIPE, a->id, pass);
				if (pwrite_all(fd, b, l1, (off_t)off) < 0 ||
				    pwrite_all(fd, b + l1, THR_STRIPE - l1,
					       (off_t)(off + l1)) < 0)
					goto err;
			}
		}
	}
	close(fd);
	return NULL;
err:
	snprintf(a->err, sizeof(a->err), "thread %d: pwrite at %zu: %s",
		 a->id, off, strerror(errno));
	close(fd);
	return NULL;
}

static int t_threads(void)
{
	struct thr_arg args[THR_N];
	pthread_t th[THR_N];
	pthread_barrier_t bar;
	unsigned char *exp = NULL;
	char path[PATH_MAX];
	int i, started = 0, ret = -1, e;
	size_t off, s;

	snprintf(path, sizeof(path), "%s", P("shared"));
	CHECK_OK(create_file(path, NULL, 0), "create shared");
	exp = calloc(1, THR_END);
	CHECK(exp, "out of memory");
	pthread_barrier_init(&bar, NULL, THR_N);
	for (i = 0; i < THR_N; i++) {
		args[i].path = path;
		args[i].id = i;
		args[i].bar = &bar;
		args[i].err[0] = '\0';
		e = pthread_create(&th[i], NULL, thr_main, &args[i]);
		if (e) {
			fail("pthread_create: %s", strerror(e));
			break;
		}
		started++;
	}
	if (started < THR_N) {
		/* cannot happen in practice; avoid a barrier deadlock */
		fprintf(stderr, "posix_ops: pthread_create failed, aborting\n");
		exit(99);
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	for (i = 0; i < THR_N; i++)
		CHECK(!args[i].err[0], "%s", args[i].err);

	for (off = 0; off < (size_t)THR_N * THR_ABLOCKS * BS; off += BS)
		thr_fill(exp + off, off, BS, (int)(off / BS % THR_N),
			 THR_PASSES - 1);
	for (s = 0; s < (size_t)THR_N * THR_STRIPES; s++) {
		off = THR_UBASE + s * THR_STRIPE;
		thr_fill(exp + off, off, THR_STRIPE, (int)(s % THR_N),
			 THR_PASSES - 1);
	}
	if (check_path(path, exp, THR_END, "shared file written by 8 threads "
		       "(aligned blocks below 524288, unaligned 1000-byte "
		       "stripes above)") < 0)
		goto out;
	ret = 0;
out:
	free(exp);
	return ret;
}

static int t_many_fds(void)
{
	enum { NFD = 64 };
	unsigned char data[NFD * BS / 4], b[64];
	int fds[NFD], i, ret = -1;
	ssize_t l;

	for (i = 0; i < NFD; i++)
		fds[i] = -1;
	pattern(data, sizeof(data), 71);
	CHECK_OK(create_file(P("f"), data, sizeof(data)), "create f");
	for (i = 0; i < NFD; i++) {
		fds[i] = open(P("f"), i % 2 ? O_RDWR : O_RDONLY);
		CHECK(fds[i] >= 0, "open fd #%d of f: %s", i, es(-1));
	}
	for (i = 0; i < NFD; i++) {
		size_t off = (size_t)i * (BS / 4);

		l = pread_full(fds[i], b, sizeof(b), (off_t)off);
		CHECK(l == (ssize_t)sizeof(b), "pread via fd #%d at %zu: %s",
		      i, off, es(l));
		if (cmp_buf(b, data + off, sizeof(b), off, "read via one of "
			    "64 fds") < 0)
			goto out;
		if (i % 2) {
			pattern(data + off + 100, 50, 1000 + (uint64_t)i);
			CHECK(pwrite(fds[i], data + off + 100, 50,
				     (off_t)(off + 100)) == 50,
			      "pwrite via fd #%d: %s", i, es(-1));
			l = pread_full(fds[(i + 1) % NFD], b, 50,
				       (off_t)(off + 100));
			CHECK(l == 50, "pread via fd #%d: %s", (i + 1) % NFD,
			      es(l));
			if (cmp_buf(b, data + off + 100, 50, off + 100,
				    "read via another fd after write") < 0)
				goto out;
		}
	}
	for (i = 0; i < NFD; i++) {
		CHECK(close(fds[i]) == 0, "close fd #%d: %s", i, es(-1));
		fds[i] = -1;
	}
	if (check_path(P("f"), data, sizeof(data), "f after 64 fds") < 0)
		goto out;
	ret = 0;
out:
	for (i = 0; i < NFD; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	return ret;
}

static int t_big_file(void)
{
	const size_t chunk = 1 << 20, nchunks = 20;
	unsigned char *w = NULL, *r = NULL;
	uint64_t hw = 0xcbf29ce484222325ULL, hr = hw;
	struct stat st;
	int fd = -1, ret = -1;
	size_t c;
	ssize_t l;

	w = malloc(chunk);
	r = malloc(chunk);
	CHECK(w && r, "out of memory");
	fd = open(P("big"), O_WRONLY | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create big");
	for (c = 0; c < nchunks; c++) {
		pattern(w, chunk, 500 + c);
		hw = fnv1a(hw, w, chunk);
		CHECK(write_all(fd, w, chunk) == 0, "write chunk %zu (offset "
		      "%zu): %s", c, c * chunk, es(-1));
	}
	CHECK(fsync(fd) == 0, "fsync: %s", es(-1));
	CHECK(close(fd) == 0, "close: %s", es(-1));
	fd = -1;
	CHECK(stat(P("big"), &st) == 0, "stat big: %s", es(-1));
	CHECK((size_t)st.st_size == nchunks * chunk, "size of 20 MiB file: "
	      "expected %zu got %lld", nchunks * chunk, (long long)st.st_size);
	fd = open(P("big"), O_RDONLY);
	CHECK_OK(fd, "reopen big");
	for (c = 0; c < nchunks; c++) {
		l = read_full(fd, r, chunk);
		CHECK(l == (ssize_t)chunk, "read chunk %zu: expected %zu bytes "
		      "got %s", c, chunk, es(l));
		hr = fnv1a(hr, r, chunk);
		pattern(w, chunk, 500 + c);
		if (cmp_buf(r, w, chunk, c * chunk,
			    "20 MiB file read back") < 0)
			goto out;
	}
	l = read(fd, r, 1);
	CHECK(l == 0, "read at EOF of 20 MiB file: expected 0 got %s", es(l));
	CHECK(hw == hr, "checksum mismatch: wrote %016" PRIx64 " read %016"
	      PRIx64, hw, hr);
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(w);
	free(r);
	return ret;
}

static int run_large;

static int t_large_file(void)
{
	const off_t off = ((off_t)4 << 30) + 12345;
	const size_t len = 1 << 20;
	unsigned char *w = NULL, *r = NULL;
	struct stat st;
	int fd = -1, ret = -1;
	ssize_t l;

	if (!run_large) {
		note("not requested (use -x)");
		return SKIP;
	}
	w = malloc(len);
	r = malloc(len);
	CHECK(w && r, "out of memory");
	pattern(w, len, 81);
	fd = open(P("large"), O_RDWR | O_CREAT | O_EXCL, 0644);
	CHECK_OK(fd, "create large");
	CHECK(pwrite_all(fd, w, len, off) == 0, "pwrite 1 MiB at offset %lld: "
	      "%s", (long long)off, es(-1));
	CHECK(fstat(fd, &st) == 0, "fstat: %s", es(-1));
	CHECK(st.st_size == off + (off_t)len, "size after write at 4 GiB + "
	      "12345: expected %lld got %lld", (long long)(off + (off_t)len),
	      (long long)st.st_size);
	CHECK(fsync(fd) == 0, "fsync: %s", es(-1));
	close(fd);
	fd = open(P("large"), O_RDONLY);
	CHECK_OK(fd, "reopen large");
	l = pread_full(fd, r, len, off);
	CHECK(l == (ssize_t)len, "pread 1 MiB at %lld: got %s", (long long)off,
	      es(l));
	if (cmp_buf(r, w, len, (uint64_t)off, "large file data") < 0)
		goto out;
	l = pread_full(fd, r, BS, (off_t)2 << 30);
	CHECK(l == BS, "pread in hole at 2 GiB: got %s", es(l));
	CHECK(all_zero(r, BS), "hole at 2 GiB does not read as zeros");
	l = pread_full(fd, r, 200, off - 100);
	CHECK(l == 200, "pread across hole/data boundary: got %s", es(l));
	CHECK(all_zero(r, 100), "hole just before the data is not zero");
	if (cmp_buf(r + 100, w, 100, (uint64_t)off, "data after hole") < 0)
		goto out;
	l = pread(fd, r, 10, off + (off_t)len);
	CHECK(l == 0, "pread at EOF: expected 0 got %s", es(l));
	close(fd);
	fd = -1;
	CHECK_OK(unlink(P("large")), "unlink large");
	ret = 0;
out:
	if (fd >= 0)
		close(fd);
	free(w);
	free(r);
	return ret;
}

/* ------------------------------------------------------------------ */
/* driver                                                              */

static const struct test {
	const char *name;
	int (*fn)(void);
} tests[] = {
	{ "create_rw", t_create_rw },
	{ "new_file_owner", t_new_owner },
	{ "open_errors", t_open_errors },
	{ "o_excl", t_excl },
	{ "o_trunc", t_o_trunc },
	{ "o_append_two_fds", t_append },
	{ "truncate", t_truncate },
	{ "ftruncate", t_ftruncate },
	{ "holes", t_holes },
	{ "fallocate", t_fallocate },
	{ "mkdir_rmdir", t_mkdir_rmdir },
	{ "readdir_3000", t_readdir_3000 },
	{ "name_255", t_name_255 },
	{ "name_256", t_name_256 },
	{ "rename_file_over_file", t_rename_file },
	{ "rename_dir_over_empty_dir", t_rename_dir_empty },
	{ "rename_dir_over_nonempty_dir", t_rename_dir_nonempty },
	{ "rename_type_mismatch", t_rename_types },
	{ "rename_same_file", t_rename_same },
	{ "renameat2_noreplace", t_renameat2_noreplace },
	{ "renameat2_exchange_files", t_renameat2_exchange_files },
	{ "renameat2_exchange_file_dir", t_renameat2_exchange_dir },
	{ "rename_across_dirs", t_rename_across_dirs },
	{ "unlink_open_file", t_unlink_open },
	{ "rename_open_file", t_rename_open },
	{ "symlink", t_symlink },
	{ "hardlink", t_hardlink },
	{ "chmod", t_chmod },
	{ "chown", t_chown },
	{ "utimens", t_utimens },
	{ "statvfs", t_statvfs },
	{ "fsync", t_fsync },
	{ "posix_lock", t_posix_lock },
	{ "flock", t_flock },
	{ "mmap_shared", t_mmap },
	{ "xattr_user", t_xattr },
	{ "mkfifo", t_mkfifo },
	{ "threads_8_writers", t_threads },
	{ "fds_64", t_many_fds },
	{ "file_20m", t_big_file },
	{ "large_file_4g", t_large_file },
};

static int rm_cb(const char *path, const struct stat *st, int type,
		 struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static void usage(void) __attribute__((noreturn));

static void usage(void)
{
	fprintf(stderr, "usage: posix_ops [-x] DIR\n"
		"  -x  also run the large file test (write at 4 GiB)\n");
	exit(99);
}

int main(int argc, char **argv)
{
	unsigned int passed = 0, failed = 0, skipped = 0;
	struct sigaction sa;
	struct stat st;
	size_t i;
	int c, r, n;

	while ((c = getopt(argc, argv, "x")) != -1) {
		switch (c) {
		case 'x':
			run_large = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();

	setvbuf(stdout, NULL, _IOLBF, 0);
	umask(022);
	pagesize = (size_t)sysconf(_SC_PAGESIZE);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = bus_handler;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (stat(argv[optind], &st) < 0 || !S_ISDIR(st.st_mode)) {
		printf("posix_ops: SKIP: %s is not a usable directory\n",
		       argv[optind]);
		return 77;
	}
	n = snprintf(base, sizeof(base), "%s/posix_ops.XXXXXX", argv[optind]);
	if (n < 0 || (size_t)n >= sizeof(base) - 2 * NAME_MAX - 64) {
		printf("posix_ops: SKIP: directory name too long\n");
		return 77;
	}
	if (!mkdtemp(base)) {
		printf("posix_ops: SKIP: cannot create a directory in %s: %s\n",
		       argv[optind], strerror(errno));
		return 77;
	}
	/*
	 * Plain 0755 without setgid, and no inherited default ACL, so that
	 * the mode checks only depend on the umask.
	 */
	if (chmod(base, 0755) < 0) {
		printf("posix_ops: SKIP: chmod %s: %s\n", base,
		       strerror(errno));
		rmdir(base);
		return 77;
	}
	if (getxattr(base, "system.posix_acl_default", NULL, 0) > 0)
		removexattr(base, "system.posix_acl_default");
	printf("posix_ops: testing in %s\n", base);

	for (i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
		reason[0] = '\0';
		note_buf[0] = '\0';
		n = snprintf(tdir, sizeof(tdir), "%s/%s", base, tests[i].name);
		if (n < 0 || (size_t)n >= sizeof(tdir)) {
			fail("test directory name too long");
			r = -1;
		} else if (mkdir(tdir, 0755) < 0) {
			fail("mkdir %s: %s", tdir, es(-1));
			r = -1;
		} else {
			r = tests[i].fn();
		}
		if (r == 0) {
			passed++;
			if (note_buf[0])
				printf("ok %s (note: %s)\n", tests[i].name,
				       note_buf);
			else
				printf("ok %s\n", tests[i].name);
		} else if (r == SKIP) {
			skipped++;
			printf("skip %s: %s\n", tests[i].name, note_buf);
		} else {
			failed++;
			printf("FAIL %s: %s\n", tests[i].name,
			       reason[0] ? reason : "(no reason recorded)");
		}
	}

	if (!failed) {
		if (nftw(base, rm_cb, 32, FTW_DEPTH | FTW_PHYS) != 0) {
			failed++;
			printf("FAIL cleanup: removing %s: %s\n", base,
			       strerror(errno));
		}
	} else {
		printf("posix_ops: test directory left in %s\n", base);
	}
	if (skipped)
		printf("posix_ops: %u skipped\n", skipped);
	printf("posix_ops: %u passed, %u failed\n", passed, failed);
	return failed ? 1 : 0;
}
