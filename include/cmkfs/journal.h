/* include/cmkfs/journal.h — truncate records left by a crash (cfile.h,
 * doc/FORMAT.md §3.1): found by file id and completed before a mount
 * serves, or by fsck --repair. */
#ifndef CMKFS_JOURNAL_H
#define CMKFS_JOURNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cmkfs/common.h"
#include "cmkfs/keyring.h"

/* The volume's JOURNAL_DIR (reserved.h) at rootfd (any directory fd,
 * O_PATH too), made if `create`. Returns an O_RDONLY directory fd, or
 * -errno (-ENOENT: none and not asked to make it). */
CMK_MUST_CHECK int journal_open(int rootfd, bool create);
/* Complete every file with a record in jfd and drop records of files that
 * no longer exist; *completed counts completed files. A record that does
 * not match its file (cfile_resolve_truncate) is kept, never applied, and
 * logged with the file's backing path and why. Walks the cipher
 * directory only when there are records (after a crash). */
CMK_MUST_CHECK int journal_recover(int rootfd, int jfd, struct keyring *kr,
				   uint32_t bs, unsigned *completed);

#endif
