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
/* Format 3 (doc/FORMAT.md §4.1): DIRID_FILE is a record binding the id
 * to the directory's place, "CMKD" ‖ 3 ‖ id ‖ slot a ‖ slot b ‖ MAC: the
 * slots hold names_link_token() of the directory's own backing base name
 * (two while a rename is under way), the root's hold the all-0xFF pair. */
#define DIRID_V3_MAGIC "CMKD"
#define DIRID_V3_VERSION 3
#define DIRID_V3_MAC_LEN 16
#define DIRID_V3_LEN (4 + 1 + DIRID_LEN + 2 * NAMES_TOKEN_LEN + DIRID_V3_MAC_LEN)
#define DIRID_RAW_MAX DIRID_V3_LEN

/* dirtree_check_dirid() flags: the record is good, but... */
#define DIRID_F_STALE 1u	/* a second location (an interrupted rename) */
#define DIRID_F_PREV 2u		/* MACed under the previous volume secret */
#define DIRID_F_OLD 4u		/* the bare format-1/2 id (an upgrade runs) */
/* The id of backing directory dirfd (any descriptor, O_PATH too) from its
 * DIRID_FILE; out is untouched on error. `bname` is the directory's own
 * backing base name, NULL for the volume's root. Format 1/2: the 16 bytes
 * as they are. Format 3: the record's MAC is checked (the previous
 * secret's too while a full rekey runs) and bname's token must be in a
 * slot (the root: the 0xFF pair, which no other directory may carry).
 * Errors: -ENOENT (no id file), -EBADMSG (wrong size, malformed, MAC
 * fails: damaged or forged), -EXDEV (an authentic record of another
 * place: moved, copied or swapped there), -EFBIG (longer than a record),
 * -EKEYREVOKED (locked), -errno of opening (-ELOOP: a symlink) or reading
 * it. */
CMK_MUST_CHECK int dirtree_read_dirid(struct keyring *kr, int dirfd,
				      const char *bname,
				      uint8_t out[static DIRID_LEN]);
/* dirtree_read_dirid() that also says (*flags, DIRID_F_*) what a repair
 * or a full rekey would rewrite. flags may be NULL. */
CMK_MUST_CHECK int dirtree_check_dirid(struct keyring *kr, int dirfd,
				       const char *bname,
				       uint8_t out[static DIRID_LEN],
				       unsigned *flags);
/* dirtree_read_dirid() of a directory known by descriptor only: the root
 * if it is rootfd's directory (rootfd < 0: it is not the root), else its backing name is the one its
 * /proc/self/fd link ends with (callers hold off renames of it). */
CMK_MUST_CHECK int dirtree_read_dirid_fd(struct keyring *kr, int rootfd,
					 int dirfd,
					 uint8_t out[static DIRID_LEN]);
/* What a dirtree_read_dirid() error means, for logs and fsck findings. */
const char *dirtree_dirid_why(int rc);
/* The id in dirfd's DIRID_FILE, of either format, NOT checked against its
 * place or MAC: for what only names the directory (an xattr value's
 * owner, which authenticates on its own). Errors: -EBADMSG, -errno. */
CMK_MUST_CHECK int dirtree_dirid_unverified(int dirfd,
					    uint8_t out[static DIRID_LEN]);
/* The DIRID_FILE bytes as they are (len <= DIRID_RAW_MAX), to put back
 * with backing_replace() when an rmdir fails. Errors: as reading it. */
CMK_MUST_CHECK int dirtree_dirid_raw(int dirfd, uint8_t buf[static DIRID_RAW_MAX],
				     size_t *len);

/* Format 3: (re)write directory dirfd's record with the id it has
 * (dirtree_read_dirid() with `bname`, or, when `from` is not NULL, with
 * `from`) bound to `bname` alone (NULL: the root), under the current
 * volume secret. Used by the last step of a move, by a full rekey (every
 * record ends under the new secret) and by repair (a stale second slot).
 * Skipped when the record is that already. The root's is overwritten in
 * place (its inode holds volio_lock_config()'s flock), others replaced
 * by rename. No-op for format 1/2.
 * Errors: as dirtree_read_dirid(), the write's. */
CMK_MUST_CHECK int dirtree_bind_dirid(struct keyring *kr, int dirfd,
				      const char *from, const char *bname);

/* Moving directory `from` of parent pfd to backing name `to` (any
 * parent) keeps its id readable at every step (doc/FORMAT.md §4.1): begin
 * writes {token(from), token(to)} durably into it, the caller renames,
 * end writes {token(to)} (or {token(from)} if the rename failed). A
 * non-directory or a format 1/2 volume makes both no-ops. */
struct dirtree_move {
	int dfd;		/* the directory, or -1: nothing to do */
	char from[ENCNAME_MAX], to[ENCNAME_MAX];
};
/* Errors: -EBADMSG (the id is damaged or foreign: the move is refused),
 * -errno; mv is a no-op for dirtree_move_end() after an error. */
CMK_MUST_CHECK int dirtree_move_begin(struct keyring *kr, int pfd,
				      const char *from, const char *to,
				      struct dirtree_move *mv);
/* Returns what the rewrite gave (a failure leaves the harmless stale slot
 * that fsck --repair drops, and is only logged by callers). */
int dirtree_move_end(struct keyring *kr, struct dirtree_move *mv, bool moved);
/* 1 if the directory holds nothing but its DIRID_FILE, 0 if not. Stale
 * temporaries (TMP_PREFIX, left by a crash) are removed on the way.
 * Errors: -errno from opening it, -ENOMEM. */
CMK_MUST_CHECK int dirtree_is_empty(int dirfd);
/* Make directory `tmp` in parentfd with a fresh DIRID_FILE inside (in
 * format 3 bound to `bname`, the name the caller renames it to), the id
 * on disk before the caller renames the directory into place; then chown
 * (if chown_it) and chmod it. On error nothing is left behind.
 * Errors: -errno of the failing call, -EIO (no randomness),
 * -EKEYREVOKED. */
CMK_MUST_CHECK int dirtree_make(struct keyring *kr, int parentfd,
				const char *tmp, const char *bname,
				mode_t mode, uid_t uid, gid_t gid,
				bool chown_it);
/* The DIRID_FILE bytes for a new directory with id `id` at `bname` (NULL:
 * the root) into buf: DIRID_LEN bytes (format 1/2) or the DIRID_V3_LEN
 * record; *len its length. Errors: -EKEYREVOKED, -EIO. */
CMK_MUST_CHECK int dirtree_dirid_encode(struct keyring *kr,
					const uint8_t id[static DIRID_LEN],
					const char *bname,
					uint8_t buf[static DIRID_RAW_MAX],
					size_t *len);

#endif
