/* src/fuse/inval.c — kernel cache invalidation (include/cmkfs/inval.h). */
#include "config.h"

#include <errno.h>
#include <linux/fuse.h>
#include <stdint.h>
#include <string.h>
#include <sys/uio.h>

#define FUSE_USE_VERSION 312	/* as cmkfs/ops.h */
#include <fuse_lowlevel.h>

#include "cmkfs/inval.h"

void inval_inode(struct fuse_session *se, uint64_t nodeid)
{
	(void)fuse_lowlevel_notify_inval_inode(se, (fuse_ino_t)nodeid, 0, 0);
}

void inval_entry(struct fuse_session *se, uint64_t parent, const char *name)
{
	(void)fuse_lowlevel_notify_inval_entry(se, (fuse_ino_t)parent, name,
					       strlen(name));
}

/* FUSE_NOTIFY_PRUNE (Linux 6.16, protocol 7.45; not in libfuse 3.14):
 * include/uapi/linux/fuse.h. */
#define CMK_FUSE_NOTIFY_PRUNE 9
struct cmk_notify_prune_out {
	uint32_t count;
	uint32_t padding;
	uint64_t spare;
};

int inval_prune(struct fuse_session *se, const uint64_t *nodeids, size_t n)
{
	struct cmk_notify_prune_out arg = { .count = (uint32_t)n };
	struct fuse_out_header out = { 0 };
	struct iovec iov[3];
	ssize_t w;

	if (n == 0)
		return 0;
	out.len = (uint32_t)(sizeof(out) + sizeof(arg) + n * sizeof(*nodeids));
	out.error = CMK_FUSE_NOTIFY_PRUNE;
	iov[0] = (struct iovec){ &out, sizeof(out) };
	iov[1] = (struct iovec){ &arg, sizeof(arg) };
	iov[2] = (struct iovec){ (void *)nodeids, n * sizeof(*nodeids) };
	w = writev(fuse_session_fd(se), iov, 3);
	return w < 0 ? -errno : 0;
}
