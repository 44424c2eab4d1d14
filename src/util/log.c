/* src/util/log.c — stderr or syslog sink with a level filter. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

#include "cmkfs/log.h"

static enum log_level cur_level = LOG_LVL_WARN;
static int use_syslog;

void log_set_level(enum log_level lvl)
{
	cur_level = lvl;
}

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	use_syslog = 1;
}

void log_msg(enum log_level lvl, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const tag[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;

	if (lvl > cur_level)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog)
		syslog(prio[lvl], "%s", line);
	else
		fprintf(stderr, "cmkfs: %s: %s\n", tag[lvl], line);
}
