/* src/util/tclock.c — the creation and expiry clock
 * (include/cmkfs/tclock.h). */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "cmkfs/tclock.h"

/* Set once by tclock_from_env() before any thread starts. */
static long skew;

int tclock_from_env(void)
{
	const char *e = getenv(TCLOCK_SKEW_ENV);
	unsigned long long n;
	char *end;

	if (e == NULL || *e == '\0')
		return 0;
	/* digits only: the hook moves the clock ahead, never back */
	if (*e < '0' || *e > '9')
		return -EINVAL;
	errno = 0;
	n = strtoull(e, &end, 10);
	if (errno != 0 || *end != '\0' || n > TCLOCK_SKEW_MAX)
		return -EINVAL;
	skew = (long)n;
	return 0;
}

long tclock_skew(void)
{
	return skew;
}

time_t tclock_now(void)
{
	return time(NULL) + skew;
}

uint64_t tclock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)(ts.tv_sec + skew) * 1000000000u +
	       (uint64_t)ts.tv_nsec;
}

void tclock_deadline_ms(long ms, struct timespec *ts)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}
