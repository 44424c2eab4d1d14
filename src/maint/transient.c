/* src/maint/transient.c — transient zones: the sealed zone list and expiry. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/aead.h"
#include "cmkfs/backing.h"
#include "cmkfs/cfile.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/engine.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/log.h"
#include "cmkfs/names.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"
#include "cmkfs/walk.h"

#define LABEL "cmkfs v1 transient zones"
#define BODY_MAX (TRANSIENT_MAX_ZONES * 1100)
#define DEPTH_MAX 64

int transient_parse_ttl(const char *s, long *sec)
{
	char *end;
	long v, mul;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v <= 0)
		return -EINVAL;
	if (strcmp(end, "s") == 0 || *end == '\0')
		mul = 1;
	else if (strcmp(end, "m") == 0)
		mul = 60;
	else if (strcmp(end, "h") == 0)
		mul = 3600;
	else if (strcmp(end, "d") == 0)
		mul = 86400;
	else
		return -EINVAL;
	if (v > TRANSIENT_TTL_MAX / mul)
		return -ERANGE;
	*sec = v * mul;
	return 0;
}

int transient_norm_path(const char *in, char *out, size_t cap)
{
	size_t o = 0;
	const char *p = in;

	while (*p) {
		const char *e;
		size_t n;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		e = strchr(p, '/');
		n = e ? (size_t)(e - p) : strlen(p);
		if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.') ||
		    n > 255 || o + n + 2 > cap)
			return -EINVAL;
		out[o++] = '/';
		memcpy(out + o, p, n);
		o += n;
		p += n;
	}
	if (o == 0)
		return -EINVAL;	/* the whole volume cannot be transient */
	out[o] = '\0';
	return 0;
}

/* The zone list's keyed context: a key from both KEKs, wiped at once. */
static int zone_aead(struct keyring *kr, bool prev, struct aead **a)
{
	uint8_t key[32];
	int rc;

	rc = prev ? keyring_derive_prev(kr, LABEL, key, sizeof(key)) :
		    keyring_derive(kr, LABEL, key, sizeof(key));
	if (rc == 0)
		rc = aead_new(key, a);
	secmem_wipe(key, sizeof(key));
	return rc;
}

/* File: nonce(12) ‖ GCM(K, body, AAD = label) ‖ tag(16); body: lines
 * "TTL\tPATH\n". Format 3: AAD LABEL3, and the body starts with the
 * list's version (8 bytes, big-endian), which the config names
 * (volume.zones_version). */
#define LABEL3 "cmkfs v3 transient zones"

static bool zones_v3(struct keyring *kr)
{
	return keyring_version(kr) >= 3;
}

/* Under the current secret, or (prev) the previous one of a full rekey.
 * *lver gets a format-3 list's version (0: none, or no file). */
static int load_fmt(int dirfd, struct keyring *kr, bool prev, bool v3,
		    struct tzone *z, size_t *n, uint64_t *lver)
{
	uint8_t *buf = NULL;
	struct aead *a = NULL;
	size_t len = 0;
	int rc;

