/* tests/unit/test_rekey.c — the rekey engine (include/cmkfs/rekey.h) on a
 * temporary volume, without root: an offline rekey_volume() moves the
 * volume one KEK generation on, re-wraps every header, reports its phases
 * and audits; the files then read back under a fresh unlock. A malformed
 * header is reported and counted as damaged; a wrong service key stops at
 * the unlock (audited as denied), a volume held by another offline user or
 * a missing one at the open, leaving the config as it was. The progress
 * lines decode into what was encoded, and a live rekey through the control
 * socket (ctlcmd_handle serving, ctlcmd_rekey_stream following) streams
 * progress and a result that says the next generation. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/ctl.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/json.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/rekey.h"
#include "cmkfs/runtime.h"
#include "cmkfs/volio.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define MNT "/mnt/test-rekey"
#define FILE_LEN 10000

static char top[1024], vol[PATH_MAX], keypath[PATH_MAX];

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 131 + seed);
}

/* Plaintext `name` in the root: written through the codec. */
static void mkfile(struct keyring *kr, int rootfd, const char *name,
		   unsigned seed, char *bname)
{
	uint8_t buf[FILE_LEN];
	struct bname bn;

	fill(buf, sizeof(buf), seed);
	CHECK_RC(tvol_bname(kr, rootfd, name, &bn), 0);
	snprintf(bname, ENCNAME_MAX, "%s", bn.name);
	CHECK_RC(tvol_write(kr, rootfd, bn.name, buf, sizeof(buf)), 0);
}

/* 1 if backing file bname reads back as mkfile wrote it with seed. */
static int reads_back(struct keyring *kr, int rootfd, const char *bname,
		      unsigned seed)
{
	uint8_t want[FILE_LEN], got[FILE_LEN];
	size_t n = 0;
	int rc;

	fill(want, sizeof(want), seed);
	rc = tvol_read(kr, rootfd, bname, got, sizeof(got), &n);
	return rc == 0 && n == sizeof(got) && memcmp(got, want, n) == 0;
}

static struct volume disk_config(void)
{
	struct volume v;
	int fd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	memset(&v, 0, sizeof(v));
	CHECK(fd >= 0 && volio_read(fd, &v) == 0, "read config");
	if (fd >= 0)
		close(fd);
	return v;
}

/* What the callbacks saw. */
struct seen {
	unsigned progress, count, rewrap, finish, problems, results;
	char problem[256];
	struct rekey_progress last;
	int result_ok;
};

static int on_progress(const struct rekey_progress *p, void *arg)
{
	struct seen *s = arg;

	s->progress++;
	s->count += strcmp(p->phase, "count") == 0;
	s->rewrap += strcmp(p->phase, "rewrap") == 0;
	s->finish += strcmp(p->phase, "finish") == 0;
	return 0;
}

static void on_problem(const char *bpath, const char *what, void *arg)
{
	struct seen *s = arg;

	s->problems++;
	snprintf(s->problem, sizeof(s->problem), "%s: %s", bpath, what);
}

static void live_progress(const struct rekey_progress *p, void *arg)
{
	(void)on_progress(p, arg);
}

static void live_result(const struct rekey_progress *p, const char *error,
			const char *line, void *arg)
{
	struct seen *s = arg;

	s->results++;
	s->result_ok = p != NULL;
	if (p != NULL)
		s->last = *p;
	else
		fprintf(stderr, "live rekey failed: %s (%s)\n", error, line);
}

/* Encoded by rekey_progress_json / rekey_result_json, decoded back. */
static void test_codec(void)
{
	const struct rekey_progress in = {
		.phase = "verify", .from_gen = 3, .to_gen = 4, .resumed = true,
		.total = 12345678901ULL, .done = 77, .rewrapped = 99,
		.damaged = 2, .pass = 3,
	};
	struct rekey_progress out;
	const struct json *o;
	struct json *j = NULL;
	char line[512], phase[32];

	rekey_progress_json(&in, line, sizeof(line));
	CHECK_RC(json_parse(line, strlen(line), &j), 0);
	CHECK(j != NULL && json_obj(j, "progress", &o) == 0, "%s", line);
	if (j != NULL && json_obj(j, "progress", &o) == 0) {
		memset(&out, 0xa5, sizeof(out));
		rekey_progress_from_json(o, &out, phase, sizeof(phase));
		CHECK(strcmp(out.phase, "verify") == 0 && out.from_gen == 3 &&
			      out.to_gen == 4 && out.resumed &&
			      out.total == in.total && out.done == 77 &&
			      out.rewrapped == 99 && out.damaged == 2 &&
			      out.pass == 3,
		      "progress round trip of %s", line);
	}
	json_free(j);
	j = NULL;

	rekey_result_json(&in, line, sizeof(line));
	CHECK_RC(json_parse(line, strlen(line), &j), 0);
	CHECK(j != NULL && json_obj(j, "rekey", &o) == 0, "%s", line);
	if (j != NULL && json_obj(j, "rekey", &o) == 0) {
		memset(&out, 0xa5, sizeof(out));
		rekey_progress_from_json(o, &out, phase, sizeof(phase));
		CHECK(strcmp(out.phase, "") == 0 && out.from_gen == 3 &&
			      out.to_gen == 4 && out.resumed &&
			      out.total == in.total && out.done == 0 &&
			      out.rewrapped == 99 && out.damaged == 2 &&
			      out.pass == 3,
		      "result round trip of %s", line);
	}
	json_free(j);
}

