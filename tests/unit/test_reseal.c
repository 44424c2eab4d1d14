/* tests/unit/test_reseal.c — fresh DEKs for a file, in place
 * (include/cmkfs/reseal.h, doc/FORMAT.md §3.2): a file re-sealed alone
 * (one chunk and several) or in a batch reads back the same under new
 * DEKs with its file id, inode and mtime kept; a reseal cut short at the
 * states a kill or power cut leaves (record written, some chunks done,
 * one block torn, header new but blocks not all) is finished from its
 * record by journal_recover, found by the file's id; a stale record is
 * dropped, and a record naming another header changes nothing. */
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
#include "cmkfs/cfile.h"
#include "cmkfs/journal.h"
#include "cmkfs/reseal.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define BS 512u
#define CB (BS + BLOCK_OVERHEAD)
/* three chunks of RESEAL_CHUNK_BYTES and a bit */
#define BIG (3 * RESEAL_CHUNK_BYTES + 1000)

static struct tvol_mem vo;
static int root = -1, jfd = -1;

static int hdr_of(const char *name, struct header *h)
{
	int fd = openat(root, name, O_RDONLY), rc;

	if (fd < 0)
		return -errno;
	rc = cfile_read_header(fd, h);
	close(fd);
	return rc;
}

static bool reads(const char *name, const uint8_t *want, size_t len)
{
	uint8_t *got = malloc(len + 1);
	size_t n = 0;
	bool ok = got != NULL &&
		  tvol_read(vo.kr, root, name, got, len + 1, &n) == 0 &&
		  n == len && memcmp(got, want, len) == 0;

	free(got);
	return ok;
}

static int reseal_one(const char *name, struct reseal_slot *s)
{
	struct cfile cf;
	int fd = openat(root, name, O_RDWR), rc;

	if (fd < 0)
		return -errno;
	cfile_init(&cf, vo.kr, BS, fd);
	rc = reseal_file(&cf, fd, s, true);
	cfile_destroy(&cf);
	close(fd);
	return rc;
}

struct owned {
	struct cfile cf;
	int fd;
};

static void release(void *ctx)
{
	struct owned *o = ctx;

	cfile_destroy(&o->cf);
	close(o->fd);
	free(o);
}

static void put_be(uint8_t *p, uint64_t x, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(x >> (8 * (n - 1 - i)));
}

/* A reseal cut short, built by hand from the documented layout: the
 * record (old header, new header, chunk b0..b0+n of new blocks), blocks
 * [0, done) re-sealed in place, block `torn` (inside the chunk) garbage,
 * and the header `new_hdr` or old. */
