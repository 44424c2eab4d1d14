/* include/cmkfs/cfile.h — contents of one encrypted file (doc/FORMAT.md §3).
 * Owns plain <-> cipher offsets, read-modify-write of partial blocks, the
 * "last block" flag, zero-fill on extension, and a pool of keyed per-file
 * contexts. Knows nothing of FUSE. Calls that change a file's size (or
 * its last block's length) hold cf->rwlock alone; reads, and writes
 * inside the file, share it and hold their blocks in cf->ranges (shared
 * to read, alone to rewrite), so readers and writers of other blocks go
 * on in parallel.
 *
 * Layout: header (HEADER_LEN) then blocks of cb = bs + BLOCK_OVERHEAD bytes;
 * the last block is short. An empty file has one empty block, so cutting a
 * file down to its header is detected too. */
#ifndef CMKFS_CFILE_H
#define CMKFS_CFILE_H

#include <pthread.h>
#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/header.h"
#include "cmkfs/keyring.h"
#include "cmkfs/rangelock.h"
#include "cmkfs/reserved.h"		/* JOURNAL_DIR */

struct cfile;

/* Give the file fresh DEKs (reseal_file with force, include/cmkfs/reseal.h)
 * because its current ones have spent their sealing budget: called by the
 * write paths with no lock of cf held, fd O_RDWR. Returns 0 when the file
 * has fresh DEKs, or had them meanwhile; -errno. */
typedef int (*cfile_rekey_fn)(struct cfile *cf, int fd, void *arg);

struct cfile {
	pthread_rwlock_t rwlock;	/* size: changers alone, others shared */
	struct rangelock ranges;	/* blocks, under rwlock held shared */
	pthread_mutex_t mtx;		/* protects loaded, hdr, pool, seals,
					 * rekey_due */
	bool loaded;
	struct header hdr;
	struct filekeys *pool;		/* idle keyed contexts */
	struct keyring *kr;
	uint32_t bs;
	int path_fd;			/* O_PATH fd naming the backing file in
					 * log lines; owned by the caller */
	int rootfd;			/* the cipher directory's root, for link
					 * sets (linkset.h), or -1; not owned */
	int jfd;			/* the volume's JOURNAL_DIR for truncate
					 * records, or -1 (none kept); not owned */
	/* Sealing budget (doc/FORMAT.md §3.3): blocks sealed under the
	 * current DEKs, counted from above (after a load: all the header
	 * reserves), never past what the header on disk reserves. */
	uint64_t seals;
	bool rekey_due;			/* the budget is spent: re-key first */
	pthread_mutex_t budget_mtx;	/* one header reservation at a time */
	bool reserved;			/* one was made since the load; under
					 * budget_mtx */
	/* Format 3 holes (doc/FORMAT.md §3.4): the last hole verified, so
	 * that reading a big hole opens its record once. Slots hv_lo..hv_e
	 * read as zeros when zero: the record in slot hv_e opened with start
	 * hv_s <= hv_lo. Under mtx; cleared by every change of holes (which
	 * holds rwlock alone). */
	bool hv_ok;
	uint64_t hv_lo, hv_s, hv_e;
	cfile_rekey_fn rekey;		/* NULL: a spent budget fails writes */
	void *rekey_arg;		/* both set by the owner before use */
};

/* No DEK pair seals more than CFILE_SEAL_BUDGET blocks: 2^32 (NIST SP
 * 800-38D §8.3, random 96-bit nonces) less a margin of 2^28 seals (4096
 * units of the header's count) that absorbs counts lost where our
 * assumptions fail: reservations a disk acknowledged but lost in a power
 * cut, a reseal's chunk sealed twice by each crash and recovery of it
 * (doc/SECURITY.md "Nonce budget"). */
