/* tests/unit/test_audit.c — reading the audit trail back (audit.h): the
 * events of one volume, oldest first, from a log that also holds other
 * volumes' events, lines that are not JSON and objects that are not
 * events; a key of null and a missing detail; the `since` cut on the
 * fixed-width time; an event written by audit_event() read back whole;
 * --since ages and dates into that form, and what is refused; the default
 * path from $CMKFS_AUDIT_LOG. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define VOL "00112233445566778899aabbccddeeff"
#define OTHER "ffeeddccbbaa99887766554433221100"

static const char *const log_lines[] = {
	"{\"time\":\"2026-11-20T08:00:00.000Z\",\"event\":\"mount\",\"volume\":\""
	VOL "\",\"key\":\"local:s\",\"result\":\"ok\",\"detail\":\"\"}\n",
	"not json at all\n",
	"{\"time\":\"2026-11-21T08:00:00.000Z\",\"event\":\"mount\",\"volume\":\""
	OTHER "\",\"key\":null,\"result\":\"ok\",\"detail\":\"\"}\n",
	"{\"time\":\"2026-11-22T08:00:00.000Z\",\"volume\":\"" VOL
	"\",\"result\":\"ok\"}\n",
	"{\"time\":\"2026-11-23T10:00:00.000Z\",\"event\":\"lock\",\"volume\":\""
	VOL "\",\"key\":null,\"result\":\"denied\"}\n",
	"{\"time\":\"2026-11-24T10:00:00.000Z\",\"event\":\"check\",\"volume\":\""
	VOL "\",\"key\":\"https://v/keys/k/1\",\"result\":\"transient\","
	"\"detail\":\"429\"}\n",
};

static unsigned read_all(const char *path, const char *vol, const char *since,
			 struct audit_record *first, char *first_line,
			 size_t cap)
{
	struct audit_reader *ar = NULL;
	struct audit_record e;
	unsigned n = 0;

	CHECK_RC(audit_reader_open(path, vol, since, &ar), 0);
	while (ar != NULL && audit_reader_next(ar, &e) == 1) {
		if (n++ == 0) {
			*first = e;
			/* the strings die with the next call */
			snprintf(first_line, cap, "%s|%s|%s|%s|%s|%s", e.time,
				 e.event, e.result, e.key ? e.key : "(null)",
				 e.detail, e.line);
		}
	}
	if (ar != NULL)
		CHECK(audit_reader_next(ar, &e) == 0, "next after the end");
	audit_reader_close(ar);
	return n;
}

static void test_since(void)
{
	const time_t now = 1795428000;	/* 2026-11-23T10:00:00Z */
	char out[32];

	CHECK_RC(audit_parse_since("24h", now, out, sizeof(out)), 0);
	CHECK(strcmp(out, "2026-11-22T10:00:00") == 0, "24h: %s", out);
	CHECK_RC(audit_parse_since("90m", now, out, sizeof(out)), 0);
	CHECK(strcmp(out, "2026-11-23T08:30:00") == 0, "90m: %s", out);
	CHECK_RC(audit_parse_since("7d", now, out, sizeof(out)), 0);
	CHECK(strcmp(out, "2026-11-16T10:00:00") == 0, "7d: %s", out);
	CHECK_RC(audit_parse_since("2026-11-23T10:00:00Z", now, out,
				   sizeof(out)), 0);
	CHECK(strcmp(out, "2026-11-23T10:00:00") == 0, "iso: %s", out);
	CHECK_RC(audit_parse_since("2026-11-23", now, out, sizeof(out)), 0);
	CHECK(strcmp(out, "2026-11-23") == 0, "date: %s", out);
	CHECK_RC(audit_parse_since("2026-11-23T10:00", now, out, sizeof(out)),
		 0);
	CHECK(strcmp(out, "2026-11-23T10:00") == 0, "minutes: %s", out);
	CHECK_RC(audit_parse_since("h", now, out, sizeof(out)), -EINVAL);
	CHECK_RC(audit_parse_since("-1h", now, out, sizeof(out)), -EINVAL);
	CHECK_RC(audit_parse_since("100001d", now, out, sizeof(out)), -EINVAL);
	CHECK_RC(audit_parse_since("24x", now, out, sizeof(out)), -EINVAL);
	CHECK_RC(audit_parse_since("2026/11/23", now, out, sizeof(out)),
		 -EINVAL);
	CHECK_RC(audit_parse_since("2026-11-23 10:00", now, out, sizeof(out)),
		 -EINVAL);
	CHECK_RC(audit_parse_since("2026-11-23T10:00:00.000Z", now, out,
				   sizeof(out)), -EINVAL);
	CHECK_RC(audit_parse_since("", now, out, sizeof(out)), -EINVAL);
}

