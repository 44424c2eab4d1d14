/* src/cli/cmd_rekey.c — `cmkfs rekey [--json] CIPHERDIR` (issue #4): new
 * KEK_S and KEK_C, every file header re-wrapped, block data untouched
 * (doc/KEYS.md "Rekey"). On a mounted volume the mount daemon does the
 * work (asked over its control socket) so its new files take the new
 * generation at once; otherwise this process does it, holding the volume
 * against mounts. Killed at any point, the volume still opens; running the
 * command again finishes the job.
 * Exit: 0 done, 1 failed (or damaged headers were found), 2 usage,
 * 3 keys unavailable. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/audit.h"
#include "cmkfs/ctl.h"
#include "cmkfs/http.h"
#include "cmkfs/json.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/runtime.h"
#include "cmkfs/rekey.h"
#include "cmkfs/volio.h"

struct ui {
	bool json, tty;
	struct timespec start;
	uint64_t damaged_lines;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs rekey [OPTIONS] CIPHERDIR\n"
		"\n"
		"Replace the volume's key-encryption keys KEK_S and KEK_C with new\n"
		"random ones (the customer one wrapped by the current CMK, or the\n"
		"service key without a CMK) and re-wrap every file header under them.\n"
		"Block data and names are not rewritten. Works offline and on a\n"
		"mounted volume under load (the mount daemon does the work). If it is\n"
		"interrupted, even by kill -9 or a crash, the volume opens and reads\n"
		"as before; run the command again to finish.\n"
		"\n"
		"  --json               progress and result as JSON lines on stdout\n"
		"  --service-key FILE   service key (default $CMKFS_SERVICE_KEY, else\n"
		"                       " SERVICE_KEY_DEFAULT ")\n"
		"  --ca-file FILE       extra CA for Key Vault TLS (or $CMKFS_CA_FILE)\n"
		"  --audit-log FILE     audit log (default $CMKFS_AUDIT_LOG, else\n"
		"                       " AUDIT_DEFAULT_PATH ")\n"
		"On a mounted volume the daemon's own service key and Azure\n"
		"credentials are used. Exit status: 0 done, 1 failed or damaged\n"
		"headers found (see 'cmkfs fsck'), 2 usage, 3 keys unavailable.\n");
}

static double elapsed(const struct ui *u)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - u->start.tv_sec) +
	       (double)(now.tv_nsec - u->start.tv_nsec) / 1e9;
}

static void show_progress(struct ui *u, const struct rekey_progress *p)
{
	char eta[32] = "";

	if (u->json) {
		char line[512];

		rekey_progress_json(p, line, sizeof(line));
		printf("%s\n", line);
		fflush(stdout);
		return;
	}
	if (!u->tty)
		return;
	if (strcmp(p->phase, "rewrap") == 0 && p->done > 0 &&
	    p->total > p->done) {
		double t = elapsed(u) / (double)p->done *
			   (double)(p->total - p->done);

		snprintf(eta, sizeof(eta), ", ETA %.0fs", t);
	}
	fprintf(stderr, "\r\033[Krekey %u->%u: %s pass %u: %llu/%llu files, "
		"%llu re-wrapped%s",
		p->from_gen, p->to_gen, p->phase, p->pass,
		(unsigned long long)p->done, (unsigned long long)p->total,
		(unsigned long long)p->rewrapped, eta);
}

static void show_problem(struct ui *u, const char *bpath, const char *what)
{
	u->damaged_lines++;
	if (u->json) {
		printf("{\"problem\":{\"backing\":");
		cli_json_str(bpath);
		printf(",\"what\":");
		cli_json_str(what);
		printf("}}\n");
		fflush(stdout);
		return;
	}
	if (u->tty)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "cmkfs rekey: %s%s%s\n", bpath, *bpath ? ": " : "",
		what);
}

static void show_result(struct ui *u, const char *cdir,
			const struct rekey_progress *p)
{
	if (u->json) {
		char line[512];

		rekey_result_json(p, line, sizeof(line));
		printf("%s\n", line);
		return;
	}
	if (u->tty)
		fprintf(stderr, "\r\033[K");
	printf("%s: rekeyed from KEK generation %u to %u%s: %llu files, %llu "
	       "headers re-wrapped, %llu damaged, %.1fs\n",
	       cdir, p->from_gen, p->to_gen, p->resumed ? " (resumed)" : "",
	       (unsigned long long)p->total, (unsigned long long)p->rewrapped,
	       (unsigned long long)p->damaged, elapsed(u));
}

/* ---- offline: this process does the work ---- */

static int off_progress(const struct rekey_progress *p, void *arg)
{
	show_progress(arg, p);
	return 0;
}

static void off_problem(const char *bpath, const char *what, void *arg)
{
	show_problem(arg, bpath, what);
}

