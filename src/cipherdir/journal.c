/* src/fs/journal.c — truncate records left by a crash (journal.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/file.h"
#include "cmkfs/header.h"
#include "cmkfs/journal.h"
#include "cmkfs/log.h"
#include "cmkfs/names.h"

#define JOURNAL_MAX 4096	/* records looked for in one recovery */
#define WALK_DEPTH 256

struct jwalk {
	int jfd;
	struct keyring *kr;
	uint32_t bs;
	char (*names)[JOURNAL_NAME_LEN + 1];
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
	uint8_t buf[HEADER_LEN];
	char id[JOURNAL_NAME_LEN + 1];
	struct header h;
	struct cfile cf;
	int fd, rc;

	fd = openat(dfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	if (backing_pread_full(fd, buf, sizeof(buf), 0) < 0 ||
	    header_parse(buf, sizeof(buf), &h) < 0)
		goto out;
	cfile_journal_name(h.file_id, id);
	for (size_t i = 0; i < w->n; i++) {
		if (w->found[i] || strcmp(w->names[i], id) != 0)
			continue;
		w->found[i] = true;
		w->left--;
		cfile_init(&cf, w->kr, w->bs, fd);
		rc = cfile_load(&cf, fd);
		if (rc == 0)
			rc = cfile_resolve_truncate(&cf, fd, w->jfd, false);
		if (rc == 1)
			w->completed++;
		else if (rc < 0)
			log_err("%s/%s: an interrupted truncate could not be "
				"completed: %s", JOURNAL_DIR, id, strerror(-rc));
		cfile_destroy(&cf);
		break;
	}
out:
	close(fd);
}

/* A directory stream of dfd (O_PATH too), or NULL with errno set. */
static DIR *stream(int dfd)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;

	if (fd < 0)
		return NULL;
	d = fdopendir(fd);
	if (d == NULL) {
		int e = errno;

		close(fd);
		errno = e;
	}
	return d;
}

static int walk(struct jwalk *w, int dfd, int depth)
{
	struct dirent *de;
	DIR *d;
	int fd;

	if (depth > WALK_DEPTH)
		return 0;
	d = stream(dfd);
	if (d == NULL)
		return -errno;
	fd = dirfd(d);
	while (w->left > 0 && (de = readdir(d)) != NULL) {
		unsigned char t = de->d_type;

		/* reserved names hold no files, but long names are entries */
		if ((strncmp(de->d_name, RESERVED_PREFIX,
			     sizeof(RESERVED_PREFIX) - 1) == 0 &&
		     !names_is_longname(de->d_name)) ||
		    strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (t == DT_UNKNOWN) {
			struct stat st;

			if (fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			t = S_ISDIR(st.st_mode) ? DT_DIR :
			    S_ISREG(st.st_mode) ? DT_REG : DT_UNKNOWN;
		}
		if (t == DT_REG) {
			visit_file(w, fd, de->d_name);
		} else if (t == DT_DIR) {
			int sub = openat(fd, de->d_name, O_RDONLY | O_DIRECTORY |
							 O_NOFOLLOW | O_CLOEXEC);

			if (sub >= 0) {
				(void)walk(w, sub, depth + 1);
				close(sub);
			}
		}
	}
	closedir(d);
	return 0;
}

int journal_recover(int rootfd, int jfd, struct keyring *kr, uint32_t bs,
		    unsigned *completed)
{
	struct jwalk w = { .jfd = jfd, .kr = kr, .bs = bs };
	struct dirent *de;
	DIR *d;
	int rc = 0;

	*completed = 0;
	d = stream(jfd);
	if (d == NULL)
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (!hexname(de->d_name) || w.n == JOURNAL_MAX)
			continue;
		if (w.n % 64 == 0) {
			void *p = realloc(w.names, (w.n + 64) * sizeof(*w.names));

			if (p == NULL) {
				rc = -ENOMEM;
				break;
			}
			w.names = p;
		}
		memcpy(w.names[w.n++], de->d_name, JOURNAL_NAME_LEN + 1);
	}
	closedir(d);
	if (rc == 0 && w.n > 0) {
		w.found = calloc(w.n, sizeof(*w.found));
		w.left = w.n;
		rc = w.found ? walk(&w, rootfd, 0) : -ENOMEM;
		/* the file is gone (unlinked after the crash's shrink) */
		for (size_t i = 0; rc == 0 && i < w.n; i++)
			if (!w.found[i])
				(void)unlinkat(jfd, w.names[i], 0);
		if (rc == 0)
			log_info("%zu truncate record(s) after a crash: %u "
				 "file(s) completed", w.n, w.completed);
	}
	*completed = w.completed;
	free(w.found);
	free(w.names);
	return rc;
}
