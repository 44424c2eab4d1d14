/* src/daemon/ctlcmd.c — the control socket's commands
 * (include/cmkfs/ctlcmd.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/common.h"
#include "cmkfs/ctl.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/inode.h"
#include "cmkfs/inval.h"
#include "cmkfs/log.h"
#include "cmkfs/json.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/monitor.h"
#include "cmkfs/ops.h"
#include "cmkfs/rekey.h"
#include "cmkfs/sweeper.h"
#include "cmkfs/volio.h"

/* What a command leaves for the reply. */
enum after {
	REPLY_STATUS,		/* the monitor's status, read now */
	REPLY_GIVEN_STATUS,	/* the status the command filled in */
	REPLY_DONE,		/* the command wrote its own reply */
};

void ctlcmd_init(struct ctlcmd *c)
{
	pthread_mutex_init(&c->rekey_mtx, NULL);
	atomic_init(&c->stopping, 0);
}

void ctlcmd_stopping(struct ctlcmd *c)
{
	atomic_store(&c->stopping, 1);
}

void ctlcmd_destroy(struct ctlcmd *c)
{
	pthread_mutex_destroy(&c->rekey_mtx);
}

struct rekey_client {
	struct ctlcmd *c;
	int fd;
};

static int rekey_progress(const struct rekey_progress *p, void *arg)
{
	struct rekey_client *rc = arg;
	char line[512];

	rekey_progress_json(p, line, sizeof(line));
	/* A client that went away does not stop the rekey: it is safer
	 * finished, and a kill -9 of `cmkfs rekey` must not leave it half
	 * done any longer than necessary. */
	(void)ctl_send_line(rc->fd, line);
	return atomic_load(&rc->c->stopping);
}

static void rekey_problem(const char *bpath, const char *what, void *arg)
{
	struct rekey_client *rc = arg;
	char line[4200];
	int n;

	n = snprintf(line, sizeof(line), "{\"problem\":{\"backing\":\"");
	n += (int)json_escape(line + n, sizeof(line) - 300 - (size_t)n, bpath,
			      NULL);
	snprintf(line + n, sizeof(line) - (size_t)n, "\",\"what\":\"%s\"}}",
		 what);
	(void)ctl_send_line(rc->fd, line);
}

/* The client's side of the lines above (and of rekey_progress_json and
 * rekey_result_json): decoded, handed to its callbacks. */
static int rekey_line(const char *line, void *arg)
{
	const struct ctlcmd_rekey_cb *cb = arg;
	struct rekey_progress p = { 0 };
	const struct json *o;
	struct json *j = NULL;
	char phase[32];
	bool ok = false;

	if (json_parse(line, strlen(line), &j) < 0)
		return 0;
	if (json_obj(j, "progress", &o) == 0) {
		rekey_progress_from_json(o, &p, phase, sizeof(phase));
		if (cb->progress != NULL)
			cb->progress(&p, cb->arg);
	} else if (json_obj(j, "problem", &o) == 0) {
		const char *b = "", *w = "";

		if (json_str(o, "backing", &b) < 0)
			b = "";
		if (json_str(o, "what", &w) < 0)
			w = "";
		if (cb->problem != NULL)
			cb->problem(b, w, cb->arg);
	} else if (json_bool(j, "ok", &ok) == 0) {
		const char *e = NULL;

		if (ok && json_obj(j, "rekey", &o) == 0)
			rekey_progress_from_json(o, &p, phase, sizeof(phase));
		else if (json_str(j, "error", &e) < 0)
			e = "unknown error";
		if (cb->result != NULL)
			cb->result(e == NULL ? &p : NULL, e, line, cb->arg);
	}
	json_free(j);
	return 0;
}

int ctlcmd_rekey_stream(const char *mountpoint, const char *req,
			const struct ctlcmd_rekey_cb *cb)
{
	/* The daemon reports about every 0.2 s while it walks: 300 s
	 * without a line means it is stuck or gone. */
	return ctl_stream(mountpoint, req, 300000, rekey_line, (void *)cb);
}

/* The client side of the status-shaped replies written by status_reply
 * below. */
static int request(const char *mountpoint, const char *cmd,
		   struct ctlcmd_state *st)
{
	struct json *j = NULL;
	int rc;

	memset(st, 0, sizeof(*st));
	rc = ctl_request(mountpoint, cmd, st->reply, sizeof(st->reply));
	if (rc < 0) {
		st->reply[0] = '\0';
		return rc;
	}
	if (json_parse(st->reply, strlen(st->reply), &j) < 0)
		return 0;
	if (json_bool(j, "ok", &st->ok) < 0)
		st->ok = false;
	if (json_bool(j, "locked", &st->locked) < 0)
		st->locked = false;
	if (json_bool(j, "last_check_ok", &st->last_check_ok) < 0)
		st->last_check_ok = false;
	if (json_bool(j, "denied", &st->denied) < 0)
		st->denied = false;
	json_free(j);
	return 0;
}