	*n = 0;
	*lver = 0;
	buf = malloc(BODY_MAX + 64);
	if (buf == NULL)
		return -ENOMEM;
	rc = backing_read_small(dirfd, TRANSIENT_FILE, buf, BODY_MAX + 64, &len);
	if (rc == -ENOENT) {
		rc = 0;
		goto out;
	}
	if (rc == 0 && len < AEAD_NONCE_LEN + AEAD_TAG_LEN)
		rc = -EBADMSG;
	if (rc == 0)
		rc = zone_aead(kr, prev, &a);
	if (rc == 0) {
		size_t bl = len - AEAD_NONCE_LEN - AEAD_TAG_LEN;
		char *body = (char *)buf + AEAD_NONCE_LEN, *save = NULL;
		const char *label = v3 ? LABEL3 : LABEL;

		rc = aead_open(a, buf, (const uint8_t *)label, strlen(label),
			       buf + AEAD_NONCE_LEN, bl, buf + AEAD_NONCE_LEN,
			       buf + len - AEAD_TAG_LEN);
		if (rc == 0 && v3) {
			if (bl < 8) {
				rc = -EBADMSG;
			} else {
				for (int i = 0; i < 8; i++)
					*lver = *lver << 8 | (uint8_t)body[i];
				body += 8;
				bl -= 8;
				if (*lver == 0)
					rc = -EBADMSG;
			}
		}
		if (rc == 0) {
			body[bl] = '\0';
			for (char *l = strtok_r(body, "\n", &save); l != NULL;
			     l = strtok_r(NULL, "\n", &save)) {
				char *tab = strchr(l, '\t');

				if (tab == NULL || *n >= TRANSIENT_MAX_ZONES) {
					rc = -EBADMSG;
					break;
				}
				*tab = '\0';
				z[*n].ttl_sec = strtol(l, NULL, 10);
				if (transient_norm_path(tab + 1, z[*n].path,
							sizeof(z[*n].path)) < 0) {
					rc = -EBADMSG;
					break;
				}
				(*n)++;
			}
		}
	}
out:
	aead_free(a);
	free(buf);
	return rc;
}

static int load_as(int dirfd, struct keyring *kr, bool prev, struct tzone *z,
		   size_t *n, uint64_t *lver)
{
	return load_fmt(dirfd, kr, prev, zones_v3(kr), z, n, lver);
}

/* Format 3: the config on disk, if newer than ours and MACed under our
 * keys (another process edited the list meanwhile), becomes ours. Never
 * an older one: a live mount knows the version it saw, and a config put
 * back with its old list would otherwise bring the old zones back. */
static void adopt_config(int dirfd, struct keyring *kr)
{
	struct volume v;

	if (volio_read(dirfd, &v) == 0 &&
	    v.zones_version > keyring_zones_version(kr) &&
	    keyring_set_volume(kr, &v) < 0)
		log_warn("%s: not adopted (its MAC or generation is not ours)",
			 VOLUME_FILE);
}

static int load_checked(int dirfd, struct keyring *kr, struct tzone *z,
			size_t *n, uint64_t *lver)
{
	uint64_t cfg;
	int rc;

	if (zones_v3(kr))
		adopt_config(dirfd, kr);
	rc = load_as(dirfd, kr, false, z, n, lver);
	/* A full rekey re-seals the list under the new secret
	 * (transient_reseal); until then it opens under the previous one. */
	if (rc == -EBADMSG && keyring_full_rekey(kr))
		rc = load_as(dirfd, kr, true, z, n, lver);
	if (rc < 0 || !zones_v3(kr))
		return rc;
	/* The config (MACed) names the list's version: a list deleted or
	 * put back from an older copy is refused; one version ahead is a
	 * store cut short before its config write, and stands. */
	cfg = keyring_zones_version(kr);
	if (*lver == 0 && cfg != 0)
		return TRANSIENT_EMISSING;
	if (*lver != 0 && *lver != cfg && *lver != cfg + 1)
		return TRANSIENT_EROLLBACK;
	return 0;
}

int transient_load(int dirfd, struct keyring *kr, struct tzone *z, size_t *n)
{
	uint64_t lver;

	return load_checked(dirfd, kr, z, n, &lver);
}

int transient_settle(int rootfd, struct keyring *kr)
{
	struct tzone *z = NULL;
	struct volume nv;
	uint64_t lver = 0;
	size_t n = 0;
	int rc, lk;

	if (!zones_v3(kr))
		return 0;
	lk = volio_lock_config(rootfd);
	if (lk < 0)
		return lk;
	z = calloc(TRANSIENT_MAX_ZONES, sizeof(*z));
	rc = z == NULL ? -ENOMEM : load_checked(rootfd, kr, z, &n, &lver);
	if (rc == 0 && lver == keyring_zones_version(kr) + 1) {
		/* Until the config names it, the older list would load
		 * too: commit the edit that was cut short. */
		rc = keyring_commit_zones(kr, lver, &nv);
		if (rc == 0)
			rc = volio_write(rootfd, &nv);
		if (rc == 0)
			rc = keyring_set_volume(kr, &nv);
		if (rc < 0) {
			log_warn("%s: cannot name the zone list's version %llu "
				 "in the configuration: %s", VOLUME_FILE,
				 (unsigned long long)lver, strerror(-rc));
			rc = 0;
		} else {
			rc = 1;
		}
	}
	free(z);
	volio_unlock_config(lk);
	return rc;
}

