/* tests/unit/test_ctl.c — the control socket (include/cmkfs/ctl.h) without
 * a mount: the socket path is the state file's with ".sock"; a request gets
 * the handler's one-line reply; a streamed command gets its progress lines
 * then the reply, in order, also a line cut across two reads; a stream
 * callback's nonzero return ends the stream with that value; a mountpoint
 * without a daemon is -ENOENT; stop removes the socket. The ctlcmd client
 * functions (lock, reload, sweep) decode a fake daemon's replies: each
 * flag true only where the reply says true at its top level, everything
 * false in a reply that is no JSON or has other types, the line kept for
 * messages; and they decode what ctlcmd_handle itself answers for a real
 * monitor over a temporary volume, an audit log path with a quote in it
 * included. The client talks only to the process the state file names:
 * with no state file, or one naming another pid, a request is refused
 * (-EPERM) and the handler never runs; so is a runtime directory open to
 * others. A killed daemon (a socket file nobody listens on, a state file
 * naming a dead pid) reads as gone with its pid, and its stale files are
 * removed; a live one is left alone. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/ctl.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/monitor.h"
#include "cmkfs/runtime.h"
#include "cmkfs/volio.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define MNT "/mnt/test-ctl"

/* What the fake daemon answers to "lock", "reload" and "sweep". */
static const char *canned;

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
	if (canned != NULL && (strcmp(cmd, "lock") == 0 ||
			       strcmp(cmd, "reload") == 0 ||
			       strcmp(cmd, "sweep") == 0)) {
		snprintf(reply, cap, "%s", canned);
		return;
	}
	snprintf(reply, cap, "{\"ok\":true,\"cmd\":\"%s\"}", cmd);
}

/* The client functions against the fake daemon's canned replies. */
static void client_fake(void)
{
	static const struct {
		const char *reply;
		bool ok, locked, last_check_ok;
	} cases[] = {
		{ "{\"ok\":true,\"locked\":true,\"manual_lock\":true,"
		  "\"last_check_ok\":true}", true, true, true },
		{ "{\"ok\":true,\"locked\":false,\"manual_lock\":true,"
		  "\"last_check_ok\":false}", true, false, false },
		{ "{\"ok\":false,\"error\":\"volume config is malformed\"}",
		  false, false, false },
		/* nested or in a string: not the reply's own */
		{ "{\"ok\":false,\"x\":{\"ok\":true,\"locked\":true},"
		  "\"error\":\"\\\"last_check_ok\\\":true\"}",
		  false, false, false },
		{ "{\"ok\":\"true\",\"locked\":1,\"last_check_ok\":null}",
		  false, false, false },
		{ "not json \"locked\":true", false, false, false },
		{ "{\"ok\":true,\"locked\":true", false, false, false },
	};
	int (*const fn[])(const char *, struct ctlcmd_state *) = {
		ctlcmd_lock, ctlcmd_reload, ctlcmd_sweep
	};
	struct ctlcmd_state st;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		canned = cases[i].reply;
		for (size_t f = 0; f < 3; f++) {
			CHECK_RC(fn[f](MNT, &st), 0);
			CHECK(st.ok == cases[i].ok &&
				      st.locked == cases[i].locked &&
				      st.last_check_ok ==
					      cases[i].last_check_ok &&
				      strcmp(st.reply, cases[i].reply) == 0,
			      "case %zu fn %zu: %d %d %d %s", i, f, st.ok,
			      st.locked, st.last_check_ok, st.reply);
		}
	}
	canned = NULL;
}

/* The client functions against ctlcmd_handle over a real monitor. */
static void client_real(const char *top)
{
	struct monitor_cfg cfg = {
		.interval_sec = 3600,
		.grace_sec = 3600,
		.open_providers = volio_providers,
		.strerror = volio_strerror,
	};
	struct ctlcmd c = { 0 };
	struct ctlcmd_state st;
	struct keyring *kr = NULL;
	struct ctl *ctl = NULL;
	char vol[PATH_MAX + 16], key[PATH_MAX + 16], alog[PATH_MAX + 16],
		esc[PATH_MAX + 64], sock[PATH_MAX];
	int rootfd;

	snprintf(vol, sizeof(vol), "%s/vol", top);
	snprintf(key, sizeof(key), "%s/service.key", top);
	snprintf(alog, sizeof(alog), "%s/a\"b\\c.log", top);
	snprintf(esc, sizeof(esc), "\"audit_log\":\"%s/a\\\"b\\\\c.log\"",
		 top);
	audit_open(alog);
	CHECK_RC(tvol_create(vol, key, 0), 0);
	CHECK_RC(tvol_unlock(vol, key, &rootfd, &kr), 0);
	if (kr == NULL)
		return;
	cfg.service_key = key;
	CHECK_RC(monitor_start(kr, &cfg, &c.mon), 0);
	if (c.mon == NULL)
		return;
	c.cipherdir = vol;
	c.service_key = key;
	c.rootfd = rootfd;
	c.kr = kr;
	ctlcmd_init(&c);
	CHECK_RC(ctl_path(MNT, sock, sizeof(sock)), 0);
	CHECK_RC(ctl_start(sock, ctlcmd_handle, &c, &ctl), 0);

	CHECK_RC(ctlcmd_lock(MNT, &st), 0);
	CHECK(st.ok && st.locked, "lock: %s", st.reply);
	CHECK(strstr(st.reply, esc) != NULL, "audit log escaped: %s",
	      st.reply);
	/* a reload proves the key with a check */
	CHECK_RC(ctlcmd_reload(MNT, &st), 0);
	CHECK(st.ok && st.last_check_ok, "reload: %s", st.reply);

	ctl_stop(ctl);
	monitor_stop(c.mon);
	ctlcmd_destroy(&c);
	keyring_free(kr);
	close(rootfd);
	CHECK_RC(ctlcmd_lock(MNT, &st), -ENOENT);
	CHECK(!st.ok && !st.locked && !st.last_check_ok && st.reply[0] == '\0',
	      "no daemon: %s", st.reply);
}

