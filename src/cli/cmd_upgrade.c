/* src/cli/cmd_upgrade.c — `cmkfs upgrade [--json] CIPHERDIR`: a volume of
 * on-disk format 1 or 2 made format 3 in place (doc/FORMAT.md "Upgrade",
 * include/cmkfs/upgrade.h). Offline only; killed at any point, running it
 * again finishes the job (the volume refuses to mount until then).
 * Exit: 0 done (or format 3 already), 1 failed or damaged objects found,
 * 2 usage, 3 keys unavailable. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/http.h"
#include "cmkfs/runtime.h"
#include "cmkfs/upgrade.h"
#include "cmkfs/volio.h"

struct ui {
	bool json, tty;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs upgrade [OPTIONS] CIPHERDIR\n"
		"\n"
		"Rewrite a volume of on-disk format 1 or 2 in format 3, in place and\n"
		"under its own keys: every file header bound to the file's names,\n"
		"every directory id to its directory's name, symlink targets and\n"
		"xattr values randomized and bound to their owner, the transient-zone\n"
		"list named by the configuration (doc/FORMAT.md). File data is not\n"
		"rewritten. A format-1 volume is rekeyed first. The volume must not\n"
		"be mounted; until the upgrade completes it refuses to mount. If it\n"
		"is interrupted, even by kill -9 or a crash, run the command again to\n"
		"finish. A format-3 volume is left as it is.\n"
		"\n"
		"  --json               progress and result as JSON lines on stdout\n"
		KEYOPTS_HELP_SERVICE_KEY
		KEYOPTS_HELP_CA_FILE
		KEYOPTS_HELP_AUDIT_LOG
		"  -h, --help           this text\n"
		"Exit status: 0 done or nothing to do, 1 failed or objects that do not\n"
		"open found (see 'cmkfs fsck'), 2 usage, 3 keys unavailable.\n");
}

static int progress(const struct upgrade_progress *p, void *arg)
{
	struct ui *u = arg;
	char line[512];

	if (u->json) {
		upgrade_json(p, false, line, sizeof(line));
		printf("%s\n", line);
		fflush(stdout);
	} else if (u->tty) {
		fprintf(stderr, "\r\033[Kupgrade: %s: %llu entries, %llu files, "
			"%llu directories, %llu symlinks", p->phase,
			(unsigned long long)p->entries,
			(unsigned long long)p->files,
			(unsigned long long)p->dirs,
			(unsigned long long)p->links);
	}
	return 0;
}

static void problem(const char *bpath, const char *what, void *arg)
{
	struct ui *u = arg;

	if (u->json) {
		printf("{\"problem\":{\"backing\":");
		cli_json_str(bpath);
		printf(",\"what\":");
		cli_json_str(what);
		printf("}}\n");
		return;
	}
	if (u->tty)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "cmkfs upgrade: ");
	cli_fputs_safe(bpath, stderr);
	fprintf(stderr, ": ");
	cli_fputs_safe(what, stderr);
	fprintf(stderr, " (left as it is)\n");
}

int cmd_upgrade(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		KEYOPTS_OPT_SERVICE_KEY,
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char cdir[PATH_MAX], found[PATH_MAX], mnt[PATH_MAX], line[512];
	struct ui u = { .tty = isatty(STDERR_FILENO) };
	const struct upgrade_cb cb = { progress, problem, &u };
	struct upgrade_result r;
	struct keyopts ko;
	int c, rc;

	keyopts_init(&ko);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			u.json = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("upgrade", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("upgrade", "expected one CIPHERDIR");
	if (realpath(argv[optind], cdir) == NULL)
		return cli_fail("upgrade", "%s: %s", argv[optind],
				strerror(errno));
	if (runtime_find(cdir, found, sizeof(found), mnt, sizeof(mnt)))
		return cli_fail("upgrade", "%s is mounted on %s: unmount it "
				"first (the upgrade runs offline)", cdir, mnt);
	keyopts_apply(&ko);
	if (http_global_init() < 0)
		return cli_fail("upgrade", "libcurl failed to start");
	audit_open(keyopts_audit_log(&ko));
	rc = upgrade_volume(cdir, ko.service_key, &cb, &r);
	if (u.tty && !u.json)
		fprintf(stderr, "\r\033[K");
	if (rc < 0) {
		cli_fail("upgrade", "%s", r.msg);
		if (u.json)
			printf("{\"ok\":false,\"error\":\"%s\"}\n",
			       volio_strerror(rc));
		return r.stage == UPGRADE_STAGE_UNLOCK ? CMK_EXIT_NOKEYS :
							 CMK_EXIT_RUNTIME;
	}
	if (u.json) {
		upgrade_json(&r.p, true, line, sizeof(line));
		printf("%s\n", line);
	} else if (r.p.already) {
		printf("%s: already format 3, nothing to do\n", cdir);
	} else {
		printf("%s: upgraded from format %u to 3%s: %llu files, %llu "
		       "directories, %llu symlinks, %llu zone lists rewritten, "
		       "%llu damaged, %.1fs\n", cdir,
		       r.p.resumed ? 3u : r.p.from_version,
		       r.p.resumed ? " (resumed)" : "",
		       (unsigned long long)r.p.files,
		       (unsigned long long)r.p.dirs,
		       (unsigned long long)r.p.links,
		       (unsigned long long)r.p.zone_lists,
		       (unsigned long long)r.p.damaged, r.p.elapsed);
	}
	return r.p.damaged ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
}
