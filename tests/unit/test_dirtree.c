/* tests/unit/test_dirtree.c — directories of a volume on disk without a
 * mount: backing names per directory id, long names and their side files,
 * making a directory with its id, reading an id, emptiness; symlink
 * targets inline or in their side file (linktgt.h). Runs in a temporary
 * directory, no root needed. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
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
#include "cmkfs/secmem.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

static int touch(int dfd, const char *name)
{
	int fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
			0600);

	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

/* The id in dfd's DIRID_FILE, whatever its form: the 16 bytes of format
 * 1/2, or bytes 5..20 of a format-3 record. */
static int read_id(int dfd, uint8_t id[static DIRID_LEN])
{
	uint8_t buf[DIRID_RAW_MAX];
	size_t len = 0;
	int rc = backing_read_small(dfd, DIRID_FILE, buf, sizeof(buf), &len);

	if (rc < 0)
		return rc;
	if (len == DIRID_LEN)
		memcpy(id, buf, DIRID_LEN);
	else if (len == DIRID_V3_LEN)
		memcpy(id, buf + 5, DIRID_LEN);
	else
		return -EBADMSG;
	return 0;
}

/* tvol_rmtree() of top/name. */
static int tvol_rmtree_at(int top, const char *name)
{
	char proc[32], path[PATH_MAX], full[PATH_MAX + 256];
	ssize_t n;

	backing_procpath(top, proc);
	n = readlink(proc, path, sizeof(path) - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	snprintf(full, sizeof(full), "%s/%s", path, name);
	return tvol_rmtree(full);
}

/* Remove the test tree: two levels are all this test makes. */
static void rm_tree(int pfd, const char *name)
{
	static const char *const kids[] = { DIRID_FILE, "x" };
	int dfd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0) {
		for (size_t i = 0; i < CMK_ARRAY_LEN(kids); i++)
			(void)unlinkat(dfd, kids[i], 0);
		close(dfd);
	}
	(void)unlinkat(pfd, name, AT_REMOVEDIR);
}

/* dirtree_make: a fresh id (a 53-byte record in format 3), read-only, the mode asked for; a
 * second directory gets another id; a taken name is refused untouched. */
