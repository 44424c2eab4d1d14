/* src/cli/cmd_fsck.c — `cmkfs fsck [--repair] [--json] CIPHERDIR`: finds
 * the volume's mount if any, runs the check (fsck_volume(),
 * include/cmkfs/fsck.h) and prints each problem and repair action as it
 * comes, then a summary. Progress by bytes with a total and ETA goes to
 * stderr while it is a terminal (or with --progress; --no-progress: never),
 * as JSON lines with --json: stdout keeps only problems, actions and the
 * summary, which scripts count. Exit: 0 clean, 1 damage
 * found (repaired or not), 2 usage (and --repair on a mounted volume),
 * 3 keys unavailable, 13 --repair refused for free space. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "keyopts.h"
#include "cmkfs/fsck.h"
#include "cmkfs/http.h"
#include "cmkfs/runtime.h"

struct out {
	bool json;
	bool tty;	/* a progress line is redrawn on stderr (a terminal) */
	bool lines;	/* one progress line each time on stderr */
	bool jprog;	/* --json: those lines are JSON objects */
	bool drawn;	/* a progress line is on the terminal now */
	const char *cdir;
	struct timespec last;
	const char *last_phase;
};

/* Clear the progress line before other output on the terminal. */
static void unline(struct out *o)
{
	if (o->drawn)
		fprintf(stderr, "\r\033[K");
	o->drawn = false;
}

static void json_path(const char *bpath, const char *ppath)
{
	printf("\"backing\":");
	cli_json_str(bpath);
	printf(",\"path\":");
	if (ppath != NULL)
		cli_json_str(ppath);
	else
		printf("null");
}

static void on_problem(const struct fsck_problem *p, void *arg)
{
	struct out *o = arg;

	if (o->json) {
		printf("{");
		json_path(p->bpath, p->ppath);
		if (p->block >= 0)
			printf(",\"block\":%lld", p->block);
		printf(",\"problem\":");
		cli_json_str(p->what);
		printf("}\n");
	} else {
		unline(o);
		/* Plaintext names are anyone's: shown with control bytes as
		 * '?' so that a file name cannot drive the terminal. */
		printf("DAMAGE ");
		cli_fputs_safe(p->bpath, stdout);
		if (p->ppath != NULL) {
			fputs(" (", stdout);
			cli_fputs_safe(p->ppath, stdout);
			fputs(")", stdout);
		}
		printf(": %s", p->what);
		if (p->block >= 0)
			printf(" [block %lld]", p->block);
		printf("\n");
	}
	fflush(stdout);
}

static void action_json(const struct fsck_action *a)
{
	const struct salvage *s = a->salvage;

	/* "NOT-REPAIRED" -> "not_repaired", as the summary's keys */
	printf("{\"action\":\"");
	for (const char *c = fsck_action_name(a->kind); *c != '\0'; c++)
		putchar(*c == '-' ? '_' : tolower((unsigned char)*c));
	printf("\",");
	json_path(a->bpath, a->ppath);
	if (s != NULL) {
		printf(",\"new_path\":");
		cli_json_str(a->to);
		printf(",\"lost_blocks\":[");
		for (size_t i = 0; i < s->nlost; i++)
			printf("%s%llu", i ? "," : "",
			       (unsigned long long)s->lost[i]);
		printf("],\"cut\":%s,\"size\":%llu", s->cut ? "true" : "false",
		       (unsigned long long)s->size);
	} else if (a->to != NULL) {
		printf(",\"to\":");
		cli_json_str(a->to);
	}
	if (a->why != NULL) {
		printf(",\"reason\":");
		cli_json_str(a->why);
	}
	printf("}\n");
}

/* One line per repair action: where it went, the plaintext path of a
 * salvaged copy or a path in the cipher directory. */
static void on_action(const struct fsck_action *a, void *arg)
{
	struct out *o = arg;
	const struct salvage *s = a->salvage;

	unline(o);
	if (o->json) {
		action_json(a);
		fflush(stdout);
		return;
	}
	printf("%s ", fsck_action_name(a->kind));
	cli_fputs_safe(a->bpath, stdout);
	if (a->ppath != NULL) {
		fputs(" (", stdout);
		cli_fputs_safe(a->ppath, stdout);
		fputs(")", stdout);
	}
	if (s != NULL) {
		fputs(" -> ", stdout);
		cli_fputs_safe(a->to, stdout);
		fputs(": ", stdout);
		if (s->nlost == 0)
			printf("no block lost");
		else
			printf("%zu block%s lost, written as zeros: block%s", s->nlost,
			       s->nlost == 1 ? "" : "s", s->nlost == 1 ? "" : "s");
		for (size_t i = 0; i < s->nlost; i++)
			printf("%s%llu", i ? "," : " ", (unsigned long long)s->lost[i]);
		if (s->cut)
			printf("; file cut short: whatever followed is lost");
	} else if (a->to != NULL) {
		fputs(" -> ", stdout);
		cli_fputs_safe(a->to, stdout);
	}
	if (a->why != NULL)
		printf(": %s", a->why);
	printf("\n");
	fflush(stdout);
}