int main(void)
{
	char top[PATH_MAX], path[PATH_MAX + 16], written[PATH_MAX + 16],
		first[1024];
	struct audit_reader *ar = NULL;
	struct audit_record e;
	FILE *f;

	test_since();
	unsetenv("CMKFS_AUDIT_LOG");
	CHECK(strcmp(audit_default_path(), AUDIT_DEFAULT_PATH) == 0,
	      "default %s", audit_default_path());
	setenv("CMKFS_AUDIT_LOG", "", 1);
	CHECK(strcmp(audit_default_path(), AUDIT_DEFAULT_PATH) == 0,
	      "empty env: %s", audit_default_path());
	setenv("CMKFS_AUDIT_LOG", "/x/audit.log", 1);
	CHECK(strcmp(audit_default_path(), "/x/audit.log") == 0, "env: %s",
	      audit_default_path());

	if (tvol_tmpdir("test_audit", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/given.log", top);
	snprintf(written, sizeof(written), "%s/written.log", top);
	f = fopen(path, "w");
	CHECK(f != NULL, "create %s", path);
	for (size_t i = 0; f != NULL && i < CMK_ARRAY_LEN(log_lines); i++)
		fputs(log_lines[i], f);
	if (f != NULL)
		fclose(f);

	CHECK(read_all(path, VOL, "", &e, first, sizeof(first)) == 3,
	      "all events of the volume");
	CHECK(strncmp(first, "2026-11-20T08:00:00.000Z|mount|ok|local:s||{",
		      44) == 0,
	      "first: %s", first);
	CHECK(read_all(path, VOL, "2026-11-23", &e, first, sizeof(first)) == 2,
	      "since a date");
	CHECK(strncmp(first, "2026-11-23T10:00:00.000Z|lock|denied|(null)||{",
		      46) == 0,
	      "null key, no detail: %s", first);
	CHECK(read_all(path, VOL, "2026-11-23T10:00:01", &e, first,
		       sizeof(first)) == 1,
	      "since a time");
	CHECK(strncmp(first,
		      "2026-11-24T10:00:00.000Z|check|transient|"
		      "https://v/keys/k/1|429|",
		      64) == 0,
	      "detail: %s", first);
	CHECK(read_all(path, OTHER, "", &e, first, sizeof(first)) == 1,
	      "the other volume");
	CHECK(read_all(path, "0123", "", &e, first, sizeof(first)) == 0,
	      "no such volume");
	CHECK_RC(audit_reader_open(written, VOL, "", &ar), -ENOENT);
	CHECK_RC(audit_reader_open(path, VOL,
				   "2026-11-23T10:00:00.000Z-way-too-long",
				   &ar),
		 -EINVAL);
	audit_reader_close(NULL);

	/* What audit_event() writes reads back as it was written. */
	audit_open(written);
	audit_set_volume(VOL);
	audit_event("rekey", "local:abc", "ok", "generation 1 to 2, \"q\"");
	audit_event("lock", NULL, "denied", NULL);
	CHECK(read_all(written, VOL, "", &e, first, sizeof(first)) == 2,
	      "written events");
	CHECK(strstr(first, "|rekey|ok|local:abc|generation 1 to 2, \"q\"|{") !=
		      NULL,
	      "written: %s", first);

	unlink(path);
	unlink(written);
	rmdir(top);
	return t_done("test_audit");
}
