/* include/cmkfs/migrate.h — re-encrypt what the name key protects, from
 * the previous generation's name key to the current one, during a full
 * rekey (keyring.h "Full rekey", doc/FORMAT.md §4.5): the entry names of
 * a directory (short and long, with their side files), the targets of the
 * symlinks in it, and the user.* xattrs of its entries. Used by the full
 * rekey engine (maint/rekey.c) and, on a live mount, by the namespace
 * operations that must see a directory whole under one key (fuse/ops.c).
 *
 * Every step is atomic on its own (a rename, a symlink replaced by
 * rename, an xattr set before the old one goes), and each object is
 * readable under one of the two keys at every instant, so a crash
 * anywhere leaves a volume that a rerun finishes. Callers serialise
 * namespace changes of the directory (the mount's ns lock).
 * Errors are negative errnos. */
#ifndef CMKFS_MIGRATE_H
#define CMKFS_MIGRATE_H

#include <stdbool.h>
#include <stdint.h>

#include "cmkfs/keyring.h"
#include "cmkfs/names.h"

struct migrate_stats {
	uint64_t names;		/* entries renamed */
	uint64_t links;		/* symlink targets re-encrypted */
	uint64_t xattrs;	/* xattrs re-encrypted */
	uint64_t bad;		/* opened under neither key (left alone) */
};

struct migrate_cb {
	/* Names only (a namespace operation that needs its directory whole
	 * under one key): targets and xattrs are left to the engine. */
	bool names_only;
	/* Symlink `plain` in dfd is another inode now (its target was
	 * re-encrypted): a mount drops the kernel's entry for it, once it
	 * holds no lock a request takes. May be NULL. */
	void (*replaced)(int dfd, const char *plain, void *arg);
	void *arg;
};

/* Both name keys, or -ENOENT when no full rekey runs (nothing to do). */
struct migrate_keys {
	uint8_t cur[NAME_KEY_LEN];
	uint8_t prev[NAME_KEY_LEN];
	/* format 3: a renamed regular file's header is re-bound to its new
	 * name (doc/FORMAT.md §2), with this keyring */
	struct keyring *kr;
	/* Format 3: targets bound to (directory id, backing name), so a
	 * symlink whose name changes is re-made (doc/FORMAT.md §4.5), and
	 * xattr values bound to their owner's id. */
	bool v3;
};
CMK_MUST_CHECK int migrate_keys_get(struct keyring *kr, struct migrate_keys *k);
void migrate_keys_wipe(struct migrate_keys *k);

/* Re-encrypt every entry of directory dfd (an O_RDONLY fd; its id is
 * dirid) still under the previous key: xattrs, symlink target, then the
 * name. Unless names_only, temporaries a crash left (TMP_PREFIX; in the
 * root only those older than a minute) are removed first: they hold
 * data under the old keys. rootfd is the cipher directory's root (long symlink targets).
 * Entries that open under neither key are counted in st->bad and left.
 * Returns 0 or the first error that stopped it. */
CMK_MUST_CHECK int migrate_dir(const struct migrate_keys *k, int rootfd,
			       int dfd, const uint8_t dirid[static DIRID_LEN],
			       const struct migrate_cb *cb,
			       struct migrate_stats *st);
/* The user.* xattrs of one object (any fd, O_PATH too). In format 3
 * their owner id is read from the object: a regular file's header, a
 * directory's DIRID_FILE. */
CMK_MUST_CHECK int migrate_xattrs(const struct migrate_keys *k, int fd,
				  struct migrate_stats *st);
/* How many entries of dfd, xattrs and targets are still under the
 * previous key (a verify pass). */
CMK_MUST_CHECK int migrate_count_old(const struct migrate_keys *k, int rootfd,
				     int dfd,
				     const uint8_t dirid[static DIRID_LEN],
				     uint64_t *old);

/* Remove temporary dfd/name that a crash left (dir: a directory of a cut
 * mkdir, holding only its id), a long symlink's with its side file.
 * Best effort: what stays, fsck names. Only where nothing is in flight. */
void migrate_drop_tmp(int rootfd, int dfd, const char *name, bool dir);

#endif
