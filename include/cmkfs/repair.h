/* include/cmkfs/repair.h — salvage and quarantine for `cmkfs fsck
 * --repair` (doc/OPERATIONS.md "fsck", doc/FORMAT.md §0).
 * Works on the cipher directory of a volume that is NOT mounted (the
 * caller checks): nothing here takes the mount's namespace lock.
 *
 * Salvage: a regular file whose header still opens is copied into a
 * `lost+found` directory made as mkdir on the mount makes one (fresh
 * cmkfs.dirid, encrypted name) — a new file with new DEKs, every block that
 * authenticates copied, every other block written as zeros.
 *
 * Quarantine: a backing object that cannot be read any more (name, header,
 * symlink target, long-name side file, orphaned target side file) is
 * renamed, never deleted, to
 * `cmkfs.quarantine/<run>/<its backing path>` in the cipher directory, next
 * to a copy of its directory's cmkfs.dirid. `cmkfs.` names are invisible
 * on the mount. Not thread-safe: one repair run at a time. */
#ifndef CMKFS_REPAIR_H
#define CMKFS_REPAIR_H

#include <stdbool.h>
#include <stdint.h>

#include "cmkfs/keyring.h"
#include "cmkfs/reserved.h"		/* QUARANTINE_DIR */

#define LOSTFOUND_NAME "lost+found"

struct repair;

/* A repair run on the volume whose cipher directory is `rootfd` (kept, not
 * owned). The quarantine run directory is made on first use. */
CMK_MUST_CHECK int repair_open(int rootfd, struct keyring *kr,
			       struct repair **out);
void repair_close(struct repair *r);	/* NULL-safe */
/* Call tick(arg, bytes) as a salvage copies, about every MiB, with the
 * bytes of the source's backing file read so far (progress within a large
 * file). NULL: none. */
void repair_set_tick(struct repair *r, void (*tick)(void *arg, uint64_t bytes),
		     void *arg);

/* Move dirfd/bname, and its long-name side file if bname is a long name,
 * into the quarantine. The target side file (LINKS_DIR, linktgt.h) of a
 * long symlink moved, itself or anywhere below a directory moved, goes
 * along to <run>/LINKS_DIR/<id> (copied if the symlink has a link left
 * in the volume). `rel_dir` is the backing path of dirfd relative to
 * the cipher root ("" for the root, "a/b" below it). qrel (cap bytes) gets
 * the new path relative to the cipher root. Both directories are synced.
 * Errors: -EEXIST, -errno. */
CMK_MUST_CHECK int repair_quarantine(struct repair *r, int dirfd,
				     const char *rel_dir, const char *bname,
				     char *qrel, size_t cap);

/* The user xattrs of regular file dirfd/bname that fail authentication are
 * removed; with `keep` they are first set, raw, on an empty file
 * `<bname>.xattrs` in the quarantine (qrel gets its path). *n gets how
 * many were removed. Errors: -errno. */
CMK_MUST_CHECK int repair_drop_bad_xattrs(struct repair *r, int dirfd,
					  const char *rel_dir,
					  const char *bname, bool keep,
					  unsigned *n, char *qrel, size_t cap);

struct salvage {
	char name[256];		/* the copy's plaintext name in lost+found */
	uint64_t *lost;		/* plain block numbers written as zeros */
	size_t nlost;
	bool cut;		/* the backing file ends early: whatever
				 * followed the last block kept is lost */
	uint64_t size;		/* plaintext bytes in the copy */
};

/* Copy regular file dirfd/bname into the lost+found directory under topfd
 * (the volume root, or the top of a transient zone), creating it if need
 * be, as described above. The copy keeps the original's mode, owner
 * (when run as root), times and the user xattrs that authenticate; its
 * name is derived from `path` (the plaintext path: '/' becomes '%', ".2",
 * ".3" ... added if taken). The original is not touched. Free *s with
 * repair_salvage_free(). Errors: -EBADMSG / -EKEYREJECTED (header unreadable:
 * nothing to salvage), -ENOTDIR (lost+found is not a directory), -errno. */
CMK_MUST_CHECK int repair_salvage(struct repair *r, int topfd, int dirfd,
				  const char *bname, const char *path,
				  struct salvage *s);
void repair_salvage_free(struct salvage *s);

#endif
