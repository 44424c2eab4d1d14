/* include/cmkfs/dir.h — name translation in the backing tree.
 * Plain name + parent directory -> backing name (short or long form with
 * its ".name" side file); listings with every name decrypted; emptiness of
 * a backing directory as the user sees it. */
#ifndef CMKFS_DIR_H
#define CMKFS_DIR_H

#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/inode.h"

struct bname {
	char enc[ENCNAME_MAX];	/* full encrypted name (base64url) */
	char name[ENCNAME_MAX];	/* what is in the backing directory */
	bool is_long;
};

/* Errors: -ENAMETOOLONG, -EINVAL, -EBADMSG (parent's dirid damaged). */
CMK_MUST_CHECK int dir_bname(struct fsctx *fs, struct inode *parent,
			     const char *name, struct bname *out);
/* The same from a directory id (no mount needed: fsck --repair). */
CMK_MUST_CHECK int dir_bname_in(struct keyring *kr,
				const uint8_t dirid[static DIRID_LEN],
				const char *name, struct bname *out);
/* For long names, write the side file (atomically) before the entry
 * appears; no-op for short names. */
CMK_MUST_CHECK int dir_longname_add(struct inode *parent,
				    const struct bname *bn);
/* Remove the side file after the entry is gone; no-op for short names. */
void dir_longname_del(struct inode *parent, const struct bname *bn);

struct dent {
	char *name;		/* plaintext */
	char *bname;		/* the backing entry (lookup without a key) */
	ino_t ino;
	unsigned char type;	/* DT_* */
};

struct dlist {
	struct dent *v;
	size_t n, cap;
	int err;		/* first name that failed: -EBADMSG */
};

/* List `dir` with plaintext names (without . and ..). A name that fails to
 * decrypt sets l->err and is logged with its backing name. */
CMK_MUST_CHECK int dir_list(struct fsctx *fs, struct inode *dir,
			    struct dlist *l);
void dlist_free(struct dlist *l);
/* 1 if the directory holds nothing but our own files, 0 if not. Stale
 * temporary files are removed on the way. */
CMK_MUST_CHECK int dir_is_empty(int dirfd);
/* Make a directory as tmp name with a fresh DIRID_FILE inside. */
CMK_MUST_CHECK int dir_make(int parentfd, const char *tmp, mode_t mode,
			    uid_t uid, gid_t gid, bool chown_it);

#endif
