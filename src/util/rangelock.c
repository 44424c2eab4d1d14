/* src/util/rangelock.c — block-range locks (include/cmkfs/rangelock.h).
 * A list, not a tree: the ranges held at once are at most the requests in
 * flight on one file (FUSE threads), a handful. */
#include "config.h"

#include "cmkfs/rangelock.h"

void rangelock_init(struct rangelock *rl)
{
	pthread_mutex_init(&rl->mtx, NULL);
	pthread_cond_init(&rl->cv, NULL);
	rl->held = NULL;
}

void rangelock_destroy(struct rangelock *rl)
{
	pthread_cond_destroy(&rl->cv);
	pthread_mutex_destroy(&rl->mtx);
}

static bool conflicts(const struct rangelock *rl, const struct range *r)
{
	for (const struct range *h = rl->held; h != NULL; h = h->next) {
		if (h->lo <= r->hi && r->lo <= h->hi && (h->excl || r->excl))
			return true;
	}
	return false;
}

void rangelock_acquire(struct rangelock *rl, struct range *r, uint64_t lo,
		       uint64_t hi, bool excl)
{
	r->lo = lo;
	r->hi = hi;
	r->excl = excl;
	pthread_mutex_lock(&rl->mtx);
	while (conflicts(rl, r))
		pthread_cond_wait(&rl->cv, &rl->mtx);
	r->next = rl->held;
	rl->held = r;
	pthread_mutex_unlock(&rl->mtx);
}

void rangelock_release(struct rangelock *rl, struct range *r)
{
	pthread_mutex_lock(&rl->mtx);
	for (struct range **pp = &rl->held; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	pthread_cond_broadcast(&rl->cv);
	pthread_mutex_unlock(&rl->mtx);
}