int ctlcmd_lock(const char *mountpoint, struct ctlcmd_state *st)
{
	return request(mountpoint, "lock", st);
}

int ctlcmd_unlock(const char *mountpoint, struct ctlcmd_state *st)
{
	return request(mountpoint, "unlock", st);
}

int ctlcmd_reload(const char *mountpoint, struct ctlcmd_state *st)
{
	return request(mountpoint, "reload", st);
}

int ctlcmd_sweep(const char *mountpoint, struct ctlcmd_state *st)
{
	return request(mountpoint, "sweep", st);
}

/* A full rekey through the mount: files re-sealed under their inode's
 * locks, directories' names re-encrypted under the namespace lock, and
 * the kernel's entries of re-made symlinks dropped once that lock is
 * released (dropping one waits for requests that may wait for it). */
struct live_ctx {
	struct ctlcmd *c;
	struct dropq {
		uint64_t parent;
		char *name;
	} *q;
	size_t n, cap;
};

static int live_reseal(int dfd, const char *name, struct reseal_batch *b,
		       void *arg)
{
	struct live_ctx *lc = arg;

	return inode_reseal(lc->c->fs, dfd, name, b);
}

static void live_ns(bool lock, void *arg)
{
	struct live_ctx *lc = arg;

	if (lock) {
		pthread_mutex_lock(&lc->c->fs->ns);
		return;
	}
	pthread_mutex_unlock(&lc->c->fs->ns);
	for (size_t i = 0; i < lc->n; i++) {
		inval_entry(lc->c->fs->se, lc->q[i].parent, lc->q[i].name);
		free(lc->q[i].name);
	}
	lc->n = 0;
}

static void live_replaced(int dfd, const char *plain, void *arg)
{
	struct live_ctx *lc = arg;
	struct stat st;
	uint64_t parent;

	if (fstat(dfd, &st) < 0)
		return;
	parent = inode_nodeid(lc->c->fs, st.st_dev, st.st_ino);
	if (parent == 0)
		return;		/* the kernel holds nothing of it */
	if (lc->n == lc->cap) {
		size_t cap = lc->cap ? 2 * lc->cap : 16;
		struct dropq *q = realloc(lc->q, cap * sizeof(*q));

		if (q == NULL)
			return;
		lc->q = q;
		lc->cap = cap;
	}
	lc->q[lc->n].parent = parent;
	lc->q[lc->n].name = strdup(plain);
	if (lc->q[lc->n].name != NULL)
		lc->n++;
}

/* `cmkfs rekey` on a live mount: done here, so new files of this mount
 * get the new generation from the same instant as the config. args: ""
 * (headers only), "full", or "full KEY_URI" (`cmk enable`: the customer
 * layer moves to that key, opened with this daemon's credentials). */
static enum after cmd_rekey(struct ctlcmd *c, const char *args, int fd,
			    char *reply, size_t cap,
			    struct monitor_status *st)
{
	struct rekey_client cl = { c, fd };
	struct live_ctx lc = { .c = c };
	const struct rekey_live live = { live_reseal, live_ns, live_replaced,
					 &lc };
	struct rekey_cb cb = { .progress = rekey_progress,
			       .problem = rekey_problem,
			       .arg = &cl };
	struct keyprov *prov[2] = { NULL, NULL }, *newc = NULL;
	struct rekey_progress p = { 0 };
	char old_key[VOLUME_KEYID_MAX + 1];
	struct volume v;
	int rc = 0;

	if (strncmp(args, "full", 4) == 0 &&
	    (args[4] == '\0' || args[4] == ' ')) {
		cb.full = true;
		cb.live = &live;
		if (args[4] == ' ')
			rc = kp_akv_open(args + 5, &newc);
		if (rc < 0) {
			snprintf(reply, cap, "{\"ok\":false,\"error\":\"the "
				 "daemon cannot open the key: %s\"}",
				 volio_strerror(rc));
			return REPLY_DONE;
		}
		cb.new_c = newc;
	} else if (*args != '\0') {
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"unknown "
			 "rekey argument\"}");
		return REPLY_DONE;
	}
	if (pthread_mutex_trylock(&c->rekey_mtx) != 0) {
		keyprov_close(newc);
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"a rekey is "
			 "already running on this mount\"}");
		return REPLY_DONE;
	}
	keyring_volume_copy(c->kr, &v);
	snprintf(old_key, sizeof(old_key), "%s", v.layer[1].key_id);
	/* A full rekey in progress is resumed as one, even when asked
	 * plainly: its pieces need the mount's locks. */
	if (v.flags & VOLUME_FLAG_FULL)
		cb.live = &live;
	if (c->fs == NULL)	/* no mount behind it (unit tests) */
		cb.live = NULL;
	rc = volio_providers(&v, c->service_key, prov);
	if (rc == 0)
		rc = rekey_run(c->rootfd, c->kr, prov, &cb, &p);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	keyprov_close(newc);
	if (c->fs != NULL) {	/* flush what is left */
		live_ns(true, &lc);
		live_ns(false, &lc);
	}
	free(lc.q);
	pthread_mutex_unlock(&c->rekey_mtx);
	keyring_volume_copy(c->kr, &v);
	rekey_audit(&p, v.layer[1].key_id, rc, false);
	if (newc != NULL && rc == 0)
		audit_event("cmk_enable", v.layer[1].key_id, "ok", old_key);
	/* the monitor's status names the key that protects layer C now */
	if (rc == 0 && newc != NULL && c->mon != NULL &&
	    monitor_reload(c->mon, &v, st) < 0)
		log_warn("key check after the rekey failed");
	if (rc < 0) {
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"%s\","
			 "\"errno\":%d}", volio_strerror(rc), -rc);
		return REPLY_DONE;
	}
	rekey_result_json(&p, reply, cap);
	return REPLY_DONE;
}

