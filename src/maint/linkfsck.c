/* src/maint/linkfsck.c — fsck's check of link sets and wider location
 * bindings (include/cmkfs/linkfsck.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmkfs/cfile.h"
#include "cmkfs/linkfsck.h"
#include "cmkfs/linkset.h"
#include "cmkfs/names.h"
#include "cmkfs/reserved.h"
#include "cmkfs/walk.h"

/* One name of a file whose header names two places or a link set. */
struct rec {
	uint8_t id[FILE_ID_LEN];
	dev_t dev;
	ino_t ino;
	bool located;
	uint8_t tok[HEADER_SLOT_LEN];	/* of this name */
	struct header h;
	char *bpath, *ppath;
};

struct linkfsck {
	int rootfd;
	struct keyring *kr;
	const char *root;
	struct rec *r;
	size_t n, cap;
	/* the set files present before the walk, sorted */
	uint8_t (*sets)[FILE_ID_LEN];
	size_t nsets, capsets;
};

int linkfsck_new(int rootfd, struct keyring *kr, const char *root,
		 struct linkfsck **out)
{
	struct linkfsck *lf = calloc(1, sizeof(*lf));

	if (lf == NULL)
		return -ENOMEM;
	lf->rootfd = rootfd;
	lf->kr = kr;
	lf->root = root;
	*out = lf;
	return 0;
}

void linkfsck_free(struct linkfsck *lf)
{
	if (lf == NULL)
		return;
	for (size_t i = 0; i < lf->n; i++) {
		free(lf->r[i].bpath);
		free(lf->r[i].ppath);
	}
	free(lf->r);
	free(lf->sets);
	free(lf);
}

static int id_cmp(const void *a, const void *b)
{
	return memcmp(a, b, FILE_ID_LEN);
}

static int set_add(const struct walk_entry *e, void *arg)
{
	struct linkfsck *lf = arg;
	uint8_t id[FILE_ID_LEN];

	if (linkset_name_id(e->name, id) < 0)
		return 0;
	if (lf->nsets == lf->capsets) {
		size_t cap = lf->capsets ? 2 * lf->capsets : 16;
		void *n = realloc(lf->sets, cap * sizeof(*lf->sets));

		if (n == NULL)
			return -ENOMEM;
		lf->sets = n;
		lf->capsets = cap;
	}
	memcpy(lf->sets[lf->nsets++], id, FILE_ID_LEN);
	return 0;
}

