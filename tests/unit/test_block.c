/* tests/unit/test_block.c — two-layer block codec: known answers produced
 * by the independent reference tests/vectors/ref_format.py, and every way
 * of tampering with a block (STYLE.md §6 "tamper everything"). */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/block.h"
#include "../lib/tap.h"

static const char V_EMPTY[] =
	"16f1b1eed39bc54dfc9a0a226f92cbdaa0795c4d75193f07a4739a2de01d1140"
	"2d67db7c72bdf3d35dcdc2ba0dade831b3c8fd9183d24317";
static const char V_100[] =
	"16f1b1eed39bc54dfc9a0a226f92cbdaa0795c4d75193f07a4c9f1ebc6c1c1c7"
	"6f04dc62343e147bcce32ac13bce2fb14a5bbeddd8e8695656d9d6111e5487ad"
	"50ce6e626214d53d2f533a7ae9965e9a963f0642a16f537477a1f230b6f418fc"
	"70b41aa03da0f19517fa7de3aa8506097afb1979b68295391ead51279aedaa9f"
	"25467abfd2ee5b3b7a59f6796866743ea456fcd774f407de4c3b2f43";

struct fixture {
	uint8_t dek1[32], dek2[32], fid[16], fid2[16], nin[12], nout[12];
	struct block_ctx bc, swapped, other_file;
};

static void setup(struct fixture *f)
{
	t_fill(f->dek1, 32, 11);
	t_fill(f->dek2, 32, 12);
	t_fill(f->fid, 16, 13);
	t_fill(f->nin, 12, 14);
	t_fill(f->nout, 12, 15);
	t_fill(f->fid2, 16, 99);
	if (aead_new(f->dek1, &f->bc.inner) < 0 ||
	    aead_new(f->dek2, &f->bc.outer) < 0)
		return;
	f->bc.file_id = f->fid;
	f->swapped.inner = f->bc.outer;	/* layers' keys exchanged */
	f->swapped.outer = f->bc.inner;
	f->swapped.file_id = f->fid;
	f->other_file = f->bc;
	f->other_file.file_id = f->fid2;
}

int main(void)
{
	static struct fixture f;
	uint8_t pt[100], ct[100 + BLOCK_OVERHEAD], work[sizeof(ct)], out[100];
	struct block_ctx one_layer;

	setup(&f);
	CHECK(f.bc.inner && f.bc.outer, "contexts");
	CHECK(BLOCK_OVERHEAD == 56, "overhead");

	CHECK_RC(block_seal_nonces(&f.bc, 0, true, NULL, 0, f.nin, f.nout, ct),
		 0);
	CHECK(t_eq_hex(ct, BLOCK_OVERHEAD, V_EMPTY), "empty last block");
	CHECK_RC(block_open(&f.bc, 0, true, ct, BLOCK_OVERHEAD, out), 0);

	t_fill(pt, 100, 16);
	CHECK_RC(block_seal_nonces(&f.bc, 5, false, pt, 100, f.nin, f.nout, ct),
		 0);
	CHECK(t_eq_hex(ct, sizeof(ct), V_100), "block 5, 100 bytes");
	memcpy(work, ct, sizeof(ct));
	CHECK_RC(block_open(&f.bc, 5, false, work, sizeof(ct), out), 0);
	CHECK(memcmp(out, pt, 100) == 0, "open");

	/* Every bit of the block. */
	for (size_t i = 0; i < sizeof(ct) * 8; i++) {
		memcpy(work, ct, sizeof(ct));
		work[i / 8] ^= (uint8_t)(1 << (i % 8));
		CHECK_RC(block_open(&f.bc, 5, false, work, sizeof(ct), out),
			 -EBADMSG);
	}
	/* Wrong position, flag, file, key order; truncated; zeroed. */
	memcpy(work, ct, sizeof(ct));
	CHECK_RC(block_open(&f.bc, 4, false, work, sizeof(ct), out), -EBADMSG);
	memcpy(work, ct, sizeof(ct));
	CHECK_RC(block_open(&f.bc, 5, true, work, sizeof(ct), out), -EBADMSG);
	memcpy(work, ct, sizeof(ct));
	CHECK_RC(block_open(&f.other_file, 5, false, work, sizeof(ct), out),
		 -EBADMSG);
	memcpy(work, ct, sizeof(ct));
	CHECK_RC(block_open(&f.swapped, 5, false, work, sizeof(ct), out),
		 -EBADMSG);
	for (size_t n = 0; n < sizeof(ct); n++) {
		memcpy(work, ct, sizeof(ct));
		CHECK_RC(block_open(&f.bc, 5, false, work, n, out), -EBADMSG);
	}
	memset(work, 0, sizeof(work));
	CHECK_RC(block_open(&f.bc, 5, false, work, sizeof(ct), out), -EBADMSG);

	/* Both layers are needed: a block sealed with the outer layer keyed
	 * by the inner DEK does not open under the real outer DEK. */
	one_layer = f.bc;
	one_layer.outer = f.bc.inner;
	CHECK_RC(block_seal(&one_layer, 1, true, pt, 100, work), 0);
	CHECK_RC(block_open(&f.bc, 1, true, work, sizeof(ct), out), -EBADMSG);

	/* Fresh nonces: the same plaintext never seals the same twice. */
	CHECK_RC(block_seal(&f.bc, 5, false, pt, 100, ct), 0);
	CHECK_RC(block_seal(&f.bc, 5, false, pt, 100, work), 0);
	CHECK(memcmp(ct, work, sizeof(ct)) != 0, "nonce reuse");
	CHECK(memcmp(ct + 2 * AEAD_NONCE_LEN, pt, 16) != 0, "plaintext shows");

	aead_free(f.bc.inner);
	aead_free(f.bc.outer);
	return t_done("test_block");
}