const char *transient_strerror(int rc)
{
	switch (rc) {
	case TRANSIENT_EMISSING:
		return "the transient-zone list is missing, but the volume's "
		       "configuration says it has one (deleted from the "
		       "cipher directory?)";
	case TRANSIENT_EROLLBACK:
		return "the transient-zone list is not the version the "
		       "volume's configuration names (an older copy put "
		       "back?)";
	case -EBADMSG:
		return "the transient-zone list was tampered with or is "
		       "damaged";
	default:
		return strerror(-rc);
	}
}

static int store_as(int dirfd, struct keyring *kr, const struct tzone *z,
		    size_t n, uint64_t lver);

int transient_reseal(int rootfd, struct keyring *kr)
{
	struct tzone *z;
	size_t n = 0;
	int rc;

	z = calloc(TRANSIENT_MAX_ZONES, sizeof(*z));
	if (z == NULL)
		return -ENOMEM;
	uint64_t lver = 0;

	rc = load_as(rootfd, kr, false, z, &n, &lver);
	if (rc == -EBADMSG && keyring_full_rekey(kr)) {
		rc = load_as(rootfd, kr, true, z, &n, &lver);
		/* the same version under the new key: no config change */
		if (rc == 0)
			rc = store_as(rootfd, kr, z, n, lver);
		if (rc == 0)
			rc = 1;
	}
	free(z);
	return rc;
}

static int store_as(int dirfd, struct keyring *kr, const struct tzone *z,
		    size_t n, uint64_t lver)
{
	const char *label = zones_v3(kr) ? LABEL3 : LABEL;
	uint8_t *buf;
	struct aead *a = NULL;
	size_t bl = 0;
	int rc;

	buf = malloc(BODY_MAX + 64);
	if (buf == NULL)
		return -ENOMEM;
	if (zones_v3(kr)) {
		for (int i = 0; i < 8; i++)
			buf[AEAD_NONCE_LEN + i] = (uint8_t)(lver >> (56 - 8 * i));
		bl = 8;
	}
	for (size_t i = 0; i < n && bl < BODY_MAX; i++)
		bl += (size_t)snprintf((char *)buf + AEAD_NONCE_LEN + bl,
				       BODY_MAX - bl, "%ld\t%s\n", z[i].ttl_sec,
				       z[i].path);
	rc = bl >= BODY_MAX ? -ENOSPC : rand_bytes(buf, AEAD_NONCE_LEN);
	if (rc == 0)
		rc = zone_aead(kr, false, &a);
	if (rc == 0)
		rc = aead_seal(a, buf, (const uint8_t *)label, strlen(label),
			       buf + AEAD_NONCE_LEN, bl, buf + AEAD_NONCE_LEN,
			       buf + AEAD_NONCE_LEN + bl);
	if (rc == 0)
		rc = backing_replace(dirfd, TRANSIENT_FILE, buf,
				     AEAD_NONCE_LEN + bl + AEAD_TAG_LEN, 0600);
	aead_free(a);
	free(buf);
	return rc;
}

int transient_store(int dirfd, struct keyring *kr, const struct tzone *z,
		    size_t n)
{
	struct volume nv;
	uint64_t lver;
	int rc;

	if (!zones_v3(kr))
		return store_as(dirfd, kr, z, n, 0);
	/* The list first, then the config that names it: a crash between
	 * leaves the list one version ahead, which loads (load_checked). */
	adopt_config(dirfd, kr);
	lver = keyring_zones_version(kr) + 1;
	rc = store_as(dirfd, kr, z, n, lver);
	if (rc == 0)
		rc = keyring_commit_zones(kr, lver, &nv);
	if (rc == 0)
		rc = volio_write(dirfd, &nv);
	if (rc == 0)
		rc = keyring_set_volume(kr, &nv);
	return rc;
}