static int offline(struct ui *u, const char *cdir, const char *keypath)
{
	struct keyprov *prov[2] = { NULL, NULL };
	struct rekey_cb cb = { off_progress, off_problem, u };
	struct rekey_progress p = { 0 };
	struct keyring *kr = NULL;
	struct volume v;
	char id[VOLUME_ID_HEX_LEN];
	int fd, rc, ex = CMK_EXIT_RUNTIME;

	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_lock_offline(fd);
	if (rc == 0)
		rc = volio_read(fd, &v);
	if (rc < 0) {
		cli_fail("rekey", "%s: %s", cdir, volio_strerror(rc));
		goto out;
	}
	volume_id_hex(&v, id);
	audit_set_volume(id);
	rc = volio_providers(&v, keypath, prov);
	if (rc == 0)
		rc = keyring_open(&v, prov, &kr);
	if (rc < 0) {
		cli_fail("rekey", "%s: cannot unlock: %s%s%s", cdir,
			 volio_strerror(rc),
			 v.layer[1].prov == KPROV_AKV ? ": " : "",
			 v.layer[1].prov == KPROV_AKV ? kv_last_error() : "");
		audit_event("rekey", v.layer[1].key_id, "denied",
			    volio_strerror(rc));
		ex = CMK_EXIT_NOKEYS;
		goto out;
	}
	rc = rekey_run(fd, kr, prov, &cb, &p);
	rekey_audit(&p, v.layer[1].key_id, rc, true);
	if (rc < 0) {
		if (u->tty && !u->json)
			fprintf(stderr, "\r\033[K");
		cli_fail("rekey", "%s: %s%s%s", cdir, volio_strerror(rc),
			 v.layer[1].prov == KPROV_AKV ? ": " : "",
			 v.layer[1].prov == KPROV_AKV ? kv_last_error() : "");
		if (u->json)
			printf("{\"ok\":false,\"error\":\"%s\"}\n",
			       volio_strerror(rc));
		goto out;
	}
	show_result(u, cdir, &p);
	ex = p.damaged ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
out:
	keyring_free(kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	if (fd >= 0)
		close(fd);
	return ex;
}

/* ---- live: the mount daemon does the work, we show its lines ---- */

struct live {
	struct ui *u;
	const char *cdir;
	int ex;
	bool got_result;
};

static int get_u64(const struct json *j, const char *k, uint64_t *out)
{
	int64_t x = 0;
	int rc = json_int(j, k, &x);

	*out = rc == 0 && x > 0 ? (uint64_t)x : 0;
	return rc;
}

static void fill(const struct json *j, struct rekey_progress *p,
		 char *phase, size_t cap)
{
	const char *s = "";
	uint64_t x;
	bool b = false;

	if (json_str(j, "phase", &s) < 0)
		s = "";
	snprintf(phase, cap, "%s", s);
	p->phase = phase;
	(void)get_u64(j, "from_gen", &x);
	p->from_gen = (uint32_t)x;
	(void)get_u64(j, "to_gen", &x);
	p->to_gen = (uint32_t)x;
	(void)get_u64(j, "pass", &x);
	p->pass = (unsigned)x;
	(void)get_u64(j, "total", &p->total);
	(void)get_u64(j, "files", &x);
	if (x)
		p->total = x;
	(void)get_u64(j, "done", &p->done);
	(void)get_u64(j, "rewrapped", &p->rewrapped);
	(void)get_u64(j, "damaged", &p->damaged);
	(void)get_u64(j, "passes", &x);
	if (x)
		p->pass = (unsigned)x;
	if (json_bool(j, "resumed", &b) < 0)
		b = false;
	p->resumed = b;
}

static int on_line(const char *line, void *arg)
{
	struct live *l = arg;
	const struct json *o;
	struct json *j = NULL;
	struct rekey_progress p = { 0 };
	char phase[32];
	bool ok = false;

	if (json_parse(line, strlen(line), &j) < 0)
		return 0;
	if (json_obj(j, "progress", &o) == 0) {
		fill(o, &p, phase, sizeof(phase));
		show_progress(l->u, &p);
	} else if (json_obj(j, "problem", &o) == 0) {
		const char *b = "", *w = "";

		if (json_str(o, "backing", &b) < 0)
			b = "";
		if (json_str(o, "what", &w) < 0)
			w = "";
		show_problem(l->u, b, w);
	} else if (json_bool(j, "ok", &ok) == 0) {
		l->got_result = true;
		if (ok && json_obj(j, "rekey", &o) == 0) {
			fill(o, &p, phase, sizeof(phase));
			show_result(l->u, l->cdir, &p);
			l->ex = p.damaged ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
		} else {
			const char *e = "unknown error";

			if (json_str(j, "error", &e) < 0)
				e = "unknown error";
			if (l->u->tty && !l->u->json)
				fprintf(stderr, "\r\033[K");
			fprintf(stderr, "cmkfs rekey: %s: %s\n", l->cdir, e);
			if (l->u->json)
				printf("%s\n", line);
			l->ex = CMK_EXIT_RUNTIME;
		}
	}
	json_free(j);
	return 0;
}

static int live(struct ui *u, const char *cdir, const char *mnt)
{
	struct live l = { u, cdir, CMK_EXIT_RUNTIME, false };
	int rc;

	if (!u->json)
		fprintf(stderr, "cmkfs rekey: %s is mounted on %s; the mount "
			"daemon re-wraps the headers\n", cdir, mnt);
	rc = ctl_stream(mnt, "rekey", 300000, on_line, &l);
	if (rc < 0 || !l.got_result)
		return cli_fail("rekey", "%s: lost the mount daemon (%s); run "
				"'cmkfs rekey' again to finish",
				mnt, rc < 0 ? strerror(-rc) : "no reply");
	return l.ex;
}

int cmd_rekey(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "service-key", required_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keypath = kp_local_default_path(), *audit_log = NULL;
	char cdir[PATH_MAX], found[PATH_MAX], mnt[PATH_MAX];
	struct ui u = { 0 };
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			u.json = true;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'c':
			kp_akv_set_ca_file(optarg);
			break;
		case 'a':
			audit_log = optarg;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("rekey", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("rekey", "expected one CIPHERDIR");
	if (realpath(argv[optind], cdir) == NULL)
		return cli_fail("rekey", "%s: %s", argv[optind],
				strerror(errno));
	u.tty = isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &u.start);
	if (runtime_find(cdir, found, sizeof(found), mnt, sizeof(mnt)))
		return live(&u, cdir, mnt);
	if (http_global_init() < 0)
		return cli_fail("rekey", "libcurl failed to start");
	audit_open(audit_log);
	return offline(&u, cdir, keypath);
}
