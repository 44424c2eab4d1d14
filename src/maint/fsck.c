/* src/maint/fsck.c — check and repair a volume on disk
 * (include/cmkfs/fsck.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/block.h"
#include "cmkfs/cfile.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/engine.h"
#include "cmkfs/fsck.h"
#include "cmkfs/header.h"
#include "cmkfs/journal.h"
#include "cmkfs/linkfsck.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/names.h"
#include "cmkfs/repair.h"
#include "cmkfs/reseal.h"
#include "cmkfs/secmem.h"
#include "cmkfs/tclock.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"
#include "cmkfs/walk.h"

#define DEPTH_MAX 256

/* Progress by bytes (struct fsck_progress), shared by the passes of one
 * fsck_run(). A fast disk still shows the work inside a large file: a call
 * every METER_STEP bytes at least. */
#define METER_STEP (16u << 20)
struct meter {
	const struct fsck_opts *o;
	struct fsck_progress p;
	struct timespec start, last;
	uint64_t last_bytes;	/* bytes_done at the last call */
	struct timespec work;	/* the count's end: the rate is measured
				 * from here */
	uint64_t base, size;	/* the file in hand: bytes_done at its start,
				 * its backing size */
	uint64_t alloc;		/* count: backing bytes allocated */
	uint64_t pass_bytes;	/* count: the bytes one pass reads */
	uint64_t salvage_size;	/* backing bytes of files to salvage */
	bool salvages_counted;	/* already in bytes_total (sizing pass) */
	bool partial;		/* the count was cut short */
};

/* A target side file in LINKS_DIR when the walk began, and whether a
 * symlink met in the walk points at it. */
struct side {
	char id[LINKTGT_ID_B64 + 1];
	bool seen;
};

/* A non-empty reseal record in JOURNAL_DIR: the file it names is mid
 * reseal, its blocks under two keys. */
struct rrec {
	uint8_t id[FILE_ID_LEN];
	char name[64];
};

struct fsck {
	int rootfd;
	struct keyring *kr;
	uint8_t key[NAME_KEY_LEN];
	/* While a full rekey runs (VOLUME_FLAG_FULL) only: the previous
	 * generation's name key, under which names, targets and xattrs not
	 * yet migrated still open. Never tried otherwise: an old config's
	 * key must not make a finished volume look whole. */
	bool full;
	uint8_t prev[NAME_KEY_LEN];
	/* Format 3: targets and xattr values bound to their owner; the
	 * format-1/2 encodings are damage (doc/FORMAT.md §4.3, §4.4). */
	bool v3;
	struct rrec *rr;
	size_t nrr;
	uint32_t bs;
	int jfd;
	const struct fsck_opts *o;
	const struct fsck_cb *cb;
	struct fsck_result *r;
	/* transient zones: expired by this run, or due (a mount is live) */
	struct tzone *z;
	size_t nz;
	struct repair *rp;	/* repair only */
	/* LINKS_DIR's side files, sorted by id; an orphan is one no
	 * symlink claimed. Only judged after a walk that saw every
	 * directory left in the volume (partial false). */
	struct side *sides;
	size_t nsides, capsides;
	bool partial;
	/* Format 3: link sets and files bound to more than one place. */
	struct linkfsck *lk;
	struct meter *m;	/* never NULL */
};

/* Where a damaged file below a directory is salvaged to: lost+found at the
 * volume root, or at the top of the transient zone it is in, so that the
 * copy keeps expiring (doc/OPERATIONS.md "fsck"). In a zone, what cannot
 * be salvaged is destroyed as expiry would, not quarantined: the
 * quarantine would keep zone data past its TTL. */
struct place {
	int fd;			/* backing directory that holds lost+found */
	const char *ppath;	/* its plaintext path, "" for the root */
	bool zone;
};

/* check_file() results: unreadable header (nothing to salvage), damaged
 * size or blocks (salvage), an error that says nothing about the file
 * (EACCES, EIO on the header...: left alone). */
enum { DMG_ENTRY = 1, DMG_CONTENT = 2, DMG_IO = 3 };

static void keep(struct fsck_result *r, const struct fsck_problem *p)
{
	struct fsck_item *it;

	if (r->nlist == FSCK_LIST_MAX)
		return;
	if (r->nlist % 64 == 0) {
		it = realloc(r->list, (r->nlist + 64) * sizeof(*it));
		if (it == NULL)
			return;	/* the callbacks and counts still tell */
		r->list = it;
	}
	it = &r->list[r->nlist];
	it->bpath = strdup(p->bpath);
	it->ppath = p->ppath ? strdup(p->ppath) : NULL;
	it->what = strdup(p->what);
	it->block = p->block;
	if (it->bpath == NULL || it->what == NULL ||
	    (p->ppath != NULL && it->ppath == NULL)) {
		free(it->bpath);
		free(it->ppath);
		free(it->what);
		return;
	}
	r->nlist++;
}

static void report(struct fsck *f, const char *bpath, const char *ppath,
		   long long block, const char *what)
{
	const struct fsck_problem p = { bpath, ppath, block, what };

	f->r->problems++;
	if (f->o->keep_list)
		keep(f->r, &p);
	if (f->cb->problem != NULL)
		f->cb->problem(&p, f->cb->arg);
}

static void action(struct fsck *f, enum fsck_action_kind kind,
		   const char *bpath, const char *ppath, const char *to,
		   const struct salvage *s, const char *why)
{
	const struct fsck_action a = { kind, bpath, ppath, to, s, why };

	if (f->cb->action != NULL)
		f->cb->action(&a, f->cb->arg);
}

static void progress(struct fsck *f, enum fsck_phase ph)
{
	if (f->cb->progress != NULL)
		f->cb->progress(ph, f->r, f->cb->arg);
}

