/*
 * crashload.c - load, checker and syscall-point killer for
 * tests/mount/t_crash.sh (issue #6, crash safety).
 *
 *   crashload load  -s SEED -n OPS -j JOURNAL DIR
 *   crashload check -s SEED -j JOURNAL [-S] DIR
 *   crashload trace -k N -o COUNTFILE [-l LOG] -- CMD [ARG...]
 *
 * load: a deterministic sequence of OPS single-syscall operations on six
 * paths under DIR (d0/a d0/b d0/c d1/a d1/b d1/<long name>): creates,
 * unaligned and 4 KiB-aligned overwrites, appends across block
 * boundaries, truncates down and up, open(O_TRUNC), renames over existing
 * files within and across directories, unlinks, and sync points (fsync of
 * every file and directory). Operation k is bracketed by "B k" and "E k"
 * lines in JOURNAL, which is on a file system that outlives the daemon.
 * Content comes from (SEED, k), so the checker regenerates every version
 * without storing it. Stops at the first error (the daemon died): exit 3
 * for ENOTCONN/ECONNABORTED, 1 for anything else.
 *
 * check: replays the same sequence in memory up to the journal's last
 * completed operation c and the one in flight (c + 1, if begun), then
 * reads every path under DIR (the remounted volume) block by block. What
 * is acceptable, per path and per 4 KiB block, is the state after some
 * operation j in a window [d, c + 1]:
 *   - promise (always): d = the last completed sync point. Names present
 *     equal those of one state of the window; a file's size is its size
 *     in one of them; each block that reads equals that block of a state
 *     in which the file holds those bytes (old or new version per block);
 *   - -S (strict): d = c. Without a writeback cache (src/fuse/ops.c) a
 *     completed write has reached the backing file before its reply, so
 *     kill -9 of the daemon may not lose any completed operation either.
 *   A block or file that fails with EIO/EBADMSG is "torn": allowed only
 *   on a path the window's operations touched, printed as "TORN /path"
 *   for the caller to match against fsck. Any other byte is a failure.
 *   A file's size may also lie between two versions' sizes if a write
 *   is among the operations: the kernel splits one write(2) into several
 *   FUSE requests (at the first page boundary), each one crash point.
 *   Prints "INFLIGHT k KIND" (k = 0: the mkdir of d0 and d1), "TOUCHED
 *   /path" (paths the in-flight operation changes), then one "check:"
 *   summary line. Exit 0 ok, 1 a violation (described on stderr).
 *
 * trace: runs CMD under ptrace with a seccomp filter that stops it at the
 * entry of every syscall that changes files (pwrite*, ftruncate,
 * fallocate, rename*, link/unlink, mkdir, fsync, fdatasync, fchown,
 * symlink, set/remove xattr), counted over all threads and children,
 * and sends SIGKILL at the entry
 * of the N-th (that syscall never runs): a reproducible crash point.
 * N = 0 never kills. On SIGTERM it kills CMD (a crash after the last
 * point). Writes "COUNT KILLED_AT" to COUNTFILE (KILLED_AT 0 if the
 * kill came from SIGTERM or never), and with -l one "N SYSCALL" line per
 * point to LOG as it goes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define NPATH 6
#define BS 4096			/* plaintext block, doc/FORMAT.md §3 */
#define MAXSZ (160u * 1024)	/* keeps a file's versions cheap to hold */
#define MAXOPS 100000

static const char *prog = "crashload";

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- deterministic randomness (splitmix64) ---- */

static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t rnd(uint64_t *s, uint64_t n)
{
	return n == 0 ? 0 : mix(s) % n;
}

/* The bytes operation k of run `seed` writes. */
static void gen_data(uint64_t seed, long k, uint8_t *p, size_t len)
{
	uint64_t s = seed * 1000003u + (uint64_t)k, v = 0;

	for (size_t i = 0; i < len; i++) {
		if (i % 8 == 0)
			v = mix(&s);
		p[i] = (uint8_t)(v >> (8 * (i % 8)));
	}
}

