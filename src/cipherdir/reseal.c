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

#include "cmkfs/backing.h"
#include "cmkfs/log.h"
#include "cmkfs/reseal.h"
#include "cmkfs/secmem.h"

/* Record: magic ‖ old header ‖ new header ‖ b0 (8) ‖ n (4) ‖ clen (8) ‖
 * the chunk's blocks sealed under the new DEKs (clen bytes). Empty: no
 * reseal in flight. Big-endian. */
#define REC_MAGIC "CMKFSRS1"
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

static const char *where(const struct cfile *cf, char *buf, size_t cap)
{
	char proc[32];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", cf->path_fd);
	n = readlink(proc, buf, cap - 1);
	if (n < 0)
		snprintf(buf, cap, "(backing fd %d)", cf->path_fd);
	else
		buf[n] = '\0';
	return buf;
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

/* One pass over a file whose blocks are under the old or the new DEKs. */
struct run {
	struct cfile *cf;
	int fd;
	int rfd;			/* record to write, or -1 (dry) */
	struct filekeys *ofk, *nfk;	/* ofk may be NULL (recovery) */
	uint64_t size, nb;
	size_t cb;
	uint8_t *ct, *out, *tmp, *pt;
	/* recovery: the chunk the record holds */
	uint64_t rb0, rn;
	const uint8_t *rct;
	uint64_t rlen;			/* bytes at rct */
	uint64_t resealed, restored;
};

static size_t blk_len(const struct run *r, uint64_t b)
{
	return (b == r->nb - 1 ? r->size - b * r->cf->bs : r->cf->bs) +
	       BLOCK_OVERHEAD;
}

static bool opens(struct filekeys *fk, uint64_t b, bool last, const uint8_t *p,
		  size_t len, struct run *r)
{
	if (fk == NULL)
		return false;
	memcpy(r->tmp, p, len);		/* block_open clobbers its input */
	return block_open(&fk->bc, b, last, r->tmp, len, r->pt) == 0;
}

/* Blocks [b0, b0 + n): each is kept (new), re-sealed (old), or restored
 * from the record (torn). *changed says if any must be written. */
static int chunk_blocks(struct run *r, uint64_t b0, uint64_t n, bool *changed)
{
	char wbuf[4096];
	int rc;

	*changed = false;
	for (uint64_t i = 0; i < n; i++) {
		uint64_t b = b0 + i;
		bool last = b == r->nb - 1;
		size_t len = blk_len(r, b);
		const uint8_t *p = r->ct + i * r->cb;
		uint8_t *o = r->out + i * r->cb;

		if (opens(r->nfk, b, last, p, len, r)) {
			memcpy(o, p, len);
			continue;
		}
		*changed = true;
		if (opens(r->ofk, b, last, p, len, r)) {
			rc = block_seal(&r->nfk->bc, b, last, r->pt,
					len - BLOCK_OVERHEAD, o);
			if (rc < 0)
				return rc;
			r->resealed++;
			continue;
		}
		if (r->rct != NULL && b >= r->rb0 && b < r->rb0 + r->rn &&
		    (b - r->rb0) * r->cb + len <= r->rlen &&
		    opens(r->nfk, b, last, r->rct + (b - r->rb0) * r->cb, len,
			  r)) {
			memcpy(o, r->rct + (b - r->rb0) * r->cb, len);
			r->restored++;
			continue;
		}
		log_err("%s: block %llu opens under neither the old nor the "
			"new keys of its reseal",
			where(r->cf, wbuf, sizeof(wbuf)),
			(unsigned long long)b);
		return -EBADMSG;
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
	rc = backing_pwrite_full(r->rfd, h, sizeof(h), REC_CHUNK);
	if (rc == 0)
		rc = backing_pwrite_full(r->rfd, r->out, clen, REC_DATA);
	if (rc == 0 && fdatasync(r->rfd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = backing_pwrite_full(r->fd, r->out, clen, (off_t)off);
	if (rc == 0 && fdatasync(r->fd) < 0)
		rc = -errno;
	return rc;
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
	r->ct = malloc(per * r->cb);
	r->out = malloc(per * r->cb);
	r->tmp = malloc(r->cb);
	r->pt = malloc(r->cf->bs);
	if (!r->ct || !r->out || !r->tmp || !r->pt)
		rc = -ENOMEM;
	for (uint64_t b0 = 0; rc == 0 && b0 < r->nb; b0 += per) {
		uint64_t n = r->nb - b0 < per ? r->nb - b0 : per;
		uint64_t off = HEADER_LEN + b0 * r->cb;
		size_t clen = 0;
		bool changed;

		for (uint64_t b = b0; b < b0 + n; b++)
			clen += blk_len(r, b);
		rc = backing_pread_full(r->fd, r->ct, clen, (off_t)off);
		if (rc == 0)
			rc = chunk_blocks(r, b0, n, &changed);
		if (rc == 0 && changed) {
			*any = true;
			if (!dry)
				rc = put_chunk(r, b0, n, clen, off);
		}
	}
	if (r->pt != NULL)
		secmem_wipe(r->pt, r->cf->bs);
	if (r->tmp != NULL)
		secmem_wipe(r->tmp, r->cb);
	free(r->ct);
	free(r->out);
	free(r->tmp);
	free(r->pt);
	r->ct = r->out = r->tmp = r->pt = NULL;
	return rc;
}

/* The new header last, synced; then the file's cached keys are the new
 * ones. Called with cf->rwlock held alone. */
static int commit(struct cfile *cf, int fd, const struct header *nh,
		  struct filekeys *nfk)
{
	uint8_t buf[HEADER_LEN];
	struct filekeys *old;
	int rc;

	header_serialize(nh, buf);
	rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&cf->mtx);
	old = cf->pool;
	cf->hdr = *nh;
	cf->loaded = true;
	nfk->next = NULL;
	cf->pool = nfk;
	pthread_mutex_unlock(&cf->mtx);
	while (old != NULL) {
		struct filekeys *next = old->next;

		keyring_filekeys_free(old);
		old = next;
	}
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
	bool any;
	int rc;

	pthread_rwlock_wrlock(&cf->rwlock);
	rc = fstat(fd, &st0) < 0 ? -errno : cfile_read_header(fd, &oh);
	if (rc == 0 && keyring_header_current(cf->kr, &oh) && !force) {
		pthread_rwlock_unlock(&cf->rwlock);
		return 0;
	}
	if (rc == 0)
		rc = keyring_refresh_file(cf->kr, &oh, &nh, &ofk, &nfk);
	if (rc == 0)
		rc = write_heads(s->fd, &oh, &nh);
	if (rc == 0) {
		r.ofk = ofk;
		r.nfk = nfk;
		rc = run_blocks(&r, false, &any);
	}
	if (rc == 0)
		rc = commit(cf, fd, &nh, nfk);
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
	pthread_rwlock_unlock(&cf->rwlock);
	keyring_filekeys_free(ofk);
	keyring_filekeys_free(nfk);
	return rc < 0 ? rc : 1;
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
	    st.st_size > REC_DATA + 2 * (off_t)RESEAL_CHUNK_BYTES +
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
	if (*err == 0 && (*len < REC_CHUNK || memcmp(buf, REC_MAGIC, 8) != 0))
		*err = -EBADMSG;
	if (*err < 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

int reseal_record_id(int jfd, const char *name, uint8_t id[static FILE_ID_LEN])
{
	struct header h;
	size_t len = 0;
	uint8_t *rec;
	int err;

	rec = read_record(jfd, name, &len, &err);
	if (rec == NULL)
		return err;
	err = header_parse(rec + REC_NEW, HEADER_LEN, &h);
	if (err == 0)
		memcpy(id, h.file_id, FILE_ID_LEN);
	free(rec);
	return err < 0 ? err : 1;
}

int reseal_recover(struct cfile *cf, int fd, int jfd, const char *name,
		   bool dry)
{
	struct filekeys *ofk = NULL, *nfk = NULL;
	struct header oh, nh, cur;
	uint8_t cbuf[HEADER_LEN], obuf[HEADER_LEN], *rec;
	struct run r = { .cf = cf, .fd = fd, .rfd = -1 };
	char wbuf[4096];
	size_t len = 0;
	bool any = false, old_hdr;
	int rc, rfd = -1;

	rec = read_record(jfd, name, &len, &rc);
	if (rec == NULL)
		return rc;
	rc = header_parse(rec + REC_OLD, HEADER_LEN, &oh);
	if (rc == 0)
		rc = header_parse(rec + REC_NEW, HEADER_LEN, &nh);
	if (rc == 0 && len >= REC_DATA) {
		uint64_t clen = get_be(rec + REC_CHUNK + 12, 8);

		r.rb0 = get_be(rec + REC_CHUNK, 8);
		r.rn = get_be(rec + REC_CHUNK + 8, 4);
		r.rct = rec + REC_DATA;
		r.rlen = clen;
		/* Chunks overwrite one another in place and the record only
		 * shrinks per file: bytes past clen are an earlier, longer
		 * chunk's (a file's last chunk is shorter). Fewer than clen:
		 * this chunk was cut before its fdatasync, so none of its
		 * blocks reached the file yet — it restores nothing. */
		if (clen > len - REC_DATA) {
			r.rct = NULL;
			r.rn = 0;
		}
	}
	pthread_rwlock_wrlock(&cf->rwlock);
	if (rc == 0)
		rc = backing_pread_full(fd, cbuf, sizeof(cbuf), 0);
	if (rc == 0)
		rc = header_parse(cbuf, sizeof(cbuf), &cur);
	/* Only a file whose header is the record's old or new one is mid
	 * reseal; any other was re-sealed again or replaced since. */
	header_serialize(&oh, obuf);
	old_hdr = rc == 0 && memcmp(cbuf, obuf, HEADER_LEN) == 0;
	header_serialize(&nh, obuf);
	if (rc == 0 && !old_hdr && memcmp(cbuf, obuf, HEADER_LEN) != 0) {
		rc = 0;
		goto stale;
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
		if (!dry) {
			rfd = openat(jfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
			rc = rfd < 0 ? -errno : 0;
			r.rfd = rfd;
		}
	}
	if (rc == 0)
		rc = run_blocks(&r, dry, &any);
	if (rc == 0 && !dry && old_hdr)
		rc = commit(cf, fd, &nh, nfk);
	else if (rc == 0 && !dry && any) {
		if (fdatasync(fd) < 0)
			rc = -errno;
	}
	if (rc == 0 && !dry && old_hdr)
		nfk = NULL;
	if (rc == 0 && (any || old_hdr))
		log_info("%s: %s a reseal interrupted by a crash (%llu blocks "
			 "re-sealed, %llu restored from its record)",
			 where(cf, wbuf, sizeof(wbuf)),
			 dry ? "found" : "completed",
			 (unsigned long long)r.resealed,
			 (unsigned long long)r.restored);
	if (rc == 0) {
		pthread_rwlock_unlock(&cf->rwlock);
		rc = any || old_hdr ? 1 : 0;
		goto empty;
	}
	pthread_rwlock_unlock(&cf->rwlock);
	goto out;
stale:
	pthread_rwlock_unlock(&cf->rwlock);
empty:
	if (!dry) {
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
