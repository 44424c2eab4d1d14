/* include/cmkfs/trec.h — truncate record bytes <-> struct (doc/FORMAT.md
 * §3.1). A record holds the re-sealed new last block of a shrink, written
 * before the cut so that a crash between the cut and the write can be
 * completed. Version 1 ("CMKFSTR1") is what format-1 and format-2 volumes
 * write; version 2 ("CMKFSTR2") adds the file id and the backing lengths
 * the record was written for, so that it applies only to that state.
 * Pure functions: no I/O, no keys, no logging. */
#ifndef CMKFS_TREC_H
#define CMKFS_TREC_H

#include <stddef.h>
#include <stdint.h>

#include "cmkfs/common.h"
#include "cmkfs/header.h"		/* FILE_ID_LEN, HEADER_LEN */

#define TREC_MAGIC_V1 "CMKFSTR1"
#define TREC_MAGIC_V2 "CMKFSTR2"
#define TREC_MAGIC_LEN 8
/* magic ‖ b */
#define TREC_V1_HDR (TREC_MAGIC_LEN + 8)
/* magic ‖ file id ‖ L_cut ‖ L_new ‖ b */
#define TREC_V2_HDR (TREC_MAGIC_LEN + FILE_ID_LEN + 3 * 8)
#define TREC_HDR_MAX TREC_V2_HDR

struct trec {
	unsigned version;		/* 1 or 2 */
	uint8_t file_id[FILE_ID_LEN];	/* version 2; zeros in version 1 */
	/* Backing length after the cut (HEADER_LEN + b·cb) and once the
	 * block is written (L_cut + blk_len). Version 2 stores both (they
	 * must agree with b and the block's length); version 1 gets them
	 * computed. */
	uint64_t l_cut, l_new;
	uint64_t blockno;		/* b: the new last block */
	const uint8_t *blk;		/* the sealed block, inside buf */
	size_t blk_len;			/* BLOCK_OVERHEAD .. bs + BLOCK_OVERHEAD */
};

/* Parse the len bytes of a record of a volume with block size bs
 * (512 .. 1 MiB). Refused: an unknown magic, a block shorter than its
 * overhead or longer than a full block, a block number whose offset
 * does not fit an off_t and, in version 2, lengths that disagree with b
 * and the block, or an empty block other than block 0 (a size no shrink
 * makes). out->blk points into buf. Errors: -EBADMSG; out untouched. */
CMK_MUST_CHECK int trec_parse(const uint8_t *buf, size_t len, uint32_t bs,
			      struct trec *out);

/* The header of a record (version 1 or 2) for block b of file_id whose
 * sealed form is blk_len bytes, into out (TREC_HDR_MAX bytes at least);
 * the sealed block follows it. Returns the header's length, or -EFBIG
 * (b's offset does not fit an off_t) / -EINVAL (version, lengths). */
CMK_MUST_CHECK int trec_header(unsigned version,
			       const uint8_t file_id[static FILE_ID_LEN],
			       uint64_t b, size_t blk_len, uint32_t bs,
			       uint8_t out[static TREC_HDR_MAX]);

#endif
