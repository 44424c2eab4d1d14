/* tests/unit/test_gate.c — the epoch drain (include/cmkfs/gate.h):
 * a drain waits for a call inside when it starts; it does not wait for a
 * call that entered after it started, even one that never leaves while
 * it runs; and under 4 threads entering and leaving as fast as they can,
 * every drain returns only after each call that was inside when it began
 * has left (each thread publishes a ticket per call). */
#include "config.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "cmkfs/gate.h"
#include "../lib/tap.h"

#define NT 4
#define DRAINS 300

static struct gate g;
static atomic_int a_in, a_go, d_done;
static atomic_bool stop;
/* per thread: the call in flight (odd = inside, tickets count up) */
static atomic_ulong ticket[NT];
static atomic_int violations;

static void *hold(void *p)
{
	unsigned side = gate_enter(&g);

	(void)p;
	atomic_store(&a_in, 1);
	while (!atomic_load(&a_go))
		usleep(1000);
	gate_leave(&g, side);
	return NULL;
}

static void *drainer(void *p)
{
	(void)p;
	gate_drain(&g);
	atomic_store(&d_done, 1);
	return NULL;
}

static void *hammer(void *p)
{
	int i = (int)(uintptr_t)p;

	while (!atomic_load(&stop)) {
		unsigned side = gate_enter(&g);

		atomic_fetch_add(&ticket[i], 1);	/* odd: inside */
		if ((atomic_load(&ticket[i]) & 63) == 1)
			sched_yield();
		atomic_fetch_add(&ticket[i], 1);	/* even: out */
		gate_leave(&g, side);
	}
	return NULL;
}

int main(void)
{
	pthread_t a, d, t[NT];

	gate_init(&g);

	/* A call inside holds a drain up until it leaves. */
	pthread_create(&a, NULL, hold, NULL);
	while (!atomic_load(&a_in))
		usleep(1000);
	pthread_create(&d, NULL, drainer, NULL);
	usleep(100000);
	CHECK(!atomic_load(&d_done), "drain returned with a call inside");
	atomic_store(&a_go, 1);
	pthread_join(a, NULL);
	pthread_join(d, NULL);
	CHECK(atomic_load(&d_done), "drain did not return");

	/* A call that enters after the drain began does not hold it up. */
	atomic_store(&a_in, 0);
	atomic_store(&a_go, 0);
	atomic_store(&d_done, 0);
	pthread_create(&a, NULL, hold, NULL);		/* old side */
	while (!atomic_load(&a_in))
		usleep(1000);
	pthread_create(&d, NULL, drainer, NULL);
	while (atomic_load(&g.epoch) != 2)		/* the drain flipped */
		usleep(1000);
	{
		unsigned side = gate_enter(&g);		/* new side, held */

		CHECK(side == 0, "entered on side %u after the flip", side);
		atomic_store(&a_go, 1);			/* old side leaves */
		pthread_join(a, NULL);
		for (int i = 0; i < 500 && !atomic_load(&d_done); i++)
			usleep(1000);
		CHECK(atomic_load(&d_done),
		      "drain waited for a call that entered after it began");
		gate_leave(&g, side);
	}
	pthread_join(d, NULL);

	/* Many calls, many drains: every call inside at a drain's start has
	 * left when it returns. */
	for (uintptr_t i = 0; i < NT; i++)
		pthread_create(&t[i], NULL, hammer, (void *)i);
	for (int k = 0; k < DRAINS; k++) {
		unsigned long before[NT];

		for (int i = 0; i < NT; i++)
			before[i] = atomic_load(&ticket[i]);
		gate_drain(&g);
		for (int i = 0; i < NT; i++) {
			/* inside (odd) before: must have moved on since */
			if ((before[i] & 1) && atomic_load(&ticket[i]) == before[i])
				atomic_fetch_add(&violations, 1);
		}
	}
	atomic_store(&stop, true);
	for (int i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&violations) == 0,
	      "%d drains returned with a call still inside",
	      atomic_load(&violations));
	CHECK(atomic_load(&g.n[0]) == 0 && atomic_load(&g.n[1]) == 0,
	      "counts left: %ld %ld", atomic_load(&g.n[0]),
	      atomic_load(&g.n[1]));
	gate_destroy(&g);
	return t_done("test_gate");
}
