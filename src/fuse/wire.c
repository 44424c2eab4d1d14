/* src/fuse/wire.c — the FUSE wire shim (include/cmkfs/wire.h).
 * Struct layouts and flags are the kernel's (<linux/fuse.h>, protocol
 * 7.33 and later); libfuse 3.14 negotiates 7.36 with this kernel. */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include <linux/fuse.h>

#define FUSE_USE_VERSION 312	/* as cmkfs/ops.h */
#include <fuse_lowlevel.h>

#include "cmkfs/log.h"
#include "cmkfs/wire.h"

static _Atomic uint64_t init_unique;	/* an INIT that offered V2, or 0 */
static atomic_bool accepted;
static _Thread_local bool kill_flag;

/* The 32-bit field `member` of a request argument (alen bytes) of type
 * struct `ty`, or 0 if the argument is shorter than that type. */
#define FIELD(arg, alen, ty, member)                                         \
	field(arg, alen, sizeof(struct ty), offsetof(struct ty, member))

static uint32_t field(const uint8_t *arg, size_t alen, size_t need,
		      size_t off)
{
	uint32_t v = 0;

	if (alen >= need)
		memcpy(&v, arg + off, sizeof(v));
	return v;
}

void wire_note_request(const void *buf, size_t n)
{
	const struct fuse_in_header *ih = buf;
	const uint8_t *arg = (const uint8_t *)buf + sizeof(*ih);
	size_t alen;
	uint32_t valid;

	kill_flag = false;
	if (n < sizeof(*ih))
		return;
	alen = n - sizeof(*ih);
	if (ih->opcode == FUSE_INIT) {
		/* major, minor, max_readahead, flags: all versions */
		size_t need = offsetof(struct fuse_init_in, flags2);
#define INIT_FIELD(m) \
	field(arg, alen, need, offsetof(struct fuse_init_in, m))

		if (INIT_FIELD(major) == 7 && INIT_FIELD(minor) >= 33 &&
		    (INIT_FIELD(flags) & FUSE_HANDLE_KILLPRIV_V2))
			atomic_store(&init_unique, ih->unique);
#undef INIT_FIELD
		return;
	}
	if (!atomic_load(&accepted))
		return;
	switch (ih->opcode) {
	case FUSE_WRITE:
		kill_flag = FIELD(arg, alen, fuse_write_in, write_flags) &
			    FUSE_WRITE_KILL_SUIDGID;
		return;
	case FUSE_OPEN:
		kill_flag = FIELD(arg, alen, fuse_open_in, open_flags) &
			    FUSE_OPEN_KILL_SUIDGID;
		return;
	case FUSE_CREATE:
		kill_flag = FIELD(arg, alen, fuse_create_in, open_flags) &
			    FUSE_OPEN_KILL_SUIDGID;
		return;
	case FUSE_SETATTR:
		if (alen < sizeof(struct fuse_setattr_in))
			return;	/* a cut one is not an empty one */
		valid = FIELD(arg, alen, fuse_setattr_in, valid);
		/* A truncate says so; a fallocate's (or any) removal of
		 * privileges arrives empty: the kernel strips the mode change
		 * it would have sent and sends the rest, nothing. */
		kill_flag = (valid & FATTR_KILL_SUIDGID) != 0 ||
			    (valid & ~(uint32_t)(FATTR_FH | FATTR_LOCKOWNER)) == 0;
		return;
	default:
		return;
	}
}

void wire_patch_reply(struct iovec *iov, int count)
{
	struct fuse_out_header oh;
	struct fuse_init_out *out;
	uint64_t want = atomic_load(&init_unique);

	if (want == 0 || count < 2 || iov[0].iov_len < sizeof(oh))
		return;
	memcpy(&oh, iov[0].iov_base, sizeof(oh));
	if (oh.unique != want)
		return;
	atomic_store(&init_unique, 0);
	/* flags is at the same place in every version of fuse_init_out */
	if (oh.error != 0 ||
	    iov[1].iov_len < offsetof(struct fuse_init_out, max_background))
		return;
	out = iov[1].iov_base;
	out->flags |= FUSE_HANDLE_KILLPRIV_V2;
	atomic_store(&accepted, true);
}

static ssize_t w_read(int fd, void *buf, size_t len, void *ud)
{
	ssize_t n = read(fd, buf, len);

	(void)ud;
	if (n > 0)
		wire_note_request(buf, (size_t)n);
	return n;
}

static ssize_t w_writev(int fd, struct iovec *iov, int count, void *ud)
{
	(void)ud;
	wire_patch_reply(iov, count);
	return writev(fd, iov, count);
}

int wire_attach(struct fuse_session *se)
{
	static const struct fuse_custom_io io = {
		.read = w_read,
		.writev = w_writev,
	};

	if (fuse_session_custom_io(se, &io, fuse_session_fd(se)) != 0) {
		log_warn("cannot attach to the FUSE channel: the kernel will "
			 "ask for security.capability before every write");
		return -1;
	}
	return 0;
}

bool wire_killpriv_v2(void)
{
	return atomic_load(&accepted);
}

bool wire_kill_suidgid(void)
{
	return kill_flag;
}
