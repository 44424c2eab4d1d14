/* src/fuse/inode.c — inode table keyed by backing (dev, ino). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/inode.h"
#include "cmkfs/inval.h"
#include "cmkfs/log.h"
#include "cmkfs/reseal.h"

#define NHASH 65536

/* Descriptor bound (doc/DESIGN.md, "Descriptor bound"): by default the
 * kernel may keep half the open-file limit of inodes, at most
 * RECLAIM_HIGH_MAX; the rest of the limit is left to open handles and
 * internal descriptors. The reclaimer brings the count down to 3/4 of the
 * high watermark, RECLAIM_BATCH notifications between looks at the table. */
#define RECLAIM_HIGH_MAX 65536
#define RECLAIM_HIGH_MIN 16
#define RECLAIM_BATCH 128
#define RECLAIM_WAIT_MS 1000	/* a request out of descriptors waits */
#define RECLAIM_THROTTLE_MS 50	/* a lookup at 3/2 of the bound waits */
#define NOFILE_LOG_SEC 10	/* between two "out of descriptors" errors */

static void lru_unlink(struct fsctx *fs, struct inode *in)
{
	if (in->lru_prev != NULL)
		in->lru_prev->lru_next = in->lru_next;
	else if (fs->lru_head == in)
		fs->lru_head = in->lru_next;
	if (in->lru_next != NULL)
		in->lru_next->lru_prev = in->lru_prev;
	else if (fs->lru_tail == in)
		fs->lru_tail = in->lru_prev;
	in->lru_prev = in->lru_next = NULL;
}

/* Most recently used: to the head. With mtx. */
static void lru_touch(struct fsctx *fs, struct inode *in)
{
	if (in == &fs->root || fs->lru_head == in)
		return;
	lru_unlink(fs, in);
	in->lru_next = fs->lru_head;
	if (fs->lru_head != NULL)
		fs->lru_head->lru_prev = in;
	fs->lru_head = in;
	if (fs->lru_tail == NULL)
		fs->lru_tail = in;
}

int inode_table_init(struct fsctx *fs, const char *cipherdir,
		     struct keyring *kr)
{
	struct stat st;

	memset(fs, 0, sizeof(*fs));
	fs->jfd = -1;
	fs->kr = kr;
	fs->bs = keyring_block_size(kr);
	snprintf(fs->cipherdir, sizeof(fs->cipherdir), "%s", cipherdir);
	pthread_mutex_init(&fs->mtx, NULL);
	pthread_mutex_init(&fs->ns, NULL);
	pthread_mutex_init(&fs->hmtx, NULL);
	pthread_cond_init(&fs->rc.wake, NULL);
	pthread_cond_init(&fs->rc.done, NULL);
	gate_init(&fs->reads);
	reseal_budget_init(&fs->budget);
	fs->handles.prev = fs->handles.next = &fs->handles;
	fs->nhash = NHASH;
	fs->hash = calloc(fs->nhash, sizeof(*fs->hash));
	if (fs->hash == NULL)
		return -ENOMEM;
	fs->root.fd = open(cipherdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fs->root.fd < 0)
		return -errno;
	if (fstat(fs->root.fd, &st) < 0)
		return -errno;
	fs->root.dev = st.st_dev;
	fs->root.ino = st.st_ino;
	fs->root.type = S_IFDIR;
	fs->root.nlookup = 2;
	fs->is_root = geteuid() == 0;
	return 0;
}

static void inode_free(struct inode *in)
{
	if (S_ISREG(in->type))
		cfile_destroy(&in->cf);
	close(in->fd);
	free(in->where_name);
	free(in);
}

