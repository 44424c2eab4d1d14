/* include/cmkfs/linktgt.h — where a symlink's encrypted target lives on
 * disk (doc/FORMAT.md §4.3). One of up to LINKTGT_INLINE_MAX characters is
 * the backing symlink's own target, as cmkfs always stored it; a longer one
 * (plaintext targets of 3,001 … 4,095 bytes) does not fit the kernel's
 * symlink limit and goes to the side file LINKS_DIR/<id> in the root, the
 * backing symlink pointing at LINKTGT_PREFIX + id. The id is random, so
 * each symlink inode has its own side file: renames and hard links leave
 * it alone, and it is removed when the inode's last link goes.
 * No keys: callers encrypt and decrypt. Errors are negative errnos.
 * Thread-safe (no shared state). */
#ifndef CMKFS_LINKTGT_H
#define CMKFS_LINKTGT_H

#include <stdbool.h>
#include <stddef.h>

#include "cmkfs/common.h"
#include "cmkfs/names.h"

/* The longest encrypted target kept in the symlink itself: that of a
 * 3,000-byte plaintext target, the longest earlier versions wrote. */
#define LINKTGT_INLINE_MAX 4032
#define LINKTGT_ID_B64 43			/* 32 random bytes */
#define LINKTGT_MARKER_LEN (sizeof(LINKTGT_PREFIX) - 1 + LINKTGT_ID_B64)

/* 1 if the n bytes of a backing symlink's target have the form of a
 * marker: LINKTGT_PREFIX + LINKTGT_ID_B64 base64url characters. */
int linktgt_is_marker(const char *t, size_t n);

/* 1 if `name` has the form of a side file's name in LINKS_DIR:
 * LINKTGT_ID_B64 base64url characters. */
int linktgt_is_id(const char *name);

/* The side file's name within a linktgt_is_marker() target. */
static inline const char *linktgt_marker_id(const char *marker)
{
	return marker + sizeof(LINKTGT_PREFIX) - 1;
}

/* Make symlink `bname` in dfd whose encrypted target is enc (enc_len
 * characters, base64url). A long one's side file is written (atomically,
 * durably) before the symlink appears, and removed again if the symlink
 * cannot be made. Errors: -ENAMETOOLONG (enc_len > ENCLINK_MAX - 1),
 * -EEXIST, -errno. */
CMK_MUST_CHECK int linktgt_make(int rootfd, int dfd, const char *bname,
				const char *enc, size_t enc_len);

/* linktgt_make() for a temporary name `tmp` that is renamed into place
 * afterwards: the symlink is made first, then the side file (atomically,
 * durably), so that a kill at any point leaves nothing that the
 * temporary does not reach: removing the temporary with linktgt_unlink()
 * (as a full rekey does with the temporaries it finds, doc/FORMAT.md
 * §4.3) or quarantining it (fsck --repair) removes all of it. Errors as
 * linktgt_make(). */
CMK_MUST_CHECK int linktgt_make_tmp(int rootfd, int dfd, const char *tmp,
				    const char *enc, size_t enc_len);
/* linktgt_make_tmp(), then the temporary given the owner and times of
 * `like` (the symlink it is to replace; the owner only as root). */
struct stat;
CMK_MUST_CHECK int linktgt_make_tmp_like(int rootfd, int dfd, const char *tmp,
					 const char *enc, size_t enc_len,
					 const struct stat *like);

/* Unlink dfd/name; when it is a long symlink's last link, its side file
 * goes first (while the entry still names it). For temporaries: a kill in
 * between leaves a dangling temporary, never an orphaned side file.
 * Errors: -errno of unlinkat (the entry stays), or of the side file's
 * removal (the entry stays too). */
CMK_MUST_CHECK int linktgt_unlink(int rootfd, int dfd, const char *name);

/* Remove the entry dfd/name (a symlink in use): a long one is renamed to
 * a temporary first and then removed with linktgt_unlink(), so that a
 * kill leaves a temporary and not a side file with no entry; anything
 * else is just unlinked. Errors: -errno of the rename or unlinkat
 * (-ENOENT: gone already). */
CMK_MUST_CHECK int linktgt_retire(int rootfd, int dfd, const char *name);

/* renameat2(dfd, from, ddfd, to, flags) where `to` may be a long symlink
 * that the rename replaces: its side file stays reachable from a
 * temporary hard link of it across the rename, and goes (side file first)
 * after it. Errors: -errno of renameat2. */
CMK_MUST_CHECK int linktgt_rename_over(int rootfd, int dfd, const char *from,
				       int ddfd, const char *to,
				       unsigned int flags);

/* The encrypted target of symlink dfd/name (name "" : dfd is an O_PATH fd
 * on the symlink) into out (NUL-terminated), its length in *len. With
 * `marker` non-NULL, *marker tells whether it came from a side file.
 * Errors: -ENOENT (the side file is missing), -EBADMSG (a side file too
 * big for a target or a malformed one), -errno of readlinkat. */
CMK_MUST_CHECK int linktgt_read(int rootfd, int dfd, const char *name,
				char *out, size_t cap, size_t *len,
				bool *marker);

/* An entry about to be removed or replaced: pin it with linktgt_pin()
 * before, then linktgt_unpin() after the unlink or rename, which removes
 * the side file of a symlink whose last link went. For anything but a
 * long symlink the pin is empty and unpin does nothing. */
struct linktgt_pin {
	int fd;					/* O_PATH on the symlink, or -1 */
	char marker[LINKTGT_MARKER_LEN + 1];
};
void linktgt_pin(int dfd, const char *bname, struct linktgt_pin *p);
void linktgt_unpin(int rootfd, struct linktgt_pin *p);

/* Remove the side file named by `marker` (a linktgt_is_marker() target),
 * for an engine that deleted the symlink's last link itself.
 * Errors: -EINVAL (not a marker), -errno of unlinkat. */
CMK_MUST_CHECK int linktgt_drop(int rootfd, const char *marker);

/* Replace the content of the side file named by `marker` with another
 * long encrypted target (atomically, durably), in place of the symlink's
 * own: a re-encryption keeps the inode and its hard links.
 * Errors: -EINVAL (not a marker, or enc not long), -errno. */
CMK_MUST_CHECK int linktgt_rewrite(int rootfd, const char *marker,
				   const char *enc, size_t enc_len);

#endif
