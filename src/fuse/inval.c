/* src/fuse/inval.c — kernel cache invalidation (include/cmkfs/inval.h). */
#include "config.h"

#include <string.h>

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