void inode_table_destroy(struct fsctx *fs)
{
	inode_reclaim_stop(fs);
	/* Handles whose RELEASE never came (include/cmkfs/inode.h). */
	while (fs->handles.next != NULL && fs->handles.next != &fs->handles) {
		inode_handle_drop(fs, fs->handles.next);
	}
	for (size_t i = 0; fs->hash != NULL && i < fs->nhash; i++) {
		struct inode *in = fs->hash[i];

		while (in != NULL) {
			struct inode *next = in->hnext;

			inode_free(in);
			in = next;
		}
	}
	free(fs->hash);
	if (fs->root.fd > 0)
		close(fs->root.fd);
	reseal_budget_destroy(&fs->budget);
	if (fs->jfd >= 0)
		close(fs->jfd);
	pthread_mutex_destroy(&fs->mtx);
	pthread_mutex_destroy(&fs->ns);
	pthread_mutex_destroy(&fs->hmtx);
	pthread_cond_destroy(&fs->rc.wake);
	pthread_cond_destroy(&fs->rc.done);
	gate_destroy(&fs->reads);
}

void inode_handle_add(struct fsctx *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->hmtx);
	h->prev = &fs->handles;
	h->next = fs->handles.next;
	h->next->prev = h;
	fs->handles.next = h;
	fs->nhandles++;
	pthread_mutex_unlock(&fs->hmtx);
}

void inode_handle_drop(struct fsctx *fs, struct handle *h)
{
	pthread_mutex_lock(&fs->hmtx);
	h->prev->next = h->next;
	h->next->prev = h->prev;
	fs->nhandles--;
	pthread_mutex_unlock(&fs->hmtx);
	h->free(h);
}

/* A count kept under mtx. */
static size_t count_of(pthread_mutex_t *mtx, const size_t *n)
{
	size_t v;

	pthread_mutex_lock(mtx);
	v = *n;
	pthread_mutex_unlock(mtx);
	return v;
}

size_t inode_handle_count(struct fsctx *fs)
{
	return count_of(&fs->hmtx, &fs->nhandles);
}

static size_t slot(const struct fsctx *fs, dev_t dev, ino_t ino);

uint64_t inode_nodeid(struct fsctx *fs, dev_t dev, ino_t ino)
{
	uint64_t id = 0;

	if (dev == fs->root.dev && ino == fs->root.ino)
		return 1;	/* FUSE_ROOT_ID */
	pthread_mutex_lock(&fs->mtx);
	for (struct inode *in = fs->hash[slot(fs, dev, ino)]; in; in = in->hnext) {
		if (in->dev == dev && in->ino == ino) {
			id = (uint64_t)(uintptr_t)in;
			break;
		}
	}
	pthread_mutex_unlock(&fs->mtx);
	return id;
}

void inode_on_lock(struct fsctx *fs)
{
	uint64_t *inos = NULL;
	size_t n = 0, cap = 0;

	pthread_mutex_lock(&fs->mtx);
	for (size_t i = 0; i < fs->nhash; i++) {
		for (struct inode *in = fs->hash[i]; in; in = in->hnext) {
			if (S_ISREG(in->type))
				cfile_drop_keys(&in->cf);
			if (n == cap) {
				size_t nc = cap ? 2 * cap : 256;
				uint64_t *p = realloc(inos, nc * sizeof(*p));

				if (p == NULL)
					continue;
				inos = p;
				cap = nc;
			}
			inos[n++] = (uint64_t)(uintptr_t)in;
		}
	}
	pthread_mutex_unlock(&fs->mtx);
	/* A READ that decrypted before the keys went may not have replied
	 * yet; its page must not land after the drop below. Later READs
	 * find no keys. */
	gate_drain(&fs->reads);
	/* Outside fs->mtx: invalidation may wait on requests we serve. */
	if (fs->se != NULL) {
		inval_inode(fs->se, 1);	/* FUSE_ROOT_ID */
		for (size_t i = 0; i < n; i++)
			inval_inode(fs->se, inos[i]);
	}
	free(inos);
}

static size_t slot(const struct fsctx *fs, dev_t dev, ino_t ino)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev;

	return (size_t)(h >> 16) % fs->nhash;
}

int inode_get(struct fsctx *fs, int fd, const struct stat *st, uint64_t n,
	      struct inode **out)
{
	struct inode *in, *fresh = NULL;
	size_t s = slot(fs, st->st_dev, st->st_ino);

