/* include/cmkfs/tclock.h — the clock of authenticated creation times and
 * of transient expiry, with a test hook that moves it ahead.
 *
 * CMKFS_TEST_CLOCK_SKEW=S (decimal seconds, 0..TCLOCK_SKEW_MAX) makes this
 * clock run S seconds ahead of the system clock in the process that reads
 * it: format-3 files created there are born S seconds late (the birth time
 * their header authenticates), and expiry judges as of now + S. Tests age
 * files by creating them under a smaller skew than the sweep that judges
 * them, without the backing mtimes nobody authenticates. Backing times
 * are not moved. The hook only moves the clock ahead. */
#ifndef CMKFS_TCLOCK_H
#define CMKFS_TCLOCK_H

#include <stdint.h>
#include <time.h>

#include "cmkfs/common.h"

#define TCLOCK_SKEW_ENV "CMKFS_TEST_CLOCK_SKEW"
#define TCLOCK_SKEW_MAX (10L * 366 * 86400)

/* Read TCLOCK_SKEW_ENV once, at the start of the process before any
 * thread: unset or empty is no skew. Errors: -EINVAL (not a decimal
 * number from 0 to TCLOCK_SKEW_MAX: no skew). */
CMK_MUST_CHECK int tclock_from_env(void);
long tclock_skew(void);		/* seconds; 0 without the hook */
time_t tclock_now(void);		/* time(NULL) + the skew */
uint64_t tclock_now_ns(void);		/* CLOCK_REALTIME + the skew, in ns */
/* CLOCK_REALTIME ms milliseconds from now, without the skew: the
 * deadline of a pthread_cond_timedwait. */
void tclock_deadline_ms(long ms, struct timespec *ts);

#endif
