/* src/fs/dir.c — name translation, listings, emptiness (doc/FORMAT.md §4). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dir.h"
#include "cmkfs/kdf.h"
#include "cmkfs/log.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"

int dir_bname_in(struct keyring *kr, const uint8_t dirid[static DIRID_LEN],
		 const char *name, struct bname *out)
{
	uint8_t key[NAME_KEY_LEN];
	int rc;

	rc = keyring_name_key(kr, key);
	if (rc < 0)
		return rc;
	rc = names_encrypt(key, dirid, name, strlen(name), out->enc,
			   sizeof(out->enc));
	secmem_wipe(key, sizeof(key));
	if (rc < 0)
		return rc;
	rc = names_backing(out->enc, out->name, sizeof(out->name));
	if (rc < 0)
		return rc;
	out->is_long = rc == 1;
	return 0;
}

int dir_bname(struct fsctx *fs, struct inode *parent, const char *name,
	      struct bname *out)
{
	uint8_t dirid[DIRID_LEN];
	int rc;

	rc = inode_dirid(fs, parent, dirid);
	return rc < 0 ? rc : dir_bname_in(fs->kr, dirid, name, out);
}

static void side_name(const struct bname *bn, char *out, size_t cap)
{
	size_t n = strlen(bn->name);

	if (n + sizeof(LONGNAME_SUFFIX) <= cap) {
		memcpy(out, bn->name, n);
		memcpy(out + n, LONGNAME_SUFFIX, sizeof(LONGNAME_SUFFIX));
	}
}

int dir_longname_add(struct inode *parent, const struct bname *bn)
{
	char side[ENCNAME_MAX];

	if (!bn->is_long)
		return 0;
	side_name(bn, side, sizeof(side));
	return backing_replace(parent->fd, side, bn->enc, strlen(bn->enc),
			       0400);
}

void dir_longname_del(struct inode *parent, const struct bname *bn)
{
	char side[ENCNAME_MAX];

	if (!bn->is_long)
		return;
	side_name(bn, side, sizeof(side));
	(void)unlinkat(parent->fd, side, 0);
}

/* Resolve a long-name entry through its side file, checking the hash. */
static int read_longname(int dirfd, const char *bname, char *enc, size_t cap)
{
	char side[ENCNAME_MAX];
	size_t len = 0;
	int rc;

	if (strlen(bname) + sizeof(LONGNAME_SUFFIX) > sizeof(side))
		return -EBADMSG;
	memcpy(side, bname, strlen(bname));
	memcpy(side + strlen(bname), LONGNAME_SUFFIX, sizeof(LONGNAME_SUFFIX));
	rc = backing_read_small(dirfd, side, enc, cap - 1, &len);
	if (rc < 0)
		return -EBADMSG;
	return names_longname_open(bname, enc, len);
}

static int dlist_add(struct dlist *l, const char *name, const char *bname,
		     ino_t ino, unsigned char type)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct dent *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].name = strdup(name);
	l->v[l->n].bname = strdup(bname);
	if (l->v[l->n].name == NULL || l->v[l->n].bname == NULL) {
		free(l->v[l->n].name);
		free(l->v[l->n].bname);
		return -ENOMEM;
	}
	l->v[l->n].ino = ino;
	l->v[l->n].type = type;
	l->n++;
	return 0;
}

void dlist_free(struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].bname);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

int dir_list(struct fsctx *fs, struct inode *dir, struct dlist *l)
{
	uint8_t key[NAME_KEY_LEN], dirid[DIRID_LEN];
	char enc[ENCNAME_MAX], plain[NAME_MAX + 1];
	struct dirent *de;
	DIR *d;
	int fd, rc;

	rc = inode_dirid(fs, dir, dirid);
	if (rc == 0)
		rc = keyring_name_key(fs->kr, key);
	if (rc < 0)
		return rc;
	fd = openat(dir->fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	d = fdopendir(fd);
	if (d == NULL) {
		rc = -errno;
		close(fd);
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		const char *e = de->d_name;
		int r;

		if (strcmp(e, ".") == 0 || strcmp(e, "..") == 0)
			continue;
		if (names_is_longname(e)) {
			r = read_longname(fd, e, enc, sizeof(enc));
			if (r == 0)
				e = enc;
		} else if (names_is_reserved(e)) {
			continue;	/* config, dirid, side and tmp files */
		} else {
			r = 0;
		}
		if (r == 0)
			r = names_decrypt(key, dirid, e, strlen(e), plain,
					  sizeof(plain));
		if (r < 0) {
			log_err("%s: backing name '%s' in directory inode %llu "
				"failed authentication",
				fs->cipherdir, de->d_name,
				(unsigned long long)dir->ino);
			if (l->err == 0)
				l->err = -EBADMSG;
			continue;
		}
		rc = dlist_add(l, plain, de->d_name, de->d_ino, de->d_type);
		if (rc < 0)
			break;
	}
	closedir(d);
out:
	secmem_wipe(key, sizeof(key));
	secmem_wipe(plain, sizeof(plain));
	return rc;
}

int dir_is_empty(int dirfd)
{
	struct dirent *de;
	int fd, empty = 1;
	DIR *d;

	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -ENOMEM;
	}
	while ((de = readdir(d)) != NULL) {
		const char *e = de->d_name;

		if (strcmp(e, ".") == 0 || strcmp(e, "..") == 0 ||
		    strcmp(e, DIRID_FILE) == 0)
			continue;
		if (strncmp(e, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0) {
			(void)unlinkat(fd, e, 0);	/* leftover of a crash */
			continue;
		}
		empty = 0;
		break;
	}
	closedir(d);
	return empty;
}

int dir_make(int parentfd, const char *tmp, mode_t mode, uid_t uid, gid_t gid,
	     bool chown_it)
{
	uint8_t dirid[DIRID_LEN];
	int dfd = -1, fd = -1, rc;

	rc = rand_bytes(dirid, sizeof(dirid));
	if (rc < 0)
		return rc;
	if (mkdirat(parentfd, tmp, 0700) < 0)
		return -errno;
	dfd = openat(parentfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		goto fail;
	}
	fd = openat(dfd, DIRID_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0400);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = backing_pwrite_full(fd, dirid, sizeof(dirid), 0);
	/* On disk before the directory is renamed into place: with delayed
	 * allocation the rename can reach the journal long before these 16
	 * bytes do, and a crash in between leaves an empty id, which makes
	 * every name in the directory unreadable, fsynced files' included. */
	if (rc == 0)
		rc = backing_order_data(fd);
	close(fd);
	fd = -1;
	if (rc < 0)
		goto fail;
	if (chown_it && fchown(dfd, uid, gid) < 0) {
		rc = -errno;
		goto fail;
	}
	if (fchmod(dfd, mode & 07777) < 0) {
		rc = -errno;
		goto fail;
	}
	close(dfd);
	return 0;
fail:
	if (dfd >= 0) {
		(void)unlinkat(dfd, DIRID_FILE, 0);
		close(dfd);
	}
	(void)unlinkat(parentfd, tmp, AT_REMOVEDIR);
	return rc;
}
