/* src/format/trec.c — truncate record bytes <-> struct (trec.h,
 * doc/FORMAT.md §3.1). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "cmkfs/block.h"
#include "cmkfs/rdwr.h"
#include "cmkfs/trec.h"

/* HEADER_LEN + b·cb and that plus blk_len, both within an off_t. */
static int lengths(uint64_t b, size_t blk_len, uint32_t bs, uint64_t *l_cut,
		   uint64_t *l_new)
{
	uint64_t cb = (uint64_t)bs + BLOCK_OVERHEAD;

	if (__builtin_mul_overflow(b, cb, l_cut) ||
	    __builtin_add_overflow(*l_cut, HEADER_LEN, l_cut) ||
	    __builtin_add_overflow(*l_cut, blk_len, l_new) ||
	    *l_new > INT64_MAX)
		return -EFBIG;
	return 0;
}

static bool blk_len_ok(size_t blk_len, uint32_t bs)
{
	return blk_len >= BLOCK_OVERHEAD &&
	       blk_len - BLOCK_OVERHEAD <= (size_t)bs;
}

int trec_parse(const uint8_t *buf, size_t len, uint32_t bs, struct trec *out)
{
	struct rd r = rd_init(buf, len);
	uint8_t magic[TREC_MAGIC_LEN];
	uint64_t l_cut, l_new;
	struct trec t;

	memset(&t, 0, sizeof(t));
	if (bs == 0 || rd_bytes(&r, magic, sizeof(magic)) < 0)
		return -EBADMSG;
	if (memcmp(magic, TREC_MAGIC_V1, TREC_MAGIC_LEN) == 0) {
		t.version = 1;
		if (rd_u64(&r, &t.blockno) < 0)
			return -EBADMSG;
	} else if (memcmp(magic, TREC_MAGIC_V2, TREC_MAGIC_LEN) == 0) {
		t.version = 2;
		if (rd_bytes(&r, t.file_id, sizeof(t.file_id)) < 0 ||
		    rd_u64(&r, &t.l_cut) < 0 || rd_u64(&r, &t.l_new) < 0 ||
		    rd_u64(&r, &t.blockno) < 0)
			return -EBADMSG;
	} else {
		return -EBADMSG;
	}
	t.blk_len = rd_left(&r);
	if (!blk_len_ok(t.blk_len, bs) ||
	    rd_ptr(&r, &t.blk, t.blk_len) < 0 ||
	    lengths(t.blockno, t.blk_len, bs, &l_cut, &l_new) < 0)
		return -EBADMSG;
	if (t.version == 2 &&
	    (t.l_cut != l_cut || t.l_new != l_new ||
	     (t.blk_len == BLOCK_OVERHEAD && t.blockno != 0)))
		return -EBADMSG;
	t.l_cut = l_cut;
	t.l_new = l_new;
	*out = t;
	return 0;
}

int trec_header(unsigned version, const uint8_t file_id[static FILE_ID_LEN],
		uint64_t b, size_t blk_len, uint32_t bs,
		uint8_t out[static TREC_HDR_MAX])
{
	struct wr w = wr_init(out, TREC_HDR_MAX);
	uint64_t l_cut, l_new;
	int rc;

	if ((version != 1 && version != 2) || bs == 0 ||
	    !blk_len_ok(blk_len, bs))
		return -EINVAL;
	rc = lengths(b, blk_len, bs, &l_cut, &l_new);
	if (rc < 0)
		return rc;
	if (version == 1) {
		if (wr_bytes(&w, TREC_MAGIC_V1, TREC_MAGIC_LEN) < 0 ||
		    wr_u64(&w, b) < 0)
			return -EINVAL;
		return TREC_V1_HDR;
	}
	if (wr_bytes(&w, TREC_MAGIC_V2, TREC_MAGIC_LEN) < 0 ||
	    wr_bytes(&w, file_id, FILE_ID_LEN) < 0 || wr_u64(&w, l_cut) < 0 ||
	    wr_u64(&w, l_new) < 0 || wr_u64(&w, b) < 0)
		return -EINVAL;
	return TREC_V2_HDR;
}
