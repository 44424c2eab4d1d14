/* tests/unit/test_par.c — the worker pool (include/cmkfs/par.h): every
 * index of [0, n) is visited exactly once for every n and part count,
 * parts are contiguous and in order, part 0 runs in the caller, results
 * propagate by part order, and the pool survives many small batches. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <valgrind/valgrind.h>

#include "cmkfs/par.h"
#include "../lib/tap.h"

#define N_MAX 1000

static atomic_int seen[N_MAX];

struct arg {
	pthread_t caller;
	size_t lo[PAR_MAX], hi[PAR_MAX];
	int part0_in_caller;
	int fail_part;		/* part that returns an error, or -1 */
};

static int visit(size_t lo, size_t hi, unsigned part, void *p)
{
	struct arg *a = p;

	a->lo[part] = lo;
	a->hi[part] = hi;
	if (part == 0)
		a->part0_in_caller = pthread_equal(pthread_self(), a->caller);
	for (size_t i = lo; i < hi; i++)
		atomic_fetch_add(&seen[i], 1);
	return (int)part == a->fail_part ? -(int)(100 + part) : 0;
}

int main(void)
{
	unsigned w = par_width();

	CHECK(w >= 1 && w <= PAR_MAX, "width %u", w);
	for (size_t n = 0; n <= 67; n += (n < 10 ? 1 : 19)) {
		for (unsigned parts = 1; parts <= PAR_MAX; parts++) {
			struct arg a = { .caller = pthread_self(),
					 .fail_part = -1 };
			unsigned used = parts < w ? parts : w;

			if (used > n)
				used = (unsigned)n;
			for (size_t i = 0; i < N_MAX; i++)
				atomic_store(&seen[i], 0);
			CHECK_RC(par_for(n, parts, visit, &a), 0);
			for (size_t i = 0; i < n; i++)
				CHECK(atomic_load(&seen[i]) == 1,
				      "n %zu parts %u: index %zu seen %d times",
				      n, parts, i, atomic_load(&seen[i]));
			CHECK(n == 0 || a.part0_in_caller,
			      "n %zu parts %u: part 0 not in the caller", n,
			      parts);
			for (unsigned p = 0; n > 0 && p < used; p++)
				CHECK(a.lo[p] == (p ? a.hi[p - 1] : 0) &&
					      a.hi[p] > a.lo[p] &&
					      (p + 1 < used || a.hi[p] == n),
				      "n %zu parts %u: part %u is [%zu, %zu)",
				      n, parts, p, a.lo[p], a.hi[p]);
		}
	}
	/* Errors: the first failing part by order wins. */
	{
		struct arg a = { .caller = pthread_self(), .fail_part = 0 };

		CHECK_RC(par_for(100, PAR_MAX, visit, &a), -100);
		a.fail_part = w > 1 ? 1 : 0;
		CHECK_RC(par_for(100, PAR_MAX, visit, &a),
			 w > 1 ? -101 : -100);
	}
	/* Many small batches back to back (no lost wakeup, no leak). */
	int batches = RUNNING_ON_VALGRIND ? 300 : 20000;

	for (int k = 0; k < batches; k++) {
		struct arg a = { .caller = pthread_self(), .fail_part = -1 };

		if (par_for(N_MAX, PAR_MAX, visit, &a) != 0) {
			CHECK(0, "batch %d failed", k);
			break;
		}
	}
	CHECK(atomic_load(&seen[N_MAX - 1]) >= batches, "batches ran");
	return t_done("test_par");
}