static void on_warning(const char *what, void *arg)
{
	unline(arg);
	fprintf(stderr, "cmkfs fsck: %s\n", what);
}

static void summary_json(const struct fsck_result *r)
{
	printf("{\"summary\":{\"dirs\":%lu,\"files\":%lu,\"symlinks\":%lu,"
	       "\"blocks\":%lu,\"problems\":%lu,\"expired\":%lu,\"expiry_due\":%lu,"
	       "\"truncates_pending\":%lu,\"truncates_completed\":%lu",
	       r->dirs, r->files, r->symlinks, r->blocks, r->problems,
	       r->expired, r->due,
	       r->pending, r->completed);
	printf(",\"reseal_pending\":%lu", r->reseal_pending);
	if (r->full)
		printf(",\"full_rekey\":{\"from_generation\":%u,"
		       "\"to_generation\":%u,\"names_pending\":%lu,"
		       "\"targets_pending\":%lu,\"xattrs_pending\":%lu,"
		       "\"files_pending\":%lu}",
		       r->full_from, r->full_to, r->names_pending,
		       r->targets_pending, r->xattrs_pending, r->files_pending);
	if (r->repair)
		printf(",\"salvaged\":%lu,\"lost_blocks\":%lu,"
		       "\"quarantined\":%lu,\"destroyed\":%lu,"
		       "\"not_repaired\":%lu",
		       r->salvaged, r->lost_blocks, r->quarantined, r->destroyed,
		       r->unrepaired);
	printf("}}\n");
}

static void summary(const struct fsck_result *r, const char *cdir)
{
	printf("fsck %s: %lu dirs, %lu files, %lu symlinks, %lu blocks "
	       "checked, %lu problem%s\n",
	       cdir, r->dirs, r->files, r->symlinks, r->blocks, r->problems,
	       r->problems == 1 ? "" : "s");
	if (r->pending > 0)
		printf("%lu truncate%s cut short by a crash: completed at the "
		       "next mount or by fsck --repair\n",
		       r->pending, r->pending == 1 ? "" : "s");
	if (r->completed > 0)
		printf("%lu truncate%s or reseal%s cut short by a crash "
		       "completed\n", r->completed,
		       r->completed == 1 ? "" : "s",
		       r->completed == 1 ? "" : "s");
	if (r->reseal_pending > 0)
		printf("%lu file%s mid reseal (blocks under two keys, explained "
		       "by a reseal record): completed at the next mount, rekey "
		       "run or fsck --repair\n",
		       r->reseal_pending, r->reseal_pending == 1 ? "" : "s");
	if (r->full)
		printf("full rekey in progress from generation %u to %u: run "
		       "'cmkfs rekey' / 'cmkfs cmk enable' again to finish "
		       "(still under the previous keys: %lu name%s, %lu symlink "
		       "target%s, %lu xattr%s, %lu file%s)\n",
		       r->full_from, r->full_to, r->names_pending,
		       r->names_pending == 1 ? "" : "s", r->targets_pending,
		       r->targets_pending == 1 ? "" : "s", r->xattrs_pending,
		       r->xattrs_pending == 1 ? "" : "s", r->files_pending,
		       r->files_pending == 1 ? "" : "s");
	if (r->expired > 0)
		printf("transient zones: %lu expired entr%s destroyed\n",
		       r->expired, r->expired == 1 ? "y" : "ies");
	if (r->due > 0)
		printf("transient zones: %lu entr%s due to expire, left to %s\n",
		       r->due, r->due == 1 ? "y" : "ies", r->due_owner);
	if (r->repair)
		printf("repair: %lu file%s salvaged into lost+found (%lu block%s "
		       "lost), %lu entr%s quarantined in %s/%s, %lu destroyed in "
		       "transient zones, %lu not repaired\n",
		       r->salvaged, r->salvaged == 1 ? "" : "s", r->lost_blocks,
		       r->lost_blocks == 1 ? "" : "s", r->quarantined,
		       r->quarantined == 1 ? "y" : "ies", cdir, QUARANTINE_DIR,
		       r->destroyed, r->unrepaired);
}

static void on_progress(enum fsck_phase ph, const struct fsck_result *r,
			void *arg)
{
	struct out *o = arg;

	if (ph == FSCK_PHASE_DONE) {
		/* the volume is released; the engine audits after this */
		unline(o);
		o->json ? summary_json(r) : summary(r, o->cdir);
	}
}