/* Synchronous: the caller sees the sweep done. */
static enum after cmd_sweep(struct ctlcmd *c, const char *args, int fd,
			    char *reply, size_t cap,
			    struct monitor_status *st)
{
	(void)args, (void)fd, (void)reply, (void)cap, (void)st;
	sweeper_sweep(c->sw, false);
	return REPLY_STATUS;
}

/* The reply says what the lock did, even if a check resumes the mount
 * before the reply is written. */
static enum after cmd_lock(struct ctlcmd *c, const char *args, int fd,
			   char *reply, size_t cap, struct monitor_status *st)
{
	(void)args, (void)fd, (void)reply, (void)cap;
	monitor_lock_now(c->mon, "cmkfs lock", st);
	return REPLY_GIVEN_STATUS;
}

/* The keys proven by a check of the monitor's own before the mount is
 * unlocked; if that fails the reply says why and whether Key Vault (or
 * the service key) denied access or could not be reached. */
static enum after cmd_unlock(struct ctlcmd *c, const char *args, int fd,
			     char *reply, size_t cap, struct monitor_status *st)
{
	char why[256], esc[600];
	int rc;

	(void)args, (void)fd;
	rc = monitor_unlock(c->mon, why, sizeof(why), st);
	if (rc == 0)
		return REPLY_GIVEN_STATUS;
	json_escape(esc, sizeof(esc), why, NULL);
	snprintf(reply, cap,
		 "{\"ok\":false,\"locked\":%s,\"denied\":%s,\"errno\":%d,"
		 "\"error\":\"%s\"}",
		 st->locked ? "true" : "false",
		 monitor_is_denial(rc) ? "true" : "false", -rc, esc);
	return REPLY_DONE;
}

static enum after cmd_check(struct ctlcmd *c, const char *args, int fd,
			    char *reply, size_t cap,
			    struct monitor_status *st)
{
	(void)args, (void)fd, (void)reply, (void)cap, (void)st;
	monitor_kick(c->mon);
	return REPLY_STATUS;
}

/* The volume config read again (after `cmkfs cmk` changed it). */
static enum after cmd_reload(struct ctlcmd *c, const char *args, int fd,
			     char *reply, size_t cap,
			     struct monitor_status *st)
{
	struct volume v;
	int dirfd, rc;

	(void)args, (void)fd;
	dirfd = open(c->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = dirfd < 0 ? -errno : volio_read(dirfd, &v);
	if (dirfd >= 0)
		close(dirfd);
	if (rc == 0)
		rc = monitor_reload(c->mon, &v, st);
	if (rc < 0) {
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"%s\"}",
			 volio_strerror(rc));
		return REPLY_DONE;
	}
	return REPLY_STATUS;
}

static enum after cmd_status(struct ctlcmd *c, const char *args, int fd,
			     char *reply, size_t cap,
			     struct monitor_status *st)
{
	(void)c, (void)args, (void)fd, (void)reply, (void)cap, (void)st;
	return REPLY_STATUS;
}

static const struct {
	const char *name;
	enum after (*run)(struct ctlcmd *c, const char *args, int fd,
			  char *reply, size_t cap, struct monitor_status *st);
} cmds[] = {
	{ "status", cmd_status }, { "lock", cmd_lock },
	{ "unlock", cmd_unlock }, { "check", cmd_check },
	{ "reload", cmd_reload }, { "sweep", cmd_sweep },
	{ "rekey", cmd_rekey },
};

/* One expiry's members: Unix time and whole days left (null without one)
 * and the warning level (30, 7, 1 days; 0 none), doc/KEYS.md "Expiry". */
