/* include/cmkfs/rand.h — random bytes from OpenSSL's DRBG; fails closed. */
#ifndef CMKFS_RAND_H
#define CMKFS_RAND_H

#include "cmkfs/common.h"

/* Errors: -EIO (DRBG failure: never fall back to anything weaker). */
CMK_MUST_CHECK int rand_bytes(void *buf, size_t len);

#endif
