/* src/daemon/ctl.c — control socket of the mount daemon. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmkfs/ctl.h"
#include "cmkfs/log.h"
#include "cmkfs/runtime.h"

struct ctl {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	pthread_mutex_t mtx;
	pthread_cond_t idle;
	int active;		/* connections being served; under mtx */
	ctl_handler h;
	void *ud;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

int ctl_path(const char *mountpoint, char *out, size_t cap)
{
	size_t n;
	int rc;

	rc = runtime_state_path(mountpoint, out, cap);
	if (rc < 0)
		return rc;
	n = strlen(out);
	if (n < 4 || n + 2 > cap ||
	    n + 2 > sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	memcpy(out + n - 4, ".sock", 6);
	return 0;
}

static void serve_one(struct ctl *c, int fd)
{
	char cmd[2048], reply[4096];	/* a command names a key URI at most */
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	ssize_t n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0)
		return;
	if (cr.uid != 0 && cr.uid != geteuid()) {
		/* Said, so that the client's user learns why rather than
		 * seeing the connection drop. */
		snprintf(reply, sizeof(reply), "{\"ok\":false,\"error\":"
			 "\"refused: this daemon answers root and uid %ld "
			 "only, not uid %ld\"}", (long)geteuid(), (long)cr.uid);
		(void)ctl_send_line(fd, reply);
		log_warn("control socket: refused a client of uid %ld (pid %ld)",
			 (long)cr.uid, (long)cr.pid);
		return;
	}
	struct pollfd p = { fd, POLLIN, 0 };

	if (poll(&p, 1, 2000) != 1)
		return;
	n = read(fd, cmd, sizeof(cmd) - 1);
	if (n <= 0)
		return;
	cmd[n] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	c->h(cmd, reply, sizeof(reply) - 1, fd, c->ud);
	n = (ssize_t)strlen(reply);
	reply[n++] = '\n';
	if (send(fd, reply, (size_t)n, MSG_NOSIGNAL) != n)
		log_debug("control client went away");
}

struct conn {
	struct ctl *c;
	int fd;
};

static void *serve_thread(void *arg)
{
	struct conn *cn = arg;
	struct ctl *c = cn->c;

	serve_one(c, cn->fd);
	close(cn->fd);
	free(cn);
	pthread_mutex_lock(&c->mtx);
	if (--c->active == 0)
		pthread_cond_broadcast(&c->idle);
	pthread_mutex_unlock(&c->mtx);
	return NULL;
}

/* One thread per connection: a long request (rekey) must not hold up
 * status or lock. */
static void *loop(void *arg)
{
	struct ctl *c = arg;
	pthread_attr_t at;

	pthread_attr_init(&at);
	pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
	for (;;) {
		struct pollfd p[2] = { { c->fd, POLLIN, 0 },
				       { c->stop_pipe[0], POLLIN, 0 } };
		struct conn *cn;
		pthread_t t;
		int fd;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (p[1].revents)
			break;
		fd = accept4(c->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		cn = malloc(sizeof(*cn));
		if (cn == NULL) {
			close(fd);
			continue;
		}
		cn->c = c;
		cn->fd = fd;
		pthread_mutex_lock(&c->mtx);
		c->active++;
		pthread_mutex_unlock(&c->mtx);
		if (pthread_create(&t, &at, serve_thread, cn) != 0) {
			serve_thread(cn);	/* serve inline instead */
		}
	}
	pthread_attr_destroy(&at);
	return NULL;
}

int ctl_send_line(int fd, const char *line)
{
	size_t n = strlen(line);
	char buf[4200];

	if (n + 1 > sizeof(buf))
		return -EMSGSIZE;
	memcpy(buf, line, n);
	buf[n++] = '\n';
	return send(fd, buf, n, MSG_NOSIGNAL) == (ssize_t)n ? 0 : -EPIPE;
}

int ctl_start(const char *path, ctl_handler h, void *ud, struct ctl **out)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct ctl *c = calloc(1, sizeof(*c));
	mode_t old;
	int rc;

	if (c == NULL)
		return -ENOMEM;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		free(c);
		return -ENAMETOOLONG;
	}
	snprintf(c->path, sizeof(c->path), "%s", path);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	c->h = h;
	c->ud = ud;
	pthread_mutex_init(&c->mtx, NULL);
	pthread_cond_init(&c->idle, NULL);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	(void)unlink(path);
	old = umask(077);
	rc = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
	/* Its mode, not only the umask's, since the directory's check
	 * (runtime.h) is the guard and this is the belt. */
	if (rc == 0 && chmod(path, 0600) < 0)
		rc = -errno;
	if (rc == 0 && listen(c->fd, 8) < 0)
		rc = -errno;
	if (rc == 0 && pthread_create(&c->thread, NULL, loop, c) != 0)
		rc = -EAGAIN;
	if (rc < 0)
		goto fail;
	*out = c;
	return 0;
fail:
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return rc;
}

void ctl_stop(struct ctl *c)
{
	char b = 'x';

	if (c == NULL)
		return;
	if (write(c->stop_pipe[1], &b, 1) == 1)
		pthread_join(c->thread, NULL);
	/* Handlers see the daemon stopping (a rekey cancels) and end. */
	pthread_mutex_lock(&c->mtx);
	while (c->active > 0)
		pthread_cond_wait(&c->idle, &c->mtx);
	pthread_mutex_unlock(&c->mtx);
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	close(c->fd);
	(void)unlink(c->path);
	free(c);
}

/* The socket of `mountpoint` into path and, when it is in a directory
 * runtime_dir_check accepts, 0. Errors: -ENAMETOOLONG, -ENOENT (no
 * directory), -EPERM and -ENOTDIR (refused, said why). */
