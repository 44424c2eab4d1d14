/* src/fuse/inode.c — inode table keyed by backing (dev, ino). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/inode.h"
#include "cmkfs/inval.h"
#include "cmkfs/log.h"
#include "cmkfs/reseal.h"

#define NHASH 65536

int inode_table_init(struct fsctx *fs, const char *cipherdir,
		     struct keyring *kr)
{
	struct stat st;

	memset(fs, 0, sizeof(*fs));
	fs->jfd = -1;
	fs->kr = kr;
	fs->bs = keyring_block_size(kr);
	snprintf(fs->cipherdir, sizeof(fs->cipherdir), "%s", cipherdir);
	pthread_mutex_init(&fs->mtx, NULL);
	pthread_mutex_init(&fs->ns, NULL);
	pthread_mutex_init(&fs->hmtx, NULL);
	gate_init(&fs->reads);
	reseal_budget_init(&fs->budget);
	fs->handles.prev = fs->handles.next = &fs->handles;
	fs->nhash = NHASH;
	fs->hash = calloc(fs->nhash, sizeof(*fs->hash));
	if (fs->hash == NULL)
		return -ENOMEM;
	fs->root.fd = open(cipherdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->root.fd < 0)
		return -errno;
	if (fstat(fs->root.fd, &st) < 0)
		return -errno;
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = S_IFDIR;
	fs->root.nlookup = 2;
	fs->is_root = geteuid() == 0;
	return 0;
}

static void inode_free(struct inode *in)
{
	if (S_ISREG(in->type))
		cfile_destroy(&in->cf);
	close(in->fd);
	free(in);
}

void inode_table_destroy(struct fsctx *fs)
{
	/* Handles whose RELEASE never came (include/cmkfs/inode.h). */
	while (fs->handles.next != NULL && fs->handles.next != &fs->handles) {
		inode_handle_drop(fs, fs->handles.next);
	}
	for (size_t i = 0; fs->hash != NULL && i < fs->nhash; i++) {
		struct inode *in = fs->hash[i];

		while (in != NULL) {
			struct inode *next = in->hnext;

			inode_free(in);
			in = next;
		}
	}
	free(fs->hash);
	if (fs->root.fd > 0)
		close(fs->root.fd);
	reseal_budget_destroy(&fs->budget);
	if (fs->jfd >= 0)
		close(fs->jfd);
	pthread_mutex_destroy(&fs->mtx);
	pthread_mutex_destroy(&fs->ns);
	pthread_mutex_destroy(&fs->hmtx);
	gate_destroy(&fs->reads);
}

void inode_handle_add(struct fsctx *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->hmtx);
	h->prev = &fs->handles;
	h->next = fs->handles.next;
	h->next->prev = h;
	fs->handles.next = h;
	fs->nhandles++;
	pthread_mutex_unlock(&fs->hmtx);
}

void inode_handle_drop(struct fsctx *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->hmtx);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	fs->nhandles--;
	pthread_mutex_unlock(&fs->hmtx);
	h->free(h);
}

/* A count kept under mtx. */
static size_t count_of(pthread_mutex_t *mtx, const size_t *n)
{
	size_t v;

	pthread_mutex_lock(mtx);
	v = *n;
	pthread_mutex_unlock(mtx);
	return v;
}

size_t inode_handle_count(struct fsctx *fs)
{
	return count_of(&fs->hmtx, &fs->nhandles);
}

static size_t slot(const struct fsctx *fs, dev_t dev, ino_t ino);

uint64_t inode_nodeid(struct fsctx *fs, dev_t dev, ino_t ino)
{
	uint64_t id = 0;

	if (dev == fs->root.dev && ino == fs->root.ino)
		return 1;	/* FUSE_ROOT_ID */
	pthread_mutex_lock(&fs->mtx);
	for (struct inode *in = fs->hash[slot(fs, dev, ino)]; in; in = in->hnext) {
		if (in->dev == dev && in->ino == ino) {
			id = (uint64_t)(uintptr_t)in;
			break;
		}
	}
	pthread_mutex_unlock(&fs->mtx);
	return id;
}

