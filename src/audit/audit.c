/* src/audit/audit.c — the audit trail: JSON lines, O_APPEND, fsync'd. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdbool.h>
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
static bool open_failed;

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

const char *audit_default_path(void)
{
	const char *e = getenv("CMKFS_AUDIT_LOG");

	return e != NULL && *e != '\0' ? e : AUDIT_DEFAULT_PATH;
}

/* (Re)open apath; caller holds mtx. */
static void open_locked(void)
{
	char dir[4096];

	snprintf(dir, sizeof(dir), "%s", apath);
	(void)mkdir(dirname(dir), 0700);
	if (fd >= 0)
		close(fd);
	fd = open(apath, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0 && !open_failed)	/* said once, tried at every event */
		log_warn("audit log %s: %s (events go to syslog only)", apath,
			 strerror(errno));
	else if (fd >= 0)
		check_mode(fd);
	open_failed = fd < 0;
}

void audit_open(const char *path)
{
	pthread_mutex_lock(&mtx);
	snprintf(apath, sizeof(apath), "%s",
		 path ? path : audit_default_path());
	open_failed = false;
	open_locked();
	pthread_mutex_unlock(&mtx);
}

/* logrotate renamed the file (or removed it): the path names another
 * file or none. Then open it afresh, so that the next event starts the
 * new file instead of going on in the rotated one. Caller holds mtx. */
static void follow_rotation(void)
{
	struct stat a, b;

	if (apath[0] == '\0')
		return;
	if (fd >= 0 && fstat(fd, &a) == 0 && lstat(apath, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino)
		return;
	open_locked();
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

/* `"name":"value",` for a non-empty value, else nothing. */
static void field(char *out, size_t cap, const char *name, const char *v)
{
	char e[200];

	out[0] = '\0';
	if (v == NULL || *v == '\0')
		return;
	json_escape(e, sizeof(e), v, NULL);
	snprintf(out, cap, "\"%s\":\"%s\",", name, e);
}

void audit_event_why(const char *event, const char *key, const char *result,
		     const char *detail, const struct audit_why *why)
{
	char line[4096], k[1200], d[600], ts[32], f[4][256], cnt[40];
	static const struct audit_why none;
	struct timespec now;
	struct tm tm;
	int n;

	if (why == NULL)
		why = &none;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	json_escape(k, sizeof(k), key, NULL);
	json_escape(d, sizeof(d), detail, NULL);
	field(f[0], sizeof(f[0]), "cause", why->cause);
	field(f[1], sizeof(f[1]), "code", why->code);
	field(f[2], sizeof(f[2]), "request_id", why->request_id);
	field(f[3], sizeof(f[3]), "client_request_id", why->client_request_id);
	cnt[0] = '\0';
	if (why->checks > 0)
		snprintf(cnt, sizeof(cnt), "\"checks\":%lu,", why->checks);
	pthread_mutex_lock(&mtx);
	follow_rotation();
	n = snprintf(line, sizeof(line),
		     "{\"time\":\"%s.%03ldZ\",\"event\":\"%s\",\"volume\":\"%s\","
		     "\"key\":%s%s%s,\"result\":\"%s\",\"detail\":\"%s\","
		     "%s%s%s%s%s\"pid\":%ld}\n",
		     ts, now.tv_nsec / 1000000, event, volume, key ? "\"" : "",
		     key ? k : "null", key ? "\"" : "", result, d, f[0], f[1],
		     f[2], f[3], cnt, (long)getpid());
	if (n > 0 && (size_t)n < sizeof(line) && fd >= 0) {
		if (write(fd, line, (size_t)n) != n)
			log_warn("audit log write failed: %s", strerror(errno));
		(void)fdatasync(fd);
	}
	pthread_mutex_unlock(&mtx);
	syslog(LOG_AUTHPRIV | LOG_NOTICE, "cmkfs-audit: %.*s", n > 0 ? n - 1 : 0,
	       line);
}

void audit_event(const char *event, const char *key, const char *result,
		 const char *detail)
{
	audit_event_why(event, key, result, detail, NULL);
}

struct audit_reader {
	FILE *f;
	struct json *j;		/* the current record's strings */
	char volume[64];	/* a volume id in hex (32 digits) */
	char since[32];
	char line[8192];
};

int audit_reader_open(const char *path, const char *volume_id_hex,
		      const char *since, struct audit_reader **out)
{
	struct audit_reader *ar;

	if (strlen(volume_id_hex) >= sizeof(ar->volume) ||
	    strlen(since) >= sizeof(ar->since))
		return -EINVAL;
	ar = calloc(1, sizeof(*ar));
	if (ar == NULL)
		return -ENOMEM;
	ar->f = fopen(path, "re");
	if (ar->f == NULL) {
		int rc = -errno;

		free(ar);
		return rc;
	}
	snprintf(ar->volume, sizeof(ar->volume), "%s", volume_id_hex);
	snprintf(ar->since, sizeof(ar->since), "%s", since);
	*out = ar;
	return 0;
}

int audit_reader_next(struct audit_reader *ar, struct audit_record *rec)
{
	size_t since_len = strlen(ar->since);

	json_free(ar->j);
	ar->j = NULL;
	while (fgets(ar->line, sizeof(ar->line), ar->f) != NULL) {
		struct audit_record r = { .line = ar->line };
		const char *vol;

		if (json_parse(ar->line, strlen(ar->line), &ar->j) < 0) {
			ar->j = NULL;
			continue;
		}
		/* The times are fixed-width UTC: an event whose time sorts
		 * before `since` is older. */
		if (json_str(ar->j, "time", &r.time) == 0 &&
		    json_str(ar->j, "volume", &vol) == 0 &&
		    strcmp(vol, ar->volume) == 0 &&
		    strncmp(r.time, ar->since, since_len) >= 0 &&
		    json_str(ar->j, "event", &r.event) == 0 &&
		    json_str(ar->j, "result", &r.result) == 0) {
			if (json_str(ar->j, "key", &r.key) < 0)
				r.key = NULL;	/* null: no key involved */
			if (json_str(ar->j, "detail", &r.detail) < 0)
				r.detail = "";
			*rec = r;
			return 1;
		}
		json_free(ar->j);
		ar->j = NULL;
	}
	return 0;
}

void audit_reader_close(struct audit_reader *ar)
{
	if (ar == NULL)
		return;
	json_free(ar->j);
	fclose(ar->f);
	free(ar);
}

int audit_parse_since(const char *s, time_t now, char *out, size_t cap)
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
		t = now - v * (s[n - 1] == 'm' ? 60 : s[n - 1] == 'h' ? 3600 :
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
