/* src/maint/rekey.c — walk a cipher directory and re-wrap every file header
 * under the current KEK generation (include/cmkfs/rekey.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/engine.h"
#include "cmkfs/header.h"
#include "cmkfs/cfile.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/journal.h"
#include "cmkfs/json.h"
#include "cmkfs/kv.h"
#include "cmkfs/linkfsck.h"
#include "cmkfs/linkset.h"
#include "cmkfs/log.h"
#include "cmkfs/migrate.h"
#include "cmkfs/names.h"
#include "cmkfs/rekey.h"
#include "cmkfs/repair.h"
#include "cmkfs/reseal.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"
#include "cmkfs/walk.h"

struct walk {
	int rootfd;
	struct keyring *kr;
	const struct rekey_cb *cb;
	struct rekey_progress p;
	bool counting;
	int quarantine;		/* > 0: inside fsck's quarantine */
	uint64_t pass_rewrapped;	/* old-generation headers in this pass */
	uint64_t pass_short;		/* files shorter than a header */
	struct timespec last, start;
	char path[PATH_MAX];
	/* full rekey */
	bool full, offline;
	uint32_t bs;
	struct migrate_keys mk;
	struct reseal_slot slot;
	struct reseal_batch batch;
	bool have_batch;
	uint64_t pass_old;	/* files, names, targets, xattrs moved */
};

static int report(struct walk *w, bool force)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!force && (now.tv_sec - w->last.tv_sec) * 1000000000L +
			      (now.tv_nsec - w->last.tv_nsec) < 200000000L)
		return 0;
	w->last = now;
	w->p.elapsed = (double)(now.tv_sec - w->start.tv_sec) +
		       (double)(now.tv_nsec - w->start.tv_nsec) / 1e9;
	if (w->cb == NULL || w->cb->progress == NULL)
		return 0;
	return w->cb->progress(&w->p, w->cb->arg) != 0 ? -ECANCELED : 0;
}

static void problem(struct walk *w, const char *what)
{
	w->p.damaged++;
	if (w->cb != NULL && w->cb->problem != NULL)
		w->cb->problem(w->path, what, w->cb->arg);
}

/* Names that are not files of the plaintext tree: the config, directory
 * ids, long-name side files, the sealed zone list. */
static bool skip_name(const char *n)
{
	if (!names_is_reserved(n))
		return false;
	/* Originals that fsck --repair set aside keep readable headers:
	 * re-wrap them too, or they could never be opened again. */
	if (strcmp(n, QUARANTINE_DIR) == 0)
		return false;
	if (names_is_tmp(n))
		return false;	/* a file in flight: re-wrap it too */
	/* By prefix, not names_is_longname(): a malformed long-name entry
	 * still holds a header to re-wrap. Its side file is skipped. */
	if (strncmp(n, LONGNAME_PREFIX, strlen(LONGNAME_PREFIX)) == 0)
		return names_is_side(n);
	return true;
}