static double secs(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	       (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

/* To the caller every 0.1 s or METER_STEP bytes, whichever comes first
 * (force: now), with the rate and ETA of the work since the count (the
 * count itself reads no file). */
static void meter_emit(struct meter *m, bool force)
{
	struct fsck_progress *p = &m->p;
	struct timespec now;
	double t;

	if (m->o->meter == NULL)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!force && secs(&m->last, &now) < 0.1 &&
	    p->bytes_done - m->last_bytes < METER_STEP)
		return;
	m->last = now;
	m->last_bytes = p->bytes_done;
	p->elapsed = secs(&m->start, &now);
	if (p->bytes_done > p->bytes_total)
		p->bytes_total = p->bytes_done;	/* grew under a live mount */
	if (p->files_done > p->files_total)
		p->files_total = p->files_done;
	t = m->work.tv_sec ? secs(&m->work, &now) : 0;
	p->rate = t > 0 ? (double)p->bytes_done / t : 0;
	/* Not from the first instants: a rate over a few KiB says little */
	p->eta_s = p->rate > 0 && (t >= 0.5 || p->bytes_done >= METER_STEP) ?
			   (double)(p->bytes_total - p->bytes_done) / p->rate :
			   -1;
	m->o->meter(p, m->o->meter_arg);
}

static void meter_phase(struct meter *m, const char *phase, unsigned pass)
{
	m->p.phase = phase;
	m->p.pass = pass;
	meter_emit(m, true);
}

static void meter_file(struct meter *m, uint64_t size)
{
	m->base = m->p.bytes_done;
	m->size = size;
}

/* `in` bytes of the file in hand are done. */
static void meter_at(struct meter *m, uint64_t in)
{
	if (in > m->size)
		in = m->size;
	if (m->base + in > m->p.bytes_done)
		m->p.bytes_done = m->base + in;
	meter_emit(m, false);
}

static void meter_file_done(struct meter *m, bool checked)
{
	meter_at(m, m->size);
	m->p.files_done += checked;
}

/* cfile_check_blocks_tick(): `slots` of the file checked. */
static void meter_slots(struct meter *m, uint32_t bs, uint64_t slots)
{
	uint64_t in;

	if (__builtin_mul_overflow(slots, (uint64_t)bs + BLOCK_OVERHEAD, &in) ||
	    __builtin_add_overflow(in, (uint64_t)HEADER_LEN, &in))
		in = UINT64_MAX;
	meter_at(m, in);
}

static void meter_salvage_tick(void *arg, uint64_t bytes)
{
	meter_at(arg, bytes);
}

void fsck_progress_json(const struct fsck_progress *p, char *buf, size_t cap)
{
	char eta[32] = "null";

	if (p->eta_s >= 0)
		snprintf(eta, sizeof(eta), "%.1f", p->eta_s);
	snprintf(buf, cap,
		 "{\"progress\":{\"phase\":\"%s\",\"pass\":%u,\"passes\":%u,"
		 "\"bytes_done\":%llu,\"bytes_total\":%llu,"
		 "\"files_done\":%llu,\"files_total\":%llu,"
		 "\"elapsed_ms\":%llu,\"rate\":%.0f,\"eta_s\":%s,"
		 "\"final\":%s}}",
		 p->phase, p->pass, p->passes,
		 (unsigned long long)p->bytes_done,
		 (unsigned long long)p->bytes_total,
		 (unsigned long long)p->files_done,
		 (unsigned long long)p->files_total,
		 (unsigned long long)(p->elapsed * 1000), p->rate, eta,
		 p->final ? "true" : "false");
}

/* A name under the current key or, during a full rekey, the previous
 * one (*old then set). Errors: names_decrypt's. */
static int name_open(const struct fsck *f, const uint8_t *dirid,
		     const char *n, char plain[static NAME_MAX + 1], bool *old)
{
	int rc = names_decrypt(f->key, dirid, n, strlen(n), plain,
			       NAME_MAX + 1);

	*old = false;
	if (rc < 0 && f->full) {
		rc = names_decrypt(f->prev, dirid, n, strlen(n), plain,
				   NAME_MAX + 1);
		*old = rc == 0;
	}
	return rc;
}

/* The reseal record naming file id, or NULL. */
static const struct rrec *rrec_of(const struct fsck *f, const uint8_t *id)
{
	for (size_t i = 0; i < f->nrr; i++)
		if (memcmp(f->rr[i].id, id, FILE_ID_LEN) == 0)
			return &f->rr[i];
	return NULL;
}

/* Every file a record names (a batch record names several). */
static int rrec_add(const struct walk_entry *e, void *arg)
{
	struct fsck *f = arg;
	uint8_t ids[RESEAL_BATCH_FILES][FILE_ID_LEN];
	struct rrec *n;
	size_t k = 0;

	if (strncmp(e->name, RESEAL_PREFIX, strlen(RESEAL_PREFIX)) != 0 ||
	    strlen(e->name) >= sizeof(f->rr[0].name) ||
	    reseal_record_ids(e->dfd, e->name, ids, RESEAL_BATCH_FILES,
			      &k) != 1)
		return 0;	/* empty: nothing in flight */
	n = realloc(f->rr, (f->nrr + k) * sizeof(*n));
	if (n == NULL)
		return -ENOMEM;
	f->rr = n;
	for (size_t i = 0; i < k; i++) {
		memcpy(n[f->nrr].id, ids[i], FILE_ID_LEN);
		snprintf(n[f->nrr].name, sizeof(n[f->nrr].name), "%s",
			 e->name);
		f->nrr++;
	}
	return 0;
}

/* A file whose id has a reseal record: 1 if the record explains it (a dry
 * recovery opens every block under the old or new DEKs or from the
 * record: the next run or mount finishes it), 0 if the record is stale
 * (check the file as usual), or a DMG_* kind. */
static int check_resealing(struct fsck *f, struct cfile *cf, int fd,
			   const char *bpath, const char *ppath)
{
	const struct rrec *rr = rrec_of(f, cf->hdr.file_id);
	int rc;

	if (rr == NULL || f->jfd < 0)
		return 0;
	rc = reseal_recover(cf, fd, f->jfd, rr->name, true);
	if (rc == 1) {
		f->r->reseal_pending++;
		return 1;
	}
	if (rc == 0)
		return 0;
	report(f, bpath, ppath, -1, rc == -EBADMSG ?
	       "mid reseal: a block opens under neither key and its reseal "
	       "record cannot restore it" : strerror(-rc));
	return rc == -EBADMSG ? DMG_CONTENT : DMG_IO;
}

static void not_repaired(struct fsck *f, const char *bpath,
			 const char *ppath, const char *why);

/* A truncate record that does not match its file's state (cfile.h): a
 * finding, never applied; a repair moves it into the quarantine, so that
 * no mount walks the tree for it again. The file itself (its tail fails)
 * is reported and salvaged by the caller. */
static void trec_refused(struct fsck *f, const struct cfile *cf,
			 const char *bpath, const char *ppath, const char *why)
{
	char jname[JOURNAL_NAME_LEN + 1], what[256], rpath[PATH_MAX],
		q[PATH_MAX], to[PATH_MAX + 8];
	int rc;

	cfile_journal_name(cf->hdr.file_id, jname);
	snprintf(what, sizeof(what), "truncate record %s/%s refused: %s",
		 JOURNAL_DIR, jname, why);
	report(f, bpath, ppath, -1, what);
	if (f->rp == NULL)
		return;
	snprintf(rpath, sizeof(rpath), "%s/%s/%s", f->o->root, JOURNAL_DIR,
		 jname);
	rc = repair_quarantine(f->rp, f->jfd, JOURNAL_DIR, jname, q,
			       sizeof(q));
	if (rc < 0) {
		not_repaired(f, rpath, NULL, strerror(-rc));
		return;
	}
	f->r->quarantined++;
	snprintf(to, sizeof(to), "%s/%s", f->o->root, q);
	action(f, FSCK_QUARANTINED, rpath, NULL, to, NULL,
	       "a truncate record is never applied to a state it was not "
	       "written for");
}

struct bad_ctx {
	struct fsck *f;
	const char *bpath, *ppath;
};

static void slots_tick(void *arg, uint64_t slots)
{
	struct bad_ctx *c = arg;

	meter_slots(c->f->m, c->f->bs, slots);
}

static void bad_block(void *arg, uint64_t b, const char *what)
{
	struct bad_ctx *c = arg;

	report(c->f, c->bpath, c->ppath, (long long)b, what);
}

/* Returns 0 or a DMG_* kind. */
static int check_file(struct fsck *f, int dfd, const char *bn,
		      const char *bpath, const char *ppath)
{
	struct fsck_result *r = f->r;
	struct cfile cf;
	struct stat st;
	uint64_t size, nb, alloc = 0;
	bool tail_ok;
	int fd, rc, loc, dmg = 0;

	r->files++;
	meter_file(f->m, 0);
	fd = openat(dfd, bn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		report(f, bpath, ppath, -1, strerror(errno));
		meter_file_done(f->m, true);
		return DMG_IO;
	}
	if (fstat(fd, &st) == 0) {
		meter_file(f->m, (uint64_t)st.st_size);
		alloc = (uint64_t)st.st_blocks * 512;
	}
	cfile_init(&cf, f->kr, f->bs, fd);
	cf.rootfd = f->rootfd;
	rc = cfile_load(&cf, fd);
	if (rc == -EBADMSG && cfile_read_header(fd, &cf.hdr) == 0 &&
	    (loc = cfile_location(&cf, &cf.hdr, bn)) > 0) {
		/* format 3: the header opens, but not at this name */
		report(f, bpath, ppath, -1, cfile_location_msg(loc));
		dmg = DMG_ENTRY;
		goto out;
	}
	if (rc == -EBADMSG || rc == -EKEYREJECTED) {
		report(f, bpath, ppath, -1,
		       rc == -EKEYREJECTED ? "header: wrong key or tampered" :
					     "header: malformed or truncated");
		dmg = DMG_ENTRY;
		goto out;
	}
	if (rc < 0) {
		report(f, bpath, ppath, -1, strerror(-rc));
		dmg = DMG_IO;
		goto out;
	}
	/* Mid reseal, blocks are under two keys: the record says which. */
	rc = check_resealing(f, &cf, fd, bpath, ppath);
	if (rc != 0) {
		dmg = rc == 1 ? 0 : rc;
		goto out;
	}
	if (f->full && !keyring_header_current(f->kr, &cf.hdr))
		r->files_pending++;
	rc = cfile_size(&cf, fd, &size);
	tail_ok = rc == 0 && cfile_check_tail(&cf, fd) == 0;
	if (!tail_ok) {
		const char *why = NULL;
		int trc = cfile_resolve_truncate(&cf, fd, f->jfd, true, &why);

		if (trc == 1) {
			r->pending++;
			goto out;
		}
		if (trc == -EBADMSG && why != NULL)
			trec_refused(f, &cf, bpath, ppath, why);
	}
	if (rc < 0) {
		report(f, bpath, ppath, -1, "impossible size: cut short or extended");
		dmg = DMG_CONTENT;
		goto out;
	}
	if (!tail_ok) {
		report(f, bpath, ppath, size ? (long long)((size - 1) / f->bs) : 0,
		       "last block fails authentication (cut at a block boundary?)");
		dmg = DMG_CONTENT;
	}
	if (size > 0) {
		/* every slot: data blocks, and in format 3 the holes' zero
		 * blocks and records (doc/FORMAT.md §3.4) */
		struct bad_ctx bc = { f, bpath, ppath };

		nb = 0;
		rc = cfile_check_blocks_tick(&cf, fd, bad_block, slots_tick,
					     &bc, &nb);
		r->blocks += nb;
		if (rc != 0) {
			if (rc < 0)
				report(f, bpath, ppath, -1, strerror(-rc));
			dmg = DMG_CONTENT;
		}
	}
out:
	/* what a repair would write for it: a copy (repair_salvage) */
	if (dmg == DMG_CONTENT) {
		r->salvage_files++;
		r->salvage_bytes += alloc;
		f->m->salvage_size += f->m->size;
	}
	meter_file_done(f->m, true);
	cfile_destroy(&cf);
	close(fd);
	return dmg;
}

/* Returns the number of user xattrs that fail. Values run to 64 KiB: off
 * the recursive walk's frames. owner: what the values are bound to in a
 * format-3 volume (the file id or directory id), NULL in format 1/2 or
 * when it cannot be read (then every value is reported). */
static __attribute__((noinline)) unsigned
check_xattrs(struct fsck *f, int dfd, const char *bn, const char *bpath,
	     const char *ppath, const uint8_t *owner)
{
	char path[PATH_MAX], list[8192], name[XATTR_NAME_MAX + 1];
	uint8_t val[65536], out[65536];
	unsigned bad = 0;
	ssize_t n, vl;

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, bn);
	n = llistxattr(path, list, sizeof(list));
	for (char *p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) != 0)
			continue;
		const uint8_t *key = f->key;

		if (names_xattr_name_decrypt(key, p, name, sizeof(name)) < 0 &&
		    (!f->full || (key = f->prev,
				  names_xattr_name_decrypt(key, p, name,
							   sizeof(name)) < 0))) {
			report(f, bpath, ppath, -1, "xattr name fails authentication");
			bad++;
			continue;
		}
		vl = lgetxattr(path, p, val, sizeof(val));
		if (vl >= 0 && f->v3 && owner != NULL &&
		    names_xattr_value_open3(key, owner, name, val, (size_t)vl,
					    out) == 0) {
			if (key == f->prev)
				f->r->xattrs_pending++;
		} else if (vl >= 0 && f->v3 &&
			   names_xattr_value_open(key, name, val, (size_t)vl,
						  out) == 0) {
			report(f, bpath, ppath, -1, "xattr value in the format-1/2 "
			       "encoding (unbound) in a format-3 volume");
			bad++;
		} else if (f->v3) {
			report(f, bpath, ppath, -1, "xattr value fails "
			       "authentication (tampered, or copied from "
			       "another file or directory)");
			bad++;
		} else if (vl < 0 || names_xattr_value_open(key, name, val,
							    (size_t)vl,
							    out) < 0) {
			report(f, bpath, ppath, -1, "xattr value fails authentication");
			bad++;
		} else if (key == f->prev) {
			f->r->xattrs_pending++;
		}
	}
	secmem_wipe(out, sizeof(out));
	return bad;
}

