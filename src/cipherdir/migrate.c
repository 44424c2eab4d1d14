/* src/cipherdir/migrate.c — names, symlink targets and xattrs from the
 * previous name key to the current one (include/cmkfs/migrate.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/xattr.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/cfile.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/log.h"
#include "cmkfs/migrate.h"
#include "cmkfs/secmem.h"
#include "cmkfs/walk.h"

#define XVAL_MAX 65536

int migrate_keys_get(struct keyring *kr, struct migrate_keys *k)
{
	int rc = keyring_prev_name_key(kr, k->prev);

	if (rc == 0)
		rc = keyring_name_key(kr, k->cur);
	k->v3 = keyring_version(kr) >= 3;
	if (rc < 0)
		migrate_keys_wipe(k);
	else
		k->kr = kr;
	return rc;
}

void migrate_keys_wipe(struct migrate_keys *k)
{
	secmem_wipe(k, sizeof(*k));
}

struct ent {
	char *bname;
	unsigned cls;
	unsigned char type;
};

struct elist {
	struct ent *v;
	size_t n, cap;
};

static int collect(const struct walk_entry *e, void *arg)
{
	struct elist *l = arg;

	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct ent *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].bname = strdup(e->name);
	if (l->v[l->n].bname == NULL)
		return -ENOMEM;
	l->v[l->n].cls = e->cls;
	l->v[l->n].type = e->type;
	l->n++;
	return 0;
}

static void elist_free(struct elist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].bname);
	free(l->v);
}

/* The plaintext name of entry e under `key`, or -EBADMSG. */
static int decode(const uint8_t *key, int dfd, const uint8_t *dirid,
		  const struct ent *e, char plain[static NAME_MAX + 1])
{
	char enc[ENCNAME_MAX];
	const char *s = e->bname;
	int rc;

	if (e->cls == WALK_LONGNAME) {
		rc = dirtree_longname_read(dfd, e->bname, enc, sizeof(enc));
		if (rc < 0)
			return rc;
		s = enc;
	}
	return names_decrypt(key, dirid, s, strlen(s), plain, NAME_MAX + 1);
}


/* One xattr under the previous key: the value re-sealed under the new
 * name first (XATTR_CREATE: one set meanwhile through the mount is newer
 * and wins), then the old one removed. */
static int move_xattr(const struct migrate_keys *k, const uint8_t *owner,
		      const char *path, const char *bname, const char *plain,
		      uint8_t *raw, uint8_t *val, struct migrate_stats *st)
{
	size_t over = names_xattr_overhead(owner);
	char nname[XATTR_NAME_MAX + 1];
	ssize_t n;
	int rc;

	n = getxattr(path, bname, raw, XVAL_MAX);
	if (n < 0)
		return errno == ENODATA ? 0 : -errno;
	if (names_xattr_open(k->prev, owner, plain, raw, (size_t)n, val) < 0) {
		st->bad++;
		return 0;
	}
	n -= (ssize_t)over;
	rc = names_xattr_name_encrypt(k->cur, plain, nname, sizeof(nname));
	if (rc == 0)
		rc = names_xattr_seal(k->cur, owner, plain, val, (size_t)n, raw);
	if (rc == 0 && setxattr(path, nname, raw, (size_t)n + over,
				XATTR_CREATE) < 0 && errno != EEXIST)
		rc = -errno;
	if (rc == 0 && removexattr(path, bname) < 0 && errno != ENODATA)
		rc = -errno;
	if (rc == 0)
		st->xattrs++;
	secmem_wipe(val, XVAL_MAX);
	return rc;
}

