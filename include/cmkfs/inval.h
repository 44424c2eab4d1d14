/* include/cmkfs/inval.h — tell the kernel to forget what it cached of a
 * mount (libfuse fuse_lowlevel_notify_inval_inode/_entry): a lock drops
 * every inode's pages and attributes, the transient sweep drops the
 * entries it removed. Apart from the ops table, so that the inode table
 * and the daemon can ask without depending on it.
 *
 * Both may block until the kernel has finished requests in flight: never
 * call them holding a lock that serving a request takes. A failure (the
 * kernel does not know the node, or the session is gone) is ignored:
 * there is then nothing cached to drop. */
#ifndef CMKFS_INVAL_H
#define CMKFS_INVAL_H

#include <stddef.h>
#include <stdint.h>

struct fuse_session;

/* Drop the kernel's cached pages and attributes of FUSE node `nodeid`. */
void inval_inode(struct fuse_session *se, uint64_t nodeid);
/* Drop the kernel's dentry `name` in directory node `parent`. */
void inval_entry(struct fuse_session *se, uint64_t parent, const char *name);
/* Ask the kernel to drop its unused dentries of nodes `nodeids` (and so
 * the inodes, which it then forgets): FUSE_NOTIFY_PRUNE, which takes no
 * directory lock (unlike inval_entry) and leaves dentries in use (a
 * working directory, an open file) alone. Returns 0, or -errno: -EINVAL
 * or -ENOSYS from a kernel older than 6.16. */
int inval_prune(struct fuse_session *se, const uint64_t *nodeids, size_t n);

#endif
