/* src/cli/cmd_status.c — `cmkfs status [--json] CIPHERDIR|MOUNTPOINT`.
 * Reads only the public fields of the config: needs no key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/runtime.h"
#include "cmkfs/ctl.h"
#include "cmkfs/json.h"
#include "cmkfs/kv.h"
#include "cmkfs/volio.h"

static const char *const layer_name[2] = { "inner", "outer" };
static const char *const layer_side[2] = { "service", "customer" };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs status [--json] CIPHERDIR|MOUNTPOINT\n"
		"       cmkfs status --prometheus [CIPHERDIR|MOUNTPOINT]\n"
		"\n"
		"Show the volume id, on-disk format version, block size, cipher\n"
		"suites, which key protects each layer, and whether (and where) the\n"
		"volume is mounted. Needs no key. --json prints one JSON object.\n"
		"A mounted volume also shows its lock state, last key check, open\n"
		"handles, error counts and when the key in use and the client\n"
		"certificate expire. --prometheus prints metrics in the\n"
		"node_exporter textfile format, for one volume or (without an\n"
		"operand) every cmkfs mount of the host.\n"
		"\n"
		"  --json               one JSON object\n"
		"  --prometheus         node_exporter textfile metrics\n"
		"  -h, --help           this text\n"
		"\n"
		"Exit status (for monitoring; the first that applies):\n"
		"  7  mounted, but the daemon does not answer (killed or gone)\n"
		"  5  the mount is locked ('cmkfs lock' or a failed key check)\n"
		"  6  stale: not locked, but the last successful key check is\n"
		"     older than the grace period plus two check intervals\n"
		"  4  the key in use or the client certificate expires within\n"
		"     30 days\n"
		"  0  shown (not mounted, or mounted and healthy)\n"
		"  1  error, 2 usage\n");
}

/* The mount's health from the daemon's reply: CMK_EXIT_LOCKED,
 * CMK_EXIT_STALE or CMK_EXIT_OK. Stale: the monitor locks at the first
 * check after the grace period ran out, and checks come every interval
 * (+-10 %), so an unlocked mount whose keys went unproven for longer than
 * grace + 2 x interval has checks that are stuck. *age gets the seconds
 * since the last successful check (-1 unknown). */
static int health(const char *live, time_t now, long *age)
{
	struct json *j = NULL;
	int64_t last_ok = 0, interval = 0, grace = 0;
	bool locked = false;
	int rc = CMK_EXIT_OK;

	*age = -1;
	if (json_parse(live, strlen(live), &j) < 0)
		return CMK_EXIT_OK;
	if (json_bool(j, "locked", &locked) == 0 && locked)
		rc = CMK_EXIT_LOCKED;
	if (json_int(j, "last_ok", &last_ok) == 0 && last_ok > 0) {
		*age = (long)((int64_t)now - last_ok);
		if (rc == CMK_EXIT_OK &&
		    json_int(j, "key_check_interval", &interval) == 0 &&
		    json_int(j, "grace", &grace) == 0 &&
		    *age > grace + 2 * interval)
			rc = CMK_EXIT_STALE;
	}
	json_free(j);
	return rc;
}

/* realpath() of a mountpoint whose daemon is gone fails (ENOTCONN) on the
 * last component: resolve its parent instead, so status can say so. */
static int resolve(const char *arg, char *out)
{
	char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];

	if (realpath(arg, out) != NULL)
		return 0;
	if (errno != ENOTCONN || strlen(arg) >= sizeof(a))
		return -errno;
	snprintf(a, sizeof(a), "%s", arg);
	snprintf(b, sizeof(b), "%s", arg);
	if (realpath(dirname(a), dir) == NULL)
		return -ENOTCONN;
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "",
			     basename(b)) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* The daemon's expiry members (ctlcmd.c): in text if `print`; true if
 * either warns. */
