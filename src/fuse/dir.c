/* src/fuse/dir.c — name translation and listings for the mount, on top of
 * cipherdir/dirtree.c (doc/FORMAT.md §4). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/dir.h"
#include "cmkfs/log.h"
#include "cmkfs/migrate.h"
#include "cmkfs/secmem.h"
#include "cmkfs/walk.h"

int dir_bname(struct fsctx *fs, struct inode *parent, const char *name,
	      struct bname *out)
{
	uint8_t dirid[DIRID_LEN];
	int rc;

	rc = inode_dirid(fs, parent, dirid);
	return rc < 0 ? rc : dirtree_bname(fs->kr, dirid, name, out);
}

int dir_bname_prev(struct fsctx *fs, struct inode *parent, const char *name,
		   struct bname *out)
{
	uint8_t dirid[DIRID_LEN], key[NAME_KEY_LEN];
	int rc;

	rc = keyring_prev_name_key(fs->kr, key);
	if (rc == 0)
		rc = inode_dirid(fs, parent, dirid);
	if (rc == 0)
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

int dir_ready(struct fsctx *fs, struct inode *dir)
{
	const struct migrate_cb cb = { .names_only = true };
	struct migrate_stats st = { 0 };
	struct migrate_keys k;
	uint8_t dirid[DIRID_LEN];
	struct volume v;
	uint32_t gen;
	int fd, rc;

	if (!keyring_full_rekey(fs->kr))
		return 0;
	gen = keyring_volume_copy(fs->kr, &v)->kek_gen;
	if (dir->names_gen == gen)
		return 0;
	rc = migrate_keys_get(fs->kr, &k);
	if (rc == -ENOENT)
		return 0;	/* finished meanwhile */
	if (rc == 0)
		rc = inode_dirid(fs, dir, dirid);
	fd = rc < 0 ? -1 : openat(dir->fd, ".", O_RDONLY | O_DIRECTORY |
						     O_CLOEXEC);
	if (rc == 0 && fd < 0)
		rc = -errno;
	if (rc == 0)
		rc = migrate_dir(&k, fs->root.fd, fd, dirid, &cb, &st);
	if (fd >= 0)
		close(fd);
	migrate_keys_wipe(&k);
	if (rc == 0)
		dir->names_gen = gen;
	return rc;
}

bool dir_fmt3(struct fsctx *fs)
{
	return keyring_version(fs->kr) >= 3;
}

int dir_loc(struct fsctx *fs, struct inode *parent, const char *bname,
	    struct names_loc *loc)
{
	uint8_t dirid[DIRID_LEN];
	int rc;

	rc = inode_dirid(fs, parent, dirid);
	return rc < 0 ? rc : names_loc_set(loc, dirid, bname);
}

int dir_target_decrypt(struct fsctx *fs, const struct names_loc *loc,
		       const char *enc, size_t n, char *plain, size_t cap,
		       size_t *len)
{
	uint8_t key[NAME_KEY_LEN];
	int rc;

	rc = keyring_name_key(fs->kr, key);
	if (rc == 0)
		rc = names_target_open(key, loc, enc, n, plain, cap, len);
	/* mid full rekey: a target not re-encrypted yet */
	if (rc == -EBADMSG && keyring_prev_name_key(fs->kr, key) == 0)
		rc = names_target_open(key, loc, enc, n, plain, cap, len);
	secmem_wipe(key, sizeof(key));
	return rc;
}

int dir_longname_add(struct inode *parent, const struct bname *bn)
{
	return dirtree_longname_add(parent->fd, bn);
}

void dir_longname_del(struct inode *parent, const struct bname *bn)
{
	dirtree_longname_del(parent->fd, bn);
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
	l->v[l->n].bname = bname ? strdup(bname) : NULL;
	if (l->v[l->n].name == NULL ||
	    (bname != NULL && l->v[l->n].bname == NULL)) {
		free(l->v[l->n].name);
		free(l->v[l->n].bname);
		return -ENOMEM;
	}
	l->v[l->n].ino = ino;
	l->v[l->n].type = type;
	l->n++;
	return 0;
}

