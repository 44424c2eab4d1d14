/* tests/unit/test_transient.c — transient zones (maint/transient.c) on a
 * temporary volume without a mount: the sealed zone list round-trips and
 * refuses damage; expiry destroys what is older than the zone's limit (its
 * long-name side file too), keeps what is younger and everything outside
 * the zone, and names what it removed. transient_edit() on a volume made
 * by create_volume() lists, adds (or sets the TTL of) and removes zones,
 * refuses a 65th zone and the removal of a path that is no zone without
 * writing, and stops at the unlock (no key, no volume) or the load (a
 * damaged list) with its message. No root needed. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/aead.h"
#include "cmkfs/backing.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/tclock.h"
#include "cmkfs/transient.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define LABEL "cmkfs v1 transient zones"	/* transient.c's key label */
#define LABEL3 "cmkfs v3 transient zones"	/* format 3's AAD */
#define TTL 3600
#define NOW 1700000000

/* Plaintext `name` in directory dfd as the mount makes it: a file of 200
 * bytes with modification time `mtime` (or a directory), its backing name
 * in bn. */
static int put(struct keyring *kr, int dfd, const char *name, time_t mtime,
	       bool dir, struct bname *bn)
{
	uint8_t junk[200];
	struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
	char tmp[40];
	int rc;

	rc = tvol_bname(kr, dfd, name, bn);
	if (rc < 0)
		return rc;
	if (dir) {
		rc = backing_tmpname(tmp, sizeof(tmp));
		if (rc == 0)
			rc = dirtree_make(kr, dfd, tmp, bn->name, 0700, 0, 0,
					  false);
		if (rc == 0 && renameat(dfd, tmp, dfd, bn->name) < 0)
			rc = -errno;
		return rc;
	}
	t_fill(junk, sizeof(junk), 5);
	/* a real file: format 3 goes by the birth time in its header */
	rc = tvol_write(kr, dfd, bn->name, junk, sizeof(junk));
	if (rc == 0 && utimensat(dfd, bn->name, ts, AT_SYMLINK_NOFOLLOW) < 0)
		rc = -errno;
	return rc;
}

struct seen {
	char names[8][256];
	int n;
};

static void on_removed(dev_t dev, ino_t ino, const char *name, void *ud)
{
	struct seen *s = ud;

	(void)dev;
	(void)ino;
	if (s->n < 8)
		snprintf(s->names[s->n++], 256, "%s", name);
}