static int rewrap_file(struct walk *w, int dfd, const char *name)
{
	uint8_t buf[HEADER_LEN];
	struct header h, nh;
	ssize_t n;
	int fd, rc;

	fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;	/* gone meanwhile */
	/* A live mount's reservation of a file's sealing count or re-key
	 * rewrites the header too: one read-modify-write at a time (the
	 * lock goes with the descriptor). */
	backing_lock_head(fd, HEADER_LEN, true);
	n = pread(fd, buf, sizeof(buf), 0);
	if (n < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	/* A temporary whose header is short or malformed is a create cut
	 * short by a crash (never named; fsck reports it) or, on a live
	 * mount, one whose creator re-wraps it (cfile.c cfile_create). */
	if (names_is_tmp(name) &&
	    ((size_t)n < sizeof(buf) ||
	     header_parse(buf, sizeof(buf), &h) < 0)) {
		close(fd);
		return 0;
	}
	if ((size_t)n < sizeof(buf)) {
		/* Being created right now, or damaged: a later pass looks
		 * again, the last one reports it. */
		if (w->quarantine == 0)
			w->pass_short++;
		close(fd);
		return 0;
	}
	rc = header_parse(buf, sizeof(buf), &h);
	if (rc == 0)
		rc = keyring_rewrap_header(w->kr, &h, &nh);
	if (rc == 1) {
		header_serialize(&nh, buf);
		/* One pwrite of 148 bytes inside the first sector: a reader
		 * sees the old or the new header, both valid now. */
		rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
		if (rc == 0) {
			w->p.rewrapped++;
			w->pass_rewrapped++;
		}
	} else if (rc == -EBADMSG || rc == -EKEYREJECTED) {
		/* In the quarantine unreadable files are expected. */
		if (w->p.pass == 2 && w->quarantine == 0)
			problem(w, rc == -EBADMSG ? "malformed file header" :
				"file header does not open under either "
				"KEK generation");
		rc = 0;
	}
	close(fd);
	return rc < 0 ? rc : 0;
}

/* walk_tree() callbacks of one pass: the names skip_name() refuses passed
 * by, the quarantine's subtree tracked, each regular file counted and
 * (unless counting) re-wrapped. */
static int pass_filter(const struct walk_entry *e, void *arg)
{
	struct walk *w = arg;

	if (w->full && names_is_tmp(e->name)) {
		/* Offline nothing is in flight: a temporary is a crash's
		 * leftover, under the old keys; gone with them. On a mount it
		 * may be a create in flight, named (and then re-sealed by a
		 * later pass) in a moment. */
		if (w->offline && !w->counting && e->type != DT_DIR)
			(void)unlinkat(e->dfd, e->name, 0);
		return WALK_SKIP;
	}
	if (w->full && strcmp(e->name, QUARANTINE_DIR) == 0)
		return WALK_SKIP;	/* refused non-empty at the start */
	return skip_name(e->name) ? WALK_SKIP : 0;
}

static void live_replaced(int dfd, const char *plain, void *arg)
{
	struct walk *w = arg;

	if (w->cb->live != NULL && w->cb->live->replaced != NULL)
		w->cb->live->replaced(dfd, plain, w->cb->live->arg);
}

static void ns_lock(struct walk *w, bool lock)
{
	if (w->cb != NULL && w->cb->live != NULL && w->cb->live->ns != NULL)
		w->cb->live->ns(lock, w->cb->live->arg);
}

/* A directory's names, symlink targets and its entries' xattrs under the
 * new name key, before the walk reads it. */
static int migrate(struct walk *w, int dfd, const char *bname)
{
	const struct migrate_cb mcb = { .replaced = live_replaced, .arg = w };
	struct migrate_stats st = { 0 };
	uint8_t dirid[DIRID_LEN];
	int rc;

	/* Files queued for re-sealing are locked: written out before the
	 * namespace lock, which a request waiting for one may hold. */
	rc = reseal_batch_flush(&w->batch);
	if (rc < 0)
		return rc;
	rc = dirtree_read_dirid(w->kr, dfd, bname, dirid);
	if (rc < 0) {
		problem(w, "directory id unreadable: names left as they are");
		return 0;
	}
	ns_lock(w, true);
	rc = migrate_dir(&w->mk, w->rootfd, dfd, dirid, &mcb, &st);
	/* Format 3: the id's record under the new secret (its entries were
	 * rebound as they were renamed; this one is its own). */
	if (rc == 0 && dirtree_bind_dirid(w->kr, dfd, NULL, bname) < 0)
		problem(w, "directory id could not be resealed under the new "
			   "key");
	ns_lock(w, false);
	w->p.names += st.names + st.links + st.xattrs;
	w->pass_old += st.names + st.links + st.xattrs;
	if (st.bad > 0 && w->p.pass >= 2)
		problem(w, "names, symlink targets or xattrs that open under "
			   "neither name key (see 'cmkfs fsck')");
	return rc;
}

/* An offline file queued in the batch: its own cfile and descriptor. */
struct off_file {
	struct cfile cf;
	int fd;
};

static void off_release(void *ctx)
{
	struct off_file *o = ctx;

	cfile_destroy(&o->cf);
	close(o->fd);
	free(o);
}

/* One regular file: fresh DEKs, every block re-sealed (queued in the
 * batch; a big one at once). */
static int reseal(struct walk *w, int dfd, const char *name, uint64_t size)
{
	struct off_file *o;
	int fd, rc;

	if (w->cb != NULL && w->cb->live != NULL) {
		rc = w->cb->live->reseal(dfd, name, &w->batch,
					 w->cb->live->arg);
	} else {
		fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return errno == ENOENT ? 0 : -errno;
		o = malloc(sizeof(*o));
		if (o == NULL) {
			close(fd);
			return -ENOMEM;
		}
		o->fd = fd;
		cfile_init(&o->cf, w->kr, w->bs, fd);
		o->cf.rootfd = w->rootfd;
		rc = reseal_batch_add(&w->batch, &o->cf, fd, false,
				      off_release, o);
	}
	if (rc == 1) {
		w->p.rewrapped++;
		w->pass_old++;
		w->p.bytes_done += size;
		rc = 0;
	} else if (rc == -EBADMSG || rc == -EKEYREJECTED) {
		if (w->quarantine == 0)
			problem(w, rc == -EBADMSG ?
				   "a block opens under neither key (damaged; "
				   "see 'cmkfs fsck')" :
				   "file header opens under neither KEK "
				   "generation");
		rc = 0;
	} else if (rc == -ENOENT) {
		rc = 0;
	}
	return rc;
}

static bool is_quarantine(const struct walk_entry *e)
{
	return e->depth == 0 && strcmp(e->name, QUARANTINE_DIR) == 0;
}

static int pass_enter(const struct walk_entry *e, void *arg)
{
	struct walk *w = arg;
	int fd, rc = 0;

	w->quarantine += is_quarantine(e);
	if (w->full && !w->counting) {
		fd = openat(e->dfd, e->name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return 0;	/* gone meanwhile: the walk passes it */
		snprintf(w->path, sizeof(w->path), "%s", e->path);
		rc = migrate(w, fd, e->name);
		close(fd);
	}
	return rc;
}

static void pass_leave(const struct walk_entry *e, void *arg)
{
	struct walk *w = arg;

	w->quarantine -= is_quarantine(e);
}

static int pass_file(const struct walk_entry *e, void *arg)
{
	struct walk *w = arg;
	int rc = 0;

	if (e->type != DT_REG)
		return 0;
	snprintf(w->path, sizeof(w->path), "%s", e->path); /* for problem() */
	w->p.done++;
	if (w->full) {
		struct stat st;
		uint64_t size = fstatat(e->dfd, e->name, &st,
					AT_SYMLINK_NOFOLLOW) == 0 ?
					(uint64_t)st.st_size : 0;

		if (w->counting)
			w->p.bytes_total += size;
		else
			rc = reseal(w, e->dfd, e->name, size);
	} else if (!w->counting) {
		rc = rewrap_file(w, e->dfd, e->name);
	}
	if (rc == 0)
		rc = report(w, false);
	return rc;
}

static int walk_dir(struct walk *w)
{
	const struct walk_tree_cb cb = {
		.want = WALK_ALL,
		.flags = WALK_F_PATH,
		.filter = pass_filter,
		.file = pass_file,
		.enter = pass_enter,
		.leave = pass_leave,
		.arg = w,
	};

	return walk_tree(w->rootfd, &cb);
}

static int pass(struct walk *w, const char *phase, bool counting)
{
	int rc;

	w->p.phase = phase;
	w->p.done = 0;
	w->counting = counting;
	w->pass_rewrapped = 0;
	w->pass_short = 0;
	w->pass_old = 0;
	w->p.bytes_done = 0;
	w->path[0] = '\0';
	rc = report(w, true);
	/* The root's names first (the walk reads it next), its own xattrs,
	 * and the transient-zone list. */
	if (rc == 0 && w->full && !counting) {
		struct migrate_stats st = { 0 };

		rc = migrate(w, w->rootfd, NULL);
		if (rc == 0)
			rc = migrate_xattrs(&w->mk, w->rootfd, &st);
		w->pass_old += st.xattrs;
		if (rc == 0) {
			rc = transient_reseal(w->rootfd, w->kr);
			w->pass_old += rc == 1;
			rc = rc < 0 ? rc : 0;
		}
		if (rc == 0) {	/* link sets: MACed under the secret */
			size_t n = 0;

			rc = linkset_remac_all(w->kr, w->rootfd, &n);
			w->pass_old += n;
		}
	}
	if (rc == 0)
		rc = walk_dir(w);
	if (rc == 0 && w->full && !counting)
		rc = reseal_batch_flush(&w->batch);
	if (rc == 0 && counting)
		w->p.total = w->p.done;
	return rc;
}

void rekey_progress_json(const struct rekey_progress *p, char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "{\"progress\":{\"phase\":\"%s\",\"from_gen\":%u,"
		 "\"to_gen\":%u,\"resumed\":%s,\"pass\":%u,\"total\":%llu,"
		 "\"done\":%llu,\"rewrapped\":%llu,\"damaged\":%llu,"
		 "\"full\":%s,\"bytes_total\":%llu,\"bytes_done\":%llu,"
		 "\"names\":%llu,\"elapsed_ms\":%llu}}",
		 p->phase, p->from_gen, p->to_gen, p->resumed ? "true" : "false",
		 p->pass, (unsigned long long)p->total,
		 (unsigned long long)p->done, (unsigned long long)p->rewrapped,
		 (unsigned long long)p->damaged, p->full ? "true" : "false",
		 (unsigned long long)p->bytes_total,
		 (unsigned long long)p->bytes_done,
		 (unsigned long long)p->names,
		 (unsigned long long)(p->elapsed * 1000));
}

void rekey_result_json(const struct rekey_progress *p, char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "{\"ok\":true,\"rekey\":{\"from_gen\":%u,\"to_gen\":%u,"
		 "\"resumed\":%s,\"files\":%llu,\"rewrapped\":%llu,"
		 "\"damaged\":%llu,\"passes\":%u,\"full\":%s,"
		 "\"bytes\":%llu,\"names\":%llu,\"elapsed_ms\":%llu}}",
		 p->from_gen, p->to_gen, p->resumed ? "true" : "false",
		 (unsigned long long)p->total, (unsigned long long)p->rewrapped,
		 (unsigned long long)p->damaged, p->pass,
		 p->full ? "true" : "false",
		 (unsigned long long)p->bytes_total,
		 (unsigned long long)p->names,
		 (unsigned long long)(p->elapsed * 1000));
}

