/* include/cmkfs/reseal.h — give one encrypted file fresh DEKs and re-seal
 * every block under them, in place (doc/FORMAT.md §3.2): the step a full
 * rekey (`cmkfs cmk enable`, `cmkfs rekey --full`) takes for every file,
 * and the one a file takes before its DEKs reach their sealing budget.
 *
 * In place, so that the inode, its hard links and every descriptor open on
 * it stay what they are. Crash safety comes from a reseal record: before a
 * chunk of re-sealed blocks overwrites the old ones, the record holds the
 * old and the new header and that chunk, synced; the new header is written
 * last. A kill or power cut at any point leaves a file whose header is the
 * old or the new one, each block sealed under the old or the new DEKs —
 * or torn, and then completed from the record — and reseal_recover
 * finishes it. The caller holds nothing: reseal_file takes the file's
 * size lock alone for the whole file, so a live mount's readers and
 * writers of that file wait (and see the old or the new keys, never a
 * mix). */
#ifndef CMKFS_RESEAL_H
#define CMKFS_RESEAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cmkfs/cfile.h"

/* Records are JOURNAL_DIR entries named RESEAL_PREFIX + anything. */
#define RESEAL_PREFIX "reseal."

/* An open reseal record (one writer at a time). */
struct reseal_slot {
	int jfd;		/* JOURNAL_DIR, not owned */
	int fd;			/* the record, owned */
	char name[64];
};

/* Create (or reuse) the record JOURNAL_DIR/RESEAL_PREFIX<tag>, durably
 * named. Errors: -errno. */
CMK_MUST_CHECK int reseal_slot_open(struct reseal_slot *s, int jfd,
				    const char *tag);
/* Close it; `remove` unlinks it (nothing in flight any more). */
void reseal_slot_close(struct reseal_slot *s, bool remove);

/* Give the loaded-or-not file cf (backing fd, O_RDWR) fresh DEKs under the
 * keyring's current generation and re-seal all its blocks, unless its
 * header is already current and !force. Returns 1 if re-sealed, 0 if
 * nothing was to do. Errors: -EBADMSG (a block opens under neither key:
 * the file is damaged; nothing of it was changed only if no chunk was
 * written yet — fsck says which block), -EKEYREJECTED (header does not
 * open), -EKEYREVOKED, -errno of I/O. */
CMK_MUST_CHECK int reseal_file(struct cfile *cf, int fd,
			       struct reseal_slot *s, bool force);

/* Small files are re-sealed in batches: up to RESEAL_BATCH_FILES files
 * (and RESEAL_CHUNK_BYTES of blocks) go through one record holding each
 * whole, synced once, then are written in place and synced at once
 * (syncfs) — two syncs per batch instead of two per file. Each queued
 * file stays locked alone until its batch is flushed: callers flush
 * before they take any lock a request may hold while it waits for a file
 * (the mount's namespace lock). */
#define RESEAL_BATCH_FILES 64
struct reseal_item;
struct reseal_batch {
	struct reseal_slot *s;
	struct reseal_item *it;
	size_t n, bytes;
	uint64_t files;		/* committed so far */
};
CMK_MUST_CHECK int reseal_batch_init(struct reseal_batch *b,
				     struct reseal_slot *s);
/* Queue file cf / fd (as reseal_file: unless current and !force); a file
 * too big for a batch is re-sealed at once, alone (the batch flushed
 * first). release(ctx) is called once the file is done with (flushed,
 * failed or nothing to do), so the caller can close fd and free cf.
 * Returns 1 (queued or done), 0 (nothing to do), or -errno (the file's,
 * or a flush's). */
CMK_MUST_CHECK int reseal_batch_add(struct reseal_batch *b, struct cfile *cf,
				    int fd, bool force,
				    void (*release)(void *ctx), void *ctx);
/* Write out what is queued. On error every queued file is released with
 * its cached keys dropped, and the record kept for recovery. */
CMK_MUST_CHECK int reseal_batch_flush(struct reseal_batch *b);
void reseal_batch_destroy_items(struct reseal_batch *b);
/* Release anything still queued (after an error) and free. */
void reseal_batch_destroy(struct reseal_batch *b);

/* The file ids a record names (up to max), *n of them. Returns 1 if any,
 * 0 if the record is empty (nothing in flight), -EBADMSG if malformed. */
CMK_MUST_CHECK int reseal_record_ids(int jfd, const char *name,
				     uint8_t (*ids)[FILE_ID_LEN], size_t max,
				     size_t *n);
/* The first of them. */
CMK_MUST_CHECK int reseal_record_id(int jfd, const char *name,
				    uint8_t id[static FILE_ID_LEN]);
/* Finish the reseal that record `name` of jfd describes, on the file cf /
 * fd whose id it names (found by the caller): blocks under the old DEKs
 * are re-sealed, torn ones restored from the record, then the new header
 * written and the record emptied. A record whose headers are not the
 * file's (stale: the file was re-sealed again or changed since) is just
 * emptied. With `dry` nothing is written. Returns 1 if the file was (or,
 * dry, would be) completed, 0 if the record was stale. Errors: -EBADMSG
 * (a block opens under neither key and the record cannot restore it),
 * -errno. */
CMK_MUST_CHECK int reseal_recover(struct cfile *cf, int fd, int jfd,
				  const char *name, bool dry);

/* The re-key a live mount's write paths ask for when a file's DEKs have
 * spent their sealing budget (cfile_rekey_fn, doc/FORMAT.md §3.3): one
 * record slot, RESEAL_PREFIX "budget" in the file's JOURNAL_DIR, opened at
 * the first use; one re-key at a time. */
struct reseal_budget {
	pthread_mutex_t mtx;
	struct reseal_slot slot;	/* fd -1 until the first re-key */
	uint64_t rekeys;		/* done; under mtx */
};

void reseal_budget_init(struct reseal_budget *b);
/* Close the slot, removing its record unless one is left in flight. */
void reseal_budget_destroy(struct reseal_budget *b);
/* A cfile_rekey_fn (arg: the struct reseal_budget): re-seal cf under
 * fresh DEKs unless another writer did meanwhile, and log it. Errors:
 * those of reseal_file, -EFBIG (no journal directory to keep the record
 * in: the file is not re-keyed). */
CMK_MUST_CHECK int reseal_budget_rekey(struct cfile *cf, int fd, void *arg);

/* Plain bytes whose re-sealed blocks go through the record at once: each
 * chunk costs two fdatasync, so bigger chunks run closer to the disk's
 * speed, at the price of memory (two chunk buffers) and record size. */
#define RESEAL_CHUNK_BYTES (4u << 20)

#endif