/* The events of this volume in the test's audit log with `event` and
 * `result`. */
static unsigned audited(const char *event, const char *result)
{
	struct volume v = disk_config();
	struct audit_reader *ar = NULL;
	struct audit_record e;
	char id[VOLUME_ID_HEX_LEN];
	unsigned n = 0;

	volume_id_hex(&v, id);
	CHECK_RC(audit_reader_open(audit_path(), id, "", &ar), 0);
	while (ar != NULL && audit_reader_next(ar, &e) == 1)
		n += strcmp(e.event, event) == 0 && strcmp(e.result, result) == 0;
	audit_reader_close(ar);
	return n;
}

static void test_live(int gen)
{
	struct ctlcmd c = { 0 };
	const struct ctlcmd_rekey_cb cb = { live_progress, on_problem,
					    live_result, NULL };
	struct ctlcmd_rekey_cb cbs = cb;
	struct seen s = { 0 };
	struct keyring *kr = NULL;
	struct ctl *ctl = NULL;
	char sock[PATH_MAX];
	int rootfd;

	setenv("CMKFS_RUNTIME_DIR", top, 1);
	cbs.arg = &s;
	CHECK_RC(tvol_unlock(vol, keypath, &rootfd, &kr), 0);
	if (kr == NULL)
		return;
	c.cipherdir = vol;
	c.service_key = keypath;
	c.rootfd = rootfd;
	c.kr = kr;
	ctlcmd_init(&c);
	CHECK_RC(ctl_path(MNT, sock, sizeof(sock)), 0);
	/* the client talks only to the daemon the state file names */
	CHECK_RC(runtime_state_write(MNT, vol), 0);
	CHECK_RC(ctl_start(sock, ctlcmd_handle, &c, &ctl), 0);
	CHECK_RC(ctlcmd_rekey_stream(MNT, "rekey", &cbs), 0);
	CHECK(s.results == 1 && s.result_ok, "%u results", s.results);
	CHECK(s.count >= 1 && s.rewrap >= 1 && s.finish >= 1,
	      "live phases: count %u rewrap %u finish %u", s.count, s.rewrap,
	      s.finish);
	CHECK(s.last.from_gen == (uint32_t)gen &&
		      s.last.to_gen == (uint32_t)gen + 1 && s.last.total == 3,
	      "live result %u -> %u, %llu files", s.last.from_gen,
	      s.last.to_gen, (unsigned long long)s.last.total);
	CHECK(s.problems == 1, "live problems: %u (%s)", s.problems,
	      s.problem);
	CHECK(disk_config().kek_gen == (uint32_t)gen + 1, "live generation");
	ctl_stop(ctl);
	runtime_state_remove(MNT);
	ctlcmd_destroy(&c);
	keyring_free(kr);
	close(rootfd);
	/* no daemon: the stream's error, no result */
	memset(&s, 0, sizeof(s));
	CHECK_RC(ctlcmd_rekey_stream(MNT, "rekey", &cbs), -ENOENT);
	CHECK(s.results == 0, "a result without a daemon");
}