static bool expiry_lines(const char *live, bool print)
{
	static const char *const what[2] = { "key", "credential" };
	bool warn = false;
	struct json *j = NULL;

	if (json_parse(live, strlen(live), &j) < 0)
		return false;
	for (int i = 0; i < 2; i++) {
		char name[64], when[32];
		int64_t exp = 0, days = 0, level = 0;
		time_t t;
		struct tm tm;

		snprintf(name, sizeof(name), "%s_expiry_warning", what[i]);
		if (json_int(j, name, &level) == 0 && level > 0)
			warn = true;
		snprintf(name, sizeof(name), "%s_expires", what[i]);
		if (!print || json_int(j, name, &exp) < 0)
			continue;
		snprintf(name, sizeof(name), "%s_days_left", what[i]);
		if (json_int(j, name, &days) < 0)
			continue;
		t = (time_t)exp;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-17s%s (%lld days left%s%s)\n",
		       i == 0 ? "key expires:" : "cert expires:", when,
		       (long long)days, level > 0 ? ": WARNING, " : "",
		       level == 30 ? "30-day threshold" :
		       level == 7  ? "7-day threshold" :
		       level == 1  ? "1-day threshold" : "");
	}
	json_free(j);
	return warn;
}


static void utc(int64_t t, char *out, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;

	gmtime_r(&tt, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static int64_t jint(const struct json *j, const char *key)
{
	int64_t v = 0;

	return json_int(j, key, &v) == 0 ? v : 0;
}

static const char *jstr(const struct json *j, const char *key)
{
	const char *v = NULL;

	return json_str(j, key, &v) == 0 ? v : "";
}

static bool jbool(const struct json *j, const char *key)
{
	bool v = false;

	return json_bool(j, key, &v) == 0 && v;
}

/* The daemon's reply as "field: value" lines. */
static void daemon_lines(const char *live, time_t now)
{
	const struct json *cf = NULL;
	struct json *j = NULL;
	char t1[32], t2[32];
	int64_t last = 0, ok = 0;

	if (json_parse(live, strlen(live), &j) < 0) {
		printf("daemon:          answers, but not in JSON\n");
		return;
	}
	printf("daemon:          answering (pid %lld); key check every "
	       "%lld s, grace %lld s\n", (long long)jint(j, "pid"),
	       (long long)jint(j, "key_check_interval"),
	       (long long)jint(j, "grace"));
	if (!jbool(j, "locked"))
		printf("locked:          no\n");
	else if (jbool(j, "manual_lock"))
		printf("locked:          yes, by 'cmkfs lock' (until 'cmkfs "
		       "unlock')\n");
	else
		printf("locked:          yes, by a key check (%s)\n",
		       *jstr(j, "lock_cause") ? jstr(j, "lock_cause") :
						"failed");
	last = jint(j, "last_check");
	ok = jint(j, "last_ok");
	utc(last, t1, sizeof(t1));
	utc(ok, t2, sizeof(t2));
	printf("last key check:  %s (%lld s ago): %s\n", t1,
	       (long long)(now - last), jstr(j, "last_result"));
	printf("last success:    %s (%lld s ago)\n", t2,
	       (long long)(now - ok));
	printf("key in use:      %s\n", jstr(j, "key_id"));
	printf("open handles:    %lld (inodes held by the kernel: %lld)\n",
	       (long long)jint(j, "handles"), (long long)jint(j, "inodes"));
	if (json_obj(j, "check_failures", &cf) == 0)
		printf("errors:          key checks %lld, failed: denied %lld, "
		       "transient %lld, error %lld; EIO answered %lld\n",
		       (long long)jint(j, "checks"),
		       (long long)jint(cf, "denied"),
		       (long long)jint(cf, "transient"),
		       (long long)jint(cf, "error"),
		       (long long)jint(j, "eio_answered"));
	if (jbool(j, "follows_latest") || jint(j, "automatic_rotations") > 0)
		printf("rotation:        follows the key's latest version, "
		       "%lld automatic rotations by this mount\n",
		       (long long)jint(j, "automatic_rotations"));
	printf("audit log:       %s\n", jstr(j, "audit_log"));
	json_free(j);
}

/* ---- status --prometheus: node_exporter textfile collector format ---- */

struct pvol {
	char mnt[PATH_MAX], cdir[PATH_MAX];
	char id[VOLUME_ID_HEX_LEN];
	char live[4096];
	bool mounted, up;
	int health;		/* the exit status of this volume alone */
	struct volume v;
	bool have_v;
};

/* A label value: backslash, quote and newline escaped. */
static void plabel(const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			printf("\\%c", *s);
		else if (*s == '\n')
			printf("\\n");
		else
			putchar(*s);
	}
}

/* {mountpoint="..",cipherdir="..",volume="..",K="V"...}; kv: pairs,
 * NULL-terminated (may be NULL). */
static void plabels(const struct pvol *p, const char *const *kv)
{
	printf("{mountpoint=\"");
	plabel(p->mnt);
	printf("\",cipherdir=\"");
	plabel(p->cdir);
	printf("\",volume=\"%s\"", p->id);
	for (; kv != NULL && kv[0] != NULL; kv += 2) {
		printf(",%s=\"", kv[0]);
		plabel(kv[1]);
		printf("\"");
	}
	printf("}");
}

static void phead(const char *name, const char *type, const char *help)
{
	printf("# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* What one volume says: its config (for its id) and its daemon's reply. */
static void pvol_probe(struct pvol *p, time_t now)
{
	long age;
	int fd;

	p->have_v = false;
	fd = open(p->cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		p->have_v = volio_read(fd, &p->v) == 0;
		close(fd);
	}
	if (p->have_v)
		volume_id_hex(&p->v, p->id);
	else
		p->id[0] = '\0';
	p->up = false;
	p->health = CMK_EXIT_OK;
	if (!p->mounted)
		return;
	p->up = ctl_request(p->mnt, "status", p->live, sizeof(p->live)) == 0;
	if (!p->up) {
		p->health = CMK_EXIT_DEAD;
		return;
	}
	p->health = health(p->live, now, &age);
	if (p->health == CMK_EXIT_OK && expiry_lines(p->live, false))
		p->health = CMK_EXIT_EXPIRY_WARNING;
}

/* The first of 7, 5, 6, 4 that any volume has, else 0. */
static int worst(const struct pvol *pv, size_t n)
{
	static const int order[] = { CMK_EXIT_DEAD, CMK_EXIT_LOCKED,
				     CMK_EXIT_STALE, CMK_EXIT_EXPIRY_WARNING };

	for (size_t k = 0; k < CMK_ARRAY_LEN(order); k++) {
		for (size_t i = 0; i < n; i++) {
			if (pv[i].health == order[k])
				return order[k];
		}
	}
	return CMK_EXIT_OK;
}

/* One sample of a metric family: its value and extra labels (kv, NULL
 * ended; kv and its strings may point into the sample itself). */
struct psample {
	double v;
	const char *kv[12];
	struct kv_uri u;
	char buf[16];
};

/* A sample from a daemon's reply j; false: this volume has none. */
typedef bool (*psample_fn)(const struct json *j, time_t now, const void *arg,
			   struct psample *s);

/* A metric family (its HELP and TYPE once, at *head false): a sample per
 * volume whose daemon answers and for which fn gives one. */
static void pfamily_fn(const struct pvol *pv, size_t n, const char *name,
		       const char *type, const char *help, bool *head,
		       psample_fn fn, const void *arg, time_t now)
{
	for (size_t i = 0; i < n; i++) {
		struct psample smp = { 0 };
		struct json *j = NULL;

		if (!pv[i].up ||
		    json_parse(pv[i].live, strlen(pv[i].live), &j) < 0)
			continue;
		if (fn(j, now, arg, &smp)) {
			if (!*head)
				phead(name, type, help);
			*head = true;
			printf("%s", name);
			plabels(&pv[i], smp.kv[0] != NULL ? smp.kv : NULL);
			printf(" %.15g\n", smp.v);
		}
		json_free(j);
	}
}

/* An integer member of the reply, or of its member object `obj`; with
 * `kind`, labelled kind="..." */
struct pmember {
	const char *obj, *key, *kind;
};

static bool s_member(const struct json *j, time_t now, const void *arg,
		     struct psample *s)
{
	const struct pmember *m = arg;
	const struct json *o = j;
	int64_t v;

	(void)now;
	if ((m->obj != NULL && json_obj(j, m->obj, &o) < 0) ||
	    json_int(o, m->key, &v) < 0)
		return false;
	s->v = (double)v;
	if (m->kind != NULL) {
		s->kv[0] = "kind";
		s->kv[1] = m->kind;
	}
	return true;
}

static bool s_bool(const struct json *j, time_t now, const void *arg,
		   struct psample *s)
{
	(void)now;
	s->v = jbool(j, arg) ? 1 : 0;
	return true;
}

static bool s_age(const struct json *j, time_t now, const void *arg,
		  struct psample *s)
{
	s->v = (double)(now - jint(j, arg));
	return true;
}

static bool s_expiry(const struct json *j, time_t now, const void *arg,
		     struct psample *s)
{
	int64_t exp;

	(void)arg;
	if (json_int(j, "key_expires", &exp) < 0 || exp <= 0)
		return false;
	s->v = (double)(exp - (int64_t)now) / 86400.0;
	return true;
}

static bool s_key_info(const struct json *j, time_t now, const void *arg,
		       struct psample *s)
{
	const char *kid = jstr(j, "key_id");
	bool akv = kv_parse_uri(kid, &s->u) == 0;
	const char *kv[] = { "provider", akv ? "akv" : "local",
			     "vault", akv ? s->u.vault : "",
			     "key", akv ? s->u.name : "",
			     "version", akv ? s->u.version : "",
			     "key_id", kid, NULL };

	(void)now;
	(void)arg;
	memcpy(s->kv, kv, sizeof(kv));
	s->v = 1;
	return true;
}

static void pfamily(const struct pvol *pv, size_t n, const char *name,
		    const char *type, const char *help, psample_fn fn,
		    const void *arg, time_t now)
{
	bool head = false;

	pfamily_fn(pv, n, name, type, help, &head, fn, arg, now);
}

static void prometheus(struct pvol *pv, size_t n, time_t now)
{
	static const struct pmember errs[] = {
		{ NULL, "eio_answered", "eio_answered" },
		{ "check_failures", "denied", "check_denied" },
		{ "check_failures", "transient", "check_transient" },
		{ "check_failures", "error", "check_error" },
	};
	static const struct pmember interval = { NULL, "key_check_interval",
						 NULL },
				    grace = { NULL, "grace", NULL },
				    handles = { NULL, "handles", NULL },
				    inodes = { NULL, "inodes", NULL },
				    checks = { NULL, "checks", NULL };
	bool head;

	phead("cmkfs_up", "gauge",
	      "1 if the volume is mounted and its daemon answers, 0 if not "
	      "mounted or the daemon is dead");
	for (size_t i = 0; i < n; i++) {
		printf("cmkfs_up");
		plabels(&pv[i], NULL);
		printf(" %d\n", pv[i].up ? 1 : 0);
	}
	phead("cmkfs_health", "gauge",
	      "the exit status of 'cmkfs status' for this volume: 0 ok, 4 "
	      "expiry warning, 5 locked, 6 stale, 7 dead");
	for (size_t i = 0; i < n; i++) {
		printf("cmkfs_health");
		plabels(&pv[i], NULL);
		printf(" %d\n", pv[i].health);
	}
	pfamily(pv, n, "cmkfs_locked", "gauge",
		"1 if the keys are wiped (cmkfs lock or a failed key check; "
		"cmkfs status says which), else 0", s_bool, "locked", now);
	pfamily(pv, n, "cmkfs_key_check_age_seconds", "gauge",
		"seconds since the last successful key check", s_age,
		"last_ok", now);
	pfamily(pv, n, "cmkfs_last_key_check_ok", "gauge",
		"1 if the last key check succeeded, else 0", s_bool,
		"last_check_ok", now);
	pfamily(pv, n, "cmkfs_key_check_interval_seconds", "gauge",
		"the key check interval", s_member, &interval, now);
	pfamily(pv, n, "cmkfs_grace_seconds", "gauge",
		"how long key checks may fail transiently before the mount "
		"locks", s_member, &grace, now);
	pfamily(pv, n, "cmkfs_key_expiry_days", "gauge",
		"days until the key in use expires (absent: it has no expiry)",
		s_expiry, NULL, now);
	pfamily(pv, n, "cmkfs_key_info", "gauge",
		"the key that protects the customer layer now (always 1)",
		s_key_info, NULL, now);
	head = false;
	for (size_t i = 0; i < n; i++) {
		char g[16];
		const char *kv[] = { "kek_generation", g, NULL };

		if (!pv[i].have_v)
			continue;
		if (!head)
			phead("cmkfs_volume_info", "gauge",
			      "the volume's format version (the KEK generation "
			      "as a label)");
		head = true;
		snprintf(g, sizeof(g), "%u", pv[i].v.kek_gen);
		printf("cmkfs_volume_info");
		plabels(&pv[i], kv);
		printf(" %d\n", pv[i].v.version);
	}
	pfamily(pv, n, "cmkfs_open_handles", "gauge",
		"open files and directories the kernel has not released",
		s_member, &handles, now);
	pfamily(pv, n, "cmkfs_inodes", "gauge",
		"files and directories the kernel holds references to",
		s_member, &inodes, now);
	pfamily(pv, n, "cmkfs_key_checks_total", "counter",
		"key checks made by this mount", s_member, &checks, now);
	head = false;
	for (size_t k = 0; k < CMK_ARRAY_LEN(errs); k++)
		pfamily_fn(pv, n, "cmkfs_errors_total", "counter",
			   "errors since the mount: EIO answered to "
			   "applications, key checks denied (Key Vault or "
			   "Entra ID refused), transient (unreachable), error "
			   "(other)",
			   &head, s_member, &errs[k], now);
}

/* One volume (mnt "" if not mounted). */
static int status_prometheus_one(const char *cdir, const char *mnt)
{
	struct pvol *p = calloc(1, sizeof(*p));
	time_t now = time(NULL);
	int rc;

	if (p == NULL)
		return cli_fail("status", "%s", strerror(ENOMEM));
	snprintf(p->cdir, sizeof(p->cdir), "%s", cdir);
	snprintf(p->mnt, sizeof(p->mnt), "%s", mnt);
	p->mounted = *mnt != '\0';
	pvol_probe(p, now);
	if (!p->have_v) {
		free(p);
		return cli_fail("status", "%s: no cmkfs volume here", cdir);
	}
	prometheus(p, 1, now);
	rc = worst(p, 1);
	free(p);
	return rc;
}

/* Every fuse.cmkfs mount in /proc/self/mountinfo. */
static int status_prometheus_all(void)
{
	char line[8192];
	struct pvol *pv = NULL;
	size_t n = 0;
	time_t now = time(NULL);
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int rc;

	if (f == NULL)
		return cli_fail("status", "/proc/self/mountinfo: %s",
				strerror(errno));
	while (fgets(line, sizeof(line), f) != NULL) {
		struct pvol *q;
		char *m, *src;

		if (!runtime_mountinfo_parse(line, &m, &src))
			continue;
		q = realloc(pv, (n + 1) * sizeof(*pv));
		if (q == NULL) {
			fclose(f);
			free(pv);
			return cli_fail("status", "%s", strerror(ENOMEM));
		}
		pv = q;
		memset(&pv[n], 0, sizeof(pv[n]));
		snprintf(pv[n].mnt, sizeof(pv[n].mnt), "%s", m);
		snprintf(pv[n].cdir, sizeof(pv[n].cdir), "%s", src);
		pv[n].mounted = true;
		n++;
	}
	fclose(f);
	for (size_t i = 0; i < n; i++)
		pvol_probe(&pv[i], now);
	prometheus(pv, n, now);
	rc = worst(pv, n);
	free(pv);
	return rc;
}

int cmd_status(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "prometheus", no_argument, NULL, 'P' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char path[PATH_MAX], cdir[PATH_MAX], mnt[PATH_MAX], id[VOLUME_ID_HEX_LEN];
	bool json = false, prom = false, mounted, have_uri;
	char live[4096] = "null";
	int ctl_rc = 0, exit_rc = CMK_EXIT_OK;
	long age = -1;
	struct kv_uri u;
	struct volume v;
	pid_t pid = 0;
	int c, fd, rc;

	opterr = 0;	/* our own one-line message below */
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'P':
			prom = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("status", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (prom && json)
		return cli_usage_error("status", "--json and --prometheus "
				       "exclude each other");
	if (prom && optind == argc)
		return status_prometheus_all();
	if (optind != argc - 1)
		return cli_usage_error("status",
				       "expected CIPHERDIR or MOUNTPOINT");
	rc = resolve(argv[optind], path);
	if (rc < 0)
		return cli_fail("status", "%s: %s", argv[optind],
				strerror(-rc));
	mounted = runtime_find(path, cdir, sizeof(cdir), mnt, sizeof(mnt));
	if (!mounted) {
		snprintf(cdir, sizeof(cdir), "%s", path);
		mnt[0] = '\0';
	} else {
		char sdir[PATH_MAX];

		if (runtime_state_read(mnt, &pid, sdir, sizeof(sdir)) < 0)
			pid = 0;
	}
	if (prom)
		return status_prometheus_one(cdir, mounted ? mnt : "");
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("status", "%s: %s", cdir, strerror(errno));
	rc = volio_read(fd, &v);
	close(fd);
	if (rc < 0)
		return cli_fail("status", "%s: %s", cdir, volio_strerror(rc));
	volume_id_hex(&v, id);
	if (mounted)
		ctl_rc = ctl_request(mnt, "status", live, sizeof(live));
	if (ctl_rc < 0)
		snprintf(live, sizeof(live), "null");
	if (mounted && ctl_rc < 0)
		exit_rc = CMK_EXIT_DEAD;
	else if (mounted)
		exit_rc = health(live, time(NULL), &age);
	if (exit_rc == CMK_EXIT_OK && mounted && expiry_lines(live, false))
		exit_rc = CMK_EXIT_EXPIRY_WARNING;
	have_uri = v.layer[1].prov == KPROV_AKV &&
		   kv_parse_uri(v.layer[1].key_id, &u) == 0;
	if (json) {
		printf("{\"cipherdir\":");
		cli_json_str(cdir);
		printf(",\"volume_id\":\"%s\",\"format_version\":%d,"
		       "\"block_size\":%u,\"kek_generation\":%u,"
		       "\"rekey_in_progress\":%s,\"full_rekey_in_progress\":%s,"
		       "\"upgrade_in_progress\":%s,\"created\":%llu,",
		       id, v.version, v.block_size, v.kek_gen,
		       (v.flags & VOLUME_FLAG_REKEY) ? "true" : "false",
		       (v.flags & VOLUME_FLAG_FULL) ? "true" : "false",
		       (v.flags & VOLUME_FLAG_UPGRADE) ? "true" : "false",
		       (unsigned long long)v.created_sec);
		printf("\"ciphers\":{\"inner\":\"AES-256-GCM\",\"outer\":"
		       "\"AES-256-GCM\",\"names\":\"AES-256-SIV\","
		       "\"key_wrap\":\"AES-256-GCM\",\"config_mac\":"
		       "\"HMAC-SHA256\"},\"layers\":[");
		for (int i = 0; i < 2; i++) {
			printf("%s{\"layer\":\"%s\",\"side\":\"%s\","
			       "\"provider\":\"%s\",\"key_id\":",
			       i ? "," : "", layer_name[i], layer_side[i],
			       volume_prov_name(v.layer[i].prov));
			cli_json_str(v.layer[i].key_id);
			printf("}");
		}
		printf("],\"customer_managed_key\":%s",
		       v.layer[1].prov == KPROV_AKV ? "true" : "false");
		if (have_uri) {
			printf(",\"cmk\":{\"uri\":");
			cli_json_str(v.layer[1].key_id);
			printf(",\"vault\":");
			cli_json_str(u.vault);
			printf(",\"name\":");
			cli_json_str(u.name);
			printf(",\"version\":");
			cli_json_str(u.version);
			printf(",\"managed_hsm\":%s,\"follows_latest\":%s}",
			       u.hsm ? "true" : "false",
			       (v.flags & VOLUME_FLAG_FOLLOW) ? "true" :
								"false");
		}
		printf(",\"mounted\":%s", mounted ? "true" : "false");
		if (mounted) {
			printf(",\"mountpoint\":");
			cli_json_str(mnt);
			if (pid > 0)
				printf(",\"pid\":%ld", (long)pid);
			/* the daemon's own JSON: lock state, last key check */
			printf(",\"daemon\":%s", live);
			printf(",\"health\":\"%s\"",
			       exit_rc == CMK_EXIT_DEAD   ? "dead" :
			       exit_rc == CMK_EXIT_LOCKED ? "locked" :
			       exit_rc == CMK_EXIT_STALE  ? "stale" :
							    "ok");
			if (ctl_rc < 0)
				printf(",\"daemon_error\":\"%s\"",
				       strerror(-ctl_rc));
		}
		printf("}\n");
		return exit_rc;
	}
	printf("cipherdir:       %s\n", cdir);
	printf("volume id:       %s\n", id);
	printf("format version:  %d%s\n", v.version,
	       (v.flags & VOLUME_FLAG_UPGRADE) ?
		       " (upgrade in progress: run 'cmkfs upgrade' to finish)" :
		       v.version < 3 ? " (run 'cmkfs upgrade' for format 3)" :
				       "");
	printf("KEK generation:  %u%s\n", v.kek_gen,
	       (v.flags & VOLUME_FLAG_FULL) ?
		       " (full rekey in progress: run 'cmkfs rekey' or "
		       "'cmkfs cmk enable' again to finish)" :
	       (v.flags & VOLUME_FLAG_REKEY) ?
		       " (rekey in progress: run 'cmkfs rekey' to finish)" :
		       "");
	printf("block size:      %u\n", v.block_size);
	printf("ciphers:         inner AES-256-GCM, outer AES-256-GCM, names "
	       "AES-256-SIV,\n                 key wrap AES-256-GCM, config "
	       "HMAC-SHA256\n");
	for (int i = 0; i < 2; i++)
		printf("%s layer:     %s key, provider %s, key %s\n",
		       layer_name[i], layer_side[i],
		       volume_prov_name(v.layer[i].prov), v.layer[i].key_id);
	printf("customer key:    %s\n",
	       v.layer[1].prov == KPROV_AKV ? "customer-managed (Key Vault)" :
					      "off (service-managed)");
	if (have_uri)
		printf("key vault:       vault %s, key %s, version %s (%s)\n",
		       u.vault, u.name, u.version,
		       (v.flags & VOLUME_FLAG_FOLLOW) ?
			       "follows the key's latest version" :
			       "pinned to this version");
	if (mounted) {
		printf("mounted:         yes, on %s (pid %ld)\n", mnt, (long)pid);
		if (ctl_rc < 0) {
			bool gone = pid > 0 && kill(pid, 0) < 0 &&
				    errno == ESRCH;

			printf("daemon:          DEAD: its control socket does "
			       "not answer (%s)%s\n", strerror(-ctl_rc),
			       gone ? "; its pid is gone" : "");
			return exit_rc;
		}
		daemon_lines(live, time(NULL));
		if (exit_rc == CMK_EXIT_LOCKED)
			printf("health:          LOCKED: keys wiped; 'cmkfs "
			       "unlock %s' resumes once a key check passes\n",
			       mnt);
		else if (exit_rc == CMK_EXIT_STALE)
			printf("health:          STALE: last successful key "
			       "check %ld s ago, longer than grace + 2 "
			       "intervals\n", age);
		else
			printf("health:          ok\n");
		expiry_lines(live, true);
	} else {
		printf("mounted:         no\n");
	}
	return exit_rc;
}
