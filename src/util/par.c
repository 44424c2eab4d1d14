/* src/util/par.c — worker pool for data-parallel loops (include/cmkfs/par.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmkfs/par.h"

struct task {
	int (*fn)(size_t lo, size_t hi, unsigned part, void *arg);
	void *arg;
	size_t lo, hi;
	unsigned part;
	int rc;
	struct batch *b;
	struct task *next;
};

struct batch {
	unsigned left;		/* tasks not finished; under pool.mtx */
	pthread_cond_t done;
};

static struct {
	pthread_once_t once;
	pthread_mutex_t mtx;
	pthread_cond_t work, gone;
	struct task *head, *tail;
	unsigned width, threads;
	bool stop;		/* at exit: workers leave once idle */
	pid_t pid;		/* the process whose threads they are */
} pool = { .once = PTHREAD_ONCE_INIT,
	   .mtx = PTHREAD_MUTEX_INITIALIZER,
	   .work = PTHREAD_COND_INITIALIZER,
	   .gone = PTHREAD_COND_INITIALIZER };

static void *worker(void *unused)
{
	(void)unused;
	pthread_mutex_lock(&pool.mtx);
	for (;;) {
		struct task *t;

		while (pool.head == NULL && !pool.stop)
			pthread_cond_wait(&pool.work, &pool.mtx);
		if (pool.head == NULL)
			break;		/* stop, and nothing queued */
		t = pool.head;
		pool.head = t->next;
		if (pool.head == NULL)
			pool.tail = NULL;
		pthread_mutex_unlock(&pool.mtx);
		t->rc = t->fn(t->lo, t->hi, t->part, t->arg);
		pthread_mutex_lock(&pool.mtx);
		if (--t->b->left == 0)
			pthread_cond_signal(&t->b->done);
	}
	pthread_mutex_unlock(&pool.mtx);
	/* This thread's OpenSSL state (its DRBGs, which block_seal's nonces
	 * made) before OPENSSL_cleanup runs: a live thread's would outlive
	 * it, and hold the primary DRBG with them. */
	OPENSSL_thread_stop();
	pthread_mutex_lock(&pool.mtx);
	pool.threads--;
	pthread_cond_signal(&pool.gone);
	pthread_mutex_unlock(&pool.mtx);
	return NULL;
}

/* At exit (registered after OpenSSL's own atexit handler, so it runs
 * first): idle workers leave. Bounded: a worker still in a task, or an
 * exit() from inside one, is not waited for past 2 s. */
static void stop(void)
{
	struct timespec end;

	if (getpid() != pool.pid)
		return;		/* a forked child: the workers are not here */
	clock_gettime(CLOCK_REALTIME, &end);
	end.tv_sec += 2;
	pthread_mutex_lock(&pool.mtx);
	pool.stop = true;
	pthread_cond_broadcast(&pool.work);
	while (pool.threads > 0 &&
	       pthread_cond_timedwait(&pool.gone, &pool.mtx, &end) == 0)
		;
	pthread_mutex_unlock(&pool.mtx);
}

static void start(void)
{
	const char *e = getenv("CMKFS_THREADS");
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	pthread_attr_t at;

	if (e != NULL && *e != '\0')
		n = strtol(e, NULL, 10);
	if (n < 1)
		n = 1;
	if (n > PAR_MAX)
		n = PAR_MAX;
	pool.width = (unsigned)n;
	pool.pid = getpid();
	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (long i = 1; i < n; i++) {
		pthread_t t;

		if (pthread_create(&t, &at, worker, NULL) != 0)
			break;
		pool.threads++;
	}
	pthread_attr_destroy(&at);
	pool.width = pool.threads + 1;
	/* OpenSSL registers its cleanup at its first initialisation; make
	 * sure that came first, so that ours runs before it. */
	(void)OPENSSL_init_crypto(0, NULL);
	if (pool.threads > 0)
		(void)atexit(stop);
}

unsigned par_width(void)
{
	pthread_once(&pool.once, start);
	return pool.width;
}

int par_for(size_t n, unsigned parts,
	    int (*fn)(size_t lo, size_t hi, unsigned part, void *arg),
	    void *arg)
{
	struct task t[PAR_MAX];
	struct batch b;
	int rc;

	if (parts > par_width())
		parts = par_width();
	if (parts > n)
		parts = (unsigned)n;
	if (parts <= 1)
		return n == 0 ? 0 : fn(0, n, 0, arg);
	pthread_cond_init(&b.done, NULL);
	b.left = parts - 1;
	for (unsigned i = 0; i < parts; i++) {
		t[i] = (struct task){ fn, arg, n * i / parts,
				      n * (i + 1) / parts, i, 0, &b, NULL };
	}
	pthread_mutex_lock(&pool.mtx);
	for (unsigned i = 1; i < parts; i++) {
		if (pool.tail != NULL)
			pool.tail->next = &t[i];
		else
			pool.head = &t[i];
		pool.tail = &t[i];
	}
	pthread_cond_broadcast(&pool.work);
	pthread_mutex_unlock(&pool.mtx);
	t[0].rc = fn(t[0].lo, t[0].hi, 0, arg);
	pthread_mutex_lock(&pool.mtx);
	while (b.left > 0)
		pthread_cond_wait(&b.done, &pool.mtx);
	pthread_mutex_unlock(&pool.mtx);
	pthread_cond_destroy(&b.done);
	rc = 0;
	for (unsigned i = 0; i < parts && rc == 0; i++)
		rc = t[i].rc;
	return rc;
}
