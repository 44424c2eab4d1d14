/* src/cipherdir/journal.c — truncate records left by a crash (journal.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/cfile.h"
#include "cmkfs/header.h"
#include "cmkfs/journal.h"
#include "cmkfs/log.h"
#include "cmkfs/names.h"
#include "cmkfs/reseal.h"
#include "cmkfs/walk.h"

#define JOURNAL_MAX 4096	/* records looked for in one recovery */
#define WALK_DEPTH 256

struct jwalk {
	int jfd;
	int rootfd;
	struct keyring *kr;
	uint32_t bs;
	struct jrec {
		char id[JOURNAL_NAME_LEN + 1];	/* the file's id in hex */
		char rec[64];	/* reseal record name, "" for a truncate */
		bool failed;	/* kept: recovery of this file failed */
	} *names;
	bool *found;
	size_t n, left;
	unsigned completed;
};

int journal_open(int rootfd, bool create)
{
	int fd;

	if (create && mkdirat(rootfd, JOURNAL_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(rootfd, JOURNAL_DIR,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static bool hexname(const char *n)
{
	if (strlen(n) != JOURNAL_NAME_LEN)
		return false;
	for (const char *p = n; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static void visit_file(struct jwalk *w, int dfd, const char *name)
{
	char id[JOURNAL_NAME_LEN + 1], wbuf[4096];
	const char *why = NULL;
	struct header h;
	struct cfile cf;
	int fd, rc;

	fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (cfile_read_header(fd, &h) < 0)
		goto out;
	cfile_journal_name(h.file_id, id);
	/* A reseal first: its file's header may still be the old one,
	 * which a truncate record's block (sealed before) also needs. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < w->n; i++) {
			struct jrec *j = &w->names[i];

			if (w->found[i] || (j->rec[0] != '\0') != (pass == 0) ||
			    strcmp(j->id, id) != 0)
				continue;
			w->found[i] = true;
			w->left--;
			why = NULL;
			cfile_init(&cf, w->kr, w->bs, fd);
			cf.rootfd = w->rootfd;
			if (j->rec[0] != '\0') {
				rc = reseal_recover(&cf, fd, w->jfd, j->rec,
						    false);
			} else {
				rc = cfile_load(&cf, fd);
				if (rc == 0)
					rc = cfile_resolve_truncate(
						&cf, fd, w->jfd, false, &why);
			}
			j->failed = rc < 0;
			if (rc == 1)
				w->completed++;
			else if (rc < 0 && why != NULL)
				log_err("%s: truncate record %s/%s refused: %s; "
					"kept, the file reads EIO (cmkfs fsck "
					"names it, --repair sets the record "
					"aside)",
					cfile_where(&cf, wbuf, sizeof(wbuf)),
					JOURNAL_DIR, id, why);
			else if (rc < 0)
				log_err("%s/%s: an interrupted %s could not be "
					"completed: %s", JOURNAL_DIR,
					j->rec[0] ? j->rec : id,
					j->rec[0] ? "reseal" : "truncate",
					strerror(-rc));
			cfile_destroy(&cf);
		}
	}
out:
	close(fd);
}

/* walk_tree() callback: stops (1) once every record's file is found. */
static int found_file(const struct walk_entry *e, void *arg)
{
	struct jwalk *w = arg;

	if (e->type == DT_REG)
		visit_file(w, e->dfd, e->name);
	return w->left > 0 ? 0 : 1;
}

/* Reserved names hold no files, but long names are entries. */
static int walk(struct jwalk *w, int rootfd)
{
	const struct walk_tree_cb cb = {
		.want = WALK_ENTRIES,
		.flags = WALK_F_SKIP_ERRORS,
		.max_depth = WALK_DEPTH,
		.file = found_file,
		.arg = w,
	};
	int rc = walk_tree(rootfd, &cb);

	return rc < 0 ? rc : 0;
}

static int truncate_at(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (ftruncate(fd, 0) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

static bool rec_failed(const struct jwalk *w, const char *rec)
{
	for (size_t i = 0; i < w->n; i++)
		if (w->names[i].failed && strcmp(w->names[i].rec, rec) == 0)
			return true;
	return false;
}

static int list_add(struct jwalk *w, const char *id_hex, const char *rec)
{
	void *p;

	if (w->n == JOURNAL_MAX)
		return 0;
	if (w->n % 64 == 0) {
		p = realloc(w->names, (w->n + 64) * sizeof(*w->names));
		if (p == NULL)
			return -ENOMEM;
		w->names = p;
	}
	memcpy(w->names[w->n].id, id_hex, JOURNAL_NAME_LEN + 1);
	w->names[w->n].failed = false;
	snprintf(w->names[w->n].rec, sizeof(w->names[w->n].rec), "%s", rec);
	w->n++;
	return 0;
}

static int list_record(const struct walk_entry *e, void *arg)
{
	struct jwalk *w = arg;
	uint8_t ids[RESEAL_BATCH_FILES][FILE_ID_LEN];
	char hex[JOURNAL_NAME_LEN + 1];
	bool reseal = strncmp(e->name, RESEAL_PREFIX,
			      strlen(RESEAL_PREFIX)) == 0;
	size_t n = 0;
	int rc = 0;

	if ((!hexname(e->name) && !reseal) ||
	    strlen(e->name) >= sizeof(w->names[0].rec))
		return 0;
	if (!reseal)
		return list_add(w, e->name, "");
	/* an empty reseal record: nothing was in flight */
	if (reseal_record_ids(w->jfd, e->name, ids, RESEAL_BATCH_FILES,
			      &n) != 1)
		return 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		cfile_journal_name(ids[i], hex);
		rc = list_add(w, hex, e->name);
	}
	return rc;
}

int journal_recover(int rootfd, int jfd, struct keyring *kr, uint32_t bs,
		    unsigned *completed)
{
	struct jwalk w = { .jfd = jfd, .rootfd = rootfd, .kr = kr, .bs = bs };
	int rc;

	*completed = 0;
	/* the records' names; a stream failing midway ends the list */
	rc = walk_entries(jfd, WALK_ALL, WALK_F_SKIP_ERRORS, list_record, &w);
	if (rc == 0 && w.n > 0) {
		w.found = calloc(w.n, sizeof(*w.found));
		w.left = w.n;
		rc = w.found ? walk(&w, rootfd) : -ENOMEM;
		/* the file is gone (unlinked after the crash's shrink) */
		/* A reseal record is emptied once all its files are done
		 * (a batch names several), kept for reuse. */
		for (size_t i = 0; rc == 0 && i < w.n; i++)
			if (!w.found[i] && w.names[i].rec[0] == '\0')
				(void)unlinkat(jfd, w.names[i].id, 0);
			else if (w.names[i].rec[0] != '\0' &&
				 !rec_failed(&w, w.names[i].rec))
				(void)truncate_at(jfd, w.names[i].rec);
		if (rc == 0)
			log_info("%zu truncate or reseal record(s) after a "
				 "crash: %u file(s) completed", w.n,
				 w.completed);
	}
	*completed = w.completed;
	free(w.found);
	free(w.names);
	return rc;
}
