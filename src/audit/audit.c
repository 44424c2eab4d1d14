/* src/audit/audit.c — the audit trail: JSON lines, O_APPEND, fsync'd. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/json.h"
#include "cmkfs/log.h"

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;
static char apath[4096];
static char volume[40];

/* An audit log others may write can hold forged or erased events. A file
 * made here is 0600; one that already exists is kept (the trail goes on)
 * but its mode or owner is reported, as OpenSSH StrictModes does. */
static void check_mode(int afd)
{
	struct stat st;

	if (fstat(afd, &st) < 0)
		return;
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		log_warn("audit log %s is writable by group or others (mode "
			 "%04o): its events could be forged; chmod go-w",
			 apath, (unsigned)(st.st_mode & 07777));
	if (st.st_uid != geteuid())
		log_warn("audit log %s is owned by uid %lu, not by this "
			 "process (uid %lu)", apath, (unsigned long)st.st_uid,
			 (unsigned long)geteuid());
}

void audit_open(const char *path)
{
	const char *e = getenv("CMKFS_AUDIT_LOG");
	char dir[4096];

	pthread_mutex_lock(&mtx);
	snprintf(apath, sizeof(apath), "%s",
		 path ? path : (e && *e ? e : AUDIT_DEFAULT_PATH));
	snprintf(dir, sizeof(dir), "%s", apath);
	(void)mkdir(dirname(dir), 0700);
	if (fd >= 0)
		close(fd);
	fd = open(apath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		log_warn("audit log %s: %s (events go to syslog only)", apath,
			 strerror(errno));
	else
		check_mode(fd);
	pthread_mutex_unlock(&mtx);
}

const char *audit_path(void)
{
	return apath;
}

void audit_set_volume(const char *volume_id_hex)
{
	pthread_mutex_lock(&mtx);
	snprintf(volume, sizeof(volume), "%s", volume_id_hex);
	pthread_mutex_unlock(&mtx);
}

void audit_event(const char *event, const char *key, const char *result,
		 const char *detail)
{
	char line[4096], k[1200], d[600], ts[32];
	struct timespec now;
	struct tm tm;
	int n;

	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	json_escape(k, sizeof(k), key, NULL);
	json_escape(d, sizeof(d), detail, NULL);
	pthread_mutex_lock(&mtx);
	n = snprintf(line, sizeof(line),
		     "{\"time\":\"%s.%03ldZ\",\"event\":\"%s\",\"volume\":\"%s\","
		     "\"key\":%s%s%s,\"result\":\"%s\",\"detail\":\"%s\","
		     "\"pid\":%ld}\n",
		     ts, now.tv_nsec / 1000000, event, volume, key ? "\"" : "",
		     key ? k : "null", key ? "\"" : "", result, d,
		     (long)getpid());
	if (n > 0 && (size_t)n < sizeof(line) && fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			log_warn("audit log write failed: %s", strerror(errno));
		(void)fdatasync(fd);
	}
	pthread_mutex_unlock(&mtx);
	syslog(LOG_AUTHPRIV | LOG_NOTICE, "cmkfs-audit: %.*s", n > 0 ? n - 1 : 0,
	       line);
}
