/* tests/unit/test_sdnotify.c — sd_notify(3) without systemd
 * (include/cmkfs/sdnotify.h): a message reaches a datagram socket named
 * by $NOTIFY_SOCKET as a path and in the abstract namespace ('@'), byte
 * for byte; without $NOTIFY_SOCKET, or with a relative or too long name,
 * nothing is sent and nothing fails. */
#include "config.h"

#include <limits.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmkfs/sdnotify.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

/* A datagram socket bound at `name` (leading '@': abstract). */
static int listener(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || n >= sizeof(sa.sun_path))
		return -1;
	memcpy(sa.sun_path, name, n);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	if (bind(fd, (struct sockaddr *)&sa,
		 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* The next datagram within 2 s into buf; its length, or -1. */
static ssize_t next(int fd, char *buf, size_t cap, int timeout_ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	ssize_t n;

	if (poll(&p, 1, timeout_ms) != 1)
		return -1;
	n = recv(fd, buf, cap - 1, 0);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

static void sends_to(const char *name)
{
	static const char msg[] =
		"READY=1\nMAINPID=42\nSTATUS=serving /c on /m";
	char buf[256];
	int fd = listener(name);

	CHECK(fd >= 0, "cannot bind %s", name);
	if (fd < 0)
		return;
	setenv("NOTIFY_SOCKET", name, 1);
	sdnotify_send(msg);
	CHECK(next(fd, buf, sizeof(buf), 2000) == (ssize_t)strlen(msg),
	      "%s: no or short datagram", name);
	CHECK(strcmp(buf, msg) == 0, "%s: got '%s'", name, buf);
	sdnotify_send("STOPPING=1");
	CHECK(next(fd, buf, sizeof(buf), 2000) == 10 &&
		      strcmp(buf, "STOPPING=1") == 0,
	      "%s: got '%s'", name, buf);
	close(fd);
}

static void ignored(const char *value, int fd)
{
	char buf[64];

	if (value != NULL)
		setenv("NOTIFY_SOCKET", value, 1);
	else
		unsetenv("NOTIFY_SOCKET");
	sdnotify_send("READY=1");
	CHECK(next(fd, buf, sizeof(buf), 100) < 0, "'%s': something came",
	      value ? value : "(unset)");
}

int main(void)
{
	char dir[PATH_MAX], path[PATH_MAX + 16], abstract[64];
	char longname[200];
	int fd;

	if (tvol_tmpdir("test_sdnotify", dir, sizeof(dir)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/notify", dir);
	if (strlen(path) < sizeof(((struct sockaddr_un *)0)->sun_path))
		sends_to(path);
	snprintf(abstract, sizeof(abstract), "@cmkfs-test-sdnotify-%ld",
		 (long)getpid());
	sends_to(abstract);
	/* Nothing reaches the abstract socket for these. */
	fd = listener(abstract);
	CHECK(fd >= 0, "cannot bind %s", abstract);
	if (fd >= 0) {
		ignored(NULL, fd);
		ignored("", fd);
		ignored(abstract + 1, fd);	/* relative: not a socket name */
		memset(longname, 'x', sizeof(longname) - 1);
		longname[0] = '@';
		longname[sizeof(longname) - 1] = '\0';
		ignored(longname, fd);
		close(fd);
	}
	unlink(path);
	rmdir(dir);
	return t_done("test_sdnotify");
}