static double mib(uint64_t b)
{
	return (double)b / 1048576.0;
}

/* "3m05s", "42s" */
static void fmt_secs(double s, char *buf, size_t cap)
{
	unsigned long t = (unsigned long)(s + 0.5);

	if (t >= 3600)
		snprintf(buf, cap, "%luh%02lum", t / 3600, t % 3600 / 60);
	else if (t >= 60)
		snprintf(buf, cap, "%lum%02lus", t / 60, t % 60);
	else
		snprintf(buf, cap, "%lus", t);
}

/* A new phase, the final call, or the interval since the last line: a
 * terminal is redrawn every 0.1 s (the engine's pace), a log or JSON
 * consumer gets a line a second. */
static bool due(struct out *o, const struct fsck_progress *p)
{
	struct timespec now;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - o->last.tv_sec) +
	     (double)(now.tv_nsec - o->last.tv_nsec) / 1e9;
	if (!p->final && p->phase == o->last_phase && !o->tty && dt < 1.0)
		return false;
	o->last = now;
	o->last_phase = p->phase;
	return true;
}

static const char *phase_label(const char *phase)
{
	if (strcmp(phase, "size") == 0)
		return "sizing the repair (changes nothing)";
	return phase;
}

static void on_meter(const struct fsck_progress *p, void *arg)
{
	struct out *o = arg;
	char line[512], eta[32] = "", pass[24] = "";

	if (!(o->tty || o->lines) || !due(o, p))
		return;
	if (o->jprog) {
		fsck_progress_json(p, line, sizeof(line));
		fprintf(stderr, "%s\n", line);
		fflush(stderr);
		return;
	}
	if (strcmp(p->phase, "count") == 0) {
		snprintf(line, sizeof(line), "fsck: counting: %llu files, "
			 "%.1f MiB", (unsigned long long)p->files_total,
			 mib(p->bytes_total));
	} else {
		if (p->eta_s >= 0) {
			memcpy(eta, ", ETA ", 7);
			fmt_secs(p->eta_s, eta + 6, sizeof(eta) - 6);
		}
		if (p->passes > 1)
			snprintf(pass, sizeof(pass), "pass %u/%u ", p->pass,
				 p->passes);
		snprintf(line, sizeof(line), "fsck: %s%s: %.1f/%.1f MiB "
			 "(%.0f%%), %llu/%llu files, %.1f MiB/s%s", pass,
			 phase_label(p->phase), mib(p->bytes_done),
			 mib(p->bytes_total),
			 p->bytes_total ? 100.0 * (double)p->bytes_done /
						  (double)p->bytes_total : 100.0,
			 (unsigned long long)p->files_done,
			 (unsigned long long)p->files_total, mib((uint64_t)p->rate),
			 p->final ? "" : eta);
	}
	if (o->tty) {
		fprintf(stderr, "\r\033[K%s", line);
		o->drawn = true;
	} else {
		fprintf(stderr, "%s\n", line);
	}
	fflush(stderr);
}

/* --repair refused before it began: nothing was changed. */
static int refused(const struct out *o, const struct fsck_volume_result *vr)
{
	fprintf(stderr, "cmkfs fsck: %s\n", vr->msg);
	if (o->json)
		printf("{\"refused\":{\"reason\":\"no_space\","
		       "\"need_bytes\":%llu,\"free_bytes\":%llu,"
		       "\"salvage_files\":%lu,\"salvage_bytes\":%llu}}\n",
		       (unsigned long long)vr->r.space_need,
		       (unsigned long long)vr->r.space_free,
		       vr->r.salvage_files,
		       (unsigned long long)vr->r.salvage_bytes);
	return CMK_EXIT_NOSPACE;
}