int transient_upgrade(int rootfd, struct keyring *kr)
{
	struct tzone *z = NULL;
	uint64_t lver = 0;
	size_t n = 0;
	int rc;

	if (!keyring_upgrading(kr))
		return -EINVAL;
	z = calloc(TRANSIENT_MAX_ZONES, sizeof(*z));
	if (z == NULL)
		return -ENOMEM;
	rc = load_checked(rootfd, kr, z, &n, &lver);
	/* Not yet a format-3 list (none is named yet): the format-2 one,
	 * stored again as version 1, then the config naming it. */
	if (rc == -EBADMSG && keyring_zones_version(kr) == 0) {
		rc = load_fmt(rootfd, kr, false, false, z, &n, &lver);
		if (rc == 0)
			rc = transient_store(rootfd, kr, z, n);
		if (rc == 0)
			rc = 1;
	}
	free(z);
	if (rc < 0)
		return rc;
	/* A store cut short before its config write: committed now. */
	return transient_settle(rootfd, kr) < 0 ? -EIO : rc;
}

/* Header first: random bytes over it, synced, then the name goes. */
/* The edit of z[0..*n) in place. */
static int edit(struct transient_result *r, enum transient_op op,
		const char *vpath, long ttl)
{
	size_t i;

	for (i = 0; i < r->n && strcmp(r->z[i].path, vpath) != 0; i++)
		;
	if (op == TRANSIENT_ADD) {
		if (i == r->n && r->n == TRANSIENT_MAX_ZONES)
			return ENGINE_FAIL(r, TRANSIENT_STAGE_EDIT, -ENOSPC,
					 "at most %d zones",
					 TRANSIENT_MAX_ZONES);
		snprintf(r->z[i].path, sizeof(r->z[i].path), "%s", vpath);
		r->z[i].ttl_sec = ttl;
		if (i == r->n)
			r->n++;
		return 0;
	}
	if (i == r->n)
		return ENGINE_FAIL(r, TRANSIENT_STAGE_EDIT, -ENOENT,
				 "%s is not a transient zone", vpath);
	r->z[i] = r->z[--r->n];
	return 0;
}

int transient_edit(const char *cipherdir, const char *service_key,
		   enum transient_op op, const char *vpath, long ttl,
		   struct transient_result *r)
{
	struct keyring *kr = NULL;
	int fd, rc, lk = -1;

	memset(r, 0, sizeof(*r));
	fd = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_unlock(fd, service_key, &kr);
	if (rc < 0) {
		ENGINE_FAIL(r, TRANSIENT_STAGE_UNLOCK, rc, "%s: %s", cipherdir,
			  volio_strerror(rc));
		goto out;
	}
	if (op != TRANSIENT_LIST) {
		lk = volio_lock_config(fd);
		if (lk < 0) {
			rc = lk;
			ENGINE_FAIL(r, TRANSIENT_STAGE_LOAD, rc,
				  "%s: locking the configuration: %s",
				  cipherdir, strerror(-rc));
			goto out;
		}
	}
	rc = transient_load(fd, kr, r->z, &r->n);
	if (rc < 0) {
		ENGINE_FAIL(r, TRANSIENT_STAGE_LOAD, rc, "%s/%s: %s", cipherdir,
			  TRANSIENT_FILE, transient_strerror(rc));
		goto out;
	}
	if (op != TRANSIENT_LIST) {
		rc = edit(r, op, vpath, ttl);
		if (rc < 0)
			goto out;
		rc = transient_store(fd, kr, r->z, r->n);
		if (rc < 0) {
			ENGINE_FAIL(r, TRANSIENT_STAGE_STORE, rc,
				  "%s: writing the zone list: %s", cipherdir,
				  strerror(-rc));
			goto out;
		}
	}
	r->stage = TRANSIENT_STAGE_DONE;
out:
	if (lk >= 0)
		volio_unlock_config(lk);
	if (fd >= 0)
		close(fd);
	keyring_free(kr);
	return rc;
}

