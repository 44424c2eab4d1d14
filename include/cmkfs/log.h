/* include/cmkfs/log.h — levels and sinks (stderr, or syslog in the daemon).
 * Callers decide what is safe to log: never key bytes, wrapped keys, tokens,
 * or plaintext file names at default levels (STYLE.md §3). Thread-safe. */
#ifndef CMKFS_LOG_H
#define CMKFS_LOG_H

#include "cmkfs/common.h"

enum log_level { LOG_LVL_ERR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

void log_set_level(enum log_level lvl);
/* Switch to syslog (daemon after detaching); ident e.g. "cmkfs". */
void log_use_syslog(const char *ident);
void log_msg(enum log_level lvl, const char *fmt, ...) CMK_PRINTF(2, 3);

#define log_err(...) log_msg(LOG_LVL_ERR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_LVL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LVL_DEBUG, __VA_ARGS__)

#endif
