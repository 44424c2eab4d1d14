/* src/util/gate.c — epoch drain (include/cmkfs/gate.h). */
#include "config.h"

#include <time.h>

#include "cmkfs/gate.h"

void gate_init(struct gate *g)
{
	atomic_init(&g->epoch, 0);
	atomic_init(&g->n[0], 0);
	atomic_init(&g->n[1], 0);
	pthread_mutex_init(&g->drain, NULL);
}

void gate_destroy(struct gate *g)
{
	pthread_mutex_destroy(&g->drain);
}

/* Both sides use sequentially consistent atomics: either the drain sees
 * this count on the old side and waits for it, or this call sees the new
 * epoch, takes its count back and enters on the new side. */
unsigned gate_enter(struct gate *g)
{
	for (;;) {
		unsigned long e = atomic_load(&g->epoch);
		unsigned side = (unsigned)(e & 1);

		atomic_fetch_add(&g->n[side], 1);
		if (atomic_load(&g->epoch) == e)
			return side;
		atomic_fetch_sub(&g->n[side], 1);
	}
}

void gate_leave(struct gate *g, unsigned side)
{
	atomic_fetch_sub(&g->n[side & 1], 1);
}

void gate_drain(struct gate *g)
{
	struct timespec ts = { 0, 100000 };	/* 100 us: a lock is rare */
	unsigned side;

	pthread_mutex_lock(&g->drain);
	side = (unsigned)(atomic_fetch_add(&g->epoch, 1) & 1);
	while (atomic_load(&g->n[side]) != 0)
		nanosleep(&ts, NULL);
	pthread_mutex_unlock(&g->drain);
}
