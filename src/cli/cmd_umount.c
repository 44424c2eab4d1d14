/* src/cli/cmd_umount.c — `cmkfs umount MOUNTPOINT`: unmount, then wait for
 * the daemon to finish (it has written everything to the backing files
 * when it exits); both in include/cmkfs/runtime.h. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmkfs/ctl.h"
#include "cmkfs/runtime.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs umount MOUNTPOINT\n"
		"\n"
		"Unmount a cmkfs mount and wait (up to 60 s) until its daemon has\n"
		"exited. Fails with EBUSY while files are open on the mount.\n"
		"\n"
		"  -h, --help           this text\n");
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
	if (!runtime_find(mnt, cdir, sizeof(cdir), m2, sizeof(m2))) {
		/* Unmounted by hand after its daemon was killed: what the
		 * daemon left goes, the answer stays. */
		if (ctl_stale_cleanup(mnt))
			return cli_fail("umount", "%s: not a cmkfs mount (removed "
						  "the runtime files its killed "
						  "daemon left)", mnt);
		return cli_fail("umount", "%s: not a cmkfs mount", mnt);
	}
	if (strcmp(m2, mnt) != 0)
		return cli_fail("umount", "%s is a cipher directory; give its "
					  "mountpoint %s",
				mnt, m2);
	if (runtime_state_read(mnt, &pid, cdir, sizeof(cdir)) < 0)
		pid = 0;
	rc = runtime_unmount(mnt);
	if (rc < 0)
		return cli_fail("umount", "%s: %s", mnt,
				rc == -EBUSY ? "busy: files are still open on "
					       "it (see fuser -vm)" :
					       strerror(-rc));
	if (runtime_wait_exit(pid, 60000) < 0)
		return cli_fail("umount", "%s unmounted, but daemon %ld has not "
					  "exited after 60 s",
				mnt, (long)pid);
	/* A daemon that exits removes its files; a killed one could not. */
	(void)ctl_stale_cleanup(mnt);
	return CMK_EXIT_OK;
}