static int cut_short(const char *name, uint64_t b0, uint64_t n, uint64_t done,
		     uint64_t torn, bool new_hdr)
{
	struct filekeys *ofk = NULL, *nfk = NULL;
	struct header oh, nh;
	struct stat st;
	uint8_t *blk = NULL, *pt = NULL, *rec = NULL, hb[HEADER_LEN];
	uint64_t plain, nb;
	size_t rlen, clen = 0;
	int fd, rfd = -1, rc;

	fd = openat(root, name, O_RDWR);
	if (fd < 0)
		return -errno;
	rc = fstat(fd, &st) < 0 ? -errno : cfile_read_header(fd, &oh);
	if (rc == 0)
		rc = cfile_plain_size((uint64_t)st.st_size, BS, &plain);
	if (rc == 0)
		rc = keyring_refresh_file(vo.kr, &oh, &nh, &ofk, &nfk);
	if (rc < 0)
		goto out;
	nb = plain == 0 ? 1 : (plain - 1) / BS + 1;
	blk = malloc(CB);
	pt = malloc(BS);
	rec = malloc(8 + 2 * HEADER_LEN + 20 + n * CB);
	memcpy(rec, "CMKFSRS1", 8);
	header_serialize(&oh, rec + 8);
	header_serialize(&nh, rec + 8 + HEADER_LEN);
	for (uint64_t b = 0; b < nb && rc == 0; b++) {
		size_t len = (b == nb - 1 ? plain - b * BS : BS) +
			     BLOCK_OVERHEAD;
		off_t off = HEADER_LEN + (off_t)(b * CB);

		rc = backing_pread_full(fd, blk, len, off);
		if (rc == 0)
			rc = block_open(&ofk->bc, b, b == nb - 1, blk, len, pt);
		if (rc == 0)
			rc = block_seal(&nfk->bc, b, b == nb - 1, pt,
					len - BLOCK_OVERHEAD, blk);
		if (rc == 0 && b >= b0 && b < b0 + n) {
			memcpy(rec + 8 + 2 * HEADER_LEN + 20 + clen, blk, len);
			clen += len;
		}
		if (rc == 0 && b == torn)
			memset(blk, 0xa5, len);
		if (rc == 0 && (b < done || b == torn))
			rc = backing_pwrite_full(fd, blk, len, off);
	}
	put_be(rec + 8 + 2 * HEADER_LEN, b0, 8);
	put_be(rec + 8 + 2 * HEADER_LEN + 8, n, 4);
	put_be(rec + 8 + 2 * HEADER_LEN + 12, clen, 8);
	rlen = 8 + 2 * HEADER_LEN + 20 + clen;
	if (rc == 0 && new_hdr) {
		header_serialize(&nh, hb);
		rc = backing_pwrite_full(fd, hb, sizeof(hb), 0);
	}
	rfd = rc == 0 ? openat(jfd, "reseal.test", O_WRONLY | O_CREAT | O_TRUNC,
			       0600) : -1;
	if (rc == 0 && rfd < 0)
		rc = -errno;
	if (rc == 0)
		rc = backing_pwrite_full(rfd, rec, rlen, 0);
out:
	if (rfd >= 0)
		close(rfd);
	close(fd);
	keyring_filekeys_free(ofk);
	keyring_filekeys_free(nfk);
	free(blk);
	free(pt);
	free(rec);
	return rc;
}

static off_t record_size(const char *name)
{
	struct stat st;

	return fstatat(jfd, name, &st, 0) == 0 ? st.st_size : -1;
}

