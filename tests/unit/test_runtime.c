/* tests/unit/test_runtime.c — the runtime state file and the mountinfo
 * parser (include/cmkfs/runtime.h), without a mount: the state path is
 * stable per mountpoint, distinct between mountpoints and under
 * $CMKFS_RUNTIME_DIR; write then read gives back this pid and the cipher
 * directory; malformed or missing files read as -ENOENT; the directory is
 * made 0700 when missing, the state file 0600 even under umask 0 (the
 * daemon's). A runtime directory that is group or other accessible,
 * owned by another uid, or a symlink is refused: nothing written there,
 * nothing read from it. mountinfo lines: fuse.cmkfs found with and
 * without optional fields, \ooo unescaped, other types and malformed lines
 * refused. Unmounting a directory that is no mount fails; waiting for a
 * process returns once it is gone, or -ETIMEDOUT while it runs. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/runtime.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

static char top[PATH_MAX];

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return;
	fputs(text, f);
	fclose(f);
}

static void state_path(void)
{
	char a[PATH_MAX], a2[PATH_MAX], b[PATH_MAX], small[16];
	size_t n = strlen(top);

	CHECK_RC(runtime_state_path("/mnt/a", a, sizeof(a)), 0);
	CHECK_RC(runtime_state_path("/mnt/a", a2, sizeof(a2)), 0);
	CHECK_RC(runtime_state_path("/mnt/b", b, sizeof(b)), 0);
	CHECK(strcmp(a, a2) == 0, "%s != %s", a, a2);
	CHECK(strcmp(a, b) != 0, "two mountpoints share %s", a);
	CHECK(strncmp(a, top, n) == 0 && a[n] == '/', "%s not under %s", a,
	      top);
	/* 16 hex digits of sha256(mountpoint), then ".pid" */
	CHECK(strlen(a) == n + 1 + 16 + 4, "%s: bad length", a);
	CHECK(strspn(a + n + 1, "0123456789abcdef") == 16, "%s: not hex", a);
	CHECK(strcmp(a + n + 17, ".pid") == 0, "%s: no .pid", a);
	CHECK_RC(runtime_state_path("/mnt/a", small, sizeof(small)),
		 -ENAMETOOLONG);
}

static void state_round_trip(void)
{
	char path[PATH_MAX], cdir[PATH_MAX], shortbuf[5];
	pid_t pid = 0;

	CHECK_RC(runtime_state_path("/mnt/rt", path, sizeof(path)), 0);
	CHECK_RC(runtime_state_read("/mnt/rt", &pid, cdir, sizeof(cdir)),
		 -ENOENT);
	CHECK_RC(runtime_state_write("/mnt/rt", "/srv/cipher dir"), 0);
	CHECK_RC(runtime_state_read("/mnt/rt", &pid, cdir, sizeof(cdir)), 0);
	CHECK(pid == getpid(), "pid %ld, want %ld", (long)pid, (long)getpid());
	CHECK(strcmp(cdir, "/srv/cipher dir") == 0, "cipherdir '%s'", cdir);
	CHECK_RC(runtime_state_read("/mnt/rt", &pid, shortbuf,
				    sizeof(shortbuf)), 0);
	CHECK(strcmp(shortbuf, "/srv") == 0, "truncated to '%s'", shortbuf);
	/* Another mountpoint has no state. */
	CHECK_RC(runtime_state_read("/mnt/other", &pid, cdir, sizeof(cdir)),
		 -ENOENT);
	runtime_state_remove("/mnt/rt");
	CHECK(access(path, F_OK) != 0, "%s still there", path);
	CHECK_RC(runtime_state_read("/mnt/rt", &pid, cdir, sizeof(cdir)),
		 -ENOENT);
	runtime_state_remove("/mnt/rt");	/* missing: fine */
}

static void state_malformed(void)
{
	static const char *const bad[] = { "", "abc\n/c\n", "0\n/c\n",
					   "-5\n/c\n", "42\n", "42 \n/c\n",
					   "42" };
	char path[PATH_MAX], cdir[64] = "untouched";
	pid_t pid = 7;

	CHECK_RC(runtime_state_path("/mnt/bad", path, sizeof(path)), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		write_file(path, bad[i]);
		CHECK_RC(runtime_state_read("/mnt/bad", &pid, cdir,
					    sizeof(cdir)), -ENOENT);
	}
	CHECK(pid == 7 && strcmp(cdir, "untouched") == 0,
	      "outputs changed on error");
	write_file(path, "42\n/c\n");
	CHECK_RC(runtime_state_read("/mnt/bad", &pid, cdir, sizeof(cdir)), 0);
	CHECK(pid == 42 && strcmp(cdir, "/c") == 0, "pid %ld cdir '%s'",
	      (long)pid, cdir);
	runtime_state_remove("/mnt/bad");
}

