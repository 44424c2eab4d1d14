/* include/cmkfs/common.h — macros shared by every module.
 * Errors across the tree are int: 0 on success, a negative errno on failure
 * (STYLE.md §2). Only fuse/ops.c converts them for the kernel. */
#ifndef CMKFS_COMMON_H
#define CMKFS_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define CMK_MUST_CHECK __attribute__((warn_unused_result))
#define CMK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CMK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