	if (st->st_dev == fs->root.dev && st->st_ino == fs->root.ino) {
		close(fd);
		*out = &fs->root;
		return 0;
	}
	pthread_mutex_lock(&fs->mtx);
	for (in = fs->hash[s]; in != NULL; in = in->hnext) {
		if (in->dev == st->st_dev && in->ino == st->st_ino)
			break;
	}
	if (in == NULL) {
		fresh = calloc(1, sizeof(*fresh));
		if (fresh == NULL) {
			pthread_mutex_unlock(&fs->mtx);
			close(fd);
			return -ENOMEM;
		}
		fresh->fd = fd;
		fresh->dev = st->st_dev;
		fresh->ino = st->st_ino;
		fresh->type = st->st_mode & S_IFMT;
		if (S_ISREG(fresh->type)) {
			cfile_init(&fresh->cf, fs->kr, fs->bs, fd);
			fresh->cf.jfd = fs->jfd;
			fresh->cf.rootfd = fs->root.fd;
			fresh->cf.rekey = reseal_budget_rekey;
			fresh->cf.rekey_arg = &fs->budget;
		}
		fresh->hnext = fs->hash[s];
		fs->hash[s] = fresh;
		fs->ninodes++;
		in = fresh;
		if (fs->rc.started && fs->ninodes > fs->rc.high)
			pthread_cond_signal(&fs->rc.wake);
	} else {
		close(fd);
	}
	lru_touch(fs, in);
	in->nlookup += n;
	pthread_mutex_unlock(&fs->mtx);
	*out = in;
	return 0;
}

void inode_loc_set(struct fsctx *fs, struct inode *in,
		   const struct names_loc *loc)
{
	pthread_mutex_lock(&fs->mtx);
	in->loc = *loc;
	in->have_loc = true;
	pthread_mutex_unlock(&fs->mtx);
}

int inode_loc_get(struct fsctx *fs, struct inode *in, struct names_loc *loc)
{
	int rc = -ENOENT;

	pthread_mutex_lock(&fs->mtx);
	if (in->have_loc) {
		*loc = in->loc;
		rc = 0;
	}
	pthread_mutex_unlock(&fs->mtx);
	return rc;
}

void inode_rebind(struct fsctx *fs, dev_t dev, ino_t ino, int newfd,
		  const struct stat *st, const struct names_loc *loc)
{
	struct inode **pp, *in = NULL, *o;
	size_t s;

	pthread_mutex_lock(&fs->mtx);
	s = slot(fs, st->st_dev, st->st_ino);
	for (o = fs->hash[s]; o != NULL; o = o->hnext)
		if (o->dev == st->st_dev && o->ino == st->st_ino)
			goto out;	/* known already: leave both alone */
	for (pp = &fs->hash[slot(fs, dev, ino)]; *pp != NULL;
	     pp = &(*pp)->hnext) {
		if ((*pp)->dev == dev && (*pp)->ino == ino) {
			in = *pp;
			break;
		}
	}
	if (in == NULL || !S_ISLNK(in->type) ||
	    dup3(newfd, in->fd, O_CLOEXEC) < 0)
		goto out;
	*pp = in->hnext;
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->loc = *loc;
	in->have_loc = true;
	in->hnext = fs->hash[s];
	fs->hash[s] = in;
out:
	pthread_mutex_unlock(&fs->mtx);
	close(newfd);
}

void inode_forget(struct fsctx *fs, struct inode *in, uint64_t n)
{
	struct inode **pp;

	if (in == &fs->root)
		return;
	pthread_mutex_lock(&fs->mtx);
	if (n > in->nlookup)
		n = in->nlookup;
	in->nlookup -= n;
	if (in->nlookup > 0) {
		pthread_mutex_unlock(&fs->mtx);
		return;
	}
	for (pp = &fs->hash[slot(fs, in->dev, in->ino)]; *pp != NULL;
	     pp = &(*pp)->hnext) {
		if (*pp == in) {
			*pp = in->hnext;
			fs->ninodes--;
			break;
		}
	}
	lru_unlink(fs, in);
	pthread_mutex_unlock(&fs->mtx);
	inode_free(in);
}

size_t inode_count(struct fsctx *fs)
{
	return count_of(&fs->mtx, &fs->ninodes);
}

