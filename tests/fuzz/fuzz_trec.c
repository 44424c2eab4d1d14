/* tests/fuzz/fuzz_trec.c — truncate records (doc/FORMAT.md §3.1) are read
 * back from the cipher directory after a crash, so whoever can write it
 * controls them. Two properties:
 * - trec_parse() on raw bytes: no crash, and what it accepts is
 *   consistent (block inside the input, lengths that agree with the block
 *   number) and serialises back to the same header bytes;
 * - recovery: byte 0 picks the record's shape (raw bytes, or a genuine
 *   record's header followed by hostile bytes, or the genuine record with
 *   one byte replaced) and the file's state (whole; cut as a crash leaves
 *   it; cut with part of the block written; grown since and its tail
 *   flipped). Whatever the record says, the file afterwards is either
 *   byte for byte what it was, or reads back exactly the shrink's
 *   plaintext — and the latter only from a crash's state. Never a cut
 *   to anything else. The volume is format 3 (records CMKFSTR2). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/block.h"
#include "cmkfs/cfile.h"
#include "cmkfs/trec.h"
#include "../lib/tvol.h"
#include "fuzz.h"

#define BS 1024u
#define CB (BS + BLOCK_OVERHEAD)
#define OLD_LEN (3 * BS + 100)		/* 4 blocks */
#define NEW_LEN (BS + 50)		/* the shrink re-seals block 1 */
#define FILE_MAX (HEADER_LEN + 8 * CB)
#define REC_MAX (TREC_HDR_MAX + CB + 64)

static struct tvol_mem vol;
static char top[4096];
static int dfd = -1, jfd = -1;
static uint8_t plain[OLD_LEN];
static uint8_t whole[FILE_MAX];		/* the file shrunk to NEW_LEN */
static size_t whole_len;
static uint8_t rec[REC_MAX];		/* the shrink's genuine record */
static size_t rec_len;
static char jname[JOURNAL_NAME_LEN + 1];

static void cleanup(void)
{
	fuzz_ignore(tvol_rmtree(top));
}

static size_t slurp(int at, const char *name, uint8_t *buf, size_t cap)
{
	int fd = openat(at, name, O_RDONLY);
	ssize_t n;

	FUZZ_ASSERT(fd >= 0);
	n = read(fd, buf, cap);
	close(fd);
	FUZZ_ASSERT(n > 0 && (size_t)n < cap);
	return (size_t)n;
}

/* A file of OLD_LEN bytes shrunk to NEW_LEN, its record caught through a
 * second link (a completed shrink removes its name). */
static void setup(void)
{
	struct header h;
	struct cfile cf;
	int fd;

	if (tvol_tmpdir("fuzz-trec", top, sizeof(top)) < 0 ||
	    tvol_mem_make(&vol, BS, 9) < 0)
		abort();
	atexit(cleanup);
	dfd = open(top, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || mkdirat(dfd, "j", 0700) < 0)
		abort();
	jfd = openat(dfd, "j", O_RDONLY | O_DIRECTORY);
	fuzz_key(plain, sizeof(plain), 5);
	/* made as "f", the name each round rewrites: format 3 binds a
	 * header to its name */
	if (jfd < 0 || tvol_write(vol.kr, dfd, "f", plain, OLD_LEN) < 0)
		abort();
	fd = openat(dfd, "f", O_RDWR);
	if (fd < 0 || cfile_read_header(fd, &h) < 0)
		abort();
	cfile_journal_name(h.file_id, jname);
	close(openat(jfd, jname, O_WRONLY | O_CREAT, 0600));
	if (linkat(jfd, jname, dfd, "rec", 0) < 0)
		abort();
	cfile_init(&cf, vol.kr, BS, fd);
	cf.jfd = jfd;
	if (cfile_load(&cf, fd) < 0 || cfile_truncate(&cf, fd, NEW_LEN) < 0)
		abort();
	cfile_destroy(&cf);
	close(fd);
	rec_len = slurp(dfd, "rec", rec, sizeof(rec));
	whole_len = slurp(dfd, "f", whole, sizeof(whole));
	FUZZ_ASSERT(memcmp(rec, TREC_MAGIC_V2, TREC_MAGIC_LEN) == 0);
}