/* ---- the model: six paths, each absent or an immutable blob ---- */

struct blob {
	int refs;
	size_t len;
	uint8_t data[];
};

struct state {
	struct blob *f[NPATH];		/* NULL: absent */
};

static char paths[NPATH][256];

static void init_paths(void)
{
	static const char *const fixed[NPATH - 1] = { "d0/a", "d0/b", "d0/c",
						      "d1/a", "d1/b" };
	char longname[181];

	for (int i = 0; i < NPATH - 1; i++)
		snprintf(paths[i], sizeof(paths[i]), "%s", fixed[i]);
	/* >= 160 bytes: a long name with a side file (doc/FORMAT.md §4.2) */
	memset(longname, 'L', 180);
	longname[180] = '\0';
	snprintf(paths[NPATH - 1], sizeof(paths[0]), "d1/%s", longname);
}

static struct blob *blob_new(size_t len)
{
	struct blob *b = calloc(1, sizeof(*b) + len + 1);

	if (b == NULL)
		die("out of memory");
	b->refs = 1;
	b->len = len;
	return b;
}

static struct blob *blob_ref(struct blob *b)
{
	if (b != NULL)
		b->refs++;
	return b;
}

static void blob_unref(struct blob *b)
{
	if (b != NULL && --b->refs == 0)
		free(b);
}

static void state_copy(struct state *dst, const struct state *src)
{
	for (int i = 0; i < NPATH; i++)
		dst->f[i] = blob_ref(src->f[i]);
}

static void state_clear(struct state *s)
{
	for (int i = 0; i < NPATH; i++) {
		blob_unref(s->f[i]);
		s->f[i] = NULL;
	}
}

enum kind { OP_CREATE, OP_WRITE, OP_AWRITE, OP_APPEND, OP_TRUNC, OP_OTRUNC,
	    OP_RENAME, OP_UNLINK, OP_SYNC };
static const char *const kind_name[] = { "create", "write", "awrite",
					 "append", "truncate", "otrunc",
					 "rename", "unlink", "sync" };

struct op {
	enum kind kind;
	int a, b;			/* path indexes */
	uint64_t off, len;		/* write range, or new size */
};

static int pick(uint64_t *rng, const struct state *s, bool present)
{
	int cand[NPATH], n = 0;

	for (int i = 0; i < NPATH; i++)
		if ((s->f[i] != NULL) == present)
			cand[n++] = i;
	return n == 0 ? -1 : cand[rnd(rng, (uint64_t)n)];
}

static int npresent(const struct state *s)
{
	int n = 0;

	for (int i = 0; i < NPATH; i++)
		n += s->f[i] != NULL;
	return n;
}

/* The next operation, from the rng and the current state only. */
static struct op gen_op(uint64_t *rng, const struct state *s)
{
	struct op o = { .kind = OP_SYNC, .a = -1, .b = -1 };
	uint64_t r = rnd(rng, 100), sz;

	if (npresent(s) < 3) {
		o.kind = OP_CREATE;
		o.a = pick(rng, s, false);
		return o;
	}
	o.a = pick(rng, s, true);
	sz = s->f[o.a]->len;
	if (r < 25) {
		o.kind = OP_WRITE;
		o.len = 1 + rnd(rng, 24000);
		o.off = rnd(rng, sz + 6000);
	} else if (r < 40) {
		o.kind = OP_AWRITE;
		o.len = BS * (1 + rnd(rng, 12));
		o.off = BS * rnd(rng, sz / BS + 2);
	} else if (r < 55) {
		o.kind = OP_APPEND;
		o.len = 1 + rnd(rng, 12000);
		if (sz + o.len > MAXSZ) {
			o.kind = OP_TRUNC;
			o.off = rnd(rng, sz);
		}
	} else if (r < 70) {
		o.kind = OP_TRUNC;
		o.off = rnd(rng, sz + 10000);
		if (rnd(rng, 3) == 0)
			o.off -= o.off % BS;	/* on a block boundary */
	} else if (r < 73) {
		o.kind = OP_OTRUNC;
	} else if (r < 84) {
		o.kind = OP_RENAME;
		do
			o.b = (int)rnd(rng, NPATH);
		while (o.b == o.a);
	} else if (r < 87) {
		o.kind = npresent(s) > 3 ? OP_UNLINK : OP_SYNC;
	} else if (r < 92) {
		o.kind = OP_CREATE;
		o.a = pick(rng, s, false);
		if (o.a < 0)
			o.kind = OP_SYNC;
	}
	if ((o.kind == OP_WRITE || o.kind == OP_AWRITE) &&
	    o.off + o.len > MAXSZ)
		o.off = MAXSZ - o.len;
	if (o.kind == OP_TRUNC && o.off > MAXSZ)
		o.off = MAXSZ;
	return o;
}