#define CFILE_SEAL_LIMIT (1ull << 32)
#define CFILE_SEAL_MARGIN (1ull << 28)
#define CFILE_SEAL_BUDGET (CFILE_SEAL_LIMIT - CFILE_SEAL_MARGIN)
/* Test hook: a lower budget of N seals (CFILE_TEST_BUDGET_MIN ..
 * CFILE_SEAL_BUDGET), and with it a count unit of N / 16 seals (at most
 * HEADER_SEAL_UNIT), so that tests see reservations and re-keys happen. */
#define CFILE_TEST_BUDGET_ENV "CMKFS_TEST_SEAL_BUDGET"
#define CFILE_TEST_BUDGET_MIN 16

/* Test hook: a kill -9 simulated at the entry of the n-th backing change
 * (pwrite, ftruncate or punch of a file's blocks, journal record writes
 * included) from now: it and every later one fail with -ECANCELED, and no
 * undo runs, so the backing file stays as a killed daemon leaves it.
 * 0 turns it off. cfile_test_changes() counts the changes since the last
 * call of cfile_test_crash_at(). Single-threaded tests only. */
void cfile_test_crash_at(long n);
long cfile_test_changes(void);

/* Read CFILE_TEST_BUDGET_ENV once, at the start of the process before any
 * thread: unset or empty keeps CFILE_SEAL_BUDGET. Errors: -EINVAL (not a
 * decimal number in range: the budget stays as it was). */
CMK_MUST_CHECK int cfile_budget_from_env(void);
uint64_t cfile_budget(void);		/* seals per DEK pair */
uint64_t cfile_seal_unit(void);		/* seals per unit of the count */
/* Seals a header with h->seal_units reserves: (units + 1) * unit. */
uint64_t cfile_seal_limit(const struct header *h);
/* The fewest units whose limit covers `seals` (at most
 * HEADER_SEAL_UNITS_MAX). */
uint16_t cfile_units_for(uint64_t seals);
/* Adopt fresh DEKs, committed in header h (on disk), whose contexts fk
 * (transferred) sealed `seals` blocks so far: the reseal's last step. The
 * caller holds cf->rwlock alone. */
void cfile_adopt_keys(struct cfile *cf, const struct header *h,
		      struct filekeys *fk, uint64_t seals);
/* Whether a write found the budget spent and no re-key followed yet. */
bool cfile_rekey_due(struct cfile *cf);

/* Truncate intent records (doc/FORMAT.md §3.1): a shrink that re-seals
 * the new last block first writes that block to JOURNAL_DIR/<file id in
 * hex>, then cuts the file, writes the block, and removes the record. A
 * kill between the cut and the write leaves a torn tail that the record
 * completes (cfile_resolve_truncate), so no fsynced byte is lost. */
#define JOURNAL_NAME_LEN (2 * FILE_ID_LEN)

/* The backing path of cf (from its path_fd) for log lines, in buf. */
const char *cfile_where(const struct cfile *cf, char *buf, size_t cap);
void cfile_init(struct cfile *cf, struct keyring *kr, uint32_t bs,
		int path_fd);
void cfile_destroy(struct cfile *cf);	/* wipes and frees the pool */
/* Free every idle keyed context (after keyring_lock()). */
void cfile_drop_keys(struct cfile *cf);

/* The record of this (loaded) file in the journal directory jfd, if any
 * (doc/FORMAT.md §3.1): a file whose tail authenticates drops it (the
 * shrink either never took effect or completed); a torn tail is completed
 * (pwrite, ftruncate, fsync) unless `dry`, and the record removed, only if
 * the record matches the file's state: the volume's record version, this
 * file's id, a backing length the interrupted shrink can have left, and a
 * block that opens under the file's DEKs as its last block. Any other
 * record is damage: kept, the file left as it is (its tail fails: EIO),
 * and *why (if why is not NULL) gets a phrase saying what does not match.
 * Returns 1 if the record completes (or, dry, would complete) the file, 0
 * if there was none or it was stale, -EBADMSG for a record refused,
 * -errno. */
