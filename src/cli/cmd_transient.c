/* src/cli/cmd_transient.c — `cmkfs transient add --ttl DURATION PATH
 * CIPHERDIR`, `transient list CIPHERDIR`, `transient remove PATH
 * CIPHERDIR`. PATH is a directory of the volume: absolute in
 * the volume ("/relay"), or a path under the volume's mountpoint. The zone
 * list is sealed in the cipher directory; a live mount reloads it and
 * sweeps at once. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyopts.h"
#include "cmkfs/ctl.h"
#include "cmkfs/http.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/runtime.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs transient add --ttl DURATION PATH CIPHERDIR\n"
		"       cmkfs transient list CIPHERDIR\n"
		"       cmkfs transient remove PATH CIPHERDIR\n"
		"\n"
		"Files under a transient zone whose modification time is older than\n"
		"its TTL disappear from the mount and are destroyed on the backing\n"
		"store, header first. Expiry runs at mount, every 30 s while mounted,\n"
		"and at once when a zone is added. DURATION: 24h, 90m, 3600s, 1d\n"
		"(at most and by default 24h). PATH is a directory in the volume\n"
		"(\"/relay\") or a path under its mountpoint.\n"
		"\n"
		"  --service-key FILE   service key (default $CMKFS_SERVICE_KEY)\n"
		"  --ca-file FILE       extra CA for Key Vault TLS\n");
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
	char cdir[PATH_MAX], vpath[1024], c2[PATH_MAX], mnt[PATH_MAX],
	     reply[4096];
	struct tzone z[TRANSIENT_MAX_ZONES];
	struct keyring *kr = NULL;
	long ttl = TRANSIENT_TTL_MAX;
	size_t n = 0, i;
	int c, rc, fd = -1, ex = CMK_EXIT_RUNTIME, need;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMK_EXIT_USAGE : CMK_EXIT_OK;
	}
	action = argv[1];
	if (strcmp(action, "add") && strcmp(action, "list") &&
	    strcmp(action, "remove"))
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
	need = strcmp(action, "list") == 0 ? 1 : 2;
	if (argc - optind != need)
		return cli_usage_error("transient", "expected %s",
				       need == 1 ? "CIPHERDIR" : "PATH CIPHERDIR");
	if (realpath(argv[argc - 1], cdir) == NULL)
		return cli_fail("transient", "%s: %s", argv[argc - 1],
				strerror(errno));
	if (need == 2 && vol_path(cdir, argv[optind], vpath, sizeof(vpath)) < 0)
		return cli_usage_error("transient", "PATH must name a directory "
						    "inside the volume");
	keyopts_apply(&ko);
	if (http_global_init() < 0)
		return cli_fail("transient", "libcurl failed to start");
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_unlock(fd, ko.service_key, &kr);
	if (rc < 0) {
		cli_fail("transient", "%s: %s", cdir, volio_strerror(rc));
		goto out;
	}
	rc = transient_load(fd, kr, z, &n);
	if (rc < 0) {
		cli_fail("transient", "%s/%s: %s", cdir, TRANSIENT_FILE,
			 rc == -EBADMSG ? "zone list was tampered with or is "
					  "damaged" :
					  strerror(-rc));
		goto out;
	}
	if (strcmp(action, "list") == 0) {
		for (i = 0; i < n; i++)
			printf("%s\t%ldh%02ldm\n", z[i].path, z[i].ttl_sec / 3600,
			       z[i].ttl_sec % 3600 / 60);
		ex = CMK_EXIT_OK;
		goto out;
	}
	for (i = 0; i < n && strcmp(z[i].path, vpath) != 0; i++)
		;
	if (strcmp(action, "add") == 0) {
		if (i == n && n == TRANSIENT_MAX_ZONES) {
			cli_fail("transient", "at most %d zones",
				 TRANSIENT_MAX_ZONES);
			goto out;
		}
		snprintf(z[i].path, sizeof(z[i].path), "%s", vpath);
		z[i].ttl_sec = ttl;
		if (i == n)
			n++;
	} else {
		if (i == n) {
			cli_fail("transient", "%s is not a transient zone", vpath);
			goto out;
		}
		z[i] = z[--n];
	}
	rc = transient_store(fd, kr, z, n);
	if (rc < 0) {
		cli_fail("transient", "%s: writing the zone list: %s", cdir,
			 strerror(-rc));
		goto out;
	}
	printf("%s: %s %s\n", cdir, vpath,
	       strcmp(action, "add") == 0 ? "is a transient zone" :
					    "is no longer a transient zone");
	if (runtime_find(cdir, c2, sizeof(c2), mnt, sizeof(mnt)) &&
	    ctl_request(mnt, "sweep", reply, sizeof(reply)) < 0)
		fprintf(stderr, "cmkfs transient: warning: the mount on %s did "
				"not sweep now; it will within 30 s\n",
			mnt);
	ex = CMK_EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	keyring_free(kr);
	return ex;
}
