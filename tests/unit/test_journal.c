/* tests/unit/test_journal.c — truncate records (cipherdir/journal.c,
 * doc/FORMAT.md §3.1) on a temporary volume without a mount: a shrink
 * writes a record; a crash between the cut and the write (made by hand
 * here, as t_crash.sh makes it with a kill) is completed by
 * journal_recover(); records of files that are gone or whose tail is whole
 * are cleared, names that are not records ignored; a damaged record is
 * refused, kept, and leaves the file as it was. Run as a format-2 volume
 * (records "CMKFSTR1", as older binaries write them) and as a format-3
 * one ("CMKFSTR2": file id and the backing lengths the record was written
 * for), where a record applies only to that state: an old record put
 * back against a file that changed since, with a byte of its tail
 * flipped, is refused and the file not cut; a CMKFSTR1 record is refused.
 * No root needed. */
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
#include "cmkfs/block.h"
#include "cmkfs/cfile.h"
#include "cmkfs/header.h"
#include "cmkfs/journal.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define BS 4096u
#define OLD_SIZE (3 * BS + 100)
#define NEW_SIZE (BS + 50)	/* re-seals block 1 as the last, 50 bytes */
#define REC1_HDR 16		/* magic, block number */
#define REC2_HDR 48		/* magic, file id, L_cut, L_new, block number */

/* Expected failures log an error; keep them off the test output
 * (TEST_VERBOSE=1 shows them). */
static int saved_stderr = -1;

static void quiet(bool on)
{
	if (getenv("TEST_VERBOSE") != NULL)
		return;
	fflush(stderr);
	if (on) {
		int null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);

		if (null_fd < 0)
			return;
		saved_stderr = dup(2);
		if (saved_stderr >= 0)
			dup2(null_fd, 2);
		close(null_fd);
	} else if (saved_stderr >= 0) {
		dup2(saved_stderr, 2);
		close(saved_stderr);
		saved_stderr = -1;
	}
}

static off_t fsize(int fd)
{
	struct stat st;

	return fstat(fd, &st) < 0 ? -1 : st.st_size;
}

/* 0 if dfd/name opens, has `len` plaintext bytes equal to data and a
 * whole tail. */
