/* src/cipherdir/reseal.c — fresh DEKs for one file, every block re-sealed
 * in place through a reseal record (include/cmkfs/reseal.h,
 * doc/FORMAT.md §3.2). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/log.h"
#include "cmkfs/par.h"
#include "cmkfs/reseal.h"
#include "cmkfs/secmem.h"

/* Record: magic ‖ old header ‖ new header ‖ b0 (8) ‖ n (4) ‖ clen (8) ‖
 * the chunk's blocks sealed under the new DEKs (clen bytes). Empty: no
 * reseal in flight. Big-endian. */
#define REC_MAGIC "CMKFSRS1"
/* A batch of small files, each whole: magic ‖ count (4) ‖ count × (old
 * header ‖ new header ‖ block count (8) ‖ clen (8) ‖ the file's blocks
 * under the new DEKs (clen bytes)). */
#define BATCH_MAGIC "CMKFSRS2"
#define BENT_FIXED (2 * HEADER_LEN + 8 + 8)
#define REC_OLD 8
#define REC_NEW (REC_OLD + HEADER_LEN)
#define REC_CHUNK (REC_NEW + HEADER_LEN)	/* b0, n, clen */
#define REC_DATA (REC_CHUNK + 8 + 4 + 8)

static void put_be(uint8_t *p, uint64_t x, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * (n - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t x = 0;

	for (int i = 0; i < n; i++)
		x = x << 8 | p[i];
	return x;
}

int reseal_slot_open(struct reseal_slot *s, int jfd, const char *tag)
{
	int rc;

	s->jfd = jfd;
	snprintf(s->name, sizeof(s->name), "%s%s", RESEAL_PREFIX, tag);
	s->fd = openat(jfd, s->name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
		       0600);
	if (s->fd < 0)
		return -errno;
	/* A record left by a crash is the caller's to recover first; one
	 * opened here is named durably once, then reused per file. */
	rc = backing_fsync_dir(jfd);
	if (rc < 0) {
		close(s->fd);
		s->fd = -1;
	}
	return rc;
}

void reseal_slot_close(struct reseal_slot *s, bool remove)
{
	if (s->fd < 0)
		return;
	close(s->fd);
	s->fd = -1;
	if (remove)
		(void)unlinkat(s->jfd, s->name, 0);
}

/* One pass over a file whose blocks are under the old or the new DEKs.
 * The crypto of a chunk is split over the worker pool (par.h), each part
 * with its own keyed contexts and scratch. */
struct part {
	struct filekeys *ofk, *nfk;	/* ofk may be NULL (recovery) */
	uint8_t *tmp, *pt;
	uint64_t resealed, restored;
	bool changed;
	int err;
};

struct run {
	struct cfile *cf;
	int fd;
	int rfd;			/* record to write, or -1 (dry) */
	struct filekeys *ofk, *nfk;	/* part 0's; ofk may be NULL */
	const struct header *oh, *nh;	/* for the other parts' contexts */
	uint64_t size, nb;
	size_t cb;
	uint8_t *ct, *out;
	uint64_t b0;			/* the chunk being worked on */
	struct part part[PAR_MAX];
	unsigned parts;
	bool holes;			/* format 3: slots may be holes */
	/* recovery: the chunk the record holds */
	uint64_t rb0, rn;
	const uint8_t *rct;
	size_t rclen;
	uint64_t resealed, restored;
	/* The new header goes out with the last chunk's blocks, in the same
	 * sync (the record, synced before, holds both headers): one sync
	 * per file less. Set by the caller, hdr_done by put_chunk. */
	const struct header *put_hdr;
	bool hdr_done;
};

static size_t blk_len(const struct run *r, uint64_t b)
{
	return (b == r->nb - 1 ? r->size - b * r->cf->bs : r->cf->bs) +
	       BLOCK_OVERHEAD;
}

static bool opens(struct filekeys *fk, uint64_t b, bool last, const uint8_t *p,
		  size_t len, struct part *pp)
{
	if (fk == NULL)
		return false;
	memcpy(pp->tmp, p, len);	/* block_open clobbers its input */
	return block_open(&fk->bc, b, last, pp->tmp, len, pp->pt) == 0;
}

static bool zeros(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Slot b of the file as a growth cut short leaves it, under fk
 * (cfile_open_slot): its plaintext into pt. */
static bool grown(struct run *r, struct filekeys *fk, uint64_t b, uint8_t *pt)
{
	return fk != NULL && cfile_open_slot(r->cf, fk, r->fd, r->nb, b, pt) ==
				 CFILE_SLOT_GROWN;
}

/* A hole record (format 3, doc/FORMAT.md §3.4) re-sealed like a block:
 * kept (opens under the new DEKs), re-sealed (old), or restored from the
 * record; the rest of the slot is zero in all three. 1 if handled, 0 if
 * it opens under none, -errno. */
static int hole_part(struct run *r, struct part *pp, uint64_t b,
		     const uint8_t *p, uint8_t *o)
{
	uint64_t start;

	memset(o, 0, r->cb);
	if (block_open_hole(&pp->nfk->bc, b, p, &start) == 0) {
		memcpy(o, p, BLOCK_HOLE_LEN);
		return 1;
	}
	pp->changed = true;
	if (pp->ofk != NULL &&
	    block_open_hole(&pp->ofk->bc, b, p, &start) == 0) {
		pp->resealed++;
		return block_seal_hole(&pp->nfk->bc, b, start, o) < 0 ? -EIO :
									 1;
	}
	if (r->rct != NULL && b >= r->rb0 && b - r->rb0 < r->rn &&
	    (b - r->rb0 + 1) * r->cb <= r->rclen &&
	    block_open_hole(&pp->nfk->bc, b, r->rct + (b - r->rb0) * r->cb,
			    &start) == 0) {
		memcpy(o, r->rct + (b - r->rb0) * r->cb, BLOCK_HOLE_LEN);
		pp->restored++;
		return 1;
	}
	return 0;
}

/* Blocks [lo, hi) of the chunk: each is kept (new), re-sealed (old), or
 * restored from the record (torn). pp->changed says if any must be
 * written. In format 3, a zero slot (inside a hole) stays zero and a
 * hole record is re-sealed as one; whether they cover their hole is
 * checked where they are read, not here. */
static int chunk_part(size_t lo, size_t hi, unsigned k, void *arg)
{
	struct run *r = arg;
	struct part *pp = &r->part[k];
	char wbuf[4096];

	for (size_t i = lo; i < hi; i++) {
		uint64_t b = r->b0 + i;
		bool last = b == r->nb - 1;
		size_t len = blk_len(r, b);
		const uint8_t *p = r->ct + i * r->cb;
		uint8_t *o = r->out + i * r->cb;

		if (r->holes && !last && zeros(p + BLOCK_HOLE_LEN,
					       len - BLOCK_HOLE_LEN)) {
			int hrc = 1;

			if (zeros(p, BLOCK_HOLE_LEN))
				memset(o, 0, len);
			else
				hrc = hole_part(r, pp, b, p, o);
			if (hrc < 0) {
				pp->err = hrc;
				return hrc;
			}
			if (hrc == 1)
				continue;
		}
		if (opens(pp->nfk, b, last, p, len, pp)) {
			memcpy(o, p, len);
			continue;
		}
		pp->changed = true;
		if (opens(pp->ofk, b, last, p, len, pp)) {
			pp->err = block_seal(&pp->nfk->bc, b, last, pp->pt,
					     len - BLOCK_OVERHEAD, o);
			if (pp->err < 0)
				return pp->err;
			pp->resealed++;
			continue;
		}
		/* The record is the cipher directory's, as hostile as any
		 * of its bytes: its block must lie inside it and open as
		 * this file's block b under the new DEKs. */
		if (r->rct != NULL && b >= r->rb0 && b - r->rb0 < r->rn &&
		    (b - r->rb0) < r->rclen / r->cb + 1 &&
		    (b - r->rb0) * r->cb + len <= r->rclen &&
		    opens(pp->nfk, b, last, r->rct + (b - r->rb0) * r->cb, len,
			  pp)) {
			memcpy(o, r->rct + (b - r->rb0) * r->cb, len);
			pp->restored++;
			continue;
		}
		/* The old last block of a growth cut short reads as its
		 * bytes and zeros (doc/FORMAT.md §3.4, "Growth"): sealed
		 * again as the full block it reads as, which heals the
		 * shape. The rest of its file is still under the old DEKs
		 * (chunks are written in order, and its hole comes after
		 * it), or all under the new ones past the commit. */
		if (r->holes && !last &&
		    (grown(r, pp->ofk, b, pp->pt) ||
		     grown(r, pp->nfk, b, pp->pt))) {
			pp->err = block_seal(&pp->nfk->bc, b, false, pp->pt,
					     r->cf->bs, o);
			if (pp->err < 0)
				return pp->err;
			pp->resealed++;
			continue;
		}
		log_err("%s: block %llu opens under neither the old nor the "
			"new keys of its reseal",
			cfile_where(r->cf, wbuf, sizeof(wbuf)),
			(unsigned long long)b);
		pp->err = -EBADMSG;
		return pp->err;
	}
	return 0;
}

/* The record's chunk, synced, then the blocks in place, synced: a chunk
 * torn by a power cut is whole in the record. */
static int put_chunk(struct run *r, uint64_t b0, uint64_t n, size_t clen,
		     uint64_t off)
{
	uint8_t h[REC_DATA - REC_CHUNK];
	int rc;

	put_be(h, b0, 8);
	put_be(h + 8, n, 4);
	put_be(h + 12, clen, 8);
	/* A batch record being recovered already holds every block of the
	 * file (r->rfd < 0): it stays as it is until all its files are done. */
	rc = r->rfd < 0 ? 0 : backing_pwrite_full(r->rfd, h, sizeof(h),
						    REC_CHUNK);
	if (rc == 0 && r->rfd >= 0)
		rc = backing_pwrite_full(r->rfd, r->out, clen, REC_DATA);
	if (rc == 0 && r->rfd >= 0 && fdatasync(r->rfd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = backing_pwrite_full(r->fd, r->out, clen, (off_t)off);
	if (rc == 0 && r->put_hdr != NULL && b0 + n == r->nb) {
		uint8_t hb[HEADER_LEN];

		header_serialize(r->put_hdr, hb);
		rc = backing_pwrite_full(r->fd, hb, sizeof(hb), 0);
		r->hdr_done = rc == 0;
	}
	if (rc == 0 && fdatasync(r->fd) < 0)
		rc = -errno;
	return rc;
}

/* Parts beyond the first get their own contexts (and all their scratch);
 * as many as the pool and the keys allow. */
static int parts_init(struct run *r, uint64_t per)
{
	unsigned want = par_width();

	if ((uint64_t)want > per)
		want = (unsigned)per;
	r->parts = 0;
	for (unsigned k = 0; k < want; k++) {
		struct part *pp = &r->part[k];

		memset(pp, 0, sizeof(*pp));
		if (k == 0) {
			pp->ofk = r->ofk;
			pp->nfk = r->nfk;
		} else if (keyring_open_file(r->cf->kr, r->nh, &pp->nfk) < 0 ||
			   (r->ofk != NULL &&
			    keyring_open_file(r->cf->kr, r->oh, &pp->ofk) < 0)) {
			keyring_filekeys_free(pp->nfk);
			keyring_filekeys_free(pp->ofk);
			break;
		}
		pp->tmp = malloc(r->cb);
		pp->pt = malloc(r->cf->bs);
		r->parts++;
		if (pp->tmp == NULL || pp->pt == NULL)
			return -ENOMEM;
	}
	return 0;
}

static void parts_free(struct run *r)
{
	for (unsigned k = 0; k < r->parts; k++) {
		struct part *pp = &r->part[k];

		r->resealed += pp->resealed;
		r->restored += pp->restored;
		if (pp->pt != NULL)
			secmem_wipe(pp->pt, r->cf->bs);
		if (pp->tmp != NULL)
			secmem_wipe(pp->tmp, r->cb);
		free(pp->tmp);
		free(pp->pt);
		if (k > 0) {
			keyring_filekeys_free(pp->ofk);
			keyring_filekeys_free(pp->nfk);
		}
	}
	r->parts = 0;
}

static int run_blocks(struct run *r, bool dry, bool *any)
{
	uint64_t per = RESEAL_CHUNK_BYTES / r->cf->bs, plain;
	struct stat st;
	int rc;

	*any = false;
	if (per == 0)
		per = 1;
	if (fstat(r->fd, &st) < 0)
		return -errno;
	rc = cfile_plain_size((uint64_t)st.st_size, r->cf->bs, &plain);
	if (rc < 0)
		return rc;
	r->size = plain;
	r->nb = plain == 0 ? 1 : (plain - 1) / r->cf->bs + 1;
	r->cb = r->cf->bs + BLOCK_OVERHEAD;
	r->holes = keyring_version(r->cf->kr) >= 3;
	if (per > r->nb)
		per = r->nb;
	r->ct = malloc(per * r->cb);
	r->out = malloc(per * r->cb);
	rc = r->ct && r->out ? parts_init(r, per) : -ENOMEM;
	for (uint64_t b0 = 0; rc == 0 && b0 < r->nb; b0 += per) {
		uint64_t n = r->nb - b0 < per ? r->nb - b0 : per;
		uint64_t off = HEADER_LEN + b0 * r->cb;
		unsigned parts = r->parts;
		size_t clen = 0;
		bool changed = false;

		for (uint64_t b = b0; b < b0 + n; b++)
			clen += blk_len(r, b);
		rc = backing_pread_full(r->fd, r->ct, clen, (off_t)off);
		if (rc < 0)
			break;
		r->b0 = b0;
		if ((uint64_t)parts > n)
			parts = (unsigned)n;
		for (unsigned k = 0; k < parts; k++)
			r->part[k].changed = false;
		rc = par_for(n, parts, chunk_part, r);
		for (unsigned k = 0; k < parts; k++)
			changed |= r->part[k].changed;
		if (rc == 0 && changed) {
			*any = true;
			if (!dry)
				rc = put_chunk(r, b0, n, clen, off);
		}
	}
	parts_free(r);
	free(r->ct);
	free(r->out);
	r->ct = r->out = NULL;
	return rc;
}

/* The new header last, synced; then the file's cached keys are the new
 * ones, having made `seals` seals. Called with cf->rwlock held alone and
 * the header lock (backing_lock_head): a plain rekey that began since nh
 * was made has its generation's KEKs wrap it here, since its walk may
 * have passed this file already. */
static int commit(struct cfile *cf, int fd, const struct header *nh,
		  struct filekeys *nfk, bool written, uint64_t seals)
{
	uint8_t buf[HEADER_LEN];
	struct header h = *nh, cur;
	int rc;

	rc = keyring_rewrap_header(cf->kr, nh, &cur);
	if (rc == 1) {
		h = cur;
		written = false;	/* a newer generation's wrap */
	} else if (rc < 0) {
		return rc;
	}
	rc = 0;
	if (!written) {
		header_serialize(&h, buf);
		rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
		if (rc == 0 && fdatasync(fd) < 0)
			rc = -errno;
	}
	if (rc < 0)
		return rc;
	cfile_adopt_keys(cf, &h, nfk, seals);
	return 0;
}

static int write_heads(int rfd, const struct header *oh,
		       const struct header *nh)
{
	uint8_t buf[REC_CHUNK];

	memcpy(buf, REC_MAGIC, 8);
	header_serialize(oh, buf + REC_OLD);
	header_serialize(nh, buf + REC_NEW);
	if (ftruncate(rfd, 0) < 0)
		return -errno;
	/* synced with the first chunk, before anything is overwritten */
	return backing_pwrite_full(rfd, buf, sizeof(buf), 0);
}

int reseal_file(struct cfile *cf, int fd, struct reseal_slot *s, bool force)
{
	struct filekeys *ofk = NULL, *nfk = NULL;
	struct header oh, nh;
	struct run r = { .cf = cf, .fd = fd, .rfd = s->fd };
	struct stat st0;
	uint64_t plain = 0;
	bool any;
	int rc;

	pthread_rwlock_wrlock(&cf->rwlock);
	/* The whole reseal under the header lock: a live plain rekey must
	 * not write back the old header, re-wrapped, over the new one, nor
	 * change the old one under the record that names it. */
	backing_lock_head(fd, HEADER_LEN, true);
	rc = fstat(fd, &st0) < 0 ? -errno : cfile_read_header(fd, &oh);
	if (rc == 0 && keyring_header_current(cf->kr, &oh) && !force) {
		backing_lock_head(fd, HEADER_LEN, false);
		pthread_rwlock_unlock(&cf->rwlock);
		return 0;
	}
	if (rc == 0)
		rc = cfile_plain_size((uint64_t)st0.st_size, cf->bs, &plain);
	if (rc == 0)
		rc = keyring_refresh_file(cf->kr, &oh, &nh, &ofk, &nfk);
	/* The fresh DEKs' count (doc/FORMAT.md §3.3) reserves every block
	 * and a unit more: each crash and recovery of this reseal may seal
	 * one chunk again. */
	if (rc == 0) {
		uint64_t nb = plain == 0 ? 1 : (plain - 1) / cf->bs + 1;

		rc = keyring_header_units(cf->kr, &nh,
					  cfile_units_for(nb +
							  cfile_seal_unit()),
					  &nh);
	}
	if (rc == 0)
		rc = write_heads(s->fd, &oh, &nh);
	if (rc == 0) {
		r.ofk = ofk;
		r.nfk = nfk;
		r.oh = &oh;
		r.nh = &nh;
		r.put_hdr = &nh;
		rc = run_blocks(&r, false, &any);
	}
	if (rc == 0)
		rc = commit(cf, fd, &nh, nfk, r.hdr_done,
			    r.resealed + r.restored);
	if (rc == 0) {
		/* The content did not change: neither does its time. */
		struct timespec ts[2] = { st0.st_atim, st0.st_mtim };

		(void)futimens(fd, ts);
		nfk = NULL;	/* the file's now */
		/* Done: an empty record is no longer needed after a crash
		 * (and a stale one would be recognised as such). */
		if (ftruncate(s->fd, 0) < 0)
			log_warn("%s/%s: %s", JOURNAL_DIR, s->name,
				 strerror(errno));
	}
	backing_lock_head(fd, HEADER_LEN, false);
	pthread_rwlock_unlock(&cf->rwlock);
	keyring_filekeys_free(ofk);
	keyring_filekeys_free(nfk);
	return rc < 0 ? rc : 1;
}

void reseal_budget_init(struct reseal_budget *b)
{
	memset(b, 0, sizeof(*b));
	pthread_mutex_init(&b->mtx, NULL);
	b->slot.fd = -1;
}

void reseal_budget_destroy(struct reseal_budget *b)
{
	struct stat st;

	/* a record left by a failed re-key is the next mount's to finish */
	if (b->slot.fd >= 0)
		reseal_slot_close(&b->slot, fstat(b->slot.fd, &st) == 0 &&
						    st.st_size == 0);
	pthread_mutex_destroy(&b->mtx);
}

int reseal_budget_rekey(struct cfile *cf, int fd, void *arg)
{
	struct reseal_budget *b = arg;
	char wbuf[4096], detail[160];
	int rc = 0;

	pthread_mutex_lock(&b->mtx);
	if (!cfile_rekey_due(cf))
		goto out;	/* another writer of the file re-keyed it */
	if (b->slot.fd < 0)
		rc = cf->jfd < 0 ? -EFBIG :
				   reseal_slot_open(&b->slot, cf->jfd, "budget");
	if (rc == 0)
		rc = reseal_file(cf, fd, &b->slot, true);
	if (rc >= 0) {
		struct stat st;
		uint64_t plain = 0;

		if (fstat(fd, &st) < 0 ||
		    cfile_plain_size((uint64_t)st.st_size, cf->bs, &plain) < 0)
			plain = 0;	/* for the message only */
		b->rekeys++;
		/* counts only: the audit log never names a file */
		snprintf(detail, sizeof(detail), "sealing budget of %llu "
			 "seals reached; %llu bytes re-sealed under fresh DEKs",
			 (unsigned long long)cfile_budget(),
			 (unsigned long long)plain);
		log_info("%s: data keys re-keyed: %s",
			 cfile_where(cf, wbuf, sizeof(wbuf)), detail);
		audit_event("file_rekey", NULL, "ok", detail);
		rc = 0;
	} else {
		snprintf(detail, sizeof(detail), "sealing budget of %llu "
			 "seals reached; re-key failed: %s",
			 (unsigned long long)cfile_budget(),
			 rc == -EFBIG ? "no journal directory" : strerror(-rc));
		log_err("%s: data keys %s", cfile_where(cf, wbuf, sizeof(wbuf)),
			detail);
		audit_event("file_rekey", NULL, "error", detail);
	}
out:
	pthread_mutex_unlock(&b->mtx);
	return rc;
}

/* The whole record, or NULL with *err. */
static uint8_t *read_record(int jfd, const char *name, size_t *len, int *err)
{
	struct stat st;
	uint8_t *buf;
	int fd;

	fd = openat(jfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		*err = errno == ENOENT ? 0 : -errno;
		return NULL;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size > 12 + RESEAL_BATCH_FILES * (off_t)(BENT_FIXED +
							  HEADER_LEN) +
				 2 * (off_t)RESEAL_CHUNK_BYTES +
				 (off_t)(RESEAL_CHUNK_BYTES / BLOCK_SIZE_MIN) *
					 BLOCK_OVERHEAD) {
		*err = -EBADMSG;
		close(fd);
		return NULL;
	}
	*len = (size_t)st.st_size;
	*err = 0;
	if (*len == 0) {
		close(fd);
		return NULL;
	}
	buf = malloc(*len);
	if (buf == NULL)
		*err = -ENOMEM;
	else
		*err = backing_pread_full(fd, buf, *len, 0);
	close(fd);
	if (*err == 0 && !(*len >= REC_CHUNK && memcmp(buf, REC_MAGIC, 8) == 0) &&
	    !(*len >= 12 && memcmp(buf, BATCH_MAGIC, 8) == 0))
		*err = -EBADMSG;
	if (*err < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* One file's part of a record: both headers (bytes), and the blocks it
 * holds (rb0, rn, data, clen; none: data NULL). */
struct rent {
	const uint8_t *oh, *nh;
	uint64_t rb0, rn;
	const uint8_t *data;
	size_t clen;
};

/* The entries of a record (1 for a single-file record); every length
 * checked against the record's size. Errors: -EBADMSG. */
static int parse_entries(const uint8_t *rec, size_t len, struct rent *e,
			 size_t max, size_t *n)
{
	size_t off, cnt;

	*n = 0;
	if (memcmp(rec, REC_MAGIC, 8) == 0) {
		memset(e, 0, sizeof(*e));
		e->oh = rec + REC_OLD;
		e->nh = rec + REC_NEW;
		if (len >= REC_DATA) {
			uint64_t clen = get_be(rec + REC_CHUNK + 12, 8);

			e->rb0 = get_be(rec + REC_CHUNK, 8);
			e->rn = get_be(rec + REC_CHUNK + 8, 4);
			e->data = rec + REC_DATA;
			e->clen = (size_t)clen;
			/* Chunks overwrite one another in place and the record
			 * only shrinks per file: bytes past clen are an
			 * earlier, longer chunk's (a file's last chunk is
			 * shorter). Fewer than clen: this chunk was cut before
			 * its fdatasync, so none of its blocks reached the
			 * file yet — it restores nothing. */
			if (clen > len - REC_DATA) {
				e->data = NULL;
				e->rn = 0;
				e->clen = 0;
			}
		}
		*n = 1;
		return 0;
	}
	cnt = (size_t)get_be(rec + 8, 4);
	if (cnt > max)
		return -EBADMSG;
	for (off = 12; *n < cnt; (*n)++) {
		struct rent *x = &e[*n];
		uint64_t clen;

		if (len - off < BENT_FIXED)
			return -EBADMSG;
		x->oh = rec + off;
		x->nh = rec + off + HEADER_LEN;
		x->rb0 = 0;
		x->rn = get_be(rec + off + 2 * HEADER_LEN, 8);
		clen = get_be(rec + off + 2 * HEADER_LEN + 8, 8);
		off += BENT_FIXED;
		if (clen > len - off)
			return -EBADMSG;
		x->data = rec + off;
		x->clen = (size_t)clen;
		off += (size_t)clen;
	}
	return off == len ? 0 : -EBADMSG;
}

int reseal_record_ids(int jfd, const char *name,
		      uint8_t (*ids)[FILE_ID_LEN], size_t max, size_t *n)
{
	struct rent e[RESEAL_BATCH_FILES];
	struct header h;
	size_t len = 0, ne = 0;
	uint8_t *rec;
	int err;

	*n = 0;
	rec = read_record(jfd, name, &len, &err);
	if (rec == NULL)
		return err;
	err = parse_entries(rec, len, e, RESEAL_BATCH_FILES, &ne);
	for (size_t i = 0; err == 0 && i < ne && *n < max; i++) {
		err = header_parse(e[i].nh, HEADER_LEN, &h);
		if (err == 0)
			memcpy(ids[(*n)++], h.file_id, FILE_ID_LEN);
	}
	free(rec);
	return err < 0 ? err : *n > 0 ? 1 : 0;
}

int reseal_record_id(int jfd, const char *name, uint8_t id[static FILE_ID_LEN])
{
	uint8_t ids[1][FILE_ID_LEN];
	size_t n = 0;
	int rc = reseal_record_ids(jfd, name, ids, 1, &n);

	if (rc == 1)
		memcpy(id, ids[0], FILE_ID_LEN);
	return rc;
}

int reseal_recover(struct cfile *cf, int fd, int jfd, const char *name,
		   bool dry)
{
	struct filekeys *ofk = NULL, *nfk = NULL;
	struct header oh, nh, cur;
	uint8_t cbuf[HEADER_LEN], *rec;
	struct run r = { .cf = cf, .fd = fd, .rfd = -1 };
	struct rent e[RESEAL_BATCH_FILES], *x = NULL;
	char wbuf[4096];
	size_t len = 0, ne = 0;
	bool any = false, old_hdr = false, batch;
	int rc, rfd = -1;

	rec = read_record(jfd, name, &len, &rc);
	if (rec == NULL)
		return rc;
	batch = memcmp(rec, BATCH_MAGIC, 8) == 0;
	rc = parse_entries(rec, len, e, RESEAL_BATCH_FILES, &ne);
	pthread_rwlock_wrlock(&cf->rwlock);
	backing_lock_head(fd, HEADER_LEN, true);
	if (rc == 0)
		rc = backing_pread_full(fd, cbuf, sizeof(cbuf), 0);
	if (rc == 0)
		rc = header_parse(cbuf, sizeof(cbuf), &cur);
	/* Only a file whose header is an entry's old or new one is mid
	 * reseal; any other was re-sealed again or replaced since. */
	for (size_t i = 0; rc == 0 && i < ne && x == NULL; i++) {
		if (memcmp(cbuf, e[i].oh, HEADER_LEN) == 0 ||
		    memcmp(cbuf, e[i].nh, HEADER_LEN) == 0)
			x = &e[i];
	}
	if (rc == 0 && x == NULL)
		goto stale;
	if (rc == 0)
		rc = header_parse(x->oh, HEADER_LEN, &oh);
	if (rc == 0)
		rc = header_parse(x->nh, HEADER_LEN, &nh);
	if (rc == 0) {
		old_hdr = memcmp(cbuf, x->oh, HEADER_LEN) == 0;
		r.rb0 = x->rb0;
		r.rn = x->rn;
		r.rct = x->data;
		r.rclen = x->clen;
	}
	if (rc == 0)
		rc = keyring_open_file(cf->kr, &nh, &nfk);
	/* The old DEKs are needed only while the old header is there; past
	 * the commit (header new) every block is new or torn. */
	if (rc == 0 && keyring_open_file(cf->kr, &oh, &ofk) < 0 && old_hdr)
		rc = -EKEYREJECTED;
	if (rc == 0) {
		r.ofk = ofk;
		r.nfk = nfk;
		r.oh = &oh;
		r.nh = &nh;
		r.put_hdr = old_hdr ? &nh : NULL;
		if (!dry && !batch) {
			rfd = openat(jfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
			rc = rfd < 0 ? -errno : 0;
			r.rfd = rfd;
		}
	}
	if (rc == 0)
		rc = run_blocks(&r, dry, &any);
	if (rc == 0 && !dry && old_hdr)
		rc = commit(cf, fd, &nh, nfk, r.hdr_done,
			    cfile_seal_limit(&nh));
	else if (rc == 0 && !dry && any) {
		if (fdatasync(fd) < 0)
			rc = -errno;
	}
	if (rc == 0 && !dry && old_hdr)
		nfk = NULL;
	if (rc == 0 && (any || old_hdr))
		log_info("%s: %s a reseal interrupted by a crash (%llu blocks "
			 "re-sealed, %llu restored from its record)",
			 cfile_where(cf, wbuf, sizeof(wbuf)),
			 dry ? "found" : "completed",
			 (unsigned long long)r.resealed,
			 (unsigned long long)r.restored);
	if (rc == 0) {
		backing_lock_head(fd, HEADER_LEN, false);
	pthread_rwlock_unlock(&cf->rwlock);
		rc = any || old_hdr ? 1 : 0;
		goto empty;
	}
	backing_lock_head(fd, HEADER_LEN, false);
	pthread_rwlock_unlock(&cf->rwlock);
	goto out;
stale:
	backing_lock_head(fd, HEADER_LEN, false);
	pthread_rwlock_unlock(&cf->rwlock);
empty:
	/* A batch record is emptied by whoever recovers all its files. */
	if (!dry && !batch) {
		if (rfd < 0)
			rfd = openat(jfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (rfd >= 0 && ftruncate(rfd, 0) < 0)
			rc = -errno;
	}
out:
	if (rfd >= 0)
		close(rfd);
	keyring_filekeys_free(ofk);
	keyring_filekeys_free(nfk);
	free(rec);
	return rc;
}

/* ---- batches of small files ---- */

struct reseal_item {
	struct cfile *cf;
	int fd;
	struct header nh;
	struct filekeys *nfk;
	struct stat st0;
	uint8_t *data;			/* the file's blocks, new DEKs */
	size_t clen;
	uint64_t nb;
	void (*release)(void *ctx);
	void *ctx;
};

int reseal_batch_init(struct reseal_batch *b, struct reseal_slot *s)
{
	memset(b, 0, sizeof(*b));
	b->s = s;
	b->it = calloc(RESEAL_BATCH_FILES, sizeof(*b->it));
	return b->it != NULL ? 0 : -ENOMEM;
}

/* Give an item back: its lock, its keys, its owner's resources. With
 * `stale`, the file's cached keys are dropped too (a flush that failed
 * midway leaves its header and blocks to the record's recovery). */
static void item_done(struct reseal_item *it, bool stale)
{
	if (stale) {
		pthread_mutex_lock(&it->cf->mtx);
		it->cf->loaded = false;
		pthread_mutex_unlock(&it->cf->mtx);
		cfile_drop_keys(it->cf);
	}
	backing_lock_head(it->fd, HEADER_LEN, false);
	pthread_rwlock_unlock(&it->cf->rwlock);
	keyring_filekeys_free(it->nfk);
	free(it->data);		/* ciphertext */
	if (it->release != NULL)
		it->release(it->ctx);
	memset(it, 0, sizeof(*it));
}

void reseal_batch_destroy(struct reseal_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		item_done(&b->it[i], true);
	free(b->it);
	memset(b, 0, sizeof(*b));
}

/* The whole file's blocks re-sealed into it->data (file locked alone). */
static int prepare(struct reseal_item *it, struct filekeys *ofk,
		   uint64_t plain)
{
	struct cfile *cf = it->cf;
	struct run r = { .cf = cf, .fd = it->fd, .ofk = ofk, .nfk = it->nfk };
	struct part *pp = &r.part[0];
	int rc;

	r.size = plain;
	r.nb = plain == 0 ? 1 : (plain - 1) / cf->bs + 1;
	r.cb = cf->bs + BLOCK_OVERHEAD;
	r.holes = keyring_version(cf->kr) >= 3;
	it->nb = r.nb;
	it->clen = (size_t)(it->st0.st_size - HEADER_LEN);
	r.ct = malloc(it->clen);
	it->data = malloc(it->clen);
	pp->ofk = ofk;
	pp->nfk = it->nfk;
	pp->tmp = malloc(r.cb);
	pp->pt = malloc(cf->bs);
	r.out = it->data;
	r.parts = 1;
	rc = r.ct && it->data && pp->tmp && pp->pt ? 0 : -ENOMEM;
	if (rc == 0)
		rc = backing_pread_full(it->fd, r.ct, it->clen, HEADER_LEN);
	if (rc == 0)
		rc = chunk_part(0, (size_t)r.nb, 0, &r);
	if (pp->pt != NULL)
		secmem_wipe(pp->pt, cf->bs);
	free(pp->tmp);
	free(pp->pt);
	free(r.ct);
	return rc;
}

int reseal_batch_add(struct reseal_batch *b, struct cfile *cf, int fd,
		     bool force, void (*release)(void *ctx), void *ctx)
{
	struct reseal_item *it = &b->it[b->n];
	struct filekeys *ofk = NULL;
	struct header oh;
	struct stat st;
	uint64_t plain = 0;
	int rc;

	/* A big file goes alone, chunk by chunk; so does one with more than
	 * one link: on a mount its other names lead to the same cfile, whose
	 * lock a queued entry holds (nothing of the batch is held
	 * meanwhile). */
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto alone_done;
	}
	if (st.st_nlink > 1 ||
	    (uint64_t)st.st_size > HEADER_LEN + (uint64_t)RESEAL_CHUNK_BYTES) {
		rc = reseal_batch_flush(b);
		if (rc == 0)
			rc = reseal_file(cf, fd, b->s, force);
		goto alone_done;
	}
	pthread_rwlock_wrlock(&cf->rwlock);
	/* as reseal_file: a live plain rekey keeps off the header */
	backing_lock_head(fd, HEADER_LEN, true);
	memset(it, 0, sizeof(*it));
	it->cf = cf;
	it->fd = fd;
	it->release = release;
	it->ctx = ctx;
	rc = fstat(fd, &it->st0) < 0 ? -errno : cfile_read_header(fd, &oh);
	if (rc == 0 && keyring_header_current(cf->kr, &oh) && !force) {
		item_done(it, false);
		return 0;
	}
	if (rc == 0)
		rc = cfile_plain_size((uint64_t)it->st0.st_size, cf->bs,
				      &plain);
	/* grown meanwhile (a mount's writer) beyond a batch's share */
	if (rc == 0 && (uint64_t)it->st0.st_size >
			       HEADER_LEN + (uint64_t)RESEAL_CHUNK_BYTES) {
		backing_lock_head(fd, HEADER_LEN, false);
		pthread_rwlock_unlock(&cf->rwlock);
		memset(it, 0, sizeof(*it));
		rc = reseal_batch_flush(b);
		if (rc == 0)
			rc = reseal_file(cf, fd, b->s, force);
		goto alone_done;
	}
	if (rc == 0)
		rc = keyring_refresh_file(cf->kr, &oh, &it->nh, &ofk, &it->nfk);
	/* the fresh DEKs' count reserves every block and a unit more
	 * (reseal_file) */
	if (rc == 0)
		rc = keyring_header_units(
			cf->kr, &it->nh,
			cfile_units_for((plain == 0 ? 1 :
					 (plain - 1) / cf->bs + 1) +
					cfile_seal_unit()),
			&it->nh);
	if (rc == 0)
		rc = prepare(it, ofk, plain);
	keyring_filekeys_free(ofk);
	if (rc < 0) {
		item_done(it, false);
		return rc;
	}
	b->n++;
	b->bytes += it->clen;
	if (b->n == RESEAL_BATCH_FILES || b->bytes >= RESEAL_CHUNK_BYTES)
		rc = reseal_batch_flush(b);
	return rc < 0 ? rc : 1;
alone_done:
	if (release != NULL)
		release(ctx);
	return rc;
}

/* The record of the batch, synced; then every file's blocks and header in
 * place, synced at once (syncfs: one sync for them all). */
int reseal_batch_flush(struct reseal_batch *b)
{
	size_t len = 12, off;
	uint8_t *rec;
	int rc = 0;

	if (b->n == 0)
		return 0;
	for (size_t i = 0; i < b->n; i++)
		len += BENT_FIXED + b->it[i].clen;
	rec = malloc(len);
	if (rec == NULL) {
		reseal_batch_destroy_items(b);
		return -ENOMEM;
	}
	memcpy(rec, BATCH_MAGIC, 8);
	put_be(rec + 8, b->n, 4);
	off = 12;
	for (size_t i = 0; i < b->n; i++) {
		struct reseal_item *it = &b->it[i];
		struct header oh;

		/* the old header as it is on disk */
		rc = cfile_read_header(it->fd, &oh);
		if (rc < 0)
			break;
		header_serialize(&oh, rec + off);
		header_serialize(&it->nh, rec + off + HEADER_LEN);
		put_be(rec + off + 2 * HEADER_LEN, it->nb, 8);
		put_be(rec + off + 2 * HEADER_LEN + 8, it->clen, 8);
		memcpy(rec + off + BENT_FIXED, it->data, it->clen);
		off += BENT_FIXED + it->clen;
	}
	if (rc == 0 && ftruncate(b->s->fd, 0) < 0)
		rc = -errno;
	if (rc == 0)
		rc = backing_pwrite_full(b->s->fd, rec, len, 0);
	if (rc == 0 && fdatasync(b->s->fd) < 0)
		rc = -errno;
	free(rec);
	for (size_t i = 0; rc == 0 && i < b->n; i++) {
		struct reseal_item *it = &b->it[i];
		uint8_t hb[HEADER_LEN];

		rc = backing_pwrite_full(it->fd, it->data, it->clen,
					 HEADER_LEN);
		header_serialize(&it->nh, hb);
		if (rc == 0)
			rc = backing_pwrite_full(it->fd, hb, sizeof(hb), 0);
	}
	if (rc == 0 && syncfs(b->it[0].fd) < 0)
		rc = -errno;
	if (rc < 0) {
		reseal_batch_destroy_items(b);
		return rc;
	}
	for (size_t i = 0; i < b->n; i++) {
		struct reseal_item *it = &b->it[i];
		struct timespec ts[2] = { it->st0.st_atim, it->st0.st_mtim };

		rc = commit(it->cf, it->fd, &it->nh, it->nfk, true, it->nb);
		if (rc == 0)
			it->nfk = NULL;		/* the file's now */
		(void)futimens(it->fd, ts);
		item_done(it, false);
	}
	b->files += b->n;
	b->n = 0;
	b->bytes = 0;
	if (ftruncate(b->s->fd, 0) < 0)
		log_warn("%s/%s: %s", JOURNAL_DIR, b->s->name, strerror(errno));
	return 0;
}

void reseal_batch_destroy_items(struct reseal_batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		item_done(&b->it[i], true);
	b->n = 0;
	b->bytes = 0;
}
