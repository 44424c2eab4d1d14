/*
 * dirents.c - directory listings of a mounted file system, entry by entry.
 *
 * Usage: dirents [-c] ROOT   (ROOT: the root of a fresh, empty mount;
 *                            -c: the tree is there, check only)
 *
 * Makes ROOT/e (empty), ROOT/n (files with names of 1 to 255 bytes, a
 * subdirectory, a symlink) and ROOT/n/sub, then lists ROOT, e, n and
 * n/sub with getdents64 through buffers of several sizes (the smallest
 * holds one 255-byte entry, so a listing takes many calls) and checks:
 * "." and ".." each come exactly once, as DT_DIR, with the inode numbers
 * stat() gives for the directory and its parent (for ROOT, ROOT itself:
 * a filesystem's root is its own parent); every other entry comes exactly
 * once with the inode number and type lstat() gives, and nothing else
 * comes. Then that an lseek to each entry's d_off resumes right after that
 * entry, and that telldir/seekdir positions lead back to the same entry.
 *
 * Prints "ok ..." or "FAIL ..." lines; exit 0 all passed, 1 failures,
 * 99 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define NFILES 300
#define MAXENT (NFILES + 16)

struct ent {
	char name[NAME_MAX + 1];
	uint64_t ino;
	int64_t off;
	unsigned char type;
	int seen;
};

struct want {
	const char *dir;	/* path */
	char name[MAXENT][NAME_MAX + 1];
	size_t n;		/* entries other than . and .. */
	uint64_t self, parent;
};

static int failures;
static int make = 1;

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	failures++;
}

struct linux_dirent64 {
	uint64_t d_ino;
	int64_t d_off;
	unsigned short d_reclen;
	unsigned char d_type;
	char d_name[];
};

/* Read the rest of fd's listing through a buffer of `bufsz` bytes into
 * v[0..*n). Returns the number of getdents64 calls, or -1. */
static int read_all(int fd, size_t bufsz, struct ent *v, size_t cap,
		    size_t *n)
{
	char *buf = malloc(bufsz);
	int calls = 0;

	*n = 0;
	if (buf == NULL)
		return -1;
	for (;;) {
		long got = syscall(SYS_getdents64, fd, buf, bufsz);

		if (got < 0) {
			free(buf);
			return -1;
		}
		if (got == 0)
			break;
		calls++;
		for (long p = 0; p < got;) {
			struct linux_dirent64 *d = (void *)(buf + p);

			if (*n < cap) {
				snprintf(v[*n].name, sizeof(v[*n].name), "%s",
					 d->d_name);
				v[*n].ino = d->d_ino;
				v[*n].off = d->d_off;
				v[*n].type = d->d_type;
				v[*n].seen = 0;
			}
			(*n)++;
			p += d->d_reclen;
		}
	}
	free(buf);
	return calls;
}

static unsigned char dtype(mode_t m)
{
	return (unsigned char)IFTODT(m);
}