/* State after operation k (1-based) of run `seed`: *s is replaced. */
static void apply(struct state *s, const struct op *o, uint64_t seed, long k)
{
	struct blob *old = o->a >= 0 ? s->f[o->a] : NULL, *nb = NULL;
	size_t len;

	switch (o->kind) {
	case OP_CREATE:
		nb = blob_new(0);
		break;
	case OP_WRITE:
	case OP_AWRITE:
	case OP_APPEND: {
		uint64_t off = o->kind == OP_APPEND ? old->len : o->off;

		len = off + o->len > old->len ? off + o->len : old->len;
		nb = blob_new(len);
		memcpy(nb->data, old->data, old->len);	/* zeros past it */
		gen_data(seed, k, nb->data + off, o->len);
		break;
	}
	case OP_TRUNC:
		nb = blob_new(o->off);
		memcpy(nb->data, old->data,
		       old->len < o->off ? old->len : o->off);
		break;
	case OP_OTRUNC:
		nb = blob_new(0);
		break;
	case OP_RENAME:
		blob_unref(s->f[o->b]);
		s->f[o->b] = old;
		s->f[o->a] = NULL;
		return;
	case OP_UNLINK:
		blob_unref(old);
		s->f[o->a] = NULL;
		return;
	case OP_SYNC:
	default:
		return;
	}
	blob_unref(old);
	s->f[o->a] = nb;
}

/* ---- load ---- */

static int jfd = -1;

static void journal(char tag, long k)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%c %ld\n", tag, k);

	/* The journal's file system outlives the daemon: the page cache is
	 * enough, no fsync needed for a kill -9 of the daemon. */
	if (write(jfd, line, (size_t)n) != n)
		die("journal: %s", strerror(errno));
}

static int fsync_path(int dirfd, const char *p, int flags)
{
	int fd = openat(dirfd, p, O_RDONLY | O_CLOEXEC | flags), rc = 0;

	if (fd < 0)
		return -1;
	if (fsync(fd) < 0)
		rc = -1;
	close(fd);
	return rc;
}

