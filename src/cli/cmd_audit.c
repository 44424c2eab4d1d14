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
#include "cmkfs/audit.h"
#include "cmkfs/json.h"
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
		"$CMKFS_AUDIT_LOG, else " AUDIT_DEFAULT_PATH ".\n");
}

/* --since into the log's "YYYY-MM-DDTHH:MM:SS" prefix form. */
static int parse_since(const char *s, char *out, size_t cap)
{
	size_t n = strlen(s);
	char *end;
	long v;

	if (n >= 2 && strchr("mhd", s[n - 1]) != NULL) {
		time_t t;
		struct tm tm;

		errno = 0;
		v = strtol(s, &end, 10);
		if (errno || end != s + n - 1 || v < 0 || v > 100000)
			return -EINVAL;
		t = time(NULL) - v * (s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ?
								3600 :
								86400);
		gmtime_r(&t, &tm);
		strftime(out, cap, "%Y-%m-%dT%H:%M:%S", &tm);
		return 0;
	}
	/* 2026-11-23 or 2026-11-23T10:00[:00][Z] */
	if (n < 10 || n > 20 || s[4] != '-' || s[7] != '-')
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (!strchr("0123456789-T:Z", s[i]))
			return -EINVAL;
	}
	snprintf(out, cap, "%.*s", (int)(s[n - 1] == 'Z' ? n - 1 : n), s);
	return 0;
}

int cmd_audit(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "since", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *path = getenv("CMKFS_AUDIT_LOG");
	char since[32] = "", id[VOLUME_ID_HEX_LEN], line[8192];
	bool json = false;
	struct volume v;
	unsigned long shown = 0;
	FILE *f;
	int c, fd, rc;

	if (path == NULL || *path == '\0')
		path = AUDIT_DEFAULT_PATH;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (parse_since(optarg, since, sizeof(since)) < 0)
				return cli_usage_error(
					"audit", "--since takes 2026-11-23T10:00:00Z "
						 "or an age like 24h");
			break;
		case 'j':
			json = true;
			break;
		case 'a':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("audit", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("audit", "expected one CIPHERDIR");
	fd = open(argv[optind], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_read(fd, &v);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		return cli_fail("audit", "%s: %s", argv[optind],
				volio_strerror(rc));
	volume_id_hex(&v, id);
	f = fopen(path, "re");
	if (f == NULL)
		return cli_fail("audit", "%s: %s (see --audit-log)", path,
				strerror(errno));
	if (!json)
		printf("%-24s %-12s %-9s %s\n", "TIME (UTC)", "EVENT", "RESULT",
		       "KEY / DETAIL");
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *t, *ev, *vol, *res, *key = "-", *det = "";
		struct json *j = NULL;

		if (json_parse(line, strlen(line), &j) < 0)
			continue;
		if (json_str(j, "time", &t) == 0 &&
		    json_str(j, "volume", &vol) == 0 && strcmp(vol, id) == 0 &&
		    strncmp(t, since, strlen(since)) >= 0 &&
		    json_str(j, "event", &ev) == 0 &&
		    json_str(j, "result", &res) == 0) {
			if (json_str(j, "key", &key) < 0)
				key = "-";	/* null: no key involved */
			if (json_str(j, "detail", &det) < 0)
				det = "";
			if (json)
				fputs(line, stdout);
			else
				printf("%-24s %-12s %-9s %s%s%s\n", t, ev, res,
				       key, *det ? "  " : "", det);
			shown++;
		}
		json_free(j);
	}
	fclose(f);
	if (!json)
		fprintf(stderr, "%lu events for volume %s in %s\n", shown, id,
			path);
	return CMK_EXIT_OK;
}
