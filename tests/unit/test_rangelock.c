/* tests/unit/test_rangelock.c — block-range locks (include/cmkfs/rangelock.h):
 * 4 threads take random shared and exclusive ranges of 64 blocks and check
 * each block's holders (no exclusive holder ever beside another holder);
 * disjoint exclusive ranges and overlapping shared ranges are held at the
 * same time; an exclusive range waits for an overlapping one and gets it
 * once that is released. */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/rangelock.h"
#include "../lib/tap.h"

#define NBLK 64
#define ROUNDS 20000

static struct rangelock rl;
static atomic_int readers[NBLK], writers[NBLK], violations;

static void *hammer(void *p)
{
	unsigned seed = (unsigned)(uintptr_t)p;

	for (int i = 0; i < ROUNDS; i++) {
		uint64_t lo = (uint64_t)rand_r(&seed) % NBLK;
		uint64_t hi = lo + (uint64_t)rand_r(&seed) % 4;
		bool excl = rand_r(&seed) % 2;
		struct range r;

		if (hi >= NBLK)
			hi = NBLK - 1;
		rangelock_acquire(&rl, &r, lo, hi, excl);
		for (uint64_t b = lo; b <= hi; b++) {
			if (excl) {
				if (atomic_fetch_add(&writers[b], 1) != 0 ||
				    atomic_load(&readers[b]) != 0)
					atomic_fetch_add(&violations, 1);
			} else {
				atomic_fetch_add(&readers[b], 1);
				if (atomic_load(&writers[b]) != 0)
					atomic_fetch_add(&violations, 1);
			}
		}
		if (i % 64 == 0)
			sched_yield();
		for (uint64_t b = lo; b <= hi; b++)
			atomic_fetch_sub(excl ? &writers[b] : &readers[b], 1);
		rangelock_release(&rl, &r);
	}
	return NULL;
}

struct waiter {
	uint64_t lo, hi;
	bool excl;
	atomic_int got;
};

static void *take(void *p)
{
	struct waiter *w = p;
	struct range r;

	rangelock_acquire(&rl, &r, w->lo, w->hi, w->excl);
	atomic_store(&w->got, 1);
	rangelock_release(&rl, &r);
	return NULL;
}

/* Does a thread taking w get it within ~1 s while the caller holds its
 * own ranges? (Joined either way.) */
static bool granted_meanwhile(struct waiter *w, pthread_t *t)
{
	atomic_store(&w->got, 0);
	pthread_create(t, NULL, take, w);
	for (int i = 0; i < 100 && !atomic_load(&w->got); i++)
		usleep(10000);
	return atomic_load(&w->got);
}

int main(void)
{
	pthread_t t[4];
	struct range a, b;
	struct waiter w;

	rangelock_init(&rl);
	for (uintptr_t i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, hammer, (void *)(i + 1));
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&violations) == 0,
	      "%d blocks held exclusively beside another holder",
	      atomic_load(&violations));

	rangelock_acquire(&rl, &a, 0, 3, true);
	w = (struct waiter){ .lo = 4, .hi = 9, .excl = true };
	CHECK(granted_meanwhile(&w, &t[0]), "disjoint exclusive range waited");
	pthread_join(t[0], NULL);
	w = (struct waiter){ .lo = 3, .hi = 3, .excl = false };
	CHECK(!granted_meanwhile(&w, &t[0]),
	      "shared range granted inside an exclusive one");
	rangelock_release(&rl, &a);
	pthread_join(t[0], NULL);
	CHECK(atomic_load(&w.got), "waiter not granted after release");

	rangelock_acquire(&rl, &a, 10, 20, false);
	rangelock_acquire(&rl, &b, 15, 25, false);	/* would hang if not shared */
	w = (struct waiter){ .lo = 20, .hi = 30, .excl = true };
	CHECK(!granted_meanwhile(&w, &t[0]),
	      "exclusive range granted over shared ones");
	rangelock_release(&rl, &a);
	usleep(50000);
	CHECK(!atomic_load(&w.got), "granted while one shared holder remains");
	rangelock_release(&rl, &b);
	pthread_join(t[0], NULL);
	CHECK(atomic_load(&w.got), "exclusive waiter not granted");
	rangelock_destroy(&rl);
	return t_done("test_rangelock");
}