static int exec_op(int dirfd, const struct op *o, uint64_t seed, long k,
		   const struct state *s)
{
	const char *pa = o->a >= 0 ? paths[o->a] : NULL;
	uint8_t *buf = NULL;
	int fd = -1, rc = 0;
	ssize_t n;

	switch (o->kind) {
	case OP_CREATE:
		fd = openat(dirfd, pa,
			    O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		rc = fd < 0 ? -1 : 0;
		break;
	case OP_WRITE:
	case OP_AWRITE:
	case OP_APPEND:
		buf = malloc(o->len);
		if (buf == NULL)
			die("out of memory");
		gen_data(seed, k, buf, o->len);
		fd = openat(dirfd, pa,
			    O_WRONLY | O_CLOEXEC |
				    (o->kind == OP_APPEND ? O_APPEND : 0));
		if (fd < 0) {
			rc = -1;
			break;
		}
		n = o->kind == OP_APPEND ? write(fd, buf, o->len) :
					   pwrite(fd, buf, o->len,
						  (off_t)o->off);
		if (n >= 0 && (size_t)n != o->len) {
			errno = EIO;	/* one FUSE request: never short */
			n = -1;
		}
		rc = n < 0 ? -1 : 0;
		break;
	case OP_TRUNC:
		fd = openat(dirfd, pa, O_WRONLY | O_CLOEXEC);
		rc = fd < 0 || ftruncate(fd, (off_t)o->off) < 0 ? -1 : 0;
		break;
	case OP_OTRUNC:
		fd = openat(dirfd, pa, O_WRONLY | O_TRUNC | O_CLOEXEC);
		rc = fd < 0 ? -1 : 0;
		break;
	case OP_RENAME:
		rc = renameat(dirfd, pa, dirfd, paths[o->b]);
		break;
	case OP_UNLINK:
		rc = unlinkat(dirfd, pa, 0);
		break;
	case OP_SYNC:
	default:
		for (int i = 0; i < NPATH && rc == 0; i++)
			if (s->f[i] != NULL)
				rc = fsync_path(dirfd, paths[i], 0);
		if (rc == 0)
			rc = fsync_path(dirfd, "d0", O_DIRECTORY);
		if (rc == 0)
			rc = fsync_path(dirfd, "d1", O_DIRECTORY);
		if (rc == 0)
			rc = fsync_path(dirfd, ".", O_DIRECTORY);
		break;
	}
	if (fd >= 0 && close(fd) < 0 && rc == 0)
		rc = -1;
	free(buf);
	return rc;
}

static int cmd_load(uint64_t seed, long nops, const char *jpath,
		    const char *dir)
{
	struct state s = { { NULL } };
	uint64_t rng = seed;
	int dirfd;

	jfd = open(jpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC,
		   0644);
	if (jfd < 0)
		die("%s: %s", jpath, strerror(errno));
	journal('B', 0);	/* op 0: the directories */
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		fprintf(stderr, "load: %s: %s\n", dir, strerror(errno));
		return errno == ENOTCONN || errno == ECONNABORTED ? 3 : 1;
	}
	if ((mkdirat(dirfd, "d0", 0755) < 0 && errno != EEXIST) ||
	    (mkdirat(dirfd, "d1", 0755) < 0 && errno != EEXIST)) {
		fprintf(stderr, "load: mkdir: %s\n", strerror(errno));
		return errno == ENOTCONN || errno == ECONNABORTED ? 3 : 1;
	}
	journal('E', 0);
	for (long k = 1; k <= nops; k++) {
		struct op o = gen_op(&rng, &s);
		int e;

		journal('B', k);
		if (exec_op(dirfd, &o, seed, k, &s) < 0) {
			e = errno;
			fprintf(stderr, "load: op %ld (%s %s): %s\n", k,
				kind_name[o.kind], o.a >= 0 ? paths[o.a] : "",
				strerror(e));
			state_clear(&s);
			return e == ENOTCONN || e == ECONNABORTED ? 3 : 1;
		}
		journal('E', k);
		apply(&s, &o, seed, k);
	}
	state_clear(&s);
	printf("load: %ld operations done\n", nops);
	return 0;
}

/* ---- check ---- */

struct actual {
	bool present, torn_all;
	size_t len;
	uint8_t *data;
	bool *torn;			/* per block */
	size_t nblk;
};

static int violations;
static bool strict_mode;	/* -S */

static void bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void bad(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "VIOLATION: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	violations++;
}

