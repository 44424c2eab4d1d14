/* tests/fuzz/fuzz_reseal.c — reseal records (doc/FORMAT.md §3.2) are read
 * back from the cipher directory after a crash, so whoever can write it
 * controls them. Input byte 0 picks the record's shape: raw bytes, or the
 * file's real old and new headers followed by hostile chunk fields and
 * blocks. Whatever the record says, recovering it must not crash, and the
 * file must afterwards read back exactly its plaintext (a record can make
 * the reseal complete, or be refused or dropped — never change content). */
#include <fcntl.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/cfile.h"
#include "cmkfs/reseal.h"
#include "../lib/tvol.h"
#include "fuzz.h"

#define PLAIN_LEN (3 * 1024 + 100)	/* 4 blocks of 1 KiB */
#define BS 1024u

static struct tvol_mem vol;
static char top[4096];
static int dfd = -1, jfd = -1;
static uint8_t plain[PLAIN_LEN], orig[HEADER_LEN + 8 * (BS + BLOCK_OVERHEAD)];
static size_t orig_len;
static uint8_t heads[2 * HEADER_LEN];	/* a genuine old and new header */

static void cleanup(void)
{
	fuzz_ignore(tvol_rmtree(top));
}

static void setup(void)
{
	struct filekeys *ofk = NULL, *nfk = NULL;
	struct header oh, nh;
	int fd;

	if (tvol_tmpdir("fuzz-reseal", top, sizeof(top)) < 0 ||
	    tvol_mem_make(&vol, BS, 7) < 0)
		abort();
	atexit(cleanup);
	dfd = open(top, O_RDONLY | O_DIRECTORY);
	if (dfd < 0 || mkdirat(dfd, "j", 0700) < 0)
		abort();
	jfd = openat(dfd, "j", O_RDONLY | O_DIRECTORY);
	fuzz_key(plain, sizeof(plain), 3);
	/* made as "f", the name each round rewrites: format 3 binds a
	 * header to its name */
	if (jfd < 0 || tvol_write(vol.kr, dfd, "f", plain, sizeof(plain)) < 0)
		abort();
	fd = openat(dfd, "f", O_RDONLY);
	orig_len = (size_t)read(fd, orig, sizeof(orig));
	if (fd < 0 || cfile_read_header(fd, &oh) < 0 ||
	    keyring_refresh_file(vol.kr, &oh, &nh, &ofk, &nfk) < 0)
		abort();
	close(fd);
	header_serialize(&oh, heads);
	header_serialize(&nh, heads + HEADER_LEN);
	keyring_filekeys_free(ofk);
	keyring_filekeys_free(nfk);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t rec[4 * (BS + BLOCK_OVERHEAD) + 1024], back[PLAIN_LEN + 16];
	struct cfile cf;
	size_t len = 0, got = 0;
	int fd, rc;

	if (dfd < 0)
		setup();
	if (size < 1 || size > sizeof(rec) - 8 - sizeof(heads))
		return 0;
	if (data[0] & 1) {
		memcpy(rec, "CMKFSRS1", 8);
		memcpy(rec + 8, heads, sizeof(heads));
		/* byte 0 bit 1: swap old and new (a record naming the file's
		 * header as the new one) */
		if (data[0] & 2) {
			memcpy(rec + 8, heads + HEADER_LEN, HEADER_LEN);
			memcpy(rec + 8 + HEADER_LEN, heads, HEADER_LEN);
		}
		len = 8 + sizeof(heads);
	}
	memcpy(rec + len, data + 1, size - 1);
	len += size - 1;
	/* a fresh copy of the file and the record each time */
	fd = openat(dfd, "f", O_RDWR | O_CREAT | O_TRUNC, 0600);
	FUZZ_ASSERT(fd >= 0 && backing_pwrite_full(fd, orig, orig_len, 0) == 0);
	{
		int rfd = openat(jfd, "reseal.x", O_WRONLY | O_CREAT | O_TRUNC,
				 0600);

		FUZZ_ASSERT(rfd >= 0 && (len == 0 ||
					 backing_pwrite_full(rfd, rec, len, 0) == 0));
		close(rfd);
	}
	{
		uint8_t id[FILE_ID_LEN];

		fuzz_ignore(reseal_record_id(jfd, "reseal.x", id));
	}
	for (int dry = 1; dry >= 0; dry--) {
		cfile_init(&cf, vol.kr, BS, fd);
		rc = reseal_recover(&cf, fd, jfd, "reseal.x", dry);
		fuzz_ignore(rc);
		cfile_destroy(&cf);
	}
	/* Whatever happened, the content is what it was. */
	cfile_init(&cf, vol.kr, BS, fd);
	rc = cfile_load(&cf, fd);
	if (rc == 0)
		rc = cfile_read(&cf, fd, 0, sizeof(back), back, &got);
	FUZZ_ASSERT(rc == 0 && got == PLAIN_LEN &&
		    memcmp(back, plain, PLAIN_LEN) == 0);
	cfile_destroy(&cf);
	close(fd);
	return 0;
}
