/* src/cli/cmd_umount.c — `cmkfs umount MOUNTPOINT`: unmount, then wait for
 * the daemon to finish (it has written everything to the backing files
 * when it exits). */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/runtime.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs umount MOUNTPOINT\n"
		"\n"
		"Unmount a cmkfs mount and wait (up to 60 s) until its daemon has\n"
		"exited. Fails with EBUSY while files are open on the mount.\n");
}

static int do_unmount(const char *mnt)
{
	pid_t pid;
	int status;

	if (geteuid() == 0)
		return umount2(mnt, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", mnt,
		       (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -EPERM;
	return 0;
}

int cmd_umount(int argc, char **argv)
{
	char mnt[PATH_MAX], cdir[PATH_MAX], m2[PATH_MAX];
	pid_t pid = 0;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return CMK_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("umount", "expected one MOUNTPOINT");
	if (realpath(argv[1], mnt) == NULL) {
		/* A dead daemon leaves ENOTCONN: use the path as given. */
		snprintf(mnt, sizeof(mnt), "%s", argv[1]);
	}
	if (!runtime_find(mnt, cdir, sizeof(cdir), m2, sizeof(m2)))
		return cli_fail("umount", "%s: not a cmkfs mount", mnt);
	if (strcmp(m2, mnt) != 0)
		return cli_fail("umount", "%s is a cipher directory; give its "
					  "mountpoint %s",
				mnt, m2);
	if (runtime_state_read(mnt, &pid, cdir, sizeof(cdir)) < 0)
		pid = 0;
	rc = do_unmount(mnt);
	if (rc < 0)
		return cli_fail("umount", "%s: %s", mnt,
				rc == -EBUSY ? "busy: files are still open on "
					       "it (see fuser -vm)" :
					       strerror(-rc));
	for (int i = 0; pid > 0 && i < 600; i++) {
		struct timespec ts = { 0, 100000000 };

		if (kill(pid, 0) < 0 && errno == ESRCH)
			return CMK_EXIT_OK;
		nanosleep(&ts, NULL);
	}
	if (pid > 0 && kill(pid, 0) == 0)
		return cli_fail("umount", "%s unmounted, but daemon %ld has not "
					  "exited after 60 s",
				mnt, (long)pid);
	return CMK_EXIT_OK;
}
