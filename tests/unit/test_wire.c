/* tests/unit/test_wire.c — the FUSE wire shim (include/cmkfs/wire.h):
 * FUSE_HANDLE_KILLPRIV_V2 goes into the INIT reply only when the kernel
 * offered it (protocol 7.33 or later) and only into that reply, never an
 * error; the kill flags of WRITE, SETATTR, OPEN and CREATE are read only
 * once it was accepted; a SETATTR that carries nothing but a file handle
 * (what the kernel leaves of a removal of privileges) asks for a kill;
 * short requests change nothing and are not read past their end. */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <linux/fuse.h>

#include "cmkfs/wire.h"
#include "../lib/tap.h"

/* A request of `alen` argument bytes in a buffer of exactly that size
 * (ASan catches a read past it). */
static void *req(uint32_t opcode, uint64_t unique, const void *arg,
		 size_t alen, size_t *n)
{
	struct fuse_in_header ih = { .opcode = opcode, .unique = unique };
	uint8_t *b;

	*n = sizeof(ih) + alen;
	ih.len = (uint32_t)*n;
	b = malloc(*n);
	memcpy(b, &ih, sizeof(ih));
	memcpy(b + sizeof(ih), arg, alen);
	return b;
}

static void note(uint32_t opcode, uint64_t unique, const void *arg,
		 size_t alen)
{
	size_t n;
	void *b = req(opcode, unique, arg, alen, &n);

	wire_note_request(b, n);
	free(b);
}

/* Send the INIT reply for `unique` through the shim; the flags it ends
 * with. */
static uint32_t reply_init(uint64_t unique, int32_t error)
{
	struct fuse_out_header oh = { .unique = unique, .error = error };
	struct fuse_init_out out = { .major = 7, .minor = 36, .flags = 1 };
	struct iovec iov[2] = { { &oh, sizeof(oh) }, { &out, sizeof(out) } };

	oh.len = (uint32_t)(sizeof(oh) + sizeof(out));
	wire_patch_reply(iov, 2);
	return out.flags;
}

static void init_req(uint64_t unique, uint32_t minor, uint32_t flags)
{
	struct fuse_init_in in = { .major = 7, .minor = minor,
				   .flags = flags };

	note(FUSE_INIT, unique, &in, sizeof(in));
}

int main(void)
{
	struct fuse_write_in w = { .write_flags = FUSE_WRITE_KILL_SUIDGID };
	struct fuse_setattr_in sa = { .valid = FATTR_FH };
	struct fuse_open_in op = { .flags = 01001,
				   .open_flags = FUSE_OPEN_KILL_SUIDGID };
	struct fuse_create_in cr = { .open_flags = FUSE_OPEN_KILL_SUIDGID };
	uint8_t tiny[4] = { 0 };

	/* Before any INIT: nothing is read, nothing patched. */
	note(FUSE_WRITE, 2, &w, sizeof(w));
	CHECK(!wire_kill_suidgid(), "kill flag read before V2 was accepted");
	CHECK(reply_init(2, 0) == 1, "a reply patched with no INIT seen");
	wire_note_request(tiny, sizeof(tiny));	/* shorter than a header */
	CHECK(!wire_killpriv_v2(), "accepted from nothing");

	/* An INIT that does not offer V2, or an old protocol: untouched. */
	init_req(10, 38, FUSE_HANDLE_KILLPRIV);
	CHECK(reply_init(10, 0) == 1, "V2 set though the kernel did not offer it");
	init_req(11, 32, FUSE_HANDLE_KILLPRIV_V2);
	CHECK(reply_init(11, 0) == 1, "V2 set for protocol 7.32");
	/* a cut INIT (only major and minor) */
	{
		struct fuse_init_in in = { .major = 7, .minor = 38,
					   .flags = FUSE_HANDLE_KILLPRIV_V2 };

		note(FUSE_INIT, 12, &in, 8);
		CHECK(reply_init(12, 0) == 1, "V2 set from a cut INIT");
	}
	CHECK(!wire_killpriv_v2(), "accepted without a patched reply");

	/* Offered, but the reply is an error, or for another request. */
	init_req(20, 38, FUSE_HANDLE_KILLPRIV_V2);
	CHECK(reply_init(21, 0) == 1, "another request's reply patched");
	CHECK(reply_init(20, -71) == 1, "an error reply patched");
	CHECK(!wire_killpriv_v2(), "accepted on an error reply");

	/* Offered and answered: the reply carries V2, and only that one. */
	init_req(30, 38, FUSE_HANDLE_KILLPRIV_V2);
	CHECK(reply_init(30, 0) == (1u | FUSE_HANDLE_KILLPRIV_V2),
	      "V2 not set in the INIT reply");
	CHECK(wire_killpriv_v2(), "not accepted");
	CHECK(reply_init(30, 0) == 1, "a later reply with the same unique patched");

	/* The kill flags, each request on its own. */
	note(FUSE_WRITE, 40, &w, sizeof(w));
	CHECK(wire_kill_suidgid(), "WRITE with FUSE_WRITE_KILL_SUIDGID");
	w.write_flags = FUSE_WRITE_CACHE;
	note(FUSE_WRITE, 41, &w, sizeof(w));
	CHECK(!wire_kill_suidgid(), "WRITE without the flag");
	w.write_flags = FUSE_WRITE_KILL_SUIDGID;
	note(FUSE_WRITE, 42, &w, sizeof(w) - 1);
	CHECK(!wire_kill_suidgid(), "a cut WRITE was read");

	note(FUSE_SETATTR, 50, &sa, sizeof(sa));
	CHECK(wire_kill_suidgid(), "SETATTR of nothing but the handle");
	note(FUSE_SETATTR, 54, &sa, sizeof(sa) - 1);
	CHECK(!wire_kill_suidgid(), "a cut SETATTR read as an empty one");
	note(FUSE_OPEN, 55, &op, sizeof(op) - 1);
	CHECK(!wire_kill_suidgid(), "a cut OPEN was read");
	sa.valid = FATTR_SIZE | FATTR_FH | FATTR_LOCKOWNER | FATTR_KILL_SUIDGID;
	note(FUSE_SETATTR, 51, &sa, sizeof(sa));
	CHECK(wire_kill_suidgid(), "SETATTR with FATTR_KILL_SUIDGID");
	sa.valid = FATTR_SIZE | FATTR_FH;
	note(FUSE_SETATTR, 52, &sa, sizeof(sa));
	CHECK(!wire_kill_suidgid(), "truncate by a privileged caller");
	sa.valid = FATTR_MODE;
	note(FUSE_SETATTR, 53, &sa, sizeof(sa));
	CHECK(!wire_kill_suidgid(), "chmod");

	note(FUSE_OPEN, 60, &op, sizeof(op));
	CHECK(wire_kill_suidgid(), "OPEN with FUSE_OPEN_KILL_SUIDGID");
	op.open_flags = 0;
	note(FUSE_OPEN, 61, &op, sizeof(op));
	CHECK(!wire_kill_suidgid(), "OPEN without the flag");
	note(FUSE_CREATE, 62, &cr, sizeof(cr));
	CHECK(wire_kill_suidgid(), "CREATE with FUSE_OPEN_KILL_SUIDGID");

	/* The flag belongs to one request: the next one clears it. */
	note(FUSE_GETATTR, 63, tiny, sizeof(tiny));
	CHECK(!wire_kill_suidgid(), "flag left over for the next request");
	return t_done("test_wire");
}
