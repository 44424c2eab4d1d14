/* src/maint/rekey.c — walk a cipher directory and re-wrap every file header
 * under the current KEK generation (include/cmkfs/rekey.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/engine.h"
#include "cmkfs/header.h"
#include "cmkfs/json.h"
#include "cmkfs/kv.h"
#include "cmkfs/names.h"
#include "cmkfs/rekey.h"
#include "cmkfs/repair.h"
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
	struct timespec last;
	char path[PATH_MAX];
};

static int report(struct walk *w, bool force)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!force && (now.tv_sec - w->last.tv_sec) * 1000000000L +
			      (now.tv_nsec - w->last.tv_nsec) < 200000000L)
		return 0;
	w->last = now;
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
	(void)arg;
	return skip_name(e->name) ? WALK_SKIP : 0;
}

static bool is_quarantine(const struct walk_entry *e)
{
	return e->depth == 0 && strcmp(e->name, QUARANTINE_DIR) == 0;
}

static int pass_enter(const struct walk_entry *e, void *arg)
{
	struct walk *w = arg;

	w->quarantine += is_quarantine(e);
	return 0;
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
	if (!w->counting)
		rc = rewrap_file(w, e->dfd, e->name);
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
	w->path[0] = '\0';
	rc = report(w, true);
	if (rc == 0)
		rc = walk_dir(w);
	if (rc == 0 && counting)
		w->p.total = w->p.done;
	return rc;
}

void rekey_progress_json(const struct rekey_progress *p, char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "{\"progress\":{\"phase\":\"%s\",\"from_gen\":%u,"
		 "\"to_gen\":%u,\"resumed\":%s,\"pass\":%u,\"total\":%llu,"
		 "\"done\":%llu,\"rewrapped\":%llu,\"damaged\":%llu}}",
		 p->phase, p->from_gen, p->to_gen, p->resumed ? "true" : "false",
		 p->pass, (unsigned long long)p->total,
		 (unsigned long long)p->done, (unsigned long long)p->rewrapped,
		 (unsigned long long)p->damaged);
}

void rekey_result_json(const struct rekey_progress *p, char *buf, size_t cap)
{
	snprintf(buf, cap,
		 "{\"ok\":true,\"rekey\":{\"from_gen\":%u,\"to_gen\":%u,"
		 "\"resumed\":%s,\"files\":%llu,\"rewrapped\":%llu,"
		 "\"damaged\":%llu,\"passes\":%u}}",
		 p->from_gen, p->to_gen, p->resumed ? "true" : "false",
		 (unsigned long long)p->total, (unsigned long long)p->rewrapped,
		 (unsigned long long)p->damaged, p->pass);
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
}

void rekey_audit(const struct rekey_progress *p, const char *key_id, int rc,
		 bool offline)
{
	char detail[160];

	snprintf(detail, sizeof(detail),
		 "generation %u to %u, %llu headers re-wrapped, %llu damaged%s%s",
		 p->from_gen, p->to_gen, (unsigned long long)p->rewrapped,
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
		       bool begin)
{
	struct volume v;
	int lk, rc;

	lk = volio_lock_config(rootfd);
	if (lk < 0)
		return lk;
	rc = volio_same_as_disk(rootfd, keyring_volume_copy(kr, &v));
	if (rc == 0)
		rc = begin ? keyring_rekey_begin(kr, prov, persist, &rootfd) :
			     keyring_rekey_finish(kr, persist, &rootfd);
	volio_unlock_config(lk);
	return rc;
}

int rekey_run(int rootfd, struct keyring *kr, struct keyprov *prov[2],
	      const struct rekey_cb *cb, struct rekey_progress *out)
{
	struct walk w = { .rootfd = rootfd, .kr = kr, .cb = cb };
	struct volume v;
	int rc;

	keyring_volume_copy(kr, &v);
	w.p.resumed = (v.flags & VOLUME_FLAG_REKEY) != 0;
	w.p.from_gen = w.p.resumed ? v.prev_gen : v.kek_gen;
	w.p.to_gen = w.p.resumed ? v.kek_gen : v.kek_gen + 1;
	w.p.phase = "begin";
	rc = report(&w, true);
	if (rc == 0 && !w.p.resumed)
		rc = locked_step(rootfd, kr, prov, true);
	if (rc == 0)
		rc = pass(&w, "count", true);
	/* Re-wrap until a whole pass finds no header of the old generation
	 * and no half-created file (renames during a pass can hide a file
	 * from it; files being created finish meanwhile). */
	for (w.p.pass = 1; rc == 0; w.p.pass++) {
		rc = pass(&w, w.p.pass == 1 ? "rewrap" : "verify", false);
		if (rc < 0 || (w.p.pass > 1 && w.pass_rewrapped == 0 &&
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
	if (rc == 0) {
		w.p.phase = "sync";
		rc = report(&w, true);
	}
	if (rc == 0 && syncfs(rootfd) < 0)
		rc = -errno;
	if (rc == 0) {
		w.p.phase = "finish";
		rc = locked_step(rootfd, kr, NULL, false);
	}
	if (rc == 0)
		rc = report(&w, true);
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
