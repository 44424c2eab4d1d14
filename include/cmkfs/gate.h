/* include/cmkfs/gate.h — wait for the calls in flight, not for those that
 * come later: an epoch drain, as the kernel's SRCU does. Calls enter on
 * the current epoch's side and leave it; gate_drain() flips the epoch and
 * waits until the old side is empty, so calls entering meanwhile (on the
 * new side) never hold it up, however many there are.
 *
 * Used by a lock (fuse/inode.c inode_on_lock): READ replies decrypted
 * before the keys were wiped must be out before the kernel's pages are
 * dropped, or a page could be cached after the drop and read while
 * locked. */
#ifndef CMKFS_GATE_H
#define CMKFS_GATE_H

#include <pthread.h>
#include <stdatomic.h>

struct gate {
	atomic_ulong epoch;
	atomic_long n[2];	/* calls inside, by epoch parity */
	pthread_mutex_t drain;	/* one drain at a time */
};

void gate_init(struct gate *g);
void gate_destroy(struct gate *g);
/* Enter; returns the side to hand to gate_leave. Lock-free. */
unsigned gate_enter(struct gate *g);
void gate_leave(struct gate *g, unsigned side);
/* Return once every call that entered before this drain has left. */
void gate_drain(struct gate *g);

#endif