int main(void)
{
	const struct rekey_cb cb_init = { .progress = on_progress,
					  .problem = on_problem };
	struct rekey_cb cb = cb_init;
	static struct rekey_result r;
	struct keyring *kr = NULL;
	struct seen s = { 0 };
	char a[ENCNAME_MAX], b[ENCNAME_MAX], bad[ENCNAME_MAX],
		other[PATH_MAX], logp[PATH_MAX], missing[PATH_MAX];
	struct volume before, after;
	int rootfd, lockfd, fd;
	uint8_t byte = 0;

	test_codec();
	if (tvol_tmpdir("test_rekey", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(vol, sizeof(vol), "%s/vol", top);
	snprintf(keypath, sizeof(keypath), "%s/service.key", top);
	snprintf(other, sizeof(other), "%s/other.key", top);
	snprintf(logp, sizeof(logp), "%s/audit.log", top);
	snprintf(missing, sizeof(missing), "%s/missing", top);
	audit_open(logp);
	CHECK_RC(tvol_create(vol, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(vol, keypath, &rootfd, &kr), 0);
	if (kr == NULL)
		return t_done("test_rekey");
	mkfile(kr, rootfd, "a", 7, a);
	mkfile(kr, rootfd, "b", 9, b);
	mkfile(kr, rootfd, "bad", 11, bad);
	keyring_free(kr);
	kr = NULL;
	/* A header whose magic is broken can never be re-wrapped. */
	fd = openat(rootfd, bad, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0 && pread(fd, &byte, 1, 0) == 1, "read %s", bad);
	byte ^= 0xff;
	CHECK(fd >= 0 && pwrite(fd, &byte, 1, 0) == 1, "write %s", bad);
	if (fd >= 0)
		close(fd);
	before = disk_config();

	/* Stopped before any change: a missing volume, one held offline,
	 * keys that do not open it. */
	CHECK_RC(rekey_volume(missing, keypath, NULL, &r), -ENOENT);
	CHECK(r.stage == REKEY_STAGE_OPEN && strstr(r.msg, missing) == r.msg,
	      "missing: stage %d, %s", r.stage, r.msg);
	lockfd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(lockfd >= 0 && volio_lock_offline(lockfd) == 0, "lock offline");
	CHECK_RC(rekey_volume(vol, keypath, NULL, &r), -EBUSY);
	CHECK(r.stage == REKEY_STAGE_OPEN, "held: stage %d, %s", r.stage,
	      r.msg);
	if (lockfd >= 0)
		close(lockfd);
	CHECK(kp_local_create(other) == 1, "other key");
	CHECK(rekey_volume(vol, other, NULL, &r) < 0, "wrong key unlocked");
	CHECK(r.stage == REKEY_STAGE_UNLOCK &&
		      strstr(r.msg, "cannot unlock") != NULL,
	      "wrong key: stage %d, %s", r.stage, r.msg);
	CHECK(audited("rekey", "denied") == 1, "denied not audited once");
	after = disk_config();
	CHECK(after.kek_gen == before.kek_gen && after.flags == before.flags,
	      "config changed by a refused rekey");

	/* The offline rekey. */
	cb.arg = &s;
	CHECK_RC(rekey_volume(vol, keypath, &cb, &r), 0);
	CHECK(r.stage == REKEY_STAGE_DONE && r.err == 0, "stage %d err %d",
	      r.stage, r.err);
	CHECK(r.p.from_gen == before.kek_gen &&
		      r.p.to_gen == before.kek_gen + 1 && !r.p.resumed,
	      "generations %u -> %u", r.p.from_gen, r.p.to_gen);
	CHECK(r.p.total == 3 && r.p.rewrapped == 2 && r.p.damaged == 1 &&
		      r.p.pass >= 2,
	      "files %llu rewrapped %llu damaged %llu passes %u",
	      (unsigned long long)r.p.total,
	      (unsigned long long)r.p.rewrapped,
	      (unsigned long long)r.p.damaged, r.p.pass);
	CHECK(s.count == 1 && s.rewrap >= 1 && s.finish == 1,
	      "phases: count %u rewrap %u finish %u", s.count, s.rewrap,
	      s.finish);
	CHECK(s.problems == 1 && strstr(s.problem, bad) != NULL &&
		      strstr(s.problem, "malformed file header") != NULL,
	      "problem: %u, %s", s.problems, s.problem);
	after = disk_config();
	CHECK(after.kek_gen == before.kek_gen + 1 &&
		      (after.flags & VOLUME_FLAG_REKEY) == 0,
	      "config after: gen %u flags %x", after.kek_gen, after.flags);
	CHECK(audited("rekey", "ok") == 1, "ok not audited once");

	/* The files read back under a fresh unlock of the new config. */
	CHECK_RC(volio_unlock(rootfd, keypath, &kr), 0);
	if (kr != NULL) {
		CHECK(reads_back(kr, rootfd, a, 7), "a after rekey");
		CHECK(reads_back(kr, rootfd, b, 9), "b after rekey");
	}
	keyring_free(kr);

	test_live((int)after.kek_gen);
	CHECK(audited("rekey", "ok") == 2, "live rekey not audited");

	close(rootfd);
	(void)tvol_rmtree(top);
	return t_done("test_rekey");
}