/* One listing of w->dir against what is there. */
static void check_listing(const struct want *w, size_t bufsz)
{
	static struct ent got[MAXENT + 8];
	size_t n, dots = 0, dotdots = 0, found = 0;
	struct stat st;
	int fd, calls;

	fd = open(w->dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		fail("open %s: %s", w->dir, strerror(errno));
		return;
	}
	calls = read_all(fd, bufsz, got, MAXENT + 8, &n);
	if (calls < 0) {
		fail("getdents64 %s (buffer %zu): %s", w->dir, bufsz,
		     strerror(errno));
		close(fd);
		return;
	}
	if (n != w->n + 2)
		fail("%s (buffer %zu): %zu entries, want %zu with . and ..",
		     w->dir, bufsz, n, w->n + 2);
	if (n > MAXENT + 8)
		n = MAXENT + 8;
	for (size_t i = 0; i < n; i++) {
		const struct ent *e = &got[i];

		if (strcmp(e->name, ".") == 0 || strcmp(e->name, "..") == 0) {
			int dot = e->name[1] == '\0';
			uint64_t ino = dot ? w->self : w->parent;

			dot ? dots++ : dotdots++;
			if (e->type != DT_DIR)
				fail("%s (buffer %zu): '%s' has d_type %u, "
				     "want DT_DIR", w->dir, bufsz, e->name,
				     e->type);
			if (e->ino != ino)
				fail("%s (buffer %zu): '%s' has d_ino %llu, "
				     "stat says %llu", w->dir, bufsz, e->name,
				     (unsigned long long)e->ino,
				     (unsigned long long)ino);
			continue;
		}
		if (fstatat(fd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			fail("%s (buffer %zu): listed '%s' does not stat: %s",
			     w->dir, bufsz, e->name, strerror(errno));
			continue;
		}
		if (e->ino != st.st_ino || e->type != dtype(st.st_mode))
			fail("%s (buffer %zu): '%s' listed as ino %llu type "
			     "%u, lstat says %llu type %u", w->dir, bufsz,
			     e->name, (unsigned long long)e->ino, e->type,
			     (unsigned long long)st.st_ino,
			     dtype(st.st_mode));
		for (size_t j = 0; j < i; j++)
			if (strcmp(got[j].name, e->name) == 0)
				fail("%s (buffer %zu): '%s' listed twice",
				     w->dir, bufsz, e->name);
		for (size_t j = 0; j < w->n; j++)
			if (strcmp(w->name[j], e->name) == 0)
				found++;
	}
	if (dots != 1 || dotdots != 1)
		fail("%s (buffer %zu): '.' listed %zu times, '..' %zu times, "
		     "want once each", w->dir, bufsz, dots, dotdots);
	if (found != w->n)
		fail("%s (buffer %zu): %zu of the %zu names made were listed",
		     w->dir, bufsz, found, w->n);
	close(fd);
	if (failures == 0)
		printf("ok %s: %zu entries in %d getdents64 calls of %zu "
		       "bytes\n", w->dir, n, calls, bufsz);
}

/* lseek to each entry's d_off resumes after it; to 0 starts again. */
static void check_offsets(const struct want *w)
{
	static struct ent all[MAXENT + 8], rest[MAXENT + 8];
	size_t n, m;
	int fd;

	fd = open(w->dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0 || read_all(fd, 65536, all, MAXENT + 8, &n) < 0) {
		fail("list %s: %s", w->dir, strerror(errno));
		goto out;
	}
	if (n > MAXENT + 8)
		n = MAXENT + 8;
	for (size_t i = 0; i < n; i++) {
		if (lseek(fd, all[i].off, SEEK_SET) != all[i].off ||
		    read_all(fd, 280, rest, MAXENT + 8, &m) < 0) {
			fail("%s: seek to d_off of '%s': %s", w->dir,
			     all[i].name, strerror(errno));
			goto out;
		}
		if (m != n - i - 1 ||
		    (m > 0 && strcmp(rest[0].name, all[i + 1].name) != 0)) {
			fail("%s: after a seek to d_off %lld of '%s' (#%zu "
			     "of %zu): %zu entries, first '%s', want %zu, "
			     "first '%s'", w->dir, (long long)all[i].off,
			     all[i].name, i, n, m, m ? rest[0].name : "",
			     n - i - 1, i + 1 < n ? all[i + 1].name : "");
			goto out;
		}
	}
	if (lseek(fd, 0, SEEK_SET) != 0 ||
	    read_all(fd, 280, rest, MAXENT + 8, &m) < 0 || m != n) {
		fail("%s: after a seek to 0: %zu entries, want %zu", w->dir,
		     m, n);
		goto out;
	}
	printf("ok %s: a seek to each of %zu d_off resumes after it\n",
	       w->dir, n);
out:
	if (fd >= 0)
		close(fd);
}

/* telldir before each readdir, then seekdir back to each, last first. */
static void check_telldir(const struct want *w)
{
	static long pos[MAXENT + 8];
	static char names[MAXENT + 8][NAME_MAX + 1];
	struct dirent *de;
	size_t n = 0;
	DIR *d = opendir(w->dir);

	if (d == NULL) {
		fail("opendir %s: %s", w->dir, strerror(errno));
		return;
	}
	for (;;) {
		long p = telldir(d);

		errno = 0;
		de = readdir(d);
		if (de == NULL)
			break;
		if (n < MAXENT + 8) {
			pos[n] = p;
			snprintf(names[n], sizeof(names[n]), "%s", de->d_name);
			n++;
		}
	}
	for (size_t k = n; k-- > 0;) {
		seekdir(d, pos[k]);
		de = readdir(d);
		if (de == NULL || strcmp(de->d_name, names[k]) != 0) {
			fail("%s: seekdir to telldir of #%zu '%s' read '%s'",
			     w->dir, k, names[k], de ? de->d_name : "(end)");
			break;
		}
	}
	closedir(d);
	if (failures == 0)
		printf("ok %s: seekdir to each of %zu telldir positions\n",
		       w->dir, n);
}

static int mk(const char *dir, const char *name, int kind)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY), fd = -1, rc;

	if (dfd < 0)
		return -1;
	switch (kind) {
	case 'd':
		rc = mkdirat(dfd, name, 0755);
		break;
	case 'l':
		rc = symlinkat("target", dfd, name);
		break;
	default:
		fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL, 0644);
		rc = fd < 0 ? -1 : 0;
		if (fd >= 0)
			close(fd);
	}
	close(dfd);
	return rc;
}

