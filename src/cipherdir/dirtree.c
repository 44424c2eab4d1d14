/* src/cipherdir/dirtree.c — directories of the volume on disk: backing
 * names, long-name side files, directory ids (doc/FORMAT.md §4). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/kdf.h"
#include "cmkfs/log.h"
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

/* HKDF label of the key that MACs format-3 directory ids. */
#define DIRID_MAC_LABEL "cmkfs v3 dirid mac"
#define OFF_ID 5
#define OFF_SLOTS (OFF_ID + DIRID_LEN)
#define OFF_MAC (OFF_SLOTS + 2 * NAMES_TOKEN_LEN)

static bool v3(struct keyring *kr)
{
	return keyring_version(kr) >= 3;
}

/* Constant time: the MAC is a secret-keyed value. */
static bool same(const uint8_t *a, const uint8_t *b, size_t n)
{
	uint8_t d = 0;

	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

/* rec's MAC under the current secret (prev false) or the previous one. */
static int record_mac(struct keyring *kr, bool prev,
		      const uint8_t rec[static DIRID_V3_LEN],
		      uint8_t mac[static HMAC_LEN])
{
	uint8_t key[32];
	int rc;

	rc = prev ? keyring_derive_prev(kr, DIRID_MAC_LABEL, key, sizeof(key)) :
		    keyring_derive(kr, DIRID_MAC_LABEL, key, sizeof(key));
	if (rc == 0)
		rc = kdf_hmac(key, sizeof(key), rec, OFF_MAC, mac);
	secmem_wipe(key, sizeof(key));
	return rc;
}

/* The slot value of `bname`: its token, or the root's 0xFF. */
static int place_token(const char *bname, uint8_t tok[static NAMES_TOKEN_LEN])
{
	if (bname == NULL) {
		memset(tok, 0xff, NAMES_TOKEN_LEN);
		return 0;
	}
	return names_link_token(bname, tok);
}

static void record_build(const uint8_t id[static DIRID_LEN],
			 const uint8_t a[static NAMES_TOKEN_LEN],
			 const uint8_t *b, uint8_t rec[static DIRID_V3_LEN])
{
	memcpy(rec, DIRID_V3_MAGIC, 4);
	rec[4] = DIRID_V3_VERSION;
	memcpy(rec + OFF_ID, id, DIRID_LEN);
	memcpy(rec + OFF_SLOTS, a, NAMES_TOKEN_LEN);
	if (b != NULL)
		memcpy(rec + OFF_SLOTS + NAMES_TOKEN_LEN, b, NAMES_TOKEN_LEN);
	else
		memset(rec + OFF_SLOTS + NAMES_TOKEN_LEN, 0, NAMES_TOKEN_LEN);
}

static int record_seal(struct keyring *kr, uint8_t rec[static DIRID_V3_LEN])
{
	uint8_t mac[HMAC_LEN];
	int rc = record_mac(kr, false, rec, mac);

	if (rc == 0)
		memcpy(rec + OFF_MAC, mac, DIRID_V3_MAC_LEN);
	return rc;
}

int dirtree_dirid_encode(struct keyring *kr, const uint8_t id[static DIRID_LEN],
			 const char *bname, uint8_t buf[static DIRID_RAW_MAX],
			 size_t *len)
{
	uint8_t tok[NAMES_TOKEN_LEN];
	int rc;

	if (!v3(kr)) {
		memcpy(buf, id, DIRID_LEN);
		*len = DIRID_LEN;
		return 0;
	}
	rc = place_token(bname, tok);
	if (rc < 0)
		return rc;
	/* The root's pair is the 0xFF token twice; others have one slot. */
	record_build(id, tok, bname == NULL ? tok : NULL, buf);
	*len = DIRID_V3_LEN;
	return record_seal(kr, buf);
}

int dirtree_dirid_raw(int dirfd, uint8_t buf[static DIRID_RAW_MAX],
		      size_t *len)
{
	*len = 0;
	return backing_read_small(dirfd, DIRID_FILE, buf, DIRID_RAW_MAX, len);
}

int dirtree_dirid_unverified(int dirfd, uint8_t out[static DIRID_LEN])
{
	uint8_t buf[DIRID_RAW_MAX];
	size_t len = 0;
	int rc = dirtree_dirid_raw(dirfd, buf, &len);

	if (rc < 0)
		return rc;
	if (len == DIRID_LEN)
		memcpy(out, buf, DIRID_LEN);
	else if (len == DIRID_V3_LEN && memcmp(buf, DIRID_V3_MAGIC, 4) == 0)
		memcpy(out, buf + 5, DIRID_LEN);
	else
		return -EBADMSG;
	return 0;
}

/* Where token `tok` is among rec's slots: 0 or 1, -1 if in neither. The
 * 0xFF pair is the root's alone: both slots must hold it, and only the
 * root (tok 0xFF) matches it. A zero slot is empty. */
static int slot_of(const uint8_t rec[static DIRID_V3_LEN],
		   const uint8_t tok[static NAMES_TOKEN_LEN])
{
	static const uint8_t zero[NAMES_TOKEN_LEN];
	uint8_t ff[NAMES_TOKEN_LEN];
	const uint8_t *a = rec + OFF_SLOTS, *b = a + NAMES_TOKEN_LEN;
	bool root = false;

	memset(ff, 0xff, sizeof(ff));
	if (memcmp(a, ff, NAMES_TOKEN_LEN) == 0 ||
	    memcmp(b, ff, NAMES_TOKEN_LEN) == 0) {
		if (memcmp(a, ff, NAMES_TOKEN_LEN) != 0 ||
		    memcmp(b, ff, NAMES_TOKEN_LEN) != 0)
			return -1;
		root = true;
	}
	if (memcmp(tok, ff, NAMES_TOKEN_LEN) == 0)
		return root ? 0 : -1;
	if (root)
		return -1;
	if (memcmp(a, zero, NAMES_TOKEN_LEN) != 0 &&
	    memcmp(a, tok, NAMES_TOKEN_LEN) == 0)
		return 0;
	if (memcmp(b, zero, NAMES_TOKEN_LEN) != 0 &&
	    memcmp(b, tok, NAMES_TOKEN_LEN) == 0)
		return 1;
	return -1;
}

/* Verify a raw record for place `bname`. */
static int record_check(struct keyring *kr,
			const uint8_t rec[static DIRID_V3_LEN],
			const char *bname, unsigned *flags)
{
	static const uint8_t zero[NAMES_TOKEN_LEN];
	uint8_t mac[HMAC_LEN], tok[NAMES_TOKEN_LEN];
	int rc, slot;

	*flags = 0;
	if (memcmp(rec, DIRID_V3_MAGIC, 4) != 0 || rec[4] != DIRID_V3_VERSION)
		return -EBADMSG;
	rc = record_mac(kr, false, rec, mac);
	if (rc < 0)
		return rc;
	if (!same(mac, rec + OFF_MAC, DIRID_V3_MAC_LEN)) {
		/* A full rekey rewrites every record under the new secret,
		 * so until it ends the previous one is as good. */
		if (!keyring_full_rekey(kr) ||
		    record_mac(kr, true, rec, mac) < 0 ||
		    !same(mac, rec + OFF_MAC, DIRID_V3_MAC_LEN))
			return -EBADMSG;
		*flags |= DIRID_F_PREV;
	}
	rc = place_token(bname, tok);
	if (rc < 0)
		return rc;
	slot = slot_of(rec, tok);
	if (slot < 0)
		return -EXDEV;
	if (bname != NULL &&
	    memcmp(rec + OFF_SLOTS + (1 - slot) * NAMES_TOKEN_LEN, zero,
		   NAMES_TOKEN_LEN) != 0)
		*flags |= DIRID_F_STALE;
	return 0;
}

int dirtree_check_dirid(struct keyring *kr, int dirfd, const char *bname,
			uint8_t out[static DIRID_LEN], unsigned *flags)
{
	uint8_t buf[DIRID_RAW_MAX];
	unsigned fl = 0;
	size_t len = 0;
	int rc;

	/* One byte more than a record is -EFBIG: a damaged id is refused,
	 * never cut to size. */
	rc = dirtree_dirid_raw(dirfd, buf, &len);
	if (rc < 0)
		return rc;
	/* A bare 16-byte id is the unbound old form: in format 3 refused,
	 * or anyone could bring one in — but for the upgrade that is making
	 * records of them (keyring_upgrading: nothing else opens the
	 * volume meanwhile). */
	if (!v3(kr) || (len == DIRID_LEN && keyring_upgrading(kr))) {
		if (len != DIRID_LEN)
			return len > DIRID_LEN ? -EFBIG : -EBADMSG;
		memcpy(out, buf, DIRID_LEN);
		if (v3(kr))
			fl |= DIRID_F_OLD;
	} else {
		if (len != DIRID_V3_LEN)
			return -EBADMSG;
		rc = record_check(kr, buf, bname, &fl);
		if (rc < 0)
			return rc;
		memcpy(out, buf + OFF_ID, DIRID_LEN);
	}
	if (flags != NULL)
		*flags = fl;
	return 0;
}

int dirtree_read_dirid(struct keyring *kr, int dirfd, const char *bname,
		       uint8_t out[static DIRID_LEN])
{
	return dirtree_check_dirid(kr, dirfd, bname, out, NULL);
}

int dirtree_read_dirid_fd(struct keyring *kr, int rootfd, int dirfd,
			  uint8_t out[static DIRID_LEN])
{
	char proc[32], path[PATH_MAX];
	struct stat a, b;
	const char *base;
	ssize_t n;

	if (rootfd >= 0) {
		if (fstat(rootfd, &a) < 0 || fstat(dirfd, &b) < 0)
			return -errno;
		if (a.st_dev == b.st_dev && a.st_ino == b.st_ino)
			return dirtree_read_dirid(kr, dirfd, NULL, out);
	}
	backing_procpath(dirfd, proc);
	n = readlink(proc, path, sizeof(path) - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	base = strrchr(path, '/');
	return dirtree_read_dirid(kr, dirfd, base != NULL ? base + 1 : path,
				  out);
}

const char *dirtree_dirid_why(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "directory id (" DIRID_FILE ") missing";
	case -EXDEV:
		return "directory id (" DIRID_FILE ") belongs to another "
		       "directory: moved, copied or swapped here";
	case -EBADMSG:
	case -EFBIG:
		return "directory id (" DIRID_FILE ") damaged or forged "
		       "(fails authentication)";
	case -EKEYREVOKED:
		return "volume locked";
	default:
		return "directory id (" DIRID_FILE ") unreadable";
	}
}

/* Replace dirfd's DIRID_FILE by rec: durably (fsync, the directory too)
 * when a later step relies on it, else only ordered (its data before the
 * rename: never an empty id after a crash). */
static int record_write(int dirfd, const uint8_t rec[static DIRID_V3_LEN],
			bool durable)
{
	char tmp[40];
	int fd, rc;

	if (durable)
		return backing_replace(dirfd, DIRID_FILE, rec, DIRID_V3_LEN,
				       0400);
	rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0400);
	if (fd < 0)
		return -errno;
	rc = backing_pwrite_full(fd, rec, DIRID_V3_LEN, 0);
	if (rc == 0)
		rc = backing_order_data(fd);
	close(fd);
	if (rc == 0 && renameat(dirfd, tmp, dirfd, DIRID_FILE) < 0)
		rc = -errno;
	if (rc < 0)
		(void)unlinkat(dirfd, tmp, 0);
	return rc;
}