static void state_dir_made(void)
{
	char sub[PATH_MAX + 8];
	struct stat st;
	pid_t pid;
	char cdir[64];

	snprintf(sub, sizeof(sub), "%s/sub", top);
	setenv("CMKFS_RUNTIME_DIR", sub, 1);
	CHECK_RC(runtime_state_write("/mnt/d", "/c"), 0);
	CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode) &&
		      (st.st_mode & 07777) == 0700,
	      "%s: mode %o", sub, (unsigned)st.st_mode);
	CHECK_RC(runtime_state_read("/mnt/d", &pid, cdir, sizeof(cdir)), 0);
	runtime_state_remove("/mnt/d");
	setenv("CMKFS_RUNTIME_DIR", top, 1);
}

static void state_file_mode(void)
{
	char path[PATH_MAX];
	struct stat st;
	mode_t old = umask(0);

	CHECK_RC(runtime_state_write("/mnt/mode", "/c"), 0);
	umask(old);
	CHECK_RC(runtime_state_path("/mnt/mode", path, sizeof(path)), 0);
	CHECK(stat(path, &st) == 0 && (st.st_mode & 07777) == 0600,
	      "%s: mode %o", path, (unsigned)st.st_mode);
	runtime_state_remove("/mnt/mode");
}

/* dir made by the test, its mode or owner then spoiled: refused. */
static void unsafe_dir(const char *name, mode_t mode, uid_t uid, int want)
{
	char d[PATH_MAX + 16], cdir[64];
	pid_t pid = 0;

	snprintf(d, sizeof(d), "%s/%s", top, name);
	CHECK(mkdir(d, 0700) == 0, "mkdir %s", d);
	setenv("CMKFS_RUNTIME_DIR", d, 1);
	/* state from when it was still ours */
	CHECK_RC(runtime_state_write("/mnt/u", "/c"), 0);
	CHECK(chmod(d, mode) == 0 && chown(d, uid, (gid_t)-1) == 0,
	      "chmod/chown %s", d);
	CHECK_RC(runtime_dir_check(d, true), want);
	CHECK_RC(runtime_mkdir(), want);
	CHECK_RC(runtime_state_write("/mnt/u2", "/c"), want);
	CHECK_RC(runtime_state_read("/mnt/u", &pid, cdir, sizeof(cdir)),
		 -ENOENT);
	setenv("CMKFS_RUNTIME_DIR", top, 1);
}

static void dir_refused(void)
{
	char link[PATH_MAX + 16];

	CHECK_RC(runtime_dir_check(top, true), 0);
	unsafe_dir("group", 0750, geteuid(), -EPERM);
	unsafe_dir("other", 0701, geteuid(), -EPERM);
	if (geteuid() == 0)
		unsafe_dir("theirs", 0700, 65534, -EPERM);
	snprintf(link, sizeof(link), "%s/link", top);
	CHECK(symlink(top, link) == 0, "symlink %s", link);
	CHECK_RC(runtime_dir_check(link, true), -ENOTDIR);
	setenv("CMKFS_RUNTIME_DIR", link, 1);
	CHECK_RC(runtime_state_write("/mnt/l", "/c"), -ENOTDIR);
	setenv("CMKFS_RUNTIME_DIR", top, 1);
	CHECK_RC(runtime_dir_check("/nonexistent/cmkfs", true), -ENOENT);
}

/* Parse a copy of `text`; compare what it found. */
static void mi(const char *text, int want, const char *want_mnt,
	       const char *want_src)
{
	char line[512];
	char *mnt = NULL, *src = NULL;
	int got;

	snprintf(line, sizeof(line), "%s", text);
	got = runtime_mountinfo_parse(line, &mnt, &src);
	CHECK(got == want, "'%s': got %d, want %d", text, got, want);
	if (got != 1 || want != 1) {
		CHECK(mnt == NULL && src == NULL, "'%s': outputs set", text);
		return;
	}
	CHECK(strcmp(mnt, want_mnt) == 0, "'%s': mountpoint '%s'", text, mnt);
	CHECK(strcmp(src, want_src) == 0, "'%s': source '%s'", text, src);
}

