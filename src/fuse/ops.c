/* src/fuse/ops.c — FUSE low-level operations (libfuse include/fuse_lowlevel.h;
 * inode/fd handling after example/passthrough_ll.c). The userdata of the
 * session is a struct fsctx. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dir.h"
#include "cmkfs/inode.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/log.h"
#include "cmkfs/migrate.h"
#include "cmkfs/ops.h"
#include "cmkfs/secmem.h"
#include "cmkfs/wire.h"

/* How long the kernel may trust an entry or attributes it was given.
 * Every change to the backing tree goes through this daemon (the kernel
 * then updates or drops what it cached), the transient sweep drops the
 * entries it removes, and a lock drops every inode's attributes; so this
 * only bounds how long a change made behind the mount's back (not
 * supported: doc/DESIGN.md) stays unseen. 60 s rather than libfuse's
 * 1 s spares a LOOKUP and a GETATTR per path walk and stat of files
 * touched within a minute (doc/PERFORMANCE.md). A name found missing is
 * trusted for 1 s only: a lock then reaches a stat of it soon. */
#define TIMEOUT_SEC 60.0
#define NEG_TIMEOUT_SEC 1.0
#define XATTR_VAL_MAX 65536

/* Open handles. `link` comes first: its free() casts back. Each is put on
 * the fsctx's list before the reply that hands it to the kernel (whose
 * RELEASE may then come at once, on another thread) and taken off by the
 * RELEASE; inode_table_destroy frees those whose RELEASE never came. */
struct fh {
	struct handle link;
	int fd;			/* O_RDWR (or O_RDONLY) backing descriptor */
	bool append;		/* O_APPEND, served here (never with
				 * the writeback cache: op_init) */
};

struct dh {
	struct handle link;
	struct dlist l;
};

static void fh_free(struct handle *link)
{
	struct fh *h = (struct fh *)link;

	close(h->fd);
	free(h);
}

/* Takes over fd, also when it fails. */
static struct fh *fh_new(int fd, bool append)
{
	struct fh *h = calloc(1, sizeof(*h));

	if (h == NULL) {
		close(fd);
		return NULL;
	}
	h->link.free = fh_free;
	h->fd = fd;
	h->append = append;
	return h;
}

static void dh_free(struct handle *link)
{
	struct dh *d = (struct dh *)link;

	dir_list_free(&d->l);
	free(d);
}