static int add(struct want *w, const char *name, int kind)
{
	if (make && mk(w->dir, name, kind) < 0) {
		fail("make %s/%s: %s", w->dir, name, strerror(errno));
		return -1;
	}
	snprintf(w->name[w->n++], NAME_MAX + 1, "%s", name);
	return 0;
}

static int stat_ino(const char *path, uint64_t *ino)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		fail("stat %s: %s", path, strerror(errno));
		return -1;
	}
	*ino = st.st_ino;
	return 0;
}

int main(int argc, char **argv)
{
	static struct want w[4];
	static const size_t bufs[] = { 65536, 1024, 280 };
	char p[4][PATH_MAX + 8], name[NAME_MAX + 1];

	if (argc == 3 && strcmp(argv[1], "-c") == 0) {
		make = 0;
		argv++;
		argc--;
	}
	if (argc != 2) {
		fprintf(stderr, "usage: dirents [-c] ROOT\n");
		return 99;
	}
	snprintf(p[0], sizeof(p[0]), "%s", argv[1]);
	snprintf(p[1], sizeof(p[1]), "%s/e", argv[1]);
	snprintf(p[2], sizeof(p[2]), "%s/n", argv[1]);
	snprintf(p[3], sizeof(p[3]), "%s/n/sub", argv[1]);
	for (int i = 0; i < 4; i++)
		w[i].dir = p[i];
	if (add(&w[0], "e", 'd') < 0 || add(&w[0], "n", 'd') < 0 ||
	    add(&w[2], "sub", 'd') < 0 || add(&w[2], "lnk", 'l') < 0 ||
	    add(&w[3], "x", 'f') < 0)
		return 1;
	/* names of every length from 4 to 255 bytes, and some short ones */
	for (int i = 0; i < NFILES; i++) {
		size_t len = 4 + (size_t)(i * 37) % 252;

		memset(name, 'a' + i % 26, sizeof(name));
		snprintf(name, sizeof(name), "%03d", i);
		name[3] = '-';
		name[len] = '\0';
		if (add(&w[2], name, 'f') < 0)
			return 1;
	}
	/* the root is its own parent; the others' parents stat through the
	 * mount */
	if (stat_ino(p[0], &w[0].self) < 0 || stat_ino(p[0], &w[0].parent) < 0 ||
	    stat_ino(p[1], &w[1].self) < 0 || stat_ino(p[0], &w[1].parent) < 0 ||
	    stat_ino(p[2], &w[2].self) < 0 || stat_ino(p[0], &w[2].parent) < 0 ||
	    stat_ino(p[3], &w[3].self) < 0 || stat_ino(p[2], &w[3].parent) < 0)
		return 1;
	for (int i = 1; i < 4; i++) {
		int dfd = open(p[i], O_RDONLY | O_DIRECTORY);
		struct stat st;

		if (dfd < 0 || fstatat(dfd, "..", &st, 0) < 0)
			fail("stat %s/..: %s", p[i], strerror(errno));
		else if (st.st_ino != w[i].parent)
			fail("stat %s/.. gives ino %llu, its parent %llu",
			     p[i], (unsigned long long)st.st_ino,
			     (unsigned long long)w[i].parent);
		if (dfd >= 0)
			close(dfd);
	}
	for (int i = 0; i < 4; i++) {
		for (size_t b = 0; b < sizeof(bufs) / sizeof(bufs[0]); b++)
			check_listing(&w[i], bufs[b]);
		check_offsets(&w[i]);
		check_telldir(&w[i]);
	}
	printf("dirents: %d failures\n", failures);
	return failures ? 1 : 0;
}