static int destroy(int rootfd, int dirfd, const char *bname,
		   const struct stat *st)
{
	struct linktgt_pin pin;
	uint8_t junk[148];
	int fd, rc = 0;

	if (S_ISREG(st->st_mode) && st->st_nlink == 1) {
		fd = openat(dirfd, bname, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0)
			return -errno;
		rc = rand_bytes(junk, sizeof(junk));
		if (rc == 0)
			rc = backing_pwrite_full(fd, junk, sizeof(junk), 0);
		if (rc == 0 && fdatasync(fd) < 0)
			rc = -errno;
		close(fd);
		if (rc < 0)
			return rc;
	}
	linktgt_pin(dirfd, bname, &pin);
	if (unlinkat(dirfd, bname, 0) < 0) {
		rc = -errno;
		linktgt_unpin(rootfd, &pin);
		return rc;
	}
	linktgt_unpin(rootfd, &pin);
	if (names_is_longname(bname)) {
		char side[ENCNAME_MAX];

		if (names_side_name(bname, side, sizeof(side)) == 0)
			(void)unlinkat(dirfd, side, 0);
	}
	return 0;
}

struct walk {
	int rootfd;
	const uint8_t *key;
	time_t cutoff;
	transient_cb cb;
	void *ud;
	unsigned long count;
	bool dry;		/* count what is due, destroy nothing */
	struct keyring *kr;
};

/* Format 3: is regular file dfd/b due, by the creation time its header
 * authenticates (doc/FORMAT.md §2)? Backing times are nobody's word. A
 * header that does not open is not ours to judge: left for fsck. */