/* The header of regular file dfd/bn (its file id is the owner of its
 * xattr values) and its stat. Not authenticated here: check_file()
 * reports a header that does not open, and a value bound to a forged id
 * fails with the rest of the file. */
static int file_head(int dfd, const char *bn, struct header *h,
		     struct stat *st)
{
	int fd, rc;

	fd = openat(dfd, bn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, st) < 0 ? -errno : 0;
	if (rc == 0)
		rc = cfile_read_header(fd, h);
	close(fd);
	return rc;
}

static void not_repaired(struct fsck *f, const char *bpath,
			 const char *ppath, const char *why)
{
	f->r->unrepaired++;
	action(f, FSCK_NOT_REPAIRED, bpath, ppath, NULL, NULL, why);
}

/* The backing path of a directory relative to the cipher root. */
static const char *rel_of(const struct fsck *f, const char *bdir)
{
	size_t n = strlen(f->o->root);

	return bdir[n] == '/' ? bdir + n + 1 : bdir + n;
}

/* An entry that cannot be read: quarantined, or destroyed in a zone.
 * True if it is gone from where it was. */
static bool set_aside(struct fsck *f, const struct place *pl, int dfd,
		      const char *bdir, const char *b, const char *bpath,
		      const char *ppath)
{
	char q[PATH_MAX], to[PATH_MAX + 8];
	int rc;

	if (pl->zone) {
		rc = transient_destroy(f->rootfd, dfd, b);
		if (rc == 0) {
			f->r->destroyed++;
			action(f, FSCK_DESTROYED, bpath, ppath, NULL, NULL,
			       "in a transient zone: destroyed as expiry "
			       "does, not quarantined");
			return true;
		}
	} else {
		rc = repair_quarantine(f->rp, dfd, rel_of(f, bdir), b, q,
				       sizeof(q));
		if (rc == 0) {
			f->r->quarantined++;
			snprintf(to, sizeof(to), "%s/%s", f->o->root, q);
			action(f, FSCK_QUARANTINED, bpath, ppath, to, NULL, NULL);
			return true;
		}
	}
	not_repaired(f, bpath, ppath,
		     rc == -EISDIR ? "a directory in a transient zone is never "
				     "destroyed" :
				     strerror(-rc));
	return false;
}

/* A file whose header opens: copy what authenticates into lost+found,
 * then set the original aside (the copy is durable first). True if the
 * original is gone from where it was. */
