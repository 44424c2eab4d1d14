/* src/cli/cmd_transient.c — `cmkfs transient add --ttl DURATION PATH
 * CIPHERDIR`, `transient list CIPHERDIR`, `transient remove PATH
 * CIPHERDIR`. PATH is a directory of the volume: absolute in
 * the volume ("/relay"), or a path under the volume's mountpoint. The zone
 * list is sealed in the cipher directory (transient_edit(),
 * include/cmkfs/transient.h); a live mount reloads it and sweeps at once. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/http.h"
#include "cmkfs/runtime.h"
#include "cmkfs/transient.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs transient add [--ttl DURATION] [OPTIONS] PATH CIPHERDIR\n"
		"       cmkfs transient list [OPTIONS] CIPHERDIR\n"
		"       cmkfs transient remove [OPTIONS] PATH CIPHERDIR\n"
		"\n"
		"Files under a transient zone older than its TTL disappear from the\n"
		"mount and are destroyed on the backing store, header first. A\n"
		"regular file's age is the creation time its header authenticates\n"
		"(format 3; writes, renames and touch do not make it younger);\n"
		"symlinks, and files of format 1/2 volumes, go by modification\n"
		"time. Expiry runs at mount, every 30 s while mounted,\n"
		"and at once when a zone is added. DURATION: 24h, 90m, 3600s, 1d\n"
		"(at most and by default 24h). PATH is a directory in the volume\n"
		"(\"/relay\") or a path under its mountpoint.\n"
		"\n"
		"  --ttl DURATION       add: the zone's TTL\n"
		KEYOPTS_HELP_SERVICE_KEY
		"  --ca-file FILE       extra CA for Key Vault TLS\n"
		"  -h, --help           this text\n");
}

/* Volume path from a user path: strip the mountpoint if it is one. */
static int vol_path(const char *cdir, const char *path, char *out, size_t cap)
{
	char c2[PATH_MAX], mnt[PATH_MAX];
	size_t ml;

	if (runtime_find(cdir, c2, sizeof(c2), mnt, sizeof(mnt))) {
		ml = strlen(mnt);
		if (strncmp(path, mnt, ml) == 0 &&
		    (path[ml] == '/' || path[ml] == '\0'))
			path += ml;
	}
	return transient_norm_path(path, out, cap);
}

int cmd_transient(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "ttl", required_argument, NULL, 't' },
		KEYOPTS_OPT_SERVICE_KEY,
		KEYOPTS_OPT_CA_FILE,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct keyopts ko;
	const char *action;
	char cdir[PATH_MAX], vpath[1024] = "", c2[PATH_MAX], mnt[PATH_MAX];
	char kpath[PATH_MAX];
	struct transient_result r;
	struct ctlcmd_state st;
	enum transient_op op;
	long ttl = TRANSIENT_TTL_MAX;
	int c, rc, need;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMK_EXIT_USAGE : CMK_EXIT_OK;
	}
	action = argv[1];
	if (strcmp(action, "add") == 0)
		op = TRANSIENT_ADD;
	else if (strcmp(action, "list") == 0)
		op = TRANSIENT_LIST;
	else if (strcmp(action, "remove") == 0)
		op = TRANSIENT_REMOVE;
	else
		return cli_usage_error("transient", "unknown action '%s'", action);
	argc--;
	argv++;
	keyopts_init(&ko);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 't':
			rc = transient_parse_ttl(optarg, &ttl);
			if (rc < 0)
				return cli_usage_error(
					"transient", "--ttl %s: %s", optarg,
					rc == -ERANGE ? "at most 24h" :
							"use e.g. 24h, 90m, 3600s");
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("transient", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	need = op == TRANSIENT_LIST ? 1 : 2;
	if (argc - optind != need)
		return cli_usage_error("transient", "expected %s",
				       need == 1 ? "CIPHERDIR" : "PATH CIPHERDIR");
	rc = cli_not_mountpoint("transient", argv[argc - 1]);
	if (rc != CMK_EXIT_OK)
		return rc;
	if (realpath(argv[argc - 1], cdir) == NULL)
		return cli_open_volume_fail("transient", argv[argc - 1], -errno);
	rc = cli_key_path("transient", ko.service_key, kpath, sizeof(kpath));
	if (rc != CMK_EXIT_OK)
		return rc;
	if (need == 2 && vol_path(cdir, argv[optind], vpath, sizeof(vpath)) < 0)
		return cli_usage_error("transient", "PATH must name a directory "
						    "inside the volume");
	keyopts_apply(&ko);
	if (http_global_init() < 0)
		return cli_fail("transient", "libcurl failed to start");
	rc = transient_edit(cdir, kpath, op, vpath, ttl, &r);
	if (rc < 0 && r.stage == TRANSIENT_STAGE_UNLOCK &&
	    cli_exit_code(rc) != CMK_EXIT_RUNTIME) {
		if (cli_exit_code(rc) == CMK_EXIT_KEY ||
		    cli_exit_code(rc) == CMK_EXIT_DAMAGED)
			return cli_unlock_fail("transient", cdir, kpath, rc, NULL);
		fprintf(stderr, "cmkfs transient: %s\n", r.msg);
		return cli_exit_code(rc);
	}
	if (rc < 0)
		return cli_fail("transient", "%s", r.msg);
	if (op == TRANSIENT_LIST) {
		for (size_t i = 0; i < r.n; i++)
			printf("%s\t%ldh%02ldm\n", r.z[i].path,
			       r.z[i].ttl_sec / 3600, r.z[i].ttl_sec % 3600 / 60);
		return CMK_EXIT_OK;
	}
	printf("%s: %s %s\n", cdir, vpath,
	       op == TRANSIENT_ADD ? "is a transient zone" :
				     "is no longer a transient zone");
	if (runtime_find(cdir, c2, sizeof(c2), mnt, sizeof(mnt)) &&
	    ctlcmd_sweep(mnt, &st) < 0)
		fprintf(stderr, "cmkfs transient: warning: the mount on %s did "
				"not sweep now; it will within 30 s\n",
			mnt);
	return CMK_EXIT_OK;
}