void dir_list_free(struct dlist *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].name);
		free(l->v[i].bname);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

struct listing {
	struct fsctx *fs;
	struct inode *dir;
	struct dlist *l;
	const uint8_t *key, *dirid;
	const uint8_t *prev;	/* mid full rekey: the previous name key */
};

/* walk_entries() callback: config, dirid, side and tmp files are not
 * listed, long names are. */
static int list_entry(const struct walk_entry *de, void *arg)
{
	struct listing *ls = arg;
	char enc[ENCNAME_MAX], plain[NAME_MAX + 1];
	const char *e = de->name;
	int r = 0;

	if (de->cls == WALK_LONGNAME) {
		r = dirtree_longname_read(de->dfd, e, enc, sizeof(enc));
		if (r == 0)
			e = enc;
	}
	if (r == 0) {
		r = names_decrypt(ls->key, ls->dirid, e, strlen(e), plain,
				  sizeof(plain));
		if (r < 0 && ls->prev != NULL)
			r = names_decrypt(ls->prev, ls->dirid, e, strlen(e),
					  plain, sizeof(plain));
	}
	if (r < 0) {
		log_err("%s: backing name '%s' in directory inode %llu "
			"failed authentication",
			ls->fs->cipherdir, de->name,
			(unsigned long long)ls->dir->ino);
		if (ls->l->err == 0)
			ls->l->err = -EBADMSG;
		return 0;
	}
	r = dlist_add(ls->l, plain, de->name, de->ino, de->type);
	secmem_wipe(plain, sizeof(plain));
	return r;
}

/* "." and "..": the backing directory's own numbers, which are what
 * stat() through the mount shows (the attributes come from the backing
 * objects). The root's ".." lies outside the volume, so it names the root
 * itself, as the ".." of a filesystem's root does. A directory removed
 * while open has no parent left to stat: its ".." names itself too. */
static int list_dots(struct fsctx *fs, struct inode *dir, struct dlist *l)
{
	struct stat st;
	ino_t up = dir->ino;
	int rc;

	if (dir != &fs->root &&
	    fstatat(dir->fd, "..", &st, AT_SYMLINK_NOFOLLOW) == 0)
		up = st.st_ino;
	rc = dlist_add(l, ".", NULL, dir->ino, DT_DIR);
	return rc < 0 ? rc : dlist_add(l, "..", NULL, up, DT_DIR);
}

int dir_list(struct fsctx *fs, struct inode *dir, struct dlist *l)
{
	uint8_t key[NAME_KEY_LEN], dirid[DIRID_LEN], prev[NAME_KEY_LEN];
	struct listing ls = { fs, dir, l, key, dirid, NULL };
	int rc;

	rc = inode_dirid(fs, dir, dirid);
	if (rc == 0)
		rc = keyring_name_key(fs->kr, key);
	if (rc == 0 && keyring_prev_name_key(fs->kr, prev) == 0)
		ls.prev = prev;
	if (rc == 0)
		rc = list_dots(fs, dir, l);
	if (rc < 0) {
		secmem_wipe(key, sizeof(key));
		return rc;
	}
	/* A stream that fails midway lists what was read, as getdents.
	 * While a full rekey renames entries, the listing is taken under
	 * the namespace lock so that none is seen twice or not at all. */
	if (ls.prev != NULL)
		pthread_mutex_lock(&fs->ns);
	rc = walk_entries(dir->fd, WALK_ENTRIES, WALK_F_SKIP_ERRORS,
			  list_entry, &ls);
	if (ls.prev != NULL)
		pthread_mutex_unlock(&fs->ns);
	secmem_wipe(key, sizeof(key));
	secmem_wipe(prev, sizeof(prev));
	return rc;
}
