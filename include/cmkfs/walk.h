/* include/cmkfs/walk.h — the one reader of backing directories: the entries
 * of one directory, each classified by its backing name (reserved.h), or a
 * recursive walk of the cipher tree below a directory. Directory fds are
 * the caller's (O_PATH ones too): each read opens its own stream with
 * openat(dfd, "."), so a caller's fd offset is never moved, and closes it
 * before returning. No keys, no name decryption: callers decrypt.
 * Errors are negative errnos. Thread-safe (no shared state). */
#ifndef CMKFS_WALK_H
#define CMKFS_WALK_H

#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/common.h"

/* What a backing name is; each entry has exactly one class. "." and ".."
 * are never passed on. */
enum walk_class {
	WALK_NAME = 1u << 0,	 /* not reserved: an encrypted name */
	WALK_LONGNAME = 1u << 1, /* LONGNAME_PREFIX + hash: an entry whose
				  * encrypted name is in its side file */
	WALK_SIDE = 1u << 2,	 /* a reserved name ending in LONGNAME_SUFFIX */
	WALK_DIRID = 1u << 3,	 /* DIRID_FILE */
	WALK_TMP = 1u << 4,	 /* TMP_PREFIX: an operation in flight */
	WALK_RESERVED = 1u << 5, /* any other reserved name (the root's
				  * VOLUME_FILE, JOURNAL_DIR, ...) */
};
/* The entries of the plaintext tree: what a listing shows. */
#define WALK_ENTRIES (WALK_NAME | WALK_LONGNAME)
#define WALK_ALL                                                             \
	(WALK_NAME | WALK_LONGNAME | WALK_SIDE | WALK_DIRID | WALK_TMP |       \
	 WALK_RESERVED)

/* Flags. WALK_F_TYPE: resolve DT_UNKNOWN with fstatat (no symlink
 * followed); an entry gone meanwhile is skipped. WALK_F_PATH: walk_tree()
 * builds walk_entry.path. WALK_F_SKIP_ERRORS: a directory whose stream
 * fails midway counts as read up to there, and walk_tree() passes by a
 * subdirectory that cannot be opened or is deeper than max_depth. */
#define WALK_F_TYPE 1u
#define WALK_F_PATH 2u
#define WALK_F_SKIP_ERRORS 4u

/* walk_tree() directories deeper than this are refused (-ELOOP). */
#define WALK_DEPTH_MAX 2048

struct walk_entry {
	int dfd;		/* the directory being read: an O_RDONLY fd,
				 * valid during the callback only */
	const char *name;	/* backing name */
	unsigned cls;		/* one enum walk_class */
	unsigned char type;	/* DT_*; DT_UNKNOWN unless resolved */
	ino_t ino;
	int depth;		/* walk_tree(): 0 for the root's entries */
	const char *path;	/* walk_tree() with WALK_F_PATH: backing path
				 * relative to the root ("a/b"); else NULL */
};

/* Return 0 to go on, > 0 to stop the walk (which returns that value),
 * < 0 to stop it with that error. */
typedef int (*walk_fn)(const struct walk_entry *e, void *arg);

/* The class of backing name `name` (never "." or ".."). Pure. */
unsigned walk_classify(const char *name);

/* Call fn for each entry of directory dfd whose class is in `want`, in
 * readdir order; `flags`: WALK_F_TYPE, WALK_F_SKIP_ERRORS. Entries created
 * or removed during the walk (by fn too) may or may not be seen, as with
 * readdir(3).
 * Returns 0 when every entry was seen, fn's nonzero value, or -errno of
 * opening or reading the directory. */
CMK_MUST_CHECK int walk_entries(int dfd, unsigned want, unsigned flags,
				walk_fn fn, void *arg);

struct walk_tree_cb {
	unsigned want;		/* classes visited; directories among them
				 * are descended into */
	unsigned flags;		/* WALK_F_*: WALK_F_TYPE is implied */
	int max_depth;		/* deepest directory read (root = 0); 0 or
				 * more than WALK_DEPTH_MAX: WALK_DEPTH_MAX */
	/* Each entry of a wanted class first, before its type is resolved
	 * or its path built (e->path NULL): 0 visits it, WALK_SKIP passes
	 * it by, any other value stops the walk. May be NULL (visit all). */
	walk_fn filter;
	/* Each entry that is not a directory. May be NULL. */
	walk_fn file;
	/* Each directory before it is entered: 0 enters it, WALK_SKIP
	 * passes it by, any other value stops the walk. May be NULL. */
	walk_fn enter;
	/* Each directory `enter` let in, after its walk, whatever its
	 * result (e->path is the directory's own). May be NULL. */
	void (*leave)(const struct walk_entry *e, void *arg);
	void *arg;
};
#define WALK_SKIP 1

/* Walk the tree below directory rootfd depth first. For each entry of a
 * wanted class: cb->filter, then its path is built and its type resolved
 * (an entry gone meanwhile is passed by), then cb->file, or cb->enter, the
 * walk below it and cb->leave. A subdirectory is opened without following
 * symlinks; one gone or replaced meanwhile is passed by. The recursion is
 * bounded by max_depth; its frames are small (no path buffers).
 * Returns 0, a callback's nonzero value, -ENAMETOOLONG (WALK_F_PATH: a
 * path longer than PATH_MAX), -ELOOP (nested deeper than max_depth), or
 * -errno of reading a directory; without WALK_F_SKIP_ERRORS the first
 * error stops the walk. */
CMK_MUST_CHECK int walk_tree(int rootfd, const struct walk_tree_cb *cb);

#endif
