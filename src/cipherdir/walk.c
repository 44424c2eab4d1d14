/* src/cipherdir/walk.c — directory entries and tree walks of the cipher
 * directory (include/cmkfs/walk.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/names.h"
#include "cmkfs/walk.h"

unsigned walk_classify(const char *name)
{
	if (!names_is_reserved(name))
		return WALK_NAME;
	if (names_is_longname(name))
		return WALK_LONGNAME;
	if (strcmp(name, DIRID_FILE) == 0)
		return WALK_DIRID;
	if (names_is_side(name))
		return WALK_SIDE;
	if (names_is_tmp(name))
		return WALK_TMP;
	return WALK_RESERVED;
}

/* The type of a DT_UNKNOWN entry (file systems without d_type).
 * Errors: -errno of fstatat (-ENOENT: gone meanwhile). */
static int resolve(struct walk_entry *e)
{
	struct stat st;

	if (fstatat(e->dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	e->type = IFTODT(st.st_mode);
	return 0;
}

/* `tolerant`: a stream that fails midway ends the walk quietly (what was
 * read stands); opening it still fails loudly. */
static int iterate(int dfd, unsigned want, unsigned flags, bool tolerant,
		   walk_fn fn, void *arg, struct walk_entry *e)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	e->dfd = fd;
	for (;;) {
		errno = 0;	/* readdir() says "end" and "error" alike */
		de = readdir(d);
		if (de == NULL) {
			if (errno != 0 && !tolerant)
				rc = -errno;
			break;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		e->name = de->d_name;
		e->cls = walk_classify(de->d_name);
		if (!(e->cls & want))
			continue;
		e->type = de->d_type;
		e->ino = de->d_ino;
		if (e->type == DT_UNKNOWN && (flags & WALK_F_TYPE) &&
		    resolve(e) < 0)
			continue;	/* gone meanwhile */
		rc = fn(e, arg);
		if (rc != 0)
			break;
	}
	closedir(d);
	return rc;
}

int walk_entries(int dfd, unsigned want, unsigned flags, walk_fn fn,
		 void *arg)
{
	struct walk_entry e = { .depth = 0 };

	return iterate(dfd, want, flags & WALK_F_TYPE,
		       (flags & WALK_F_SKIP_ERRORS) != 0, fn, arg, &e);
}

struct tree {
	const struct walk_tree_cb *cb;
	int max_depth;
	int stop;		/* a callback's nonzero result: ends it all */
	char path[PATH_MAX];
};

/* One directory level of walk_tree(). */
struct level {
	struct tree *t;
	int depth;
	size_t plen;		/* strlen of t->path for this directory */
};

static int read_level(struct tree *t, int dfd, int depth, size_t plen);

static int descend(struct level *lv, const struct walk_entry *e, size_t plen)
{
	struct tree *t = lv->t;
	int sub, rc;

	if (lv->depth + 1 > t->max_depth)
		return -ELOOP;
	sub = openat(e->dfd, e->name,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (sub < 0) {
		rc = -errno;
		/* Gone, or replaced by a non-directory, meanwhile: nothing
		 * below it to see. Any other failure (EACCES, EMFILE) hides
		 * a subtree, which a rekey must not take as "all done". */
		return rc == -ENOENT || rc == -ENOTDIR || rc == -ELOOP ? 0 : rc;
	}
	rc = read_level(t, sub, lv->depth + 1, plen);
	close(sub);
	return rc;
}

static int tree_entry(const struct walk_entry *e, void *arg)
{
	struct level *lv = arg;
	struct tree *t = lv->t;
	struct walk_entry ce = *e;
	size_t plen = lv->plen;
	int rc = 0;

	ce.depth = lv->depth;
	ce.path = NULL;
	if (t->cb->filter != NULL) {
		rc = t->cb->filter(&ce, t->cb->arg);
		if (rc == WALK_SKIP)
			return 0;
		if (rc != 0)
			return t->stop = rc;
	}
	if (t->cb->flags & WALK_F_PATH) {
		size_t nl = strlen(e->name);

		if (plen + 1 + nl + 1 > sizeof(t->path))
			return -ENAMETOOLONG;
		snprintf(t->path + plen, sizeof(t->path) - plen, "%s%s",
			 plen ? "/" : "", e->name);
		plen += (plen ? 1 : 0) + nl;
		ce.path = t->path;
	}
	if (ce.type == DT_UNKNOWN && resolve(&ce) < 0)
		goto out;	/* gone meanwhile */
	if (ce.type != DT_DIR) {
		if (t->cb->file != NULL)
			rc = t->stop = t->cb->file(&ce, t->cb->arg);
		goto out;
	}
	if (t->cb->enter != NULL) {
		rc = t->cb->enter(&ce, t->cb->arg);
		if (rc == WALK_SKIP) {
			rc = 0;
			goto out;
		}
		if (rc != 0) {
			t->stop = rc;
			goto out;
		}
	}
	rc = descend(lv, &ce, plen);
	if (t->cb->leave != NULL) {
		if (ce.path != NULL)	/* the callee's names are cut off */
			t->path[plen] = '\0';
		t->cb->leave(&ce, t->cb->arg);
	}
	if (rc < 0 && t->stop == 0 && (t->cb->flags & WALK_F_SKIP_ERRORS))
		rc = 0;
out:
	if (ce.path != NULL)
		t->path[lv->plen] = '\0';
	return t->stop != 0 ? t->stop : rc;
}

static int read_level(struct tree *t, int dfd, int depth, size_t plen)
{
	struct level lv = { t, depth, plen };
	struct walk_entry e = { .depth = depth };

	return iterate(dfd, t->cb->want, 0,
		       (t->cb->flags & WALK_F_SKIP_ERRORS) != 0, tree_entry,
		       &lv, &e);
}

int walk_tree(int rootfd, const struct walk_tree_cb *cb)
{
	struct tree t = { .cb = cb };

	t.max_depth = cb->max_depth > 0 && cb->max_depth <= WALK_DEPTH_MAX ?
			      cb->max_depth :
			      WALK_DEPTH_MAX;
	t.path[0] = '\0';
	return read_level(&t, rootfd, 0, 0);
}
