/* include/cmkfs/rangelock.h — block-range locks inside one file.
 * Readers of a range share it; a writer of a range has it alone; ranges
 * that do not overlap never wait for each other. Used by cfile.c so that
 * in-place writes exclude only readers and writers of the blocks they
 * rewrite (a read of a block being rewritten would see it half written
 * and fail authentication), while the file's rwlock stays for changes of
 * size. Waiters are woken all at once; no fairness is promised, as with
 * glibc's default rwlock. */
#ifndef CMKFS_RANGELOCK_H
#define CMKFS_RANGELOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct range {
	uint64_t lo, hi;	/* inclusive */
	bool excl;
	struct range *next;
};

struct rangelock {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	struct range *held;	/* every range now held */
};

void rangelock_init(struct rangelock *rl);
void rangelock_destroy(struct rangelock *rl);
/* Hold [lo, hi] (inclusive; lo <= hi), shared or exclusive; r is the
 * caller's (on its stack) until rangelock_release. */
void rangelock_acquire(struct rangelock *rl, struct range *r, uint64_t lo,
		       uint64_t hi, bool excl);
void rangelock_release(struct rangelock *rl, struct range *r);

#endif