static int usage(void)
{
	printf("Usage: cmkfs fsck [--repair] [--json] [--progress|--no-progress]\n"
	       "                  [--service-key FILE|--service-key-fd N] [--ca-file FILE]\n"
	       "                  [--audit-log FILE] CIPHERDIR\n\n"
	       "Check every name, header, block (both layers), symlink\n"
	       "and xattr of the volume; safe beside a live mount. Expired\n"
	       "files of transient zones are destroyed (only counted while\n"
	       "the volume is mounted). --repair (volume not mounted)\n"
	       "salvages damaged files into lost+found, every bad block\n"
	       "written as zeros, and moves what cannot be read to\n"
	       "CIPHERDIR/" QUARANTINE_DIR "/; it first checks that the cipher\n"
	       "directory's file system has room for the copies, and changes\n"
	       "nothing if not (exit 13). Exit: 0 clean, 1 damage found\n"
	       "(repaired or not), 2 usage or --repair while mounted, 3 keys\n"
	       "unavailable, 13 --repair refused for free space.\n\n"
	       "  --repair             salvage, quarantine (volume not mounted)\n"
	       "  --json               one JSON object per problem or action,\n"
	       "                       then a summary, on stdout (progress:\n"
	       "                       JSON objects on stderr)\n"
	       "  --progress           progress by bytes with total, rate, ETA\n"
	       "                       on stderr even when it is no terminal\n"
	       "  --no-progress        no progress, even on a terminal\n"
	       KEYOPTS_HELP_SERVICE_KEY
	       KEYOPTS_HELP_CA_FILE
	       KEYOPTS_HELP_AUDIT_LOG
	       "  -h, --help           this text\n");
	return CMK_EXIT_OK;
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "repair", no_argument, NULL, 'r' },
		{ "progress", no_argument, NULL, 'P' },
		{ "no-progress", no_argument, NULL, 'N' },
		KEYOPTS_OPT_SERVICE_KEY,
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct keyopts ko;
	struct out o = { 0 };
	const struct fsck_cb cb = { on_problem, on_action, on_progress,
				    on_warning, &o };
	struct fsck_opts fo = { 0 };
	struct fsck_volume_result vr;
	char cdir[PATH_MAX], c2[PATH_MAX], mnt[PATH_MAX] = "";
	int c, rc, ex = CMK_EXIT_OK, want = -1;	/* --[no-]progress */

	keyopts_init(&ko);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'r':
			fo.repair = true;
			break;
		case 'P':
			want = 1;
			break;
		case 'N':
			want = 0;
			break;
		case 'h':
			return usage();
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("fsck", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("fsck", "expected one CIPHERDIR");
	if (realpath(argv[optind], cdir) == NULL)
		return cli_fail("fsck", "%s: %s", argv[optind], strerror(errno));
	if (!runtime_find(cdir, c2, sizeof(c2), mnt, sizeof(mnt)))
		mnt[0] = '\0';
	else if (strcmp(c2, cdir) != 0)
		return cli_usage_error("fsck", "%s is a mountpoint; give its "
					       "cipher directory %s", cdir, c2);
	if (fo.repair && mnt[0] != '\0') {
		fprintf(stderr, "cmkfs fsck: %s is mounted on %s: --repair writes "
				"to the cipher directory and refuses to run beside "
				"a live mount; unmount it first (cmkfs umount %s)\n",
			cdir, mnt, mnt);
		return CMK_EXIT_USAGE;
	}
	fo.audit_log = keyopts_audit_log(&ko);
	keyopts_apply(&ko);
	if (http_global_init() < 0)
		return cli_fail("fsck", "libcurl failed to start");
	/* On stderr while it is a terminal, or when asked: a line redrawn
	 * on a terminal, else one line (a JSON object with --json) each
	 * second. */
	o.jprog = o.json;
	o.lines = want == 1 || (want == -1 && isatty(STDERR_FILENO));
	o.tty = o.lines && !o.json && isatty(STDERR_FILENO);
	o.lines = o.lines && !o.tty;
	o.cdir = cdir;
	if (o.tty || o.lines) {
		fo.meter = on_meter;
		fo.meter_arg = &o;
	}
	fo.mounted = mnt[0] != '\0';
	rc = fsck_volume(cdir, ko.service_key, &fo, &cb, &vr);
	switch (vr.stage) {
	case FSCK_STAGE_DONE:
		ex = vr.r.problems ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
		break;
	case FSCK_STAGE_OPEN:
		ex = cli_fail("fsck", "%s", vr.msg);
		break;
	case FSCK_STAGE_LOCK:
		fprintf(stderr, "cmkfs fsck: %s\n", vr.msg);
		ex = CMK_EXIT_USAGE;
		break;
	case FSCK_STAGE_CONFIG:
		if (o.json)
			printf("{\"problem\":\"volume config tampered or "
			       "malformed\"}\n");
		else
			printf("DAMAGE %s/cmkfs.conf: volume config tampered "
			       "or malformed\n", cdir);
		ex = CMK_EXIT_RUNTIME;
		break;
	case FSCK_STAGE_UNLOCK:
		fprintf(stderr, "cmkfs fsck: %s\n", vr.msg);
		ex = CMK_EXIT_NOKEYS;
		break;
	case FSCK_STAGE_SPACE:
		unline(&o);
		ex = refused(&o, &vr);
		break;
	case FSCK_STAGE_RUN:
	default:
		ex = rc == -ENOMEM ? cli_fail("fsck", "%s", vr.msg) :
				     CMK_EXIT_NOKEYS;
		break;
	}
	fsck_result_free(&vr.r);
	return ex;
}
