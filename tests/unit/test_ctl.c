/* tests/unit/test_ctl.c — the control socket (include/cmkfs/ctl.h) without
 * a mount: the socket path is the state file's with ".sock"; a request gets
 * the handler's one-line reply; a streamed command gets its progress lines
 * then the reply, in order, also a line cut across two reads; a stream
 * callback's nonzero return ends the stream with that value; a mountpoint
 * without a daemon is -ENOENT; stop removes the socket. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmkfs/ctl.h"
#include "cmkfs/runtime.h"
#include "../lib/tap.h"

#define MNT "/mnt/test-ctl"

static void handler(const char *cmd, char *reply, size_t cap, int fd,
		    void *ud)
{
	int *calls = ud;

	__atomic_add_fetch(calls, 1, __ATOMIC_SEQ_CST);
	if (strcmp(cmd, "stream") == 0) {
		for (int i = 0; i < 3; i++) {
			char line[32];

			snprintf(line, sizeof(line), "{\"step\":%d}", i);
			(void)ctl_send_line(fd, line);
		}
		snprintf(reply, cap, "{\"ok\":true,\"done\":3}");
		return;
	}
	if (strcmp(cmd, "split") == 0) {
		/* A line cut across two reads of the client. */
		(void)!write(fd, "{\"step\":0}\n{\"part", 17);
		usleep(100 * 1000);
		(void)!write(fd, "\":1}\n", 5);
		snprintf(reply, cap, "{\"ok\":true}");
		return;
	}
	snprintf(reply, cap, "{\"ok\":true,\"cmd\":\"%s\"}", cmd);
}

struct seen {
	char lines[8][64];
	int n, stop_at;
};

static int collect(const char *line, void *arg)
{
	struct seen *s = arg;

	if (s->n < 8)
		snprintf(s->lines[s->n], sizeof(s->lines[0]), "%s", line);
	s->n++;
	return s->n == s->stop_at ? 42 : 0;
}

int main(void)
{
	const char *tmp = getenv("TMPDIR");
	char top[PATH_MAX], sock[PATH_MAX], state[PATH_MAX], out[256];
	struct seen s = { .stop_at = 0 };
	struct ctl *c = NULL;
	int calls = 0;

	snprintf(top, sizeof(top), "%s/cmkfs-test_ctl.XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (mkdtemp(top) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	setenv("CMKFS_RUNTIME_DIR", top, 1);
	CHECK_RC(ctl_path(MNT, sock, sizeof(sock)), 0);
	CHECK_RC(runtime_state_path(MNT, state, sizeof(state)), 0);
	CHECK(strlen(sock) == strlen(state) + 1 &&
		      strncmp(sock, state, strlen(state) - 4) == 0 &&
		      strcmp(sock + strlen(sock) - 5, ".sock") == 0,
	      "socket %s vs state %s", sock, state);

	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -ENOENT);
	CHECK_RC(ctl_start(sock, handler, &calls, &c), 0);
	if (c == NULL)
		return t_done("test_ctl");
	CHECK(access(sock, F_OK) == 0, "%s missing", sock);

	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), 0);
	CHECK(strcmp(out, "{\"ok\":true,\"cmd\":\"status\"}") == 0, "got %s",
	      out);
	CHECK_RC(ctl_stream(MNT, "stream", 5000, collect, &s), 0);
	CHECK(s.n == 4, "%d lines", s.n);
	CHECK(strcmp(s.lines[0], "{\"step\":0}") == 0 &&
		      strcmp(s.lines[2], "{\"step\":2}") == 0 &&
		      strcmp(s.lines[3], "{\"ok\":true,\"done\":3}") == 0,
	      "lines %s %s %s", s.lines[0], s.lines[2], s.lines[3]);
	memset(&s, 0, sizeof(s));
	s.stop_at = 2;
	CHECK_RC(ctl_stream(MNT, "stream", 5000, collect, &s), 42);
	CHECK(s.n == 2, "%d lines after a stop", s.n);

	memset(&s, 0, sizeof(s));
	CHECK_RC(ctl_stream(MNT, "split", 5000, collect, &s), 0);
	CHECK(s.n == 3 && strcmp(s.lines[0], "{\"step\":0}") == 0 &&
		      strcmp(s.lines[1], "{\"part\":1}") == 0 &&
		      strcmp(s.lines[2], "{\"ok\":true}") == 0,
	      "%d lines: %s %s", s.n, s.lines[0], s.lines[1]);

	ctl_stop(c);
	CHECK(access(sock, F_OK) != 0, "%s left behind", sock);
	CHECK(__atomic_load_n(&calls, __ATOMIC_SEQ_CST) == 4, "%d calls",
	      calls);
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -ENOENT);
	rmdir(top);
	return t_done("test_ctl");
}
