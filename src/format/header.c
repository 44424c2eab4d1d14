/* src/format/header.c — file header bytes <-> struct (doc/FORMAT.md §2). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/header.h"
#include "cmkfs/rdwr.h"

int header_parse(const uint8_t *buf, size_t len, struct header *out)
{
	struct rd r = rd_init(buf, len);
	struct header h;
	uint32_t magic;
	uint16_t version;

	memset(&h, 0, sizeof(h));	/* padding too: callers compare */
	if (rd_u32(&r, &magic) < 0 || magic != HEADER_MAGIC ||
	    rd_u16(&r, &version) < 0 || version != HEADER_VERSION ||
	    rd_u16(&r, &h.seal_units) < 0 ||
	    rd_u32(&r, &h.kek_gen) < 0 ||
	    rd_bytes(&r, h.file_id, sizeof(h.file_id)) < 0 ||
	    rd_bytes(&r, h.wrap_inner, sizeof(h.wrap_inner)) < 0 ||
	    rd_bytes(&r, h.wrap_outer, sizeof(h.wrap_outer)) < 0 ||
	    rd_left(&r) != 0)
		return -EBADMSG;
	*out = h;
	return 0;
}

void header_serialize(const struct header *h, uint8_t buf[static HEADER_LEN])
{
	struct wr w = wr_init(buf, HEADER_LEN);

	/* Cannot fail: the buffer has exactly HEADER_LEN bytes. */
	if (wr_u32(&w, HEADER_MAGIC) < 0 || wr_u16(&w, HEADER_VERSION) < 0 ||
	    wr_u16(&w, h->seal_units) < 0 || wr_u32(&w, h->kek_gen) < 0 ||
	    wr_bytes(&w, h->file_id, sizeof(h->file_id)) < 0 ||
	    wr_bytes(&w, h->wrap_inner, sizeof(h->wrap_inner)) < 0 ||
	    wr_bytes(&w, h->wrap_outer, sizeof(h->wrap_outer)) < 0)
		memset(buf, 0, HEADER_LEN);
}

void header_aad(const struct header *h, enum layer layer,
		uint8_t aad[static HEADER_AAD_LEN])
{
	uint8_t full[HEADER_LEN];

	header_serialize(h, full);
	memcpy(aad, full, HEADER_PREFIX_LEN);
	aad[HEADER_PREFIX_LEN] = (uint8_t)layer;
}