static bool born_before(struct walk *w, int dfd, const char *b)
{
	struct filekeys *fk = NULL;
	struct header h;
	bool due = false;
	int fd;

	fd = openat(dfd, b, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return false;
	if (cfile_read_header(fd, &h) == 0 && h.version == HEADER_VERSION_3 &&
	    keyring_open_file(w->kr, &h, &fk) == 0)
		due = (time_t)(h.birth_ns / 1000000000u) <= w->cutoff;
	keyring_filekeys_free(fk);
	close(fd);
	return due;
}

/* One directory of a sweep. */
struct sweep_dir {
	struct walk *w;
	int dfd;
	int depth;
	uint8_t dirid[DIRID_LEN];
	struct stat dst;
};

static int sweep(struct walk *w, int dfd, int depth, const char *bname);

/* walk_entries() callback: reserved names hold no files, but long names
 * are entries. */
static int sweep_entry(const struct walk_entry *de, void *arg)
{
	struct sweep_dir *sd = arg;
	struct walk *w = sd->w;
	const char *b = de->name;
	char plain[NAME_MAX + 1], enc[ENCNAME_MAX];
	int dfd = sd->dfd, rc;
	struct stat st;

	if (fstatat(dfd, b, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;
	if (S_ISDIR(st.st_mode)) {
		int sub = openat(dfd, b, O_RDONLY | O_DIRECTORY |
						 O_NOFOLLOW | O_CLOEXEC);

		if (sub >= 0) {
			(void)sweep(w, sub, sd->depth + 1, b);
			close(sub);
		}
		return 0;
	}
	if (S_ISREG(st.st_mode) && keyring_version(w->kr) >= 3) {
		if (!born_before(w, dfd, b))
			return 0;
	} else if (st.st_mtime > w->cutoff) {
		return 0;	/* no header: its own time (DESIGN.md) */
	}
	if (w->dry) {
		w->count++;
		return 0;
	}
	/* The plaintext name, for the daemon's dentry invalidation. */
	plain[0] = '\0';
	if (w->cb != NULL) {
		const char *e = b;

		if (names_is_longname(b) &&
		    dirtree_longname_read(dfd, b, enc, sizeof(enc)) == 0)
			e = enc;
		if (names_decrypt(w->key, sd->dirid, e, strlen(e), plain,
				  sizeof(plain)) < 0)
			plain[0] = '\0';
	}
	rc = destroy(w->rootfd, dfd, b, &st);
	if (rc < 0) {
		log_err("transient zone: cannot destroy an expired "
			"entry: %s", strerror(-rc));
		return 0;
	}
	w->count++;
	if (w->cb != NULL && plain[0] != '\0')
		w->cb(sd->dst.st_dev, sd->dst.st_ino, plain, w->ud);
	return 0;
}

/* bname: the directory's own backing name (its id is bound to it). */
static int sweep(struct walk *w, int dfd, int depth, const char *bname)
{
	struct sweep_dir sd = { .w = w, .dfd = dfd, .depth = depth };
	int rc;

	if (depth > DEPTH_MAX || dirtree_read_dirid(w->kr, dfd, bname, sd.dirid) < 0 ||
	    fstat(dfd, &sd.dst) < 0)
		return -EBADMSG;
	rc = walk_entries(dfd, WALK_ENTRIES, WALK_F_SKIP_ERRORS, sweep_entry,
			  &sd);
	return rc < 0 ? rc : 0;
}

static int expire(int rootfd, struct keyring *kr, const struct tzone *z,
		  time_t now, transient_cb cb, void *ud, bool dry,
		  unsigned long *count)
{
	uint8_t key[NAME_KEY_LEN], dirid[DIRID_LEN];
	char comp[NAME_MAX + 1], enc[ENCNAME_MAX], bname[ENCNAME_MAX],
		hbuf[ENCNAME_MAX];
	const char *here = NULL;	/* the root has no name */
	struct walk w = { rootfd, key, now - z->ttl_sec, cb, ud, 0, dry, kr };
	const char *p = z->path;
	int dfd, rc;

	*count = 0;
	rc = keyring_name_key(kr, key);
	if (rc < 0)
		return rc;
	dfd = openat(rootfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		goto out;
	}
	/* Walk the plaintext path through encrypted names. */
	while (*p == '/' && p[1] != '\0') {
		const char *e = strchr(p + 1, '/');
		size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1);
		int next;

		memcpy(comp, p + 1, n);
		comp[n] = '\0';
		p += n + 1;
		rc = dirtree_read_dirid(kr, dfd, here, dirid);
		if (rc == 0)
			rc = names_encrypt(key, dirid, comp, n, enc, sizeof(enc));
		if (rc == 0)
			rc = names_backing(enc, bname, sizeof(bname)) < 0 ?
				     -ENAMETOOLONG : 0;
		if (rc < 0)
			goto close;
		next = openat(dfd, bname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
						  O_CLOEXEC);
		close(dfd);
		dfd = next;
		memcpy(hbuf, bname, sizeof(hbuf));
		here = hbuf;
		if (dfd < 0) {
			rc = errno == ENOENT ? 0 : -errno;	/* no zone dir yet */
			goto out;
		}
	}
	rc = sweep(&w, dfd, 0, here);
	*count = w.count;
close:
	close(dfd);
out:
	secmem_wipe(key, sizeof(key));
	return rc;
}

int transient_expire(int rootfd, struct keyring *kr, const struct tzone *z,
		     time_t now, transient_cb cb, void *ud,
		     unsigned long *count)
{
	return expire(rootfd, kr, z, now, cb, ud, false, count);
}

int transient_count_due(int rootfd, struct keyring *kr, const struct tzone *z,
			time_t now, unsigned long *count)
{
	return expire(rootfd, kr, z, now, NULL, NULL, true, count);
}

int transient_destroy(int rootfd, int dirfd, const char *bname)
{
	struct stat st;

	if (fstatat(dirfd, bname, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	return destroy(rootfd, dirfd, bname, &st);
}

int transient_zone_of(const struct tzone *z, size_t n, const char *path)
{
	int best = -1;
	size_t bl = 0;

	for (size_t i = 0; i < n; i++) {
		size_t l = strlen(z[i].path);

		if (strncmp(path, z[i].path, l) == 0 &&
		    (path[l] == '\0' || path[l] == '/') && (best < 0 || l < bl)) {
			best = (int)i;
			bl = l;
		}
	}
	return best;
}