static void read_actual(int dirfd, int i, struct actual *a)
{
	struct stat st;
	int fd;

	memset(a, 0, sizeof(*a));
	if (fstatat(dirfd, paths[i], &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			a->present = a->torn_all = true;
		return;
	}
	a->present = true;
	fd = openat(dirfd, paths[i], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno != EIO && errno != EBADMSG)
			bad("/%s: open: %s (want success, EIO or EBADMSG)",
			    paths[i], strerror(errno));
		a->torn_all = true;
		return;
	}
	/* Block by block, no readahead: a torn block fails alone. */
	(void)posix_fadvise(fd, 0, 0, POSIX_FADV_RANDOM);
	a->len = (size_t)st.st_size;
	a->nblk = (a->len + BS - 1) / BS;
	a->data = calloc(1, a->len + 1);
	a->torn = calloc(a->nblk + 1, sizeof(bool));
	if (a->data == NULL || a->torn == NULL)
		die("out of memory");
	for (size_t b = 0; b < a->nblk; b++) {
		size_t want = a->len - b * BS < BS ? a->len - b * BS : BS;
		ssize_t n = pread(fd, a->data + b * BS, want, (off_t)(b * BS));

		if (n < 0 && (errno == EIO || errno == EBADMSG)) {
			a->torn[b] = true;
		} else if (n < 0 || (size_t)n != want) {
			bad("/%s: read of block %zu: %s", paths[i], b,
			    n < 0 ? strerror(errno) : "short read");
			a->torn[b] = true;
		}
	}
	close(fd);
}

/* Does the read-back path i agree with the window of states w[0..nw)? */
static void check_path(int i, const struct actual *a, struct state *w,
		       int nw, long first, bool written, bool *torn_out)
{
	bool touched = false, size_ok = false;
	size_t lo_sz = SIZE_MAX, hi_sz = 0;

	for (int j = 1; j < nw; j++)
		touched |= w[j].f[i] != w[0].f[i];
	if (!a->present)
		return;	/* presence is checked with the names */
	*torn_out = a->torn_all;
	for (size_t b = 0; b < a->nblk; b++)
		*torn_out |= a->torn[b];
	if (*torn_out && !touched)
		bad("/%s: EIO, but no operation since op %ld changed it: "
		    "%s data lost",
		    paths[i], first, strict_mode ? "acknowledged" : "fsynced");
	if (a->torn_all)
		return;
	for (int j = 0; j < nw; j++) {
		if (w[j].f[i] == NULL)
			continue;
		size_ok |= w[j].f[i]->len == a->len;
		lo_sz = w[j].f[i]->len < lo_sz ? w[j].f[i]->len : lo_sz;
		hi_sz = w[j].f[i]->len > hi_sz ? w[j].f[i]->len : hi_sz;
	}
	/* The kernel may split one write(2) into several FUSE requests, so a
	 * write in the window may have landed in part: any size between,
	 * with every block still one of the versions (checked below). */
	if (written && a->len >= lo_sz && a->len <= hi_sz)
		size_ok = true;
	if (!size_ok) {
		char sizes[512] = "";
		size_t n = 0;

		for (int j = 0; j < nw && n < sizeof(sizes) - 24; j++)
			n += (size_t)snprintf(sizes + n, sizeof(sizes) - n,
					      " %zd",
					      w[j].f[i] ? (ssize_t)w[j].f[i]->len :
							  (ssize_t)-1);
		bad("/%s: size %zu, want one of (ops %ld..):%s", paths[i],
		    a->len, first, sizes);
		return;
	}
	for (size_t b = 0; b < a->nblk; b++) {
		size_t lo = b * BS, hi = lo + BS < a->len ? lo + BS : a->len;
		bool ok = a->torn[b];

		for (int j = 0; j < nw && !ok; j++) {
			const struct blob *v = w[j].f[i];

			ok = v != NULL && v->len >= hi &&
			     memcmp(v->data + lo, a->data + lo, hi - lo) == 0;
		}
		if (!ok)
			bad("/%s: block %zu (bytes %zu..%zu) matches no version "
			    "written since op %ld: WRONG DATA",
			    paths[i], b, lo, hi, first);
	}
}

/* Names present must be those of one state of the window. */
static void check_names(const struct actual *a, struct state *w, int nw,
			long first)
{
	char got[NPATH + 1];

	for (int j = 0; j < nw; j++) {
		bool same = true;

		for (int i = 0; i < NPATH; i++)
			same &= a[i].present == (w[j].f[i] != NULL);
		if (same)
			return;
	}
	for (int i = 0; i < NPATH; i++)
		got[i] = a[i].present ? '1' : '0';
	got[NPATH] = '\0';
	bad("names present %s (d0/a d0/b d0/c d1/a d1/b d1/L...) match no "
	    "state since op %ld",
	    got, first);
}