static uint64_t get_u64(const struct json *j, const char *k)
{
	int64_t x = 0;

	return json_int(j, k, &x) == 0 && x > 0 ? (uint64_t)x : 0;
}

void rekey_progress_from_json(const struct json *obj,
			      struct rekey_progress *p, char *phase, size_t cap)
{
	const char *s = "";
	uint64_t x;
	bool b = false;

	if (json_str(obj, "phase", &s) < 0)
		s = "";
	snprintf(phase, cap, "%s", s);
	p->phase = phase;
	p->from_gen = (uint32_t)get_u64(obj, "from_gen");
	p->to_gen = (uint32_t)get_u64(obj, "to_gen");
	p->pass = (unsigned)get_u64(obj, "pass");
	p->total = get_u64(obj, "total");
	/* a result line names them "files" and "passes" */
	x = get_u64(obj, "files");
	if (x)
		p->total = x;
	p->done = get_u64(obj, "done");
	p->rewrapped = get_u64(obj, "rewrapped");
	p->damaged = get_u64(obj, "damaged");
	x = get_u64(obj, "passes");
	if (x)
		p->pass = (unsigned)x;
	if (json_bool(obj, "resumed", &b) < 0)
		b = false;
	p->resumed = b;
	if (json_bool(obj, "full", &b) < 0)
		b = false;
	p->full = b;
	p->bytes_total = get_u64(obj, "bytes_total");
	x = get_u64(obj, "bytes");
	if (x)
		p->bytes_total = x;
	p->bytes_done = get_u64(obj, "bytes_done");
	p->names = get_u64(obj, "names");
	p->elapsed = (double)get_u64(obj, "elapsed_ms") / 1000;
}

