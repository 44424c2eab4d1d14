/* src/daemon/sweeper.c — the transient-zone sweeper
 * (include/cmkfs/sweeper.h). */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmkfs/audit.h"
#include "cmkfs/inode.h"
#include "cmkfs/inval.h"
#include "cmkfs/log.h"
#include "cmkfs/sweeper.h"
#include "cmkfs/tclock.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"

#define SWEEP_SEC_DEFAULT 30
#define SWEEP_SEC_MAX 3600

/* A removed entry: its parent directory (backing dev, ino) and name. */
struct gone {
	dev_t dev;
	ino_t ino;
	char name[256];
};

struct sweeper {
	int rootfd;			/* borrowed; immutable */
	struct keyring *kr;		/* borrowed; immutable */
	struct fsctx *fs;		/* set once by sweeper_start */
	pthread_t thread;
	bool started;			/* thread running; owner only */
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool stop;			/* protected by mtx */
	pthread_mutex_t sweep_mtx;	/* one sweep at a time */
	struct gone *gone;		/* protected by sweep_mtx */
	/* The last zone list that loaded: a list deleted or rolled back
	 * under a live mount changes nothing it expires. */
	struct tzone *last;		/* protected by sweep_mtx */
	size_t nlast;			/* protected by sweep_mtx */
	bool have_last;			/* protected by sweep_mtx */
	size_t ngone, capgone;		/* protected by sweep_mtx */
};

int sweeper_new(int rootfd, struct keyring *kr, struct sweeper **out)
{
	struct sweeper *sw = calloc(1, sizeof(*sw));

	if (sw == NULL)
		return -ENOMEM;
	sw->last = calloc(TRANSIENT_MAX_ZONES, sizeof(*sw->last));
	if (sw->last == NULL) {
		free(sw);
		return -ENOMEM;
	}
	sw->rootfd = rootfd;
	sw->kr = kr;
	pthread_mutex_init(&sw->mtx, NULL);
	pthread_cond_init(&sw->cond, NULL);
	pthread_mutex_init(&sw->sweep_mtx, NULL);
	*out = sw;
	return 0;
}

/* transient_cb: remember an entry to invalidate once the namespace lock
 * is released. Out of memory only costs the invalidation (the kernel
 * then finds the entry gone on its next lookup). */
static void collect(dev_t dev, ino_t ino, const char *name, void *ud)
{
	struct sweeper *sw = ud;
	struct gone *g;

	if (sw->ngone == sw->capgone) {
		size_t cap = sw->capgone ? 2 * sw->capgone : 64;
		struct gone *p = realloc(sw->gone, cap * sizeof(*p));

		if (p == NULL)
			return;
		sw->gone = p;
		sw->capgone = cap;
	}
	g = &sw->gone[sw->ngone++];
	g->dev = dev;
	g->ino = ino;
	snprintf(g->name, sizeof(g->name), "%s", name);
}

/* The kernel's dentries, outside the namespace lock: it may wait on
 * requests that need that lock. */
static void invalidate_gone(struct sweeper *sw)
{
	struct fsctx *fs = sw->fs;

	for (size_t i = 0; fs != NULL && fs->se != NULL && i < sw->ngone;
	     i++) {
		uint64_t parent =
			inode_nodeid(fs, sw->gone[i].dev, sw->gone[i].ino);

		if (parent != 0)
			inval_entry(fs->se, parent, sw->gone[i].name);
	}
}

static void audit_sweep(unsigned long total, bool at_mount)
{
	char detail[64];

	if (total == 0)
		return;
	snprintf(detail, sizeof(detail), "%lu expired%s", total,
		 at_mount ? " at mount" : "");
	audit_event("transient_expire", NULL, "ok", detail);
}

void sweeper_sweep(struct sweeper *sw, bool at_mount)
{
	struct tzone z[TRANSIENT_MAX_ZONES];
	struct fsctx *fs = sw->fs;
	unsigned long total = 0, c;
	size_t n = 0;
	int rc;

	if (keyring_is_locked(sw->kr))
		return;
	pthread_mutex_lock(&sw->sweep_mtx);
	rc = transient_load(sw->rootfd, sw->kr, z, &n);
	if (rc == 0) {
		memcpy(sw->last, z, n * sizeof(*z));
		sw->nlast = n;
		sw->have_last = true;
	} else if (sw->have_last) {
		log_err("%s: %s; expiring by the list loaded before",
			TRANSIENT_FILE, transient_strerror(rc));
		memcpy(z, sw->last, sw->nlast * sizeof(*z));
		n = sw->nlast;
	} else {
		pthread_mutex_unlock(&sw->sweep_mtx);
		log_err("%s: %s; nothing expires", TRANSIENT_FILE,
			transient_strerror(rc));
		return;
	}
	if (fs != NULL)
		pthread_mutex_lock(&fs->ns);
	sw->ngone = 0;
	for (size_t i = 0; i < n; i++) {
		if (transient_expire(sw->rootfd, sw->kr, &z[i], tclock_now(),
				     fs ? collect : NULL, sw, &c) == 0)
			total += c;
	}
	if (fs != NULL)
		pthread_mutex_unlock(&fs->ns);
	invalidate_gone(sw);
	pthread_mutex_unlock(&sw->sweep_mtx);
	audit_sweep(total, at_mount);
}

static long sweep_interval_sec(void)
{
	const char *e = getenv("CMKFS_TRANSIENT_SWEEP_SEC");
	long every = e ? strtol(e, NULL, 10) : SWEEP_SEC_DEFAULT;

	if (every <= 0 || every > SWEEP_SEC_MAX)
		every = SWEEP_SEC_DEFAULT;
	return every;
}

static void *sweep_thread(void *arg)
{
	struct sweeper *sw = arg;
	long every = sweep_interval_sec();

	pthread_mutex_lock(&sw->mtx);
	while (!sw->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += every;
		while (!sw->stop &&
		       pthread_cond_timedwait(&sw->cond, &sw->mtx, &ts) == 0)
			;
		if (sw->stop)
			break;
		pthread_mutex_unlock(&sw->mtx);
		sweeper_sweep(sw, false);
		pthread_mutex_lock(&sw->mtx);
	}
	pthread_mutex_unlock(&sw->mtx);
	return NULL;
}

int sweeper_start(struct sweeper *sw, struct fsctx *fs)
{
	sw->fs = fs;
	if (pthread_create(&sw->thread, NULL, sweep_thread, sw) != 0)
		return -EAGAIN;
	sw->started = true;
	return 0;
}

void sweeper_free(struct sweeper *sw)
{
	if (sw == NULL)
		return;
	if (sw->started) {
		pthread_mutex_lock(&sw->mtx);
		sw->stop = true;
		pthread_cond_signal(&sw->cond);
		pthread_mutex_unlock(&sw->mtx);
		pthread_join(sw->thread, NULL);
	}
	pthread_mutex_destroy(&sw->mtx);
	pthread_cond_destroy(&sw->cond);
	pthread_mutex_destroy(&sw->sweep_mtx);
	free(sw->gone);
	free(sw->last);
	free(sw);
}
