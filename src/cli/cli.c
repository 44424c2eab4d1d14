/* src/cli/cli.c — what every subcommand prints with (src/cli/cli.h). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>

#include "cli.h"
#include "cmkfs/json.h"

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cmkfs %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see 'cmkfs %s --help')\n", cmd);
	return CMK_EXIT_USAGE;
}

int cli_fail(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cmkfs %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CMK_EXIT_RUNTIME;
}

void cli_json_str(const char *s)
{
	char buf[1024];
	size_t used;

	putchar('"');
	while (*s != '\0') {
		json_escape(buf, sizeof(buf), s, &used);
		fputs(buf, stdout);
		s += used;
	}
	putchar('"');
}

void cli_fputs_safe(const char *s, FILE *f)
{
	if (s == NULL)
		return;
	for (; *s != '\0'; s++)
		fputc((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s, f);
}