static int sock_path(const char *mountpoint, char *path, size_t cap,
		     bool quiet)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char *slash;
	int rc;

	rc = ctl_path(mountpoint, path, cap);
	if (rc < 0)
		return rc;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash != NULL)
		*slash = '\0';
	return runtime_dir_check(slash == dir ? "/" : dir, quiet);
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, rc;

	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	return fd;
}

/* Nobody listens: no socket file, or one that refuses (its daemon was
 * killed, or stopped without a chance to remove it). */
static bool nobody_listens(int rc)
{
	return rc == -ENOENT || rc == -ECONNREFUSED;
}

int ctl_gone(const char *mountpoint, pid_t *pid)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)], cdir[8];
	int fd;

	*pid = 0;
	if (ctl_path(mountpoint, path, sizeof(path)) < 0)
		return 0;
	fd = connect_to(path);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (!nobody_listens(fd))
		return 0;
	if (runtime_state_read(mountpoint, pid, cdir, sizeof(cdir)) < 0)
		*pid = 0;
	return 1;
}

int ctl_stale_cleanup(const char *mountpoint)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t pid;
	int removed;

	/* Only a socket that refuses counts as stale: a process that holds
	 * the recorded pid now may be anyone (pids are reused). */
	if (sock_path(mountpoint, path, sizeof(path), true) < 0 ||
	    !ctl_gone(mountpoint, &pid))
		return 0;
	removed = unlink(path) == 0 || pid > 0;
	runtime_state_remove(mountpoint);
	return removed;
}

/* The peer of fd must be the daemon the state file names, and run as
 * root or as us: anyone else at the socket's path could answer "locked"
 * while the keys stay in memory. */
static int check_peer(int fd, const char *mountpoint, const char *path)
{
	char cdir[8];
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	pid_t want;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0)
		return -errno;
	if (runtime_state_read(mountpoint, &want, cdir, sizeof(cdir)) < 0)
		want = 0;
	if ((cr.uid == 0 || cr.uid == geteuid()) && cr.pid == want)
		return 0;
	if (want > 0)
		log_err("%s: the socket %s is not served by the cmkfs daemon of "
			"this mount (pid %ld, uid %ld answers; the state file "
			"names pid %ld): refused", mountpoint, path,
			(long)cr.pid, (long)cr.uid, (long)want);
	else
		log_err("%s: the socket %s is not served by the cmkfs daemon of "
			"this mount (pid %ld, uid %ld answers; no state file "
			"names its daemon): refused", mountpoint, path,
			(long)cr.pid, (long)cr.uid);
	return -EPERM;
}

static int ctl_connect(const char *mountpoint, const char *cmd)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)], line[2048];
	int fd, rc, n;

	rc = sock_path(mountpoint, path, sizeof(path), false);
	if (rc < 0)
		return rc;
	fd = connect_to(path);
	if (fd < 0) {
		pid_t pid;
		char cdir[8];

		/* A state file but nobody listening: the daemon was killed
		 * (kill -9 leaves both files and an ENOTCONN mount). */
		if (nobody_listens(fd) &&
		    runtime_state_read(mountpoint, &pid, cdir,
				       sizeof(cdir)) == 0)
			log_err("%s: the daemon of this mount is gone (pid %ld%s); "
				"run 'cmkfs umount %s' (or 'fusermount3 -u %s') "
				"to clean up", mountpoint, (long)pid,
				kill(pid, 0) < 0 && errno == ESRCH ?
					", no such process" : ", its socket refuses",
				mountpoint, mountpoint);
		return fd;
	}
	rc = check_peer(fd, mountpoint, path);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	/* One send, no SIGPIPE: the daemon may answer and close as soon as it
	 * has read the line. */
	n = snprintf(line, sizeof(line), "%s\n", cmd);
	if (n <= 0 || (size_t)n >= sizeof(line) ||
	    send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
		close(fd);
		return -EIO;
	}
	return fd;
}

int ctl_request(const char *mountpoint, const char *cmd, char *out, size_t cap)
{
	size_t got = 0;
	int fd;

	fd = ctl_connect(mountpoint, cmd);
	if (fd < 0)
		return fd;
	while (got + 1 < cap) {
		struct pollfd p = { fd, POLLIN, 0 };
		ssize_t n;

		if (poll(&p, 1, 30000) != 1) {
			close(fd);
			return -ETIMEDOUT;
		}
		n = read(fd, out + got, cap - 1 - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	out[got] = '\0';
	out[strcspn(out, "\n")] = '\0';
	return got > 0 ? 0 : -EIO;
}

int ctl_stream(const char *mountpoint, const char *cmd, int timeout_ms,
	       int (*line_cb)(const char *line, void *arg), void *arg)
{
	char buf[8192];
	size_t got = 0;
	int fd, rc = 0;

	fd = ctl_connect(mountpoint, cmd);
	if (fd < 0)
		return fd;
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		size_t start = 0;
		char *nl;
		ssize_t n;

		while ((nl = memchr(buf + start, '\n', got - start)) != NULL) {
			*nl = '\0';
			rc = line_cb(buf + start, arg);
			start = (size_t)(nl + 1 - buf);
			if (rc != 0)
				goto out;
		}
		/* The partial line left moves to the front, once per read. */
		got -= start;
		if (start > 0)
			memmove(buf, buf + start, got);
		if (got == sizeof(buf)) {
			rc = -EMSGSIZE;
			break;
		}
		if (poll(&p, 1, timeout_ms) != 1) {
			rc = -ETIMEDOUT;
			break;
		}
		n = read(fd, buf + got, sizeof(buf) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;	/* EOF: the daemon is done */
		got += (size_t)n;
	}
out:
	close(fd);
	return rc;
}
