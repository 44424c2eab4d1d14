/* include/cmkfs/linkfsck.h — fsck's check of what binds a format-3
 * regular file to more than one place (doc/FORMAT.md §2 "Location", §2.1):
 *   - every entry of LINKSET_DIR: a file id in hex whose set is authentic
 *     and that a file in the tree names (set mode); a temporary, another
 *     name, a set that fails (forged, or copied from another file id's)
 *     or that no file names (orphaned) is a finding;
 *   - every file whose header names two places or a link set: a slot or
 *     set token naming no name the file has (a rename, link or unlink cut
 *     short by a crash, or an old header put back) is a finding, as is a
 *     file id held by two backing files (a copy put at a name its header
 *     lists, which only such a wider binding lets open).
 * fsck.c feeds it the regular files of its walk (linkfsck_add), asks for
 * the findings after it (linkfsck_judge), reports them and repairs.
 * Memory: one record per name of a file whose binding names two places
 * or more (hard links and crash leftovers), none for the others. Not
 * thread-safe: one per fsck run. */
#ifndef CMKFS_LINKFSCK_H
#define CMKFS_LINKFSCK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#include "cmkfs/header.h"
#include "cmkfs/keyring.h"

struct linkfsck;

enum linkfsck_kind {
	/* in LINKSET_DIR; repair: the entry is set aside */
	LINKFSCK_TMP,		/* leftover temporary of a set's write */
	LINKFSCK_UNKNOWN,	/* a name that is no file id in hex */
	LINKFSCK_BAD,		/* fails its MAC, malformed, another id's */
	LINKFSCK_ORPHAN,	/* authentic, and no file names it */
	/* a file; repair: linkfsck_rebind() */
	LINKFSCK_STALE,		/* names places that hold no name of it */
	/* a file; not repaired: which backing file is the copy is unknown */
	LINKFSCK_SHARED,	/* its id is held by other backing files */
};

struct linkfsck_finding {
	enum linkfsck_kind kind;
	const char *what;		/* one phrase */
	const char *bpath, *ppath;	/* ppath NULL if not known */
	/* LINKSET_DIR kinds: the directory (fd valid during the callback)
	 * and the entry's name in it */
	int dfd;
	const char *name;
	/* LINKFSCK_STALE: the file, for linkfsck_rebind() */
	size_t file;
};

/* Called once per finding; return nothing. */
typedef void (*linkfsck_fn)(const struct linkfsck_finding *f, void *arg);

/* For the volume whose cipher directory is rootfd (kept), at path root
 * (the prefix of every bpath given), unlocked keyring kr. Errors:
 * -ENOMEM. */
CMK_MUST_CHECK int linkfsck_new(int rootfd, struct keyring *kr,
				const char *root, struct linkfsck **out);
void linkfsck_free(struct linkfsck *lf);	/* NULL-safe */

/* Before the walk: the sets present now, the only ones judged as
 * orphans (one a mount makes during the walk is not). Errors: -ENOMEM,
 * -errno of reading LINKSET_DIR (none then is judged as an orphan). */
CMK_MUST_CHECK int linkfsck_sets_load(struct linkfsck *lf);

/* During the walk: regular file bpath (plaintext path ppath or NULL),
 * lstat st, whose format-3 header h was read. located: h opened at this
 * name (cfile_load succeeded); a header that did not still claims its
 * link set. Kept only if h names two places or a set. Errors: -ENOMEM. */
CMK_MUST_CHECK int linkfsck_add(struct linkfsck *lf, const struct header *h,
				bool located, const struct stat *st,
				const char *bpath, const char *ppath);

/* After the walk: every finding to fn. partial: the walk did not reach
 * every directory, so a name may be unseen: no orphan and no stale
 * binding is judged (*unjudged counts them). Errors: -ENOMEM. */
CMK_MUST_CHECK int linkfsck_judge(struct linkfsck *lf, bool partial,
				  linkfsck_fn fn, void *arg,
				  unsigned long *unjudged);

/* Repair of LINKFSCK_STALE file `file` (block size bs): its header is
 * bound to exactly the names the walk found (cfile_keep_names, durable,
 * times kept). Errors: -ESTALE (the file changed since), cfile's,
 * -errno. */
CMK_MUST_CHECK int linkfsck_rebind(struct linkfsck *lf, size_t file,
				   uint32_t bs);

#endif