static void test_make(struct keyring *kr, int top, uint8_t ida[static DIRID_LEN],
		      uint8_t idb[static DIRID_LEN])
{
	struct stat st;
	int a, b;

	CHECK_RC(dirtree_make(kr, top, "a", "a", 0750, 0, 0, false), 0);
	CHECK_RC(dirtree_make(kr, top, "b", "b", 0700, 0, 0, false), 0);
	a = openat(top, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	b = openat(top, "b", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(a >= 0 && b >= 0, "made directories open");
	CHECK(fstat(a, &st) == 0 && (st.st_mode & 07777) == 0750,
	      "mode %o", (unsigned)(st.st_mode & 07777));
	CHECK(fstatat(a, DIRID_FILE, &st, 0) == 0 &&
		      (st.st_mode & 07777) == 0400 &&
		      st.st_size == DIRID_V3_LEN,
	      "dirid file 0400, %d bytes (format 3)", DIRID_V3_LEN);
	CHECK_RC(read_id(a, ida), 0);
	CHECK_RC(read_id(b, idb), 0);
	CHECK(memcmp(ida, idb, DIRID_LEN) != 0, "ids differ");

	CHECK_RC(dirtree_make(kr, top, "a", "a", 0700, 0, 0, false), -EEXIST);
	CHECK(tvol_exists(a, DIRID_FILE), "a taken name keeps its id");
	close(a);
	close(b);
}

/* Same name, same directory: same backing name; another directory: another
 * one. Long names go through a hash; bad names are refused. */
static void test_bname(struct keyring *kr, const uint8_t ida[DIRID_LEN],
		       const uint8_t idb[DIRID_LEN])
{
	struct bname s1, s2, s3, l1, l2, l3;
	char longname[256];

	memset(longname, 'x', 255);
	longname[255] = '\0';

	CHECK_RC(dirtree_bname(kr, ida, "hello", &s1), 0);
	CHECK_RC(dirtree_bname(kr, ida, "hello", &s2), 0);
	CHECK_RC(dirtree_bname(kr, idb, "hello", &s3), 0);
	CHECK(!s1.is_long && strcmp(s1.name, s1.enc) == 0, "short is itself");
	CHECK(strcmp(s1.name, s2.name) == 0, "deterministic per dir id");
	CHECK(strcmp(s1.name, s3.name) != 0, "differs across dir ids");
	CHECK(!names_is_reserved(s1.name) && strchr(s1.name, '.') == NULL,
	      "short name %s is not ours", s1.name);

	CHECK_RC(dirtree_bname(kr, ida, longname, &l1), 0);
	CHECK_RC(dirtree_bname(kr, ida, longname, &l2), 0);
	CHECK_RC(dirtree_bname(kr, idb, longname, &l3), 0);
	CHECK(l1.is_long && names_is_longname(l1.name) &&
		      strlen(l1.name) == LONGNAME_LEN &&
		      strlen(l1.enc) > NAME_LONG_THRESHOLD,
	      "long name %s", l1.name);
	CHECK(strcmp(l1.name, l2.name) == 0 && strcmp(l1.enc, l2.enc) == 0,
	      "long: deterministic per dir id");
	CHECK(strcmp(l1.name, l3.name) != 0, "long: differs across dir ids");

	CHECK_RC(dirtree_bname(kr, ida, "a/b", &s1), -EINVAL);
	CHECK_RC(dirtree_bname(kr, ida, "..", &s1), -EINVAL);
	CHECK(dirtree_bname(kr, ida, "", &s1) < 0, "empty name refused");
}

/* Format 1/2 (the golden v1 volume's keyring): exactly DIRID_LEN bytes or
 * a distinct error, the caller's buffer untouched on every error, and the
 * id is not bound to a place (the name passed is ignored). */
static void test_read_dirid(struct keyring *kr, int top)
{
	uint8_t want[DIRID_LEN + 1], got[DIRID_LEN], keep[DIRID_LEN];
	int dfd, pfd;

	t_fill(want, sizeof(want), 42);
	memset(keep, 0x5a, sizeof(keep));
	CHECK_RC(mkdirat(top, "r", 0700), 0);
	dfd = openat(top, "r", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0, "open r");
	if (dfd < 0)
		return;
	memcpy(got, keep, sizeof(got));
	CHECK_RC(dirtree_read_dirid(kr, dfd, "r", got), -ENOENT);
	CHECK(memcmp(got, keep, sizeof(got)) == 0, "missing: out untouched");

	CHECK_RC(backing_replace(dfd, DIRID_FILE, want, DIRID_LEN, 0600), 0);
	CHECK_RC(dirtree_read_dirid(kr, dfd, "r", got), 0);
	CHECK(memcmp(got, want, DIRID_LEN) == 0, "good: the id read");
	CHECK_RC(dirtree_read_dirid(kr, dfd, "elsewhere", got), 0);
	CHECK_RC(dirtree_read_dirid(kr, dfd, NULL, got), 0);
	/* The mount holds O_PATH descriptors of its directories. */
	pfd = openat(top, "r", O_PATH | O_DIRECTORY | O_CLOEXEC);
	memset(got, 0, sizeof(got));
	CHECK_RC(dirtree_read_dirid(kr, pfd, "r", got), 0);
	CHECK(memcmp(got, want, DIRID_LEN) == 0, "good through O_PATH");
	if (pfd >= 0)
		close(pfd);

	CHECK_RC(backing_replace(dfd, DIRID_FILE, want, DIRID_LEN - 1, 0600),
		 0);
	memcpy(got, keep, sizeof(got));
	CHECK_RC(dirtree_read_dirid(kr, dfd, "r", got), -EBADMSG);
	CHECK(memcmp(got, keep, sizeof(got)) == 0, "short: out untouched");

	CHECK_RC(backing_replace(dfd, DIRID_FILE, want, 0, 0600), 0);
	CHECK_RC(dirtree_read_dirid(kr, dfd, "r", got), -EBADMSG);

	CHECK_RC(backing_replace(dfd, DIRID_FILE, want, DIRID_LEN + 1, 0600),
		 0);
	CHECK_RC(dirtree_read_dirid(kr, dfd, "r", got), -EFBIG);
	CHECK(memcmp(got, keep, sizeof(got)) == 0, "long: out untouched");

	CHECK_RC(unlinkat(dfd, DIRID_FILE, 0), 0);
	CHECK_RC(symlinkat("x", dfd, DIRID_FILE), 0);
	CHECK_RC(backing_replace(dfd, "x", want, DIRID_LEN, 0600), 0);
	CHECK_RC(dirtree_read_dirid(kr, dfd, "r", got), -ELOOP);
	close(dfd);
	rm_tree(top, "r");
	CHECK(!tvol_exists(top, "r"), "r removed");

	/* dirtree_make in format 1/2: the bare 16 bytes, as before. */
	CHECK_RC(dirtree_make(kr, top, "r", "r", 0700, 0, 0, false), 0);
	dfd = openat(top, "r", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	{
		struct stat st;

		CHECK(dfd >= 0 && fstatat(dfd, DIRID_FILE, &st, 0) == 0 &&
			      st.st_size == DIRID_LEN,
		      "format 1: a %d-byte id", DIRID_LEN);
	}
	if (dfd >= 0)
		close(dfd);
	rm_tree(top, "r");
}

/* Copy file `name` of directory sfd over the one of dfd (an adversary's
 * cp). */
static void copy_file(int sfd, int dfd, const char *name)
{
	uint8_t buf[256];
	size_t len = 0;

	CHECK_RC(backing_read_small(sfd, name, buf, sizeof(buf), &len), 0);
	CHECK_RC(backing_replace(dfd, name, buf, len, 0400), 0);
}

/* Format 3: the record binds the id to the directory's backing name.
 * Read back where it was made; refused (-EXDEV) under another name, in
 * another directory, swapped with another's, the root's copied into a
 * subdirectory or a subdirectory's into the root; a flipped byte or a
 * bare 16-byte id (the old form) is -EBADMSG; a record of another volume
 * (another secret) too. */
static void test_bound(struct keyring *kr, struct keyring *other, int top)
{
	uint8_t id[DIRID_LEN], ida[DIRID_LEN], idb[DIRID_LEN],
		rec[DIRID_RAW_MAX + 1], root_id[DIRID_LEN];
	size_t len = 0;
	int root, p, q, a, b;

	CHECK_RC(mkdirat(top, "v3", 0700), 0);
	root = openat(top, "v3", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(root >= 0, "open v3");
	t_fill(root_id, sizeof(root_id), 9);
	CHECK_RC(dirtree_dirid_encode(kr, root_id, NULL, rec, &len), 0);
	CHECK(len == DIRID_V3_LEN && memcmp(rec, "CMKD\3", 5) == 0,
	      "root record: CMKD, version 3, %zu bytes", len);
	CHECK(memcmp(rec + 5 + DIRID_LEN,
		     "\377\377\377\377\377\377\377\377\377\377\377\377\377\377\377\377",
		     16) == 0, "root slots: the 0xFF pair");
	CHECK_RC(backing_replace(root, DIRID_FILE, rec, len, 0400), 0);
	CHECK_RC(dirtree_read_dirid(kr, root, NULL, id), 0);
	CHECK(memcmp(id, root_id, DIRID_LEN) == 0, "root id read");

	CHECK_RC(dirtree_make(kr, root, "P", "P", 0700, 0, 0, false), 0);
	CHECK_RC(dirtree_make(kr, root, "Q", "Q", 0700, 0, 0, false), 0);
	p = openat(root, "P", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	q = openat(root, "Q", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_RC(dirtree_make(kr, p, "A", "A", 0700, 0, 0, false), 0);
	CHECK_RC(dirtree_make(kr, q, "B", "B", 0700, 0, 0, false), 0);
	a = openat(p, "A", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	b = openat(q, "B", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(p >= 0 && q >= 0 && a >= 0 && b >= 0, "tree made");
	CHECK_RC(dirtree_read_dirid(kr, a, "A", ida), 0);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", idb), 0);
	CHECK_RC(read_id(a, id), 0);
	CHECK(memcmp(id, ida, DIRID_LEN) == 0, "the id is bytes 5..20");

	/* Moved under another name (its parent the same or another). */
	CHECK_RC(dirtree_read_dirid(kr, a, "B", id), -EXDEV);
	CHECK_RC(dirtree_read_dirid(kr, a, "AA", id), -EXDEV);
	CHECK_RC(dirtree_read_dirid(kr, a, NULL, id), -EXDEV);
	CHECK(strstr(dirtree_dirid_why(-EXDEV), "another directory") != NULL,
	      "why: %s", dirtree_dirid_why(-EXDEV));

	/* A whole directory moved, its record with it. */
	CHECK_RC(renameat(p, "A", q, "A2"), 0);
	CHECK_RC(dirtree_read_dirid(kr, a, "A2", id), -EXDEV);
	CHECK_RC(renameat(q, "A2", p, "A"), 0);

	/* Two directories' records swapped. */
	CHECK_RC(renameat2(p, "A/" DIRID_FILE, q, "B/" DIRID_FILE,
			   RENAME_EXCHANGE), 0);
	CHECK_RC(dirtree_read_dirid(kr, a, "A", id), -EXDEV);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), -EXDEV);
	CHECK_RC(renameat2(p, "A/" DIRID_FILE, q, "B/" DIRID_FILE,
			   RENAME_EXCHANGE), 0);
	CHECK_RC(dirtree_read_dirid(kr, a, "A", id), 0);

	/* The root's record in a subdirectory, and the other way round. */
	copy_file(root, b, DIRID_FILE);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), -EXDEV);
	copy_file(a, root, DIRID_FILE);
	CHECK_RC(dirtree_read_dirid(kr, root, NULL, id), -EXDEV);

	/* A flipped byte anywhere, a bare id, one byte more. */
	CHECK_RC(backing_read_small(a, DIRID_FILE, rec, sizeof(rec), &len), 0);
	for (size_t i = 0; i < DIRID_V3_LEN; i++) {
		rec[i] ^= 0x01;
		CHECK_RC(backing_replace(b, DIRID_FILE, rec, len, 0400), 0);
		rec[i] ^= 0x01;
		if (dirtree_read_dirid(kr, b, "A", id) != -EBADMSG)
			CHECK(false, "flipped byte %zu accepted", i);
	}
	CHECK_RC(backing_replace(b, DIRID_FILE, ida, DIRID_LEN, 0400), 0);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), -EBADMSG);
	CHECK_RC(backing_replace(b, DIRID_FILE, rec, DIRID_V3_LEN - 1, 0400), 0);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), -EBADMSG);
	rec[DIRID_V3_LEN] = 'x';
	CHECK_RC(backing_replace(b, DIRID_FILE, rec, DIRID_V3_LEN + 1, 0400), 0);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), -EFBIG);
	/* Another volume's record (another secret) for the same name. */
	CHECK_RC(dirtree_dirid_encode(other, idb, "B", rec, &len), 0);
	CHECK_RC(backing_replace(b, DIRID_FILE, rec, len, 0400), 0);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), -EBADMSG);
	CHECK_RC(dirtree_dirid_encode(kr, idb, "B", rec, &len), 0);
	CHECK_RC(backing_replace(b, DIRID_FILE, rec, len, 0400), 0);
	CHECK_RC(dirtree_read_dirid(kr, b, "B", id), 0);
	CHECK(memcmp(id, idb, DIRID_LEN) == 0, "B's own record back");

	close(a);
	close(b);
	close(p);
	close(q);
	close(root);
	(void)tvol_rmtree_at(top, "v3");
}

