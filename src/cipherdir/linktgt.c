/* src/cipherdir/linktgt.c — symlink targets inline or in a side file
 * (include/cmkfs/linktgt.h, doc/FORMAT.md §4.3). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/b64.h"
#include "cmkfs/backing.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/rand.h"

static bool b64url_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '-' || c == '_';
}

int linktgt_is_marker(const char *t, size_t n)
{
	size_t pl = sizeof(LINKTGT_PREFIX) - 1;

	if (n != LINKTGT_MARKER_LEN || memcmp(t, LINKTGT_PREFIX, pl) != 0)
		return 0;
	for (size_t i = pl; i < n; i++)
		if (!b64url_char(t[i]))
			return 0;
	return 1;
}

int linktgt_is_id(const char *name)
{
	size_t n = strlen(name);

	if (n != LINKTGT_ID_B64)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!b64url_char(name[i]))
			return 0;
	return 1;
}

/* LINKS_DIR, made on first use. */
static int links_dir(int rootfd, bool create)
{
	int fd;

	if (create && mkdirat(rootfd, LINKS_DIR, 0700) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(rootfd, LINKS_DIR,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* A fresh marker: LINKTGT_PREFIX and a random id. */
static int new_marker(char marker[static LINKTGT_MARKER_LEN + 1])
{
	uint8_t id[32];
	int rc;

	memcpy(marker, LINKTGT_PREFIX, sizeof(LINKTGT_PREFIX) - 1);
	rc = rand_bytes(id, sizeof(id));
	if (rc == 0)
		rc = b64_encode(id, sizeof(id),
				marker + sizeof(LINKTGT_PREFIX) - 1,
				LINKTGT_ID_B64 + 1);
	return rc < 0 ? rc : 0;
}

/* A symlink at dfd/bname for encrypted target enc: inline, or a side file
 * and a marker. tmp_first: the symlink (a temporary) before its side
 * file, so that a kill after it leaves the side file (or none yet)
 * reachable from a name the rerun, or fsck --repair, removes together with
 * it; else the side file first, durably, so that a symlink at a final
 * name never points at nothing. */
static int make(int rootfd, int dfd, const char *bname, const char *enc,
		size_t enc_len, bool tmp_first)
{
	char marker[LINKTGT_MARKER_LEN + 1];
	int ld, rc;

	if (enc_len >= ENCLINK_MAX)
		return -ENAMETOOLONG;
	if (enc_len <= LINKTGT_INLINE_MAX)
		return symlinkat(enc, dfd, bname) < 0 ? -errno : 0;
	rc = new_marker(marker);
	if (rc < 0)
		return rc;
	ld = links_dir(rootfd, true);
	if (ld < 0)
		return ld;
	if (tmp_first) {
		if (symlinkat(marker, dfd, bname) < 0)
			rc = -errno;
		if (rc == 0)
			rc = backing_replace(ld, linktgt_marker_id(marker), enc,
					     enc_len, 0400);
		if (rc < 0)
			(void)unlinkat(dfd, bname, 0);
	} else {
		rc = backing_replace(ld, linktgt_marker_id(marker), enc,
				     enc_len, 0400);
		if (rc == 0 && symlinkat(marker, dfd, bname) < 0) {
			rc = -errno;
			(void)unlinkat(ld, linktgt_marker_id(marker), 0);
		}
	}
	close(ld);
	return rc;
}

int linktgt_make(int rootfd, int dfd, const char *bname, const char *enc,
		 size_t enc_len)
{
	return make(rootfd, dfd, bname, enc, enc_len, false);
}

int linktgt_make_tmp(int rootfd, int dfd, const char *tmp, const char *enc,
		     size_t enc_len)
{
	return make(rootfd, dfd, tmp, enc, enc_len, true);
}

int linktgt_make_tmp_like(int rootfd, int dfd, const char *tmp,
			  const char *enc, size_t enc_len,
			  const struct stat *like)
{
	struct timespec ts[2] = { like->st_atim, like->st_mtim };
	int rc = linktgt_make_tmp(rootfd, dfd, tmp, enc, enc_len);

	if (rc < 0)
		return rc;
	if (fchownat(dfd, tmp, like->st_uid, like->st_gid,
		     AT_SYMLINK_NOFOLLOW) < 0) {
		/* not root: the owner is ours, as for any symlink made
		 * through the mount */
	}
	(void)utimensat(dfd, tmp, ts, AT_SYMLINK_NOFOLLOW);
	return 0;
}

int linktgt_unlink(int rootfd, int dfd, const char *name)
{
	struct linktgt_pin p;
	struct stat st;
	int rc;

	linktgt_pin(dfd, name, &p);
	/* The last link: its side file goes first, while the entry still
	 * names it, so that a kill in between leaves the entry (dangling,
	 * still to be removed) and never a side file nothing points at. */
	if (p.fd >= 0 && fstatat(p.fd, "", &st, AT_EMPTY_PATH) == 0 &&
	    st.st_nlink == 1) {
		rc = linktgt_drop(rootfd, p.marker);
		close(p.fd);
		p.fd = -1;
		if (rc < 0 && rc != -ENOENT)
			return rc;
	}
	rc = unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	linktgt_unpin(rootfd, &p);
	return rc;
}

int linktgt_retire(int rootfd, int dfd, const char *name)
{
	struct linktgt_pin p;
	char tmp[40];
	int rc;

	linktgt_pin(dfd, name, &p);
	if (p.fd < 0)	/* no side file of its own */
		return unlinkat(dfd, name, 0) < 0 ? -errno : 0;
	close(p.fd);
	/* Out of the way to a temporary first: from there on a kill leaves
	 * only a temporary (with or without its side file), never the
	 * name's side file with no entry. */
	rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc == 0 && renameat2(dfd, name, dfd, tmp, RENAME_NOREPLACE) < 0)
		rc = -errno;
	if (rc == 0 && linktgt_unlink(rootfd, dfd, tmp) < 0) {
		/* the name is gone; the temporary left is removed, with its
		 * side file, by a full rekey or fsck --repair */
	}
	return rc;
}

int linktgt_rename_over(int rootfd, int dfd, const char *from, int ddfd,
			const char *to, unsigned int flags)
{
	struct linktgt_pin p;
	char keep[40];
	bool kept = false;
	int rc;

	linktgt_pin(ddfd, to, &p);
	/* A long symlink replaced here keeps a second link at a temporary
	 * across the rename: its side file is reachable from there until
	 * linktgt_unlink() removes it, side file first. Without a hard link
	 * (refused by the file system) the side file goes after the rename,
	 * as linktgt_unpin() does. */
	if (p.fd >= 0 && !(flags & RENAME_NOREPLACE) &&
	    backing_tmpname(keep, sizeof(keep)) == 0 &&
	    linkat(ddfd, to, ddfd, keep, 0) == 0) {
		kept = true;
		close(p.fd);
		p.fd = -1;
	}
	rc = renameat2(dfd, from, ddfd, to, flags) < 0 ? -errno : 0;
	if (kept && linktgt_unlink(rootfd, ddfd, keep) < 0) {
		/* a temporary left: removed with its side file by a full
		 * rekey or fsck --repair */
	}
	linktgt_unpin(rootfd, &p);
	return rc;
}

int linktgt_read(int rootfd, int dfd, const char *name, char *out,
		 size_t cap, size_t *len, bool *marker)
{
	char m[LINKTGT_MARKER_LEN + 1];
	ssize_t n;
	size_t got = 0;
	int ld, rc;

	if (cap < 2)
		return -ENOSPC;
	n = readlinkat(dfd, name, out, cap - 1);
	if (n < 0)
		return -errno;
	if (marker != NULL)
		*marker = false;
	if (!linktgt_is_marker(out, (size_t)n)) {
		out[n] = '\0';
		*len = (size_t)n;
		return 0;
	}
	if (marker != NULL)
		*marker = true;
	memcpy(m, out, (size_t)n);
	m[n] = '\0';
	ld = links_dir(rootfd, false);
	if (ld < 0)
		return ld;
	rc = backing_read_small(ld, linktgt_marker_id(m), out, cap - 1, &got);
	close(ld);
	if (rc == -EFBIG)
		rc = -EBADMSG;
	/* A side file holds only what would not fit in the symlink. */
	if (rc == 0 && got <= LINKTGT_INLINE_MAX)
		rc = -EBADMSG;
	if (rc < 0)
		return rc;
	out[got] = '\0';
	*len = got;
	return 0;
}

void linktgt_pin(int dfd, const char *bname, struct linktgt_pin *p)
{
	struct stat st;
	ssize_t n;

	p->fd = -1;
	if (fstatat(dfd, bname, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
	    !S_ISLNK(st.st_mode) || st.st_size != (off_t)LINKTGT_MARKER_LEN)
		return;
	p->fd = openat(dfd, bname, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (p->fd < 0)
		return;
	n = readlinkat(p->fd, "", p->marker, sizeof(p->marker));
	if (n < 0 || !linktgt_is_marker(p->marker, (size_t)n)) {
		close(p->fd);
		p->fd = -1;
		return;
	}
	p->marker[n] = '\0';
}

void linktgt_unpin(int rootfd, struct linktgt_pin *p)
{
	struct stat st;

	if (p->fd < 0)
		return;
	/* A link count of 0 is final: linkat() cannot revive such an inode,
	 * so no other entry can still point at the side file. */
	if (fstatat(p->fd, "", &st, AT_EMPTY_PATH) == 0 && st.st_nlink == 0)
		if (linktgt_drop(rootfd, p->marker) < 0) {
			/* Left behind, the side file is only an orphan that nothing reads. */
		}
	close(p->fd);
	p->fd = -1;
}

int linktgt_drop(int rootfd, const char *marker)
{
	int ld, rc = 0;

	if (!linktgt_is_marker(marker, strlen(marker)))
		return -EINVAL;
	ld = links_dir(rootfd, false);
	if (ld < 0)
		return ld;
	if (unlinkat(ld, linktgt_marker_id(marker), 0) < 0)
		rc = -errno;
	close(ld);
	return rc;
}

int linktgt_rewrite(int rootfd, const char *marker, const char *enc,
		    size_t enc_len)
{
	int ld, rc;

	if (!linktgt_is_marker(marker, strlen(marker)) ||
	    enc_len <= LINKTGT_INLINE_MAX || enc_len >= ENCLINK_MAX)
		return -EINVAL;
	ld = links_dir(rootfd, false);
	if (ld < 0)
		return ld;
	rc = backing_replace(ld, linktgt_marker_id(marker), enc, enc_len, 0400);
	close(ld);
	return rc;
}
