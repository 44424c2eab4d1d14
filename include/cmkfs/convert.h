/* include/cmkfs/convert.h — the objects of a format-1/2 volume rewritten
 * in their format-3 encodings by `cmkfs upgrade` (doc/FORMAT.md
 * "Upgrade"), in place and under the volume's own keys: a file header
 * bound to its names, a directory id record bound to the directory's
 * name, a randomized symlink target bound to its place, randomized xattr
 * values bound to their owner. Each object is one atomic step, skipped if
 * it is format 3 already, so a run killed anywhere is finished by the
 * next. Only while keyring_upgrading() (nothing else opens the volume);
 * every function returns 1 if it rewrote something, 0 if there was
 * nothing to do. */
#ifndef CMKFS_CONVERT_H
#define CMKFS_CONVERT_H

#include <stdint.h>
#include <sys/types.h>

#include "cmkfs/header.h"
#include "cmkfs/keyring.h"

/* The names (location tokens) of every regular file with more than one
 * link, gathered by a walk before the headers are rewritten. */
struct convert_links {
	struct convert_link {
		dev_t dev;
		ino_t ino;
		uint8_t tok[HEADER_SLOT_LEN];
	} *v;
	size_t n, cap;
	int sorted;
};
/* Note backing name bname of inode ino on dev. Errors: -ENOMEM, the
 * token's. */
CMK_MUST_CHECK int convert_links_add(struct convert_links *l, dev_t dev,
				     ino_t ino, const char *bname);
void convert_links_free(struct convert_links *l);

/* Regular file dfd/bname: its header as version 3 (same file id and data
 * keys; slots naming every name of it from `links`, a link set beyond
 * two; birth time = the backing file's mtime), then its xattrs. The
 * backing times are kept. Errors: -EBADMSG (the header does not open:
 * left as it is, for fsck), -errno. */
CMK_MUST_CHECK int convert_file(struct keyring *kr, int rootfd, int dfd,
				const char *bname,
				struct convert_links *links);
/* Before anything is rewritten: would fd's user.* xattr values still fit
 * once format 3's 16 more bytes each are added? Errors: -E2BIG (one would
 * not), -errno of listing them. */
CMK_MUST_CHECK int convert_check_xattrs(int fd);
/* Directory dirfd, whose backing name is bname (NULL: the root): its id
 * as a record bound to that name, then its xattrs. */
CMK_MUST_CHECK int convert_dir(struct keyring *kr, int dirfd,
			       const char *bname);
/* Symlink dfd/bname: its target sealed the format-3 way, bound to this
 * place, as a new symlink renamed over it (owner and times kept).
 * Errors: -EBADMSG (the target does not open), -errno. */
CMK_MUST_CHECK int convert_symlink(struct keyring *kr, int rootfd, int dfd,
				   const char *bname);

#endif