static void parse_props(const uint8_t *data, size_t size)
{
	uint8_t hdr[TREC_HDR_MAX];
	struct trec t;
	int hl;

	if (trec_parse(data, size, BS, &t) < 0)
		return;
	FUZZ_ASSERT(t.version == 1 || t.version == 2);
	FUZZ_ASSERT(t.blk >= data && t.blk + t.blk_len == data + size);
	FUZZ_ASSERT(t.blk_len >= BLOCK_OVERHEAD && t.blk_len <= CB);
	FUZZ_ASSERT(t.l_cut == HEADER_LEN + t.blockno * CB &&
		    t.l_new == t.l_cut + t.blk_len);
	hl = trec_header(t.version, t.file_id, t.blockno, t.blk_len, BS, hdr);
	FUZZ_ASSERT(hl > 0 && (size_t)hl == (size_t)(t.blk - data) &&
		    memcmp(hdr, data, (size_t)hl) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t r[REC_MAX + 1024], file[FILE_MAX], after[FILE_MAX],
		back[OLD_LEN];
	size_t len = 0, flen, alen, got = 0;
	unsigned shape, state;
	struct cfile cf;
	int fd, rc;

	if (dfd < 0)
		setup();
	parse_props(data, size);
	if (size < 1 || size > sizeof(r) - TREC_HDR_MAX)
		return 0;
	shape = data[0] & 3;
	state = (data[0] >> 2) & 3;
	if (shape == 0) {		/* raw */
		memcpy(r, data + 1, size - 1);
		len = size - 1;
	} else if (shape == 1) {	/* a genuine header, hostile rest */
		memcpy(r, rec, TREC_V2_HDR);
		memcpy(r + TREC_V2_HDR, data + 1, size - 1);
		len = TREC_V2_HDR + size - 1;
	} else {			/* the genuine record, one byte set */
		memcpy(r, rec, rec_len);
		len = rec_len;
		if (shape == 3 && size >= 4)
			r[(data[1] << 8 | data[2]) % rec_len] = data[3];
	}
	/* the file: whole; cut before block 1; cut with part of block 1
	 * written; grown back to OLD_LEN with its last byte flipped */
	memcpy(file, whole, whole_len);
	flen = whole_len;
	if (state == 1 || state == 2)
		flen = HEADER_LEN + CB + (state == 2 ? 20 : 0);
	if (state == 3) {
		fd = openat(dfd, "g", O_RDWR | O_CREAT | O_TRUNC, 0600);
		FUZZ_ASSERT(fd >= 0 &&
			    backing_pwrite_full(fd, whole, whole_len, 0) == 0);
		/* a scratch copy of f's bytes: no name to check (-1) */
		cfile_init(&cf, vol.kr, BS, -1);
		FUZZ_ASSERT(cfile_load(&cf, fd) == 0 &&
			    cfile_write(&cf, fd, NEW_LEN, plain + NEW_LEN,
					OLD_LEN - NEW_LEN, false, &(uint64_t){ 0 }) == 0);
		cfile_destroy(&cf);
		close(fd);
		flen = slurp(dfd, "g", file, sizeof(file));
		file[flen - 1] ^= 0x40;
	}
	fd = openat(dfd, "f", O_RDWR | O_CREAT | O_TRUNC, 0600);
	FUZZ_ASSERT(fd >= 0 && backing_pwrite_full(fd, file, flen, 0) == 0);
	/* (no fsync: thousands of runs) */
	{
		int rfd = openat(jfd, jname, O_WRONLY | O_CREAT | O_TRUNC,
				 0600);

		FUZZ_ASSERT(rfd >= 0 && (len == 0 ||
					 backing_pwrite_full(rfd, r, len, 0) == 0));
		close(rfd);
	}
	for (int dry = 1; dry >= 0; dry--) {
		const char *why = NULL;

		cfile_init(&cf, vol.kr, BS, fd);
		rc = cfile_load(&cf, fd);
		if (rc == 0)
			rc = cfile_resolve_truncate(&cf, fd, jfd, dry, &why);
		/* refused records say why; nothing else does */
		FUZZ_ASSERT((rc == -EBADMSG) == (why != NULL));
		cfile_destroy(&cf);
	}
	alen = (size_t)pread(fd, after, sizeof(after), 0);
	if (alen != flen || memcmp(after, file, flen) != 0) {
		/* changed: only a crash's state, only to the shrink's bytes */
		FUZZ_ASSERT(state == 1 || state == 2);
		cfile_init(&cf, vol.kr, BS, fd);
		rc = cfile_load(&cf, fd);
		if (rc == 0)
			rc = cfile_read(&cf, fd, 0, sizeof(back), back, &got);
		FUZZ_ASSERT(rc == 0 && got == NEW_LEN &&
			    memcmp(back, plain, NEW_LEN) == 0);
		cfile_destroy(&cf);
	}
	close(fd);
	return 0;
}
