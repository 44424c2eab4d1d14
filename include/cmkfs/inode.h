/* include/cmkfs/inode.h — the daemon's inode table (libfuse
 * example/passthrough_ll.c style): one struct per backing object, keyed by
 * (st_dev, st_ino), holding an O_PATH descriptor that follows the object
 * across renames, the kernel's lookup count, a directory's id and a regular
 * file's cfile. */
#ifndef CMKFS_INODE_H
#define CMKFS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/stat.h>

struct fuse_session;

#include "cmkfs/cfile.h"
#include "cmkfs/gate.h"
#include "cmkfs/keyring.h"
#include "cmkfs/names.h"
#include "cmkfs/reseal.h"

struct inode {
	int fd;			/* O_PATH|O_NOFOLLOW; immutable */
	dev_t dev;		/* immutable */
	ino_t ino;		/* immutable */
	mode_t type;		/* S_IFMT bits; immutable */
	uint64_t nlookup;	/* protected by fsctx.mtx */
	struct inode *hnext;	/* protected by fsctx.mtx */
	bool have_dirid;	/* protected by fsctx.mtx */
	uint32_t names_gen;	/* a full rekey of this KEK generation
				 * re-encrypted this directory's names;
				 * protected by fsctx.ns */
	uint8_t dirid[DIRID_LEN];
	struct cfile cf;	/* regular files */
	/* Format-3 symlinks: where the last lookup found it (its target is
	 * bound to that), for readlink and getattr, which name no parent;
	 * protected by fsctx.mtx */
	bool have_loc;
	struct names_loc loc;
	/* The descriptor bound (doc/DESIGN.md, "Descriptor bound"): the
	 * inodes the kernel holds, least recently looked up last, and where
	 * the kernel last found each (the FUSE node id of its directory and
	 * its plaintext name, malloc'd; 0/NULL for an inode the kernel was
	 * never given), so that the reclaimer can make the kernel drop it;
	 * open handles (such an inode is not worth dropping). All protected
	 * by fsctx.mtx. */
	struct inode *lru_prev, *lru_next;
	uint64_t where_parent;
	char *where_name;
	uint32_t nopen;
};

/* An open file or directory (the FUSE fh), on its fsctx's list so that the
 * ones the kernel never releases are freed at teardown: RELEASE and
 * RELEASEDIR are sent in the background, and an unmount or an aborted
 * connection drops those still queued (and those of descriptors still
 * open). `free` closes and frees the handle. */
struct handle {
	struct handle *prev, *next;	/* protected by fsctx.hmtx */
	void (*free)(struct handle *h);
};

struct fsctx {
	struct keyring *kr;
	uint32_t bs;
	char cipherdir[4096];
	struct inode root;
	pthread_mutex_t mtx;	/* inode table */
	pthread_mutex_t ns;	/* serialises namespace changes */
	struct inode **hash;
	size_t nhash;
	size_t ninodes;		/* in hash, i.e. known to the kernel; mtx */
	bool is_root;		/* daemon runs as uid 0: chown new objects */
	struct fuse_session *se;	/* for cache invalidation; set once */
	int jfd;		/* JOURNAL_DIR (cfile.h) or -1; set once */
	bool no_xattr;		/* --no-xattr; set once */
	/* --writeback: asked for at mount; op_init leaves it true only if
	 * the kernel granted FUSE_CAP_WRITEBACK_CACHE (before any open) */
	bool writeback;
	pthread_mutex_t hmtx;	/* open handles */
	struct handle handles;	/* list head; hmtx */
	size_t nhandles;	/* hmtx */
	struct gate reads;	/* READs in flight, drained by a lock */
	struct reseal_budget budget;	/* re-keys of files whose DEKs spent
					 * their sealing budget */
	/* Descriptor bound: the LRU list (most recent first; fs->mtx) and
	 * the reclaimer thread, which asks the kernel to drop entries when
	 * ninodes passes `high`, down to `low` (doc/DESIGN.md). */
	struct inode *lru_head, *lru_tail;
	struct {
		pthread_t thread;
		pthread_cond_t wake;	/* with mtx: work to do, or stop */
		pthread_cond_t done;	/* with mtx: a batch was sent */
		bool started, stop, urgent;
		bool no_prune;		/* kernel < 6.16; reclaimer only */
		size_t high, low;	/* set once, before the thread */
		unsigned long nofile;	/* RLIMIT_NOFILE seen at start */
		uint64_t batches, sent;	/* mtx */
		long long last_warn;	/* monotonic s of the last EMFILE log */
	} rc;
};

CMK_MUST_CHECK int inode_table_init(struct fsctx *fs, const char *cipherdir,
				    struct keyring *kr);
void inode_table_destroy(struct fsctx *fs);
/* The FUSE node id of the inode for backing (dev, ino), or 0 if the kernel
 * does not know it. No reference is taken: for cache notifications only. */