void rekey_audit(const struct rekey_progress *p, const char *key_id, int rc,
		 bool offline)
{
	char detail[160];

	snprintf(detail, sizeof(detail),
		 "%sgeneration %u to %u, %llu %s, %llu damaged%s%s",
		 p->full ? "full: " : "", p->from_gen, p->to_gen,
		 (unsigned long long)p->rewrapped,
		 p->full ? "files re-sealed" : "headers re-wrapped",
		 (unsigned long long)p->damaged, p->resumed ? ", resumed" : "",
		 offline ? ", offline" : "");
	audit_event("rekey", key_id, rc == 0 ? "ok" : "error",
		    rc == 0 ? detail : volio_strerror(rc));
}

static int persist(const struct volume *v, void *arg)
{
	return volio_write(*(int *)arg, v);
}

/* Begin or finish under the config writers' lock, from a keyring whose
 * config is the one on disk (a `cmkfs cmk` may have just replaced it). */
static int locked_step(int rootfd, struct keyring *kr, struct keyprov *prov[2],
		       bool begin, bool full)
{
	struct volume v;
	int lk, rc;

	lk = volio_lock_config(rootfd);
	if (lk < 0)
		return lk;
	rc = volio_same_as_disk(rootfd, keyring_volume_copy(kr, &v));
	if (rc == 0)
		rc = begin ? keyring_rekey_begin(kr, prov, full, persist, &rootfd) :
			     keyring_rekey_finish(kr, persist, &rootfd);
	volio_unlock_config(lk);
	return rc;
}

