/* src/maint/repair.c — salvage into lost+found, quarantine of what cannot be
 * read (include/cmkfs/repair.h, doc/OPERATIONS.md "fsck"). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/block.h"
#include "cmkfs/cfile.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/header.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/log.h"
#include "cmkfs/names.h"
#include "cmkfs/repair.h"
#include "cmkfs/secmem.h"
#include "cmkfs/walk.h"

#define CHUNK_BYTES (1u << 20)	/* plaintext per cfile_write */
#define XLIST_MAX 65536
#define XVAL_MAX 65536
#define DIROPEN (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)

struct repair {
	int rootfd;		/* the cipher directory; not owned */
	int qfd;		/* QUARANTINE_DIR/<run>, -1 until first used */
	char run[80];		/* its path relative to the cipher root */
	struct keyring *kr;
	uint32_t bs;
	/* repair_set_tick(): progress of a salvage's copy */
	void (*tick)(void *arg, uint64_t bytes);
	void *tick_arg;
};

int repair_open(int rootfd, struct keyring *kr, struct repair **out)
{
	struct repair *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return -ENOMEM;
	r->rootfd = rootfd;
	r->qfd = -1;
	r->kr = kr;
	r->bs = keyring_block_size(kr);
	*out = r;
	return 0;
}

void repair_set_tick(struct repair *r, void (*tick)(void *arg, uint64_t bytes),
		     void *arg)
{
	r->tick = tick;
	r->tick_arg = arg;
}

void repair_close(struct repair *r)
{
	if (r == NULL)
		return;
	if (r->qfd >= 0)
		close(r->qfd);
	free(r);
}

/* QUARANTINE_DIR/<UTC time of the run>: made on first use, ".2", ".3" ...
 * for a second run within the same second. */
