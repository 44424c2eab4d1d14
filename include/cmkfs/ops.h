/* include/cmkfs/ops.h — the fuse_lowlevel_ops table of cmkfs.
 * Maps kernel requests onto inode/dir/file calls and converts internal
 * errors for the kernel (-EBADMSG, -EKEYREJECTED -> EIO). */
#ifndef CMKFS_OPS_H
#define CMKFS_OPS_H

#define FUSE_USE_VERSION 312	/* 3.12 loop config ABI: fuse_session_loop_mt_312 */
#include <fuse_lowlevel.h>

extern const struct fuse_lowlevel_ops ops_lowlevel;
/* EIO answers sent to the kernel since the start (status --prometheus). */
unsigned long ops_eio_answered(void);

#endif
