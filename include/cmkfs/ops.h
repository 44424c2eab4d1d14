/* include/cmkfs/ops.h — the fuse_lowlevel_ops table of cmkfs.
 * Maps kernel requests onto inode/dir/file calls and converts internal
 * errors for the kernel (-EBADMSG, -EKEYREJECTED -> EIO). */
#ifndef CMKFS_OPS_H
#define CMKFS_OPS_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops cmkfs_ops;

#endif
