/* include/cmkfs/secmem.h — memory for key material.
 * Owns allocations that hold secrets: page-aligned, mlock()ed where the
 * RLIMIT_MEMLOCK allows, excluded from core dumps (MADV_DONTDUMP), and wiped
 * with OPENSSL_cleanse before they are returned to the system.
 * Thread-safe. */
#ifndef CMKFS_SECMEM_H
#define CMKFS_SECMEM_H

#include "cmkfs/common.h"

/* Allocate `len` zeroed bytes of secret memory in *out.
 * Errors: -ENOMEM. A failed mlock is not an error (said once in the log). */
CMK_MUST_CHECK int secmem_zalloc(size_t len, void **out);
/* Wipe and free; NULL-safe. `len` must be the length given to zalloc. */
void secmem_free(void *p, size_t len);
/* Wipe a stack or heap buffer (OPENSSL_cleanse). */
void secmem_wipe(void *p, size_t len);
/* Make the process undumpable and disable core files (daemon start). */
void secmem_harden_process(void);
/* Number of secmem bytes currently allocated (tests). */
size_t secmem_in_use(void);

#endif