uint64_t inode_nodeid(struct fsctx *fs, dev_t dev, ino_t ino);
/* After keyring_lock(): wipe every file's keyed contexts, wait for the READs
 * in flight (their replies must not fill pages after the drop), and make
 * the kernel drop its cached pages and attributes of every inode. */
void inode_on_lock(struct fsctx *fs);

/* Find or add the inode for backing fd `fd` (O_PATH, taken over on success
 * whether a new inode was made or not) and add `n` lookups. */
CMK_MUST_CHECK int inode_get(struct fsctx *fs, int fd, const struct stat *st,
			     uint64_t n, struct inode **out);
/* How many inodes the kernel holds lookups on (the root not counted). */
size_t inode_count(struct fsctx *fs);
/* Put an open handle on the list (`free` set by the caller) / take it off
 * and free it (its RELEASE, or a reply the kernel did not take).
 * inode_table_destroy drops those left. */
void inode_handle_add(struct fsctx *fs, struct handle *h);
void inode_handle_drop(struct fsctx *fs, struct handle *h);
/* How many handles are open (not yet released). */
size_t inode_handle_count(struct fsctx *fs);
/* Drop n lookups; frees at zero. */
void inode_forget(struct fsctx *fs, struct inode *in, uint64_t n);
/* A full rekey's step for regular file dfd/name on this mount:
 * reseal_batch_add() on its inode's cfile (the inode found or made, and
 * held until the batch is written), so the mount's readers and writers of
 * that file wait for it and then use the new keys. Returns as
 * reseal_batch_add(). */
struct reseal_batch;
CMK_MUST_CHECK int inode_reseal(struct fsctx *fs, int dfd, const char *name,
				struct reseal_batch *b);
/* Record where symlink inode `in` was found (inode_loc_get() reads it). */
void inode_loc_set(struct fsctx *fs, struct inode *in,
		   const struct names_loc *loc);
/* Errors: -ENOENT (never recorded). */
CMK_MUST_CHECK int inode_loc_get(struct fsctx *fs, struct inode *in,
				 struct names_loc *loc);
/* A format-3 rename of a symlink re-made it as backing symlink newfd
 * (O_PATH, taken over; st its attributes) at `loc`: the kernel's inode of
 * the old backing symlink (dev, ino), if it has one, follows it (its fd
 * is replaced by dup3(), atomically for users of it). */
void inode_rebind(struct fsctx *fs, dev_t dev, ino_t ino, int newfd,
		  const struct stat *st, const struct names_loc *loc);
/* Descriptor bound (doc/DESIGN.md, "Descriptor bound"). */
/* Record that the kernel now knows `in` as `name` in directory node
 * `parent` (a lookup, create, link or rename) and count it as used. */
void inode_where_set(struct fsctx *fs, struct inode *in, uint64_t parent,
		     const char *name);
/* The same for the inode of backing (dev, ino), if there is one. */
void inode_where_move(struct fsctx *fs, dev_t dev, ino_t ino,
		      uint64_t parent, const char *name);
/* An open handle of `in` made (+1) or released (-1). */
void inode_opened(struct fsctx *fs, struct inode *in, int delta);
/* Derive the watermarks from RLIMIT_NOFILE (or CMKFS_MAX_INODES) and start
 * the reclaimer thread; it asks the kernel (fs->se) to drop entries. From
 * the FUSE init callback. Errors: -EAGAIN (no thread: no bound). */
CMK_MUST_CHECK int inode_reclaim_start(struct fsctx *fs);
/* Stop and join it; idempotent. Only once the session no longer serves
 * requests (a notification may wait for a request in flight). */
void inode_reclaim_stop(struct fsctx *fs);
/* At or above the high watermark: READDIRPLUS then lists names without
 * attributes, so that a listing makes no inodes. */
bool inode_full(struct fsctx *fs);
/* Out of descriptors (EMFILE/ENFILE): wake the reclaimer and wait for it
 * a bounded time (at most about a second), for a second try. */
void inode_reclaim_wait(struct fsctx *fs);
/* At 3/2 of the high watermark, with FUSE_NOTIFY_PRUNE (which waits for
 * no request): wait for the reclaimer up to 50 ms, so that lookups do not
 * outrun it. Not with entry invalidation, which may be waiting for the
 * caller's own directory. */
void inode_throttle(struct fsctx *fs);
/* The second try failed too: a rate-limited error naming the limit.
 * Keeps errno. */
void inode_nofile_log(struct fsctx *fs, const char *what);

/* A directory's id, read from its DIRID_FILE once. Errors: -EBADMSG. */
CMK_MUST_CHECK int inode_dirid(struct fsctx *fs, struct inode *in,
			       uint8_t dirid[static DIRID_LEN]);

#endif