/* Format 3: the id fd's xattr values are bound to (migrate.h). */
static int owner_of(int fd, const char *path, uint8_t id[static NAMES_OWNER_LEN])
{
	struct header h;
	struct stat st;
	int rfd, rc;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return dirtree_dirid_unverified(fd, id);
	if (!S_ISREG(st.st_mode))
		return -EPERM;
	rfd = open(path, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		return -errno;
	rc = cfile_read_header(rfd, &h);
	close(rfd);
	if (rc == 0)
		memcpy(id, h.file_id, NAMES_OWNER_LEN);
	return rc;
}

/* Walk fd's user.* xattrs; with `count` only count those still old. */
static int xattrs(const struct migrate_keys *k, int fd, bool count,
		  struct migrate_stats *st, uint64_t *old)
{
	char path[32], plain[XATTR_NAME_MAX + 1], *list = NULL;
	uint8_t *raw = NULL, *val = NULL, id[NAMES_OWNER_LEN];
	const uint8_t *owner = NULL;
	ssize_t n;
	int rc = 0;

	backing_procpath(fd, path);
	n = listxattr(path, NULL, 0);
	if (n <= 0)
		return n < 0 && errno != ENOTSUP && errno != EPERM ? -errno : 0;
	list = malloc((size_t)n + 1);
	raw = malloc(XVAL_MAX);
	val = malloc(XVAL_MAX);
	if (list == NULL || raw == NULL || val == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	n = listxattr(path, list, (size_t)n);
	if (n < 0) {
		rc = errno == ERANGE ? -EAGAIN : -errno;
		goto out;
	}
	for (char *p = list; p < list + n && rc == 0; p += strlen(p) + 1) {
		if (strncmp(p, XATTR_PREFIX, strlen(XATTR_PREFIX)) != 0 ||
		    names_xattr_name_decrypt(k->cur, p, plain,
					     sizeof(plain)) == 0)
			continue;
		if (names_xattr_name_decrypt(k->prev, p, plain,
					     sizeof(plain)) < 0)
			continue;	/* not ours */
		if (count) {
			(*old)++;
			continue;
		}
		if (k->v3 && owner == NULL) {
			rc = owner_of(fd, path, id);
			if (rc < 0) {	/* values left: fsck names them */
				st->bad++;
				rc = 0;
				break;
			}
			owner = id;
		}
		rc = move_xattr(k, owner, path, p, plain, raw, val, st);
	}
out:
	free(list);
	free(raw);
	free(val);
	return rc;
}

int migrate_xattrs(const struct migrate_keys *k, int fd,
		   struct migrate_stats *st)
{
	return xattrs(k, fd, false, st, NULL);
}

/* A symlink's target: 1 if it is under the previous key (and, unless
 * count, re-encrypted now), 0 if current or not ours. */
static int retarget(const struct migrate_keys *k, int rootfd, int dfd,
		    const uint8_t *dirid, const char *bname,
		    const char *plain_name, bool count,
		    const struct migrate_cb *cb, struct migrate_stats *st)
{
	struct names_loc loc, *lp = NULL;
	char *enc = NULL, *plain = NULL, tmp[64], marker[LINKTGT_MARKER_LEN + 1];
	size_t len = 0, plen = 0;
	bool is_marker = false;
	struct stat sb;
	int rc;

	enc = malloc(ENCLINK_MAX);
	plain = malloc(SYMLINK_TARGET_MAX + 1);
	if (enc == NULL || plain == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	if (k->v3) {
		rc = names_loc_set(&loc, dirid, bname);
		if (rc < 0)
			goto out;
		lp = &loc;
	}
	rc = linktgt_read(rootfd, dfd, bname, enc, ENCLINK_MAX, &len,
			  &is_marker);
	if (rc < 0)
		goto out;
	if (names_target_open(k->cur, lp, enc, len, plain,
			      SYMLINK_TARGET_MAX + 1, &plen) == 0) {
		rc = 0;
		goto out;
	}
	if (names_target_open(k->prev, lp, enc, len, plain,
			      SYMLINK_TARGET_MAX + 1, &plen) < 0) {
		st->bad += !count;
		rc = 0;
		goto out;
	}
	rc = 1;
	if (count)
		goto out;
	if (is_marker) {
		ssize_t m = readlinkat(dfd, bname, marker, sizeof(marker) - 1);

		marker[m < 0 ? 0 : m] = '\0';
	}
	rc = names_target_seal(k->cur, lp, plain, plen, enc, ENCLINK_MAX);
	if (rc < 0)
		goto out;
	/* Same plaintext length, same encrypted length: a long target stays
	 * long and is rewritten in its side file, the inode kept. */
	if (is_marker) {
		rc = linktgt_rewrite(rootfd, marker, enc, strlen(enc));
	} else {
		rc = fstatat(dfd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0 ? -errno
								       : 0;
		if (rc == 0)
			rc = backing_tmpname(tmp, sizeof(tmp));
		if (rc == 0 && symlinkat(enc, dfd, tmp) < 0)
			rc = -errno;
		if (rc == 0) {
			struct timespec ts[2] = { sb.st_atim, sb.st_mtim };

			if (fchownat(dfd, tmp, sb.st_uid, sb.st_gid,
				     AT_SYMLINK_NOFOLLOW) < 0) {
				/* not root: the owner is ours, as for any
				 * symlink made through the mount */
			}
			(void)utimensat(dfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
			if (renameat(dfd, tmp, dfd, bname) < 0) {
				rc = -errno;
				(void)unlinkat(dfd, tmp, 0);
			}
		}
		if (rc == 0 && cb != NULL && cb->replaced != NULL &&
		    plain_name != NULL)
			cb->replaced(dfd, plain_name, cb->arg);
	}
	if (rc == 0) {
		st->links++;
		rc = 1;
	}
out:
	if (plain != NULL)
		secmem_wipe(plain, SYMLINK_TARGET_MAX + 1);
	free(plain);
	free(enc);
	return rc;
}

/* Format 3: a regular file's header names its backing name (doc/FORMAT.md
 * §2), which the rename changes: BEFORE binds {from, to}, on disk before
 * the rename; AFTER {to} (or, with other links, drops from); UNDO drops
 * to again. Under the previous generation's KEKs while the header is
 * still of it (keyring_header_slots). */
enum rebind_step { REBIND_BEFORE, REBIND_AFTER, REBIND_UNDO };

static int rebind_file(struct keyring *kr, int rootfd, int dfd,
		       const char *from, const char *to,
		       enum rebind_step step)
{
	const char *at = step == REBIND_AFTER ? to : from;
	struct cfile cf;
	struct stat st;
	int fd, rc;

	if (kr == NULL || keyring_version(kr) < 3)
		return 0;
	fd = openat(dfd, at, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	cfile_init(&cf, kr, keyring_block_size(kr), fd);
	cf.rootfd = rootfd;
	if (st.st_nlink < 2)
		rc = cfile_set_slots(&cf, fd, at,
				     step == REBIND_BEFORE ? to : NULL,
				     step == REBIND_BEFORE);
	else if (step == REBIND_BEFORE)
		rc = cfile_edit_slots(&cf, fd, to, NULL, true);
	else
		rc = cfile_edit_slots(&cf, fd, NULL,
				      step == REBIND_AFTER ? from : to, false);
	cfile_destroy(&cf);
	close(fd);
	return rc;
}

/* Format 3: symlink e, whose name is still under the previous key, made
 * anew under its new name: its target is bound to its backing name
 * (doc/FORMAT.md §4.3), so renaming it would break it. The new symlink
 * (target under the current key, bound to the new name) is made at a
 * temporary name and renamed over the new name (one a crash left there is
 * this one's), then the old entry goes. A crash leaves the old name, the
 * new one, or both, each readable; the rerun finishes. A long target's
 * side files are always reachable from an entry or a temporary: the new
 * one is written after its temporary symlink, the one of an entry
 * replaced or removed goes while a temporary still names it
 * (linktgt_make_tmp, linktgt_rename_over, linktgt_retire), and drop_tmp
 * removes a temporary with its side file. */
static int remake_link(const struct migrate_keys *k, int rootfd, int dfd,
		       const uint8_t *dirid, const struct ent *e,
		       const char *plain_name, const struct migrate_cb *cb,
		       struct migrate_stats *st)
{
	char *enc = NULL, *plain = NULL, tmp[64];
	struct names_loc ol, nl;
	struct bname nb, ob;
	size_t len = 0, plen = 0;
	struct stat sb;
	int rc;

	enc = malloc(ENCLINK_MAX);
	plain = malloc(SYMLINK_TARGET_MAX + 1);
	if (enc == NULL || plain == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	rc = names_encrypt(k->cur, dirid, plain_name, strlen(plain_name),
			   nb.enc, sizeof(nb.enc));
	if (rc == 0)
		rc = names_backing(nb.enc, nb.name, sizeof(nb.name));
	if (rc < 0)
		goto out;
	nb.is_long = rc == 1;
	rc = names_loc_set(&ol, dirid, e->bname);
	if (rc == 0)
		rc = names_loc_set(&nl, dirid, nb.name);
	if (rc == 0)
		rc = linktgt_read(rootfd, dfd, e->bname, enc, ENCLINK_MAX,
				  &len, NULL);
	if (rc == 0 && fstatat(dfd, e->bname, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	if (rc < 0)
		goto out;
	if (names_target_open(k->prev, &ol, enc, len, plain,
			      SYMLINK_TARGET_MAX + 1, &plen) < 0) {
		st->bad++;	/* left for fsck */
		goto out;
	}
	rc = names_target_seal(k->cur, &nl, plain, plen, enc, ENCLINK_MAX);
	if (rc == 0)
		rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc == 0)
		rc = linktgt_make_tmp_like(rootfd, dfd, tmp, enc, strlen(enc),
					   &sb);
	if (rc < 0)
		goto out;
	rc = dirtree_longname_add(dfd, &nb);
	if (rc == 0)
		rc = linktgt_rename_over(rootfd, dfd, tmp, dfd, nb.name, 0);
	if (rc < 0) {
		if (linktgt_unlink(rootfd, dfd, tmp) < 0) {
			/* a temporary left: the rerun removes it */
		}
		goto out;
	}
	rc = linktgt_retire(rootfd, dfd, e->bname);
	if (rc == -ENOENT)
		rc = 0;
	if (rc == 0) {
		snprintf(ob.name, sizeof(ob.name), "%s", e->bname);
		ob.is_long = e->cls == WALK_LONGNAME;
		dirtree_longname_del(dfd, &ob);
		st->names++;
		st->links++;
		if (cb != NULL && cb->replaced != NULL)
			cb->replaced(dfd, plain_name, cb->arg);
	}
out:
	if (plain != NULL)
		secmem_wipe(plain, SYMLINK_TARGET_MAX + 1);
	free(plain);
	free(enc);
	return rc;
}

/* The entry's name: renamed to its encryption under the current key. */
static int rename_entry(const struct migrate_keys *k, int rootfd, int dfd,
			const uint8_t *dirid, const struct ent *e,
			const char *plain, const struct migrate_cb *cb,
			struct migrate_stats *st)
{
	struct dirtree_move mv = { .dfd = -1 };
	struct bname nb, ob;
	int rc;

	rc = names_encrypt(k->cur, dirid, plain, strlen(plain), nb.enc,
			   sizeof(nb.enc));
	if (rc < 0)
		return rc;
	rc = names_backing(nb.enc, nb.name, sizeof(nb.name));
	if (rc < 0)
		return rc;
	nb.is_long = rc == 1;
	/* A directory's id is bound to its backing name: rebound around the
	 * rename (the new record under the current secret). */
	rc = k->kr != NULL && (e->type == DT_DIR || e->type == DT_UNKNOWN) ?
		     dirtree_move_begin(k->kr, dfd, e->bname, nb.name, &mv) :
		     0;
	if (rc == 0)
		rc = dirtree_longname_add(dfd, &nb);
	if (rc == 0 && e->type == DT_REG)
		rc = rebind_file(k->kr, rootfd, dfd, e->bname, nb.name,
				 REBIND_BEFORE);
	if (rc == 0 && renameat2(dfd, e->bname, dfd, nb.name,
				 RENAME_NOREPLACE) < 0) {
		rc = -errno;
		if (e->type == DT_REG)
			(void)rebind_file(k->kr, rootfd, dfd, e->bname, nb.name,
					  REBIND_UNDO);
	}
	if (mv.dfd >= 0 && dirtree_move_end(k->kr, &mv, rc == 0) < 0)
		log_warn("a renamed directory's id keeps a second place "
			 "(fsck --repair drops it)");
	if (rc < 0) {
		dirtree_longname_del(dfd, &nb);
		return rc;
	}
	if (e->type == DT_REG)
		(void)rebind_file(k->kr, rootfd, dfd, e->bname, nb.name, REBIND_AFTER);
	snprintf(ob.name, sizeof(ob.name), "%s", e->bname);
	ob.is_long = e->cls == WALK_LONGNAME;
	dirtree_longname_del(dfd, &ob);
	(void)cb;
	st->names++;
	return 0;
}

/* walk_entries() callback: a temporary left by a crash still holds a
 * header and data under the old keys: it goes. Callers hold the
 * namespace lock, under which the mount makes and names its temporaries,
 * so none is in flight — except in the root, where the config and the
 * zone list are written without it, each in well under a minute: there
 * one older than that is a crash's (arg: struct tmps, with the root's
 * minimum age). A directory of a cut mkdir holds only its id. */
struct tmps {
	int rootfd;
	time_t min_age;
};

void migrate_drop_tmp(int rootfd, int dfd, const char *name, bool dir)
{
	int fd;

	/* A long symlink's temporary takes its side file along (the side
	 * file first): nothing else points at it. */
	if (!dir) {
		if (linktgt_unlink(rootfd, dfd, name) < 0) {
			/* still there: fsck names it */
		}
		return;
	}
	fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		(void)unlinkat(fd, DIRID_FILE, 0);
		close(fd);
	}
	(void)unlinkat(dfd, name, AT_REMOVEDIR);
}

static int drop_tmp(const struct walk_entry *e, void *arg)
{
	const struct tmps *t = arg;
	struct stat st;

	if (fstatat(e->dfd, e->name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    st.st_mtime > time(NULL) - t->min_age)
		return 0;
	migrate_drop_tmp(t->rootfd, e->dfd, e->name, e->type == DT_DIR);
	return 0;
}

static int list(int dfd, struct elist *l)
{
	return walk_entries(dfd, WALK_ENTRIES, WALK_F_TYPE, collect, l);
}

struct orphans {
	const struct migrate_keys *k;
	const uint8_t *dirid;
};

/* A long name's side file under the previous key whose entry is gone: a
 * rename_entry() killed between its rename and the old side file's
 * unlink. Nothing else makes one (names are made under the current key
 * while a full rekey runs), and a rerun would never meet it again: it
 * would keep the old name's ciphertext past the rekey. */
static int drop_orphan(const struct walk_entry *e, void *arg)
{
	const struct orphans *o = arg;
	char owner[ENCNAME_MAX], enc[ENCNAME_MAX], plain[NAME_MAX + 1];
	size_t len = 0;

	if (e->cls != WALK_SIDE ||
	    names_side_owner(e->name, owner, sizeof(owner)) < 0 ||
	    faccessat(e->dfd, owner, F_OK, AT_SYMLINK_NOFOLLOW) == 0 ||
	    backing_read_small(e->dfd, e->name, enc, sizeof(enc) - 1, &len) < 0)
		return 0;
	enc[len] = '\0';
	if (names_decrypt(o->k->prev, o->dirid, enc, len, plain,
			  sizeof(plain)) == 0)
		(void)unlinkat(e->dfd, e->name, 0);
	secmem_wipe(plain, sizeof(plain));
	return 0;
}

int migrate_dir(const struct migrate_keys *k, int rootfd, int dfd,
		const uint8_t dirid[static DIRID_LEN],
		const struct migrate_cb *cb, struct migrate_stats *st)
{
	char plain[NAME_MAX + 1];
	bool names_only = cb != NULL && cb->names_only, cur;
	struct elist l = { 0 };
	uint64_t renamed = st->names;
	struct stat dst;
	int rc;

	/* Renames change the directory's times; the user changed nothing. */
	if (fstat(dfd, &dst) < 0)
		return -errno;
	if (!names_only) {
		struct stat rst;
		struct tmps t = { rootfd, fstat(rootfd, &rst) == 0 &&
						  rst.st_dev == dst.st_dev &&
						  rst.st_ino == dst.st_ino ?
					  60 :
					  0 };

		if (walk_entries(dfd, WALK_TMP,
				 WALK_F_TYPE | WALK_F_SKIP_ERRORS, drop_tmp,
				 &t) < 0)
			log_warn("could not remove a temporary left by a "
				 "crash");
		/* The root's side directories: their temporaries are made
		 * under the namespace lock too (a symlink's long target, a
		 * file's link set), so any one there is a crash's. */
		for (int i = 0; t.min_age != 0 && i < 2; i++) {
			static const char *const sub[] = { LINKS_DIR,
							   LINKSET_DIR };
			const struct tmps none = { rootfd, 0 };
			int sfd = openat(rootfd, sub[i], O_RDONLY |
					 O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sfd < 0)
				continue;
			if (walk_entries(sfd, WALK_TMP,
					 WALK_F_TYPE | WALK_F_SKIP_ERRORS,
					 drop_tmp, (void *)&none) < 0)
				log_warn("could not remove a temporary left "
					 "by a crash in %s", sub[i]);
			close(sfd);
		}
	}
	rc = list(dfd, &l);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		const struct ent *e = &l.v[i];

		cur = decode(k->cur, dfd, dirid, e, plain) == 0;
		if (!cur && decode(k->prev, dfd, dirid, e, plain) < 0) {
			st->bad++;
			continue;
		}
		/* Format 3: a symlink's new name means a new symlink, names
		 * only or not. */
		if (k->v3 && !cur && e->type == DT_LNK) {
			rc = remake_link(k, rootfd, dfd, dirid, e, plain, cb,
					 st);
			continue;
		}
		if (!names_only && e->type != DT_LNK) {
			int fd = openat(dfd, e->bname,
					O_PATH | O_NOFOLLOW | O_CLOEXEC);

			if (fd < 0)
				continue;	/* gone meanwhile */
			rc = migrate_xattrs(k, fd, st);
			close(fd);
		} else if (!names_only) {
			rc = retarget(k, rootfd, dfd, dirid, e->bname, plain,
				      false, cb, st);
			rc = rc < 0 ? rc : 0;
		}
		if (rc < 0 || cur)
			continue;
		rc = rename_entry(k, rootfd, dfd, dirid, e, plain, cb, st);
		if (rc == -EEXIST) {	/* both names: left for fsck */
			log_err("an entry exists under both name keys (%s)",
				e->bname);
			st->bad++;
			rc = 0;
		}
	}
	if (rc == 0 && !names_only) {
		struct orphans o = { k, dirid };

		if (walk_entries(dfd, WALK_SIDE, WALK_F_SKIP_ERRORS,
				 drop_orphan, &o) < 0) {
			/* best effort: fsck names a side file left */
		}
	}
	if (st->names != renamed) {
		struct timespec ts[2] = { dst.st_atim, dst.st_mtim };

		(void)futimens(dfd, ts);
	}
	secmem_wipe(plain, sizeof(plain));
	elist_free(&l);
	return rc;
}

int migrate_count_old(const struct migrate_keys *k, int rootfd, int dfd,
		      const uint8_t dirid[static DIRID_LEN], uint64_t *old)
{
	struct migrate_stats st = { 0 };
	char plain[NAME_MAX + 1];
	struct elist l = { 0 };
	int rc;

	rc = list(dfd, &l);
	for (size_t i = 0; rc == 0 && i < l.n; i++) {
		const struct ent *e = &l.v[i];

		if (e->type == DT_LNK) {
			rc = retarget(k, rootfd, dfd, dirid, e->bname, NULL,
				      true, NULL, &st);
			if (rc > 0)
				(*old)++;
			rc = rc < 0 && rc != -ENOENT ? rc : 0;
		} else {
			int fd = openat(dfd, e->bname,
					O_PATH | O_NOFOLLOW | O_CLOEXEC);

			if (fd >= 0) {
				rc = xattrs(k, fd, true, &st, old);
				close(fd);
			}
		}
		if (rc == 0 && decode(k->cur, dfd, dirid, e, plain) < 0 &&
		    decode(k->prev, dfd, dirid, e, plain) == 0)
			(*old)++;
	}
	secmem_wipe(plain, sizeof(plain));
	elist_free(&l);
	return rc;
}
