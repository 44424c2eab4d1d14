/* src/cipherdir/dirtree.c — directories of the volume on disk: backing
 * names, long-name side files, directory ids (doc/FORMAT.md §4). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"
#include "cmkfs/walk.h"

int dirtree_bname(struct keyring *kr, const uint8_t dirid[static DIRID_LEN],
		  const char *name, struct bname *out)
{
	uint8_t key[NAME_KEY_LEN];
	int rc;

	rc = keyring_name_key(kr, key);
	if (rc < 0)
		return rc;
	rc = names_encrypt(key, dirid, name, strlen(name), out->enc,
			   sizeof(out->enc));
	secmem_wipe(key, sizeof(key));
	if (rc < 0)
		return rc;
	rc = names_backing(out->enc, out->name, sizeof(out->name));
	if (rc < 0)
		return rc;
	out->is_long = rc == 1;
	return 0;
}

int dirtree_longname_add(int dirfd, const struct bname *bn)
{
	char side[ENCNAME_MAX];
	int rc;

	if (!bn->is_long)
		return 0;
	rc = names_side_name(bn->name, side, sizeof(side));
	if (rc < 0)
		return rc;
	return backing_replace(dirfd, side, bn->enc, strlen(bn->enc), 0400);
}

void dirtree_longname_del(int dirfd, const struct bname *bn)
{
	char side[ENCNAME_MAX];

	if (!bn->is_long || names_side_name(bn->name, side, sizeof(side)) < 0)
		return;
	/* An entry of that name still there (a create that lost to one made
	 * meanwhile: EEXIST) is the side file's owner: keep it. */
	if (faccessat(dirfd, bn->name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return;
	(void)unlinkat(dirfd, side, 0);
}

int dirtree_longname_read(int dirfd, const char *bname, char *enc, size_t cap)
{
	char side[ENCNAME_MAX];
	size_t len = 0;

	if (cap == 0 || names_side_name(bname, side, sizeof(side)) < 0 ||
	    backing_read_small(dirfd, side, enc, cap - 1, &len) < 0)
		return -EBADMSG;
	return names_longname_open(bname, enc, len);
}

int dirtree_read_dirid(int dirfd, uint8_t out[static DIRID_LEN])
{
	uint8_t buf[DIRID_LEN];
	size_t len = 0;
	int rc;

	/* One byte more than DIRID_LEN is -EFBIG: a damaged id is refused,
	 * never cut to size. */
	rc = backing_read_small(dirfd, DIRID_FILE, buf, sizeof(buf), &len);
	if (rc < 0)
		return rc;
	if (len != DIRID_LEN)
		return -EBADMSG;
	memcpy(out, buf, DIRID_LEN);
	return 0;
}

/* walk_entries() callback: stops (1) at the first entry that counts. */
static int nonempty_entry(const struct walk_entry *e, void *arg)
{
	(void)arg;
	if (!names_is_tmp(e->name))
		return 1;
	(void)unlinkat(e->dfd, e->name, 0);	/* left by a crash */
	return 0;
}

int dirtree_is_empty(int dirfd)
{
	int rc = walk_entries(dirfd, WALK_ALL & ~WALK_DIRID,
			      WALK_F_SKIP_ERRORS, nonempty_entry, NULL);

	return rc < 0 ? rc : rc == 0;
}

int dirtree_make(int parentfd, const char *tmp, mode_t mode, uid_t uid,
		 gid_t gid, bool chown_it)
{
	uint8_t dirid[DIRID_LEN];
	int dfd = -1, fd = -1, rc;

	rc = rand_bytes(dirid, sizeof(dirid));
	if (rc < 0)
		return rc;
	if (mkdirat(parentfd, tmp, 0700) < 0)
		return -errno;
	dfd = openat(parentfd, tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		goto fail;
	}
	fd = openat(dfd, DIRID_FILE, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0400);
	if (fd < 0) {
		rc = -errno;
		goto fail;
	}
	rc = backing_pwrite_full(fd, dirid, sizeof(dirid), 0);
	/* On disk before the directory is renamed into place: with delayed
	 * allocation the rename can reach the journal long before these 16
	 * bytes do, and a crash in between leaves an empty id, which makes
	 * every name in the directory unreadable, fsynced files' included. */
	if (rc == 0)
		rc = backing_order_data(fd);
	close(fd);
	fd = -1;
	if (rc < 0)
		goto fail;
	if (chown_it && fchown(dfd, uid, gid) < 0) {
		rc = -errno;
		goto fail;
	}
	if (fchmod(dfd, mode & 07777) < 0) {
		rc = -errno;
		goto fail;
	}
	close(dfd);
	return 0;
fail:
	if (dfd >= 0) {
		(void)unlinkat(dfd, DIRID_FILE, 0);
		close(dfd);
	}
	(void)unlinkat(parentfd, tmp, AT_REMOVEDIR);
	return rc;
}