/* The root's record is rewritten in place (only a full rekey does, under
 * the new secret): its inode holds the config writers' flock
 * (volio_lock_config), which a replaced file would split in two. 53 bytes
 * at offset 0 lie in the first sector, written whole or not at all, and
 * either MAC is accepted until the rekey ends. */
static int record_overwrite(int dirfd, const uint8_t rec[static DIRID_V3_LEN])
{
	int fd, rc;

	fd = openat(dirfd, DIRID_FILE, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		/* 0400: the owner (root, or the volume's user) may still
		 * write it after a chmod, which it puts back. */
		if (errno != EACCES || fchmodat(dirfd, DIRID_FILE, 0600, 0) < 0)
			return -errno;
		fd = openat(dirfd, DIRID_FILE, O_WRONLY | O_NOFOLLOW |
						       O_CLOEXEC);
		rc = fd < 0 ? -errno : 0;
		if (fchmodat(dirfd, DIRID_FILE, 0400, 0) < 0)
			log_warn("%s left writable by its owner", DIRID_FILE);
		if (fd < 0)
			return rc;
	}
	rc = backing_pwrite_full(fd, rec, DIRID_V3_LEN, 0);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

/* record_write(), the directory's atime and mtime kept: they are the
 * plaintext directory's, and a rename or a rekey changes no entry of it. */
static int record_put(int dirfd, const uint8_t rec[static DIRID_V3_LEN],
		      bool durable, bool root)
{
	struct stat st;
	char proc[32];
	int rc;

	if (root)
		return record_overwrite(dirfd, rec);
	if (fstat(dirfd, &st) < 0)
		return -errno;
	rc = record_write(dirfd, rec, durable);
	if (rc == 0) {
		const struct timespec ts[2] = { st.st_atim, st.st_mtim };

		/* dirfd may be O_PATH: through its /proc link. */
		backing_procpath(dirfd, proc);
		(void)utimensat(AT_FDCWD, proc, ts, 0);
	}
	return rc;
}

int dirtree_bind_dirid(struct keyring *kr, int dirfd, const char *from,
		       const char *bname)
{
	uint8_t id[DIRID_LEN], rec[DIRID_V3_LEN], tok[NAMES_TOKEN_LEN];
	unsigned fl = 0;
	int rc;

	if (!v3(kr))
		return 0;
	rc = dirtree_check_dirid(kr, dirfd, from != NULL ? from : bname, id,
				 &fl);
	if (rc < 0)
		return rc;
	if (from == NULL && fl == 0)
		return 0;	/* bound there alone, current secret */
	rc = place_token(bname, tok);
	if (rc < 0)
		return rc;
	record_build(id, tok, bname == NULL ? tok : NULL, rec);
	rc = record_seal(kr, rec);
	if (rc == 0)
		rc = record_put(dirfd, rec, from != NULL, bname == NULL);
	return rc;
}

int dirtree_move_begin(struct keyring *kr, int pfd, const char *from,
		       const char *to, struct dirtree_move *mv)
{
	uint8_t id[DIRID_LEN], rec[DIRID_V3_LEN], t1[NAMES_TOKEN_LEN],
		t2[NAMES_TOKEN_LEN];
	struct stat st;
	int rc;

	mv->dfd = -1;
	if (!v3(kr))
		return 0;
	if (strlen(from) >= sizeof(mv->from) || strlen(to) >= sizeof(mv->to))
		return -ENAMETOOLONG;
	rc = openat(pfd, from, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (rc < 0)
		return errno == ENOTDIR || errno == ELOOP ? 0 : -errno;
	if (fstat(rc, &st) < 0 || !S_ISDIR(st.st_mode)) {
		close(rc);
		return 0;
	}
	mv->dfd = rc;
	rc = dirtree_read_dirid(kr, mv->dfd, from, id);
	if (rc == 0)
		rc = names_link_token(from, t1);
	if (rc == 0)
		rc = names_link_token(to, t2);
	if (rc == 0) {
		record_build(id, t1, t2, rec);
		rc = record_seal(kr, rec);
	}
	/* Durable before the rename: a crash after it must not find the
	 * directory at `to` with only `from` in its id. */
	if (rc == 0)
		rc = record_put(mv->dfd, rec, true, false);
	if (rc < 0) {
		close(mv->dfd);
		mv->dfd = -1;
		return rc == -EXDEV ? -EBADMSG : rc;
	}
	snprintf(mv->from, sizeof(mv->from), "%s", from);
	snprintf(mv->to, sizeof(mv->to), "%s", to);
	return 0;
}

int dirtree_move_end(struct keyring *kr, struct dirtree_move *mv, bool moved)
{
	int rc;

	if (mv->dfd < 0)
		return 0;
	rc = dirtree_bind_dirid(kr, mv->dfd, NULL, moved ? mv->to : mv->from);
	close(mv->dfd);
	mv->dfd = -1;
	return rc;
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

int dirtree_make(struct keyring *kr, int parentfd, const char *tmp,
		 const char *bname, mode_t mode, uid_t uid, gid_t gid,
		 bool chown_it)
{
	uint8_t dirid[DIRID_LEN], rec[DIRID_RAW_MAX];
	size_t len = 0;
	int dfd = -1, fd = -1, rc;

	rc = rand_bytes(dirid, sizeof(dirid));
	if (rc == 0)
		rc = dirtree_dirid_encode(kr, dirid, bname, rec, &len);
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
	rc = backing_pwrite_full(fd, rec, len, 0);
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