/* The peer checks of the client, against the fake daemon of main. */
static void peer_checked(const char *top, int *calls)
{
	char state[PATH_MAX], out[256];
	int before = __atomic_load_n(calls, __ATOMIC_SEQ_CST);
	FILE *f;

	CHECK_RC(runtime_state_path(MNT, state, sizeof(state)), 0);
	runtime_state_remove(MNT);
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -EPERM);
	f = fopen(state, "w");	/* a pid that is not ours */
	if (f != NULL) {
		fprintf(f, "%ld\n/c\n", (long)getppid());
		fclose(f);
	}
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -EPERM);
	CHECK_RC(runtime_state_write(MNT, "/c"), 0);
	CHECK(chmod(top, 0755) == 0, "chmod");
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -EPERM);
	CHECK(chmod(top, 0700) == 0, "chmod");
	CHECK(__atomic_load_n(calls, __ATOMIC_SEQ_CST) == before,
	      "a refused request reached the handler");
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), 0);
	__atomic_sub_fetch(calls, 1, __ATOMIC_SEQ_CST);
}

/* What kill -9 leaves: a socket file nobody listens on and a state file
 * naming a dead pid. */
static void stale_files(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char sock[PATH_MAX], state[PATH_MAX], out[256];
	pid_t pid, dead = 0;
	FILE *f;
	int fd;

	CHECK_RC(ctl_path(MNT, sock, sizeof(sock)), 0);
	CHECK_RC(runtime_state_path(MNT, state, sizeof(state)), 0);
	pid = fork();
	if (pid == 0)
		_exit(0);
	CHECK(pid > 0 && waitpid(pid, NULL, 0) == pid, "fork");
	CHECK(strlen(sock) < sizeof(sa.sun_path), "%s: too long", sock);
	memcpy(sa.sun_path, sock, strlen(sock) + 1);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	      "bind %s", sock);
	close(fd);
	f = fopen(state, "w");
	if (f != NULL) {
		fprintf(f, "%ld\n/c\n", (long)pid);
		fclose(f);
	}
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -ECONNREFUSED);
	CHECK(ctl_gone(MNT, &dead) == 1 && dead == pid, "gone: pid %ld",
	      (long)dead);
	CHECK(ctl_stale_cleanup(MNT) == 1, "nothing cleaned");
	CHECK(access(sock, F_OK) != 0 && access(state, F_OK) != 0,
	      "stale files left");
	CHECK(ctl_stale_cleanup(MNT) == 0, "cleaned twice");
	CHECK(ctl_gone(MNT, &dead) == 1 && dead == 0, "gone: pid %ld",
	      (long)dead);
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
	char top[PATH_MAX], sock[PATH_MAX], state[PATH_MAX], out[256];
	struct seen s = { .stop_at = 0 };
	struct ctl *c = NULL;
	int calls = 0;

	if (tvol_tmpdir("test_ctl", top, sizeof(top)) < 0) {
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
	peer_checked(top, &calls);
	{
		pid_t p;

		CHECK(ctl_gone(MNT, &p) == 0, "a live daemon counts as gone");
		CHECK(ctl_stale_cleanup(MNT) == 0 && access(sock, F_OK) == 0 &&
			      access(state, F_OK) == 0,
		      "a live daemon's files were removed");
	}

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

	client_fake();
	ctl_stop(c);
	CHECK(access(sock, F_OK) != 0, "%s left behind", sock);
	CHECK(__atomic_load_n(&calls, __ATOMIC_SEQ_CST) == 4 + 7 * 3,
	      "%d calls", calls);
	CHECK_RC(ctl_request(MNT, "status", out, sizeof(out)), -ENOENT);
	client_real(top);
	stale_files();
	(void)tvol_rmtree(top);
	return t_done("test_ctl");
}
