/* include/cmkfs/par.h — a small fixed pool of worker threads for
 * data-parallel loops (block crypto of large requests, doc/PERFORMANCE.md).
 * Holds no keys: callers pass per-part keyed contexts in `arg`. */
#ifndef CMKFS_PAR_H
#define CMKFS_PAR_H

#include <stddef.h>

#include "cmkfs/common.h"

#define PAR_MAX 8

/* How many parts a loop may run as at once: online CPUs, at most PAR_MAX
 * (1 on a single core, or with $CMKFS_THREADS=1). */
unsigned par_width(void);

/* Run fn(lo, hi, part, arg) over [0, n) cut into `parts` contiguous
 * ranges (parts <= par_width()); part 0 runs in the caller, the others on
 * pool threads. Returns once all are done: 0, or the first nonzero
 * result by part order. */
CMK_MUST_CHECK int par_for(size_t n, unsigned parts,
			   int (*fn)(size_t lo, size_t hi, unsigned part,
				     void *arg),
			   void *arg);

#endif