static bool seen_has(const struct seen *s, const char *name)
{
	for (int i = 0; i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return true;
	return false;
}

/* Seal `body` as a zone list with the volume's zone key, as
 * transient_store() would if it wrote such a body. */
static int seal_list(struct keyring *kr, int rootfd, const char *body)
{
	uint8_t buf[512], key[32];
	size_t bl = strlen(body) + 8;
	uint64_t v = keyring_volume(kr)->zones_version;
	struct aead *a = NULL;
	int rc;

	if (AEAD_NONCE_LEN + bl + AEAD_TAG_LEN > sizeof(buf))
		return -ENOSPC;
	memset(buf, 0, AEAD_NONCE_LEN);
	/* format 3: the version the config names, then the lines */
	for (int i = 0; i < 8; i++)
		buf[AEAD_NONCE_LEN + i] = (uint8_t)(v >> (56 - 8 * i));
	memcpy(buf + AEAD_NONCE_LEN + 8, body, bl - 8);
	rc = keyring_derive(kr, LABEL, key, sizeof(key));
	if (rc == 0)
		rc = aead_new(key, &a);
	memset(key, 0, sizeof(key));
	if (rc == 0)
		rc = aead_seal(a, buf, (const uint8_t *)LABEL3, strlen(LABEL3),
			       buf + AEAD_NONCE_LEN, bl, buf + AEAD_NONCE_LEN,
			       buf + AEAD_NONCE_LEN + bl);
	aead_free(a);
	if (rc == 0)
		rc = backing_replace(rootfd, TRANSIENT_FILE, buf,
				     AEAD_NONCE_LEN + bl + AEAD_TAG_LEN, 0600);
	return rc;
}

static void test_zone_list(struct keyring *kr, struct keyring *other,
			   int rootfd)
{
	struct tzone z[TRANSIENT_MAX_ZONES], in[2] = {
		{ "/relay/uploads", TTL }, { "/tmp", 60 }
	};
	uint8_t buf[4096];
	size_t n = 99, len = 0;

	CHECK_RC(transient_load(rootfd, kr, z, &n), 0);
	CHECK(n == 0, "no file: no zones");
	CHECK_RC(transient_store(rootfd, kr, in, 2), 0);
	CHECK_RC(transient_load(rootfd, kr, z, &n), 0);
	CHECK(n == 2 && strcmp(z[0].path, in[0].path) == 0 &&
		      z[0].ttl_sec == TTL && strcmp(z[1].path, "/tmp") == 0 &&
		      z[1].ttl_sec == 60,
	      "zone list round-trips (%zu)", n);
	CHECK_RC(transient_load(rootfd, other, z, &n), -EBADMSG);

	/* every byte flipped, and every cut, is refused */
	CHECK_RC(backing_read_small(rootfd, TRANSIENT_FILE, buf, sizeof(buf),
				    &len),
		 0);
	for (size_t i = 0; i < len; i++) {
		int rc;

		buf[i] ^= 0x40;
		rc = backing_replace(rootfd, TRANSIENT_FILE, buf, len, 0600);
		if (rc == 0)
			rc = transient_load(rootfd, kr, z, &n);
		CHECK(rc == -EBADMSG, "flip at %zu: %d", i, rc);
		buf[i] ^= 0x40;
	}
	for (size_t l = 0; l < len; l += 7) {
		int rc = backing_replace(rootfd, TRANSIENT_FILE, buf, l, 0600);

		if (rc == 0)
			rc = transient_load(rootfd, kr, z, &n);
		CHECK(rc == -EBADMSG, "cut to %zu: %d", l, rc);
	}

	/* authentic, but not a zone list */
	CHECK_RC(seal_list(kr, rootfd, "3600\t/ok\n"), 0);
	CHECK_RC(transient_load(rootfd, kr, z, &n), 0);
	CHECK(n == 1 && strcmp(z[0].path, "/ok") == 0, "hand-sealed list");
	CHECK_RC(seal_list(kr, rootfd, "3600 /no-tab\n"), 0);
	CHECK_RC(transient_load(rootfd, kr, z, &n), -EBADMSG);
	CHECK_RC(seal_list(kr, rootfd, "3600\t/a/../b\n"), 0);
	CHECK_RC(transient_load(rootfd, kr, z, &n), -EBADMSG);
	CHECK_RC(seal_list(kr, rootfd, "3600\t/\n"), 0);
	CHECK_RC(transient_load(rootfd, kr, z, &n), -EBADMSG);
	CHECK_RC(unlinkat(rootfd, TRANSIENT_FILE, 0), 0);
}

static void test_pure(void)
{
	struct tzone z[2] = { { "/a/b", 60 }, { "/a", 60 } };
	char out[64];
	long s = 0;

	CHECK(transient_parse_ttl("90m", &s) == 0 && s == 5400, "90m");
	CHECK(transient_parse_ttl("1d", &s) == 0 && s == 86400, "1d");
	CHECK_RC(transient_parse_ttl("25h", &s), -ERANGE);
	CHECK_RC(transient_parse_ttl("0", &s), -EINVAL);
	CHECK_RC(transient_parse_ttl("5x", &s), -EINVAL);
	CHECK(transient_norm_path("a//b/", out, sizeof(out)) == 0 &&
		      strcmp(out, "/a/b") == 0,
	      "normalised %s", out);
	CHECK_RC(transient_norm_path("/", out, sizeof(out)), -EINVAL);
	CHECK_RC(transient_norm_path("/a/./b", out, sizeof(out)), -EINVAL);
	CHECK(transient_zone_of(z, 2, "/a/b/c") == 1, "outermost zone");
	CHECK(transient_zone_of(z, 2, "/a") == 1, "the zone itself");
	CHECK(transient_zone_of(z, 2, "/ab") == -1, "not a prefix by name");
}

static void test_expire(struct keyring *kr, int rootfd)
{
	struct tzone zone = { "/zone", TTL }, none = { "/missing", TTL };
	struct bname bz, bold, byoung, blong, bout, bsub, bsubold;
	char longname[256], side[ENCNAME_MAX];
	struct seen seen = { .n = 0 };
	unsigned long count = 99;
	int zfd = -1, sfd = -1;
	/* Format 3 ages files by the birth time in their headers: the old
	 * ones are made now, the young one under a clock 2 TTLs ahead, and
	 * the sweep looks 2 TTLs ahead. Backing mtimes say the opposite
	 * (old files young, the young one ancient) and count for nothing. */
	const time_t t0 = time(NULL), NOW3 = t0 + 2 * TTL + 5;
	const time_t old = NOW3, young = NOW3 - 100 * TTL;

	memset(longname, 'q', 240);
	longname[240] = '\0';
	CHECK_RC(put(kr, rootfd, "zone", 0, true, &bz), 0);
	CHECK_RC(put(kr, rootfd, "outside", old, false, &bout), 0);
	zfd = openat(rootfd, bz.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(zfd >= 0, "zone directory");
	if (zfd < 0)
		return;
	CHECK_RC(put(kr, zfd, "old", old, false, &bold), 0);
	CHECK_RC(put(kr, zfd, longname, old, false, &blong), 0);
	CHECK_RC(put(kr, zfd, "sub", 0, true, &bsub), 0);
	sfd = openat(zfd, bsub.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(sfd >= 0, "sub directory");
	if (sfd >= 0)
		CHECK_RC(put(kr, sfd, "deep", old, false, &bsubold), 0);
	CHECK(setenv(TCLOCK_SKEW_ENV, "7200", 1) == 0, "setenv");
	CHECK_RC(tclock_from_env(), 0);
	CHECK_RC(put(kr, zfd, "young", young, false, &byoung), 0);
	CHECK(unsetenv(TCLOCK_SKEW_ENV) == 0, "unsetenv");
	CHECK_RC(tclock_from_env(), 0);
	CHECK(blong.is_long, "a long name in the zone");
	CHECK_RC(names_side_name(blong.name, side, sizeof(side)), 0);

	CHECK_RC(transient_count_due(rootfd, kr, &zone, NOW3, &count), 0);
	CHECK(count == 3, "due: %lu", count);
	CHECK(tvol_exists(zfd, bold.name), "counting destroys nothing");

	CHECK_RC(transient_expire(rootfd, kr, &zone, NOW3, on_removed, &seen,
				  &count),
		 0);
	CHECK(count == 3, "expired: %lu", count);
	CHECK(!tvol_exists(zfd, bold.name), "old file removed");
	CHECK(!tvol_exists(zfd, blong.name) && !tvol_exists(zfd, side),
	      "old long name and its side file removed");
	CHECK(sfd >= 0 && !tvol_exists(sfd, bsubold.name),
	      "old file deeper removed");
	CHECK(tvol_exists(zfd, byoung.name), "young file kept");
	CHECK(tvol_exists(zfd, bsub.name) && tvol_exists(zfd, DIRID_FILE),
	      "directories and ids kept");
	CHECK(tvol_exists(rootfd, bout.name), "old file outside the zone kept");
	CHECK(seen.n == 3 && seen_has(&seen, "old") &&
		      seen_has(&seen, longname) && seen_has(&seen, "deep"),
	      "removed entries named (%d)", seen.n);

	CHECK_RC(transient_expire(rootfd, kr, &none, NOW, NULL, NULL, &count),
		 0);
	CHECK(count == 0, "a zone without a directory expires nothing");
	CHECK_RC(transient_destroy(rootfd, rootfd, bz.name), -EISDIR);
	CHECK_RC(transient_destroy(rootfd, zfd, byoung.name), 0);
	CHECK(!tvol_exists(zfd, byoung.name), "destroyed by hand");
	{
		/* A symlink whose target is in a side file takes it along. */
		static char enc[LINKTGT_INLINE_MAX + 2];
		char side_id[LINKTGT_MARKER_LEN + 1];
		ssize_t n;

		memset(enc, 'A', sizeof(enc) - 1);
		CHECK_RC(linktgt_make(rootfd, zfd, "longlink", enc,
				      sizeof(enc) - 1),
			 0);
		n = readlinkat(zfd, "longlink", side_id, sizeof(side_id));
		CHECK(n == (ssize_t)LINKTGT_MARKER_LEN, "marker");
		if (n == (ssize_t)LINKTGT_MARKER_LEN) {
			char path[128];

			side_id[n] = '\0';
			snprintf(path, sizeof(path), "%s/%s", LINKS_DIR,
				 side_id + sizeof(LINKTGT_PREFIX) - 1);
			CHECK(tvol_exists(rootfd, path), "side file made");
			CHECK_RC(transient_destroy(rootfd, zfd, "longlink"), 0);
			CHECK(!tvol_exists(rootfd, path),
			      "side file left after the symlink was destroyed");
		}
		(void)unlinkat(rootfd, LINKS_DIR, AT_REMOVEDIR);
	}

	/* clean up */
	if (sfd >= 0) {
		(void)unlinkat(sfd, DIRID_FILE, 0);
		close(sfd);
	}
	(void)unlinkat(zfd, bsub.name, AT_REMOVEDIR);
	(void)unlinkat(zfd, DIRID_FILE, 0);
	close(zfd);
	(void)unlinkat(rootfd, bz.name, AT_REMOVEDIR);
	(void)unlinkat(rootfd, bout.name, 0);
}

/* The TTL of zone `path` in r, or -1. */
static long ttl_of(const struct transient_result *r, const char *path)
{
	for (size_t i = 0; i < r->n; i++) {
		if (strcmp(r->z[i].path, path) == 0)
			return r->z[i].ttl_sec;
	}
	return -1;
}

static void test_edit(const char *top_path)
{
	static struct transient_result r;
	char vol[PATH_MAX], key[PATH_MAX], nokey[PATH_MAX], path[64],
		want[PATH_MAX + 64];
	uint8_t b = 0;
	int fd;

	snprintf(vol, sizeof(vol), "%s/vol", top_path);
	snprintf(key, sizeof(key), "%s/service.key", top_path);
	snprintf(nokey, sizeof(nokey), "%s/none.key", top_path);
	CHECK_RC(tvol_create(vol, key, 0), 0);

	CHECK_RC(transient_edit(vol, key, TRANSIENT_LIST, NULL, 0, &r), 0);
	CHECK(r.stage == TRANSIENT_STAGE_DONE && r.n == 0, "empty list: %zu",
	      r.n);
	CHECK_RC(transient_edit(vol, key, TRANSIENT_ADD, "/relay", TTL, &r),
		 0);
	CHECK(r.stage == TRANSIENT_STAGE_DONE && r.n == 1 &&
		      ttl_of(&r, "/relay") == TTL,
	      "added: %zu", r.n);
	CHECK_RC(transient_edit(vol, key, TRANSIENT_ADD, "/relay", 60, &r), 0);
	CHECK_RC(transient_edit(vol, key, TRANSIENT_LIST, NULL, 0, &r), 0);
	CHECK(r.n == 1 && ttl_of(&r, "/relay") == 60, "TTL set again: %zu %ld",
	      r.n, ttl_of(&r, "/relay"));

	CHECK_RC(transient_edit(vol, key, TRANSIENT_REMOVE, "/nope", 0, &r),
		 -ENOENT);
	CHECK(r.stage == TRANSIENT_STAGE_EDIT &&
		      strcmp(r.msg, "/nope is not a transient zone") == 0,
	      "not a zone: %d %s", r.stage, r.msg);

	for (int i = 1; i < TRANSIENT_MAX_ZONES; i++) {
		snprintf(path, sizeof(path), "/z%d", i);
		CHECK_RC(transient_edit(vol, key, TRANSIENT_ADD, path, TTL, &r),
			 0);
	}
	CHECK(r.n == TRANSIENT_MAX_ZONES, "full: %zu", r.n);
	CHECK_RC(transient_edit(vol, key, TRANSIENT_ADD, "/more", TTL, &r),
		 -ENOSPC);
	CHECK(r.stage == TRANSIENT_STAGE_EDIT && strcmp(r.msg, "at most 64 "
							       "zones") == 0,
	      "max zones: %d %s", r.stage, r.msg);
	/* a zone already listed is set again, full or not */
	CHECK_RC(transient_edit(vol, key, TRANSIENT_ADD, "/z1", 120, &r), 0);
	CHECK(r.n == TRANSIENT_MAX_ZONES && ttl_of(&r, "/z1") == 120,
	      "full list, TTL set: %zu", r.n);
	CHECK_RC(transient_edit(vol, key, TRANSIENT_REMOVE, "/relay", 0, &r),
		 0);
	CHECK_RC(transient_edit(vol, key, TRANSIENT_LIST, NULL, 0, &r), 0);
	CHECK(r.n == TRANSIENT_MAX_ZONES - 1 && ttl_of(&r, "/relay") == -1 &&
		      ttl_of(&r, "/more") == -1 && ttl_of(&r, "/z63") == TTL,
	      "removed, nothing refused written: %zu", r.n);

	CHECK_RC(transient_edit(vol, nokey, TRANSIENT_LIST, NULL, 0, &r),
		 -ENOKEY);
	CHECK(r.stage == TRANSIENT_STAGE_UNLOCK &&
		      strncmp(r.msg, vol, strlen(vol)) == 0 &&
		      strstr(r.msg, ": service key file not found") != NULL,
	      "no key: %d %s", r.stage, r.msg);
	CHECK_RC(transient_edit(nokey, key, TRANSIENT_ADD, "/a", TTL, &r),
		 -ENOENT);
	CHECK(r.stage == TRANSIENT_STAGE_UNLOCK, "no volume: %d %s", r.stage,
	      r.msg);

	fd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0, "open volume");
	if (fd >= 0) {
		int zf = openat(fd, TRANSIENT_FILE, O_RDWR | O_CLOEXEC);

		CHECK(zf >= 0 && pread(zf, &b, 1, 20) == 1, "read list");
		b ^= 1;
		CHECK(zf >= 0 && pwrite(zf, &b, 1, 20) == 1, "damage list");
		if (zf >= 0)
			close(zf);
		close(fd);
	}
	CHECK_RC(transient_edit(vol, key, TRANSIENT_REMOVE, "/z1", 0, &r),
		 -EBADMSG);
	snprintf(want, sizeof(want),
		 "%s/%s: the transient-zone list was tampered with or is "
		 "damaged", vol,
		 TRANSIENT_FILE);
	CHECK(r.stage == TRANSIENT_STAGE_LOAD && strcmp(r.msg, want) == 0,
	      "damaged list: %d %s", r.stage, r.msg);

	CHECK(tvol_rmtree(vol) == 0 &&
		      unlink(key) == 0,
	      "volume cleaned up");
}

int main(void)
{
	char top_path[1024];
	struct tvol_mem vo, other;
	int top, root;

	if (aead_global_init() < 0 || tvol_mem_make(&vo, 4096, 21) < 0 ||
	    tvol_mem_make(&other, 4096, 31) < 0 ||
	    tvol_tmpdir("test_transient", top_path, sizeof(top_path)) < 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	top = open(top_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0 || dirtree_make(vo.kr, top, "root", NULL, 0700, 0, 0, false) < 0 ||
	    (root = openat(top, "root", O_RDONLY | O_DIRECTORY)) < 0) {
		perror(top_path);
		return 1;
	}

	test_pure();
	test_zone_list(vo.kr, other.kr, root);
	test_expire(vo.kr, root);
	test_edit(top_path);

	CHECK_RC(unlinkat(root, DIRID_FILE, 0), 0);
	/* format 3: a zone-list store writes the config naming it */
	(void)unlinkat(root, VOLUME_FILE, 0);
	close(root);
	CHECK_RC(unlinkat(top, "root", AT_REMOVEDIR), 0);
	close(top);
	CHECK(rmdir(top_path) == 0, "test tree cleaned up");
	tvol_mem_free(&other);
	tvol_mem_free(&vo);
	return t_done("test_transient");
}