CMK_MUST_CHECK int cfile_resolve_truncate(struct cfile *cf, int fd, int jfd,
					  bool dry, const char **why);
/* The record name of a file id (JOURNAL_NAME_LEN hex digits + NUL). */
void cfile_journal_name(const uint8_t id[FILE_ID_LEN],
			char out[static JOURNAL_NAME_LEN + 1]);

/* Plain size from a backing file size. Errors: -EBADMSG (impossible size:
 * truncated mid-header or mid-overhead). */
CMK_MUST_CHECK int cfile_plain_size(uint64_t cipher_size, uint32_t bs,
				    uint64_t *plain);
/* Backing size of a file with `plain` bytes. Errors: -EFBIG. */
CMK_MUST_CHECK int cfile_cipher_size(uint64_t plain, uint32_t bs,
				     uint64_t *cipher);

/* Read and parse the header at the start of backing file fd (no keys:
 * unwrapping is the keyring's). Errors: -EBADMSG (short or malformed),
 * -errno of reading it. */
CMK_MUST_CHECK int cfile_read_header(int fd, struct header *h);
/* Write a fresh header and the empty last block to `fd` (a new, empty
 * backing file) that will live at backing base name `bname` (in a
 * format-3 volume the header is bound to it; NULL: bound nowhere, for a
 * file that is never opened by name). */
CMK_MUST_CHECK int cfile_create(struct cfile *cf, int fd, const char *bname);
/* Format 3 (doc/FORMAT.md §2): may header h be read at backing base name
 * `bname`? 0 yes (and always in older formats); CFILE_LOC_* no;
 * -errno. */
#define CFILE_LOC_OLD 1		/* a version-1 header in a format-3 volume */
#define CFILE_LOC_ELSEWHERE 2	/* bound to other locations */
#define CFILE_LOC_NOSET 3	/* its link set is missing or does not match */
CMK_MUST_CHECK int cfile_location(const struct cfile *cf,
				  const struct header *h, const char *bname);
/* Format 3: bind the header of the file open as fd to the base names a
 * and b (b NULL: a alone), its DEKs re-wrapped, under the file's locks.
 * A rename binds {old, new} with `durable` (on disk before the rename:
 * backing_order_data), renames, then binds {new} (doc/FORMAT.md §2,
 * "Location"). A no-op in older formats. Errors: -EMLINK (the file has a
 * link set), -EBADMSG, the keyring's, -errno. */
CMK_MUST_CHECK int cfile_set_slots(struct cfile *cf, int fd, const char *a,
				   const char *b, bool durable);
/* Like cfile_set_slots, but from the slots on disk: `drop`'s token taken
 * out, `add`'s put into a free slot (either may be NULL). Errors: -EMLINK
 * (no free slot, or a link set), as cfile_set_slots. */
CMK_MUST_CHECK int cfile_edit_slots(struct cfile *cf, int fd, const char *add,
				    const char *drop, bool durable);
/* fsck's repair of a binding a crash left wider than the file's names
 * (a slot or link-set token naming no name of it): the header names
 * exactly the n base names `names` (every name the file has): plain slots
 * for two or fewer (a link set is removed once the header is durable),
 * else its link set rewritten with their tokens alone. Times kept, as
 * cfile_set_slots. Errors: -EINVAL (n = 0), -EMLINK, as
 * cfile_set_slots. */
CMK_MUST_CHECK int cfile_keep_names(struct cfile *cf, int fd,
				    const char *const *names, size_t n,
				    bool durable);
/* One phrase for a cfile_location() result, for logs and fsck. */
const char *cfile_location_msg(int rc);
/* Read and unwrap the header through fd, once. In a format-3 volume the
 * header must be bound to the base name cf->path_fd is reached by
 * (cfile_location; a log line says why not). Errors: -EBADMSG (bad
 * header, or bound elsewhere), -EKEYREJECTED, -EKEYREVOKED, -EIO. */