/* With mtx. A failed copy of the name leaves none: the inode is then
 * not reclaimed until its next lookup, which is harmless. */
static void where_set_locked(struct fsctx *fs, struct inode *in,
			     uint64_t parent, const char *name)
{
	if (in == &fs->root)
		return;
	/* The directory is in use too: were it older than its entries, its
	 * invalidation would drop the whole subtree being walked. */
	if (parent != 1)	/* FUSE_ROOT_ID */
		lru_touch(fs, (struct inode *)(uintptr_t)parent);
	lru_touch(fs, in);
	if (in->where_parent == parent && in->where_name != NULL &&
	    strcmp(in->where_name, name) == 0)
		return;
	free(in->where_name);
	in->where_name = strdup(name);
	in->where_parent = in->where_name != NULL ? parent : 0;
}

void inode_where_set(struct fsctx *fs, struct inode *in, uint64_t parent,
		     const char *name)
{
	pthread_mutex_lock(&fs->mtx);
	where_set_locked(fs, in, parent, name);
	pthread_mutex_unlock(&fs->mtx);
}

void inode_where_move(struct fsctx *fs, dev_t dev, ino_t ino,
		      uint64_t parent, const char *name)
{
	pthread_mutex_lock(&fs->mtx);
	for (struct inode *in = fs->hash[slot(fs, dev, ino)]; in;
	     in = in->hnext) {
		if (in->dev == dev && in->ino == ino) {
			where_set_locked(fs, in, parent, name);
			break;
		}
	}
	pthread_mutex_unlock(&fs->mtx);
}

void inode_opened(struct fsctx *fs, struct inode *in, int delta)
{
	if (in == &fs->root)
		return;
	pthread_mutex_lock(&fs->mtx);
	if (delta > 0)
		in->nopen++;
	else if (in->nopen > 0)
		in->nopen--;
	pthread_mutex_unlock(&fs->mtx);
}

bool inode_full(struct fsctx *fs)
{
	bool full;

	pthread_mutex_lock(&fs->mtx);
	full = fs->rc.started && fs->ninodes >= fs->rc.high;
	pthread_mutex_unlock(&fs->mtx);
	return full;
}

