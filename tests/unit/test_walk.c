/* tests/unit/test_walk.c — walk_classify(), walk_entries() and walk_tree()
 * (include/cmkfs/walk.h) on directories made in a temporary directory:
 * every class, nested trees, empty directories, early stops, callback and
 * directory errors, depth and path limits, and no fd left open. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/names.h"
#include "cmkfs/walk.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define LN "cmkfs.ln.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static int nfds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (d == NULL)
		return -1;
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

static void touch(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0600);

	CHECK(fd >= 0, "create %s: %s", name, strerror(errno));
	if (fd >= 0)
		close(fd);
}

static int subdir(int dfd, const char *name)
{
	int fd;

	CHECK(mkdirat(dfd, name, 0700) == 0, "mkdir %s: %s", name,
	      strerror(errno));
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", name);
	return fd;
}

static void classify(void)
{
	CHECK(walk_classify("AbC-_09") == WALK_NAME, "short name");
	CHECK(walk_classify(LN) == WALK_LONGNAME, "long name");
	CHECK(walk_classify(LN ".name") == WALK_SIDE, "side file");
	CHECK(walk_classify(DIRID_FILE) == WALK_DIRID, "dirid");
	CHECK(walk_classify("cmkfs.tmp.0123456789abcdef") == WALK_TMP, "tmp");
	CHECK(walk_classify(VOLUME_FILE) == WALK_RESERVED, "conf");
	CHECK(walk_classify(QUARANTINE_DIR) == WALK_RESERVED, "quarantine");
	/* a long-name prefix of the wrong length is no entry */
	CHECK(walk_classify("cmkfs.ln.short") == WALK_RESERVED, "bad ln");
	CHECK(walk_classify("cmkfs.ln.short.name") == WALK_SIDE, "bad side");
	CHECK(walk_classify("cmkfs.") == WALK_RESERVED, "bare prefix");
}

struct seen {
	unsigned cls_mask;
	int calls, files, dirs;
	int stop_after;		/* > 0: return 7 at this call */
	int fail_after;		/* > 0: return -EIO at this call */
	char names[32][300];
};

static int count(const struct walk_entry *e, void *arg)
{
	struct seen *s = arg;

	if (s->calls < 32)
		snprintf(s->names[s->calls], sizeof(s->names[0]), "%s",
			 e->path ? e->path : e->name);
	s->calls++;
	s->cls_mask |= e->cls;
	s->files += e->type == DT_REG;
	s->dirs += e->type == DT_DIR;
	CHECK(strcmp(e->name, ".") != 0 && strcmp(e->name, "..") != 0,
	      "dot entry passed on");
	CHECK(e->cls == walk_classify(e->name), "class of %s", e->name);
	if (s->stop_after > 0 && s->calls == s->stop_after)
		return 7;
	if (s->fail_after > 0 && s->calls == s->fail_after)
		return -EIO;
	return 0;
}