static size_t expiry_member(char *out, size_t cap, const char *name,
			    int64_t exp, int warn, time_t now)
{
	int n;

	if (exp == 0)
		n = snprintf(out, cap, ",\"%s_expires\":null,\"%s_days_left\":"
			     "null,\"%s_expiry_warning\":0", name, name, name);
	else
		n = snprintf(out, cap, ",\"%s_expires\":%lld,\"%s_days_left\":"
			     "%ld,\"%s_expiry_warning\":%d", name,
			     (long long)exp, name, monitor_days_left(exp, now),
			     name, warn);
	return n < 0 ? 0 : (size_t)n;
}

/* The expiry members, inserted before the reply's closing brace. */
static void expiry_fields(const struct monitor_status *st, char *reply,
			  size_t cap)
{
	char more[320];
	size_t used = strlen(reply), n;
	time_t now = time(NULL);

	n = expiry_member(more, sizeof(more), "key", st->key_exp,
			  st->key_warn, now);
	n += expiry_member(more + n, sizeof(more) - n, "credential",
			   st->cred_exp, st->cred_warn, now);
	if (used == 0 || reply[used - 1] != '}' || used + n + 1 >= cap)
		return;
	snprintf(reply + used - 1, cap - used + 1, "%s}", more);
}

static void status_reply(struct ctlcmd *c, struct monitor_status *st,
			 char *reply, size_t cap)
{
	/* Any path --audit-log was given: escaped, so that the reply stays
	 * JSON for request() above, and cut to 1 KiB so that the whole reply
	 * fits the control socket's 4 KiB line (a cut reply would parse as
	 * "not locked" in cmkfs lock). */
	char alog[1024];

	json_escape(alog, sizeof(alog), audit_path(), NULL);
	/* key_id and last_result are ours (URIs, fixed phrases, Key Vault
	 * codes with controls replaced): no quotes reach them from Key Vault
	 * unescaped because kv_map_error copies codes only. */
	for (char *p = st->last_result; *p; p++) {
		if (*p == '"' || *p == '\\')
			*p = '\'';
	}
	snprintf(reply, cap,
		 "{\"ok\":true,\"locked\":%s,\"manual_lock\":%s,"
		 "\"last_check\":%lld,\"last_ok\":%lld,\"last_result\":\"%s\","
		 "\"key_id\":\"%s\",\"key_check_interval\":%d,\"grace\":%d,"
		 "\"last_check_ok\":%s,\"pid\":%ld,\"audit_log\":\"%s\","
		 "\"inodes\":%zu,\"handles\":%zu,\"lock_cause\":\"%s\","
		 "\"follows_latest\":%s,\"automatic_rotations\":%lu,"
		 "\"last_rotation\":%lld,\"checks\":%lu,"
		 "\"check_failures\":{\"denied\":%lu,\"transient\":%lu,"
		 "\"error\":%lu},\"eio_answered\":%lu}",
		 st->locked ? "true" : "false", st->manual ? "true" : "false",
		 (long long)st->last_check, (long long)st->last_ok,
		 st->last_result, st->key_id, c->key_check_interval_sec,
		 c->grace_sec, st->last_check_ok ? "true" : "false",
		 (long)getpid(), alog,
		 c->fs != NULL ? inode_count(c->fs) : (size_t)0,
		 c->fs != NULL ? inode_handle_count(c->fs) : (size_t)0,
		 st->lock_cause, st->follow ? "true" : "false", st->rotations,
		 (long long)st->last_rotation, st->checks, st->fail_denied,
		 st->fail_transient, st->fail_error,
		 c->fs != NULL ? ops_eio_answered() : 0UL);
	expiry_fields(st, reply, cap);
}

void ctlcmd_handle(const char *cmd, char *reply, size_t cap, int fd,
		   void *ud)
{
	struct ctlcmd *c = ud;
	struct monitor_status st;
	const char *args = "";
	enum after next;
	size_t i;

	/* "NAME" or "NAME ARGS" */
	for (i = 0; i < CMK_ARRAY_LEN(cmds); i++) {
		size_t n = strlen(cmds[i].name);

		if (strncmp(cmd, cmds[i].name, n) == 0 &&
		    (cmd[n] == '\0' || cmd[n] == ' ')) {
			args = cmd[n] == ' ' ? cmd + n + 1 : "";
			break;
		}
	}
	if (i == CMK_ARRAY_LEN(cmds)) {
		snprintf(reply, cap,
			 "{\"ok\":false,\"error\":\"unknown command\"}");
		return;
	}
	next = cmds[i].run(c, args, fd, reply, cap, &st);
	switch (next) {
	case REPLY_DONE:
		return;
	case REPLY_STATUS:
		monitor_get_status(c->mon, &st);
		break;
	case REPLY_GIVEN_STATUS:
	default:
		break;
	}
	status_reply(c, &st, reply, cap);
}
