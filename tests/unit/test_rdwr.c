/* tests/unit/test_rdwr.c — bounded reader/writer: values, bounds, no
 * cursor movement on failure. */
#include "config.h"

#include <errno.h>

#include "cmkfs/rdwr.h"
#include "../lib/tap.h"

int main(void)
{
	uint8_t buf[15], out[4];
	struct wr w = wr_init(buf, sizeof(buf));
	struct rd r;
	uint64_t v64;
	uint32_t v32;
	uint16_t v16;
	uint8_t v8;

	CHECK_RC(wr_u8(&w, 0x01), 0);
	CHECK_RC(wr_u16(&w, 0x0203), 0);
	CHECK_RC(wr_u32(&w, 0x04050607), 0);
	CHECK_RC(wr_u64(&w, 0x08090a0b0c0d0e0full), 0);
	CHECK(w.pos == 15, "pos %zu", w.pos);
	CHECK_RC(wr_u8(&w, 0xff), -ENOSPC);
	CHECK(w.pos == 15, "failed write moved the cursor");
	CHECK(t_eq_hex(buf, 15, "0102030405060708090a0b0c0d0e0f"), "bytes");

	r = rd_init(buf, sizeof(buf));
	CHECK_RC(rd_u8(&r, &v8), 0);
	CHECK(v8 == 1, "u8");
	CHECK_RC(rd_u16(&r, &v16), 0);
	CHECK(v16 == 0x0203, "u16");
	CHECK_RC(rd_u32(&r, &v32), 0);
	CHECK(v32 == 0x04050607, "u32");
	CHECK_RC(rd_u64(&r, &v64), 0);
	CHECK(v64 == 0x08090a0b0c0d0e0full, "u64");
	CHECK(rd_left(&r) == 0, "left");
	CHECK_RC(rd_u8(&r, &v8), -EBADMSG);

	r = rd_init(buf, 3);
	CHECK_RC(rd_bytes(&r, out, 4), -EBADMSG);
	CHECK(r.pos == 0, "failed read moved the cursor");
	CHECK_RC(rd_u32(&r, &v32), -EBADMSG);
	CHECK_RC(rd_bytes(&r, out, 3), 0);
	CHECK_RC(rd_bytes(&r, out, 0), 0);
	return t_done("test_rdwr");
}