/* A move keeps the id readable at every step: {from, to} durably before
 * the rename (both names accepted, a stale slot flagged), {to} after; a
 * failed rename ends on {from}. Non-directories and format 1/2: no-ops.
 * dirtree_bind_dirid drops a stale slot and rebinds a copy. */
static void test_move(struct keyring *kr, struct keyring *v1, int top)
{
	struct dirtree_move mv;
	uint8_t id0[DIRID_LEN], id[DIRID_LEN];
	unsigned fl = 0;
	int root, d, f;

	CHECK_RC(mkdirat(top, "mv", 0700), 0);
	root = openat(top, "mv", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_RC(dirtree_make(kr, root, "D", "D", 0700, 0, 0, false), 0);
	d = openat(root, "D", O_PATH | O_DIRECTORY | O_CLOEXEC);
	CHECK(root >= 0 && d >= 0, "mv/D");
	CHECK_RC(dirtree_read_dirid(kr, d, "D", id0), 0);

	{
		/* An old mtime, which the rewrites of the id keep. */
		struct timespec ts[2] = { { 1000, 0 }, { 2000, 0 } };

		CHECK_RC(utimensat(root, "D", ts, 0), 0);
	}
	CHECK_RC(dirtree_move_begin(kr, root, "D", "E", &mv), 0);
	CHECK(mv.dfd >= 0, "a directory: something to do");
	CHECK_RC(dirtree_check_dirid(kr, d, "D", id, &fl), 0);
	CHECK(fl == DIRID_F_STALE, "before the rename: D, flagged (%u)", fl);
	CHECK_RC(dirtree_check_dirid(kr, d, "E", id, &fl), 0);
	CHECK(memcmp(id, id0, DIRID_LEN) == 0, "same id");
	CHECK_RC(dirtree_read_dirid(kr, d, "F", id), -EXDEV);
	CHECK_RC(renameat(root, "D", root, "E"), 0);
	CHECK_RC(dirtree_move_end(kr, &mv, true), 0);
	CHECK(mv.dfd == -1, "end closes");
	CHECK_RC(dirtree_check_dirid(kr, d, "E", id, &fl), 0);
	CHECK(fl == 0 && memcmp(id, id0, DIRID_LEN) == 0, "after: E alone");
	{
		struct stat st;

		CHECK(fstatat(root, "E", &st, 0) == 0 &&
			      st.st_mtim.tv_sec == 2000 && st.st_atim.tv_sec == 1000,
		      "the directory's atime and mtime kept");
	}
	CHECK_RC(dirtree_read_dirid(kr, d, "D", id), -EXDEV);

	/* A rename that failed: back to the old name alone. */
	CHECK_RC(dirtree_move_begin(kr, root, "E", "G", &mv), 0);
	CHECK_RC(dirtree_move_end(kr, &mv, false), 0);
	CHECK_RC(dirtree_check_dirid(kr, d, "E", id, &fl), 0);
	CHECK(fl == 0, "failed move: E alone");
	CHECK_RC(dirtree_read_dirid(kr, d, "G", id), -EXDEV);

	/* A crash between: repair's bind drops the stale slot. */
	CHECK_RC(dirtree_move_begin(kr, root, "E", "H", &mv), 0);
	close(mv.dfd);
	CHECK_RC(dirtree_bind_dirid(kr, d, NULL, "E"), 0);
	CHECK_RC(dirtree_check_dirid(kr, d, "E", id, &fl), 0);
	CHECK(fl == 0, "stale slot dropped");
	CHECK_RC(dirtree_read_dirid(kr, d, "H", id), -EXDEV);
	/* A copy rebound on purpose (repair's quarantine): from -> to. */
	CHECK_RC(dirtree_bind_dirid(kr, d, "E", "K"), 0);
	CHECK_RC(dirtree_read_dirid(kr, d, "K", id), 0);
	CHECK_RC(dirtree_read_dirid(kr, d, "E", id), -EXDEV);
	CHECK_RC(dirtree_bind_dirid(kr, d, "K", "E"), 0);

	/* Foreign: the move is refused, nothing written. */
	CHECK_RC(dirtree_move_begin(kr, root, "E", "Z", &mv), 0);
	CHECK_RC(dirtree_move_end(kr, &mv, false), 0);
	CHECK_RC(renameat(root, "E", root, "Y"), 0);
	CHECK_RC(dirtree_move_begin(kr, root, "Y", "Z", &mv), -EBADMSG);
	CHECK(mv.dfd == -1, "refused: nothing to end");
	CHECK_RC(dirtree_move_end(kr, &mv, false), 0);

	/* Not a directory; format 1/2. */
	f = openat(root, "file", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(f >= 0, "file");
	if (f >= 0)
		close(f);
	CHECK_RC(dirtree_move_begin(kr, root, "file", "x", &mv), 0);
	CHECK(mv.dfd == -1, "a file: nothing to do");
	CHECK_RC(dirtree_move_begin(v1, root, "Y", "x", &mv), 0);
	CHECK(mv.dfd == -1, "format 1: nothing to do");
	CHECK_RC(dirtree_bind_dirid(v1, d, NULL, "x"), 0);

	close(d);
	close(root);
	(void)tvol_rmtree_at(top, "mv");
}

static void test_side_name(void)
{
	char out[LONGNAME_LEN + sizeof(LONGNAME_SUFFIX)];
	char bn[LONGNAME_LEN + 1], owner[LONGNAME_LEN + 1];

	memcpy(bn, LONGNAME_PREFIX, sizeof(LONGNAME_PREFIX) - 1);
	memset(bn + sizeof(LONGNAME_PREFIX) - 1, 'A', LONGNAME_HASH_B64);
	bn[LONGNAME_LEN] = '\0';
	CHECK_RC(names_side_name(bn, out, sizeof(out)), 0);
	CHECK(strncmp(out, bn, LONGNAME_LEN) == 0 &&
		      strcmp(out + LONGNAME_LEN, LONGNAME_SUFFIX) == 0,
	      "side name %s", out);
	CHECK(names_is_reserved(out) && !names_is_longname(out) &&
		      !names_is_tmp(out),
	      "a side file is ours and not an entry");
	CHECK_RC(names_side_name(bn, out, sizeof(out) - 1), -ENAMETOOLONG);
	CHECK_RC(names_side_name("", out, 0), -ENAMETOOLONG);

	/* The inverse, for a side file found without its entry. */
	CHECK(names_is_side(out) && !names_is_side(bn) &&
		      !names_is_side(DIRID_FILE) &&
		      !names_is_side("abc" LONGNAME_SUFFIX) &&
		      !names_is_side(LONGNAME_SUFFIX),
	      "side file names");
	CHECK_RC(names_side_owner(out, owner, sizeof(owner)), 0);
	CHECK(strcmp(owner, bn) == 0, "owner of %s", out);
	CHECK_RC(names_side_owner(out, owner, LONGNAME_LEN), -ENAMETOOLONG);
	CHECK_RC(names_side_owner(bn, owner, sizeof(owner)), -EINVAL);
	CHECK_RC(names_side_owner(RESERVED_PREFIX LONGNAME_SUFFIX, owner,
				  sizeof(owner)),
		 0);
	CHECK(strcmp(owner, RESERVED_PREFIX) == 0, "any reserved side name");
	CHECK(names_is_tmp(TMP_PREFIX "0123456789abcdef") &&
		      names_is_reserved(TMP_PREFIX "0123456789abcdef") &&
		      !names_is_tmp(DIRID_FILE) && !names_is_tmp("cmkfs.tm"),
	      "tmp names");
	CHECK(names_is_reserved(DIRID_FILE) && names_is_reserved(VOLUME_FILE) &&
		      names_is_reserved(JOURNAL_DIR) &&
		      names_is_reserved(TRANSIENT_FILE) &&
		      names_is_reserved(QUARANTINE_DIR) &&
		      names_is_reserved(XATTRS_DIR) &&
		      !names_is_reserved("cmkfs") && !names_is_reserved("abc"),
	      "fixed names are reserved");
}

/* The side file of a long name round-trips its encrypted name, and one
 * that belongs to another name is refused. */
static void test_longname(struct keyring *kr, int dfd,
			  const uint8_t id[DIRID_LEN])
{
	struct bname sn, l1, l2;
	char name1[256], name2[256], side[ENCNAME_MAX], enc[ENCNAME_MAX];
	char plain[NAME_MAX + 1];
	uint8_t key[NAME_KEY_LEN];
	struct stat st;

	memset(name1, 'y', 200);
	name1[200] = '\0';
	memset(name2, 'z', 250);
	name2[250] = '\0';
	CHECK_RC(dirtree_bname(kr, id, name1, &l1), 0);
	CHECK_RC(dirtree_bname(kr, id, name2, &l2), 0);
	CHECK(l1.is_long && l2.is_long, "both long");
	CHECK_RC(names_side_name(l1.name, side, sizeof(side)), 0);

	CHECK_RC(dirtree_longname_read(dfd, l1.name, enc, sizeof(enc)),
		 -EBADMSG);	/* no side file yet */
	CHECK_RC(dirtree_longname_add(dfd, &l1), 0);
	CHECK(fstatat(dfd, side, &st, 0) == 0 && (st.st_mode & 0777) == 0400 &&
		      (size_t)st.st_size == strlen(l1.enc),
	      "side file holds the encrypted name");
	CHECK_RC(dirtree_longname_read(dfd, l1.name, enc, sizeof(enc)), 0);
	CHECK(strcmp(enc, l1.enc) == 0, "side file round-trips");
	CHECK_RC(keyring_name_key(kr, key), 0);
	CHECK_RC(names_decrypt(key, id, enc, strlen(enc), plain, sizeof(plain)),
		 0);
	secmem_wipe(key, sizeof(key));
	CHECK(strcmp(plain, name1) == 0, "and decrypts to the name");
	CHECK_RC(dirtree_longname_read(dfd, l1.name, enc, 100), -EBADMSG);

	/* another name's encryption under this hash: refused */
	CHECK_RC(backing_replace(dfd, side, l2.enc, strlen(l2.enc), 0400), 0);
	CHECK_RC(dirtree_longname_read(dfd, l1.name, enc, sizeof(enc)),
		 -EBADMSG);

	/* an entry of that name still there owns the side file (a create
	 * that failed with EEXIST must not take it) */
	CHECK_RC(backing_replace(dfd, side, l1.enc, strlen(l1.enc), 0400), 0);
	CHECK_RC(backing_replace(dfd, l1.name, "x", 1, 0600), 0);
	dirtree_longname_del(dfd, &l1);
	CHECK(tvol_exists(dfd, side), "side file kept while its entry is there");
	CHECK(unlinkat(dfd, l1.name, 0) == 0, "entry removed");
	dirtree_longname_del(dfd, &l1);
	CHECK(!tvol_exists(dfd, side), "side file removed");
	dirtree_longname_del(dfd, &l1);	/* already gone: harmless */

	/* short names have no side file */
	CHECK_RC(dirtree_bname(kr, id, "short", &sn), 0);
	CHECK_RC(dirtree_longname_add(dfd, &sn), 0);
	CHECK_RC(names_side_name(sn.name, side, sizeof(side)), 0);
	CHECK(!tvol_exists(dfd, side), "no side file for a short name");
}

/* Only the id counts as nothing; stale temporaries are swept, other names
 * are left alone and make the directory non-empty. */
static void test_is_empty(int dfd)
{
	static const char tmp[] = TMP_PREFIX "0123456789abcdef";

	CHECK_RC(dirtree_is_empty(dfd), 1);
	CHECK_RC(touch(dfd, tmp), 0);
	CHECK_RC(dirtree_is_empty(dfd), 1);
	CHECK(!tvol_exists(dfd, tmp), "stale temporary removed");
	CHECK(tvol_exists(dfd, DIRID_FILE), "id kept");

	CHECK_RC(touch(dfd, "x"), 0);
	CHECK_RC(dirtree_is_empty(dfd), 0);
	CHECK(tvol_exists(dfd, "x"), "an entry is never removed");
	CHECK_RC(unlinkat(dfd, "x", 0), 0);
	CHECK_RC(dirtree_is_empty(dfd), 1);
	CHECK_RC(dirtree_is_empty(-1), -EBADF);
}

/* Calls unlinkat on each entry of pfd/name if `rm`; the entry count. */
static size_t flat_dir(int pfd, const char *name, bool rm)
{
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int fd = openat(pfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		n++;
		if (rm)
			(void)unlinkat(dirfd(d), de->d_name, 0);
	}
	closedir(d);
	if (rm)
		(void)unlinkat(pfd, name, AT_REMOVEDIR);
	return n;
}

static size_t count_sides(int top)
{
	return flat_dir(top, LINKS_DIR, false);
}

/* Make symlink `name` in dfd with a target of `len` bytes and read it
 * back through linktgt_read(); returns whether it went to a side file. */
static bool link_one(const uint8_t key[static NAME_KEY_LEN], int top, int dfd,
		     const char *name, size_t len)
{
	static char tgt[SYMLINK_TARGET_MAX + 1], enc[ENCLINK_MAX],
		raw[ENCLINK_MAX], back[ENCLINK_MAX];
	size_t n = 0, bl = 0;
	ssize_t rl;
	bool side = true;

	for (size_t i = 0; i < len; i++)
		tgt[i] = (char)(1 + (i * 7 + len) % 255);
	CHECK_RC(names_symlink_encrypt(key, tgt, len, enc, sizeof(enc)), 0);
	CHECK_RC(linktgt_make(top, dfd, name, enc, strlen(enc)), 0);
	rl = readlinkat(dfd, name, raw, sizeof(raw) - 1);
	CHECK(rl > 0, "readlinkat %zu", len);
	if (rl > 0 && len <= 3000)
		CHECK((size_t)rl == strlen(enc) && memcmp(raw, enc, (size_t)rl) == 0,
		      "length %zu: not stored inline as before", len);
	CHECK_RC(linktgt_read(top, dfd, name, raw, sizeof(raw), &n, &side), 0);
	CHECK(n == strlen(enc) && strcmp(raw, enc) == 0,
	      "length %zu: encrypted target read back differs", len);
	CHECK_RC(names_symlink_decrypt(key, raw, n, back, sizeof(back), &bl),
		 0);
	CHECK(bl == len && memcmp(back, tgt, len) == 0,
	      "length %zu: target read back differs", len);
	return side;
}

static void test_linktgt(struct keyring *kr, int top, int a, int b)
{
	uint8_t key[NAME_KEY_LEN];
	char name[32], raw[ENCLINK_MAX], big[SYMLINK_TARGET_MAX + 2];
	struct linktgt_pin pin;
	size_t n = 0, nside = 0, len;
	bool side = false;

	CHECK_RC(keyring_name_key(kr, key), 0);
	/* Every length near the inline limit and the top, sparser between. */
	for (len = 1; len <= SYMLINK_TARGET_MAX;
	     len += (len < 40 || (len > 2980 && len < 3100) || len > 4000) ?
			    1 : 53) {
		bool s;

		snprintf(name, sizeof(name), "l%zu", len);
		s = link_one(key, top, a, name, len);
		CHECK(s == (len > 3007), "length %zu: side file %d", len, s);
		nside += s;
	}
	CHECK(count_sides(top) == nside, "%zu side files, want %zu",
	      count_sides(top), nside);
	memset(big, 'x', sizeof(big));
	CHECK_RC(names_symlink_encrypt(key, big, SYMLINK_TARGET_MAX + 1, raw,
				       sizeof(raw)),
		 -ENAMETOOLONG);
	memset(raw, 'A', sizeof(raw));
	CHECK_RC(linktgt_make(top, a, "huge", raw, ENCLINK_MAX), -ENAMETOOLONG);

	/* Renamed to another directory: the side file stays, still found. */
	CHECK_RC(renameat(a, "l4095", b, "moved"), 0);
	CHECK_RC(linktgt_read(top, b, "moved", raw, sizeof(raw), &n, &side), 0);
	CHECK(side, "moved link lost its side file");
	/* Hard links share it; it goes with the last one. */
	CHECK_RC(linkat(b, "moved", a, "hard", 0), 0);
	linktgt_pin(b, "moved", &pin);
	CHECK(pin.fd >= 0, "long symlink not pinned");
	CHECK_RC(unlinkat(b, "moved", 0), 0);
	linktgt_unpin(top, &pin);
	CHECK_RC(linktgt_read(top, a, "hard", raw, sizeof(raw), &n, &side), 0);
	CHECK(count_sides(top) == nside, "side file gone with a link left");
	linktgt_pin(a, "hard", &pin);
	CHECK_RC(unlinkat(a, "hard", 0), 0);
	linktgt_unpin(top, &pin);
	CHECK(count_sides(top) == nside - 1, "side file left after last link");
	/* Short links and other objects are not pinned. */
	linktgt_pin(a, "l1", &pin);
	CHECK(pin.fd < 0, "short symlink pinned");
	linktgt_unpin(top, &pin);

	/* A missing side file is -ENOENT, flagged as a side file's. */
	linktgt_pin(a, "l4094", &pin);
	CHECK(pin.fd >= 0, "pin");
	CHECK_RC(linktgt_drop(top, pin.marker), 0);
	linktgt_unpin(top, &pin);
	side = false;
	CHECK_RC(linktgt_read(top, a, "l4094", raw, sizeof(raw), &n, &side),
		 -ENOENT);
	CHECK(side, "missing side file not flagged");
	CHECK(linktgt_is_marker(LINKTGT_PREFIX "abc", 12) == 0, "short marker");
	secmem_wipe(key, sizeof(key));
}

int main(void)
{
	char top_path[PATH_MAX];
	uint8_t ida[DIRID_LEN], idb[DIRID_LEN];
	struct tvol_mem vo, other;
	struct keyring *v1kr = NULL;
	char gdir[PATH_MAX], gkey[PATH_MAX + 16];
	const char *src = getenv("TOP_SRCDIR");
	int top, a, grootfd = -1;

	snprintf(gdir, sizeof(gdir), "%s/tests/golden/v1/cipher",
		 src != NULL ? src : "..");
	snprintf(gkey, sizeof(gkey), "%s/tests/golden/v1/service.key",
		 src != NULL ? src : "..");
	if (tvol_tmpdir("test_dirtree", top_path, sizeof(top_path)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	/* A format-1 keyring: the golden volume's (its key file copied, as
	 * a key file must be 0600). */
	{
		char buf[64], copy[PATH_MAX + 16];
		FILE *in = fopen(gkey, "rb"), *out;
		size_t n = in != NULL ? fread(buf, 1, sizeof(buf), in) : 0;

		snprintf(copy, sizeof(copy), "%s/v1.key", top_path);
		out = fopen(copy, "wb");
		if (in == NULL || out == NULL || chmod(copy, 0600) < 0 ||
		    fwrite(buf, 1, n, out) != n) {
			perror(gkey);
			return 1;
		}
		fclose(in);
		fclose(out);
		snprintf(gkey, sizeof(gkey), "%s", copy);
	}
	if (aead_global_init() < 0 || tvol_mem_make(&vo, 4096, 7) < 0 ||
	    tvol_mem_make(&other, 4096, 17) < 0 ||
	    tvol_unlock(gdir, gkey, &grootfd, &v1kr) < 0 ||
	    keyring_volume(vo.kr)->version < 3 ||
	    keyring_volume(v1kr)->version != 1) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	close(grootfd);
	top = open(top_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0) {
		perror(top_path);
		return 1;
	}

	test_make(vo.kr, top, ida, idb);
	test_bname(vo.kr, ida, idb);
	test_side_name();
	test_read_dirid(v1kr, top);
	test_bound(vo.kr, other.kr, top);
	test_move(vo.kr, v1kr, top);
	{
		int la, lb;

		CHECK_RC(mkdirat(top, "la", 0700), 0);
		CHECK_RC(mkdirat(top, "lb", 0700), 0);
		la = openat(top, "la", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		lb = openat(top, "lb", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		CHECK(la >= 0 && lb >= 0, "open la, lb");
		if (la >= 0 && lb >= 0)
			test_linktgt(vo.kr, top, la, lb);
		close(la);
		close(lb);
		(void)flat_dir(top, "la", true);
		(void)flat_dir(top, "lb", true);
		(void)flat_dir(top, LINKS_DIR, true);
	}
	a = openat(top, "a", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(a >= 0, "open a");
	if (a >= 0) {
		test_longname(vo.kr, a, ida);
		test_is_empty(a);
		close(a);
	}

	rm_tree(top, "a");
	rm_tree(top, "b");
	(void)unlinkat(top, "v1.key", 0);
	close(top);
	CHECK(rmdir(top_path) == 0, "test tree cleaned up");
	tvol_mem_free(&vo);
	tvol_mem_free(&other);
	keyring_free(v1kr);
	return t_done("test_dirtree");
}
