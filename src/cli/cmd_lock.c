/* src/cli/cmd_lock.c — `cmkfs lock MOUNTPOINT`: wipe a running mount's keys
 * now; they stay wiped until `cmkfs unlock MOUNTPOINT`, which has the
 * daemon prove the keys again (a key check) before it unlocks. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/json.h"
#include "cmkfs/runtime.h"

/* The mountpoint argument of lock and unlock, resolved and known to be a
 * cmkfs mount; else the exit code to return. */
static int mountpoint_arg(const char *cmd, const char *arg, char *mnt,
			  size_t cap)
{
	char cdir[PATH_MAX], m2[PATH_MAX];

	if (realpath(arg, mnt) == NULL)
		snprintf(mnt, cap, "%s", arg);
	if (!runtime_find(mnt, cdir, sizeof(cdir), m2, sizeof(m2)) ||
	    strcmp(m2, mnt) != 0)
		return cli_fail(cmd, "%s: not a cmkfs mountpoint", mnt);
	return CMK_EXIT_OK;
}

int cmd_lock(int argc, char **argv)
{
	char mnt[PATH_MAX];
	struct ctlcmd_state st;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0)) {
		printf("Usage: cmkfs lock MOUNTPOINT\n\n"
		       "Wipe the keys of a running mount at once: every access\n"
		       "then fails with EKEYREVOKED ('Key has been revoked'). The\n"
		       "mount stays locked, whatever its key checks find, until\n"
		       "'cmkfs unlock MOUNTPOINT' proves the keys again.\n\n"
		       "  -h, --help           this text\n");
		return CMK_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("lock", "expected one MOUNTPOINT");
	rc = mountpoint_arg("lock", argv[1], mnt, sizeof(mnt));
	if (rc != CMK_EXIT_OK)
		return rc;
	rc = ctlcmd_lock(mnt, &st);
	if (rc < 0)
		return cli_fail("lock", "%s: daemon unreachable: %s", mnt,
				strerror(-rc));
	if (!st.locked)
		return cli_fail("lock", "%s: daemon did not lock: %s", mnt,
				st.reply);
	printf("%s: locked, keys wiped; 'cmkfs unlock %s' resumes\n", mnt,
	       mnt);
	return CMK_EXIT_OK;
}

/* The daemon's "error" member, or the whole reply without one. */
static void reply_error(const char *reply, char *out, size_t cap)
{
	struct json *j = NULL;
	const char *e;

	snprintf(out, cap, "%s", reply);
	if (json_parse(reply, strlen(reply), &j) < 0)
		return;
	if (json_str(j, "error", &e) == 0)
		snprintf(out, cap, "%s", e);
	json_free(j);
}

int cmd_unlock(int argc, char **argv)
{
	char mnt[PATH_MAX], err[sizeof(((struct ctlcmd_state *)0)->reply)];
	struct ctlcmd_state st;
	int rc;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 ||
			  strcmp(argv[1], "--help") == 0)) {
		printf("Usage: cmkfs unlock MOUNTPOINT\n\n"
		       "End a lock ('cmkfs lock', or one a key check caused):\n"
		       "the daemon runs a key check now (the service key, and\n"
		       "Key Vault for a customer-managed key) and unlocks only if\n"
		       "it succeeds. Exit status: 0 unlocked (or was not\n"
		       "locked), 5 the check failed and the mount stays locked\n"
		       "(the message says why), 1 error, 2 usage.\n\n"
		       "  -h, --help           this text\n");
		return CMK_EXIT_OK;
	}
	if (argc != 2 || argv[1][0] == '-')
		return cli_usage_error("unlock", "expected one MOUNTPOINT");
	rc = mountpoint_arg("unlock", argv[1], mnt, sizeof(mnt));
	if (rc != CMK_EXIT_OK)
		return rc;
	rc = ctlcmd_unlock(mnt, &st);
	if (rc < 0)
		return cli_fail("unlock", "%s: daemon unreachable: %s", mnt,
				strerror(-rc));
	if (st.ok && !st.locked) {
		printf("%s: unlocked, keys proven by a key check\n", mnt);
		return CMK_EXIT_OK;
	}
	reply_error(st.reply, err, sizeof(err));
	if (!st.locked)
		return cli_fail("unlock", "%s: %s", mnt, err);
	fprintf(stderr,
		"cmkfs unlock: %s: still locked: the key check %s: %s\n"
		"cmkfs unlock: %s\n",
		mnt, st.denied ? "was denied" : "failed", err,
		st.denied ? "restore access to the key (doc/KEYS.md), then "
			    "run 'cmkfs unlock' again" :
			    "the key could not be reached; run 'cmkfs unlock' "
			    "again later");
	return CMK_EXIT_LOCKED;
}
