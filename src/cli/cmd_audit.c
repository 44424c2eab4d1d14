/* src/cli/cmd_audit.c — `cmkfs audit [--since TIME] [--json] CIPHERDIR`:
 * the key events of one volume from the audit log (doc/KEYS.md "Audit
 * log"): which key protected it when, checks, locks and resumes, CMK
 * changes. Needs no key. Lines that are not ours are skipped, not fatal. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs audit [--since TIME] [--json] [--audit-log FILE] CIPHERDIR\n"
		"\n"
		"Show the key events of the volume in CIPHERDIR: mounts, unwraps and\n"
		"wraps with key URI and version, key checks, locks and resumes, CMK\n"
		"enable/rotate/disable. TIME is ISO 8601 UTC (2026-11-23T10:00:00Z,\n"
		"or a date) or an age such as 90m, 24h, 7d. --json prints the log's\n"
		"JSON lines unchanged. The log is --audit-log FILE, else\n"
		"$CMKFS_AUDIT_LOG, else " AUDIT_DEFAULT_PATH ".\n"
		"\n"
		"  --since TIME         events at or after TIME\n"
		"  --json               the log's JSON lines, unchanged\n"
		"  --audit-log FILE     the audit log to read\n"
		"  -h, --help           this text\n");
}

int cmd_audit(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char since[32] = "", id[VOLUME_ID_HEX_LEN];
	struct audit_reader *ar = NULL;
	struct audit_record e;
	struct keyopts ko;
	const char *path;
	struct volume v;
	unsigned long shown = 0;
	bool json = false;
	int c, fd, rc;

	keyopts_init(&ko);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (audit_parse_since(optarg, time(NULL), since,
					      sizeof(since)) < 0)
				return cli_usage_error(
					"audit", "--since takes 2026-11-23T10:00:00Z "
						 "or an age like 24h");
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("audit", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("audit", "expected one CIPHERDIR");
	rc = cli_not_mountpoint("audit", argv[optind]);
	if (rc != CMK_EXIT_OK)
		return rc;
	fd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_read(fd, &v);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		return cli_open_volume_fail("audit", argv[optind], rc);
	volume_id_hex(&v, id);
	path = keyopts_audit_log(&ko);
	rc = audit_reader_open(path, id, since, &ar);
	if (rc < 0)
		return cli_fail("audit", "%s: %s (see --audit-log)", path,
				strerror(-rc));
	if (!json)
		printf("%-24s %-12s %-9s %s\n", "TIME (UTC)", "EVENT", "RESULT",
		       "KEY / DETAIL");
	for (; audit_reader_next(ar, &e) == 1; shown++) {
		if (json)
			fputs(e.line, stdout);
		else
			printf("%-24s %-12s %-9s %s%s%s\n", e.time, e.event,
			       e.result, e.key != NULL ? e.key : "-",
			       *e.detail ? "  " : "", e.detail);
	}
	audit_reader_close(ar);
	if (!json)
		fprintf(stderr, "%lu events for volume %s in %s\n", shown, id,
			path);
	return CMK_EXIT_OK;
}