static int run_dir(struct repair *r)
{
	char stamp[32], name[48];
	time_t now = time(NULL);
	struct tm tm;
	int qfd, rc = -EEXIST;

	if (r->qfd >= 0)
		return 0;
	if (mkdirat(r->rootfd, QUARANTINE_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	qfd = openat(r->rootfd, QUARANTINE_DIR, DIROPEN);
	if (qfd < 0)
		return -errno;
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	for (int i = 1; i <= 1000 && rc == -EEXIST; i++) {
		if (i == 1)
			snprintf(name, sizeof(name), "%s", stamp);
		else
			snprintf(name, sizeof(name), "%s.%d", stamp, i);
		rc = mkdirat(qfd, name, 0700) < 0 ? -errno : 0;
	}
	if (rc == 0) {
		r->qfd = openat(qfd, name, DIROPEN);
		rc = r->qfd < 0 ? -errno : 0;
		snprintf(r->run, sizeof(r->run), QUARANTINE_DIR "/%s", name);
	}
	if (rc == 0)
		rc = backing_fsync_dir(qfd);
	if (rc == 0)
		rc = backing_fsync_dir(r->rootfd);
	if (rc < 0 && r->qfd >= 0) {	/* not durable: try again next time */
		close(r->qfd);
		r->qfd = -1;
	}
	close(qfd);
	return rc;
}

/* The quarantine's copy of backing directory rel_dir ("a/b"), made on the
 * way. It gets a copy of the source's cmkfs.dirid, so that the names set
 * aside in it can still be tried (they are bound to that id, §4.1). */
static int mirror(struct repair *r, int srcfd, const char *rel_dir, int *out)
{
	char comp[ENCNAME_MAX];
	uint8_t id[DIRID_RAW_MAX];
	size_t len = 0;
	const char *p = rel_dir;
	int fd, rc;

	rc = run_dir(r);
	if (rc < 0)
		return rc;
	fd = openat(r->qfd, ".", DIROPEN);
	if (fd < 0)
		return -errno;
	while (*p != '\0') {
		size_t n = strcspn(p, "/");
		int next;

		if (n == 0 || n >= sizeof(comp)) {
			close(fd);
			return -EINVAL;
		}
		memcpy(comp, p, n);
		comp[n] = '\0';
		p += n + (p[n] == '/');
		if (mkdirat(fd, comp, 0700) == 0) {
			/* The path to what is moved here must be durable
			 * before the move out of its directory is. */
			rc = backing_fsync_dir(fd);
			if (rc < 0) {
				close(fd);
				return rc;
			}
		} else if (errno != EEXIST) {
			rc = -errno;
			close(fd);
			return rc;
		}
		next = openat(fd, comp, DIROPEN);
		rc = -errno;
		close(fd);
		if (next < 0)
			return rc;
		fd = next;
	}
	if (faccessat(fd, DIRID_FILE, F_OK, AT_SYMLINK_NOFOLLOW) < 0 &&
	    dirtree_dirid_raw(srcfd, id, &len) == 0 &&
	    backing_replace(fd, DIRID_FILE, id, len, 0400) < 0)
		log_warn("quarantine: cannot copy a directory id (names set "
			 "aside there cannot be decrypted by hand)");
	*out = fd;
	return 0;
}

/* A long symlink dfd/name, already in the quarantine, takes its target
 * along: LINKS_DIR/<id> goes to <run>/LINKS_DIR/<id>, so that the link
 * set aside can still be read by hand and its side file is no orphan in
 * the volume. Moved when no other link of the symlink is left, copied
 * when one is (the volume's link still needs it). A failure only warns:
 * the side file left behind is reported as an orphan by the next fsck
 * and set aside then. */
static void carry_target(struct repair *r, int dfd, const char *name)
{
	char m[LINKTGT_MARKER_LEN + 1], *buf = NULL;
	const char *id;
	struct stat st;
	size_t len = 0;
	ssize_t n;
	int lfd, qfd = -1, rc;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISLNK(st.st_mode) || st.st_size != (off_t)LINKTGT_MARKER_LEN)
		return;
	n = readlinkat(dfd, name, m, sizeof(m));
	if (n < 0 || !linktgt_is_marker(m, (size_t)n))
		return;
	m[n] = '\0';
	id = linktgt_marker_id(m);
	lfd = openat(r->rootfd, LINKS_DIR, DIROPEN);
	if (lfd < 0)
		return;		/* no side file to carry */
	if (faccessat(lfd, id, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
		close(lfd);
		return;
	}
	rc = mirror(r, lfd, LINKS_DIR, &qfd);
	if (rc == 0 && st.st_nlink == 1) {
		/* Same id, same side file (ids are random): a copy already
		 * there makes the original redundant. */
		if (renameat2(lfd, id, qfd, id, RENAME_NOREPLACE) < 0 &&
		    (errno != EEXIST || unlinkat(lfd, id, 0) < 0))
			rc = -errno;
		if (rc == 0)
			rc = backing_fsync_dir(qfd);
		if (rc == 0)
			rc = backing_fsync_dir(lfd);
	} else if (rc == 0) {
		buf = malloc(ENCLINK_MAX);
		rc = buf == NULL ? -ENOMEM :
				   backing_read_small(lfd, id, buf, ENCLINK_MAX,
						      &len);
		if (rc == 0)
			rc = backing_replace(qfd, id, buf, len, 0400);
		free(buf);
	}
	if (rc < 0)
		log_warn("quarantine: a symlink's target (" LINKS_DIR
			 ") stays behind: %s", strerror(-rc));
	if (qfd >= 0)
		close(qfd);
	close(lfd);
}

static int carry_entry(const struct walk_entry *e, void *arg)
{
	if (e->type == DT_LNK)
		carry_target(arg, e->dfd, e->name);
	return 0;
}

/* The targets of every long symlink in what was just moved to mfd/bname:
 * the entry itself, or a directory's whole subtree. */
static void carry_targets(struct repair *r, int mfd, const char *bname)
{
	const struct walk_tree_cb cb = { .want = WALK_ENTRIES,
					 .flags = WALK_F_SKIP_ERRORS,
					 .file = carry_entry,
					 .arg = r };
	struct stat st;
	int fd;

	if (fstatat(mfd, bname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return;
	if (S_ISLNK(st.st_mode)) {
		carry_target(r, mfd, bname);
		return;
	}
	if (!S_ISDIR(st.st_mode))
		return;
	fd = openat(mfd, bname, DIROPEN);
	if (fd < 0)
		return;
	if (walk_tree(fd, &cb) < 0)
		log_warn("quarantine: a directory set aside was not searched "
			 "to the end for symlink targets in " LINKS_DIR);
	close(fd);
}

int repair_quarantine(struct repair *r, int dirfd, const char *rel_dir,
		      const char *bname, char *qrel, size_t cap)
{
	char side[ENCNAME_MAX];
	int mfd, rc;

	rc = mirror(r, dirfd, rel_dir, &mfd);
	if (rc < 0)
		return rc;
	if (renameat2(dirfd, bname, mfd, bname, RENAME_NOREPLACE) < 0)
		rc = -errno;
	if (rc == 0 && names_is_longname(bname)) {
		rc = names_side_name(bname, side, sizeof(side));
		if (rc == 0 &&
		    renameat2(dirfd, side, mfd, side, RENAME_NOREPLACE) < 0 &&
		    errno != ENOENT)
			rc = -errno;
	}
	if (rc == 0)
		rc = backing_fsync_dir(mfd);
	if (rc == 0)
		rc = backing_fsync_dir(dirfd);
	if (rc == 0) {
		carry_targets(r, mfd, bname);
		snprintf(qrel, cap, "%s/%s%s%s", r->run, rel_dir,
			 *rel_dir ? "/" : "", bname);
	}
	close(mfd);
	return rc;
}

/* Calls fn for every user.* xattr of fd with its raw name and value and
 * whether it authenticates (doc/FORMAT.md §4.4); when it does, with its
 * plaintext name and value too. Decrypted values are wiped. Stops at the
 * first error of fn. */
struct xattr_item {
	const char *raw;
	const uint8_t *val;
	size_t vl;
	bool ok;
	const char *name;	/* ok only */
	const uint8_t *plain;
	size_t pl;
};
typedef int (*xattr_fn)(const struct xattr_item *x, void *ud);

/* Format 3: the id the values of fd (a regular file or a directory) are
 * bound to. */
static int owner_of(int fd, uint8_t id[static NAMES_OWNER_LEN])
{
	struct header h;
	struct stat st;
	int rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return dirtree_dirid_unverified(fd, id);
	rc = cfile_read_header(fd, &h);
	if (rc == 0)
		memcpy(id, h.file_id, NAMES_OWNER_LEN);
	return rc;
}

static int xattrs_each(struct repair *r, int fd, xattr_fn fn, void *ud)
{
	uint8_t key[NAME_KEY_LEN], prev[NAME_KEY_LEN], *val = NULL,
					       *plain = NULL;
	char *list = NULL, name[XATTR_NAME_MAX + 1];
	uint8_t id[NAMES_OWNER_LEN];
	const uint8_t *owner = NULL;
	bool full = false;
	ssize_t ln, vl;
	int rc;

	rc = keyring_name_key(r->kr, key);
	if (rc < 0)
		return rc;
	/* An owner that cannot be read: every value fails (owner all 0). */
	if (keyring_version(r->kr) >= 3) {
		if (owner_of(fd, id) < 0)
			memset(id, 0, sizeof(id));
		owner = id;
	}
	/* Mid full rekey an xattr not yet migrated opens under the previous
	 * name key: it is whole, not damaged (fsck.h). */
	if (keyring_volume(r->kr)->flags & VOLUME_FLAG_FULL)
		full = keyring_prev_name_key(r->kr, prev) == 0;
	list = malloc(XLIST_MAX);
	val = malloc(XVAL_MAX);
	plain = malloc(XVAL_MAX);
	if (list == NULL || val == NULL || plain == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	ln = flistxattr(fd, list, XLIST_MAX);
	if (ln < 0) {
		rc = errno == ENOTSUP ? 0 : -errno;
		goto out;
	}
	for (char *p = list; rc == 0 && p < list + ln; p += strlen(p) + 1) {
		bool ok;

		if (strncmp(p, XATTR_PREFIX, sizeof(XATTR_PREFIX) - 1) != 0)
			continue;
		vl = fgetxattr(fd, p, val, XVAL_MAX);
		ok = vl >= 0 &&
		     names_xattr_name_decrypt(key, p, name, sizeof(name)) == 0 &&
		     names_xattr_open(key, owner, name, val, (size_t)vl,
				      plain) == 0;
		ok = ok || (vl >= 0 && full &&
			    names_xattr_name_decrypt(prev, p, name,
						     sizeof(name)) == 0 &&
			    names_xattr_open(prev, owner, name, val, (size_t)vl,
					     plain) == 0);
		struct xattr_item x = {
			p, val, vl < 0 ? 0 : (size_t)vl, ok, ok ? name : NULL,
			plain,
			ok ? (size_t)vl - names_xattr_overhead(owner) : 0
		};
		rc = fn(&x, ud);
	}
out:
	secmem_wipe(key, sizeof(key));
	secmem_wipe(prev, sizeof(prev));
	if (plain != NULL)
		secmem_wipe(plain, XVAL_MAX);
	free(plain);
	free(val);
	free(list);
	return rc;
}

/* A salvaged copy is a new file (new file id): in format 3 its values
 * are sealed again for it (and under the current name key). */
struct copy {
	struct repair *r;
	int dst;
	const uint8_t *owner;	/* format 3: the copy's file id */
};

static int copy_good(const struct xattr_item *x, void *ud)
{
	struct copy *c = ud;
	uint8_t key[NAME_KEY_LEN], *sealed;
	char bname[XATTR_NAME_MAX + 1];
	int rc;

	if (!x->ok)
		return 0;
	if (c->owner == NULL)
		return fsetxattr(c->dst, x->raw, x->val, x->vl, XATTR_CREATE) <
				       0 ?
			       -errno :
			       0;
	sealed = malloc(x->pl + XATTR_VALUE3_OVERHEAD);
	if (sealed == NULL)
		return -ENOMEM;
	rc = keyring_name_key(c->r->kr, key);
	if (rc == 0)
		rc = names_xattr_name_encrypt(key, x->name, bname,
					      sizeof(bname));
	if (rc == 0)
		rc = names_xattr_value_seal3(key, c->owner, x->name, x->plain,
					     x->pl, sealed);
	secmem_wipe(key, sizeof(key));
	if (rc == 0 && fsetxattr(c->dst, bname, sealed,
				 x->pl + XATTR_VALUE3_OVERHEAD,
				 XATTR_CREATE) < 0)
		rc = -errno;
	free(sealed);
	return rc;
}

struct drop {
	struct repair *r;
	int fd, dirfd, keepfd;	/* keepfd: the quarantine's copy, or -1 */
	const char *rel_dir, *bname;
	bool keep;
	unsigned n;
	char *qrel;
	size_t cap;
};

/* rel_dir/cmkfs.xattrs/<bname> in the quarantine: an empty file carrying
 * the raw xattrs (a sibling "<bname>.xattrs" could pass NAME_MAX). */
static int drop_target(struct drop *d)
{
	int mfd, xfd, rc;

	rc = mirror(d->r, d->dirfd, d->rel_dir, &mfd);
	if (rc < 0)
		return rc;
	if (mkdirat(mfd, XATTRS_DIR, 0700) < 0 && errno != EEXIST)
		rc = -errno;
	xfd = rc < 0 ? -1 : openat(mfd, XATTRS_DIR, DIROPEN);
	if (rc == 0 && xfd < 0)
		rc = -errno;
	if (rc == 0) {
		d->keepfd = openat(xfd, d->bname, O_WRONLY | O_CREAT |
						   O_CLOEXEC | O_NOFOLLOW, 0600);
		rc = d->keepfd < 0 ? -errno : 0;
		snprintf(d->qrel, d->cap, "%s/%s%s" XATTRS_DIR "/%s", d->r->run,
			 d->rel_dir, *d->rel_dir ? "/" : "", d->bname);
	}
	if (rc == 0)
		rc = backing_fsync_dir(xfd);
	if (rc == 0)
		rc = backing_fsync_dir(mfd);
	if (xfd >= 0)
		close(xfd);
	close(mfd);
	return rc;
}

static int drop_bad(const struct xattr_item *x, void *ud)
{
	struct drop *d = ud;
	const char *raw = x->raw;
	const uint8_t *val = x->val;
	size_t vl = x->vl;
	int rc;

	if (x->ok)
		return 0;
	if (d->keep && d->keepfd < 0) {
		rc = drop_target(d);
		if (rc < 0)
			return rc;
	}
	if (d->keep && fsetxattr(d->keepfd, raw, val, vl, 0) < 0)
		return -errno;
	if (d->keep && fsync(d->keepfd) < 0)
		return -errno;
	if (fremovexattr(d->fd, raw) < 0)
		return -errno;
	d->n++;
	return 0;
}

int repair_drop_bad_xattrs(struct repair *r, int dirfd, const char *rel_dir,
			   const char *bname, bool keep, unsigned *n,
			   char *qrel, size_t cap)
{
	struct drop d = { r, -1, dirfd, -1, rel_dir, bname, keep, 0, qrel,
			  cap };
	int rc;

	*n = 0;
	d.fd = openat(dirfd, bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (d.fd < 0)
		return -errno;
	rc = xattrs_each(r, d.fd, drop_bad, &d);
	if (rc == 0 && fsync(d.fd) < 0)
		rc = -errno;
	*n = d.n;
	if (d.keepfd >= 0)
		close(d.keepfd);
	close(d.fd);
	return rc;
}

/* fsync a directory made by dirtree_make() and its DIRID_FILE. */
static int sync_new_dir(int parentfd, const char *name)
{
	int dfd, fd, rc = 0;

	dfd = openat(parentfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	fd = openat(dfd, DIRID_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || fsync(fd) < 0 || fsync(dfd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	close(dfd);
	return rc;
}

/* The backing name of plaintext `name` in backing directory dirfd, as
 * dir_bname() makes it on the mount (the volume is not mounted). */
static int name_in(struct repair *r, int dirfd, const char *name,
		   struct bname *bn)
{
	uint8_t dirid[DIRID_LEN];
	int rc;

	rc = dirtree_read_dirid_fd(r->kr, r->rootfd, dirfd, dirid);
	return rc < 0 ? rc : dirtree_bname(r->kr, dirid, name, bn);
}

/* Open lost+found under topfd, making it as op_mkdir does if missing: a
 * directory with a fresh id under a temporary name, moved into place
 * without replacing anything. Mode 0700, as e2fsck makes it. */
static int lostfound(struct repair *r, int topfd, int *out)
{
	struct bname bn;
	char tmp[40];
	int fd, rc;

	rc = name_in(r, topfd, LOSTFOUND_NAME, &bn);
	if (rc < 0)
		return rc;
	fd = openat(topfd, bn.name, DIROPEN);
	if (fd < 0 && errno != ENOENT)
		return errno == ENOTDIR || errno == ELOOP ? -ENOTDIR : -errno;
	if (fd < 0) {
		rc = backing_tmpname(tmp, sizeof(tmp));
		if (rc == 0)
			rc = dirtree_make(r->kr, topfd, tmp, bn.name, 0700, 0,
					  0, false);
		if (rc < 0)
			return rc;
		/* The salvaged copies' names hang on this id (and in a zone
		 * their originals are gone): make it durable before the
		 * directory gets its name. */
		rc = sync_new_dir(topfd, tmp);
		if (rc == 0)
			rc = dirtree_longname_add(topfd, &bn);
		if (rc == 0 && renameat2(topfd, tmp, topfd, bn.name,
					 RENAME_NOREPLACE) < 0)
			rc = -errno;
		if (rc < 0) {
			int dfd = openat(topfd, tmp, O_PATH | O_CLOEXEC);

			if (dfd >= 0) {
				(void)unlinkat(dfd, DIRID_FILE, 0);
				close(dfd);
			}
			(void)unlinkat(topfd, tmp, AT_REMOVEDIR);
			return rc;
		}
		rc = backing_fsync_dir(topfd);
		if (rc < 0)
			return rc;
		fd = openat(topfd, bn.name, DIROPEN);
		if (fd < 0)
			return -errno;
	}
	*out = fd;
	return 0;
}

/* Candidate i (1, 2, ...) of the copy's name: the plaintext path without
 * its leading '/', '/' as '%', ".i" from the second on. Over NAME_MAX the
 * end (the file's own name) is kept. */
static void salvage_name(const char *path, int i, char out[static 256])
{
	char suf[16] = "";
	size_t n, max;

	while (*path == '/')
		path++;
	if (*path == '\0')
		path = "unnamed";
	if (i > 1)
		snprintf(suf, sizeof(suf), ".%d", i);
	max = NAME_MAX - strlen(suf);
	n = strlen(path);
	if (n > max) {
		path += n - max;
		while ((*path & 0xc0) == 0x80)	/* not inside a UTF-8 char */
			path++;
		n = strlen(path);
	}
	snprintf(out, 256, "%.*s%s", (int)n, path, suf);
	for (char *p = out; *p != '\0'; p++)
		if (*p == '/')
			*p = '%';
	if (strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		snprintf(out, 256, "unnamed%s", suf);
}

/* Give the finished copy lf/tmp its name (and long-name side file). */
static int put_in_place(struct repair *r, int lf, const char *tmp,
			const char *path, char name[static 256],
			struct bname *out)
{
	struct bname bn;
	int rc = -EEXIST;

	for (int i = 1; i <= 1000 && rc == -EEXIST; i++) {
		salvage_name(path, i, name);
		rc = name_in(r, lf, name, &bn);
		if (rc < 0)
			break;
		if (faccessat(lf, bn.name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
			rc = -EEXIST;
			continue;
		}
		rc = dirtree_longname_add(lf, &bn);
		if (rc == 0 && renameat2(lf, tmp, lf, bn.name,
					 RENAME_NOREPLACE) < 0)
			rc = -errno;
	}
	if (rc == 0)
		rc = backing_fsync_dir(lf);
	if (rc == 0)
		*out = bn;
	return rc;
}

static int lost_add(struct salvage *s, uint64_t b)
{
	if (s->nlost == 0 || (s->nlost & (s->nlost - 1)) == 0) {
		size_t cap = s->nlost ? 2 * s->nlost : 8;
		uint64_t *v = realloc(s->lost, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		s->lost = v;
	}
	s->lost[s->nlost++] = b;
	return 0;
}

/* Open every block slot of the backing file (doc/FORMAT.md §3: block b at
 * HEADER_LEN + b * cb, the last one short) and append its plaintext, or
 * zeros, to the new file. A full last slot that fails as "last" but opens
 * as "not last" is intact: the file was cut after it. A tail shorter than
 * the block overhead has no recoverable length: lost, and the file cut.
 * Any other slot reads as the mount reads it (cfile_open_slot through
 * scf, the source): in format 3 a verified hole stays a hole of the copy
 * (not lost), and the old last block of a growth cut short is data. */
static int copy_blocks(struct repair *r, struct filekeys *fk, struct cfile *scf,
		       int src, uint64_t csize, struct cfile *cf, int dst,
		       struct salvage *s)
{
	const struct block_ctx *bc = &fk->bc;
	uint32_t bs = r->bs;
	size_t cb = bs + BLOCK_OVERHEAD, cn = CHUNK_BYTES / bs, have = 0;
	uint64_t data = csize - HEADER_LEN, nslots, woff = 0, wend = 0;
	uint8_t *ct = NULL, *ct2 = NULL, *pt = NULL;
	int rc = 0;

	if (cn == 0)
		cn = 1;
	nslots = data / cb + (data % cb != 0);
	s->cut = nslots == 0;	/* cut down to the header */
	ct = malloc(cb);
	ct2 = malloc(cb);
	pt = malloc(cn * bs);
	if (ct == NULL || ct2 == NULL || pt == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	for (uint64_t b = 0; b < nslots; b++) {
		uint64_t off = HEADER_LEN + b * cb;	/* < csize: no overflow */
		size_t len = data - b * cb < cb ? (size_t)(data - b * cb) : cb;
		bool last = b == nslots - 1;
		uint8_t *p = pt + have;
		int k = 0;

		if (len < BLOCK_OVERHEAD) {
			s->cut = true;
			rc = lost_add(s, b);
			break;
		}
		/* -EIO (a bad sector) loses this block, not the file */
		rc = backing_pread_full(src, ct, len, (off_t)off);
		if (rc < 0 && rc != -EIO)
			goto out;
		memcpy(ct2, ct, len);	/* block_open clobbers its input */
		if (rc == 0 && block_open(bc, b, last, ct, len, p) == 0) {
			/* intact */
		} else if (rc == 0 && last && len == cb &&
			   block_open(bc, b, false, ct2, len, p) == 0) {
			s->cut = true;
		} else if (rc == 0 && !last &&
			   (k = cfile_open_slot(scf, fk, src, nslots, b,
						p)) >= 0) {
			if (k == CFILE_SLOT_HOLE) {
				/* the copy's hole: what came before it
				 * written, nothing for it */
				if (have > 0)
					rc = cfile_write(cf, dst, woff, pt,
							 have, false, NULL);
				if (rc < 0)
					goto out;
				if (have > 0)
					wend = woff + have;
				woff += have + bs;
				have = 0;
				continue;
			}
		} else if (rc == 0 && k == -ENOMEM) {
			rc = k;
			goto out;
		} else {
			memset(p, 0, len - BLOCK_OVERHEAD);
			rc = lost_add(s, b);
			if (rc < 0)
				goto out;
		}
		have += len - BLOCK_OVERHEAD;
		if (have + bs > cn * bs) {
			rc = cfile_write(cf, dst, woff, pt, have, false, NULL);
			if (rc < 0)
				goto out;
			woff += have;
			wend = woff;
			have = 0;
			if (r->tick != NULL)	/* source bytes read so far */
				r->tick(r->tick_arg, off + len);
		}
	}
	if (rc == 0 && have > 0) {
		rc = cfile_write(cf, dst, woff, pt, have, false, NULL);
		woff += have;
		wend = woff;
	}
	/* a source that ends in a hole (cut after it) */
	if (rc == 0 && wend < woff)
		rc = cfile_truncate(cf, dst, woff);
	s->size = woff;
out:
	if (pt != NULL)
		secmem_wipe(pt, cn * bs);
	free(pt);
	free(ct2);
	free(ct);
	return rc;
}

/* Owner first (chown clears set-id bits), then mode, then times last:
 * every write before it moves the mtime. */
static int copy_attrs(int dst, const struct stat *st)
{
	struct timespec ts[2] = { st->st_atim, st->st_mtim };

	if (geteuid() == 0 && fchown(dst, st->st_uid, st->st_gid) < 0)
		return -errno;
	if (fchmod(dst, st->st_mode & 07777) < 0 || futimens(dst, ts) < 0 ||
	    fsync(dst) < 0)
		return -errno;
	return 0;
}

int repair_salvage(struct repair *r, int topfd, int dirfd, const char *bname,
		   const char *path, struct salvage *s)
{
	struct filekeys *fk = NULL;
	struct header h;
	struct bname bn;
	struct cfile cf, scf;
	struct stat st;
	char tmp[40];
	bool have_cf = false;
	int src, lf = -1, dst = -1, rc;

	memset(s, 0, sizeof(*s));
	src = openat(dirfd, bname, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (src < 0)
		return -errno;
	rc = fstat(src, &st) < 0 ? -errno : 0;
	if (rc == 0)
		rc = cfile_read_header(src, &h);
	if (rc == 0)
		rc = keyring_open_file(r->kr, &h, &fk);
	if (rc == 0)
		rc = lostfound(r, topfd, &lf);
	if (rc == 0)
		rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc < 0)
		goto out;
	dst = openat(lf, tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (dst < 0) {
		rc = -errno;
		goto out;
	}
	/* A new file through the file layer: new file id, new DEKs. */
	cfile_init(&cf, r->kr, r->bs, dst);
	cf.rootfd = r->rootfd;
	have_cf = true;
	/* Bound to its final name once it has one (put_in_place): until
	 * then it opens nowhere, which a crash may leave — the source is
	 * still in the quarantine. */
	rc = cfile_create(&cf, dst, NULL);
	if (rc == 0) {
		/* the source, for its slots only (never loaded) */
		cfile_init(&scf, r->kr, r->bs, src);
		scf.rootfd = r->rootfd;
		rc = copy_blocks(r, fk, &scf, src, (uint64_t)st.st_size, &cf,
				 dst, s);
		cfile_destroy(&scf);
	}
	if (rc == 0) {
		struct copy c = { r, dst, NULL };

		if (keyring_version(r->kr) >= 3)
			c.owner = cf.hdr.file_id;
		rc = xattrs_each(r, src, copy_good, &c);
	}
	if (rc == 0)
		rc = copy_attrs(dst, &st);
	if (rc == 0)
		rc = put_in_place(r, lf, tmp, path, s->name, &bn);
	if (rc == 0)
		rc = cfile_set_slots(&cf, dst, bn.name, NULL, true);
	if (rc == 0)	/* the header write moved the times */
		rc = copy_attrs(dst, &st);
	if (rc < 0)
		(void)unlinkat(lf, tmp, 0);
out:
	if (have_cf)
		cfile_destroy(&cf);
	if (dst >= 0)
		close(dst);
	if (lf >= 0)
		close(lf);
	keyring_filekeys_free(fk);
	close(src);
	if (rc < 0)
		repair_salvage_free(s);
	return rc;
}

void repair_salvage_free(struct salvage *s)
{
	free(s->lost);
	s->lost = NULL;
	s->nlost = 0;
}