static struct fsctx *FS(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct inode *INODE(fuse_req_t req, fuse_ino_t ino)
{
	if (ino == FUSE_ROOT_ID)
		return &FS(req)->root;
	return (struct inode *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(struct fsctx *fs, struct inode *in)
{
	return in == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

static atomic_ulong eio_answered;

unsigned long ops_eio_answered(void)
{
	return atomic_load_explicit(&eio_answered, memory_order_relaxed);
}

/* Internal errors -> what the kernel sees (STYLE.md §2). */
static int kerr_of(int rc)
{
	switch (rc) {
	case 0:
		return 0;
	case -EBADMSG:
	case -EKEYREJECTED:
		return EIO;
	case -EKEYREVOKED:
	case -EKEYEXPIRED:
		return EKEYREVOKED;
	default:
		return rc < 0 ? -rc : EIO;
	}
}

static int kerr(int rc)
{
	int e = kerr_of(rc);

	if (e == EIO)
		atomic_fetch_add_explicit(&eio_answered, 1,
					  memory_order_relaxed);
	return e;
}

static void reply_err(fuse_req_t req, int rc)
{
	fuse_reply_err(req, kerr(rc));
}

/* --no-xattr: ENOSYS tells the kernel that no extended attribute call
 * will ever work here; it stops sending them (no GETXATTR of
 * security.capability before each write, none for `ls -l`) and answers
 * EOPNOTSUPP itself. */
static bool refuse_xattr(fuse_req_t req)
{
	if (!FS(req)->no_xattr)
		return false;
	fuse_reply_err(req, ENOSYS);
	return true;
}

/* A locked mount answers every request with EKEYREVOKED ("Key has been
 * revoked"), files already open and listings included (doc/KEYS.md). */
static bool refuse_locked(fuse_req_t req)
{
	if (!keyring_is_locked(FS(req)->kr))
		return false;
	fuse_reply_err(req, EKEYREVOKED);
	return true;
}
#define GUARD(req)                           \
	do {                                 \
		if (refuse_locked(req))      \
			return;              \
	} while (0)

/* The backing path of O_PATH fd `fd`, for log lines. */
static const char *where(int fd, char *buf, size_t cap)
{
	char proc[32];
	ssize_t n;

	backing_procpath(fd, proc);
	n = readlink(proc, buf, cap - 1);
	if (n < 0)
		snprintf(buf, cap, "(backing fd %d)", fd);
	else
		buf[n] = '\0';
	return buf;
}

/* The plaintext target of symlink inode `in`; *what says why it failed.
 * In a format-3 volume the target is bound to where the inode was found
 * (its last lookup, doc/FORMAT.md §4.3), and a backing symlink with
 * several links is refused: cmkfs makes none there (a link re-makes the
 * symlink), so one is a copy made behind the mount's back. */
static int read_target(struct fsctx *fs, struct inode *in, char *plain,
		       size_t cap, size_t *len, const char **what)
{
	char enc[ENCLINK_MAX];
	struct names_loc loc, *lp = NULL;
	struct stat st;
	bool side = false;
	size_t n = 0;
	int rc;

	*what = "target fails authentication";
	if (dir_fmt3(fs)) {
		if (inode_loc_get(fs, in, &loc) < 0)
			return -EBADMSG;
		if (fstatat(in->fd, "", &st,
			    AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
		if (st.st_nlink > 1) {
			*what = "backing symlink has several links "
				"(copied behind the mount's back)";
			return -EBADMSG;
		}
		lp = &loc;
	}
	rc = linktgt_read(fs->root.fd, in->fd, "", enc, sizeof(enc), &n, &side);
	if (rc < 0 && side) {
		/* The link exists; its side file gone or bad is damage. */
		*what = rc == -ENOENT ? "target side file (" LINKS_DIR
					") is missing" :
					"target side file (" LINKS_DIR
					") fails authentication";
		return -EBADMSG;
	}
	if (rc < 0) {
		*what = strerror(-rc);
		return rc;
	}
	rc = dir_target_decrypt(fs, lp, enc, n, plain, cap, len);
	if (rc == -EBADMSG && lp != NULL)
		*what = "target fails authentication (tampered, or copied or "
			"moved from another symlink)";
	return rc;
}

/* Backing attributes -> plaintext attributes (sizes of files and links);
 * in: the object's inode (symlinks), or NULL. */
static void translate_attr(struct fsctx *fs, struct inode *in,
			   struct stat *st)
{
	if (S_ISREG(st->st_mode)) {
		uint64_t plain = 0;

		if (cfile_plain_size((uint64_t)st->st_size, fs->bs, &plain) < 0)
			plain = 0;
		st->st_size = (off_t)plain;
	} else if (S_ISLNK(st->st_mode)) {
		char plain[ENCLINK_MAX];
		const char *what;
		size_t len = 0;

		st->st_size = 0;
		if (in != NULL &&
		    read_target(fs, in, plain, sizeof(plain), &len, &what) == 0)
			st->st_size = (off_t)len;
		secmem_wipe(plain, sizeof(plain));
	}
}

static int stat_inode(struct fsctx *fs, struct inode *in, struct stat *st)
{
	if (fstatat(in->fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	translate_attr(fs, in, st);
	return 0;
}

/* openat() that, out of descriptors, has the reclaimer make room and
 * tries once more; if that fails too, says so (rate-limited) with the
 * limit, rather than only answering EMFILE (doc/DESIGN.md, "Descriptor
 * bound"). */
static int openat_room(struct fsctx *fs, int dirfd, const char *name,
		       int flags, mode_t mode)
{
	int fd = openat(dirfd, name, flags, mode);

	if (fd >= 0 || (errno != EMFILE && errno != ENFILE))
		return fd;
	inode_reclaim_wait(fs);
	fd = openat(dirfd, name, flags, mode);
	if (fd < 0 && (errno == EMFILE || errno == ENFILE))
		inode_nofile_log(fs, "opening a backing file");
	return fd;
}

/* Look up the backing entry `bname` of parent: needs no key, so an entry
 * just made is answered even if the mount locked meanwhile. `name`: the
 * plaintext name the kernel will know it by, for the reclaimer
 * (inode_where_set). */
static int lookup_backing(struct fsctx *fs, struct inode *parent,
			  const char *bname, const char *name,
			  struct fuse_entry_param *e)
{
	struct inode *in;
	int fd, rc;

	memset(e, 0, sizeof(*e));
	e->attr_timeout = TIMEOUT_SEC;
	e->entry_timeout = TIMEOUT_SEC;
	inode_throttle(fs);
	fd = openat_room(fs, parent->fd, bname, O_PATH | O_NOFOLLOW | O_CLOEXEC,
			 0);
	if (fd < 0)
		return -errno;
	if (fstatat(fd, "", &e->attr, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	rc = inode_get(fs, fd, &e->attr, 1, &in);
	if (rc < 0)
		return rc;
	inode_where_set(fs, in, ino_of(fs, parent), name);
	/* At the descriptor bound: an entry valid for no time, which the
	 * kernel deletes at its last use instead of caching it (Linux 4.20
	 * fuse_dentry_delete), so that its inode is forgotten soon. Keeps
	 * the bound on kernels without FUSE_NOTIFY_PRUNE, where a walk of
	 * one big directory outruns entry invalidation (doc/DESIGN.md,
	 * "Descriptor bound"). */
	if (inode_full(fs))
		e->entry_timeout = 0;
	if (S_ISLNK(e->attr.st_mode) && dir_fmt3(fs)) {
		struct names_loc loc;

		/* Not found where it is bound: readlink answers EIO. */
		if (dir_loc(fs, parent, bname, &loc) == 0)
			inode_loc_set(fs, in, &loc);
	}
	translate_attr(fs, in, &e->attr);
	e->ino = ino_of(fs, in);
	return 0;
}

static int do_lookup(struct fsctx *fs, struct inode *parent, const char *name,
		     struct fuse_entry_param *e)
{
	struct bname bn, old;
	int rc;

	rc = dir_bname(fs, parent, name, &bn);
	if (rc == 0)
		rc = lookup_backing(fs, parent, bn.name, name, e);
	/* Mid full rekey the name may still be under the previous key; or
	 * it was renamed from that to the new one just now (the order of
	 * the tries catches both). */
	if (rc == -ENOENT && dir_bname_prev(fs, parent, name, &old) == 0) {
		rc = lookup_backing(fs, parent, old.name, name, e);
		if (rc == -ENOENT)
			rc = lookup_backing(fs, parent, bn.name, name, e);
	}
	return rc;
}

/* Take the namespace lock; mid full rekey, the directories the operation
 * changes get their names under the new key first (dir_ready), so that it
 * sees each name under one key. */
static void ns_lock(struct fsctx *fs, struct inode *a, struct inode *b)
{
	int rc;

	pthread_mutex_lock(&fs->ns);
	rc = dir_ready(fs, a);
	if (rc == 0 && b != NULL && b != a)
		rc = dir_ready(fs, b);
	if (rc < 0)
		log_err("re-encrypting a directory's names before a change: %s",
			strerror(-rc));
}

/* The xattrs of `in` under the new name key first, mid full rekey: a set
 * or remove then needs to know of one name only. */
static void xattrs_ready(struct fsctx *fs, struct inode *in)
{
	struct migrate_stats st = { 0 };
	struct migrate_keys k;

	if (!keyring_full_rekey(fs->kr) || migrate_keys_get(fs->kr, &k) < 0)
		return;
	if (migrate_xattrs(&k, in->fd, &st) < 0)
		log_err("backing inode %llu: re-encrypting xattrs failed",
			(unsigned long long)in->ino);
	migrate_keys_wipe(&k);
}

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fsctx *fs = userdata;

	/* Large requests: fewer round trips, one pwrite or pread per 1 MiB,
	 * and enough blocks per request to split their crypto over the
	 * worker pool (doc/PERFORMANCE.md). The kernel's default readahead
	 * sends 128 KiB reads. */
	conn->max_write = 1u << 20;
	if (conn->max_readahead < (1u << 20))
		conn->max_readahead = 1u << 20;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* Attributes with the listing (op_readdirplus); libfuse's default
	 * READDIRPLUS_AUTO lets the kernel ask for them only while the
	 * entries listed are also looked up, as by `ls -l`. */
	if (conn->capable & FUSE_CAP_READDIRPLUS)
		conn->want |= FUSE_CAP_READDIRPLUS;
	/* Locks stay in the kernel (local locking), which is exact for a
	 * single host: no FUSE_CAP_POSIX_LOCKS / FLOCK_LOCKS. */
	conn->want &= ~(unsigned)(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	/* The writeback cache only with --writeback (doc/DESIGN.md,
	 * "Writeback cache"). Without it every write(2) is a WRITE served
	 * before the call returns, O_APPEND is served here against the
	 * backing size, and the kernel takes sizes and mtimes from our
	 * replies. With it, writes land in the kernel's page cache and reach
	 * us in large batches on writeback, close(2) or fsync(2); the kernel
	 * then owns a regular file's size, mtime and ctime (it ignores those
	 * in our attribute replies, fuse_get_cache_mask), computes the
	 * O_APPEND offset itself (so open_fh and op_create drop ours), and may
	 * READ through a handle opened write-only to fill a partly written
	 * page (ours are O_RDWR: open_fh). A write that must clear setuid
	 * still reaches us at once with FUSE_WRITE_KILL_SUIDGID: the kernel
	 * writes through for it (HANDLE_KILLPRIV_V2, wire.h). */
	if (fs->writeback && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) {
		conn->want |= FUSE_CAP_WRITEBACK_CACHE;
	} else {
		if (fs->writeback)
			log_warn("--writeback: the kernel offers no writeback "
				 "cache; writing through");
		fs->writeback = false;
		conn->want &= ~(unsigned)FUSE_CAP_WRITEBACK_CACHE;
	}
	/* Every change to the backing files goes through this daemon, so the
	 * kernel need not drop its cached pages when it sees a new mtime;
	 * doing so (libfuse's default) races with writes in flight. Without
	 * a writeback cache the kernel copies a write into an up-to-date page
	 * and unlocks it before sending the WRITE: a drop in between and a
	 * read of that page served before the WRITE caches the old bytes,
	 * and the writer itself then reads its write back wrong
	 * (tests/mount/stress.c, shared files). */
	conn->want &= ~(unsigned)FUSE_CAP_AUTO_INVAL_DATA;
	/* An O_DIRECT write submitted asynchronously (io_submit) would
	 * leave stale pages: the kernel drops the pages of a direct write's
	 * range before sending it and, for a write it waits for, again
	 * after it; for an asynchronous one it skips the second drop, so a
	 * buffered read served while the WRITE was on its way keeps the old
	 * bytes cached for good (the pages are kept, see above). Without
	 * FUSE_CAP_ASYNC_DIO the kernel waits for every direct request, and
	 * drops after it. Dropping the range from here instead
	 * (notify_inval_inode before the WRITE reply) can deadlock: the drop
	 * waits for a page a buffered read holds locked, whose READ waits in
	 * the kernel's background queue behind those very WRITEs
	 * (doc/DESIGN.md, "Cache"). */
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
	/* The descriptor bound (doc/DESIGN.md): without it, the inodes the
	 * kernel caches are bounded by the open-file limit only. */
	if (inode_reclaim_start(fs) < 0)
		return;	/* logged */
}

/* From fuse_session_destroy(), after the unmount: a notification of the
 * reclaimer still on its way then fails at once. */
static void op_destroy(void *userdata)
{
	inode_reclaim_stop(userdata);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	int rc;

	GUARD(req);

	rc = do_lookup(FS(req), INODE(req, parent), name, &e);
	if (rc == -ENOENT) {
		e.ino = 0;	/* negative entry, cached for the timeout */
		e.entry_timeout = NEG_TIMEOUT_SEC;
		fuse_reply_entry(req, &e);
		return;
	}
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t n)
{
	inode_forget(FS(req), INODE(req, ino), n);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *f)
{
	for (size_t i = 0; i < count; i++)
		inode_forget(FS(req), INODE(req, f[i].ino), f[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct stat st;
	int rc;

	GUARD(req);

	rc = stat_inode(FS(req), INODE(req, ino), &st);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT_SEC);
}

/* A read-write descriptor for contents, with the header loaded. */
static int data_fd(struct inode *in, struct fuse_file_info *fi, int *fd,
		   bool *opened)
{
	char path[32];
	int rc;

	*opened = false;
	if (fi != NULL) {
		*fd = ((struct fh *)(uintptr_t)fi->fh)->fd;
	} else {
		backing_procpath(in->fd, path);
		*fd = open(path, O_RDWR | O_CLOEXEC);
		if (*fd < 0)
			return -errno;
		*opened = true;
	}
	rc = cfile_load(&in->cf, *fd);
	if (rc < 0 && *opened) {
		close(*fd);
		*opened = false;
	}
	return rc;
}

/* Clear setuid, and setgid with group execute, when the kernel says the
 * caller lacks CAP_FSETID (FUSE_HANDLE_KILLPRIV_V2, include/cmkfs/wire.h):
 * for a write, a truncate, a fallocate, or an open with O_TRUNC.
 * Returns 1 if the mode changed, 0 if not, or -errno. */
static int kill_suidgid(struct inode *in)
{
	struct stat st;
	char path[32];
	mode_t m;

	if (!wire_kill_suidgid() || !S_ISREG(in->type))
		return 0;
	if (fstatat(in->fd, "", &st, AT_EMPTY_PATH) < 0)
		return -errno;
	m = st.st_mode & 07777;
	m &= ~(mode_t)S_ISUID;
	if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		m &= ~(mode_t)S_ISGID;
	if (m == (st.st_mode & 07777))
		return 0;
	backing_procpath(in->fd, path);
	return chmod(path, m) < 0 ? -errno : 1;
}

/* After a kill that no reply carries (open, write), the kernel must not
 * keep the old mode for the attribute timeout: drop its attributes. */
static int kill_suidgid_notify(fuse_req_t req, fuse_ino_t ino,
			       struct inode *in)
{
	int rc = kill_suidgid(in);

	if (rc > 0)
		(void)fuse_lowlevel_notify_inval_inode(FS(req)->se, ino, -1, 0);
	return rc < 0 ? rc : 0;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int valid, struct fuse_file_info *fi)
{
	struct fsctx *fs = FS(req);
	struct inode *in = INODE(req, ino);
	char path[32];
	struct stat st;
	int rc = 0;

	GUARD(req);

	rc = kill_suidgid(in);	/* first: an explicit mode below wins */
	if (rc > 0)
		rc = 0;		/* the reply carries the new mode */
	backing_procpath(in->fd, path);
	if (rc == 0 && (valid & FUSE_SET_ATTR_MODE) && !S_ISLNK(in->type) &&
	    chmod(path, attr->st_mode & 07777) < 0)
		rc = -errno;
	if (rc == 0 && (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID))) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid :
							   (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid :
							   (gid_t)-1;

		if (fchownat(in->fd, "", uid, gid,
			     AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
	}
	if (rc == 0 && (valid & FUSE_SET_ATTR_SIZE)) {
		bool opened;
		int fd;

		if (!S_ISREG(in->type)) {
			rc = -EINVAL;
		} else {
			rc = data_fd(in, fi, &fd, &opened);
			if (rc == 0)
				rc = cfile_truncate(&in->cf, fd,
						    (uint64_t)attr->st_size);
			if (opened)
				close(fd);
		}
	}
	if (rc == 0 && (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME))) {
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };

		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			ts[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			ts[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			ts[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			ts[1] = attr->st_mtim;
		/* Symlinks: AT_EMPTY_PATH on the O_PATH descriptor itself
		 * (Linux >= 5.8); the /proc path would follow the link. */
		if (S_ISLNK(in->type) ?
			    utimensat(in->fd, "", ts,
				      AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 :
			    utimensat(AT_FDCWD, path, ts, 0) < 0)
			rc = -errno;
	}
	if (rc == 0)
		rc = stat_inode(fs, in, &st);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_attr(req, &st, TIMEOUT_SEC);
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct inode *in = INODE(req, ino);
	char plain[ENCLINK_MAX], wbuf[PATH_MAX];
	const char *what;
	size_t len;
	int rc;

	GUARD(req);

	rc = read_target(FS(req), in, plain, sizeof(plain), &len, &what);
	if (rc == -EBADMSG)
		log_err("symlink %s: %s", where(in->fd, wbuf, sizeof(wbuf)),
			what);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_readlink(req, plain);
	secmem_wipe(plain, sizeof(plain));
}

/* The new entry `bn` in `parent` now exists: look it up for the reply by
 * its backing name. Encrypting the name again would fail if the mount
 * locked in between, and the caller would be told that an entry which
 * exists was not made. */
static int finish_entry(struct fsctx *fs, struct inode *parent,
			const struct bname *bn, const char *name,
			struct fuse_entry_param *e)
{
	return lookup_backing(fs, parent, bn->name, name, e);
}

static void chown_new(struct fsctx *fs, fuse_req_t req, int dirfd,
		      const char *bname)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (fs->is_root &&
	    fchownat(dirfd, bname, ctx->uid, ctx->gid, AT_SYMLINK_NOFOLLOW) < 0)
		log_warn("cannot give a new entry to uid %u: %s",
			 (unsigned)ctx->uid, strerror(errno));
}

/* Create a regular file (header + empty block) under a temporary name and
 * move it into place without replacing anything. On success *fd is an
 * O_RDWR descriptor of it and *inp its inode (one lookup counted). */
static int make_file(struct fsctx *fs, fuse_req_t req, struct inode *parent,
		     const char *name, mode_t mode, int *fdp,
		     struct fuse_entry_param *e)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct inode *in = NULL;
	struct bname bn;
	char tmp[40];
	struct stat st;
	int fd = -1, opath, rc;

	rc = dir_bname(fs, parent, name, &bn);
	if (rc == 0)
		rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	ns_lock(fs, parent, NULL);
	if (faccessat(parent->fd, bn.name, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
		rc = -EEXIST;
		goto out;
	}
	fd = openat_room(fs, parent->fd, tmp,
			 O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777);
	if (fd < 0) {
		rc = -errno;
		goto out;
	}
	if (fs->is_root && fchown(fd, ctx->uid, ctx->gid) < 0) {
		rc = -errno;
		goto out_unlink;
	}
	opath = openat_room(fs, parent->fd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC,
			    0);
	if (opath < 0 || fstat(fd, &st) < 0) {
		rc = -errno;
		if (opath >= 0)
			close(opath);
		goto out_unlink;
	}
	rc = inode_get(fs, opath, &st, 1, &in);
	if (rc < 0)
		goto out_unlink;
	rc = cfile_create(&in->cf, fd, bn.name);
	/* the header on disk before the name that points to it */
	if (rc == 0)
		rc = backing_order_data(fd);
	if (rc == 0)
		rc = dir_longname_add(parent, &bn);
	if (rc == 0 && renameat2(parent->fd, tmp, parent->fd, bn.name,
				 RENAME_NOREPLACE) < 0) {
		rc = -errno;
		/* (e.g. ENOSPC for a new directory block): the entry is
		 * not there, so neither is its side file */
		dir_longname_del(parent, &bn);
	}
	if (rc < 0) {
		inode_forget(fs, in, 1);
		goto out_unlink;
	}
	inode_where_set(fs, in, ino_of(fs, parent), name);
	memset(e, 0, sizeof(*e));
	e->attr = st;
	e->attr.st_size = 0;
	e->ino = ino_of(fs, in);
	e->attr_timeout = TIMEOUT_SEC;
	e->entry_timeout = TIMEOUT_SEC;
	*fdp = fd;
	fd = -1;
	goto out;
out_unlink:
	(void)unlinkat(parent->fd, tmp, 0);
out:
	pthread_mutex_unlock(&fs->ns);
	if (fd >= 0)
		close(fd);
	return rc;
}

static int open_fh(struct fsctx *fs, struct inode *in, int flags,
		   struct fh **out)
{
	char path[32];
	struct fh *h;
	int fd, rc;

	backing_procpath(in->fd, path);
	/* Always read-write if we may: partial writes read the old block,
	 * and with the writeback cache the kernel READs through handles
	 * opened write-only (op_init). */
	fd = openat_room(fs, AT_FDCWD, path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0 && (errno == EACCES || errno == EROFS) &&
	    (flags & O_ACCMODE) == O_RDONLY)
		fd = openat_room(fs, AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	rc = cfile_load(&in->cf, fd);
	if (rc == 0 && !(flags & O_TRUNC))
		rc = cfile_check_tail(&in->cf, fd);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	h = fh_new(fd, (flags & O_APPEND) != 0 && !fs->writeback);
	if (h == NULL)
		return -ENOMEM;
	*out = h;
	return 0;
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	struct fsctx *fs = FS(req);
	struct fuse_entry_param e;
	struct fh *h;
	int fd = -1, rc;

	GUARD(req);

	rc = make_file(fs, req, INODE(req, parent), name, mode, &fd, &e);
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		/* Lost a race with another creator: open what is there. */
		rc = do_lookup(fs, INODE(req, parent), name, &e);
		if (rc == 0) {
			struct inode *in = INODE(req, e.ino);

			rc = open_fh(fs, in, fi->flags, &h);
			if (rc == 0 && (fi->flags & O_TRUNC)) {
				rc = kill_suidgid(in);
				if (rc >= 0)
					rc = cfile_truncate(&in->cf, h->fd, 0);
				/* the reply's attributes: mode and size now */
				if (rc == 0)
					rc = stat_inode(fs, in, &e.attr);
				if (rc < 0)
					fh_free(&h->link);
			}
			if (rc < 0)
				inode_forget(fs, in, 1);
			else
				goto reply;
		}
		reply_err(req, rc);
		return;
	}
	if (rc < 0) {
		reply_err(req, rc);
		return;
	}
	h = fh_new(fd, (fi->flags & O_APPEND) != 0 && !fs->writeback);
	if (h == NULL) {
		inode_forget(fs, INODE(req, e.ino), 1);
		reply_err(req, -ENOMEM);
		return;
	}
reply:
	fi->fh = (uint64_t)(uintptr_t)h;
	fi->keep_cache = 1;	/* see op_open */
	inode_handle_add(fs, &h->link);
	inode_opened(fs, INODE(req, e.ino), 1);
	if (fuse_reply_create(req, &e, fi) != 0) {
		inode_opened(fs, INODE(req, e.ino), -1);
		inode_handle_drop(fs, &h->link);
	}
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	struct fsctx *fs = FS(req);
	struct inode *p = INODE(req, parent);
	struct fuse_entry_param e;
	struct bname bn;
	int fd, rc;

	GUARD(req);

	if (S_ISREG(mode)) {
		rc = make_file(fs, req, p, name, mode, &fd, &e);
		if (rc == 0)
			close(fd);
		goto reply;
	}
	rc = dir_bname(fs, p, name, &bn);
	if (rc < 0)
		goto reply;
	ns_lock(fs, p, NULL);
	rc = dir_longname_add(p, &bn);
	if (rc == 0 && mknodat(p->fd, bn.name, mode, rdev) < 0) {
		rc = -errno;
		dir_longname_del(p, &bn);
	}
	if (rc == 0)
		chown_new(fs, req, p->fd, bn.name);
	pthread_mutex_unlock(&fs->ns);
	if (rc == 0)
		rc = finish_entry(fs, p, &bn, name, &e);
reply:
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	struct fsctx *fs = FS(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct inode *p = INODE(req, parent);
	struct fuse_entry_param e;
	struct bname bn;
	char tmp[40];
	int rc;

	GUARD(req);

	rc = dir_bname(fs, p, name, &bn);
	if (rc == 0)
		rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc < 0)
		goto reply;
	ns_lock(fs, p, NULL);
	rc = dirtree_make(fs->kr, p->fd, tmp, bn.name, mode, ctx->uid, ctx->gid,
			  fs->is_root);
	if (rc == 0) {
		rc = dir_longname_add(p, &bn);
		if (rc == 0 && renameat2(p->fd, tmp, p->fd, bn.name,
					 RENAME_NOREPLACE) < 0) {
			rc = -errno;
			dir_longname_del(p, &bn);
		}
		if (rc < 0) {
			int dfd = openat(p->fd, tmp, O_PATH | O_CLOEXEC);

			if (dfd >= 0) {
				(void)unlinkat(dfd, DIRID_FILE, 0);
				close(dfd);
			}
			(void)unlinkat(p->fd, tmp, AT_REMOVEDIR);
		}
	}
	pthread_mutex_unlock(&fs->ns);
	if (rc == 0)
		rc = finish_entry(fs, p, &bn, name, &e);
reply:
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	struct fsctx *fs = FS(req);
	struct inode *p = INODE(req, parent);
	struct fuse_entry_param e;
	char enc[ENCLINK_MAX];
	uint8_t key[NAME_KEY_LEN];
	bool fmt3 = dir_fmt3(fs);
	struct names_loc loc;
	struct bname bn;
	int rc;

	GUARD(req);

	rc = dir_bname(fs, p, name, &bn);
	if (rc == 0 && fmt3)
		rc = dir_loc(fs, p, bn.name, &loc);
	if (rc == 0)
		rc = keyring_name_key(fs->kr, key);
	if (rc < 0)
		goto reply;
	rc = names_target_seal(key, fmt3 ? &loc : NULL, link, strlen(link),
			       enc, sizeof(enc));
	secmem_wipe(key, sizeof(key));
	if (rc < 0)
		goto reply;
	ns_lock(fs, p, NULL);
	rc = dir_longname_add(p, &bn);
	if (rc == 0) {
		rc = linktgt_make(fs->root.fd, p->fd, bn.name, enc,
				  strlen(enc));
		if (rc < 0)
			dir_longname_del(p, &bn);
	}
	if (rc == 0)
		chown_new(fs, req, p->fd, bn.name);
	pthread_mutex_unlock(&fs->ns);
	if (rc == 0)
		rc = finish_entry(fs, p, &bn, name, &e);
reply:
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

/* Format 3 (doc/FORMAT.md §2, "Location"): the header slots of regular
 * file `in` become {a, b} (`edit`: a added, b dropped, from the slots on
 * disk), through its cfile so that a reseal or a header reservation of the
 * same file on this mount waits for it. */
static int bind_inode(struct fsctx *fs, struct inode *in, const char *a,
		      const char *b, bool edit, bool durable)
{
	struct stat st;
	char path[32];
	int fd, rc;

	backing_procpath(in->fd, path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0 && errno == EACCES && !fs->is_root &&
	    fstat(in->fd, &st) == 0 &&
	    chmod(path, (st.st_mode & 07777) | S_IWUSR) == 0) {
		/* our own read-only file: writable for the header's sake */
		fd = open(path, O_RDWR | O_CLOEXEC);
		if (chmod(path, st.st_mode & 07777) < 0)
			log_err("cannot restore the mode of a read-only file "
				"after binding its header: %s",
				strerror(errno));
	}
	if (fd < 0)
		return -errno;
	rc = edit ? cfile_edit_slots(&in->cf, fd, a, b, durable) :
		    cfile_set_slots(&in->cf, fd, a, b, durable);
	close(fd);
	if (rc < 0)
		log_err("binding a file's header to its name: %s",
			strerror(-rc));
	return rc;
}

/* The inode of regular file dirfd/bname in a format-3 volume, held (one
 * lookup: inode_forget), in *out; NULL if there is nothing to bind (not a
 * regular file, or an older format). */
static int bind_get(struct fsctx *fs, int dirfd, const char *bname,
		    struct inode **out)
{
	struct stat st;
	int opath;

	*out = NULL;
	if (keyring_version(fs->kr) < 3)
		return 0;
	opath = openat(dirfd, bname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (opath < 0)
		return -errno;
	if (fstat(opath, &st) < 0 || !S_ISREG(st.st_mode)) {
		int rc = S_ISREG(st.st_mode) ? -errno : 0;

		close(opath);
		return rc;
	}
	return inode_get(fs, opath, &st, 1, out);
}

/* Format 3: symlink (target `plain`, plen bytes, attributes of sattr) made
 * anew as `bname` in p, its target bound there (doc/FORMAT.md §4.3), for
 * a rename or link: binding to the place means a new backing symlink.
 * `tmp`: bname is a temporary renamed into place later, made before its
 * side file (linktgt_make_tmp). */
static int remake_symlink(struct fsctx *fs, struct inode *p,
			  const char *bname, bool tmp,
			  const struct names_loc *loc, const char *plain,
			  size_t plen, const struct stat *sattr)
{
	uint8_t key[NAME_KEY_LEN];
	char *enc;
	int rc;

	enc = malloc(ENCLINK_MAX);
	if (enc == NULL)
		return -ENOMEM;
	rc = keyring_name_key(fs->kr, key);
	if (rc == 0)
		rc = names_target_seal3(key, loc, plain, plen, enc,
					ENCLINK_MAX);
	secmem_wipe(key, sizeof(key));
	if (rc == 0)
		rc = tmp ? linktgt_make_tmp(fs->root.fd, p->fd, bname, enc,
					    strlen(enc)) :
			   linktgt_make(fs->root.fd, p->fd, bname, enc,
					strlen(enc));
	if (rc == 0) {
		struct timespec ts[2] = { sattr->st_atim, sattr->st_mtim };

		if (fs->is_root &&
		    fchownat(p->fd, bname, sattr->st_uid, sattr->st_gid,
			     AT_SYMLINK_NOFOLLOW) < 0)
			log_warn("a re-made symlink keeps uid %u: %s",
				 (unsigned)geteuid(), strerror(errno));
		(void)utimensat(p->fd, bname, ts, AT_SYMLINK_NOFOLLOW);
	}
	free(enc);
	return rc;
}

/* The plaintext target of format-3 symlink bname in p (any length). */
static int target_at(struct fsctx *fs, struct inode *p, const char *bname,
		     char *plain, size_t cap, size_t *plen)
{
	char *enc, wbuf[PATH_MAX];
	struct names_loc loc;
	size_t n = 0;
	int rc;

	enc = malloc(ENCLINK_MAX);
	if (enc == NULL)
		return -ENOMEM;
	rc = dir_loc(fs, p, bname, &loc);
	if (rc == 0)
		rc = linktgt_read(fs->root.fd, p->fd, bname, enc, ENCLINK_MAX,
				  &n, NULL);
	if (rc == -ENOENT)
		rc = -EBADMSG;	/* the entry is there: its side file is not */
	if (rc == 0)
		rc = dir_target_decrypt(fs, &loc, enc, n, plain, cap, plen);
	if (rc == -EBADMSG)
		log_err("symlink %s/%s: target fails authentication: not "
			"moved", where(p->fd, wbuf, sizeof(wbuf)), bname);
	free(enc);
	return rc;
}

/* Format 3: link(2) of a symlink makes another symlink with the same
 * target, bound to the new place (a hard link would carry a target
 * bound to the old one). The new entry is its own inode. */
static int link_symlink(struct fsctx *fs, struct inode *in, struct inode *p,
			const struct bname *bn)
{
	char plain[ENCLINK_MAX];
	struct names_loc loc;
	const char *what;
	struct stat st;
	size_t len = 0;
	int rc;

	rc = read_target(fs, in, plain, sizeof(plain), &len, &what);
	if (rc == 0 && fstatat(in->fd, "", &st,
			       AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	if (rc == 0)
		rc = dir_loc(fs, p, bn->name, &loc);
	if (rc == 0)
		rc = dir_longname_add(p, bn);
	if (rc == 0) {
		rc = remake_symlink(fs, p, bn->name, false, &loc, plain, len,
				    &st);
		if (rc < 0)
			dir_longname_del(p, bn);
	}
	secmem_wipe(plain, sizeof(plain));
	return rc;
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	struct fsctx *fs = FS(req);
	struct inode *in = INODE(req, ino), *p = INODE(req, newparent);
	struct fuse_entry_param e;
	struct bname bn;
	char path[32];
	int rc;

	GUARD(req);

	rc = dir_bname(fs, p, newname, &bn);
	if (rc < 0)
		goto reply;
	if (S_ISLNK(in->type) && dir_fmt3(fs)) {
		ns_lock(fs, p, NULL);
		rc = link_symlink(fs, in, p, &bn);
		pthread_mutex_unlock(&fs->ns);
		if (rc == 0)
			rc = finish_entry(fs, p, &bn, newname, &e);
		goto reply;
	}
	backing_procpath(in->fd, path);
	ns_lock(fs, p, NULL);
	/* the new name is in the header, durably, before it exists */
	if (S_ISREG(in->type) && keyring_version(fs->kr) >= 3)
		rc = bind_inode(fs, in, bn.name, NULL, true, true);
	if (rc == 0)
		rc = dir_longname_add(p, &bn);
	if (rc == 0 && linkat(AT_FDCWD, path, p->fd, bn.name,
			      AT_SYMLINK_FOLLOW) < 0) {
		rc = -errno;
		dir_longname_del(p, &bn);
	}
	pthread_mutex_unlock(&fs->ns);
	if (rc == 0)
		rc = finish_entry(fs, p, &bn, newname, &e);
reply:
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_entry(req, &e);
}

/* Remove an empty backing directory: its dirid first, restored on failure. */
static int remove_dir(int parentfd, const char *bname)
{
	uint8_t dirid[DIRID_RAW_MAX];
	size_t len = 0;
	int dfd, rc;

	dfd = openat(parentfd, bname, O_PATH | O_DIRECTORY | O_NOFOLLOW |
					      O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = dirtree_is_empty(dfd);
	if (rc == 0)
		rc = -ENOTEMPTY;
	if (rc < 0)
		goto out;
	rc = dirtree_dirid_raw(dfd, dirid, &len);
	if (rc < 0)
		goto out;
	if (unlinkat(dfd, DIRID_FILE, 0) < 0) {
		rc = -errno;
		goto out;
	}
	if (unlinkat(parentfd, bname, AT_REMOVEDIR) < 0) {
		rc = -errno;
		if (backing_replace(dfd, DIRID_FILE, dirid, len, 0400) < 0)
			log_err("rmdir failed and the directory id could not "
				"be restored (backing inode of '%s')",
				bname);
		goto out;
	}
	rc = 0;
out:
	close(dfd);
	return rc;
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsctx *fs = FS(req);
	struct inode *p = INODE(req, parent);
	struct linktgt_pin pin;
	struct inode *other = NULL;
	struct bname bn;
	struct stat st;
	int rc;

	GUARD(req);

	rc = dir_bname(fs, p, name, &bn);
	if (rc < 0)
		goto reply;
	ns_lock(fs, p, NULL);
	linktgt_pin(p->fd, bn.name, &pin);
	if (fstatat(p->fd, bn.name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
	    S_ISREG(st.st_mode) && st.st_nlink > 1 &&
	    bind_get(fs, p->fd, bn.name, &other) < 0)
		other = NULL;
	if (unlinkat(p->fd, bn.name, 0) < 0)
		rc = -errno;
	else
		dir_longname_del(p, &bn);
	/* a file keeping other links forgets this name (a crash before
	 * this leaves a stale slot: harmless, fsck --repair drops it) */
	if (rc == 0 && other != NULL)
		(void)bind_inode(fs, other, NULL, bn.name, true, false);
	if (other != NULL)
		inode_forget(fs, other, 1);
	linktgt_unpin(fs->root.fd, &pin);
	pthread_mutex_unlock(&fs->ns);
reply:
	fuse_reply_err(req, kerr(rc));
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fsctx *fs = FS(req);
	struct inode *p = INODE(req, parent);
	struct bname bn;
	int rc;

	GUARD(req);

	rc = dir_bname(fs, p, name, &bn);
	if (rc < 0)
		goto reply;
	ns_lock(fs, p, NULL);
	rc = remove_dir(p->fd, bn.name);
	if (rc == 0)
		dir_longname_del(p, &bn);
	pthread_mutex_unlock(&fs->ns);
reply:
	fuse_reply_err(req, kerr(rc));
}

/* A rename's steps for a regular file of a format-3 volume moving from
 * base name `from` to `to` (doc/FORMAT.md §2, "Location"): before, its
 * header names both, on disk before the backing rename; after, `to`
 * alone; undo, `from` alone. A file with one link gets exactly these
 * slots (a stale one left by a crash goes); one with more keeps its
 * other names. */
enum bind_step { BIND_BEFORE, BIND_AFTER, BIND_UNDO };

static int bind_move(struct fsctx *fs, struct inode *in, nlink_t nlink,
		     const char *from, const char *to, enum bind_step step)
{
	bool one = nlink < 2;

	if (in == NULL)
		return 0;
	switch (step) {
	case BIND_BEFORE:
		return one ? bind_inode(fs, in, from, to, false, true) :
			     bind_inode(fs, in, to, NULL, true, true);
	case BIND_AFTER:
		return one ? bind_inode(fs, in, to, NULL, false, false) :
			     bind_inode(fs, in, NULL, from, true, false);
	default:
		return one ? bind_inode(fs, in, from, NULL, false, false) :
			     bind_inode(fs, in, NULL, to, true, false);
	}
}

/* Format 3: rename of symlink b1 in p1 (attributes s1): its target is
 * bound to where it lives (doc/FORMAT.md §4.3), so it is made anew for
 * the destination, at a temporary name there, renamed over the
 * destination, and then the source is unlinked. A crash in between
 * leaves both names, each readable. RENAME_EXCHANGE of a symlink is not
 * supported (EINVAL). With fs->ns held. */
static int rename_symlink(struct fsctx *fs, struct inode *p1,
			  const struct bname *b1, const struct stat *s1,
			  struct inode *p2, const struct bname *b2,
			  unsigned int flags)
{
	char *plain = NULL, tmp[40], wbuf[PATH_MAX];
	struct names_loc loc;
	struct stat s2;
	size_t plen = 0;
	int nfd, rc, src;

	if (flags & RENAME_EXCHANGE)
		return -EINVAL;
	if (fstatat(p2->fd, b2->name, &s2, AT_SYMLINK_NOFOLLOW) == 0) {
		if (s1->st_dev == s2.st_dev && s1->st_ino == s2.st_ino)
			return 0;	/* same object: POSIX says no-op */
		if (flags & RENAME_NOREPLACE)
			return -EEXIST;
		if (S_ISDIR(s2.st_mode))
			return -EISDIR;
	} else if (errno != ENOENT) {
		return -errno;
	}
	plain = malloc(ENCLINK_MAX);
	rc = plain == NULL ? -ENOMEM :
			     target_at(fs, p1, b1->name, plain, ENCLINK_MAX,
				       &plen);
	if (rc == 0)
		rc = dir_loc(fs, p2, b2->name, &loc);
	if (rc == 0)
		rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc == 0)
		rc = remake_symlink(fs, p2, tmp, true, &loc, plain, plen, s1);
	if (rc < 0)
		goto out;
	/* A symlink replaced here may take its side file with it. */
	rc = dir_longname_add(p2, b2);
	if (rc == 0)
		rc = linktgt_rename_over(fs->root.fd, p2->fd, tmp, p2->fd,
					 b2->name, flags & RENAME_NOREPLACE);
	if (rc < 0) {
		dir_longname_del(p2, b2);	/* kept if an entry is there */
		if (linktgt_unlink(fs->root.fd, p2->fd, tmp) < 0)
			log_warn("a temporary symlink stays behind (fsck "
				 "--repair removes it)");
		goto out;
	}
	/* The kernel keeps its inode for the moved symlink: it follows. */
	nfd = openat(p2->fd, b2->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (nfd >= 0 && fstatat(nfd, "", &s2, AT_EMPTY_PATH |
						     AT_SYMLINK_NOFOLLOW) == 0)
		inode_rebind(fs, s1->st_dev, s1->st_ino, nfd, &s2, &loc);
	else if (nfd >= 0)
		close(nfd);
	/* the source's side file stays reachable until it goes */
	src = linktgt_retire(fs->root.fd, p1->fd, b1->name);
	if (src < 0)
		log_err("rename of symlink %s/%s: the source stays (%s)",
			where(p1->fd, wbuf, sizeof(wbuf)), b1->name,
			strerror(-src));
	else
		dir_longname_del(p1, b1);
out:
	if (plain != NULL)
		secmem_wipe(plain, ENCLINK_MAX);
	free(plain);
	return rc;
}

/* Directories moved by a rename: the id of each is bound to its backing
 * name (doc/FORMAT.md §4.1), so it names the old and the new place
 * (durably) before the backing rename, and the new alone after. On an
 * exchange both entries move. No-ops for other entries and format 1/2. */
static int move_dirs_begin(struct fsctx *fs, struct inode *p1,
			   const struct bname *b1, struct inode *p2,
			   const struct bname *b2, bool exchange,
			   struct dirtree_move dm[2])
{
	int rc = dirtree_move_begin(fs->kr, p1->fd, b1->name, b2->name, &dm[0]);

	if (rc == 0 && exchange)
		rc = dirtree_move_begin(fs->kr, p2->fd, b2->name, b1->name,
					&dm[1]);
	if (rc == -EBADMSG)
		log_err("rename of %s or %s refused: %s", b1->name, b2->name,
			dirtree_dirid_why(rc));
	return rc;
}

static void move_dirs_end(struct fsctx *fs, struct dirtree_move dm[2],
			  bool moved)
{
	for (int i = 0; i < 2; i++)
		if (dirtree_move_end(fs->kr, &dm[i], moved) < 0)
			log_warn("directory %s: its id keeps a second place "
				 "(fsck --repair drops it)", dm[i].to);
}

/* After a rename the kernel knows the object moved as newname in p2 (and,
 * on exchange, the other one as name in p1): tell the reclaimer. With
 * fs->ns held. */
static void where_renamed(struct fsctx *fs, struct inode *p1, const char *name,
			  const struct bname *b1, struct inode *p2,
			  const char *newname, const struct bname *b2,
			  bool exchange)
{
	struct stat st;

	if (fstatat(p2->fd, b2->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		inode_where_move(fs, st.st_dev, st.st_ino, ino_of(fs, p2),
				 newname);
	if (exchange && fstatat(p1->fd, b1->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
		inode_where_move(fs, st.st_dev, st.st_ino, ino_of(fs, p1), name);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	struct fsctx *fs = FS(req);
	struct inode *p1 = INODE(req, parent), *p2 = INODE(req, newparent);
	struct linktgt_pin pin = { .fd = -1 };
	struct inode *f1 = NULL, *f2 = NULL;	/* regular files to rebind */
	struct dirtree_move dm[2] = { { .dfd = -1 }, { .dfd = -1 } };
	struct bname b1, b2;
	struct stat s1, s2;
	int rc;

	GUARD(req);

	if (flags & ~(unsigned)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = dir_bname(fs, p1, name, &b1);
	if (rc == 0)
		rc = dir_bname(fs, p2, newname, &b2);
	if (rc < 0)
		goto reply;
	ns_lock(fs, p1, p2);
	if (fstatat(p1->fd, b1.name, &s1, AT_SYMLINK_NOFOLLOW) < 0) {
		rc = -errno;
		goto unlock;
	}
	/* Format-3 symlinks are re-made at the destination. */
	if (dir_fmt3(fs) &&
	    (S_ISLNK(s1.st_mode) ||
	     ((flags & RENAME_EXCHANGE) &&
	      fstatat(p2->fd, b2.name, &s2, AT_SYMLINK_NOFOLLOW) == 0 &&
	      S_ISLNK(s2.st_mode)))) {
		rc = rename_symlink(fs, p1, &b1, &s1, p2, &b2, flags);
		goto unlock;
	}
	if (p1 != p2 || strcmp(b1.name, b2.name) != 0)
		rc = bind_get(fs, p1->fd, b1.name, &f1);
	if (rc < 0)
		goto unlock;
	/* Entries keep their names on exchange, so side files stay put. */
	if (flags & RENAME_EXCHANGE) {
		if (fstatat(p2->fd, b2.name, &s2, AT_SYMLINK_NOFOLLOW) < 0) {
			rc = -errno;
			goto unlock;
		}
		if (p1 != p2 || strcmp(b1.name, b2.name) != 0)
			rc = bind_get(fs, p2->fd, b2.name, &f2);
		if (rc == 0)
			rc = move_dirs_begin(fs, p1, &b1, p2, &b2, true, dm);
		if (rc == 0)
			rc = bind_move(fs, f1, s1.st_nlink, b1.name, b2.name,
				       BIND_BEFORE);
		if (rc == 0)
			rc = bind_move(fs, f2, s2.st_nlink, b2.name, b1.name,
				       BIND_BEFORE);
		if (rc == 0 &&
		    renameat2(p1->fd, b1.name, p2->fd, b2.name, flags) < 0)
			rc = -errno;
		(void)bind_move(fs, f1, s1.st_nlink, b1.name, b2.name,
				rc == 0 ? BIND_AFTER : BIND_UNDO);
		(void)bind_move(fs, f2, s2.st_nlink, b2.name, b1.name,
				rc == 0 ? BIND_AFTER : BIND_UNDO);
		goto unlock;
	}
	/* Before an empty target directory is removed: a directory whose id
	 * is refused stops the rename with nothing changed. */
	rc = move_dirs_begin(fs, p1, &b1, p2, &b2, false, dm);
	if (rc < 0)
		goto unlock;
	if (fstatat(p2->fd, b2.name, &s2, AT_SYMLINK_NOFOLLOW) == 0) {
		if (s1.st_dev == s2.st_dev && s1.st_ino == s2.st_ino)
			goto unlock;	/* same object: POSIX says no-op */
		if (flags & RENAME_NOREPLACE) {
			rc = -EEXIST;
			goto unlock;
		}
		if (S_ISDIR(s2.st_mode) && !S_ISDIR(s1.st_mode)) {
			rc = -EISDIR;
			goto unlock;
		}
		if (!S_ISDIR(s2.st_mode) && S_ISDIR(s1.st_mode)) {
			rc = -ENOTDIR;
			goto unlock;
		}
		/* An empty target directory still holds our dirid file, which
		 * the backing rename would refuse: remove it first. */
		if (S_ISDIR(s2.st_mode)) {
			rc = remove_dir(p2->fd, b2.name);
			if (rc < 0)
				goto unlock;
		}
	}
	/* A symlink replaced here may take its side file with it. */
	linktgt_pin(p2->fd, b2.name, &pin);
	rc = bind_move(fs, f1, s1.st_nlink, b1.name, b2.name, BIND_BEFORE);
	if (rc == 0)
		rc = dir_longname_add(p2, &b2);
	if (rc == 0 &&
	    renameat2(p1->fd, b1.name, p2->fd, b2.name, flags) < 0) {
		rc = -errno;
		dir_longname_del(p2, &b2);	/* kept if an entry is there */
	}
	(void)bind_move(fs, f1, s1.st_nlink, b1.name, b2.name,
			rc == 0 ? BIND_AFTER : BIND_UNDO);
	if (rc < 0)
		goto unlock;
	if (rc == 0 && (p1 != p2 || strcmp(b1.name, b2.name) != 0))
		dir_longname_del(p1, &b1);
unlock:
	move_dirs_end(fs, dm, rc == 0);
	linktgt_unpin(fs->root.fd, &pin);
	if (rc == 0)
		where_renamed(fs, p1, name, &b1, p2, newname, &b2,
			      (flags & RENAME_EXCHANGE) != 0);
	pthread_mutex_unlock(&fs->ns);
	if (f1 != NULL)
		inode_forget(fs, f1, 1);
	if (f2 != NULL)
		inode_forget(fs, f2, 1);
reply:
	fuse_reply_err(req, kerr(rc));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct inode *in = INODE(req, ino);
	struct fh *h = NULL;
	int rc;

	GUARD(req);

	rc = open_fh(FS(req), in, fi->flags, &h);
	if (rc == 0 && (fi->flags & O_TRUNC) &&
	    (rc = kill_suidgid_notify(req, ino, in)) == 0)
		rc = cfile_truncate(&in->cf, h->fd, 0);
	if (rc < 0) {
		if (h != NULL)
			fh_free(&h->link);
		reply_err(req, rc);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)h;
	/* The cached pages stay valid (only we change the backing files,
	 * op_init), and dropping them here would race with writes in flight
	 * on other descriptors just as FUSE_CAP_AUTO_INVAL_DATA does. */
	fi->keep_cache = 1;
	inode_handle_add(FS(req), &h->link);
	inode_opened(FS(req), in, 1);
	if (fuse_reply_open(req, fi) != 0) {
		inode_opened(FS(req), in, -1);
		inode_handle_drop(FS(req), &h->link);
	}
}

static void serve_read(fuse_req_t req, fuse_ino_t ino, size_t size,
		       off_t off, struct fuse_file_info *fi)
{
	struct inode *in = INODE(req, ino);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	size_t got = 0;
	uint8_t *buf;
	int rc;

	GUARD(req);

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	buf = malloc(size ? size : 1);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	rc = cfile_read(&in->cf, h->fd, (uint64_t)off, size, buf, &got);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_buf(req, (const char *)buf, got);
	secmem_wipe(buf, got);
	free(buf);
}

/* Inside the fsctx's read gate, so that a lock can wait for replies of
 * plaintext still on their way (inode_on_lock). */
static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct gate *g = &FS(req)->reads;
	unsigned side = gate_enter(g);

	serve_read(req, ino, size, off, fi);
	gate_leave(g, side);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	struct inode *in = INODE(req, ino);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	int rc;

	GUARD(req);

	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = kill_suidgid_notify(req, ino, in);
	if (rc == 0)
		rc = cfile_write(&in->cf, h->fd, (uint64_t)off,
				 (const uint8_t *)buf, size, h->append, NULL);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_write(req, size);
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;

	inode_handle_drop(FS(req), &h->link);
	inode_opened(FS(req), INODE(req, ino), -1);
	/* A closed file keeps no keyed contexts: the kernel may hold on to
	 * the inode for long (8,035 files read = 24 MiB of contexts,
	 * doc/PERFORMANCE.md), and fewer DEKs live in memory. Another open
	 * handle makes new ones when it needs them (one DEK unwrap). */
	cfile_drop_keys(&INODE(req, ino)->cf);
	fuse_reply_err(req, 0);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		     struct fuse_file_info *fi)
{
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	int rc = backing_fsync(h->fd, datasync);

	GUARD(req);

	fuse_reply_err(req, kerr(rc));
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			 off_t len, struct fuse_file_info *fi)
{
	struct inode *in = INODE(req, ino);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	int rc;

	GUARD(req);

	if (off < 0 || len <= 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	rc = cfile_fallocate(&in->cf, h->fd, mode, (uint64_t)off,
			     (uint64_t)len);
	fuse_reply_err(req, kerr(rc));
}

/* SEEK_DATA / SEEK_HOLE (the kernel answers SEEK_SET/CUR/END itself),
 * from the file's slots: format-3 holes are verified before they are
 * reported (cfile_seek). */
static void op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	struct inode *in = INODE(req, ino);
	struct fh *h = (struct fh *)(uintptr_t)fi->fh;
	uint64_t res = 0;
	int rc;

	GUARD(req);

	if (off < 0) {
		fuse_reply_err(req, ENXIO);
		return;
	}
	rc = cfile_seek(&in->cf, h->fd, (uint64_t)off, whence, &res);
	if (rc < 0)
		reply_err(req, rc);
	else
		fuse_reply_lseek(req, (off_t)res);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct dh *d;

	GUARD(req);

	d = calloc(1, sizeof(*d));
	if (d == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	d->link.free = dh_free;
	fi->fh = (uint64_t)(uintptr_t)d;
	inode_handle_add(FS(req), &d->link);
	inode_opened(FS(req), INODE(req, ino), 1);
	if (fuse_reply_open(req, fi) != 0) {
		inode_opened(FS(req), INODE(req, ino), -1);
		inode_handle_drop(FS(req), &d->link);
	}
}

/* READDIR and READDIRPLUS. With `plus` every entry carries its attributes
 * and counts one lookup, so `ls -l` and `find` need no LOOKUP request per
 * entry (doc/PERFORMANCE.md). The attributes come from the backing entry
 * (lookup_backing), as LOOKUP's do; an entry gone since the snapshot is
 * sent without them (ino 0: the kernel then just lists the name), as are
 * "." and "..". */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct fsctx *fs = FS(req);
	struct inode *dir = INODE(req, ino);
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;
	size_t used = 0;
	char *buf;
	int rc;

	GUARD(req);

	/* Offset 0 (open or rewinddir) takes a fresh snapshot; entries are
	 * numbered 1.. so that an offset names the next entry. */
	if (off == 0) {
		dir_list_free(&d->l);
		rc = dir_list(fs, dir, &d->l);
		if (rc < 0) {
			reply_err(req, rc);
			return;
		}
	}
	if (d->l.err < 0) {
		reply_err(req, d->l.err);
		return;
	}
	buf = malloc(size);
	if (buf == NULL) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (size_t i = (size_t)off; i < d->l.n; i++) {
		const struct dent *de = &d->l.v[i];
		struct fuse_entry_param e;
		size_t n;

		memset(&e, 0, sizeof(e));
		e.attr.st_ino = de->ino;
		e.attr.st_mode = (mode_t)de->type << 12;
		if (!plus) {
			n = fuse_add_direntry(req, buf + used, size - used,
					      de->name, &e.attr, (off_t)(i + 1));
			if (n > size - used)
				break;
			used += n;
			continue;
		}
		/* Room first: a lookup counted for an entry not sent would
		 * never be forgotten. */
		if (fuse_add_direntry_plus(req, NULL, 0, de->name, NULL, 0) >
		    size - used)
			break;
		/* "." and ".." go without a node id: the kernel takes no
		 * lookup for them (libfuse's readdirplus contract). */
		/* At the inode bound (doc/DESIGN.md, "Descriptor bound")
		 * the names go without: a listing of a huge directory then
		 * makes no inodes, and the kernel looks up those it needs. */
		if (de->bname == NULL || inode_full(fs) ||
		    lookup_backing(fs, dir, de->bname, de->name, &e) < 0) {
			memset(&e, 0, sizeof(e));
			e.attr.st_ino = de->ino;
			e.attr.st_mode = (mode_t)de->type << 12;
		}
		used += fuse_add_direntry_plus(req, buf + used, size - used,
					       de->name, &e, (off_t)(i + 1));
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	struct dh *d = (struct dh *)(uintptr_t)fi->fh;

	inode_handle_drop(FS(req), &d->link);
	inode_opened(FS(req), INODE(req, ino), -1);
	fuse_reply_err(req, 0);
}

static void op_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	struct inode *in = INODE(req, ino);
	int rc, fd;

	GUARD(req);

	rc = backing_fsync_dir(in->fd);
	/* The directory's id must be durable with its entries. */
	fd = openat(in->fd, DIRID_FILE, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		int rc2 = backing_fsync(fd, false);

		if (rc == 0)
			rc = rc2;
		close(fd);
	}
	fuse_reply_err(req, kerr(rc));
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;

	GUARD(req);

	if (fstatvfs(FS(req)->root.fd, &sv) < 0) {
		fuse_reply_err(req, errno);
		return;
	}
	sv.f_namemax = NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

/* Format 3: the id the xattr values of `in` are bound to (doc/FORMAT.md
 * §4.4): a regular file's file id, from its header as cfile_load()
 * authenticates it, or a directory's id. Linux keeps user.* xattrs off
 * other objects (EPERM). */
static int xattr_owner(struct fsctx *fs, struct inode *in,
		       uint8_t owner[static NAMES_OWNER_LEN])
{
	char path[32];
	int fd, rc;

	if (S_ISDIR(in->type))
		return inode_dirid(fs, in, owner);
	if (!S_ISREG(in->type))
		return -EPERM;
	backing_procpath(in->fd, path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = cfile_load(&in->cf, fd);
	close(fd);
	if (rc == 0) {
		pthread_mutex_lock(&in->cf.mtx);
		memcpy(owner, in->cf.hdr.file_id, NAMES_OWNER_LEN);
		pthread_mutex_unlock(&in->cf.mtx);
	}
	return rc;
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct fsctx *fs = FS(req);
	struct inode *in = INODE(req, ino);
	char bname[XATTR_NAME_MAX + 1], path[32];
	uint8_t key[NAME_KEY_LEN], *sealed = NULL, owner[NAMES_OWNER_LEN];
	const uint8_t *ow = dir_fmt3(fs) ? owner : NULL;
	size_t over = names_xattr_overhead(ow);
	int rc;

	GUARD(req);
	if (refuse_xattr(req))
		return;

	if (size > XATTR_VAL_MAX - over) {
		fuse_reply_err(req, E2BIG);
		return;
	}
	rc = keyring_name_key(fs->kr, key);
	if (rc == 0)
		rc = names_xattr_name_encrypt(key, name, bname, sizeof(bname));
	if (rc == 0 && ow != NULL)
		rc = xattr_owner(fs, in, owner);
	if (rc == 0) {
		sealed = malloc(size + over);
		rc = sealed ? names_xattr_seal(key, ow, name,
					       (const uint8_t *)value, size,
					       sealed) :
			      -ENOMEM;
	}
	secmem_wipe(key, sizeof(key));
	if (rc == 0) {
		backing_procpath(in->fd, path);
		pthread_mutex_lock(&fs->ns);
		xattrs_ready(fs, in);
		if (setxattr(path, bname, sealed, size + over, flags) < 0)
			rc = -errno;
		pthread_mutex_unlock(&fs->ns);
	}
	free(sealed);
	fuse_reply_err(req, kerr(rc));
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fsctx *fs = FS(req);
	struct inode *in = INODE(req, ino);
	char bname[XATTR_NAME_MAX + 1], path[32], wbuf[PATH_MAX];
	uint8_t key[NAME_KEY_LEN], *raw = NULL, *val = NULL,
					       owner[NAMES_OWNER_LEN];
	const uint8_t *ow = dir_fmt3(fs) ? owner : NULL;
	ssize_t n = 0;
	int rc;

	GUARD(req);
	if (refuse_xattr(req))
		return;

	rc = keyring_name_key(fs->kr, key);
	if (rc == 0)
		rc = names_xattr_name_encrypt(key, name, bname, sizeof(bname));
	if (rc == -EOPNOTSUPP || rc == -ERANGE || rc == -EINVAL)
		rc = -ENODATA;	/* nothing but user.* is ever stored */
	if (rc < 0)
		goto out;
	raw = malloc(XATTR_VAL_MAX);
	val = malloc(XATTR_VAL_MAX);
	if (raw == NULL || val == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	backing_procpath(in->fd, path);
	n = getxattr(path, bname, raw, XATTR_VAL_MAX);
	/* mid full rekey: not re-encrypted yet */
	if (n < 0 && errno == ENODATA &&
	    keyring_prev_name_key(fs->kr, key) == 0 &&
	    names_xattr_name_encrypt(key, name, bname, sizeof(bname)) == 0) {
		n = getxattr(path, bname, raw, XATTR_VAL_MAX);
		if (n < 0 && errno == ENODATA &&
		    keyring_name_key(fs->kr, key) == 0 &&
		    names_xattr_name_encrypt(key, name, bname,
					     sizeof(bname)) == 0)
			n = getxattr(path, bname, raw, XATTR_VAL_MAX);
	}
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	if (ow != NULL) {
		rc = xattr_owner(fs, in, owner);
		if (rc < 0)
			goto out;
	}
	rc = names_xattr_open(key, ow, name, raw, (size_t)n, val);
	if (rc < 0) {
		log_err("%s: xattr value fails authentication%s",
			where(in->fd, wbuf, sizeof(wbuf)),
			ow != NULL ? " (tampered, or copied from another file "
				     "or directory)" :
				     "");
		rc = -EBADMSG;
		goto out;
	}
	n -= (ssize_t)names_xattr_overhead(ow);
out:
	secmem_wipe(key, sizeof(key));
	if (rc < 0)
		reply_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else if ((size_t)n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, (const char *)val, (size_t)n);
	free(raw);
	free(val);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fsctx *fs = FS(req);
	struct inode *in = INODE(req, ino);
	char path[32], plain[XATTR_NAME_MAX + 1];
	char *raw = NULL, *out = NULL;
	uint8_t key[NAME_KEY_LEN], prev[NAME_KEY_LEN];
	bool have_prev = false;
	size_t used = 0;
	ssize_t n;
	int rc;

	GUARD(req);
	if (refuse_xattr(req))
		return;

	backing_procpath(in->fd, path);
	rc = keyring_name_key(fs->kr, key);
	if (rc < 0)
		goto out;
	have_prev = keyring_prev_name_key(fs->kr, prev) == 0;
	n = listxattr(path, NULL, 0);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	raw = malloc((size_t)n + 1);
	out = malloc((size_t)n + 1);
	if (raw == NULL || out == NULL) {
		rc = -ENOMEM;
		goto out;
	}
	n = listxattr(path, raw, (size_t)n);
	if (n < 0) {
		rc = -errno;
		goto out;
	}
	for (char *p = raw; p < raw + n; p += strlen(p) + 1) {
		size_t l;

		if (names_xattr_name_decrypt(key, p, plain, sizeof(plain)) < 0 &&
		    (!have_prev || names_xattr_name_decrypt(
					   prev, p, plain, sizeof(plain)) < 0))
			continue;	/* not ours (security.*, ...) */
		l = strlen(plain) + 1;
		if (used + l > (size_t)n)
			break;	/* plain names are shorter than sealed ones */
		memcpy(out + used, plain, l);
		used += l;
	}
out:
	secmem_wipe(key, sizeof(key));
	secmem_wipe(prev, sizeof(prev));
	if (rc < 0)
		reply_err(req, rc);
	else if (size == 0)
		fuse_reply_xattr(req, used);
	else if (used > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, out, used);
	free(raw);
	free(out);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct fsctx *fs = FS(req);
	struct inode *in = INODE(req, ino);
	char bname[XATTR_NAME_MAX + 1], path[32];
	uint8_t key[NAME_KEY_LEN];
	int rc;

	GUARD(req);
	if (refuse_xattr(req))
		return;

	rc = keyring_name_key(fs->kr, key);
	if (rc == 0)
		rc = names_xattr_name_encrypt(key, name, bname, sizeof(bname));
	secmem_wipe(key, sizeof(key));
	if (rc == -EOPNOTSUPP || rc == -ERANGE || rc == -EINVAL)
		rc = -ENODATA;
	if (rc == 0) {
		backing_procpath(in->fd, path);
		pthread_mutex_lock(&fs->ns);
		xattrs_ready(fs, in);
		if (removexattr(path, bname) < 0)
			rc = -errno;
		pthread_mutex_unlock(&fs->ns);
	}
	fuse_reply_err(req, kerr(rc));
}

const struct fuse_lowlevel_ops ops_lowlevel = {
	.init = op_init,
	.destroy = op_destroy,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.setattr = op_setattr,
	.readlink = op_readlink,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.symlink = op_symlink,
	.link = op_link,
	.unlink = op_unlink,
	.rmdir = op_rmdir,
	.rename = op_rename,
	.create = op_create,
	.open = op_open,
	.read = op_read,
	.write = op_write,
	/* No .flush: writes are write-through, so close(2) has nothing to
	 * report; the kernel stops sending FLUSH after its first ENOSYS,
	 * one request less per close (doc/PERFORMANCE.md). */
	.release = op_release,
	.fsync = op_fsync,
	.fallocate = op_fallocate,
	.lseek = op_lseek,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.fsyncdir = op_fsyncdir,
	.statfs = op_statfs,
	.setxattr = op_setxattr,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.removexattr = op_removexattr,
};
