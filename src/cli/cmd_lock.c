/* src/cli/cmd_lock.c — `cmkfs lock MOUNTPOINT`: wipe a running mount's keys
 * now. The mount stays locked until its next successful key check. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/runtime.h"

int cmd_lock(int argc, char **argv)
{
	char mnt[PATH_MAX], cdir[PATH_MAX], m2[PATH_MAX];
	struct ctlcmd_state st;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0)) {
		printf("Usage: cmkfs lock MOUNTPOINT\n\n"
		       "Wipe the keys of a running mount at once: every access\n"
		       "then fails with EKEYREVOKED ('Key has been revoked'). The\n"
		       "mount resumes by itself at its next successful key check\n"
		       "(--key-check-interval), i.e. once it can unwrap again.\n");
		return CMK_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("lock", "expected one MOUNTPOINT");
	if (realpath(argv[1], mnt) == NULL)
		snprintf(mnt, sizeof(mnt), "%s", argv[1]);
	if (!runtime_find(mnt, cdir, sizeof(cdir), m2, sizeof(m2)) ||
	    strcmp(m2, mnt) != 0)
		return cli_fail("lock", "%s: not a cmkfs mountpoint", mnt);
	rc = ctlcmd_lock(mnt, &st);
	if (rc < 0)
		return cli_fail("lock", "%s: daemon unreachable: %s", mnt,
				strerror(-rc));
	if (!st.locked)
		return cli_fail("lock", "%s: daemon did not lock: %s", mnt,
				st.reply);
	printf("%s: locked, keys wiped\n", mnt);
	return CMK_EXIT_OK;
}
