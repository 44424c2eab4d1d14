/* src/util/rdwr.c — bounded big-endian reader/writer. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/rdwr.h"

int rd_ptr(struct rd *r, const uint8_t **p, size_t n)
{
	if (rd_left(r) < n)
		return -EBADMSG;
	*p = r->buf + r->pos;
	r->pos += n;
	return 0;
}

int rd_bytes(struct rd *r, void *out, size_t n)
{
	const uint8_t *p;

	if (rd_ptr(r, &p, n) < 0)
		return -EBADMSG;
	if (n > 0)
		memcpy(out, p, n);
	return 0;
}

static int rd_be(struct rd *r, size_t n, uint64_t *v)
{
	const uint8_t *p;
	uint64_t x = 0;

	if (rd_ptr(r, &p, n) < 0)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		x = (x << 8) | p[i];
	*v = x;
	return 0;
}

int rd_u8(struct rd *r, uint8_t *v)
{
	uint64_t x;
	int rc = rd_be(r, 1, &x);

	if (rc == 0)
		*v = (uint8_t)x;
	return rc;
}

int rd_u16(struct rd *r, uint16_t *v)
{
	uint64_t x;
	int rc = rd_be(r, 2, &x);

	if (rc == 0)
		*v = (uint16_t)x;
	return rc;
}

int rd_u32(struct rd *r, uint32_t *v)
{
	uint64_t x;
	int rc = rd_be(r, 4, &x);

	if (rc == 0)
		*v = (uint32_t)x;
	return rc;
}

int rd_u64(struct rd *r, uint64_t *v)
{
	return rd_be(r, 8, v);
}

int wr_bytes(struct wr *w, const void *in, size_t n)
{
	if (w->len - w->pos < n)
		return -ENOSPC;
	if (n > 0)
		memcpy(w->buf + w->pos, in, n);
	w->pos += n;
	return 0;
}

static int wr_be(struct wr *w, size_t n, uint64_t v)
{
	uint8_t tmp[8];

	for (size_t i = 0; i < n; i++)
		tmp[n - 1 - i] = (uint8_t)(v >> (8 * i));
	return wr_bytes(w, tmp, n);
}

int wr_u8(struct wr *w, uint8_t v)
{
	return wr_be(w, 1, v);
}

int wr_u16(struct wr *w, uint16_t v)
{
	return wr_be(w, 2, v);
}

int wr_u32(struct wr *w, uint32_t v)
{
	return wr_be(w, 4, v);
}

int wr_u64(struct wr *w, uint64_t v)
{
	return wr_be(w, 8, v);
}