CMK_MUST_CHECK int cfile_load(struct cfile *cf, int fd);

/* Read up to len bytes at off; *got gets the count (short at EOF).
 * Errors: -EBADMSG (a block failed authentication or the file is cut). */
CMK_MUST_CHECK int cfile_read(struct cfile *cf, int fd, uint64_t off,
			      size_t len, uint8_t *out, size_t *got);
/* Write; with `append` the offset is the current size. buf NULL writes
 * zeros. *written_at gets the offset used. */
CMK_MUST_CHECK int cfile_write(struct cfile *cf, int fd, uint64_t off,
			       const uint8_t *buf, size_t len, bool append,
			       uint64_t *written_at);
CMK_MUST_CHECK int cfile_truncate(struct cfile *cf, int fd, uint64_t size);
/* fallocate semantics on plain offsets (mode as fallocate(2)). */
CMK_MUST_CHECK int cfile_fallocate(struct cfile *cf, int fd, int mode,
				   uint64_t off, uint64_t len);
CMK_MUST_CHECK int cfile_size(struct cfile *cf, int fd, uint64_t *plain);
/* lseek(2) SEEK_DATA / SEEK_HOLE on plain offsets, into *res: from the
 * slots of a format-3 file (a hole is verified before it is reported);
 * earlier formats have no holes (all data, the implicit hole at EOF).
 * Errors: -ENXIO (off at or past EOF), -EINVAL (whence), -EBADMSG. */
CMK_MUST_CHECK int cfile_seek(struct cfile *cf, int fd, uint64_t off,
			      int whence, uint64_t *res);
/* Every block of the file checked, as fsck does: bad(arg, b, what) for
 * each damaged slot (a data block that fails authentication, a zero slot
 * no hole record covers, a record that does not open or whose start is
 * wrong). Returns the number of damaged slots, or -errno; *blocks gets the
 * number of slots. */
CMK_MUST_CHECK int cfile_check_blocks(struct cfile *cf, int fd,
				      void (*bad)(void *arg, uint64_t b,
						  const char *what),
				      void *arg, uint64_t *blocks);
/* The same, and tick(arg, done) after each batch of slots read (about
 * 1 MiB), with the slots checked so far: progress within a large file.
 * tick may be NULL. */
CMK_MUST_CHECK int cfile_check_blocks_tick(struct cfile *cf, int fd,
					   void (*bad)(void *arg, uint64_t b,
						       const char *what),
					   void (*tick)(void *arg,
							uint64_t done),
					   void *arg, uint64_t *blocks);
/* Slot b (b < nb - 1: the last block is data, opened with its length) of
 * the file open as fd, with nb blocks, opened as the mount reads it: a
 * data block; in format 3 a slot inside a verified hole (zeros), or the
 * old last block of a growth cut short (doc/FORMAT.md §3.4, "Growth": its
 * bytes, zeros after them). The one place the readers that do not go
 * through cfile_read (reseal, fsck --repair's salvage) learn that rule;
 * a zeroed or altered block stays -EBADMSG. fk: the DEKs the file's
 * blocks and records are under (a reseal passes the old or the new ones).
 * The caller holds cf->rwlock, or has the file to itself. Returns
 * CFILE_SLOT_* with cf->bs bytes in out, or -EBADMSG (damage, logged when
 * a hole does not verify), -EINVAL (the last block), -errno. */
#define CFILE_SLOT_DATA	 0
#define CFILE_SLOT_HOLE	 1
#define CFILE_SLOT_GROWN 2
CMK_MUST_CHECK int cfile_open_slot(struct cfile *cf, struct filekeys *fk,
				   int fd, uint64_t nb, uint64_t b,
				   uint8_t *out);
/* Authenticate the last block, so that a file cut at a block boundary or
 * down to its header is refused at open, not only when its end is read.
 * Errors: -EBADMSG. */
CMK_MUST_CHECK int cfile_check_tail(struct cfile *cf, int fd);

#endif
