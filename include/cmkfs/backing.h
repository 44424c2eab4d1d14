/* include/cmkfs/backing.h — syscalls on the ciphertext directory.
 * Full pread/pwrite loops, whole small files, atomic replacement
 * (tmp + fsync + rename + fsync(dir)). No crypto. */
#ifndef CMKFS_BACKING_H
#define CMKFS_BACKING_H

#include <stdbool.h>
#include <sys/types.h>

#include "cmkfs/common.h"

/* Read exactly len bytes at off. Errors: -EBADMSG on a short file, -errno. */
CMK_MUST_CHECK int backing_pread_full(int fd, void *buf, size_t len, off_t off);
CMK_MUST_CHECK int backing_pwrite_full(int fd, const void *buf, size_t len,
				       off_t off);
/* Read a whole small file (at most cap bytes) at dirfd/name. */
CMK_MUST_CHECK int backing_read_small(int dirfd, const char *name, void *buf,
				      size_t cap, size_t *len);
/* Create or replace dirfd/name atomically and durably with `mode`. */
CMK_MUST_CHECK int backing_replace(int dirfd, const char *name, const void *buf,
				   size_t len, mode_t mode);
/* fsync (datasync: fdatasync) of an open file or directory, and on ext4
 * (backing_probe_order() decides) -EIO where the file system hit an error
 * in the meantime: ext4 can answer 0 for a journal commit its error
 * handling dropped (doc/DESIGN.md, "Errors of the backing file system"). */
CMK_MUST_CHECK int backing_fsync(int fd, bool datasync);
/* backing_fsync of a directory given by any descriptor (O_PATH too). */
CMK_MUST_CHECK int backing_fsync_dir(int dirfd);
/* New headers are on disk before anything points to them (DESIGN-NOTES
 * Guarantee 5): call this on a file just written, before the rename or
 * link that names it. On ext4 in data=ordered or data=journal mode it only
 * starts writeback (the blocks are allocated in the running journal
 * transaction, whose commit waits for their data, and a later rename
 * cannot commit first); elsewhere, or when unsure, it is fdatasync.
 * backing_probe_order() decides once for the volume at rootfd. */
void backing_probe_order(int rootfd);
CMK_MUST_CHECK int backing_order_data(int fd);
/* A fresh temporary name TMP_PREFIX "<16 hex>" in out (cap >= 32). */
CMK_MUST_CHECK int backing_tmpname(char *out, size_t cap);
/* Take (on) or drop (!on) an exclusive lock of bytes [0, len) of fd,
 * waiting for it: an open-file-description lock, so that two descriptors
 * of one process exclude each other too. Held around each read-modify-write
 * of a file header (a rekey's re-wrap, a sealing count reservation, the
 * commit of a reseal), so that none of them writes back a header another
 * changed meanwhile. On a file system without such locks it excludes
 * nothing (a single writer of headers is then assumed). */
void backing_lock_head(int fd, size_t len, bool on);
/* "/proc/self/fd/N" for an O_PATH descriptor. */
void backing_procpath(int fd, char out[static 32]);

#endif
