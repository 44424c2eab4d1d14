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
	    rd_u16(&r, &version) < 0 ||
	    (version != HEADER_VERSION && version != HEADER_VERSION_3) ||
	    rd_u16(&r, &h.seal_units) < 0 ||
	    rd_u32(&r, &h.kek_gen) < 0 ||
	    rd_bytes(&r, h.file_id, sizeof(h.file_id)) < 0)
		return -EBADMSG;
	h.version = version;
	if (version == HEADER_VERSION) {
		if (rd_bytes(&r, h.wrap_inner, AEAD_WRAP_LEN) < 0 ||
		    rd_bytes(&r, h.wrap_outer, AEAD_WRAP_LEN) < 0)
			return -EBADMSG;
	} else if (rd_u64(&r, &h.birth_ns) < 0 ||
		   rd_bytes(&r, h.slot[0], HEADER_SLOT_LEN) < 0 ||
		   rd_bytes(&r, h.slot[1], HEADER_SLOT_LEN) < 0 ||
		   rd_bytes(&r, h.wrap_inner, HEADER_WRAP3_LEN) < 0 ||
		   rd_bytes(&r, h.wrap_outer, HEADER_WRAP3_LEN) < 0) {
		return -EBADMSG;
	}
	if (rd_left(&r) != 0)
		return -EBADMSG;
	*out = h;
	return 0;
}

void header_serialize(const struct header *h, uint8_t buf[static HEADER_LEN])
{
	struct wr w = wr_init(buf, HEADER_LEN);

	bool v3 = h->version == HEADER_VERSION_3;
	size_t wl = v3 ? HEADER_WRAP3_LEN : AEAD_WRAP_LEN;

	/* Cannot fail: the buffer has exactly HEADER_LEN bytes. */
	if (wr_u32(&w, HEADER_MAGIC) < 0 ||
	    wr_u16(&w, v3 ? HEADER_VERSION_3 : HEADER_VERSION) < 0 ||
	    wr_u16(&w, h->seal_units) < 0 || wr_u32(&w, h->kek_gen) < 0 ||
	    wr_bytes(&w, h->file_id, sizeof(h->file_id)) < 0 ||
	    (v3 && (wr_u64(&w, h->birth_ns) < 0 ||
		    wr_bytes(&w, h->slot[0], HEADER_SLOT_LEN) < 0 ||
		    wr_bytes(&w, h->slot[1], HEADER_SLOT_LEN) < 0)) ||
	    wr_bytes(&w, h->wrap_inner, wl) < 0 ||
	    wr_bytes(&w, h->wrap_outer, wl) < 0)
		memset(buf, 0, HEADER_LEN);
}

size_t header_aad(const struct header *h, enum layer layer,
		  uint8_t aad[static HEADER_AAD_LEN])
{
	size_t n = h->version == HEADER_VERSION_3 ? HEADER_PREFIX3_LEN :
						    HEADER_PREFIX_LEN;
	uint8_t full[HEADER_LEN];

	header_serialize(h, full);
	memcpy(aad, full, n);
	aad[n] = (uint8_t)layer;
	return n + 1;
}

bool header_is_set(const struct header *h)
{
	static const uint8_t set[HEADER_SLOT_LEN] = {
		HEADER_SLOT_SET, HEADER_SLOT_SET, HEADER_SLOT_SET,
		HEADER_SLOT_SET, HEADER_SLOT_SET, HEADER_SLOT_SET,
		HEADER_SLOT_SET, HEADER_SLOT_SET };

	return h->version == HEADER_VERSION_3 &&
	       memcmp(h->slot[0], set, HEADER_SLOT_LEN) == 0;
}

bool header_slot_has(const struct header *h, const uint8_t *tok)
{
	static const uint8_t zero[HEADER_SLOT_LEN];

	if (h->version != HEADER_VERSION_3 || header_is_set(h) ||
	    memcmp(tok, zero, HEADER_SLOT_LEN) == 0)
		return false;
	return memcmp(h->slot[0], tok, HEADER_SLOT_LEN) == 0 ||
	       memcmp(h->slot[1], tok, HEADER_SLOT_LEN) == 0;
}