void inode_on_lock(struct fsctx *fs)
{
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&fs->mtx);
	for (size_t i = 0; i < fs->nhash; i++) {
		for (struct inode *in = fs->hash[i]; in; in = in->hnext) {
			if (S_ISREG(in->type))
				cfile_drop_keys(&in->cf);
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 256;
				uint64_t *p = realloc(inos, nc * sizeof(*p));

				if (p == NULL)
					continue;
				inos = p;
				cap = nc;
			}
			inos[n++] = (uint64_t)(uintptr_t)in;
		}
	}
	pthread_mutex_unlock(&fs->mtx);
	/* A READ that decrypted before the keys went may not have replied
	 * yet; its page must not land after the drop below. Later READs
	 * find no keys. */
	gate_drain(&fs->reads);
	/* Outside fs->mtx: invalidation may wait on requests we serve. */
	if (fs->se != NULL) {
		inval_inode(fs->se, 1);	/* FUSE_ROOT_ID */
		for (size_t i = 0; i < n; i++)
			inval_inode(fs->se, inos[i]);
	}
	free(inos);
}

static size_t slot(const struct fsctx *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

	return (size_t)(h >> 16) % fs->nhash;
}

int inode_get(struct fsctx *fs, int fd, const struct stat *st, uint64_t n,
	      struct inode **out)
{
	struct inode *in, *fresh = NULL;
	size_t s = slot(fs, st->st_dev, st->st_ino);

	if (st->st_dev == fs->root.dev && st->st_ino == fs->root.ino) {
		close(fd);
		*out = &fs->root;
		return 0;
	}
	pthread_mutex_lock(&fs->mtx);
	for (in = fs->hash[s]; in != NULL; in = in->hnext) {
		if (in->dev == st->st_dev && in->ino == st->st_ino)
			break;
	}
	if (in == NULL) {
		fresh = calloc(1, sizeof(*fresh));
		if (fresh == NULL) {
			pthread_mutex_unlock(&fs->mtx);
			close(fd);
			return -ENOMEM;
		}
		fresh->fd = fd;
		fresh->dev = st->st_dev;
		fresh->ino = st->st_ino;
		fresh->type = st->st_mode & S_IFMT;
		if (S_ISREG(fresh->type)) {
			cfile_init(&fresh->cf, fs->kr, fs->bs, fd);
			fresh->cf.jfd = fs->jfd;
			fresh->cf.rootfd = fs->root.fd;
			fresh->cf.rekey = reseal_budget_rekey;
			fresh->cf.rekey_arg = &fs->budget;
		}
		fresh->hnext = fs->hash[s];
		fs->hash[s] = fresh;
		fs->ninodes++;
		in = fresh;
	} else {
		close(fd);
	}
	in->nlookup += n;
	pthread_mutex_unlock(&fs->mtx);
	*out = in;
	return 0;
}

void inode_loc_set(struct fsctx *fs, struct inode *in,
		   const struct names_loc *loc)
{
	pthread_mutex_lock(&fs->mtx);
	in->loc = *loc;
	in->have_loc = true;
	pthread_mutex_unlock(&fs->mtx);
}

int inode_loc_get(struct fsctx *fs, struct inode *in, struct names_loc *loc)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&fs->mtx);
	if (in->have_loc) {
		*loc = in->loc;
		rc = 0;
	}
	pthread_mutex_unlock(&fs->mtx);
	return rc;
}

void inode_rebind(struct fsctx *fs, dev_t dev, ino_t ino, int newfd,
		  const struct stat *st, const struct names_loc *loc)
{
	struct inode **pp, *in = NULL, *o;
	size_t s;

	pthread_mutex_lock(&fs->mtx);
	s = slot(fs, st->st_dev, st->st_ino);
	for (o = fs->hash[s]; o != NULL; o = o->hnext)
		if (o->dev == st->st_dev && o->ino == st->st_ino)
			goto out;	/* known already: leave both alone */
	for (pp = &fs->hash[slot(fs, dev, ino)]; *pp != NULL;
	     pp = &(*pp)->hnext) {
		if ((*pp)->dev == dev && (*pp)->ino == ino) {
			in = *pp;
			break;
		}
	}
	if (in == NULL || !S_ISLNK(in->type) ||
	    dup3(newfd, in->fd, O_CLOEXEC) < 0)
		goto out;
	*pp = in->hnext;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->loc = *loc;
	in->have_loc = true;
	in->hnext = fs->hash[s];
	fs->hash[s] = in;
out:
	pthread_mutex_unlock(&fs->mtx);
	close(newfd);
}

void inode_forget(struct fsctx *fs, struct inode *in, uint64_t n)
{
	struct inode **pp;

	if (in == &fs->root)
		return;
	pthread_mutex_lock(&fs->mtx);
	if (n > in->nlookup)
		n = in->nlookup;
	in->nlookup -= n;
	if (in->nlookup > 0) {
		pthread_mutex_unlock(&fs->mtx);
		return;
	}
	for (pp = &fs->hash[slot(fs, in->dev, in->ino)]; *pp != NULL;
	     pp = &(*pp)->hnext) {
		if (*pp == in) {
			*pp = in->hnext;
			fs->ninodes--;
			break;
		}
	}
	pthread_mutex_unlock(&fs->mtx);
	inode_free(in);
}