static bool seen(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->calls && i < 32; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

/* root: AAAA, LN, LN.name, cmkfs.dirid, cmkfs.tmp.*, cmkfs.conf, empty/,
 * d1/ { BBBB, d2/ { CCCC, cmkfs.dirid }, link -> d2 } */
static int make_tree(int top)
{
	int root = subdir(top, "root"), d1, d2, e;

	touch(root, "AAAA");
	touch(root, LN);
	touch(root, LN ".name");
	touch(root, DIRID_FILE);
	touch(root, "cmkfs.tmp.0123456789abcdef");
	touch(root, VOLUME_FILE);
	e = subdir(root, "empty");
	d1 = subdir(root, "d1");
	touch(d1, "BBBB");
	d2 = subdir(d1, "d2");
	touch(d2, "CCCC");
	touch(d2, DIRID_FILE);
	CHECK(symlinkat("d2", d1, "link") == 0, "symlink");
	close(e);
	close(d1);
	close(d2);
	return root;
}

static void entries(int top)
{
	int root = make_tree(top), e, opath;
	struct seen s = { 0 };

	CHECK_RC(walk_entries(root, WALK_ALL, WALK_F_TYPE, count, &s), 0);
	CHECK(s.calls == 8, "all entries: %d", s.calls);
	CHECK(s.cls_mask == WALK_ALL, "every class seen: %#x", s.cls_mask);
	CHECK(s.dirs == 2 && s.files == 6, "types: %d dirs %d files", s.dirs,
	      s.files);

	memset(&s, 0, sizeof(s));
	CHECK_RC(walk_entries(root, WALK_ENTRIES, 0, count, &s), 0);
	CHECK(s.calls == 4, "plaintext entries: %d", s.calls);
	CHECK(seen(&s, "AAAA") && seen(&s, LN) && seen(&s, "d1") &&
		      seen(&s, "empty"),
	      "entries listed");
	CHECK(s.cls_mask == WALK_ENTRIES, "only entries: %#x", s.cls_mask);

	memset(&s, 0, sizeof(s));
	CHECK_RC(walk_entries(root, WALK_SIDE | WALK_TMP, 0, count, &s), 0);
	CHECK(s.calls == 2 && seen(&s, LN ".name") &&
		      seen(&s, "cmkfs.tmp.0123456789abcdef"),
	      "side and tmp only: %d", s.calls);

	/* an empty directory: no call at all */
	memset(&s, 0, sizeof(s));
	e = openat(root, "empty", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_RC(walk_entries(e, WALK_ALL, 0, count, &s), 0);
	CHECK(s.calls == 0, "empty dir: %d calls", s.calls);
	close(e);

	/* stops: a positive value ends the walk and is returned */
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	CHECK_RC(walk_entries(root, WALK_ALL, 0, count, &s), 7);
	CHECK(s.calls == 2, "stopped after 2: %d", s.calls);
	memset(&s, 0, sizeof(s));
	s.fail_after = 3;
	CHECK_RC(walk_entries(root, WALK_ALL, 0, count, &s), -EIO);
	CHECK(s.calls == 3, "failed after 3: %d", s.calls);

	/* an O_PATH fd is read through a stream of its own */
	opath = openat(top, "root", O_PATH | O_DIRECTORY | O_CLOEXEC);
	memset(&s, 0, sizeof(s));
	CHECK_RC(walk_entries(opath, WALK_ALL, 0, count, &s), 0);
	CHECK(s.calls == 8, "O_PATH fd: %d", s.calls);
	close(opath);

	/* errors of the directory itself */
	memset(&s, 0, sizeof(s));
	e = openat(root, "AAAA", O_RDONLY | O_CLOEXEC);
	CHECK_RC(walk_entries(e, WALK_ALL, 0, count, &s), -ENOTDIR);
	close(e);
	CHECK_RC(walk_entries(-1, WALK_ALL, 0, count, &s), -EBADF);
	CHECK(s.calls == 0, "no call on error");
	close(root);
}

struct tree_seen {
	struct seen s;
	int enters, leaves, depth_max;
	bool skip_d2;		/* enter returns WALK_SKIP for d2 */
	bool filter_b;		/* filter passes BBBB by */
	char left[8][300];
};

static int t_file(const struct walk_entry *e, void *arg)
{
	struct tree_seen *t = arg;

	if (e->depth > t->depth_max)
		t->depth_max = e->depth;
	return count(e, &t->s);
}

static int t_enter(const struct walk_entry *e, void *arg)
{
	struct tree_seen *t = arg;

	CHECK(e->type == DT_DIR, "enter a directory");
	t->enters++;
	return t->skip_d2 && strcmp(e->name, "d2") == 0 ? WALK_SKIP : 0;
}

static void t_leave(const struct walk_entry *e, void *arg)
{
	struct tree_seen *t = arg;

	if (t->leaves < 8 && e->path != NULL)
		snprintf(t->left[t->leaves], sizeof(t->left[0]), "%s", e->path);
	t->leaves++;
}

static int t_filter(const struct walk_entry *e, void *arg)
{
	struct tree_seen *t = arg;

	CHECK(e->path == NULL, "no path in the filter");
	return t->filter_b && strcmp(e->name, "BBBB") == 0 ? WALK_SKIP : 0;
}

static void tree(int top)
{
	int root = openat(top, "root", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct tree_seen t = { 0 };
	struct walk_tree_cb cb = {
		.want = WALK_ENTRIES,
		.flags = WALK_F_PATH,
		.file = t_file,
		.enter = t_enter,
		.leave = t_leave,
		.filter = t_filter,
		.arg = &t,
	};

	/* AAAA, LN, d1/BBBB, d1/d2/CCCC, d1/link (not followed) */
	CHECK_RC(walk_tree(root, &cb), 0);
	CHECK(t.s.calls == 5, "tree files: %d", t.s.calls);
	CHECK(seen(&t.s, "AAAA") && seen(&t.s, LN) && seen(&t.s, "d1/BBBB") &&
		      seen(&t.s, "d1/d2/CCCC") && seen(&t.s, "d1/link"),
	      "paths");
	CHECK(t.enters == 3 && t.leaves == 3, "enter %d leave %d", t.enters,
	      t.leaves);
	CHECK(t.depth_max == 2, "depth %d", t.depth_max);
	/* leave sees the directory's own path, deepest first */
	CHECK(strcmp(t.left[0], "d1/d2") == 0 || strcmp(t.left[0], "empty") == 0,
	      "left %s", t.left[0]);

	/* enter's WALK_SKIP and filter's WALK_SKIP pass things by */
	memset(&t, 0, sizeof(t));
	t.skip_d2 = true;
	t.filter_b = true;
	CHECK_RC(walk_tree(root, &cb), 0);
	CHECK(t.s.calls == 3 && !seen(&t.s, "d1/d2/CCCC") &&
		      !seen(&t.s, "d1/BBBB"),
	      "skipped: %d", t.s.calls);
	CHECK(t.enters == 3 && t.leaves == 2, "enter %d leave %d", t.enters,
	      t.leaves);

	/* a stop deep down ends the whole walk */
	memset(&t, 0, sizeof(t));
	t.s.stop_after = 1;
	cb.want = WALK_ENTRIES;
	CHECK_RC(walk_tree(root, &cb), 7);
	CHECK(t.s.calls == 1, "stopped: %d", t.s.calls);

	/* depth limit: d1/d2 is at depth 2 */
	memset(&t, 0, sizeof(t));
	cb.max_depth = 1;
	CHECK_RC(walk_tree(root, &cb), -ELOOP);
	memset(&t, 0, sizeof(t));
	cb.flags |= WALK_F_SKIP_ERRORS;
	CHECK_RC(walk_tree(root, &cb), 0);
	CHECK(!seen(&t.s, "d1/d2/CCCC") && seen(&t.s, "d1/BBBB"),
	      "deep dir passed by");

	/* every class visited, the reserved ones too */
	memset(&t, 0, sizeof(t));
	cb.want = WALK_ALL;
	cb.max_depth = 0;
	cb.flags = 0;
	CHECK_RC(walk_tree(root, &cb), 0);
	CHECK(t.s.calls == 10 && t.s.cls_mask == WALK_ALL, "all: %d %#x",
	      t.s.calls, t.s.cls_mask);
	CHECK(t.s.names[0][0] != '\0' && !seen(&t.s, "d1/BBBB"),
	      "no path without WALK_F_PATH");
	close(root);
}

/* 17 levels of 250-byte names: deeper than PATH_MAX relative paths. */
static void long_paths(int top)
{
	char name[251];
	struct tree_seen t = { 0 };
	struct walk_tree_cb cb = {
		.want = WALK_ALL,
		.flags = WALK_F_PATH,
		.file = t_file,
		.arg = &t,
	};
	int root = subdir(top, "deep"), fd[18];

	memset(name, 'x', 250);
	name[250] = '\0';
	fd[0] = root;
	for (int i = 0; i < 17; i++)
		fd[i + 1] = subdir(fd[i], name);
	touch(fd[17], "F");
	CHECK_RC(walk_tree(root, &cb), -ENAMETOOLONG);
	CHECK(t.s.calls == 0, "nothing that long visited");
	cb.flags = 0;
	memset(&t, 0, sizeof(t));
	CHECK_RC(walk_tree(root, &cb), 0);
	CHECK(t.s.calls == 1 && t.depth_max == 17, "without paths: %d, depth %d",
	      t.s.calls, t.depth_max);
	/* too deep for nftw(): taken down level by level */
	CHECK(unlinkat(fd[17], "F", 0) == 0, "rm F");
	for (int i = 17; i > 0; i--) {
		close(fd[i]);
		CHECK(unlinkat(fd[i - 1], name, AT_REMOVEDIR) == 0, "rmdir");
	}
	close(root);
}

/* A subdirectory that cannot be opened (here: no descriptor left, as on a
 * deep tree at RLIMIT_NOFILE; EACCES does the same) must fail the walk: a
 * rekey that took "0" for "every header seen" would drop keys that the
 * unseen files still need. For each limit the walk either sees every file
 * or fails; at least one limit makes it fail past the first level. */
static void unopenable(int top)
{
	int root = subdir(top, "fdroot"), a = subdir(root, "a"),
	    b = subdir(a, "b");
	struct rlimit old, lim;
	int partial = 0, skipped = 0;

	touch(root, "F0");
	touch(a, "F1");
	touch(b, "F2");
	close(b);
	close(a);
	CHECK(getrlimit(RLIMIT_NOFILE, &old) == 0, "getrlimit");
	for (int n = 1; n <= 12; n++) {
		struct tree_seen t = { 0 };
		struct walk_tree_cb cb = {
			.want = WALK_ENTRIES, .file = t_file, .arg = &t,
		};
		int rc, rc_skip, calls;

		lim = old;
		lim.rlim_cur = (rlim_t)(root + n);
		if (setrlimit(RLIMIT_NOFILE, &lim) < 0)
			break;
		rc = walk_tree(root, &cb);
		calls = t.s.calls;
		memset(&t, 0, sizeof(t));
		cb.flags = WALK_F_SKIP_ERRORS;
		rc_skip = walk_tree(root, &cb);
		(void)setrlimit(RLIMIT_NOFILE, &old);
		CHECK(rc < 0 || calls == 3, "limit %d: rc %d with %d of 3 files",
		      n, rc, calls);
		if (rc == -EMFILE && calls >= 1) {
			partial++;
			CHECK(rc_skip == 0 && t.s.calls < 3,
			      "WALK_F_SKIP_ERRORS passes by: rc %d, %d files",
			      rc_skip, t.s.calls);
			skipped++;
		}
	}
	CHECK(partial > 0, "some limit cut the walk below the first level");
	CHECK(skipped == partial, "skip checked at every cut");
	close(root);
}

int main(void)
{
	char tmpl[PATH_MAX];
	int top, before;

	classify();
	if (tvol_tmpdir("test_walk", tmpl, sizeof(tmpl)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	top = open(tmpl, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	before = nfds();
	entries(top);
	tree(top);
	long_paths(top);
	unopenable(top);
	CHECK(nfds() == before, "fds: %d before, %d after", before, nfds());
	close(top);
	CHECK(tvol_rmtree(tmpl) == 0, "cleanup");
	return t_done("test_walk");
}