int linkfsck_sets_load(struct linkfsck *lf)
{
	int fd, rc;

	fd = openat(lf->rootfd, LINKSET_DIR, O_RDONLY | O_DIRECTORY |
						     O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = walk_entries(fd, WALK_ALL, WALK_F_SKIP_ERRORS, set_add, lf);
	close(fd);
	if (rc < 0) {
		lf->nsets = 0;
		return rc;
	}
	if (lf->nsets > 1)
		qsort(lf->sets, lf->nsets, FILE_ID_LEN, id_cmp);
	return 0;
}

int linkfsck_add(struct linkfsck *lf, const struct header *h, bool located,
		 const struct stat *st, const char *bpath, const char *ppath)
{
	static const uint8_t zero[HEADER_SLOT_LEN];
	const char *bn = strrchr(bpath, '/');
	bool set = header_is_set(h);
	struct rec *r;

	if (h->version != HEADER_VERSION_3)
		return 0;
	/* One place: the walk's own check of it is all there is to know. */
	if (!set && (!located || memcmp(h->slot[0], zero, sizeof(zero)) == 0 ||
		     memcmp(h->slot[1], zero, sizeof(zero)) == 0))
		return 0;
	if (lf->n == lf->cap) {
		size_t cap = lf->cap ? 2 * lf->cap : 16;

		r = realloc(lf->r, cap * sizeof(*r));
		if (r == NULL)
			return -ENOMEM;
		lf->r = r;
		lf->cap = cap;
	}
	r = &lf->r[lf->n];
	memset(r, 0, sizeof(*r));
	memcpy(r->id, h->file_id, FILE_ID_LEN);
	r->dev = st->st_dev;
	r->ino = st->st_ino;
	r->located = located;
	r->h = *h;
	if (names_link_token(bn != NULL ? bn + 1 : bpath, r->tok) < 0)
		r->located = false;	/* no place it can be bound to */
	r->bpath = strdup(bpath);
	r->ppath = ppath != NULL ? strdup(ppath) : NULL;
	if (r->bpath == NULL || (ppath != NULL && r->ppath == NULL)) {
		free(r->bpath);
		free(r->ppath);
		return -ENOMEM;
	}
	lf->n++;
	return 0;
}

static int rec_cmp(const void *a, const void *b)
{
	const struct rec *x = a, *y = b;
	int c = memcmp(x->id, y->id, FILE_ID_LEN);

	if (c != 0)
		return c;
	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	if (x->ino != y->ino)
		return x->ino < y->ino ? -1 : 1;
	if (x->located != y->located)	/* located first */
		return (int)y->located - (int)x->located;
	return strcmp(x->bpath, y->bpath);	/* reported on the first */
}

static bool same_file(const struct rec *a, const struct rec *b)
{
	return memcmp(a->id, b->id, FILE_ID_LEN) == 0 && a->dev == b->dev &&
	       a->ino == b->ino;
}

/* Located names of file r[i] (r[i] located, the first of its file): the
 * end of its run. */
static size_t names_end(const struct linkfsck *lf, size_t i)
{
	size_t j = i;

	while (j < lf->n && same_file(&lf->r[j], &lf->r[i]) &&
	       lf->r[j].located)
		j++;
	return j;
}

static bool named(const struct linkfsck *lf, size_t i, size_t j,
		  const uint8_t *tok)
{
	for (size_t k = i; k < j; k++)
		if (memcmp(lf->r[k].tok, tok, HEADER_SLOT_LEN) == 0)
			return true;
	return false;
}

/* How many places the binding of file r[i..j) names that none of its
 * names holds; -errno if its set cannot be read. */
static long stale_places(struct linkfsck *lf, size_t i, size_t j)
{
	static const uint8_t zero[HEADER_SLOT_LEN];
	const struct header *h = &lf->r[i].h;
	struct linkset s = { 0 };
	long n = 0;
	int rc;

	if (!header_is_set(h)) {
		for (int k = 0; k < 2; k++)
			n += memcmp(h->slot[k], zero, HEADER_SLOT_LEN) != 0 &&
			     !named(lf, i, j, h->slot[k]);
		return n;
	}
	rc = linkset_load(lf->kr, lf->rootfd, h, &s);
	if (rc < 0)
		return rc;
	for (uint32_t k = 0; k < s.n; k++)
		n += !named(lf, i, j, s.tok[k]);
	free(s.tok);
	return n;
}

static void found(linkfsck_fn fn, void *arg, enum linkfsck_kind kind,
		  const char *what, const struct rec *r, size_t file)
{
	const struct linkfsck_finding f = { kind, what, r->bpath, r->ppath,
					    -1, NULL, file };

	fn(&f, arg);
}

/* Is r[k] the first name of a backing file located at some name (the
 * located ones sort first), in the run of one file id from r[i]? */
static bool file_start(const struct linkfsck *lf, size_t i, size_t k)
{
	return lf->r[k].located &&
	       (k == i || !same_file(&lf->r[k], &lf->r[k - 1]));
}

/* The files of one file id, r[i..j): a copy, or a binding left wider
 * than the names. */
static void judge_id(struct linkfsck *lf, size_t i, size_t j, bool partial,
		     linkfsck_fn fn, void *arg, unsigned long *unjudged)
{
	char what[256];
	size_t files = 0, first = 0;
	long stale;

	for (size_t k = i; k < j; k++)
		if (file_start(lf, i, k)) {
			files++;
			first = k;
		}
	if (files > 1) {
		for (size_t k = i; k < j; k++)
			if (file_start(lf, i, k))
				found(fn, arg, LINKFSCK_SHARED,
				      "file id also held by another backing "
				      "file (a copy put at a place its header "
				      "still names)",
				      &lf->r[k], k);
		return;
	}
	if (files == 0)
		return;
	stale = stale_places(lf, first, names_end(lf, first));
	if (stale <= 0)
		return;	/* a set that fails: the walk reported the file */
	if (partial) {
		(*unjudged)++;
		return;
	}
	if (header_is_set(&lf->r[first].h))
		snprintf(what, sizeof(what),
			 "link set still names %ld place%s that hold%s no name "
			 "of the file (a link, rename or unlink cut short by a "
			 "crash, or an old set put back)",
			 stale, stale == 1 ? "" : "s", stale == 1 ? "s" : "");
	else
		snprintf(what, sizeof(what),
			 "header still names a place that holds no name of the "
			 "file (a rename, link or unlink cut short by a crash, "
			 "or an old header put back)");
	found(fn, arg, LINKFSCK_STALE, what, &lf->r[first], first);
}

struct setwalk {
	struct linkfsck *lf;
	bool partial;
	linkfsck_fn fn;
	void *arg;
	unsigned long *unjudged;
	char bdir[4096];
};

/* Does a file met in the walk name set `id` (set mode, its header read)? */
static bool claimed(const struct linkfsck *lf, const uint8_t *id)
{
	size_t lo = 0, hi = lf->n;

	while (lo < hi) {	/* the first record of id */
		size_t mid = lo + (hi - lo) / 2;

		if (memcmp(lf->r[mid].id, id, FILE_ID_LEN) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (; lo < lf->n && memcmp(lf->r[lo].id, id, FILE_ID_LEN) == 0; lo++)
		if (header_is_set(&lf->r[lo].h))
			return true;
	return false;
}

static int set_entry(const struct walk_entry *e, void *arg)
{
	struct setwalk *w = arg;
	struct linkfsck *lf = w->lf;
	char bpath[4096 + 300], why[160];
	struct linkfsck_finding f = { 0 };
	uint8_t id[FILE_ID_LEN];
	struct linkset s[2];
	bool prev;
	int rc;

	snprintf(bpath, sizeof(bpath), "%s/%s", w->bdir, e->name);
	f.bpath = bpath;
	f.dfd = e->dfd;
	f.name = e->name;
	if (e->cls == WALK_TMP) {
		f.kind = LINKFSCK_TMP;
		f.what = "leftover temporary file of an interrupted operation";
	} else if (linkset_name_id(e->name, id) < 0) {
		f.kind = LINKFSCK_UNKNOWN;
		f.what = "unknown name in " LINKSET_DIR;
	} else if ((rc = linkset_read(lf->kr, lf->rootfd, id, s, &prev)) ==
		   -ENOENT) {
		return 0;	/* gone meanwhile */
	} else if (rc < 0) {
		f.kind = LINKFSCK_BAD;
		if (rc == -EBADMSG)
			f.what = "link set fails authentication, is malformed "
				 "or is another file's (forged, damaged, or "
				 "copied from another set)";
		else {
			snprintf(why, sizeof(why), "link set cannot be read: %s",
				 strerror(-rc));
			f.what = why;
		}
	} else {
		linkset_free(s);
		if (claimed(lf, id) ||
		    (lf->nsets == 0 ||
		     bsearch(id, lf->sets, lf->nsets, FILE_ID_LEN, id_cmp) ==
			     NULL))
			return 0;	/* named, or made during the walk */
		if (w->partial) {
			(*w->unjudged)++;
			return 0;
		}
		f.kind = LINKFSCK_ORPHAN;
		f.what = "orphaned link set: no file names it (left by a crash "
			 "between its file's last change of names and the "
			 "set's removal, or planted)";
	}
	w->fn(&f, w->arg);
	return 0;
}

int linkfsck_judge(struct linkfsck *lf, bool partial, linkfsck_fn fn,
		   void *arg, unsigned long *unjudged)
{
	struct setwalk w = { lf, partial, fn, arg, unjudged, { 0 } };
	int fd, rc;

	*unjudged = 0;
	if (lf->n > 1)
		qsort(lf->r, lf->n, sizeof(*lf->r), rec_cmp);
	for (size_t i = 0, j; i < lf->n; i = j) {
		for (j = i + 1; j < lf->n &&
				memcmp(lf->r[j].id, lf->r[i].id, FILE_ID_LEN) == 0;
		     j++)
			;
		judge_id(lf, i, j, partial, fn, arg, unjudged);
	}
	snprintf(w.bdir, sizeof(w.bdir), "%s/%s", lf->root, LINKSET_DIR);
	fd = openat(lf->rootfd, LINKSET_DIR, O_RDONLY | O_DIRECTORY |
						     O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = walk_entries(fd, WALK_ALL, WALK_F_SKIP_ERRORS, set_entry, &w);
	close(fd);
	return rc;
}

int linkfsck_rebind(struct linkfsck *lf, size_t file, uint32_t bs)
{
	const struct rec *r = &lf->r[file];
	size_t end = names_end(lf, file), n = 0, rl = strlen(lf->root);
	const char **names;
	struct header h;
	struct stat st;
	struct cfile cf;
	int fd, rc;

	names = calloc(end - file, sizeof(*names));
	if (names == NULL)
		return -ENOMEM;
	for (size_t k = file; k < end; k++) {
		const char *bn = strrchr(lf->r[k].bpath, '/');

		names[n++] = bn != NULL ? bn + 1 : lf->r[k].bpath;
	}
	fd = openat(lf->rootfd, r->bpath[rl] == '/' ? r->bpath + rl + 1 :
						       r->bpath + rl,
		    O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		free(names);
		return rc;
	}
	/* Only the file the walk saw, with the binding it judged. */
	rc = fstat(fd, &st) < 0 ? -errno : 0;
	if (rc == 0 && (st.st_dev != r->dev || st.st_ino != r->ino))
		rc = -ESTALE;
	if (rc == 0)
		rc = cfile_read_header(fd, &h);
	if (rc == 0 && memcmp(h.slot, r->h.slot, sizeof(h.slot)) != 0)
		rc = -ESTALE;
	if (rc == 0) {
		cfile_init(&cf, lf->kr, bs, fd);
		cf.rootfd = lf->rootfd;
		rc = cfile_keep_names(&cf, fd, names, n, true);
		cfile_destroy(&cf);
	}
	close(fd);
	free(names);
	return rc;
}