size_t inode_count(struct fsctx *fs)
{
	return count_of(&fs->mtx, &fs->ninodes);
}

/* The backing path of directory fd (what its /proc/self/fd link says) and
 * its base name in *base. Errors: -errno of readlink, -ENOENT (removed). */
static int dir_where(int fd, char path[static PATH_MAX], const char **base)
{
	char proc[32];
	ssize_t n;

	backing_procpath(fd, proc);
	n = readlink(proc, path, PATH_MAX - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	if (n > 10 && strcmp(path + n - 10, " (deleted)") == 0)
		return -ENOENT;
	*base = strrchr(path, '/');
	*base = *base != NULL ? *base + 1 : path;
	return 0;
}

/* A directory's id, checked (format 3) against the backing name it has
 * now: only its O_PATH descriptor is at hand, and a rename by this mount
 * may move it meanwhile (its id then names both places for a while, and
 * a second try sees the new name). */
static int load_dirid(struct fsctx *fs, struct inode *in,
		      uint8_t buf[static DIRID_LEN])
{
	char path[PATH_MAX] = "?", again[PATH_MAX];
	const char *base = NULL, *b2;
	bool gone = false;
	int rc = 0;

	if (in == &fs->root || keyring_version(fs->kr) < 3) {
		rc = dirtree_read_dirid(fs->kr, in->fd, NULL, buf);
		snprintf(path, sizeof(path), "%s", fs->cipherdir);
	} else {
		for (int tries = 0; tries < 3; tries++) {
			rc = dir_where(in->fd, path, &base);
			gone = rc == -ENOENT;
			if (rc < 0)
				break;
			rc = dirtree_read_dirid(fs->kr, in->fd, base, buf);
			if (rc == 0 || dir_where(in->fd, again, &b2) < 0 ||
			    strcmp(again, path) == 0)
				break;
		}
	}
	if (gone || rc == -EKEYREVOKED)
		return rc;	/* the directory itself is gone; locked */
	if (rc < 0) {
		log_err("directory %s (backing inode %llu): %s", path,
			(unsigned long long)in->ino, dirtree_dirid_why(rc));
		return -EBADMSG;
	}
	return 0;
}

int inode_dirid(struct fsctx *fs, struct inode *in,
		uint8_t dirid[static DIRID_LEN])
{
	uint8_t buf[DIRID_LEN];
	int rc;

	pthread_mutex_lock(&fs->mtx);
	if (in->have_dirid) {
		memcpy(dirid, in->dirid, DIRID_LEN);
		pthread_mutex_unlock(&fs->mtx);
		return 0;
	}
	pthread_mutex_unlock(&fs->mtx);
	rc = load_dirid(fs, in, buf);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->mtx);
	memcpy(in->dirid, buf, DIRID_LEN);
	in->have_dirid = true;
	pthread_mutex_unlock(&fs->mtx);
	memcpy(dirid, buf, DIRID_LEN);
	return 0;
}

/* What a queued reseal holds of the mount until its batch is written. */
struct held {
	struct fsctx *fs;
	struct inode *in;
	int fd;
};

static void held_release(void *ctx)
{
	struct held *h = ctx;

	close(h->fd);
	inode_forget(h->fs, h->in, 1);
	free(h);
}

int inode_reseal(struct fsctx *fs, int dfd, const char *name,
		 struct reseal_batch *b)
{
	char path[32];
	struct held *h;
	struct inode *in;
	struct stat st;
	int pfd, fd, rc;

	pfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(pfd);
		return 0;	/* replaced meanwhile by something else */
	}
	rc = inode_get(fs, pfd, &st, 1, &in);
	if (rc < 0)
		return rc;
	backing_procpath(in->fd, path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	h = fd >= 0 ? malloc(sizeof(*h)) : NULL;
	if (h == NULL) {
		rc = fd < 0 ? (errno == ENOENT ? 0 : -errno) : -ENOMEM;
		if (fd >= 0)
			close(fd);
		inode_forget(fs, in, 1);
		return rc;
	}
	h->fs = fs;
	h->in = in;
	h->fd = fd;
	return reseal_batch_add(b, &in->cf, fd, false, held_release, h);
}