static void mountinfo(void)
{
	mi("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root "
	   "rw,errors=continue\n", 0, NULL, NULL);
	mi("120 25 0:50 / /mnt/x rw,nosuid,nodev,relatime shared:70 - "
	   "fuse.cmkfs /srv/c rw,user_id=0,group_id=0,default_permissions\n",
	   1, "/mnt/x", "/srv/c");
	/* no optional fields, several of them, no trailing newline */
	mi("121 25 0:51 / /m rw - fuse.cmkfs /c rw\n", 1, "/m", "/c");
	mi("122 25 0:52 / /m2 rw shared:1 master:2 propagate_from:3 - "
	   "fuse.cmkfs /c2 rw", 1, "/m2", "/c2");
	/* space, tab, newline and backslash arrive as \ooo */
	mi("123 25 0:53 / /mnt/with\\040space\\011tab rw - fuse.cmkfs "
	   "/srv/back\\134slash\\012nl rw\n", 1, "/mnt/with space\ttab",
	   "/srv/back\\slash\nnl");
	/* a backslash not followed by three octal digits stays */
	mi("124 25 0:54 / /a\\x rw - fuse.cmkfs /b\\9 rw\n", 1, "/a\\x",
	   "/b\\9");
	mi("125 25 0:55 / /a\\04 rw - fuse.cmkfs /b rw\n", 1, "/a\\04", "/b");
	/* other FUSE filesystems, other types */
	mi("126 25 0:56 / /m rw - fuse.sshfs host:/ rw\n", 0, NULL, NULL);
	mi("127 25 0:57 / /m rw - fuse /c rw\n", 0, NULL, NULL);
	mi("128 25 0:58 / /m rw - fuse.cmkfsx /c rw\n", 0, NULL, NULL);
	/* malformed */
	mi("", 0, NULL, NULL);
	mi("\n", 0, NULL, NULL);
	mi("garbage without a separator\n", 0, NULL, NULL);
	mi("1 2 0:1 / - fuse.cmkfs /c rw\n", 0, NULL, NULL);
	mi("1 2 0:1 / /m rw - fuse.cmkfs\n", 0, NULL, NULL);
	mi("1 2 0:1 / /m rw - \n", 0, NULL, NULL);
	mi(" - fuse.cmkfs /c rw\n", 0, NULL, NULL);
}

static void find_none(void)
{
	char cdir[64] = "", mnt[64] = "";

	/* Nothing is mounted on a fresh temporary directory. */
	CHECK(runtime_find(top, cdir, sizeof(cdir), mnt, sizeof(mnt)) == 0,
	      "%s found mounted", top);
	CHECK(cdir[0] == '\0' && mnt[0] == '\0', "outputs set");
}

static void unmount_and_wait(void)
{
	struct timespec t0, t1;
	pid_t pid;
	long ms;

	/* root: umount2 says EINVAL; others: fusermount3 fails */
	CHECK_RC(runtime_unmount(top), geteuid() == 0 ? -EINVAL : -EPERM);

	CHECK_RC(runtime_wait_exit(0, 60000), 0);
	/* children reaped at once: no zombie answers kill(pid, 0) */
	signal(SIGCHLD, SIG_IGN);
	pid = fork();
	if (pid == 0) {
		usleep(200 * 1000);
		_exit(0);
	}
	CHECK(pid > 0, "fork");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_RC(runtime_wait_exit(pid, 10000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	CHECK(ms >= 100 && ms < 5000, "waited %ld ms for the exit", ms);

	pid = fork();
	if (pid == 0) {
		for (;;)
			pause();
	}
	CHECK(pid > 0, "fork");
	CHECK_RC(runtime_wait_exit(pid, 300), -ETIMEDOUT);
	kill(pid, SIGKILL);
	CHECK_RC(runtime_wait_exit(pid, 10000), 0);
	signal(SIGCHLD, SIG_DFL);
}

int main(void)
{
	if (tvol_tmpdir("test_runtime", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	setenv("CMKFS_RUNTIME_DIR", top, 1);
	state_path();
	state_round_trip();
	state_malformed();
	state_dir_made();
	state_file_mode();
	dir_refused();
	mountinfo();
	find_none();
	unmount_and_wait();
	(void)tvol_rmtree(top);
	return t_done("test_runtime");
}