int main(void)
{
	static uint8_t big[BIG], small[20][700];
	char top_path[PATH_MAX], name[32];
	struct header h0, h1;
	struct reseal_slot slot;
	struct reseal_batch b;
	struct stat st0, st1;
	unsigned done = 0;
	int top = -1;

	t_fill(big, sizeof(big), 5);
	if (aead_global_init() < 0 || tvol_mem_make(&vo, BS, 21) < 0 ||
	    tvol_tmpdir("test_reseal", top_path, sizeof(top_path)) < 0) {
		fprintf(stderr, "setup failed\n");
		return 1;
	}
	top = open(top_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	root = top;
	jfd = journal_open(root, true);
	CHECK(jfd >= 0, "journal dir: %d", jfd);
	CHECK_RC(tvol_write(vo.kr, root, "big", big, sizeof(big)), 0);
	CHECK_RC(tvol_write(vo.kr, root, "empty", big, 0), 0);
	CHECK_RC(reseal_slot_open(&slot, jfd, "t"), 0);

	/* 1. Alone: several chunks, and an empty file. */
	CHECK_RC(hdr_of("big", &h0), 0);
	CHECK(fstatat(root, "big", &st0, 0) == 0, "stat");
	CHECK_RC(reseal_one("big", &slot), 1);
	CHECK_RC(hdr_of("big", &h1), 0);
	CHECK(fstatat(root, "big", &st1, 0) == 0, "stat");
	CHECK(memcmp(h0.file_id, h1.file_id, FILE_ID_LEN) == 0, "file id kept");
	CHECK(memcmp(h0.wrap_inner, h1.wrap_inner, AEAD_WRAP_LEN) != 0 &&
		      memcmp(h0.wrap_outer, h1.wrap_outer, AEAD_WRAP_LEN) != 0,
	      "new DEKs");
	CHECK(st0.st_ino == st1.st_ino, "same inode");
	CHECK(st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
		      st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec,
	      "mtime kept");
	CHECK(reads("big", big, sizeof(big)), "big reads back");
	CHECK(record_size("reseal.t") == 0, "record emptied after the file");
	CHECK_RC(reseal_one("empty", &slot), 1);
	CHECK(reads("empty", big, 0), "empty reads back");

	/* 2. A batch of small files (and a big one among them, alone). */
	for (int i = 0; i < 20; i++) {
		t_fill(small[i], sizeof(small[i]), (uint32_t)(100 + i));
		snprintf(name, sizeof(name), "s%d", i);
		CHECK_RC(tvol_write(vo.kr, root, name, small[i],
				    (size_t)(i * 35)), 0);
	}
	CHECK_RC(reseal_batch_init(&b, &slot), 0);
	for (int i = 0; i < 20; i++) {
		struct owned *o = malloc(sizeof(*o));

		snprintf(name, sizeof(name), "s%d", i);
		o->fd = openat(root, name, O_RDWR);
		cfile_init(&o->cf, vo.kr, BS, o->fd);
		CHECK_RC(reseal_batch_add(&b, &o->cf, o->fd, true, release, o),
			 1);
		if (i == 10) {
			o = malloc(sizeof(*o));
			o->fd = openat(root, "big", O_RDWR);
			cfile_init(&o->cf, vo.kr, BS, o->fd);
			CHECK_RC(reseal_batch_add(&b, &o->cf, o->fd, true,
						  release, o), 1);
		}
	}
	CHECK_RC(reseal_batch_flush(&b), 0);
	CHECK(b.files == 20, "20 small files written in batches, got %llu",
	      (unsigned long long)b.files);
	reseal_batch_destroy(&b);
	for (int i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "s%d", i);
		CHECK(reads(name, small[i], (size_t)(i * 35)), "%s reads", name);
	}
	CHECK(reads("big", big, sizeof(big)), "big reads back after a batch");

	/* 3. Cut short, finished by recovery. The chunk in the record is
	 * the second one; blocks before `done` are new, `torn` is garbage. */
	{
		uint64_t per = RESEAL_CHUNK_BYTES / BS;
		struct {
			uint64_t done, torn;
			bool new_hdr;
			const char *what;
		} cases[] = {
			{ 0, UINT64_MAX, false, "record only" },
			{ per + 5, per + 5, false, "a block torn mid chunk" },
			{ 2 * per, UINT64_MAX, false, "two chunks done" },
			{ 2 * per, per + 7, true, "header new, chunk torn" },
			{ 3 * per + 1, UINT64_MAX, true, "all new but record" },
		};

		for (size_t i = 0; i < CMK_ARRAY_LEN(cases); i++) {
			CHECK_RC(cut_short("big", per, per, cases[i].done,
					   cases[i].torn, cases[i].new_hdr),
				 0);
			if (cases[i].torn != UINT64_MAX)
				CHECK(!reads("big", big, sizeof(big)),
				      "%s: torn before recovery", cases[i].what);
			done = 0;
			CHECK_RC(journal_recover(root, jfd, vo.kr, BS, &done),
				 0);
			CHECK(done == 1, "%s: completed %u", cases[i].what,
			      done);
			CHECK(reads("big", big, sizeof(big)),
			      "%s: reads back after recovery", cases[i].what);
			CHECK(record_size("reseal.test") == 0,
			      "%s: record emptied", cases[i].what);
		}
	}

	/* 4. A stale record (the file was re-sealed again since) changes
	 * nothing and is dropped. */
	CHECK_RC(cut_short("big", 0, 1, 0, UINT64_MAX, false), 0);
	CHECK_RC(reseal_one("big", &slot), 1);
	CHECK_RC(hdr_of("big", &h0), 0);
	done = 0;
	CHECK_RC(journal_recover(root, jfd, vo.kr, BS, &done), 0);
	CHECK(done == 0, "a stale record completes nothing (%u)", done);
	CHECK_RC(hdr_of("big", &h1), 0);
	CHECK(memcmp(&h0, &h1, sizeof(h0)) == 0, "header untouched");
	CHECK(reads("big", big, sizeof(big)), "reads back");
	CHECK(record_size("reseal.test") == 0, "stale record emptied");

	reseal_slot_close(&slot, true);
	close(jfd);
	close(top);
	tvol_rmtree(top_path);
	tvol_mem_free(&vo);
	return t_done("test_reseal");
}
