/* include/cmkfs/dir.h — name translation for the mount: plain name +
 * parent inode -> backing name, and listings with every name decrypted.
 * What needs no inode (backing names from a directory id, side files,
 * making a directory, emptiness) is cipherdir/dirtree.h. */
#ifndef CMKFS_DIR_H
#define CMKFS_DIR_H

#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/dirtree.h"
#include "cmkfs/inode.h"

/* dirtree_bname() under the parent's directory id.
 * Errors: -ENAMETOOLONG, -EINVAL, -EBADMSG (parent's dirid damaged). */
CMK_MUST_CHECK int dir_bname(struct fsctx *fs, struct inode *parent,
			     const char *name, struct bname *out);
/* The backing name under the previous name key, while a full rekey runs
 * (a lookup's second try). Errors: -ENOENT (none runs), as dir_bname. */
CMK_MUST_CHECK int dir_bname_prev(struct fsctx *fs, struct inode *parent,
				  const char *name, struct bname *out);
/* With fs->ns held: while a full rekey runs, re-encrypt the names of
 * directory `dir` now, unless done already in this generation, so that
 * a namespace operation sees each name under one key (migrate.h). */
CMK_MUST_CHECK int dir_ready(struct fsctx *fs, struct inode *dir);
/* A symlink's encrypted target, under the current name key or, mid full
 * rekey, the previous one; loc: where it lives in a format-3 volume
 * (bound into the target), NULL in format 1/2.
 * Errors: -EBADMSG, -EKEYREVOKED. */
CMK_MUST_CHECK int dir_target_decrypt(struct fsctx *fs,
				      const struct names_loc *loc,
				      const char *enc, size_t n, char *plain,
				      size_t cap, size_t *len);
/* Whether the volume is format 3 (targets and xattr values bound). */
bool dir_fmt3(struct fsctx *fs);
/* The location of backing entry bname in parent (names_loc_set()).
 * Errors: as inode_dirid(), -ENAMETOOLONG. */
CMK_MUST_CHECK int dir_loc(struct fsctx *fs, struct inode *parent,
			   const char *bname, struct names_loc *loc);
/* dirtree_longname_add() / _del() in the parent's backing directory. */
CMK_MUST_CHECK int dir_longname_add(struct inode *parent,
				    const struct bname *bn);
void dir_longname_del(struct inode *parent, const struct bname *bn);

struct dent {
	char *name;		/* plaintext */
	char *bname;		/* the backing entry (lookup without a key);
				 * NULL for "." and "..", never looked up */
	ino_t ino;
	unsigned char type;	/* DT_* */
};

struct dlist {
	struct dent *v;
	size_t n, cap;
	int err;		/* first name that failed: -EBADMSG */
};

/* List `dir` with plaintext names, "." and ".." first (DT_DIR; ".." of
 * the root is the root). A name that fails to decrypt sets l->err and is
 * logged with its backing name. */
CMK_MUST_CHECK int dir_list(struct fsctx *fs, struct inode *dir,
			    struct dlist *l);
void dir_list_free(struct dlist *l);

#endif