/* Nothing but our directories and names on the mount. */
static void check_listing(const char *dir)
{
	static const char *const subdirs[] = { "", "d0/", "d1/" };
	char path[4200], name[600];

	for (int i = 0; i < 3; i++) {
		struct dirent *e;
		DIR *dp;

		snprintf(path, sizeof(path), "%s/%s", dir, subdirs[i]);
		dp = opendir(path);
		if (dp == NULL) {
			if (errno != ENOENT)	/* killed before its mkdir */
				bad("%s: %s", path, strerror(errno));
			continue;
		}
		while ((e = readdir(dp)) != NULL) {
			bool known = strcmp(e->d_name, ".") == 0 ||
				     strcmp(e->d_name, "..") == 0;

			snprintf(name, sizeof(name), "%s%s", subdirs[i],
				 e->d_name);
			if (i == 0)
				known |= strcmp(name, "d0") == 0 ||
					 strcmp(name, "d1") == 0;
			for (int j = 0; j < NPATH; j++)
				known |= strcmp(name, paths[j]) == 0;
			if (!known)
				bad("unexpected entry on the mount: %s", name);
		}
		closedir(dp);
	}
}

static int cmd_check(uint64_t seed, const char *jpath, bool strict,
		     const char *dir)
{
	static struct state win[MAXOPS + 2];
	static struct op ops[MAXOPS + 2];
	struct actual a[NPATH];
	struct state s = { { NULL } };
	long c = 0, begun = 0, k, d = 0, first;
	bool dirs_done = false;
	uint64_t rng = seed;
	struct op o = { .kind = OP_SYNC, .a = -1, .b = -1 };
	int nw = 0, dirfd, ntorn = 0;
	char tag;
	FILE *jf;

	jf = fopen(jpath, "r");
	if (jf == NULL)
		die("%s: %s", jpath, strerror(errno));
	while (fscanf(jf, " %c %ld", &tag, &k) == 2) {
		if (tag == 'B' && k > begun)
			begun = k;
		if (tag == 'E' && k > c)
			c = k;
		dirs_done |= tag == 'E' && k == 0;
	}
	fclose(jf);
	if (begun > c + 1 || c > MAXOPS)
		die("journal %s: begun %ld, completed %ld", jpath, begun, c);
	/* Replay: win[] holds the states after ops d..begun, d being the
	 * last completed sync point (0: the empty state before op 1). */
	state_copy(&win[nw++], &s);
	for (k = 1; k <= begun; k++) {
		o = gen_op(&rng, &s);
		ops[k] = o;
		apply(&s, &o, seed, k);
		if (o.kind == OP_SYNC && k <= c) {
			for (int j = 0; j < nw; j++)
				state_clear(&win[j]);
			nw = 0;
			d = k;
		}
		state_copy(&win[nw++], &s);
	}
	strict_mode = strict;
	first = strict ? c : d;
	if (strict) {
		/* only the states after op c and after the one in flight */
		int keep = begun > c ? 2 : 1;

		for (int j = 0; j < nw - keep; j++)
			state_clear(&win[j]);
		memmove(win, win + nw - keep, (size_t)keep * sizeof(win[0]));
		nw = keep;
	}
	if (!dirs_done)
		printf("INFLIGHT 0 mkdir\n");
	if (begun > c) {
		printf("INFLIGHT %ld %s\n", begun, kind_name[o.kind]);
		if (o.a >= 0 && o.kind != OP_SYNC)
			printf("TOUCHED /%s\n", paths[o.a]);
		if (o.kind == OP_RENAME)
			printf("TOUCHED /%s\n", paths[o.b]);
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		die("%s: %s", dir, strerror(errno));
	for (int i = 0; i < NPATH; i++)
		read_actual(dirfd, i, &a[i]);
	close(dirfd);
	check_names(a, win, nw, first);
	for (int i = 0; i < NPATH; i++) {
		bool torn = false, written = false;

		for (k = first + 1; k <= begun; k++)
			written |= ops[k].a == i &&
				   (ops[k].kind == OP_WRITE ||
				    ops[k].kind == OP_AWRITE ||
				    ops[k].kind == OP_APPEND);
		check_path(i, &a[i], win, nw, first, written, &torn);
		if (torn) {
			printf("TORN /%s\n", paths[i]);
			ntorn++;
		}
		free(a[i].data);
		free(a[i].torn);
	}
	check_listing(dir);
	for (int j = 0; j < nw; j++)
		state_clear(&win[j]);
	state_clear(&s);
	printf("check: %ld ops completed, %s, last sync op %ld, %d states "
	       "in the window, %d torn, %d violations\n",
	       c, begun > c ? "one in flight" : "none in flight", d, nw, ntorn,
	       violations);
	return violations ? 1 : 0;
}

/* ---- trace ---- */

static volatile sig_atomic_t got_term;

static void on_term(int sig)
{
	(void)sig;
	got_term = 1;
}

/* The syscalls that change files: every crash point of `trace`. */
#define NR(x) { SYS_##x, #x }
static const struct {
	int nr;
	const char *name;
} traced[] = {
	NR(pwrite64), NR(pwritev), NR(ftruncate), NR(fallocate), NR(renameat),
	NR(linkat), NR(unlinkat), NR(mkdirat), NR(fsync), NR(fdatasync),
	NR(fchown), NR(fchownat), NR(symlinkat), NR(setxattr), NR(lsetxattr),
	NR(fsetxattr), NR(removexattr), NR(lremovexattr), NR(fremovexattr),
#ifdef SYS_pwritev2
	NR(pwritev2),
#endif
#ifdef SYS_renameat2
	NR(renameat2),
#endif
#ifdef SYS_rename
	NR(rename), NR(unlink), NR(link), NR(mkdir), NR(truncate),
	NR(symlink),
#endif
};
#undef NR

static int install_filter(void)
{
	enum { N = sizeof(traced) / sizeof(traced[0]) };
	struct sock_filter f[4 + 2 * N + 1];
	struct sock_fprog prog_ = { .len = 4 + 2 * N + 1, .filter = f };
	unsigned n = 0;

#if defined(__x86_64__)
#define ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define ARCH AUDIT_ARCH_AARCH64
#else
#error "add the audit arch of this machine"
#endif
	f[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, ARCH,
					      1, 0);
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	f[n++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
	for (unsigned i = 0; i < N; i++) {
		/* a match stops the tracee, with i as the event's data */
		f[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
						      (unsigned)traced[i].nr,
						      0, 1);
		f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
						      SECCOMP_RET_TRACE | i);
	}
	f[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -1;
	return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog_);
}

static int cmd_trace(long kill_at, const char *countfile, const char *logfile,
		     char **argv)
{
	FILE *log = NULL;
	struct sigaction sa = { .sa_handler = on_term };
	long count = 0, killed_at = 0;
	pid_t child, w;
	int st, status = 1;
	bool killed = false;
	FILE *f;

	if (logfile != NULL) {
		log = fopen(logfile, "w");
		if (log == NULL)
			die("%s: %s", logfile, strerror(errno));
		setvbuf(log, NULL, _IOLBF, 0);	/* read while we run */
	}
	child = fork();
	if (child < 0)
		die("fork: %s", strerror(errno));
	if (child == 0) {
		if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0)
			_exit(126);
		raise(SIGSTOP);
		if (install_filter() < 0) {
			perror("crashload trace: seccomp");
			_exit(126);
		}
		execvp(argv[0], argv);
		perror(argv[0]);
		_exit(127);
	}
	if (waitpid(child, &st, 0) < 0 || !WIFSTOPPED(st))
		die("trace: child did not stop");
	if (ptrace(PTRACE_SETOPTIONS, child, NULL,
		   (void *)(long)(PTRACE_O_TRACESECCOMP | PTRACE_O_TRACECLONE |
				  PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK |
				  PTRACE_O_TRACEEXEC | PTRACE_O_EXITKILL)) < 0)
		die("trace: PTRACE_SETOPTIONS: %s", strerror(errno));
	sigaction(SIGTERM, &sa, NULL);	/* no SA_RESTART: waitpid returns */
	ptrace(PTRACE_CONT, child, NULL, NULL);
	for (;;) {
		int sig = 0;

		if (got_term && !killed) {
			kill(child, SIGKILL);
			killed = true;
		}
		w = waitpid(-1, &st, __WALL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			break;		/* ECHILD: all gone */
		if (WIFEXITED(st) || WIFSIGNALED(st)) {
			if (w == child)
				status = WIFEXITED(st) ? WEXITSTATUS(st) :
							 128 + WTERMSIG(st);
			continue;
		}
		if (!WIFSTOPPED(st))
			continue;
		if (st >> 8 == (SIGTRAP | (PTRACE_EVENT_SECCOMP << 8))) {
			unsigned long ev = 0;

			count++;
			ptrace(PTRACE_GETEVENTMSG, w, NULL, &ev);
			if (log != NULL)
				fprintf(log, "%ld %s\n", count,
					ev < sizeof(traced) / sizeof(traced[0]) ?
						traced[ev].name :
						"?");
			if (!killed && count == kill_at) {
				/* Stopped at the syscall's entry: it never
				 * runs; SIGKILL takes the whole group. */
				kill(child, SIGKILL);
				killed = true;
				killed_at = count;
			}
		} else if (st >> 16 == 0) {
			sig = WSTOPSIG(st);
			/* the SIGSTOP of a new thread, and group stops */
			if (sig == SIGSTOP || sig == SIGTRAP)
				sig = 0;
		}
		ptrace(PTRACE_CONT, w, NULL, (void *)(long)sig);
	}
	f = fopen(countfile, "w");
	if (f == NULL)
		die("%s: %s", countfile, strerror(errno));
	fprintf(f, "%ld %ld\n", count, killed_at);
	fclose(f);
	if (log != NULL)
		fclose(log);
	return status;
}

int main(int argc, char **argv)
{
	const char *journal_path = NULL, *countfile = NULL, *logfile = NULL;
	uint64_t seed = 1;
	long nops = 200, kill_at = 0;
	bool strict = false;
	int c;

	if (argc < 2)
		die("usage: crashload load|check|trace ...");
	init_paths();
	optind = 2;
	while ((c = getopt(argc, argv, "+s:n:j:Sk:o:l:")) != -1) {
		switch (c) {
		case 's':
			seed = strtoull(optarg, NULL, 0);
			break;
		case 'n':
			nops = strtol(optarg, NULL, 0);
			break;
		case 'j':
			journal_path = optarg;
			break;
		case 'S':
			strict = true;
			break;
		case 'k':
			kill_at = strtol(optarg, NULL, 0);
			break;
		case 'o':
			countfile = optarg;
			break;
		case 'l':
			logfile = optarg;
			break;
		default:
			die("unknown option");
		}
	}
	if (strcmp(argv[1], "trace") == 0) {
		if (countfile == NULL || optind >= argc)
			die("usage: crashload trace -k N -o FILE -- CMD...");
		return cmd_trace(kill_at, countfile, logfile, argv + optind);
	}
	if (journal_path == NULL || optind != argc - 1)
		die("usage: crashload load|check -s SEED -j JOURNAL DIR");
	if (nops < 1 || nops > MAXOPS)
		die("-n: 1..%d", MAXOPS);
	if (strcmp(argv[1], "load") == 0)
		return cmd_load(seed, nops, journal_path, argv[optind]);
	if (strcmp(argv[1], "check") == 0)
		return cmd_check(seed, journal_path, strict, argv[optind]);
	die("unknown command %s", argv[1]);
	return 2;
}
