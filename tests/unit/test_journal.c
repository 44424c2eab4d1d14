/* tests/unit/test_journal.c — truncate records (cipherdir/journal.c,
 * doc/FORMAT.md §3.1) on a temporary volume without a mount: a shrink
 * writes a record; a crash between the cut and the write (made by hand
 * here, as t_crash.sh makes it with a kill) is completed by
 * journal_recover(); records of files that are gone or whose tail is whole
 * are cleared, names that are not records ignored; a damaged record is
 * refused, kept, and leaves the file as it was. No root needed. */
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
#define REC_HDR 16		/* magic, block number */

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

int main(void)
{
	static uint8_t data[OLD_SIZE], rec[REC_HDR + BS + BLOCK_OVERHEAD],
		bad[sizeof(rec)];
	char top_path[PATH_MAX];
	char jname[JOURNAL_NAME_LEN + 1], other[JOURNAL_NAME_LEN + 1];
	int top = -1, root = -1, sub = -1, jfd = -1, fd = -1;
	size_t rec_len = 0;
	unsigned done = 0;
	off_t cut = 0;
	int rc;
	struct cfile cf;
	struct tvol_mem vo;

	t_fill(data, sizeof(data), 42);
	memset(other, 'a', JOURNAL_NAME_LEN);
	other[JOURNAL_NAME_LEN] = '\0';
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

	/* A shrink writes its record (caught through a second link, since a
	 * shrink that completes removes it). */
	CHECK_RC(tvol_write(vo.kr, sub, "F1", data, OLD_SIZE), 0);
	CHECK_RC(file_id_name(sub, "F1", jname), 0);
	fd = openat(jfd, jname, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "record name made");
	if (fd >= 0)
		close(fd);
	CHECK_RC(linkat(jfd, jname, top, "keep", 0), 0);
	fd = openat(sub, "F1", O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open F1");
	cfile_init(&cf, vo.kr, BS, fd);
	cf.jfd = jfd;
	CHECK_RC(cfile_load(&cf, fd), 0);
	CHECK_RC(cfile_truncate(&cf, fd, NEW_SIZE), 0);
	cfile_destroy(&cf);
	CHECK(!tvol_exists(jfd, jname), "a finished shrink leaves no record");
	CHECK_RC(backing_read_small(top, "keep", rec, sizeof(rec), &rec_len),
		 0);
	CHECK(rec_len == REC_HDR + 50 + BLOCK_OVERHEAD && rec[REC_HDR - 1] == 1,
	      "record: header and sealed block 1 (%zu bytes)", rec_len);
	CHECK_RC(check_file(vo.kr, sub, "F1", data, NEW_SIZE), 0);

	/* The crash: cut before block 1, the block never written. */
	cut = fsize(fd) - (off_t)(50 + BLOCK_OVERHEAD);
	CHECK_RC(ftruncate(fd, cut), 0);
	quiet(true);
	rc = check_file(vo.kr, sub, "F1", data, NEW_SIZE);
	quiet(false);
	CHECK(rc == -EBADMSG, "torn tail: %d", rc);

	/* Damaged records are refused, kept, and change nothing. */
	for (int k = 0; k < 4; k++) {
		size_t len = rec_len;

		memcpy(bad, rec, rec_len);
		if (k == 0)
			bad[REC_HDR + 20] ^= 0x01;	/* sealed block */
		else if (k == 1)
			bad[0] ^= 0x20;			/* magic */
		else if (k == 2)
			bad[REC_HDR - 1] = 2;		/* block number */
		else
			len = REC_HDR + BLOCK_OVERHEAD - 1;	/* short */
		CHECK_RC(backing_replace(jfd, jname, bad, len, 0600), 0);
		CHECK_RC(recover(root, jfd, vo.kr, &done), 0);
		CHECK(done == 0, "damage %d: nothing completed", k);
		CHECK(tvol_exists(jfd, jname), "damage %d: record kept", k);
		CHECK(fsize(fd) == cut, "damage %d: file untouched", k);
	}

	/* The good record completes the file; a record of a file that is
	 * gone is cleared, a name that is no record ignored. */
	CHECK_RC(backing_replace(jfd, jname, rec, rec_len, 0600), 0);
	CHECK_RC(backing_replace(jfd, other, rec, rec_len, 0600), 0);
	CHECK_RC(backing_replace(jfd, "notes", "x", 1, 0600), 0);
	CHECK_RC(recover(root, jfd, vo.kr, &done), 0);
	CHECK(done == 1, "one file completed: %u", done);
	CHECK(!tvol_exists(jfd, jname), "its record removed");
	CHECK(!tvol_exists(jfd, other), "a gone file's record removed");
	CHECK(tvol_exists(jfd, "notes"), "not a record: left alone");
	CHECK_RC(check_file(vo.kr, sub, "F1", data, NEW_SIZE), 0);

	/* A record of a whole file is stale: dropped, the file untouched. */
	CHECK_RC(backing_replace(jfd, jname, rec, rec_len, 0600), 0);
	CHECK_RC(recover(root, jfd, vo.kr, &done), 0);
	CHECK(done == 0 && !tvol_exists(jfd, jname), "stale record dropped");
	CHECK_RC(check_file(vo.kr, sub, "F1", data, NEW_SIZE), 0);

	/* Nothing to do: an empty journal is not an error. */
	CHECK_RC(unlinkat(jfd, "notes", 0), 0);
	CHECK_RC(recover(root, jfd, vo.kr, &done), 0);
	CHECK(done == 0, "empty journal");

	close(fd);
	close(jfd);
	CHECK_RC(unlinkat(sub, "F1", 0), 0);
	close(sub);
	CHECK_RC(unlinkat(root, "d1", AT_REMOVEDIR), 0);
	CHECK_RC(unlinkat(root, JOURNAL_DIR, AT_REMOVEDIR), 0);
	close(root);
	CHECK_RC(unlinkat(top, "root", AT_REMOVEDIR), 0);
	CHECK_RC(unlinkat(top, "keep", 0), 0);
	close(top);
	CHECK(rmdir(top_path) == 0, "test tree cleaned up");
	tvol_mem_free(&vo);
	return t_done("test_journal");
}
