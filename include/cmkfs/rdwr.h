/* include/cmkfs/rdwr.h — bounded big-endian reader and writer over (buf, len).
 * Every parser of on-disk bytes uses these, so no parser does its own index
 * arithmetic. A failed read or write leaves the cursor where it was and
 * returns -EBADMSG (reader) or -ENOSPC (writer). Pure, no allocation. */
#ifndef CMKFS_RDWR_H
#define CMKFS_RDWR_H

#include "cmkfs/common.h"

struct rd {
	const uint8_t *buf;
	size_t len;
	size_t pos;
};

struct wr {
	uint8_t *buf;
	size_t len;
	size_t pos;
};

static inline struct rd rd_init(const uint8_t *buf, size_t len)
{
	struct rd r = { buf, len, 0 };
	return r;
}

static inline struct wr wr_init(uint8_t *buf, size_t len)
{
	struct wr w = { buf, len, 0 };
	return w;
}

static inline size_t rd_left(const struct rd *r)
{
	return r->len - r->pos;
}

CMK_MUST_CHECK int rd_u8(struct rd *r, uint8_t *v);
CMK_MUST_CHECK int rd_u16(struct rd *r, uint16_t *v);
CMK_MUST_CHECK int rd_u32(struct rd *r, uint32_t *v);
CMK_MUST_CHECK int rd_u64(struct rd *r, uint64_t *v);
CMK_MUST_CHECK int rd_bytes(struct rd *r, void *out, size_t n);
/* Point *p at the next n bytes without copying. */
CMK_MUST_CHECK int rd_ptr(struct rd *r, const uint8_t **p, size_t n);

CMK_MUST_CHECK int wr_u8(struct wr *w, uint8_t v);
CMK_MUST_CHECK int wr_u16(struct wr *w, uint16_t v);
CMK_MUST_CHECK int wr_u32(struct wr *w, uint32_t v);
CMK_MUST_CHECK int wr_u64(struct wr *w, uint64_t v);
CMK_MUST_CHECK int wr_bytes(struct wr *w, const void *in, size_t n);

static inline void put_be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

#endif
