/* src/cli/cmd_rekey.c — `cmkfs rekey [--full] [--json] CIPHERDIR`: new
 * KEK_S and KEK_C, every file header re-wrapped, block data untouched
 * (doc/KEYS.md "Rekey"); with --full also a new volume secret, every name
 * re-encrypted and every file re-sealed under fresh DEKs ("Full rekey"),
 * which is also what `cmkfs cmk enable` runs (cli_rekey()). On a mounted volume the mount daemon does the
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
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/http.h"
#include "cmkfs/runtime.h"
#include "cmkfs/rekey.h"
#include "cmkfs/volio.h"

struct ui {
	bool json, tty;
	const char *cmd;	/* "rekey" or "cmk" in messages */
	struct timespec start;
	uint64_t damaged_lines;
};

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs rekey [--full] [OPTIONS] CIPHERDIR\n"
		"\n"
		"Replace the volume's key-encryption keys KEK_S and KEK_C with new\n"
		"random ones (the customer one wrapped by the current CMK, or the\n"
		"service key without a CMK) and re-wrap every file header under them.\n"
		"Block data and names are not rewritten: whoever holds an old copy\n"
		"of the headers and the old keys can still read files that existed\n"
		"before. With --full, the recovery step after a suspected key or\n"
		"backup compromise, also a new volume secret (every name, symlink\n"
		"target and xattr re-encrypted) and fresh data keys for every file,\n"
		"every block re-sealed: nothing earlier copies of the metadata hold\n"
		"opens anything the volume holds afterwards. Works offline and on a\n"
		"mounted volume under load (the mount daemon does the work). If it is\n"
		"interrupted, even by kill -9 or a crash, the volume opens and reads\n"
		"as before; run the command again to finish.\n"
		"\n"
		"  --full               new data keys and names too (rewrites the volume)\n"
		"  --json               progress and result as JSON lines on stdout\n"
		KEYOPTS_HELP_SERVICE_KEY
		KEYOPTS_HELP_CA_FILE
		KEYOPTS_HELP_AUDIT_LOG
		"  -h, --help           this text\n"
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
	if (p->full) {
		/* by bytes: the re-seal is what takes the time */
		if (p->pass == 1 && p->bytes_done > 0 &&
		    p->bytes_total > p->bytes_done && p->elapsed > 0) {
			double rate = (double)p->bytes_done / p->elapsed;

			snprintf(eta, sizeof(eta), ", ETA %.0fs",
				 (double)(p->bytes_total - p->bytes_done) /
					 rate);
		}
		fprintf(stderr, "\r\033[K%s %u->%u: %s pass %u: %llu/%llu "
			"files, %.1f/%.1f MiB, %llu names%s", u->cmd,
			p->from_gen, p->to_gen, p->phase, p->pass,
			(unsigned long long)p->done,
			(unsigned long long)p->total,
			(double)p->bytes_done / 1048576.0,
			(double)p->bytes_total / 1048576.0,
			(unsigned long long)p->names, eta);
		return;
	}
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
	fprintf(stderr, "cmkfs %s: ", u->cmd);
	cli_fputs_safe(bpath, stderr);
	fprintf(stderr, "%s", *bpath ? ": " : "");
	cli_fputs_safe(what, stderr);
	fputc('\n', stderr);
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
	if (p->full) {
		printf("%s: full rekey from KEK generation %u to %u%s: %llu "
		       "files re-sealed (%.1f MiB), %llu names, targets and "
		       "xattrs re-encrypted, %llu damaged, %.1fs\n",
		       cdir, p->from_gen, p->to_gen,
		       p->resumed ? " (resumed)" : "",
		       (unsigned long long)p->rewrapped,
		       (double)p->bytes_total / 1048576.0,
		       (unsigned long long)p->names,
		       (unsigned long long)p->damaged, elapsed(u));
		return;
	}
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