static bool salvage(struct fsck *f, const struct place *pl, int dfd,
		    const char *bdir, const char *b, const char *bpath,
		    const char *ppath)
{
	char to[PATH_MAX + 300], why[200];
	struct meter *m = f->m;
	struct salvage s;
	struct statvfs sv;
	struct stat st = { 0 };
	uint64_t need, avail;
	int rc;

	/* The run checked before it began; something else may have filled
	 * the disk since. */
	if (fstatat(dfd, b, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    fstatvfs(f->rootfd, &sv) == 0) {
		need = (uint64_t)st.st_blocks * 512 + FSCK_SPACE_PER_FILE;
		avail = (uint64_t)sv.f_bavail * sv.f_frsize;
		if (avail < need) {
			snprintf(why, sizeof(why), "not enough free space for "
				 "its copy (%.1f MiB needed, %.1f MiB free): "
				 "free space, then run fsck --repair again",
				 (double)need / 1048576.0,
				 (double)avail / 1048576.0);
			not_repaired(f, bpath, ppath, why);
			return false;
		}
	}
	if (!m->salvages_counted)
		m->p.bytes_total += (uint64_t)st.st_size;
	meter_file(m, (uint64_t)st.st_size);
	rc = repair_salvage(f->rp, pl->fd, dfd, b, ppath, &s);
	meter_file_done(m, false);
	if (rc < 0) {
		not_repaired(f, bpath, ppath,
			     rc == -ENOTDIR ? "lost+found is not a directory" :
					      strerror(-rc));
		return false;
	}
	f->r->salvaged++;
	f->r->lost_blocks += s.nlost;
	snprintf(to, sizeof(to), "%s/" LOSTFOUND_NAME "/%s", pl->ppath, s.name);
	action(f, FSCK_SALVAGED, bpath, ppath, to, &s, NULL);
	repair_salvage_free(&s);
	return set_aside(f, pl, dfd, bdir, b, bpath, ppath);
}

static void fix_xattrs(struct fsck *f, const struct place *pl, int dfd,
		       const char *bdir, const char *b, const char *bpath,
		       const char *ppath)
{
	char q[PATH_MAX], to[PATH_MAX + 8], why[64];
	unsigned n = 0;
	int rc;

	q[0] = '\0';
	rc = repair_drop_bad_xattrs(f->rp, dfd, rel_of(f, bdir), b, !pl->zone,
				    &n, q, sizeof(q));
	if (rc < 0) {
		not_repaired(f, bpath, ppath, strerror(-rc));
		return;
	}
	snprintf(why, sizeof(why), "%u damaged xattr%s removed", n,
		 n == 1 ? "" : "s");
	if (pl->zone) {
		f->r->destroyed++;
		action(f, FSCK_DESTROYED, bpath, ppath, NULL, NULL, why);
	} else {
		f->r->quarantined++;
		snprintf(to, sizeof(to), "%s/%s", f->o->root, q);
		action(f, FSCK_QUARANTINED, bpath, ppath, to, NULL, why);
	}
}

/* The encrypted name behind long-name entry b, from its side file, into
 * enc (ENCNAME_MAX bytes). Errors: -errno of reading it. */
static int side_read(int dfd, const char *b, char enc[static ENCNAME_MAX])
{
	char side[ENCNAME_MAX];
	size_t len = 0;
	int rc;

	rc = names_side_name(b, side, sizeof(side));
	if (rc == 0)
		rc = backing_read_small(dfd, side, enc, ENCNAME_MAX - 1, &len);
	if (rc < 0)
		return rc;
	enc[len] = '\0';
	return 0;
}

struct suspect {
	struct fsck *f;
	const uint8_t *dirid;
	unsigned long tried, ok;
};

static int suspect_entry(const struct walk_entry *e, void *arg)
{
	struct suspect *s = arg;
	char enc[ENCNAME_MAX], plain[NAME_MAX + 1];
	const char *n = e->name;
	bool old;

	if (e->cls == WALK_LONGNAME) {
		if (side_read(e->dfd, e->name, enc) < 0)
			return 0;
		n = enc;
	}
	s->tried++;
	s->ok += name_open(s->f, s->dirid, n, plain, &old) == 0;
	secmem_wipe(plain, sizeof(plain));
	return s->ok > 0;	/* one name that opens clears the id */
}

/* --repair acts on each entry as it meets it; a damaged directory id (not
 * authenticated by itself) would make every name fail and every entry be
 * set aside one by one, or destroyed in a transient zone. So before
 * repairing anything in a directory, check that at least one name opens
 * under its id. 1: no name opens (the id is the likely culprit). */
static int dirid_suspect(struct fsck *f, int dfd,
			 const uint8_t dirid[static DIRID_LEN])
{
	struct suspect s = { f, dirid, 0, 0 };

	if (walk_entries(dfd, WALK_ENTRIES, WALK_F_SKIP_ERRORS, suspect_entry,
			 &s) < 0)
		return 0;
	return s.tried > 0 && s.ok == 0;
}

/* What is wrong with a symlink's target, or NULL if it decrypts. Targets
 * run to ENCLINK_MAX, far longer than a name: buffers of their own, off
 * the recursive frames. In a format-3 volume the target is bound to the
 * directory id and the symlink's own backing name (doc/FORMAT.md §4.3). */
static __attribute__((noinline)) const char *
symlink_bad(struct fsck *f, int dfd, const uint8_t dirid[static DIRID_LEN],
	    const char *b, const struct stat *st)
{
	char enc[ENCLINK_MAX], tgt[ENCLINK_MAX];
	struct names_loc loc, *lp = NULL;
	size_t n = 0, len = 0;
	bool side = false;
	const char *bad = NULL;
	int rc;

	f->r->symlinks++;
	if (f->v3) {
		if (names_loc_set(&loc, dirid, b) < 0)
			return "symlink name too long for a location token";
		if (st->st_nlink > 1)
			return "symlink with several backing links (format 3 "
			       "makes none: copied behind the mount's back)";
		lp = &loc;
	}
	rc = linktgt_read(f->rootfd, dfd, b, enc, sizeof(enc), &n, &side);
	if (rc == -ENOENT && side)
		bad = "symlink target side file (" LINKS_DIR ") is missing";
	else if (rc == 0 && names_target_open(f->key, lp, enc, n, tgt,
					      sizeof(tgt), &len) == 0)
		bad = NULL;
	else if (rc == 0 && f->full &&
		 names_target_open(f->prev, lp, enc, n, tgt, sizeof(tgt),
				   &len) == 0)
		f->r->targets_pending++;
	else if (rc == 0 && lp != NULL &&
		 names_symlink_decrypt(f->key, enc, n, tgt, sizeof(tgt),
				       &len) == 0)
		bad = "symlink target in the format-1/2 encoding (unbound) in "
		      "a format-3 volume";
	else if (lp != NULL)
		bad = side ? "symlink target side file (" LINKS_DIR
			     ") fails authentication (tampered, or copied or "
			     "moved from another symlink)" :
			     "symlink target fails authentication (tampered, "
			     "or copied or moved from another symlink)";
	else
		bad = side ? "symlink target side file (" LINKS_DIR
			     ") fails authentication" :
			     "symlink target fails authentication";
	secmem_wipe(tgt, sizeof(tgt));
	return bad;
}

static int side_cmp(const void *a, const void *b)
{
	return strcmp(((const struct side *)a)->id,
		      ((const struct side *)b)->id);
}

static int side_add(const struct walk_entry *e, void *arg)
{
	struct fsck *f = arg;
	struct side *n;

	if (!linktgt_is_id(e->name))
		return 0;
	if (f->nsides == f->capsides) {
		size_t cap = f->capsides ? 2 * f->capsides : 16;

		n = realloc(f->sides, cap * sizeof(*n));
		if (n == NULL)
			return -ENOMEM;
		f->sides = n;
		f->capsides = cap;
	}
	memcpy(f->sides[f->nsides].id, e->name, LINKTGT_ID_B64 + 1);
	f->sides[f->nsides++].seen = false;
	return 0;
}

/* The side files in LINKS_DIR before the walk: one made during it (a
 * mount creating a symlink beside a plain fsck) is not judged. Memory:
 * one small record per long symlink. */
static void sides_load(struct fsck *f)
{
	int lfd = openat(f->rootfd, LINKS_DIR, O_RDONLY | O_DIRECTORY |
						       O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (lfd < 0) {
		if (errno != ENOENT)
			f->partial = true;	/* reported by check_links */
		return;
	}
	rc = walk_entries(lfd, WALK_ALL, WALK_F_SKIP_ERRORS, side_add, f);
	close(lfd);
	if (rc < 0) {
		free(f->sides);
		f->sides = NULL;
		f->nsides = 0;
		f->partial = true;
		if (f->cb->warning != NULL)
			f->cb->warning(LINKS_DIR ": not checked for orphaned "
				       "symlink targets: out of memory or "
				       "unreadable", f->cb->arg);
		return;
	}
	if (f->nsides > 1)
		qsort(f->sides, f->nsides, sizeof(*f->sides), side_cmp);
}

static struct side *side_find(struct fsck *f, const char *id)
{
	struct side key;

	if (f->nsides == 0)
		return NULL;
	memcpy(key.id, id, LINKTGT_ID_B64 + 1);
	return bsearch(&key, f->sides, f->nsides, sizeof(key), side_cmp);
}

/* Symlink dfd/b (st its lstat) met in the walk: the side file it points
 * at, if any, is no orphan. */
static void side_claim(struct fsck *f, int dfd, const char *b,
		       const struct stat *st)
{
	char m[LINKTGT_MARKER_LEN + 1];
	struct side *s;
	ssize_t n;

	if (st->st_size != (off_t)LINKTGT_MARKER_LEN)
		return;
	n = readlinkat(dfd, b, m, sizeof(m));
	if (n < 0 || !linktgt_is_marker(m, (size_t)n))
		return;
	m[n] = '\0';
	s = side_find(f, linktgt_marker_id(m));
	if (s != NULL)
		s->seen = true;
}

struct links {
	struct fsck *f;
	const struct place *root;
	char bdir[PATH_MAX];
	unsigned long unjudged;	/* unclaimed, but the walk was partial */
};

static int links_entry(const struct walk_entry *e, void *arg)
{
	struct links *l = arg;
	struct fsck *f = l->f;
	char bpath[PATH_MAX + 64];
	const struct side *s;

	snprintf(bpath, sizeof(bpath), "%s/%s", l->bdir, e->name);
	if (linktgt_is_id(e->name)) {
		s = side_find(f, e->name);
		if (s == NULL || s->seen)	/* new, or claimed */
			return 0;
		if (f->partial) {
			l->unjudged++;
			return 0;
		}
		report(f, bpath, NULL, -1, "orphaned symlink target side "
					   "file: no symlink points to it");
	} else if (e->cls == WALK_TMP) {
		report(f, bpath, NULL, -1, "leftover temporary file "
					   "of an interrupted operation");
	} else {
		report(f, bpath, NULL, -1, "unknown name in " LINKS_DIR);
	}
	if (f->rp != NULL)
		(void)set_aside(f, l->root, e->dfd, l->bdir, e->name, bpath,
				NULL);
	return 0;
}

/* After the walk: LINKS_DIR holds only side files some symlink points at,
 * so that a crash between writing one and making its symlink (or between
 * the last unlink and its removal) is found, and with repair set aside
 * like a stray temporary. */
static void check_links(struct fsck *f, const struct place *root)
{
	struct links l = { f, root, { 0 }, 0 };
	char msg[160];
	int lfd, rc;

	snprintf(l.bdir, sizeof(l.bdir), "%s/%s", f->o->root, LINKS_DIR);
	lfd = openat(f->rootfd, LINKS_DIR, O_RDONLY | O_DIRECTORY |
						   O_NOFOLLOW | O_CLOEXEC);
	if (lfd < 0) {
		if (errno != ENOENT)
			report(f, l.bdir, NULL, -1, strerror(errno));
		return;
	}
	rc = walk_entries(lfd, WALK_ALL, WALK_F_SKIP_ERRORS, links_entry, &l);
	close(lfd);
	if (rc < 0)
		report(f, l.bdir, NULL, -1, strerror(-rc));
	if (l.unjudged > 0 && f->cb->warning != NULL) {
		snprintf(msg, sizeof(msg),
			 LINKS_DIR ": %lu side file%s not checked for orphans: "
			 "part of the volume was not walked", l.unjudged,
			 l.unjudged == 1 ? "" : "s");
		f->cb->warning(msg, f->cb->arg);
	}
}

static void lk_found(const struct linkfsck_finding *lk, void *arg)
{
	struct fsck *f = arg;
	char bdir[PATH_MAX];
	struct place root = { f->rootfd, "", false };
	int rc;

	report(f, lk->bpath, lk->ppath, -1, lk->what);
	if (f->rp == NULL)
		return;
	switch (lk->kind) {
	case LINKFSCK_STALE:
		rc = linkfsck_rebind(f->lk, lk->file, f->bs);
		if (rc < 0)
			not_repaired(f, lk->bpath, lk->ppath, strerror(-rc));
		else
			action(f, FSCK_REWRITTEN, lk->bpath, lk->ppath, NULL,
			       NULL, "bound to the file's names alone");
		break;
	case LINKFSCK_SHARED:
		not_repaired(f, lk->bpath, lk->ppath, "which backing file is "
			     "the copy cannot be told: remove it from the "
			     "cipher directory, then run fsck --repair again");
		break;
	default:	/* in LINKSET_DIR: set aside like a stray temporary */
		snprintf(bdir, sizeof(bdir), "%s/%s", f->o->root, LINKSET_DIR);
		(void)set_aside(f, &root, lk->dfd, bdir, lk->name, lk->bpath,
				NULL);
		break;
	}
}

/* After the walk (format 3): LINKSET_DIR holds only authentic sets that a
 * file names, and no file's binding names a place none of its names
 * holds (linkfsck.h). */
static void check_linksets(struct fsck *f)
{
	unsigned long unjudged = 0;
	char msg[200];
	int rc;

	if (f->lk == NULL)
		return;
	rc = linkfsck_judge(f->lk, f->partial, lk_found, f, &unjudged);
	if (rc < 0) {
		snprintf(msg, sizeof(msg), "%s/%s", f->o->root, LINKSET_DIR);
		report(f, msg, NULL, -1, strerror(-rc));
	}
	if (unjudged > 0 && f->cb->warning != NULL) {
		snprintf(msg, sizeof(msg),
			 "%lu link set%s or binding%s of several names not "
			 "checked: part of the volume was not walked",
			 unjudged, unjudged == 1 ? "" : "s",
			 unjudged == 1 ? "" : "s");
		f->cb->warning(msg, f->cb->arg);
	}
}

/* One directory being checked. */
struct dir {
	struct fsck *f;
	int dfd;
	const char *bdir, *pdir;
	const struct place *pl;
	int depth;
	uint8_t dirid[DIRID_LEN];
	unsigned long nnames, nbad;
};

static int check_dir(struct fsck *f, int dfd, const char *bdir,
		     const char *pdir, const struct place *pl, int depth);

/* The root's own files; anywhere else they are unknown reserved names. */
static bool root_name(const char *b)
{
	return strcmp(b, VOLUME_FILE) == 0 || strcmp(b, TRANSIENT_FILE) == 0 ||
	       strcmp(b, QUARANTINE_DIR) == 0 || strcmp(b, JOURNAL_DIR) == 0 ||
	       strcmp(b, LINKS_DIR) == 0 || strcmp(b, LINKSET_DIR) == 0;
}

/* A reserved name that is not a long-name entry. */
static void check_reserved(struct dir *d, const struct walk_entry *e,
			   const char *bpath)
{
	struct fsck *f = d->f;
	const char *b = e->name;
	bool repair = f->rp != NULL;

	if (e->cls == WALK_DIRID ||
	    (d->depth == 0 && e->cls == WALK_RESERVED && root_name(b)))
		return;
	if (e->cls == WALK_SIDE) {
		char owner[ENCNAME_MAX];

		if (names_side_owner(b, owner, sizeof(owner)) < 0 ||
		    faccessat(d->dfd, owner, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
			report(f, bpath, NULL, -1, "orphaned long-name side file");
			if (repair)
				(void)set_aside(f, d->pl, d->dfd, d->bdir, b,
						bpath, NULL);
		}
		return;
	}
	if (e->cls == WALK_TMP) {
		struct stat st;

		/* A long symlink's temporary (a re-made symlink, or one on
		 * its way out: doc/FORMAT.md §4.3) may hold the only link to
		 * its side file: that side file is part of this leftover and
		 * goes with it (repair_quarantine carries it), no orphan. */
		if (fstatat(d->dfd, b, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
		    S_ISLNK(st.st_mode))
			side_claim(f, d->dfd, b, &st);
		report(f, bpath, NULL, -1, "leftover temporary file "
					   "of an interrupted operation");
	} else {
		report(f, bpath, NULL, -1, "unknown reserved name");
	}
	if (repair)
		(void)set_aside(f, d->pl, d->dfd, d->bdir, b, bpath, NULL);
}

static void check_subdir(struct dir *d, const char *b, const char *bpath,
			 const char *ppath, bool named)
{
	struct fsck *f = d->f;
	const struct place *pl = d->pl, *spl = pl;
	int sub = openat(d->dfd, b, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
					    O_CLOEXEC);
	struct place zp = { sub, ppath, true };

	if (sub < 0) {
		/* Gone or replaced meanwhile is nothing to check; anything
		 * else (EACCES, EMFILE) leaves a subtree unchecked. */
		if (errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
			f->partial = true;
			report(f, bpath, named ? ppath : NULL, -1,
			       strerror(errno));
		}
		return;
	}
	/* Entering the top of a zone: its own lost+found. */
	if (named && !pl->zone && f->nz > 0) {
		int zi = transient_zone_of(f->z, f->nz, ppath);

		if (zi >= 0 && strcmp(f->z[zi].path, ppath) == 0)
			spl = &zp;
	}
	/* A directory whose id is lost: set aside whole, but never inside
	 * or at the top of a transient zone, where that would destroy (or
	 * keep past its TTL) data that may still be recoverable by
	 * restoring the id. */
	if (check_dir(f, sub, bpath, named ? ppath : "?", spl, d->depth + 1) < 0) {
		/* Not walked: it stays unseen in the volume unless set
		 * aside (its long symlinks' targets go with it). */
		if (f->rp == NULL)
			f->partial = true;
		else if (spl->zone) {
			f->partial = true;
			not_repaired(f, bpath, named ? ppath : NULL,
				     "directory id lost in a transient zone: "
				     "restore cmkfs.dirid from a backup");
		} else if (!set_aside(f, pl, d->dfd, d->bdir, b, bpath,
				      named ? ppath : NULL))
			f->partial = true;
	}
	close(sub);
}

static void check_regular(struct dir *d, const char *b, const char *bpath,
			  const char *ppath, bool named)
{
	struct fsck *f = d->f;
	int dmg = check_file(f, d->dfd, b, bpath, named ? ppath : NULL);
	struct header h;
	struct stat st;
	int hrc = f->v3 ? file_head(d->dfd, b, &h, &st) : -EBADMSG;
	bool head = hrc == 0, gone = false;
	unsigned xbad = check_xattrs(f, d->dfd, b, bpath, named ? ppath : NULL,
				     head ? h.file_id : NULL);

	if (f->rp != NULL && dmg == DMG_ENTRY)
		gone = set_aside(f, d->pl, d->dfd, d->bdir, b, bpath, ppath);
	else if (f->rp != NULL && dmg == DMG_CONTENT)
		gone = salvage(f, d->pl, d->dfd, d->bdir, b, bpath, ppath);
	else if (f->rp != NULL && dmg == DMG_IO)
		not_repaired(f, bpath, ppath, "cannot be read: check the disk, "
					      "then run fsck again");
	else if (f->rp != NULL && xbad > 0)
		fix_xattrs(f, d->pl, d->dfd, d->bdir, b, bpath, ppath);
	/* A header that could not be read (not one that is malformed: that
	 * is no name of any file), or whose file could not be opened at this
	 * name: whether this name is one of its file's is unknown, so no
	 * binding is judged. */
	if (f->lk != NULL &&
	    (dmg == DMG_IO || (hrc != 0 && hrc != -EBADMSG)))
		f->partial = true;
	/* What stays in the tree is what binds names and link sets. */
	if (head && !gone && f->lk != NULL &&
	    linkfsck_add(f->lk, &h, dmg == 0 || dmg == DMG_CONTENT, &st, bpath,
			 named ? ppath : NULL) < 0) {
		linkfsck_free(f->lk);
		f->lk = NULL;
		if (f->cb->warning != NULL)
			f->cb->warning(LINKSET_DIR " and files of several "
				       "names not checked: out of memory",
				       f->cb->arg);
	}
}

static int check_entry(const struct walk_entry *e, void *arg)
{
	struct dir *d = arg;
	struct fsck *f = d->f;
	const char *b = e->name, *n = b;
	char bpath[PATH_MAX], ppath[PATH_MAX], plain[NAME_MAX + 1],
		enc[ENCNAME_MAX], chk[ENCNAME_MAX];
	bool named = false, old, repair = f->rp != NULL;
	const char *bad;
	struct stat st;

	snprintf(bpath, sizeof(bpath), "%s/%s", d->bdir, b);
	/* Set aside earlier in this walk (a side file goes with its long-name
	 * entry): readdir may still return it. */
	if (repair && faccessat(d->dfd, b, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (e->cls != WALK_NAME && e->cls != WALK_LONGNAME) {
		check_reserved(d, e, bpath);
		return 0;
	}
	if (e->cls == WALK_LONGNAME) {
		if (side_read(d->dfd, b, enc) < 0) {
			report(f, bpath, NULL, -1, "long-name side file missing");
			n = NULL;
		} else {
			n = enc;
			if (names_backing(enc, chk, sizeof(chk)) != 1 ||
			    strcmp(chk, b) != 0) {
				report(f, bpath, NULL, -1,
				       "long-name side file does not match");
				n = NULL;
			}
		}
	}
	d->nnames += n != NULL;
	if (n != NULL && name_open(f, d->dirid, n, plain, &old) == 0) {
		named = true;
		f->r->names_pending += old;
		snprintf(ppath, sizeof(ppath), "%s/%s", d->pdir, plain);
	} else if (n != NULL) {
		d->nbad++;
		report(f, bpath, NULL, -1, "name fails authentication");
	}
	if (fstatat(d->dfd, b, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		/* Not checked: a name unseen, whatever the cause (gone
		 * meanwhile is a change under the walk). */
		f->partial = true;
		if (errno != ENOENT)
			report(f, bpath, named ? ppath : NULL, -1,
			       strerror(errno));
		secmem_wipe(plain, sizeof(plain));
		return 0;
	}
	if (S_ISLNK(st.st_mode))
		side_claim(f, d->dfd, b, &st);
	/* Nameless: quarantined whole, a directory with its subtree (outside
	 * a zone; a zone's unnamed directory stays, walked). */
	if (repair && !named && !(S_ISDIR(st.st_mode) && d->pl->zone)) {
		if (!set_aside(f, d->pl, d->dfd, d->bdir, b, bpath, NULL) &&
		    S_ISDIR(st.st_mode))
			f->partial = true;
		progress(f, FSCK_PHASE_WALK);
		return 0;
	}
	if (repair && !named)
		not_repaired(f, bpath, NULL, "unnamed directory in a transient "
					     "zone (its files keep expiring)");
	if (S_ISDIR(st.st_mode)) {
		check_subdir(d, b, bpath, ppath, named);
	} else if (S_ISREG(st.st_mode)) {
		check_regular(d, b, bpath, ppath, named);
	} else if (S_ISLNK(st.st_mode) &&
		   (bad = symlink_bad(f, d->dfd, d->dirid, b, &st)) != NULL) {
		report(f, bpath, named ? ppath : NULL, -1, bad);
		if (repair)
			(void)set_aside(f, d->pl, d->dfd, d->bdir, b, bpath,
					named ? ppath : NULL);
	}
	progress(f, FSCK_PHASE_WALK);
	secmem_wipe(plain, sizeof(plain));
	return 0;
}

/* The id of directory dfd, checked (format 3) against its own backing name
 * (the last component of bdir; the root has none). A second place left in
 * it by an interrupted rename is named, and dropped by a repair. */
static int dir_id(struct fsck *f, int dfd, const char *bdir, const char *pdir,
		  int depth, uint8_t id[static DIRID_LEN])
{
	const char *b = depth == 0 ? NULL : strrchr(bdir, '/');
	char what[256];
	unsigned fl = 0;
	int rc;

	if (b != NULL)
		b++;
	rc = dirtree_check_dirid(f->kr, dfd, b, id, &fl);
	if (rc < 0) {
		snprintf(what, sizeof(what), "%s: no name in it can be read",
			 dirtree_dirid_why(rc));
		report(f, bdir, pdir, -1, what);
		return -EBADMSG;
	}
	if (fl & DIRID_F_STALE) {
		report(f, bdir, pdir, -1, "directory id (" DIRID_FILE ") still "
		       "names a second place (an interrupted rename)");
		if (f->rp != NULL) {
			rc = dirtree_bind_dirid(f->kr, dfd, NULL, b);
			if (rc < 0)
				not_repaired(f, bdir, pdir, strerror(-rc));
			else
				action(f, FSCK_REWRITTEN, bdir, pdir, NULL,
				       NULL, "second place dropped from the "
				       "directory id");
		}
	}
	return 0;
}

/* Returns -EBADMSG when the directory's own id is unreadable (nothing in
 * it can be named; with repair the caller sets the directory aside). */
static int check_dir(struct fsck *f, int dfd, const char *bdir,
		     const char *pdir, const struct place *pl, int depth)
{
	struct dir d = { f, dfd, bdir, pdir, pl, depth, { 0 }, 0, 0 };
	int rc;

	f->r->dirs++;
	progress(f, FSCK_PHASE_WALK);
	if (depth > DEPTH_MAX) {
		f->partial = true;
		report(f, bdir, pdir, -1, "directories nested too deep");
		return 0;
	}
	rc = dir_id(f, dfd, bdir, pdir, depth, d.dirid);
	if (rc < 0)
		return rc;
	if (f->rp != NULL && dirid_suspect(f, dfd, d.dirid)) {
		report(f, bdir, pdir, -1, "no name decrypts: directory id "
					  "(cmkfs.dirid) damaged");
		return -EBADMSG;	/* the caller sets it aside whole */
	}
	/* Format 3: a directory's own values are bound to its id (reported
	 * only: a directory is not set aside for an xattr). */
	if (f->v3)
		(void)check_xattrs(f, dfd, ".", bdir, pdir, d.dirid);
	/* A stream that fails midway was checked up to there; the names
	 * after it are unseen, so the walk is partial: a binding or set is
	 * never narrowed or set aside for want of a name it did not list. */
	rc = walk_entries(dfd, WALK_ALL, 0, check_entry, &d);
	if (rc < 0) {
		f->partial = true;
		report(f, bdir, pdir, -1, strerror(-rc));
		return 0;
	}
	/* Names are bound to the directory id: if none decrypts, the id is
	 * the likely culprit (it is not authenticated by itself). */
	if (d.nbad > 0 && d.nbad == d.nnames)
		report(f, bdir, pdir, -1, "no name decrypts: directory id "
					  "(cmkfs.dirid) damaged");
	return 0;
}

/* Expiry before the walk, so that nothing expired is checked or salvaged
 * out of its zone. While a mount is live (or the cipher directory is
 * read-only) its files are only counted. */
static void zones(struct fsck *f, int fd, bool may_write)
{
	struct fsck_result *r = f->r;
	time_t now = tclock_now();
	char msg[512];
	unsigned long c;
	int rc;

	rc = transient_load(fd, f->kr, f->z, &f->nz);
	if (rc < 0) {
		char bpath[PATH_MAX];

		snprintf(bpath, sizeof(bpath), "%s/%s", f->o->root,
			 TRANSIENT_FILE);
		f->nz = 0;
		snprintf(msg, sizeof(msg), "%s: nothing expires",
			 transient_strerror(rc));
		report(f, bpath, NULL, -1, msg);
		if (f->rp != NULL)
			not_repaired(f, bpath, NULL, "restore it from the "
					"backup its cmkfs.conf came from");
		return;
	}
	for (size_t i = 0; i < f->nz; i++) {
		c = 0;
		if (may_write)
			rc = transient_expire(fd, f->kr, &f->z[i], now, NULL, NULL,
					      &c);
		else
			rc = transient_count_due(fd, f->kr, &f->z[i], now, &c);
		if (rc < 0 && f->cb->warning != NULL) {
			snprintf(msg, sizeof(msg), "transient zone: %s",
				 strerror(-rc));
			f->cb->warning(msg, f->cb->arg);
		}
		if (may_write)
			r->expired += c;
		else
			r->due += c;
	}
}

/* Whether this run may expire, and if not who will: not beside a mount,
 * not on a read-only cipher directory. Plain fsck holds the offline lock
 * only while it expires, so that a mount can start during the (read-only)
 * walk; repair holds it already. */
static void expire_zones(struct fsck *f, int rootfd)
{
	struct statvfs sv;
	bool may_write = !f->o->mounted && !f->o->keep_zones;
	int lockfd = -1;

	f->r->due_owner = "the mount's sweeper";
	if (may_write && fstatvfs(rootfd, &sv) == 0 && (sv.f_flag & ST_RDONLY)) {
		may_write = false;
		f->r->due_owner = "a writable copy (read-only cipher directory)";
	}
	if (may_write && !f->o->repair) {
		lockfd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (lockfd < 0 || volio_lock_offline(lockfd) < 0) {
			may_write = false;
			f->r->due_owner = "the mount or offline rekey holding "
					  "the volume";
		}
	}
	zones(f, rootfd, may_write);
	if (lockfd >= 0)
		close(lockfd);	/* drops the flock */
}

/* One pass of fsck_run(): the check, or with o->repair the repair. */
static int run_once(int rootfd, struct keyring *kr, const struct fsck_opts *o,
		    const struct fsck_cb *cb, struct fsck_result *r,
		    struct meter *m)
{
	static const struct fsck_cb none = { 0 };
	struct fsck f = { .rootfd = rootfd, .kr = kr, .o = o,
			  .cb = cb ? cb : &none, .r = r, .m = m };
	struct place root = { rootfd, "", false };
	unsigned done = 0;
	int rc;

	memset(r, 0, sizeof(*r));
	r->repair = o->repair;
	f.bs = keyring_block_size(kr);
	f.v3 = keyring_version(kr) >= 3;
	rc = keyring_name_key(kr, f.key);
	if (rc < 0)
		return rc;
	if (keyring_volume(kr)->flags & VOLUME_FLAG_FULL) {
		r->full = true;
		r->full_from = keyring_volume(kr)->prev_gen;
		r->full_to = keyring_volume(kr)->kek_gen;
		f.full = keyring_prev_name_key(kr, f.prev) == 0;
	}
	f.z = calloc(TRANSIENT_MAX_ZONES, sizeof(*f.z));
	if (f.z == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	f.jfd = journal_open(rootfd, false);
	if (f.jfd < 0)
		f.jfd = -1;
	else if (o->repair &&
		 journal_recover(rootfd, f.jfd, kr, f.bs, &done) == 0)
		r->completed = done;
	/* What a repair's recovery left: records it could not complete. */
	if (f.jfd >= 0 &&
	    walk_entries(f.jfd, WALK_ALL, WALK_F_SKIP_ERRORS, rrec_add, &f) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (o->repair && repair_open(rootfd, kr, &f.rp) < 0) {
		rc = -ENOMEM;
		goto out;
	}
	if (f.rp != NULL)
		repair_set_tick(f.rp, meter_salvage_tick, m);
	expire_zones(&f, rootfd);
	progress(&f, FSCK_PHASE_EXPIRED);
	sides_load(&f);
	if (f.v3 && (linkfsck_new(rootfd, kr, o->root, &f.lk) < 0 ||
		     linkfsck_sets_load(f.lk) < 0) &&
	    f.cb->warning != NULL)
		f.cb->warning(LINKSET_DIR ": not checked for orphaned link "
			      "sets: out of memory or unreadable", f.cb->arg);
	if (check_dir(&f, rootfd, o->root, "", &root, 0) < 0) {
		f.partial = true;
		if (f.rp != NULL)
			not_repaired(&f, o->root, "/", "the root's directory id "
				     "cannot be replaced: restore it from a "
				     "backup");
	}
	check_links(&f, &root);
	check_linksets(&f);
out:
	if (f.jfd >= 0)
		close(f.jfd);
	repair_close(f.rp);
	linkfsck_free(f.lk);
	free(f.sides);
	free(f.z);
	free(f.rr);
	secmem_wipe(f.key, sizeof(f.key));
	secmem_wipe(f.prev, sizeof(f.prev));
	return rc;
}

/* The count: the regular files the walk will check (the plaintext
 * tree's entries; reserved directories are not descended) and their
 * backing bytes. */
static int count_file(const struct walk_entry *e, void *arg)
{
	struct meter *m = arg;
	struct stat st;

	if (e->type != DT_REG ||
	    fstatat(e->dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	m->p.files_total++;
	m->p.bytes_total += (uint64_t)st.st_size;
	m->alloc += (uint64_t)st.st_blocks * 512;
	meter_emit(m, false);
	return 0;
}

static int count(int rootfd, struct meter *m)
{
	const struct walk_tree_cb cb = {
		.want = WALK_ENTRIES,
		.flags = WALK_F_SKIP_ERRORS,
		.file = count_file,
		.arg = m,
	};

	int rc;

	meter_phase(m, "count", 0);
	rc = walk_tree(rootfd, &cb);
	m->pass_bytes = m->p.bytes_total;
	clock_gettime(CLOCK_MONOTONIC, &m->work);
	return rc;
}

/* What a repair may allocate: each salvage's copy (as much as its
 * source holds), plus FSCK_SPACE_PER_FILE each and FSCK_SPACE_RESERVE. */
static uint64_t space_for(uint64_t bytes, uint64_t files)
{
	uint64_t need;

	if (__builtin_mul_overflow(files, (uint64_t)FSCK_SPACE_PER_FILE,
				   &need) ||
	    __builtin_add_overflow(need, bytes, &need) ||
	    __builtin_add_overflow(need, (uint64_t)FSCK_SPACE_RESERVE, &need))
		return UINT64_MAX;
	return need;
}

/* Before a repair changes anything: 0 to go on, -ENOSPC to stop. When
 * free space is short of copying every file, a sizing pass (a check that
 * reports nothing and changes nothing, zones left alone) finds the files
 * to salvage. */
static int space_check(int rootfd, struct keyring *kr,
		       const struct fsck_opts *o, struct fsck_result *r,
		       struct meter *m)
{
	struct fsck_opts so = *o;
	struct fsck_result sr;
	struct statvfs sv;
	uint64_t avail;
	int rc;

	if (fstatvfs(rootfd, &sv) < 0)
		return 0;	/* not known: each salvage checks again */
	avail = (uint64_t)sv.f_bavail * sv.f_frsize;
	if (!m->partial && avail >= space_for(m->alloc, m->p.files_total))
		return 0;
	so.repair = false;
	so.keep_zones = true;
	so.keep_list = false;
	m->p.passes = 2;
	m->p.bytes_total += m->pass_bytes;
	m->p.files_total += m->p.files_total;
	meter_phase(m, "size", 1);
	rc = run_once(rootfd, kr, &so, NULL, &sr, m);
	/* the sizing pass's files end where it did */
	if (m->p.bytes_done < m->pass_bytes)
		m->p.bytes_done = m->pass_bytes;
	if (m->p.files_done < m->p.files_total / 2)
		m->p.files_done = m->p.files_total / 2;
	m->p.bytes_total += m->salvage_size;
	m->salvages_counted = true;
	memset(r, 0, sizeof(*r));
	r->salvage_files = sr.salvage_files;
	r->salvage_bytes = sr.salvage_bytes;
	r->space_sized = true;
	r->space_need = space_for(sr.salvage_bytes, sr.salvage_files);
	r->space_free = avail;
	fsck_result_free(&sr);
	if (rc < 0)
		return rc;
	if (fstatvfs(rootfd, &sv) == 0)	/* the pass took a while */
		avail = r->space_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	return avail < r->space_need ? -ENOSPC : 0;
}

int fsck_run(int rootfd, struct keyring *kr, const struct fsck_opts *o,
	     const struct fsck_cb *cb, struct fsck_result *r)
{
	struct meter m = { .o = o };
	struct fsck_result keep;
	int rc;

	memset(r, 0, sizeof(*r));
	m.p.passes = 1;
	m.p.eta_s = -1;
	clock_gettime(CLOCK_MONOTONIC, &m.start);
	/* A count cut short (an unreadable directory: the walk reports
	 * it) makes the total low, and the repair's upper bound unsure: it
	 * sizes what the walk finds instead. */
	if (o->meter != NULL || o->repair)
		m.partial = count(rootfd, &m) < 0;
	else
		m.work = m.start;
	if (o->repair) {
		rc = space_check(rootfd, kr, o, r, &m);
		if (rc < 0)
			return rc;
	}
	keep = *r;	/* the sizing pass's counts, for the result */
	meter_phase(&m, o->repair ? "repair" : "check", m.p.passes);
	rc = run_once(rootfd, kr, o, cb, r, &m);
	if (keep.space_sized) {
		r->space_sized = true;
		r->space_need = keep.space_need;
		r->space_free = keep.space_free;
	}
	if (rc < 0)
		return rc;
	m.p.bytes_done = m.p.bytes_total;	/* what a live mount removed */
	m.p.files_done = m.p.files_total;
	m.p.final = true;
	meter_emit(&m, true);
	return 0;
}

/* fsck_volume's hold on the run: the caller's callbacks, and the audit
 * log opened on the first event only, so that a run stopped before the
 * check leaves no log behind. */
struct fvol {
	const struct fsck_cb *cb;
	const char *audit_log;
	struct keyring *kr;
	bool audited;
};

static void fvol_audit_start(struct fvol *v)
{
	char id[VOLUME_ID_HEX_LEN];

	if (v->audited)
		return;
	audit_open(v->audit_log);
	volume_id_hex(keyring_volume(v->kr), id);
	audit_set_volume(id);
	v->audited = true;
}

static void fvol_problem(const struct fsck_problem *p, void *arg)
{
	const struct fvol *v = arg;

	if (v->cb->problem != NULL)
		v->cb->problem(p, v->cb->arg);
}

static void fvol_action(const struct fsck_action *a, void *arg)
{
	const struct fvol *v = arg;

	if (v->cb->action != NULL)
		v->cb->action(a, v->cb->arg);
}

static void fvol_progress(enum fsck_phase ph, const struct fsck_result *r,
			  void *arg)
{
	struct fvol *v = arg;

	if (ph == FSCK_PHASE_EXPIRED && r->expired > 0) {
		fvol_audit_start(v);
		fsck_audit_expired(r);
	}
	if (v->cb->progress != NULL)
		v->cb->progress(ph, r, v->cb->arg);
}

static void fvol_warning(const char *what, void *arg)
{
	const struct fvol *v = arg;

	if (v->cb->warning != NULL)
		v->cb->warning(what, v->cb->arg);
}

int fsck_volume(const char *cipherdir, const char *service_key,
		const struct fsck_opts *o, const struct fsck_cb *cb,
		struct fsck_volume_result *vr)
{
	static const struct fsck_cb none = { 0 };
	struct fvol v = { cb ? cb : &none, o->audit_log, NULL, false };
	const struct fsck_cb wrap = { fvol_problem, fvol_action,
				      fvol_progress, fvol_warning, &v };
	struct fsck_opts fo = *o;
	int fd, rc;

	memset(vr, 0, sizeof(*vr));
	fd = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return ENGINE_FAIL(vr, FSCK_STAGE_OPEN, -errno, "%s: %s",
				 cipherdir, strerror(errno));
	/* Held to the end (closing fd drops it): a mount holds the lock
	 * shared for its life, so none can start meanwhile, and one in
	 * another mount namespace is seen too. */
	rc = o->repair ? volio_lock_offline(fd) : 0;
	if (rc < 0) {
		close(fd);
		return ENGINE_FAIL(vr, FSCK_STAGE_LOCK, rc, "%s: %s", cipherdir,
				 rc == -EBUSY ?
					 "in use by a mount or an offline "
					 "rekey: --repair needs the volume "
					 "to itself" :
					 strerror(-rc));
	}
	rc = volio_unlock(fd, service_key, &v.kr);
	if (rc == -EBADMSG) {
		close(fd);
		return ENGINE_FAIL(vr, FSCK_STAGE_CONFIG, rc, "%s", "");
	}
	if (rc == -EUCLEAN) {	/* mid upgrade: old encodings may remain */
		close(fd);
		return ENGINE_FAIL(vr, FSCK_STAGE_OPEN, rc, "%s: %s", cipherdir,
				   volio_strerror(rc));
	}
	if (rc < 0) {
		close(fd);
		return ENGINE_FAIL(vr, FSCK_STAGE_UNLOCK, rc,
				 "%s: keys unavailable: %s", cipherdir,
				 volio_strerror(rc));
	}
	fo.root = cipherdir;
	rc = fsck_run(fd, v.kr, &fo, &wrap, &vr->r);
	close(fd);
	if (rc == -ENOSPC) {
		ENGINE_FAIL(vr, FSCK_STAGE_SPACE, rc,
			    "%s: --repair needs %.1f MiB free on the cipher "
			    "directory's file system, for %lu damaged file%s to "
			    "copy into lost+found (%.1f MiB) and %.1f MiB of "
			    "room; only %.1f MiB are free; nothing was "
			    "changed: free space there, or copy the cipher "
			    "directory to a larger file system and repair the "
			    "copy", cipherdir,
			    (double)vr->r.space_need / 1048576.0,
			    vr->r.salvage_files,
			    vr->r.salvage_files == 1 ? "" : "s",
			    (double)vr->r.salvage_bytes / 1048576.0,
			    (double)(vr->r.space_need - vr->r.salvage_bytes) /
				    1048576.0,
			    (double)vr->r.space_free / 1048576.0);
	} else if (rc < 0) {
		ENGINE_FAIL(vr, FSCK_STAGE_RUN, rc, "%s",
			  rc == -ENOMEM ? "out of memory" : "");
	} else {
		vr->stage = FSCK_STAGE_DONE;
		fvol_progress(FSCK_PHASE_DONE, &vr->r, &v);
		fvol_audit_start(&v);
		fsck_audit(&vr->r, keyring_volume(v.kr)->layer[1].key_id);
	}
	keyring_free(v.kr);
	return rc;
}

void fsck_result_free(struct fsck_result *r)
{
	if (r == NULL)
		return;
	for (size_t i = 0; i < r->nlist; i++) {
		free(r->list[i].bpath);
		free(r->list[i].ppath);
		free(r->list[i].what);
	}
	free(r->list);
	r->list = NULL;
	r->nlist = 0;
}

const char *fsck_action_name(enum fsck_action_kind kind)
{
	switch (kind) {
	case FSCK_SALVAGED:
		return "SALVAGED";
	case FSCK_QUARANTINED:
		return "QUARANTINED";
	case FSCK_DESTROYED:
		return "DESTROYED";
	case FSCK_REWRITTEN:
		return "REWRITTEN";
	case FSCK_NOT_REPAIRED:
	default:
		return "NOT-REPAIRED";
	}
}

void fsck_audit_expired(const struct fsck_result *r)
{
	char detail[64];

	snprintf(detail, sizeof(detail), "%lu expired by fsck", r->expired);
	audit_event("transient_expire", NULL, "ok", detail);
}

void fsck_audit(const struct fsck_result *r, const char *key_id)
{
	char detail[160];

	if (!r->repair) {	/* every check is audited, with its key */
		snprintf(detail, sizeof(detail),
			 "%lu dirs, %lu files, %lu blocks checked, %lu problems",
			 r->dirs, r->files, r->blocks, r->problems);
		audit_event("fsck", key_id, r->problems ? "error" : "ok",
			    detail);
		return;
	}
	snprintf(detail, sizeof(detail),
		 "%lu problems, %lu salvaged (%lu blocks lost), %lu "
		 "quarantined, %lu destroyed, %lu not repaired",
		 r->problems, r->salvaged, r->lost_blocks, r->quarantined,
		 r->destroyed, r->unrepaired);
	audit_event("fsck_repair", NULL, r->unrepaired ? "error" : "ok",
		    detail);
}
