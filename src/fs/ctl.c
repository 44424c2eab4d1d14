/* src/fs/ctl.c — control socket of the mount daemon. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmkfs/ctl.h"
#include "cmkfs/log.h"
#include "cmkfs/mount.h"

struct ctl {
	int fd;
	int stop_pipe[2];
	pthread_t thread;
	ctl_handler h;
	void *ud;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

int ctl_path(const char *mountpoint, char *out, size_t cap)
{
	size_t n;
	int rc;

	rc = mount_state_path(mountpoint, out, cap);
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
	char cmd[64], reply[4096];
	struct ucred cr;
	socklen_t crl = sizeof(cr);
	ssize_t n;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) < 0 ||
	    (cr.uid != 0 && cr.uid != geteuid()))
		return;
	struct pollfd p = { fd, POLLIN, 0 };

	if (poll(&p, 1, 2000) != 1)
		return;
	n = read(fd, cmd, sizeof(cmd) - 1);
	if (n <= 0)
		return;
	cmd[n] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	c->h(cmd, reply, sizeof(reply) - 1, c->ud);
	n = (ssize_t)strlen(reply);
	reply[n++] = '\n';
	if (send(fd, reply, (size_t)n, MSG_NOSIGNAL) != n)
		log_debug("control client went away");
}

static void *loop(void *arg)
{
	struct ctl *c = arg;

	for (;;) {
		struct pollfd p[2] = { { c->fd, POLLIN, 0 },
				       { c->stop_pipe[0], POLLIN, 0 } };
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
		serve_one(c, fd);
		close(fd);
	}
	return NULL;
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
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || pipe2(c->stop_pipe, O_CLOEXEC) < 0) {
		rc = -errno;
		goto fail;
	}
	(void)unlink(path);
	old = umask(077);
	rc = bind(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old);
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
	close(c->stop_pipe[0]);
	close(c->stop_pipe[1]);
	close(c->fd);
	(void)unlink(c->path);
	free(c);
}

int ctl_request(const char *mountpoint, const char *cmd, char *out, size_t cap)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[sizeof(sa.sun_path)];
	size_t got = 0;
	int fd, rc;

	rc = ctl_path(mountpoint, path, sizeof(path));
	if (rc < 0)
		return rc;
	memcpy(sa.sun_path, path, strlen(path) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = errno == ENOENT ? -ENOENT : -errno;
		close(fd);
		return rc;
	}
	/* One send, no SIGPIPE: the daemon may answer and close as soon as it
	 * has read the line. */
	{
		char line[128];
		int n = snprintf(line, sizeof(line), "%s\n", cmd);

		if (n <= 0 || (size_t)n >= sizeof(line) ||
		    send(fd, line, (size_t)n, MSG_NOSIGNAL) != n) {
			close(fd);
			return -EIO;
		}
	}
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