static int offline(struct ui *u, const char *cdir, const char *keypath,
		   bool full, struct keyprov *new_c)
{
	const struct rekey_cb cb = { .progress = off_progress,
				     .problem = off_problem,
				     .arg = u,
				     .full = full,
				     .new_c = new_c };
	struct rekey_result r;
	int rc;

	rc = rekey_volume(cdir, keypath, &cb, &r);
	if (rc < 0 && r.stage == REKEY_STAGE_UNLOCK) {
		int ex = cli_exit_code(rc);

		/* the key file's faults and the volume's, then Key Vault's;
		 * 3 for keys unavailable otherwise (cmkfs-rekey(1)) */
		if (ex == CMK_EXIT_KEY || ex == CMK_EXIT_DAMAGED || rc == -EPERM)
			return cli_unlock_fail(u->cmd, cdir, keypath, rc, NULL);
		cli_fail(u->cmd, "%s", r.msg);
		return ex == CMK_EXIT_DENIED || ex == CMK_EXIT_UNREACHABLE ?
			       ex : CMK_EXIT_NOKEYS;
	}
	if (rc < 0) {
		if (r.stage == REKEY_STAGE_RUN && u->tty && !u->json)
			fprintf(stderr, "\r\033[K");
		cli_fail(u->cmd, "%s", r.msg);
		if (r.stage == REKEY_STAGE_RUN && u->json)
			printf("{\"ok\":false,\"error\":\"%s\"}\n",
			       volio_strerror(rc));
		return r.stage == REKEY_STAGE_UNLOCK ? CMK_EXIT_NOKEYS :
						       CMK_EXIT_RUNTIME;
	}
	show_result(u, cdir, &r.p);
	return r.p.damaged ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
}

/* ---- live: the mount daemon does the work, we show its lines ---- */

struct live {
	struct ui *u;
	const char *cdir;
	int ex;
	bool got_result;
};

static void live_progress(const struct rekey_progress *p, void *arg)
{
	struct live *l = arg;

	show_progress(l->u, p);
}

static void live_problem(const char *bpath, const char *what, void *arg)
{
	struct live *l = arg;

	show_problem(l->u, bpath, what);
}

static void live_result(const struct rekey_progress *p, const char *error,
			const char *line, void *arg)
{
	struct live *l = arg;

	l->got_result = true;
	if (p != NULL) {
		show_result(l->u, l->cdir, p);
		l->ex = p->damaged ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
		return;
	}
	if (l->u->tty && !l->u->json)
		fprintf(stderr, "\r\033[K");
	fprintf(stderr, "cmkfs %s: %s: %s\n", l->u->cmd, l->cdir, error);
	if (l->u->json)
		printf("%s\n", line);
	l->ex = CMK_EXIT_RUNTIME;
}

static int live(struct ui *u, const char *cdir, const char *mnt, bool full,
		const char *new_uri)
{
	struct live l = { u, cdir, CMK_EXIT_RUNTIME, false };
	const struct ctlcmd_rekey_cb cb = { live_progress, live_problem,
					    live_result, &l };
	char req[VOLUME_KEYID_MAX + 32];
	int rc;

	if (!u->json)
		fprintf(stderr, "cmkfs %s: %s is mounted on %s; the mount "
			"daemon %s\n", u->cmd, cdir, mnt,
			full ? "re-encrypts the volume" :
			       "re-wraps the headers");
	snprintf(req, sizeof(req), "rekey%s%s%s", full ? " full" : "",
		 new_uri ? " " : "", new_uri ? new_uri : "");
	rc = ctlcmd_rekey_stream(mnt, req, &cb);
	if (rc < 0 || !l.got_result)
		return cli_fail(u->cmd, "%s: lost the mount daemon (%s); run "
				"'cmkfs %s' again to finish",
				mnt, rc < 0 ? strerror(-rc) : "no reply",
				full && new_uri ? "cmk enable" : "rekey");
	return l.ex;
}

int cli_rekey(const char *cmd, const char *cdir, const char *keypath,
	      bool json, bool full, const char *new_uri,
	      struct keyprov *new_c)
{
	char found[PATH_MAX], mnt[PATH_MAX];
	struct ui u = { .json = json, .cmd = cmd };

	u.tty = isatty(STDERR_FILENO);
	clock_gettime(CLOCK_MONOTONIC, &u.start);
	if (runtime_find(cdir, found, sizeof(found), mnt, sizeof(mnt)))
		return live(&u, cdir, mnt, full, new_uri);
	return offline(&u, cdir, keypath, full, new_c);
}

int cmd_rekey(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "full", no_argument, NULL, 'F' },
		KEYOPTS_OPT_SERVICE_KEY,
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char cdir[PATH_MAX], kpath[PATH_MAX];
	bool json = false, full = false;
	struct keyopts ko;
	int c;

	keyopts_init(&ko);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'F':
			full = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("rekey", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("rekey", "expected one CIPHERDIR");
	if (realpath(argv[optind], cdir) == NULL)
		return cli_open_volume_fail("rekey", argv[optind], -errno);
	c = cli_key_path("rekey", ko.service_key, kpath, sizeof(kpath));
	if (c != CMK_EXIT_OK)
		return c;
	keyopts_apply(&ko);
	if (http_global_init() < 0)
		return cli_fail("rekey", "libcurl failed to start");
	audit_open(keyopts_audit_log(&ko));
	return cli_rekey("rekey", cdir, kpath, json, full, NULL, NULL);
}
