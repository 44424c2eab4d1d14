/* include/cmkfs/dirtree.h — directories of the volume on disk, without
 * FUSE (doc/FORMAT.md §4): plaintext name + directory id -> backing name
 * (short, or long with its side file), long-name side files, making a
 * directory with its DIRID_FILE, reading a directory's id, and emptiness
 * as the user sees it. Used by the mount (fuse/) and by engines that work
 * on an unmounted volume (maint/). Every function works on directory fds
 * the caller owns; errors are negative errnos. Thread-safe. */
#ifndef CMKFS_DIRTREE_H
#define CMKFS_DIRTREE_H

#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/keyring.h"
#include "cmkfs/names.h"

struct bname {
	char enc[ENCNAME_MAX];	/* full encrypted name (base64url) */
	char name[ENCNAME_MAX];	/* what is in the backing directory */
	bool is_long;
};

/* The backing name of plaintext `name` in the directory whose id is
 * `dirid`. Errors: -ENAMETOOLONG, -EINVAL (bad name), -EKEYREVOKED
 * (keyring locked), -EIO. */
CMK_MUST_CHECK int dirtree_bname(struct keyring *kr,
				 const uint8_t dirid[static DIRID_LEN],
				 const char *name, struct bname *out);
/* For a long name, write its side file in dirfd (atomically, durably)
 * before the entry appears; no-op for a short name. Errors: from
 * backing_replace(). */
CMK_MUST_CHECK int dirtree_longname_add(int dirfd, const struct bname *bn);
/* Remove the side file once no entry of that name is left in dirfd (after
 * an unlink, or a create that failed); kept while one is there, e.g. when
 * a create failed with EEXIST. No-op for a short name. */
void dirtree_longname_del(int dirfd, const struct bname *bn);
/* The encrypted name behind long-name entry `bname` in dirfd, from its
 * side file, NUL-terminated in enc (cap bytes), its hash checked.
 * Errors: -EBADMSG (side file missing, unreadable, too long or not
 * matching). */
CMK_MUST_CHECK int dirtree_longname_read(int dirfd, const char *bname,
					 char *enc, size_t cap);
/* The id of backing directory dirfd (any descriptor, O_PATH too) from its
 * DIRID_FILE; out is untouched on error. Errors: -ENOENT (no id file),
 * -EBADMSG (shorter than DIRID_LEN), -EFBIG (longer), -errno of opening
 * (-ELOOP: a symlink) or reading it. */
CMK_MUST_CHECK int dirtree_read_dirid(int dirfd,
				      uint8_t out[static DIRID_LEN]);
/* 1 if the directory holds nothing but its DIRID_FILE, 0 if not. Stale
 * temporaries (TMP_PREFIX, left by a crash) are removed on the way.
 * Errors: -errno from opening it, -ENOMEM. */
CMK_MUST_CHECK int dirtree_is_empty(int dirfd);
/* Make directory `tmp` in parentfd with a fresh DIRID_FILE inside, the id
 * on disk before the caller renames the directory into place; then
 * chown (if chown_it) and chmod it. On error nothing is left behind.
 * Errors: -errno of the failing call, -EIO (no randomness). */
CMK_MUST_CHECK int dirtree_make(int parentfd, const char *tmp, mode_t mode,
				uid_t uid, gid_t gid, bool chown_it);

#endif
