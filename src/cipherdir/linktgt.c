/* src/cipherdir/linktgt.c — symlink targets inline or in a side file
 * (include/cmkfs/linktgt.h, doc/FORMAT.md §4.3). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
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

int linktgt_make(int rootfd, int dfd, const char *bname, const char *enc,
		 size_t enc_len)
{
	char marker[LINKTGT_MARKER_LEN + 1];
	uint8_t id[32];
	int ld = -1, rc;

	if (enc_len >= ENCLINK_MAX)
		return -ENAMETOOLONG;
	if (enc_len <= LINKTGT_INLINE_MAX)
		return symlinkat(enc, dfd, bname) < 0 ? -errno : 0;
	memcpy(marker, LINKTGT_PREFIX, sizeof(LINKTGT_PREFIX) - 1);
	rc = rand_bytes(id, sizeof(id));
	if (rc == 0)
		rc = b64_encode(id, sizeof(id),
				marker + sizeof(LINKTGT_PREFIX) - 1,
				LINKTGT_ID_B64 + 1);
	if (rc < 0)
		return rc;
	ld = links_dir(rootfd, true);
	if (ld < 0)
		return ld;
	/* The side file first, durably: a symlink never points at nothing. */
	rc = backing_replace(ld, linktgt_marker_id(marker), enc, enc_len, 0400);
	if (rc == 0 && symlinkat(marker, dfd, bname) < 0) {
		rc = -errno;
		(void)unlinkat(ld, linktgt_marker_id(marker), 0);
	}
	close(ld);
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