static long long mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* An absolute CLOCK_REALTIME time `ms` from now, for timed waits. */
static struct timespec deadline_ms(long ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

struct victim {
	uint64_t nodeid;
	uint64_t parent;
	char *name;
};

/* Up to `max` of the least recently used inodes the kernel was given a
 * place for, and no open handle, each moved to the head (so the next
 * batch takes the next ones, and one still in use does not come back at
 * once). With mtx. Returns how many. */
static size_t pick_victims(struct fsctx *fs, struct victim *v, size_t max)
{
	size_t n = 0, seen = 0, total = fs->ninodes;

	while (n < max && seen < total && fs->lru_tail != NULL) {
		struct inode *in = fs->lru_tail;

		seen++;
		lru_touch(fs, in);
		if (in->nopen > 0 || in->where_parent == 0 ||
		    in->where_name == NULL)
			continue;
		v[n].name = strdup(in->where_name);
		if (v[n].name == NULL)
			break;
		v[n].nodeid = (uint64_t)(uintptr_t)in;
		v[n].parent = in->where_parent;
		n++;
	}
	return n;
}

/* Waits on rc.wake until `ms` passed or stop. With mtx. */
static void reclaim_pause(struct fsctx *fs, long ms)
{
	struct timespec ts = deadline_ms(ms);

	while (!fs->rc.stop &&
	       pthread_cond_timedwait(&fs->rc.wake, &fs->mtx, &ts) == 0)
		;
}

/* The reclaimer. The kernel keeps an inode (and so its descriptor here)
 * for as long as it keeps a dentry of it; an invalidated dentry nobody
 * uses goes at once, with its subtree, and the kernel's FORGET then frees
 * the inode (inode_forget). Notifications are sent from this thread only:
 * one may wait for a request in flight on the same directory, which a
 * request handler would be (libfuse: never from the execution path of a
 * related operation). */
/* Make the kernel drop victims v[0..n): FUSE_NOTIFY_PRUNE where the
 * kernel has it, else an entry invalidation each. */
static void reclaim_send(struct fsctx *fs, struct victim *v, size_t n)
{
	uint64_t ids[RECLAIM_BATCH];

	if (fs->se == NULL)
		return;
	if (!fs->rc.no_prune) {
		int rc;

		for (size_t i = 0; i < n; i++)
			ids[i] = v[i].nodeid;
		rc = inval_prune(fs->se, ids, n);
		if (rc == 0)
			return;
		if (rc != -EINVAL && rc != -ENOSYS)
			return;	/* unmounted meanwhile */
		log_info("this kernel has no FUSE_NOTIFY_PRUNE (Linux 6.16): "
			 "reclaiming inodes by entry invalidation");
		fs->rc.no_prune = true;
	}
	for (size_t i = 0; i < n; i++)
		inval_entry(fs->se, v[i].parent, v[i].name);
}

/* The reclaimer. The kernel keeps an inode (and so its descriptor here)
 * for as long as it keeps a dentry of it; a pruned (or invalidated)
 * dentry nobody uses goes at once, and the kernel's FORGET then frees the
 * inode (inode_forget). Notifications go from this thread only: an entry
 * invalidation waits for requests in flight on its directory, which a
 * request handler would be one of (libfuse: never from the execution
 * path of a related operation). */
static void *reclaim_thread(void *arg)
{
	struct fsctx *fs = arg;
	struct victim v[RECLAIM_BATCH];

	pthread_mutex_lock(&fs->mtx);
	while (!fs->rc.stop) {
		size_t want, n;

		while (!fs->rc.stop && !fs->rc.urgent &&
		       fs->ninodes <= fs->rc.high)
			pthread_cond_wait(&fs->rc.wake, &fs->mtx);
		if (fs->rc.stop)
			break;
		want = fs->ninodes > fs->rc.low ? fs->ninodes - fs->rc.low : 0;
		if (fs->rc.urgent && want < fs->ninodes / 8 + 1)
			want = fs->ninodes / 8 + 1;
		fs->rc.urgent = false;
		n = pick_victims(fs, v, want < RECLAIM_BATCH ? want :
							       RECLAIM_BATCH);
		pthread_mutex_unlock(&fs->mtx);
		reclaim_send(fs, v, n);
		for (size_t i = 0; i < n; i++)
			free(v[i].name);
		pthread_mutex_lock(&fs->mtx);
		fs->rc.batches++;
		fs->rc.sent += n;
		pthread_cond_broadcast(&fs->rc.done);
		/* The FORGETs come in the background: give them a moment
		 * before counting again. With nothing to drop (all in use),
		 * do not spin. */
		reclaim_pause(fs, n == 0 ? 200 : 2);
	}
	pthread_mutex_unlock(&fs->mtx);
	return NULL;
}

int inode_reclaim_start(struct fsctx *fs)
{
	const char *e = getenv("CMKFS_MAX_INODES");
	unsigned long long want = 0;
	struct rlimit rl;
	size_t high;

	if (fs->rc.started)
		return 0;
	fs->rc.nofile = 1024;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
		fs->rc.nofile = rl.rlim_cur == RLIM_INFINITY ||
					rl.rlim_cur > (1ul << 30) ?
					1ul << 30 :
					(unsigned long)rl.rlim_cur;
	high = fs->rc.nofile / 2;
	if (high > RECLAIM_HIGH_MAX)
		high = RECLAIM_HIGH_MAX;
	if (e != NULL && *e != '\0') {
		char *end;

		want = strtoull(e, &end, 10);
		if (*end != '\0' || want < RECLAIM_HIGH_MIN)
			log_warn("CMKFS_MAX_INODES=%s ignored (want a number "
				 "of at least %d)", e, RECLAIM_HIGH_MIN);
		else
			high = want < fs->rc.nofile / 2 ? (size_t)want :
							  fs->rc.nofile / 2;
	}
	if (high < RECLAIM_HIGH_MIN)
		high = RECLAIM_HIGH_MIN;
	fs->rc.high = high;
	fs->rc.low = high - high / 4;
	/* Test hook: the older kernels' way (entry invalidation). */
	e = getenv("CMKFS_TEST_NO_PRUNE");
	fs->rc.no_prune = e != NULL && strcmp(e, "1") == 0;
	if (pthread_create(&fs->rc.thread, NULL, reclaim_thread, fs) != 0) {
		log_err("cannot start the inode reclaimer: the kernel's "
			"inode cache, and so the daemon's open descriptors, "
			"are bounded only by the open-file limit (%lu)",
			fs->rc.nofile);
		return -EAGAIN;
	}
	pthread_mutex_lock(&fs->mtx);
	fs->rc.started = true;
	pthread_mutex_unlock(&fs->mtx);
	log_info("inode cache bound: %zu (open-file limit %lu)", high,
		 fs->rc.nofile);
	return 0;
}

void inode_reclaim_stop(struct fsctx *fs)
{
	bool started;

	pthread_mutex_lock(&fs->mtx);
	started = fs->rc.started;
	fs->rc.stop = true;
	pthread_cond_broadcast(&fs->rc.wake);
	pthread_mutex_unlock(&fs->mtx);
	if (!started)
		return;
	pthread_join(fs->rc.thread, NULL);
	pthread_mutex_lock(&fs->mtx);
	fs->rc.started = false;
	pthread_mutex_unlock(&fs->mtx);
}

void inode_reclaim_wait(struct fsctx *fs)
{
	long long end = mono_ms() + RECLAIM_WAIT_MS;
	size_t before;
	uint64_t b0;

	pthread_mutex_lock(&fs->mtx);
	if (!fs->rc.started || fs->rc.stop) {
		pthread_mutex_unlock(&fs->mtx);
		return;
	}
	before = fs->ninodes;
	b0 = fs->rc.batches;
	fs->rc.urgent = true;
	pthread_cond_signal(&fs->rc.wake);
	/* A batch sent, and some of it forgotten (or the time is up: a
	 * notification may be waiting for this very request's directory). */
	while (!fs->rc.stop && mono_ms() < end &&
	       (fs->rc.batches == b0 || fs->ninodes + before / 16 >= before)) {
		struct timespec ts = deadline_ms(20);

		(void)pthread_cond_timedwait(&fs->rc.done, &fs->mtx, &ts);
	}
	pthread_mutex_unlock(&fs->mtx);
}

void inode_throttle(struct fsctx *fs)
{
	long long end;

	pthread_mutex_lock(&fs->mtx);
	if (!fs->rc.started || fs->rc.no_prune ||
	    fs->ninodes < fs->rc.high + fs->rc.high / 2) {
		pthread_mutex_unlock(&fs->mtx);
		return;
	}
	end = mono_ms() + RECLAIM_THROTTLE_MS;
	pthread_cond_signal(&fs->rc.wake);
	while (!fs->rc.stop && mono_ms() < end &&
	       fs->ninodes >= fs->rc.high + fs->rc.high / 2) {
		struct timespec ts = deadline_ms(5);

		(void)pthread_cond_timedwait(&fs->rc.done, &fs->mtx, &ts);
	}
	pthread_mutex_unlock(&fs->mtx);
}

void inode_nofile_log(struct fsctx *fs, const char *what)
{
	int err = errno;
	long long now = mono_ms() / 1000;
	bool say;
	size_t n;

	pthread_mutex_lock(&fs->mtx);
	say = fs->rc.last_warn == 0 || now - fs->rc.last_warn >= NOFILE_LOG_SEC;
	if (say)
		fs->rc.last_warn = now;
	n = fs->ninodes;
	pthread_mutex_unlock(&fs->mtx);
	if (say)
		log_err("%s: %s (open-file limit %lu; %zu inodes cached, bound "
			"%zu; %zu open handles): raise the limit (LimitNOFILE= "
			"in the unit, ulimit -n) or lower CMKFS_MAX_INODES",
			what, strerror(err), fs->rc.nofile, n, fs->rc.high,
			inode_handle_count(fs));
	errno = err;
}

/* The backing path of directory fd (what its /proc/self/fd link says) and
 * its base name in *base. Errors: -errno of readlink, -ENOENT (removed). */
static int dir_where(int fd, char path[static PATH_MAX], const char **base)
{
	char proc[32];
	ssize_t n;

	backing_procpath(fd, proc);
	n = readlink(proc, path, PATH_MAX - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	if (n > 10 && strcmp(path + n - 10, " (deleted)") == 0)
		return -ENOENT;
	*base = strrchr(path, '/');
	*base = *base != NULL ? *base + 1 : path;
	return 0;
}

/* A directory's id, checked (format 3) against the backing name it has
 * now: only its O_PATH descriptor is at hand, and a rename by this mount
 * may move it meanwhile (its id then names both places for a while, and
 * a second try sees the new name). */
static int load_dirid(struct fsctx *fs, struct inode *in,
		      uint8_t buf[static DIRID_LEN])
{
	char path[PATH_MAX] = "?", again[PATH_MAX];
	const char *base = NULL, *b2;
	bool gone = false;
	int rc = 0;

	if (in == &fs->root || keyring_version(fs->kr) < 3) {
		rc = dirtree_read_dirid(fs->kr, in->fd, NULL, buf);
		snprintf(path, sizeof(path), "%s", fs->cipherdir);
	} else {
		for (int tries = 0; tries < 3; tries++) {
			rc = dir_where(in->fd, path, &base);
			gone = rc == -ENOENT;
			if (rc < 0)
				break;
			rc = dirtree_read_dirid(fs->kr, in->fd, base, buf);
			if (rc == 0 || dir_where(in->fd, again, &b2) < 0 ||
			    strcmp(again, path) == 0)
				break;
		}
	}
	if (gone || rc == -EKEYREVOKED)
		return rc;	/* the directory itself is gone; locked */
	if (rc < 0) {
		log_err("directory %s (backing inode %llu): %s", path,
			(unsigned long long)in->ino, dirtree_dirid_why(rc));
		return -EBADMSG;
	}
	return 0;
}

int inode_dirid(struct fsctx *fs, struct inode *in,
		uint8_t dirid[static DIRID_LEN])
{
	uint8_t buf[DIRID_LEN];
	int rc;

	pthread_mutex_lock(&fs->mtx);
	if (in->have_dirid) {
		memcpy(dirid, in->dirid, DIRID_LEN);
		pthread_mutex_unlock(&fs->mtx);
		return 0;
	}
	pthread_mutex_unlock(&fs->mtx);
	rc = load_dirid(fs, in, buf);
	if (rc < 0)
		return rc;
	pthread_mutex_lock(&fs->mtx);
	memcpy(in->dirid, buf, DIRID_LEN);
	in->have_dirid = true;
	pthread_mutex_unlock(&fs->mtx);
	memcpy(dirid, buf, DIRID_LEN);
	return 0;
}

/* What a queued reseal holds of the mount until its batch is written. */
struct held {
	struct fsctx *fs;
	struct inode *in;
	int fd;
};

static void held_release(void *ctx)
{
	struct held *h = ctx;

	close(h->fd);
	inode_forget(h->fs, h->in, 1);
	free(h);
}

int inode_reseal(struct fsctx *fs, int dfd, const char *name,
		 struct reseal_batch *b)
{
	char path[32];
	struct held *h;
	struct inode *in;
	struct stat st;
	int pfd, fd, rc;

	pfd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (pfd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(pfd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(pfd);
		return 0;	/* replaced meanwhile by something else */
	}
	rc = inode_get(fs, pfd, &st, 1, &in);
	if (rc < 0)
		return rc;
	backing_procpath(in->fd, path);
	fd = open(path, O_RDWR | O_CLOEXEC);
	h = fd >= 0 ? malloc(sizeof(*h)) : NULL;
	if (h == NULL) {
		rc = fd < 0 ? (errno == ENOENT ? 0 : -errno) : -ENOMEM;
		if (fd >= 0)
			close(fd);
		inode_forget(fs, in, 1);
		return rc;
	}
	h->fs = fs;
	h->in = in;
	h->fd = fd;
	return reseal_batch_add(b, &in->cf, fd, false, held_release, h);
}
