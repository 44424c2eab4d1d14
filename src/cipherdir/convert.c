/* src/cipherdir/convert.c — format-1/2 objects rewritten as format 3 by
 * `cmkfs upgrade` (include/cmkfs/convert.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/limits.h>
#include <linux/xattr.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/cfile.h"
#include "cmkfs/convert.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/linkset.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/names.h"
#include "cmkfs/secmem.h"

#define XVAL_MAX 65536

int convert_links_add(struct convert_links *l, dev_t dev, ino_t ino,
		      const char *bname)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct convert_link *v = realloc(l->v, cap * sizeof(*v));

		if (v == NULL)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n].dev = dev;
	l->v[l->n].ino = ino;
	l->sorted = 0;
	return names_link_token(bname, l->v[l->n++].tok);
}

void convert_links_free(struct convert_links *l)
{
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static int by_ino(const void *a, const void *b)
{
	const struct convert_link *x = a, *y = b;

	if (x->dev != y->dev)
		return x->dev < y->dev ? -1 : 1;
	return x->ino < y->ino ? -1 : x->ino > y->ino;
}

/* The tokens of inode (dev, ino) into set (own token included), each
 * once. */
static int tokens_of(struct convert_links *l, dev_t dev, ino_t ino,
		     const char *own, struct linkset *set)
{
	const struct convert_link key = { .dev = dev, .ino = ino };
	size_t lo = 0, hi = l != NULL ? l->n : 0;
	uint8_t tok[HEADER_SLOT_LEN];
	int rc;

	if (l != NULL && !l->sorted && l->n > 0) {
		qsort(l->v, l->n, sizeof(*l->v), by_ino);
		l->sorted = 1;
	}
	while (lo < hi) {	/* first entry of (dev, ino) */
		size_t mid = lo + (hi - lo) / 2;

		if (by_ino(&l->v[mid], &key) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	hi = lo;
	while (l != NULL && hi < l->n && by_ino(&l->v[hi], &key) == 0)
		hi++;
	set->n = 0;
	set->tok = calloc(hi - lo + 1, HEADER_SLOT_LEN);
	if (set->tok == NULL)
		return -ENOMEM;
	rc = names_link_token(own, tok);
	if (rc < 0)
		return rc;
	memcpy(set->tok[set->n++], tok, HEADER_SLOT_LEN);
	for (size_t i = lo; i < hi; i++) {
		bool seen = false;

		for (uint32_t j = 0; j < set->n && !seen; j++)
			seen = memcmp(set->tok[j], l->v[i].tok,
				      HEADER_SLOT_LEN) == 0;
		if (!seen)
			memcpy(set->tok[set->n++], l->v[i].tok,
			       HEADER_SLOT_LEN);
	}
	return 0;
}

/* Every user.* xattr of fd (any kind of fd) whose value is still the
 * format-1/2 one: sealed again for `owner`, under the same name. */
static int convert_xattrs(const uint8_t key[static NAME_KEY_LEN], int fd,
			  const uint8_t owner[static NAMES_OWNER_LEN])
{
	char path[32], plain[XATTR_NAME_MAX + 1], *list = NULL;
	uint8_t *raw = NULL, *val = NULL;
	ssize_t n, m;
	int rc = 0, done = 0;

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
		rc = -errno;
		goto out;
	}
	for (char *p = list; p < list + n && rc == 0; p += strlen(p) + 1) {
		size_t len;

		if (strncmp(p, XATTR_USER_PREFIX, XATTR_USER_PREFIX_LEN) != 0 ||
		    names_xattr_name_decrypt(key, p, plain, sizeof(plain)) < 0)
			continue;	/* not ours: fsck names it */
		m = getxattr(path, p, raw, XVAL_MAX);
		if (m < 0) {
			rc = errno == ENODATA ? 0 : -errno;
			continue;
		}
		if (names_xattr_open(key, owner, plain, raw, (size_t)m,
				     val) == 0 ||
		    (size_t)m < XATTR_VALUE_OVERHEAD ||
		    names_xattr_open(key, NULL, plain, raw, (size_t)m,
				     val) < 0)
			continue;	/* done already, or damaged: fsck */
		len = (size_t)m - XATTR_VALUE_OVERHEAD;
		if (len + XATTR_VALUE3_OVERHEAD > XVAL_MAX) {
			rc = -E2BIG;
			break;
		}
		rc = names_xattr_seal(key, owner, plain, val, len, raw);
		if (rc == 0 && setxattr(path, p, raw,
					len + XATTR_VALUE3_OVERHEAD,
					XATTR_REPLACE) < 0)
			rc = -errno;
		done += rc == 0;
	}
out:
	if (val != NULL)
		secmem_wipe(val, XVAL_MAX);
	secmem_wipe(plain, sizeof(plain));
	free(list);
	free(raw);
	free(val);
	return rc < 0 ? rc : done > 0;
}

int convert_check_xattrs(int fd)
{
	char path[32], *list = NULL;
	ssize_t n, m;
	int rc = 0;

	backing_procpath(fd, path);
	n = listxattr(path, NULL, 0);
	if (n <= 0)
		return n < 0 && errno != ENOTSUP && errno != EPERM ? -errno : 0;
	list = malloc((size_t)n + 1);
	if (list == NULL)
		return -ENOMEM;
	n = listxattr(path, list, (size_t)n);
	if (n < 0)
		rc = -errno;
	for (char *p = list; rc == 0 && p < list + n; p += strlen(p) + 1) {
		if (strncmp(p, XATTR_USER_PREFIX, XATTR_USER_PREFIX_LEN) != 0)
			continue;
		m = getxattr(path, p, NULL, 0);
		if (m > (ssize_t)(XVAL_MAX - (XATTR_VALUE3_OVERHEAD -
					       XATTR_VALUE_OVERHEAD)))
			rc = -E2BIG;
	}
	free(list);
	return rc;
}

static int with_name_key(struct keyring *kr, int fd,
			 const uint8_t owner[static NAMES_OWNER_LEN])
{
	uint8_t key[NAME_KEY_LEN];
	int rc = keyring_name_key(kr, key);

	if (rc == 0)
		rc = convert_xattrs(key, fd, owner);
	secmem_wipe(key, sizeof(key));
	return rc;
}

/* The slots of a header for the names in set: the tokens themselves, or
 * beyond two a link set of version 1 that the header names. */
static int slots_for(struct keyring *kr, int rootfd, const uint8_t *id,
		     struct linkset *set, uint8_t slot[2][HEADER_SLOT_LEN])
{
	memset(slot, 0, 2 * HEADER_SLOT_LEN);
	if (set->n <= 2) {
		for (uint32_t i = 0; i < set->n; i++)
			memcpy(slot[i], set->tok[i], HEADER_SLOT_LEN);
		return 0;
	}
	if (set->n > LINKSET_MAX)
		return -EMLINK;
	set->version = 1;
	memset(slot[0], HEADER_SLOT_SET, HEADER_SLOT_LEN);
	slot[1][HEADER_SLOT_LEN - 1] = 1;
	return linkset_store(kr, rootfd, id, set, NULL);
}

int convert_file(struct keyring *kr, int rootfd, int dfd, const char *bname,
		 struct convert_links *links)
{
	uint8_t buf[HEADER_LEN], slot[2][HEADER_SLOT_LEN];
	struct linkset set = { 0 };
	struct header h, nh;
	struct stat st;
	int fd, rc, done = 0;

	fd = openat(dfd, bname, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) < 0 ? -errno : cfile_read_header(fd, &h);
	if (rc == 0 && h.version == HEADER_VERSION_3) {
		/* Converted by a run killed before it put the times back:
		 * nothing else writes while the upgrade runs, so the birth
		 * time it wrote is the mtime the file had. */
		uint64_t m = (uint64_t)st.st_mtim.tv_sec * 1000000000u +
			     (uint64_t)st.st_mtim.tv_nsec;

		if (st.st_mtim.tv_sec >= 0 && h.birth_ns != m) {
			struct timespec t[2] = {
				st.st_atim,
				{ (time_t)(h.birth_ns / 1000000000u),
				  (long)(h.birth_ns % 1000000000u) } };

			rc = futimens(fd, t) < 0 ? -errno : 0;
		}
	}
	if (rc < 0 || h.version == HEADER_VERSION_3)
		goto xattrs;
	rc = tokens_of(st.st_nlink > 1 ? links : NULL, st.st_dev, st.st_ino,
		       bname, &set);
	if (rc == 0)
		rc = slots_for(kr, rootfd, h.file_id, &set, slot);
	/* The authenticated creation time format 3 keeps is unknown here:
	 * the last change is the closest later bound (a transient file
	 * expires no earlier than its ttl after it). */
	if (rc == 0)
		rc = keyring_header_upgrade(
			kr, &h, (const uint8_t(*)[HEADER_SLOT_LEN])slot,
			st.st_mtim.tv_sec < 0 ?
				0 :
				(uint64_t)st.st_mtim.tv_sec * 1000000000u +
					(uint64_t)st.st_mtim.tv_nsec,
			&nh);
	if (rc == -EKEYREJECTED)
		rc = -EBADMSG;
	if (rc == 0) {
		header_serialize(&nh, buf);
		rc = backing_pwrite_full(fd, buf, sizeof(buf), 0);
	}
	if (rc == 0) {
		struct timespec t[2] = { st.st_atim, st.st_mtim };

		rc = futimens(fd, t) < 0 ? -errno : 1;
		h = nh;
		done = 1;
	}
xattrs:
	if (rc >= 0) {
		rc = with_name_key(kr, fd, h.file_id);
		if (rc >= 0)
			rc = done || rc > 0;
	}
	free(set.tok);
	close(fd);
	return rc;
}

int convert_dir(struct keyring *kr, int dirfd, const char *bname)
{
	uint8_t id[DIRID_LEN];
	unsigned fl = 0;
	int rc;

	rc = dirtree_check_dirid(kr, dirfd, bname, id, &fl);
	if (rc == 0 && (fl & DIRID_F_OLD))
		rc = dirtree_bind_dirid(kr, dirfd, NULL, bname);
	if (rc == 0)
		rc = with_name_key(kr, dirfd, id);
	return rc < 0 ? rc : (rc > 0 || (fl & DIRID_F_OLD));
}

int convert_symlink(struct keyring *kr, int rootfd, int dfd,
		    const char *bname)
{
	uint8_t key[NAME_KEY_LEN], id[DIRID_LEN];
	char *enc = NULL, *plain = NULL, tmp[64];
	struct names_loc loc;
	size_t len = 0, plen = 0;
	struct stat sb, ds;
	int rc;

	enc = malloc(ENCLINK_MAX);
	plain = malloc(SYMLINK_TARGET_MAX + 1);
	rc = enc == NULL || plain == NULL ? -ENOMEM : keyring_name_key(kr, key);
	if (rc == 0)
		rc = dirtree_dirid_unverified(dfd, id);
	if (rc == 0)
		rc = names_loc_set(&loc, id, bname);
	if (rc == 0)
		rc = linktgt_read(rootfd, dfd, bname, enc, ENCLINK_MAX, &len,
				  NULL);
	if (rc == 0 && (fstatat(dfd, bname, &sb, AT_SYMLINK_NOFOLLOW) < 0 ||
			fstat(dfd, &ds) < 0))
		rc = -errno;
	if (rc < 0)
		goto out;
	if (names_target_open(key, &loc, enc, len, plain,
			      SYMLINK_TARGET_MAX + 1, &plen) == 0)
		goto out;	/* done already */
	if (names_target_open(key, NULL, enc, len, plain,
			      SYMLINK_TARGET_MAX + 1, &plen) < 0) {
		rc = -EBADMSG;
		goto out;
	}
	rc = names_target_seal(key, &loc, plain, plen, enc, ENCLINK_MAX);
	if (rc == 0)
		rc = backing_tmpname(tmp, sizeof(tmp));
	/* A new symlink at a temporary (its long target's side file written
	 * after it), renamed over the old one, whose side file goes with
	 * its last link: a kill leaves the old symlink or the new one, and
	 * at most a temporary that the next run removes. */
	if (rc == 0)
		rc = linktgt_make_tmp_like(rootfd, dfd, tmp, enc, strlen(enc),
					   &sb);
	if (rc < 0)
		goto out;
	rc = linktgt_rename_over(rootfd, dfd, tmp, dfd, bname, 0);
	if (rc < 0 && linktgt_unlink(rootfd, dfd, tmp) < 0) {
		/* a temporary left: the next run removes it */
	}
	{	/* the directory's listing did not change */
		struct timespec ts[2] = { ds.st_atim, ds.st_mtim };

		(void)futimens(dfd, ts);
	}
	rc = rc < 0 ? rc : 1;
out:
	if (plain != NULL)
		secmem_wipe(plain, SYMLINK_TARGET_MAX + 1);
	secmem_wipe(key, sizeof(key));
	free(plain);
	free(enc);
	return rc;
}