/* A non-empty quarantine would keep files and names under the old keys:
 * the operator decides about it first. */
static int quarantine_empty(int rootfd)
{
	int fd = openat(rootfd, QUARANTINE_DIR,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = dirtree_is_empty(fd);
	close(fd);
	if (rc < 0)
		return rc;
	return rc == 1 ? 0 : -ENOTEMPTY;
}

/* What a full rekey needs before its passes: the name keys of both
 * generations and the reseal record (a crash's record finished first). */
static int full_setup(struct walk *w)
{
	unsigned done = 0;
	int jfd, rc;

	rc = migrate_keys_get(w->kr, &w->mk);
	if (rc < 0)
		return rc;
	jfd = journal_open(w->rootfd, true);
	if (jfd < 0)
		return jfd;
	/* Offline, records of a killed run are ours to finish; a mount
	 * finished them before it served (and its own, of a run that
	 * failed, are finished by the mount's next start or by fsck
	 * --repair). */
	if (w->offline)
		rc = journal_recover(w->rootfd, jfd, w->kr, w->bs, &done);
	if (rc == 0)
		rc = reseal_slot_open(&w->slot, jfd, "rekey");
	if (rc == 0)
		rc = reseal_batch_init(&w->batch, &w->slot);
	w->have_batch = rc == 0;
	if (rc < 0)
		close(jfd);
	return rc;
}

/* The name migration binds a renamed file to both names before the
 * rename and to the new one after it (migrate.c rebind_file); a run
 * killed between leaves the header naming the old place too, and the
 * rerun, which finds the name current, never narrows it; a file of two
 * names passes through a link set of three on the way, which a kill can
 * leave with no file naming it. Offline, after the passes, what fsck
 * would name there (linkfsck.h) is repaired the way fsck --repair does. */
struct tidy {
	struct linkfsck *lf;
	struct walk *w;
	int rc;
};

static int tidy_file(const struct walk_entry *e, void *arg)
{
	struct tidy *t = arg;
	char bpath[PATH_MAX];
	struct header h;
	struct stat st;
	int fd, rc;

	if (e->type != DT_REG)
		return 0;
	fd = openat(e->dfd, e->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return 0;
	rc = fstat(fd, &st) < 0 ? -errno : cfile_read_header(fd, &h);
	close(fd);
	if (rc < 0 || h.version != HEADER_VERSION_3)
		return 0;	/* damaged: fsck names it */
	if (snprintf(bpath, sizeof(bpath), "./%s", e->path) >=
	    (int)sizeof(bpath))
		return -ENAMETOOLONG;
	return linkfsck_add(t->lf, &h, true, &st, bpath, NULL);
}

static void tidy_found(const struct linkfsck_finding *f, void *arg)
{
	struct tidy *t = arg;
	int rc = 0;

	if (f->kind == LINKFSCK_STALE)
		rc = linkfsck_rebind(t->lf, f->file, t->w->bs);
	else if (f->kind == LINKFSCK_ORPHAN && unlinkat(f->dfd, f->name, 0) < 0)
		rc = -errno;
	if (rc < 0 && rc != -ENOENT && rc != -ESTALE && t->rc == 0)
		t->rc = rc;
}

static int tidy_bindings(struct walk *w)
{
	const struct walk_tree_cb cb = { .want = WALK_ENTRIES,
					 .flags = WALK_F_PATH,
					 .file = tidy_file };
	struct walk_tree_cb c = cb;
	struct tidy t = { .w = w };
	unsigned long unjudged = 0;
	int rc;

	if (keyring_version(w->kr) < 3)
		return 0;
	rc = linkfsck_new(w->rootfd, w->kr, ".", &t.lf);
	if (rc == 0)
		rc = linkfsck_sets_load(t.lf);
	c.arg = &t;
	if (rc == 0)
		rc = walk_tree(w->rootfd, &c);
	if (rc == 0)
		rc = linkfsck_judge(t.lf, false, tidy_found, &t, &unjudged);
	linkfsck_free(t.lf);
	return rc < 0 ? rc : t.rc;
}

int rekey_run(int rootfd, struct keyring *kr, struct keyprov *prov[2],
	      const struct rekey_cb *cb, struct rekey_progress *out)
{
	struct walk w = { .rootfd = rootfd, .kr = kr, .cb = cb };
	struct keyprov *bp[2] = { prov != NULL ? prov[0] : NULL,
				  prov != NULL ? prov[1] : NULL };
	struct volume v;
	int rc = 0;

	w.slot.fd = -1;
	clock_gettime(CLOCK_MONOTONIC, &w.start);
	keyring_volume_copy(kr, &v);
	w.bs = v.block_size;
	w.offline = cb == NULL || cb->live == NULL;
	w.p.resumed = (v.flags & VOLUME_FLAG_REKEY) != 0;
	w.full = (v.flags & VOLUME_FLAG_FULL) ||
		 (!w.p.resumed && cb != NULL && cb->full);
	w.p.full = w.full;
	w.p.from_gen = w.p.resumed ? v.prev_gen : v.kek_gen;
	w.p.to_gen = w.p.resumed ? v.kek_gen : v.kek_gen + 1;
	w.p.phase = "begin";
	if (cb != NULL && cb->full && w.p.resumed && !w.full)
		rc = -EINPROGRESS;	/* a header-only rekey: finish it */
	if (rc == 0 && w.full && !w.p.resumed)
		rc = quarantine_empty(rootfd);
	if (rc == 0)
		rc = report(&w, true);
	if (rc == 0 && !w.p.resumed && cb != NULL && cb->new_c != NULL)
		bp[1] = cb->new_c;	/* cmk enable: layer C to the CMK */
	if (rc == 0 && !w.p.resumed)
		rc = locked_step(rootfd, kr, bp, true, w.full);
	if (rc == 0 && w.full)
		rc = full_setup(&w);
	if (rc == 0)
		rc = pass(&w, "count", true);
	/* Re-wrap until a whole pass finds no header of the old generation
	 * and no half-created file (renames during a pass can hide a file
	 * from it; files being created finish meanwhile); a full rekey
	 * until one finds nothing under the old keys at all. */
	for (w.p.pass = 1; rc == 0; w.p.pass++) {
		rc = pass(&w, w.p.pass == 1 ? (w.full ? "reseal" : "rewrap") :
					      "verify",
			  false);
		if (rc < 0 || (w.p.pass > 1 && w.pass_rewrapped == 0 &&
			       w.pass_old == 0 &&
			       (w.pass_short == 0 || w.p.pass >= 4)))
			break;
		if (w.p.pass >= 16) {
			rc = -EAGAIN;	/* the tree keeps changing under us */
			break;
		}
	}
	if (rc == 0 && w.pass_short > 0) {
		w.p.damaged += w.pass_short;
		if (cb != NULL && cb->problem != NULL)
			cb->problem("", "files shorter than a header (see "
				    "'cmkfs fsck')", cb->arg);
	}
	/* Offline nothing is in flight: what a killed run's renames left
	 * (bindings wider than the names, link sets no file names) goes. */
	if (rc == 0 && w.full && w.offline)
		rc = tidy_bindings(&w);
	if (rc == 0) {
		w.p.phase = "sync";
		rc = report(&w, true);
	}
	if (rc == 0 && syncfs(rootfd) < 0)
		rc = -errno;
	if (rc == 0) {
		w.p.phase = "finish";
		rc = locked_step(rootfd, kr, NULL, false, false);
	}
	if (rc == 0)
		rc = report(&w, true);
	if (w.have_batch)	/* after an error: what is queued goes back */
		reseal_batch_destroy(&w.batch);
	if (w.slot.fd >= 0) {
		int jfd = w.slot.jfd;

		/* emptied after each file: nothing left in flight */
		reseal_slot_close(&w.slot, rc == 0);
		close(jfd);
	}
	migrate_keys_wipe(&w.mk);
	if (out != NULL)
		*out = w.p;
	return rc;
}

/* ": <Key Vault's last error>" when the customer layer is a CMK. */
static const char *kv_sep(const struct volume *v)
{
	return v->layer[1].prov == KPROV_AKV ? ": " : "";
}

static const char *kv_why(const struct volume *v)
{
	return v->layer[1].prov == KPROV_AKV ? kv_last_error() : "";
}

int rekey_volume(const char *cipherdir, const char *service_key,
		 const struct rekey_cb *cb, struct rekey_result *r)
{
	struct keyprov *prov[2] = { NULL, NULL };
	struct keyring *kr = NULL;
	struct volume v;
	char id[VOLUME_ID_HEX_LEN];
	int fd, rc;

	memset(r, 0, sizeof(*r));
	/* The offline lock is held until fd is closed: no mount and no other
	 * offline rekey can start meanwhile. */
	fd = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_lock_offline(fd);
	if (rc == 0)
		rc = volio_read(fd, &v);
	if (rc < 0) {
		ENGINE_FAIL(r, REKEY_STAGE_OPEN, rc, "%s: %s", cipherdir,
		     volio_strerror(rc));
		goto out;
	}
	volume_id_hex(&v, id);
	audit_set_volume(id);
	rc = volio_providers(&v, service_key, prov);
	if (rc == 0)
		rc = keyring_open(&v, prov, &kr);
	if (rc == -EUCLEAN) {
		ENGINE_FAIL(r, REKEY_STAGE_OPEN, rc, "%s: %s", cipherdir,
			    volio_strerror(rc));
		goto out;
	}
	if (rc < 0) {
		ENGINE_FAIL(r, REKEY_STAGE_UNLOCK, rc, "%s: cannot unlock: %s%s%s",
		     cipherdir, volio_strerror(rc), kv_sep(&v), kv_why(&v));
		audit_event("rekey", v.layer[1].key_id, "denied",
			    volio_strerror(rc));
		goto out;
	}
	rc = rekey_run(fd, kr, prov, cb, &r->p);
	rekey_audit(&r->p, v.layer[1].key_id, rc, true);
	if (rc < 0) {
		ENGINE_FAIL(r, REKEY_STAGE_RUN, rc, "%s: %s%s%s", cipherdir,
		     volio_strerror(rc), kv_sep(&v), kv_why(&v));
		goto out;
	}
	r->stage = REKEY_STAGE_DONE;
out:
	keyring_free(kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	if (fd >= 0)
		close(fd);
	return rc;
}