static int check_file(struct keyring *kr, int dfd, const char *name,
		      const uint8_t *data, size_t len)
{
	static uint8_t buf[OLD_SIZE + 1];
	struct cfile cf;
	uint64_t size = 0;
	size_t got = 0;
	int fd, rc;

	fd = openat(dfd, name, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cfile_init(&cf, kr, BS, fd);
	rc = cfile_load(&cf, fd);
	if (rc == 0)
		rc = cfile_check_tail(&cf, fd);
	if (rc == 0)
		rc = cfile_size(&cf, fd, &size);
	if (rc == 0 && size != len)
		rc = -ERANGE;
	if (rc == 0)
		rc = cfile_read(&cf, fd, 0, sizeof(buf), buf, &got);
	if (rc == 0 && (got != len || memcmp(buf, data, len) != 0))
		rc = -EILSEQ;
	cfile_destroy(&cf);
	close(fd);
	return rc;
}

static int file_id_name(int dfd, const char *name,
			char out[static JOURNAL_NAME_LEN + 1])
{
	uint8_t buf[HEADER_LEN];
	struct header h;
	int fd, rc;

	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = backing_pread_full(fd, buf, sizeof(buf), 0);
	if (rc == 0)
		rc = header_parse(buf, sizeof(buf), &h);
	if (rc == 0)
		cfile_journal_name(h.file_id, out);
	close(fd);
	return rc;
}

static int recover(int rootfd, int jfd, struct keyring *kr, unsigned *done)
{
	int rc;

	quiet(true);
	rc = journal_recover(rootfd, jfd, kr, BS, done);
	quiet(false);
	return rc;
}

static uint64_t be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint8_t data[OLD_SIZE], rec[REC2_HDR + BS + BLOCK_OVERHEAD],
	bad[sizeof(rec) + 64];

/* A record's damaged variants, per format: k = 0 .. DAMAGE_KINDS - 1.
 * Returns the length of bad[], or 0 once k is past the last. */
#define DAMAGE_KINDS 8
static size_t damage(unsigned fmt, int k, const uint8_t *r, size_t len)
{
	size_t h = fmt >= 3 ? REC2_HDR : REC1_HDR;
	size_t blk = len - h;

	memcpy(bad, r, len);
	switch (k) {
	case 0:
		bad[h + 20] ^= 0x01;		/* sealed block */
		return len;
	case 1:
		bad[0] ^= 0x20;			/* magic */
		return len;
	case 2:
		bad[h - 1] = 2;			/* block number */
		return len;
	case 3:
		return h + BLOCK_OVERHEAD - 1;	/* short */
	case 4:
		/* the other version's record of the same block: never
		 * written by this volume's format */
		if (fmt >= 3) {
			memcpy(bad, "CMKFSTR1", 8);
			memcpy(bad + 8, r + h - 8, 8);
			memcpy(bad + REC1_HDR, r + h, blk);
			return REC1_HDR + blk;
		}
		memcpy(bad, "CMKFSTR2", 8);
		memset(bad + 8, 0, FILE_ID_LEN);
		put64(bad + 24, HEADER_LEN + (BS + BLOCK_OVERHEAD)); /* b = 1 */
		put64(bad + 32, be64(bad + 24) + blk);		/* L_new */
		memcpy(bad + 40, r + 8, 8);
		memcpy(bad + REC2_HDR, r + REC1_HDR, blk);
		return REC2_HDR + blk;
	case 5:	/* format 3: another file's id */
		if (fmt < 3)
			return len;
		bad[8] ^= 0x80;
		return len;
	case 6:	/* format 3: L_new that disagrees with the block */
		if (fmt < 3)
			return len;
		put64(bad + 32, be64(r + 32) + 1);
		return len;
	case 7:	/* format 3: L_cut and L_new both moved */
		if (fmt < 3)
			return len;
		put64(bad + 24, be64(r + 24) + BS + BLOCK_OVERHEAD);
		put64(bad + 32, be64(r + 32) + BS + BLOCK_OVERHEAD);
		return len;
	default:
		return 0;
	}
}

/* One pass on a volume of format fmt (2: records CMKFSTR1, 3: CMKFSTR2). */
static void pass(struct tvol_mem *vo, unsigned fmt, int top, int root,
		 int sub, int jfd)
{
	static uint8_t grown[OLD_SIZE];
	char jname[JOURNAL_NAME_LEN + 1], other[JOURNAL_NAME_LEN + 1];
	size_t h = fmt >= 3 ? REC2_HDR : REC1_HDR, rec_len = 0, len;
	uint8_t id[FILE_ID_LEN] = { 0 };
	unsigned done = 0;
	uint64_t wat = 0;
	off_t cut = 0, grown_size;
	struct cfile cf;
	int fd, rc;

	/* tests/lib/tvol.c makes format-3 keyrings; a format-2 volume is
	 * the same keyring under an older config version */
	keyring_test_set_version(vo->kr, fmt);
	memset(other, 'a', JOURNAL_NAME_LEN);
	other[JOURNAL_NAME_LEN] = '\0';
	(void)unlinkat(top, "keep", 0);

	/* A shrink writes its record (caught through a second link, since a
	 * shrink that completes removes it). */
	CHECK_RC(tvol_write(vo->kr, sub, "F1", data, OLD_SIZE), 0);
	CHECK_RC(file_id_name(sub, "F1", jname), 0);
	CHECK_RC(t_unhex(jname, id, sizeof(id)), 0);
	fd = openat(jfd, jname, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "record name made");
	if (fd >= 0)
		close(fd);
	CHECK_RC(linkat(jfd, jname, top, "keep", 0), 0);
	fd = openat(sub, "F1", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open F1");
	if (fd < 0)
		return;
	cfile_init(&cf, vo->kr, BS, fd);
	cf.jfd = jfd;
	CHECK_RC(cfile_load(&cf, fd), 0);
	CHECK_RC(cfile_truncate(&cf, fd, NEW_SIZE), 0);
	cfile_destroy(&cf);
	CHECK(!tvol_exists(jfd, jname), "a finished shrink leaves no record");
	CHECK_RC(backing_read_small(top, "keep", rec, sizeof(rec), &rec_len),
		 0);
	CHECK(rec_len == h + 50 + BLOCK_OVERHEAD && be64(rec + h - 8) == 1,
	      "format %u: record header and sealed block 1 (%zu bytes)", fmt,
	      rec_len);
	CHECK(memcmp(rec, fmt >= 3 ? "CMKFSTR2" : "CMKFSTR1", 8) == 0,
	      "format %u: record magic %.8s", fmt, (const char *)rec);
	if (fmt >= 3) {
		uint64_t l_cut = HEADER_LEN + (BS + BLOCK_OVERHEAD);

		CHECK(memcmp(rec + 8, id, FILE_ID_LEN) == 0,
		      "record names the file");
		CHECK(be64(rec + 24) == l_cut &&
			      be64(rec + 32) == l_cut + 50 + BLOCK_OVERHEAD,
		      "L_cut %llu, L_new %llu",
		      (unsigned long long)be64(rec + 24),
		      (unsigned long long)be64(rec + 32));
	}
	CHECK_RC(check_file(vo->kr, sub, "F1", data, NEW_SIZE), 0);

	/* The crash: cut before block 1, the block never written. */
	cut = fsize(fd) - (off_t)(50 + BLOCK_OVERHEAD);
	CHECK_RC(ftruncate(fd, cut), 0);
	quiet(true);
	rc = check_file(vo->kr, sub, "F1", data, NEW_SIZE);
	quiet(false);
	CHECK(rc == -EBADMSG, "torn tail: %d", rc);

	/* Damaged records are refused, kept, and change nothing. */
	for (int k = 0; (len = damage(fmt, k, rec, rec_len)) > 0; k++) {
		if (len == rec_len && memcmp(bad, rec, len) == 0)
			continue;	/* not a damage in this format */
		CHECK_RC(backing_replace(jfd, jname, bad, len, 0600), 0);
		CHECK_RC(recover(root, jfd, vo->kr, &done), 0);
		CHECK(done == 0, "format %u damage %d: nothing completed", fmt,
		      k);
		CHECK(tvol_exists(jfd, jname), "format %u damage %d: kept", fmt,
		      k);
		CHECK(fsize(fd) == cut, "format %u damage %d: file untouched",
		      fmt, k);
	}

	/* The good record completes the file; a record of a file that is
	 * gone is cleared, a name that is no record ignored. */
	CHECK_RC(backing_replace(jfd, jname, rec, rec_len, 0600), 0);
	CHECK_RC(backing_replace(jfd, other, rec, rec_len, 0600), 0);
	CHECK_RC(backing_replace(jfd, "notes", "x", 1, 0600), 0);
	CHECK_RC(recover(root, jfd, vo->kr, &done), 0);
	CHECK(done == 1, "one file completed: %u", done);
	CHECK(!tvol_exists(jfd, jname), "its record removed");
	CHECK(!tvol_exists(jfd, other), "a gone file's record removed");
	CHECK(tvol_exists(jfd, "notes"), "not a record: left alone");
	CHECK_RC(check_file(vo->kr, sub, "F1", data, NEW_SIZE), 0);

	/* A record of a whole file is stale: dropped, the file untouched. */
	CHECK_RC(backing_replace(jfd, jname, rec, rec_len, 0600), 0);
	CHECK_RC(recover(root, jfd, vo->kr, &done), 0);
	CHECK(done == 0 && !tvol_exists(jfd, jname), "stale record dropped");
	CHECK_RC(check_file(vo->kr, sub, "F1", data, NEW_SIZE), 0);

	/* A crash may leave any length from the cut to the written block
	 * (the write's size reached the disk, its bytes not): completed. */
	for (int i = 0; i < 2; i++) {
		off_t at = i == 0 ? cut + 30 : cut + 50 + BLOCK_OVERHEAD;

		CHECK_RC(ftruncate(fd, cut), 0);
		CHECK_RC(ftruncate(fd, at), 0);
		CHECK_RC(backing_replace(jfd, jname, rec, rec_len, 0600), 0);
		CHECK_RC(recover(root, jfd, vo->kr, &done), 0);
		CHECK(done == 1 && !tvol_exists(jfd, jname),
		      "format %u: torn at +%lld completed", fmt,
		      (long long)(at - cut));
		CHECK_RC(check_file(vo->kr, sub, "F1", data, NEW_SIZE), 0);
	}

	/* The attack: the file grew since the record was written (an old
	 * backup holds the record), one byte of its tail is flipped and the
	 * old record put back. Format 3 refuses it: the record is kept, the
	 * file is not cut and its tail still fails (EIO). */
	if (fmt >= 3) {
		t_fill(grown, sizeof(grown), 77);
		cfile_init(&cf, vo->kr, BS, fd);
		CHECK_RC(cfile_load(&cf, fd), 0);
		CHECK_RC(cfile_write(&cf, fd, 0, grown, sizeof(grown), false,
				     &wat),
			 0);
		cfile_destroy(&cf);
		CHECK_RC(check_file(vo->kr, sub, "F1", grown, sizeof(grown)),
			 0);
		grown_size = fsize(fd);
		{
			uint8_t c = 0;

			CHECK(pread(fd, &c, 1, grown_size - 1) == 1, "read");
			c ^= 0x01;
			CHECK(pwrite(fd, &c, 1, grown_size - 1) == 1, "flip");
		}
		CHECK_RC(backing_replace(jfd, jname, rec, rec_len, 0600), 0);
		CHECK_RC(recover(root, jfd, vo->kr, &done), 0);
		CHECK(done == 0, "old record on a grown file: not applied");
		CHECK(tvol_exists(jfd, jname), "old record kept");
		CHECK(fsize(fd) == grown_size, "file not cut: %lld, was %lld",
		      (long long)fsize(fd), (long long)grown_size);
		quiet(true);
		rc = check_file(vo->kr, sub, "F1", grown, sizeof(grown));
		quiet(false);
		CHECK(rc == -EBADMSG, "its tail still fails: %d", rc);
		CHECK_RC(unlinkat(jfd, jname, 0), 0);
	}
	close(fd);
	CHECK_RC(unlinkat(sub, "F1", 0), 0);
	CHECK_RC(unlinkat(top, "keep", 0), 0);
}

int main(void)
{
	char top_path[PATH_MAX];
	int top = -1, root = -1, sub = -1, jfd = -1, fd = -1;
	unsigned done = 0;
	struct tvol_mem vo;

	t_fill(data, sizeof(data), 42);
	if (aead_global_init() < 0 || tvol_mem_make(&vo, BS, 11) < 0 ||
	    tvol_tmpdir("test_journal", top_path, sizeof(top_path)) < 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	/* top/root is the cipher directory, top/keep outside of it. */
	top = open(top_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (top < 0 || mkdirat(top, "root", 0700) < 0 ||
	    (root = openat(top, "root", O_RDONLY | O_DIRECTORY)) < 0 ||
	    mkdirat(root, "d1", 0700) < 0 ||
	    (sub = openat(root, "d1", O_RDONLY | O_DIRECTORY)) < 0) {
		perror(top_path);
		return 1;
	}

	/* journal_open: made only when asked */
	CHECK_RC(journal_open(root, false), -ENOENT);
	jfd = journal_open(root, true);
	CHECK(jfd >= 0, "journal made: %d", jfd);
	CHECK(tvol_exists(root, JOURNAL_DIR), "as %s", JOURNAL_DIR);
	fd = journal_open(root, true);
	CHECK(fd >= 0, "made twice: %d", fd);
	if (fd >= 0)
		close(fd);
	if (jfd < 0)
		return t_done("test_journal");

	pass(&vo, 2, top, root, sub, jfd);
	pass(&vo, 3, top, root, sub, jfd);

	/* Nothing to do: an empty journal is not an error. */
	CHECK_RC(unlinkat(jfd, "notes", 0), 0);
	CHECK_RC(recover(root, jfd, vo.kr, &done), 0);
	CHECK(done == 0, "empty journal");

	close(jfd);
	close(sub);
	CHECK_RC(unlinkat(root, "d1", AT_REMOVEDIR), 0);
	CHECK_RC(unlinkat(root, JOURNAL_DIR, AT_REMOVEDIR), 0);
	close(root);
	CHECK_RC(unlinkat(top, "root", AT_REMOVEDIR), 0);
	close(top);
	CHECK(rmdir(top_path) == 0, "test tree cleaned up");
	tvol_mem_free(&vo);
	return t_done("test_journal");
}
