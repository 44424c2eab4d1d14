/* tests/unit/test_fsck.c — the fsck engine (include/cmkfs/fsck.h) on a
 * temporary volume, without root: a clean volume of a few files written
 * through the content codec has no problem and every directory, file and
 * block counted; then each planted damage (a flipped byte in a block, a
 * header cut short, a directory id removed, stray and unnamed entries, a
 * long name without its side file) is reported with its backing and
 * plaintext paths and block; repair salvages and sets aside until a
 * second check is clean. fsck_volume() stops at the stage that failed (a
 * missing directory, a volume held by another offline user, a missing
 * service key, a damaged config) with its message and no audit log
 * opened; a run to the end reports FSCK_PHASE_DONE once, after the walk,
 * and audits the check under the volume's id. Long symlink targets
 * (cmkfs.links/): an unreferenced side file is reported and set aside by
 * repair; a long symlink set aside takes its side file into the
 * quarantine (moved, or copied while a hard link stays), and orphans are
 * not judged while part of the tree goes unwalked. A volume caught mid
 * full rekey (VOLUME_FLAG_FULL) is no damage: names, targets, xattrs and
 * headers still under the previous generation are counted as pending
 * (and, once the flag is gone, reported again); a file caught mid reseal
 * (its header old, one chunk re-sealed, one block of it torn, with the
 * record the reseal leaves) is counted as reseal_pending, a block that no
 * key opens beside the record is damage, and repair completes the record
 * and the file reads back whole. In a format-3 volume, a truncate record
 * from before the file grew, put back with a byte of the file's tail
 * flipped, is a named finding (not a pending truncate) and repair
 * quarantines it without cutting the file. A growth killed between its
 * two writes (the old last block sealed as last, zeros after it, before
 * the hole) is no damage: fsck and repair leave it, `rekey --full`
 * re-seals it and it reads the same; salvage of such a file damaged
 * elsewhere keeps that block and its holes (no loss); the block zeroed or
 * flipped is damage. Format 3 beyond one name:
 * link sets orphaned, forged or copied under another file id, bindings a
 * killed rename or unlink left wider than the file's names, and a copy
 * put at such a stale place, are named; repair sets the set files aside
 * and narrows each binding (link_bindings), but not after a walk that
 * missed a name: a listing, stat or open failing (EIO, injected through
 * --wrap) leaves every binding as it is (partial_walk). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/cfile.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/fsck.h"
#include "cmkfs/header.h"
#include "cmkfs/journal.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/names.h"
#include "cmkfs/rekey.h"
#include "cmkfs/repair.h"
#include "cmkfs/reseal.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"
#include <sys/xattr.h>
#include "../lib/tap.h"
#include "../lib/tvol.h"

static char top[1024], vol[PATH_MAX], keypath[PATH_MAX];
static struct keyring *kr;
static uint32_t bs;

/* A file of `len` pseudo-random bytes written through the codec. */
static void mkfile(int dfd, const char *name, size_t len, char *bname)
{
	struct bname bn;
	uint8_t *buf = malloc(len + 1);

	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 131 + 7);
	CHECK_RC(tvol_bname(kr, dfd, name, &bn), 0);
	strcpy(bname, bn.name);
	CHECK_RC(tvol_write(kr, dfd, bn.name, buf, len), 0);
	free(buf);
}

static int mkdir_in(int dfd, const char *name, char *bname)
{
	struct bname bn;
	int fd;

	CHECK_RC(tvol_bname(kr, dfd, name, &bn), 0);
	strcpy(bname, bn.name);
	CHECK_RC(dirtree_make(kr, dfd, "cmkfs.tmp.00000000000000aa", bn.name,
			      0700, 0, 0, false),
		 0);
	CHECK(renameat(dfd, "cmkfs.tmp.00000000000000aa", dfd, bn.name) == 0,
	      "rename");
	fd = openat(dfd, bn.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0, "open dir %s", name);
	return fd;
}

/* The problem whose backing path ends in /bname and says `what`. */
static const struct fsck_item *find(const struct fsck_result *r,
				    const char *bname, const char *what)
{
	for (size_t i = 0; i < r->nlist; i++) {
		const char *b = r->list[i].bpath;
		size_t bl = strlen(b), nl = strlen(bname);

		if (bl > nl && b[bl - nl - 1] == '/' &&
		    strcmp(b + bl - nl, bname) == 0 &&
		    strstr(r->list[i].what, what) != NULL)
			return &r->list[i];
	}
	return NULL;
}

static void dump(const struct fsck_result *r)
{
	for (size_t i = 0; i < r->nlist; i++)
		fprintf(stderr, "  %s (%s) [%lld]: %s\n", r->list[i].bpath,
			r->list[i].ppath ? r->list[i].ppath : "-",
			r->list[i].block, r->list[i].what);
}

static void flip(int dfd, const char *name, off_t off)
{
	int fd = openat(dfd, name, O_RDWR | O_CLOEXEC);
	uint8_t b = 0;

	CHECK(fd >= 0 && pread(fd, &b, 1, off) == 1, "read %s", name);
	b ^= 0x01;
	CHECK(fd >= 0 && pwrite(fd, &b, 1, off) == 1, "write %s", name);
	if (fd >= 0)
		close(fd);
}

/* Counted by the engine's callbacks: each problem once, none dropped. */
struct counts {
	unsigned long problems, actions, walk, expired;
};

static void c_problem(const struct fsck_problem *p, void *arg)
{
	CHECK(p->bpath != NULL && p->what != NULL, "problem fields");
	((struct counts *)arg)->problems++;
}

static void c_action(const struct fsck_action *a, void *arg)
{
	CHECK(a->bpath != NULL, "action fields");
	((struct counts *)arg)->actions++;
}

static void c_progress(enum fsck_phase ph, const struct fsck_result *r,
		       void *arg)
{
	struct counts *c = arg;

	(void)r;
	c->walk += ph == FSCK_PHASE_WALK;
	c->expired += ph == FSCK_PHASE_EXPIRED;
}

/* What fsck_volume's callbacks saw. */
struct vseen {
	unsigned walk, done, done_after_walk, problems;
};

static void v_problem(const struct fsck_problem *p, void *arg)
{
	(void)p;
	((struct vseen *)arg)->problems++;
}

static void v_progress(enum fsck_phase ph, const struct fsck_result *r,
		       void *arg)
{
	struct vseen *v = arg;

	(void)r;
	if (ph == FSCK_PHASE_WALK)
		v->walk++;
	if (ph == FSCK_PHASE_DONE) {
		v->done++;
		v->done_after_walk += v->walk > 0;
	}
}

/* fsck_volume() on the volume left by main(), whose rootfd still holds
 * the offline lock, as a CLI runs it. */
static void test_volume(int rootfd)
{
	struct fsck_opts o = { 0 };
	struct vseen seen = { 0 };
	const struct fsck_cb cb = { v_problem, NULL, v_progress, NULL, &seen };
	struct fsck_volume_result vr;
	char missing[PATH_MAX], nokey[PATH_MAX], alog[PATH_MAX], id[64];
	int fd;

	snprintf(missing, sizeof(missing), "%s/none", top);
	snprintf(nokey, sizeof(nokey), "%s/none.key", top);
	snprintf(alog, sizeof(alog), "%s/audit.log", top);
	o.audit_log = alog;
	o.root = "/ignored";	/* fsck_volume names the volume itself */

	CHECK_RC(fsck_volume(missing, keypath, &o, &cb, &vr), -ENOENT);
	CHECK(vr.stage == FSCK_STAGE_OPEN && vr.err == -ENOENT &&
		      strncmp(vr.msg, missing, strlen(missing)) == 0,
	      "missing: stage %d, %s", vr.stage, vr.msg);
	fsck_result_free(&vr.r);

	o.repair = true;	/* main() holds the offline lock */
	CHECK_RC(fsck_volume(vol, keypath, &o, &cb, &vr), -EBUSY);
	CHECK(vr.stage == FSCK_STAGE_LOCK &&
		      strstr(vr.msg, "--repair needs the volume to itself"),
	      "busy: stage %d, %s", vr.stage, vr.msg);
	fsck_result_free(&vr.r);
	o.repair = false;

	CHECK_RC(fsck_volume(vol, nokey, &o, &cb, &vr), -ENOKEY);
	CHECK(vr.stage == FSCK_STAGE_UNLOCK &&
		      strncmp(vr.msg, vol, strlen(vol)) == 0 &&
		      strstr(vr.msg, ": keys unavailable: service key file") !=
			      NULL,
	      "no key: stage %d, %s", vr.stage, vr.msg);
	fsck_result_free(&vr.r);
	CHECK(seen.walk == 0 && seen.done == 0, "no callback before the check");
	CHECK(access(alog, F_OK) != 0, "no audit log before the check");

	/* a check beside the lock: no repair, no lock needed */
	CHECK_RC(fsck_volume(vol, keypath, &o, &cb, &vr), 0);
	CHECK(vr.stage == FSCK_STAGE_DONE && vr.err == 0 && vr.msg[0] == '\0',
	      "done: stage %d", vr.stage);
	CHECK(vr.r.problems == 0 && vr.r.dirs == 3 && vr.r.files == 1 &&
		      !vr.r.repair,
	      "done: %lu problems, %lu dirs, %lu files", vr.r.problems,
	      vr.r.dirs, vr.r.files);
	CHECK(seen.done == 1 && seen.done_after_walk == 1 && seen.walk > 0,
	      "FSCK_PHASE_DONE once after the walk: %u", seen.done);
	fsck_result_free(&vr.r);
	volume_id_hex(keyring_volume(kr), id);
	CHECK(tvol_file_has(alog, "\"event\":\"fsck\"") &&
		      tvol_file_has(alog, id),
	      "fsck audited under the volume id");

	/* the lock released: --repair runs and audits as such */
	close(rootfd);
	o.repair = true;
	CHECK_RC(fsck_volume(vol, keypath, &o, NULL, &vr), 0);
	CHECK(vr.stage == FSCK_STAGE_DONE && vr.r.repair &&
		      vr.r.problems == 0,
	      "repair: stage %d, %lu problems", vr.stage, vr.r.problems);
	fsck_result_free(&vr.r);
	CHECK(tvol_file_has(alog, "\"event\":\"fsck_repair\""),
	      "fsck_repair audited");
	o.repair = false;

	/* a config that does not parse: CONFIG, no message of its own */
	fd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0, "reopen volume");
	CHECK_RC(backing_replace(fd, VOLUME_FILE, (const uint8_t *)"garbage",
				 7, 0644),
		 0);
	if (fd >= 0)
		close(fd);
	CHECK_RC(fsck_volume(vol, keypath, &o, &cb, &vr), -EBADMSG);
	CHECK(vr.stage == FSCK_STAGE_CONFIG && vr.msg[0] == '\0',
	      "config: stage %d, %s", vr.stage, vr.msg);
	fsck_result_free(&vr.r);
}

static int chown_nobody(const char *p, const struct stat *st, int type,
			struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	return lchown(p, 65534, 65534) < 0 ? -1 : 0;
}

/* A subdirectory its reader cannot open (mode 000, as its owner) must be
 * a problem, not a clean volume with a subtree never looked at. As root
 * the check runs in a child that becomes uid 65534 and owns the tree. */
static void unreadable_subdir(void)
{
	char vol2[PATH_MAX], dname[ENCNAME_MAX], fname[ENCNAME_MAX];
	struct keyring *kr1 = kr, *kr2 = NULL;
	struct fsck_opts o = { 0 };
	struct fsck_result r;
	int rootfd2 = -1, dfd, status = -1;
	pid_t pid;

	snprintf(vol2, sizeof(vol2), "%s/vol2", top);
	CHECK_RC(tvol_create(vol2, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(vol2, keypath, &rootfd2, &kr2), 0);
	if (kr2 == NULL)
		return;
	kr = kr2;
	dfd = mkdir_in(rootfd2, "d", dname);
	mkfile(dfd, "f", 10, fname);
	kr = kr1;
	close(dfd);
	o.root = vol2;
	if (geteuid() == 0) {
		CHECK(chmod(top, 0755) == 0, "chmod top");
		CHECK(nftw(vol2, chown_nobody, 16, FTW_PHYS) == 0, "chown");
	}
	CHECK(fchmodat(rootfd2, dname, 0, 0) == 0, "chmod 000 d");
	pid = fork();
	if (pid == 0) {
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) < 0 || setgid(65534) < 0 ||
		     setuid(65534) < 0))
			_exit(100);
		if (fsck_run(rootfd2, kr2, &o, NULL, &r) < 0)
			_exit(101);
		/* 0: clean, 1: the subtree reported, 2: read after all */
		_exit(r.problems > 0 ? 1 : r.dirs > 1 ? 2 : 0);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "child");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 1,
	      "unreadable subdirectory reported (child status %d)",
	      WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	CHECK(fchmodat(rootfd2, dname, 0755, 0) == 0, "chmod back");
	keyring_free(kr2);
	close(rootfd2);
}

/* Long symlink `name` in dfd (target of `len` bytes), made as the mount
 * makes it; bname gets its backing name, id its side file's name. */
static void mklink(int rootfd, int dfd, const char *name, size_t len,
		   char *bname, char *id)
{
	static char tgt[SYMLINK_TARGET_MAX + 1], enc[ENCLINK_MAX];
	char m[LINKTGT_MARKER_LEN + 1];
	uint8_t key[NAME_KEY_LEN];
	struct bname bn;
	ssize_t n;

	for (size_t i = 0; i < len; i++)
		tgt[i] = (char)('a' + (i * 7 + len) % 26);
	CHECK_RC(keyring_name_key(kr, key), 0);
	CHECK_RC(tvol_bname(kr, dfd, name, &bn), 0);
	if (keyring_volume(kr)->version >= 3) {
		/* format 3: bound to the directory and its own name */
		uint8_t dirid[DIRID_LEN];
		struct names_loc loc;

		CHECK_RC(dirtree_dirid_unverified(dfd, dirid), 0);
		CHECK_RC(names_loc_set(&loc, dirid, bn.name), 0);
		CHECK_RC(names_target_seal3(key, &loc, tgt, len, enc,
					    sizeof(enc)),
			 0);
	} else {
		CHECK_RC(names_symlink_encrypt(key, tgt, len, enc, sizeof(enc)),
			 0);
	}
	strcpy(bname, bn.name);
	CHECK_RC(linktgt_make(rootfd, dfd, bn.name, enc, strlen(enc)), 0);
	id[0] = '\0';
	n = readlinkat(dfd, bn.name, m, sizeof(m) - 1);
	if (n > 0 && linktgt_is_marker(m, (size_t)n)) {
		m[n] = '\0';
		strcpy(id, m + sizeof(LINKTGT_PREFIX) - 1);
	}
}

/* What the long-link runs saw: warnings, and where a symlink went. */
struct lcap {
	unsigned long warnings;
	const char *want;	/* backing name whose quarantine path to keep */
	char to[PATH_MAX];
};

static void l_warning(const char *what, void *arg)
{
	(void)what;
	((struct lcap *)arg)->warnings++;
}

static void l_action(const struct fsck_action *a, void *arg)
{
	struct lcap *c = arg;
	size_t bl = strlen(a->bpath), wl = c->want ? strlen(c->want) : 0;

	if (a->kind == FSCK_QUARANTINED && a->to != NULL && wl > 0 &&
	    bl > wl && strcmp(a->bpath + bl - wl, c->want) == 0)
		snprintf(c->to, sizeof(c->to), "%s", a->to);
}

static size_t count_links(int rootfd)
{
	char path[64];
	size_t n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/self/fd/%d/" LINKS_DIR, rootfd);
	d = opendir(path);
	for (struct dirent *e; d != NULL && (e = readdir(d)) != NULL;)
		n += e->d_name[0] != '.';
	if (d != NULL)
		closedir(d);
	return n;
}

static void long_links(void)
{
	char vol3[PATH_MAX], keep[ENCNAME_MAX], gone[ENCNAME_MAX],
		bad[ENCNAME_MAX], okb[ENCNAME_MAX], inner[ENCNAME_MAX],
		hl[ENCNAME_MAX], dn[ENCNAME_MAX], dqn[ENCNAME_MAX],
		shortb[ENCNAME_MAX], bad2[ENCNAME_MAX], path[PATH_MAX + 128],
		idk[64], idg[64], idb[64], ido[64], idi[64], idh[64], ids[64],
		stray[64], m[LINKTGT_MARKER_LEN + 1];
	struct keyring *kr1 = kr, *kr3 = NULL;
	struct lcap cap = { 0 };
	const struct fsck_cb cb = { NULL, l_action, NULL, l_warning, &cap };
	struct fsck_opts o = { 0 };
	struct fsck_result r;
	int rootfd3 = -1, dfd, dqfd, lfd;
	ssize_t n;

	snprintf(vol3, sizeof(vol3), "%s/vol3", top);
	CHECK_RC(tvol_create(vol3, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(vol3, keypath, &rootfd3, &kr3), 0);
	if (kr3 == NULL)
		return;
	kr = kr3;
	/* /keep, /gone, /bad, /short, /d/ok, /d/hl, /d/hl2, /dq/inner: all
	 * long but /short (format 3 makes no hard links of symlinks: /d/hl2
	 * is a symlink of its own) */
	mklink(rootfd3, rootfd3, "keep", 4095, keep, idk);
	mklink(rootfd3, rootfd3, "gone", 3500, gone, idg);
	mklink(rootfd3, rootfd3, "bad", 4000, bad, idb);
	mklink(rootfd3, rootfd3, "short", 100, shortb, ids);
	dfd = mkdir_in(rootfd3, "d", dn);
	mklink(rootfd3, dfd, "ok", 3100, okb, ido);
	mklink(rootfd3, dfd, "hl", 3900, hl, idh);
	{
		char hl2[ENCNAME_MAX], idh2[64];

		mklink(rootfd3, dfd, "hl2", 3900, hl2, idh2);
	}
	dqfd = mkdir_in(rootfd3, "dq", dqn);
	mklink(rootfd3, dqfd, "inner", 4095, inner, idi);
	CHECK(idk[0] && idg[0] && idb[0] && ido[0] && idh[0] && idi[0] &&
		      !ids[0],
	      "long targets in side files, the short one inline");
	CHECK(count_links(rootfd3) == 7, "seven side files: %zu",
	      count_links(rootfd3));
	o.root = vol3;
	o.keep_list = true;
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(r.problems == 0 && r.symlinks == 8 && cap.warnings == 0,
	      "long links clean: %lu problems, %lu symlinks, %lu warnings",
	      r.problems, r.symlinks, cap.warnings);
	fsck_result_free(&r);

	/* Orphans: a side file written before a crash kept its symlink from
	 * being made, and one whose symlink went without it. */
	memcpy(stray, idk, sizeof(stray));
	stray[0] = stray[0] == 'Q' ? 'R' : 'Q';
	lfd = openat(rootfd3, LINKS_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(lfd >= 0, "open links dir");
	CHECK_RC(backing_replace(lfd, stray, "x", 1, 0400), 0);
	CHECK(unlinkat(rootfd3, gone, 0) == 0, "unlink /gone alone");
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(find(&r, stray, "orphaned symlink target side file") != NULL &&
		      find(&r, idg, "orphaned symlink target side file") !=
			      NULL,
	      "both orphaned side files reported");
	CHECK(r.problems == 2, "only the orphans: %lu problems", r.problems);
	if (r.problems != 2)
		dump(&r);
	fsck_result_free(&r);

	CHECK_RC(volio_lock_offline(rootfd3), 0);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(r.quarantined == 2 && r.unrepaired == 0,
	      "orphans set aside: %lu quarantined", r.quarantined);
	fsck_result_free(&r);
	CHECK(!tvol_exists(lfd, stray) && !tvol_exists(lfd, idg) &&
		      count_links(rootfd3) == 6,
	      "orphans gone from " LINKS_DIR ": %zu left",
	      count_links(rootfd3));
	o.repair = false;
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(r.problems == 0, "clean after the orphans' repair: %lu",
	      r.problems);
	fsck_result_free(&r);

	/* /bad's name damaged, /d/hl's too (/d/hl2 stays),
	 * /dq's directory id lost: each set aside with its side files. */
	strcpy(bad2, bad);
	bad2[3] = bad2[3] == 'A' ? 'B' : 'A';
	CHECK(renameat(rootfd3, bad, rootfd3, bad2) == 0, "damage /bad");
	{
		char hlx[ENCNAME_MAX];

		strcpy(hlx, hl);
		hlx[3] = hlx[3] == 'A' ? 'B' : 'A';
		CHECK(renameat(dfd, hl, dfd, hlx) == 0, "damage /d/hl");
	}
	CHECK(unlinkat(dqfd, DIRID_FILE, 0) == 0, "rm /dq's dirid");
	/* While /dq is not walked, /dq/inner's side file is not judged. */
	cap.warnings = 0;
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(find(&r, idi, "orphaned") == NULL && cap.warnings == 1,
	      "unwalked subtree: no orphan claimed, one warning (%lu)",
	      cap.warnings);
	/* format 3: a renamed backing symlink's target fails too (bound to
	 * its own name): two problems each for /bad and /d/hl */
	CHECK(r.problems == 5, "five problems: %lu", r.problems);
	if (r.problems != 5)
		dump(&r);
	fsck_result_free(&r);

	o.repair = true;
	cap.want = bad2;
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(r.quarantined == 3 && r.unrepaired == 0,
	      "damaged long links set aside: %lu quarantined",
	      r.quarantined);
	if (r.quarantined != 3)
		dump(&r);
	fsck_result_free(&r);
	/* /d/hl2, /keep and /d/ok keep theirs */
	CHECK(count_links(rootfd3) == 3 && !tvol_exists(lfd, idh) &&
		      !tvol_exists(lfd, idb) && !tvol_exists(lfd, idi),
	      "side files of what was set aside left " LINKS_DIR ": %zu left",
	      count_links(rootfd3));
	/* The quarantined /bad still reads: its side file beside it. */
	n = cap.to[0] ? readlink(cap.to, m, sizeof(m) - 1) : -1;
	CHECK(n == (ssize_t)LINKTGT_MARKER_LEN, "quarantined link: %s",
	      cap.to);
	if (n > 0) {
		char *slash = strrchr(cap.to, '/');

		m[n] = '\0';
		if (slash != NULL)
			*slash = '\0';
		snprintf(path, sizeof(path), "%s/" LINKS_DIR "/%s", cap.to,
			 m + sizeof(LINKTGT_PREFIX) - 1);
		CHECK(access(path, F_OK) == 0, "side file in the quarantine: %s",
		      path);
	}
	o.repair = false;
	cap.warnings = 0;
	CHECK_RC(fsck_run(rootfd3, kr, &o, &cb, &r), 0);
	CHECK(r.problems == 0 && cap.warnings == 0 && r.symlinks == 4,
	      "clean after the links' repair: %lu problems, %lu warnings, "
	      "%lu symlinks",
	      r.problems, cap.warnings, r.symlinks);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	if (lfd >= 0)
		close(lfd);
	close(dqfd);
	close(dfd);
	kr = kr1;
	keyring_free(kr3);
	close(rootfd3);
}

static int persist_fd(const struct volume *v, void *arg)
{
	return volio_write(*(int *)arg, v);
}

/* The whole backing file dfd/bname into a new buffer, its size in *len. */
static uint8_t *grab(int dfd, const char *bname, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	int fd = openat(dfd, bname, O_RDONLY | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, &st) == 0) {
		buf = malloc((size_t)st.st_size + 1);
		if (buf != NULL &&
		    backing_pread_full(fd, buf, (size_t)st.st_size, 0) < 0) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)st.st_size;
	}
	if (fd >= 0)
		close(fd);
	return buf;
}

static void put(int dfd, const char *bname, const uint8_t *p, size_t len,
		off_t off)
{
	int fd = openat(dfd, bname, O_WRONLY | O_CLOEXEC);

	CHECK(fd >= 0 && backing_pwrite_full(fd, p, len, off) == 0,
	      "write %s at %lld", bname, (long long)off);
	if (fd >= 0)
		close(fd);
}

/* A reseal record as doc/FORMAT.md §3.2 lays it out: magic, old and new
 * header, the chunk's first block, block count and length, then `dlen`
 * bytes of data (which a crash may leave longer or shorter than clen). */
#define RREC_DATA (8 + 2 * HEADER_LEN + 20)
static size_t mkrec(uint8_t *rec, const uint8_t *oh, const uint8_t *nh,
		    uint64_t b0, uint32_t n, uint64_t clen, const uint8_t *data,
		    size_t dlen)
{
	uint8_t *c = rec + 8 + 2 * HEADER_LEN;

	memcpy(rec, "CMKFSRS1", 8);
	memcpy(rec + 8, oh, HEADER_LEN);
	memcpy(rec + 8 + HEADER_LEN, nh, HEADER_LEN);
	for (int i = 0; i < 8; i++) {
		c[i] = (uint8_t)(b0 >> (8 * (7 - i)));
		c[12 + i] = (uint8_t)(clen >> (8 * (7 - i)));
	}
	for (int i = 0; i < 4; i++)
		c[8 + i] = (uint8_t)(n >> (8 * (3 - i)));
	memcpy(rec + RREC_DATA, data, dlen);
	return RREC_DATA + dlen;
}

/* Full rekey states, without root: begun (nothing migrated), then one
 * file caught mid reseal as reseal_file leaves it when killed after its
 * first chunk (doc/FORMAT.md §3.2: header old, chunk 0 new with one
 * block torn, chunk 1 old; the record holds both headers and chunk 0). */
static void full_rekey(void)
{
	char dir[PATH_MAX], big[ENCNAME_MAX], sm[ENCNAME_MAX], d[ENCNAME_MAX],
		b[ENCNAME_MAX], ln[ENCNAME_MAX], enc[ENCLINK_MAX],
		xn[XATTR_NAME_MAX + 1];
	uint8_t nk[NAME_KEY_LEN], xv[64 + XATTR_VALUE3_OVERHEAD];
	struct keyprov *prov[2] = { NULL, NULL };
	struct keyring *saved = kr;
	struct fsck_opts o = { 0 };
	struct fsck_result r;
	struct reseal_slot slot;
	struct bname bn;
	struct cfile cf;
	uint8_t *old = NULL, *neu = NULL, *rec = NULL, *want = NULL,
		*got = NULL;
	size_t olen = 0, nlen = 0, blen = 2 * RESEAL_CHUNK_BYTES + 100, n;
	size_t cb, c0, rlen;
	bool xattrs;
	int rootfd, dfd, fd, jfd;

	snprintf(dir, sizeof(dir), "%s/full", top);
	CHECK_RC(tvol_create(dir, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(dir, keypath, &rootfd, &kr), 0);
	if (kr == NULL) {
		kr = saved;
		return;
	}
	bs = keyring_volume(kr)->block_size;
	mkfile(rootfd, "big", blen, big);	/* 3 reseal chunks */
	mkfile(rootfd, "small", 10, sm);
	dfd = mkdir_in(rootfd, "d", d);
	mkfile(dfd, "b", 1, b);
	/* a symlink and an xattr under the name key of generation 1 */
	CHECK_RC(keyring_name_key(kr, nk), 0);
	CHECK_RC(tvol_bname(kr, rootfd, "ln", &bn), 0);
	snprintf(ln, sizeof(ln), "%s", bn.name);
	{
		/* format 3: bound to the root and the link's own name; the
		 * value to the file's id */
		uint8_t rid[DIRID_LEN];
		struct names_loc loc;

		CHECK_RC(dirtree_dirid_unverified(rootfd, rid), 0);
		CHECK_RC(names_loc_set(&loc, rid, ln), 0);
		CHECK_RC(names_target_seal(nk, keyring_volume(kr)->version >= 3 ?
							&loc :
							NULL,
					   "d/b", 3, enc, sizeof(enc)),
			 0);
	}
	CHECK(symlinkat(enc, rootfd, ln) == 0, "symlink");
	CHECK_RC(names_xattr_name_encrypt(nk, "user.note", xn, sizeof(xn)), 0);
	fd = openat(rootfd, sm, O_RDONLY | O_CLOEXEC);
	{
		struct header h;
		const uint8_t *ow = NULL;

		if (keyring_volume(kr)->version >= 3 && fd >= 0 &&
		    cfile_read_header(fd, &h) == 0)
			ow = h.file_id;
		CHECK_RC(names_xattr_seal(nk, ow, "user.note",
					  (const uint8_t *)"hello", 5, xv),
			 0);
		xattrs = fd >= 0 &&
			 fsetxattr(fd, xn, xv, 5 + names_xattr_overhead(ow),
				   0) == 0;
	}
	if (fd >= 0)
		close(fd);
	if (!xattrs)
		fprintf(stderr, "# no user xattrs here: xattr counts "
				"skipped\n");
	want = malloc(blen);
	got = malloc(blen);
	CHECK_RC(tvol_read(kr, rootfd, big, want, blen, &n), 0);

	/* Begun: a fresh name key and generation 2; nothing migrated. */
	CHECK_RC(volio_providers(keyring_volume(kr), keypath, prov), 0);
	CHECK_RC(keyring_rekey_begin(kr, prov, true, persist_fd, &rootfd), 0);
	o.root = dir;
	o.keep_list = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "full rekey begun: %lu problems", r.problems);
	if (r.problems != 0)
		dump(&r);
	CHECK(r.full && r.full_from == 1 && r.full_to == 2,
	      "full rekey reported: %d %u -> %u", r.full, r.full_from,
	      r.full_to);
	CHECK(r.names_pending == 5 && r.targets_pending == 1 &&
		      r.xattrs_pending == (xattrs ? 1u : 0u) &&
		      r.files_pending == 3 && r.reseal_pending == 0,
	      "pending: %lu names, %lu targets, %lu xattrs, %lu files",
	      r.names_pending, r.targets_pending, r.xattrs_pending,
	      r.files_pending);
	fsck_result_free(&r);

	/* /big caught mid reseal. Re-seal it for real, keep both versions
	 * of its bytes, and put together what a kill after chunk 0 left. */
	old = grab(rootfd, big, &olen);
	jfd = journal_open(rootfd, true);
	CHECK(jfd >= 0, "journal");
	CHECK_RC(reseal_slot_open(&slot, jfd, "test"), 0);
	fd = openat(rootfd, big, O_RDWR | O_CLOEXEC);
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(reseal_file(&cf, fd, &slot, false), 1);
	cfile_destroy(&cf);
	close(fd);
	neu = grab(rootfd, big, &nlen);
	CHECK(old != NULL && neu != NULL && olen == nlen, "both versions");
	if (old == NULL || neu == NULL || olen != nlen)
		goto out;
	cb = bs + BLOCK_OVERHEAD;
	c0 = RESEAL_CHUNK_BYTES / bs * cb;	/* chunk 0's cipher bytes */
	rec = calloc(1, RREC_DATA + c0);
	rlen = mkrec(rec, old, neu, 0, RESEAL_CHUNK_BYTES / bs, c0,
		     neu + HEADER_LEN, c0);
	put(jfd, slot.name, rec, rlen, 0);
	/* the file: header old, chunk 0 new but block 5 torn, the rest old */
	put(rootfd, big, old, HEADER_LEN, 0);
	put(rootfd, big, old + HEADER_LEN + c0, olen - HEADER_LEN - c0,
	    (off_t)(HEADER_LEN + c0));
	put(rootfd, big, old + HEADER_LEN + 5 * cb, cb / 2,
	    (off_t)(HEADER_LEN + 5 * cb));
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.reseal_pending == 1,
	      "mid reseal: %lu problems, %lu reseal pending", r.problems,
	      r.reseal_pending);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	/* A block beyond the record that no key opens: damage. */
	put(rootfd, big, (const uint8_t *)"XXXXXXX", 7,
	    (off_t)(HEADER_LEN + c0 + 3 * cb + 20));
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 1 && r.reseal_pending == 0 &&
		      find(&r, big, "mid reseal") != NULL,
	      "mid reseal, damaged: %lu problems", r.problems);
	fsck_result_free(&r);
	put(rootfd, big, old + HEADER_LEN + c0 + 3 * cb, cb,
	    (off_t)(HEADER_LEN + c0 + 3 * cb));

	/* repair completes the record; the file reads back whole */
	CHECK_RC(volio_lock_offline(rootfd), 0);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.completed == 1 && r.quarantined == 0 &&
		      r.reseal_pending == 0 && r.files_pending == 2,
	      "repair: %lu problems, %lu completed, %lu files pending",
	      r.problems, r.completed, r.files_pending);
	fsck_result_free(&r);
	o.repair = false;
	CHECK_RC(tvol_read(kr, rootfd, big, got, blen, &n), 0);
	CHECK(n == blen && memcmp(want, got, blen) == 0, "big reads back");

	/* Killed in the last chunk (one block here, shorter than chunk 1):
	 * the record holds that block and, past its length, the rest of
	 * chunk 1 it overwrote in place; the block in the file is torn. */
	CHECK(ftruncate(slot.fd, 0) == 0, "empty record");
	put(rootfd, big, old, HEADER_LEN, 0);
	put(rootfd, big, old + HEADER_LEN + 2 * c0, 40,
	    (off_t)(HEADER_LEN + 2 * c0));
	memcpy(rec + RREC_DATA, neu + HEADER_LEN + c0, c0);	/* chunk 1 */
	rlen = mkrec(rec, old, neu, 2 * RESEAL_CHUNK_BYTES / bs, 1,
		     olen - HEADER_LEN - 2 * c0, neu + HEADER_LEN + 2 * c0,
		     olen - HEADER_LEN - 2 * c0);
	put(jfd, slot.name, rec, RREC_DATA + c0, 0);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.reseal_pending == 1,
	      "killed in the last chunk: %lu problems, %lu reseal pending",
	      r.problems, r.reseal_pending);
	fsck_result_free(&r);
	/* Killed before a chunk's data reached the record (its length says
	 * more than is there): no block of it was written, the file is
	 * old; the record restores nothing and the file is completed. */
	CHECK(ftruncate(slot.fd, 0) == 0, "empty record");
	put(rootfd, big, old, olen, 0);
	rlen = mkrec(rec, old, neu, 0, RESEAL_CHUNK_BYTES / bs, c0,
		     neu + HEADER_LEN, 0);
	put(jfd, slot.name, rec, rlen, 0);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.reseal_pending == 1,
	      "chunk cut before its sync: %lu problems, %lu reseal pending",
	      r.problems, r.reseal_pending);
	fsck_result_free(&r);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.completed == 1,
	      "repair of a chunk cut before its sync: %lu problems, %lu "
	      "completed", r.problems, r.completed);
	fsck_result_free(&r);
	o.repair = false;
	memset(got, 0, blen);
	CHECK_RC(tvol_read(kr, rootfd, big, got, blen, &n), 0);
	CHECK(n == blen && memcmp(want, got, blen) == 0, "big reads back");

	/* Without the flag the previous key is never tried: finished (here
	 * without migrating), the old names are damage again. */
	/* The root's id resealed under the new secret, as the engine's walk
	 * does for every directory id before it finishes. */
	CHECK_RC(dirtree_bind_dirid(kr, rootfd, NULL, NULL), 0);
	CHECK_RC(keyring_rekey_finish(kr, persist_fd, &rootfd), 0);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(!r.full && r.names_pending == 0 &&
		      find(&r, sm, "name fails authentication") != NULL &&
		      find(&r, ln, "name fails authentication") != NULL,
	      "finished: old names are damage (%lu problems)", r.problems);
	fsck_result_free(&r);
	reseal_slot_close(&slot, true);
out:
	if (jfd >= 0)
		close(jfd);
	secmem_wipe(nk, sizeof(nk));
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	free(old);
	free(neu);
	free(rec);
	free(want);
	free(got);
	close(dfd);
	close(rootfd);
	keyring_free(kr);
	kr = saved;
	bs = keyring_volume(kr)->block_size;
}

/* Truncate records (doc/FORMAT.md §3.1) in a format-3 volume: a shrink
 * cut short by a crash is pending, not damage; the old record of that
 * shrink put back after the file grew again, with one byte of its tail
 * flipped (the attack: the mount used to cut the file to the record's
 * old content), is a named finding, and repair quarantines the record
 * and never applies it: the file is not cut. */
static void trunc_records(void)
{
	char dir[PATH_MAX], f[ENCNAME_MAX], jname[JOURNAL_NAME_LEN + 1],
		q[PATH_MAX + 64];
	uint8_t *data = NULL, rec[8192], c = 0;
	struct keyring *saved = kr;
	struct fsck_opts o = { 0 };
	struct fsck_result r;
	struct header h;
	struct cfile cf;
	size_t rlen = 0;
	uint64_t wat = 0;
	unsigned done = 0;
	off_t big = 0;
	int rootfd, fd = -1, jfd = -1, rfd;
	const size_t len = 20000, small = 5000;

	snprintf(dir, sizeof(dir), "%s/trunc", top);
	CHECK_RC(tvol_create(dir, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(dir, keypath, &rootfd, &kr), 0);
	if (kr == NULL) {
		kr = saved;
		return;
	}
	bs = keyring_volume(kr)->block_size;
	o.root = dir;
	o.keep_list = true;
	mkfile(rootfd, "f", len, f);
	jfd = journal_open(rootfd, true);
	fd = openat(rootfd, f, O_RDWR | O_CLOEXEC);
	CHECK(jfd >= 0 && fd >= 0 && cfile_read_header(fd, &h) == 0,
	      "journal, file");
	if (jfd < 0 || fd < 0)
		goto out;
	cfile_journal_name(h.file_id, jname);
	/* the shrink's record, caught through a second link */
	rfd = openat(jfd, jname, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(rfd >= 0 && linkat(jfd, jname, rootfd, "../trec.keep", 0) == 0,
	      "record link");
	if (rfd >= 0)
		close(rfd);
	cfile_init(&cf, kr, bs, fd);
	cf.jfd = jfd;
	CHECK_RC(cfile_load(&cf, fd), 0);
	CHECK_RC(cfile_truncate(&cf, fd, small), 0);
	cfile_destroy(&cf);
	CHECK_RC(backing_read_small(rootfd, "../trec.keep", rec, sizeof(rec),
				    &rlen),
		 0);
	CHECK(rlen > 8 && memcmp(rec, "CMKFSTR2", 8) == 0,
	      "a format-3 record: %zu bytes", rlen);

	/* A crash between cut and write: pending, no problem. */
	CHECK(ftruncate(fd, lseek(fd, 0, SEEK_END) - (off_t)(small % bs) -
				    BLOCK_OVERHEAD) == 0,
	      "cut");
	CHECK_RC(backing_replace(jfd, jname, rec, rlen, 0600), 0);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.pending == 1,
	      "crash: %lu problems, %lu pending", r.problems, r.pending);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	/* The attack: the file grown back to 20,000 bytes, one byte of its
	 * tail flipped, the old record put back. */
	data = malloc(len);
	for (size_t i = 0; data != NULL && i < len; i++)
		data[i] = (uint8_t)(i * 7 + 3);
	CHECK_RC(journal_recover(rootfd, jfd, kr, bs, &done), 0);
	CHECK(done == 1 && !tvol_exists(jfd, jname), "crash completed");
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_load(&cf, fd), 0);
	CHECK_RC(cfile_write(&cf, fd, 0, data, len, false, &wat), 0);
	cfile_destroy(&cf);
	big = lseek(fd, 0, SEEK_END);
	CHECK(pread(fd, &c, 1, big - 1) == 1, "read tail");
	c ^= 0x01;
	CHECK(pwrite(fd, &c, 1, big - 1) == 1, "flip tail");
	CHECK_RC(backing_replace(jfd, jname, rec, rlen, 0600), 0);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.pending == 0 && find(&r, f, "truncate record") != NULL &&
		      find(&r, f, "the file is longer than the record") != NULL,
	      "old record: a finding (%lu problems, %lu pending)", r.problems,
	      r.pending);
	CHECK(find(&r, f, "last block fails authentication") != NULL,
	      "and the torn tail");
	if (find(&r, f, "truncate record") == NULL)
		dump(&r);
	fsck_result_free(&r);
	CHECK(lseek(fd, 0, SEEK_END) == big, "fsck cut nothing");

	/* Repair: the record is set aside, never applied. */
	CHECK_RC(volio_lock_offline(rootfd), 0);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.completed == 0 && r.quarantined >= 1 &&
		      find(&r, f, "truncate record") != NULL,
	      "repair: %lu completed, %lu quarantined", r.completed,
	      r.quarantined);
	fsck_result_free(&r);
	CHECK(!tvol_exists(jfd, jname), "record gone from the journal");
	CHECK(lseek(fd, 0, SEEK_END) == big, "file not cut");
	snprintf(q, sizeof(q), "%s/%s", dir, QUARANTINE_DIR);
	CHECK(tvol_exists(rootfd, QUARANTINE_DIR), "quarantine made: %s", q);
	o.repair = false;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.pending == 0,
	      "after repair: %lu problems", r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);
out:
	free(data);
	(void)unlinkat(rootfd, "../trec.keep", 0);
	if (fd >= 0)
		close(fd);
	if (jfd >= 0)
		close(jfd);
	close(rootfd);
	keyring_free(kr);
	kr = saved;
	bs = keyring_volume(kr)->block_size;
}

/* ---- a growth cut short (format 3, doc/FORMAT.md §3.4 "Growth") ---- */

#define G_FAR 20	/* the growth writes at block G_FAR, past a hole */
#define G_FILES 3

/* File dfd/bname, cut back to its first len bytes, grown by a write at
 * block G_FAR, killed
 * between the growth's two writes (cfile_test_crash_at): the old last
 * block is left sealed as last at its old length, zeros after it, before
 * the hole. want gets what the mount reads (len bytes, zeros, 10 new
 * bytes); returns that size, 0 if the shape was not made. */
static size_t cut_growth(int dfd, const char *bname, size_t len,
			 uint8_t *want)
{
	static const uint8_t more[10] = "0123456789";
	size_t cb = bs + BLOCK_OVERHEAD, size = (size_t)G_FAR * bs + 10;
	uint64_t b = (len - 1) / bs;
	uint8_t *slot = calloc(1, cb);
	struct cfile cf;
	bool shape = false;
	int fd = openat(dfd, bname, O_RDWR | O_CLOEXEC), rc = -1;

	CHECK(fd >= 0 && slot != NULL, "open %s", bname);
	if (fd >= 0) {
		cfile_init(&cf, kr, bs, fd);
		rc = cfile_load(&cf, fd);
		if (rc == 0)	/* back to len bytes: a no-op the first time */
			rc = cfile_truncate(&cf, fd, len);
		cfile_test_crash_at(2);
		if (rc == 0)
			rc = cfile_write(&cf, fd, (uint64_t)G_FAR * bs, more,
					 sizeof(more), false, NULL);
		cfile_test_crash_at(0);
		cfile_destroy(&cf);
		/* the slot: the old block's seal, then zeros to its end */
		shape = rc < 0 && slot != NULL &&
			pread(fd, slot, cb, (off_t)(HEADER_LEN + b * cb)) ==
				(ssize_t)cb &&
			slot[0] != 0 && slot[cb - 1] == 0 &&
			memcmp(slot + cb - 32, slot + cb - 33, 32) == 0;
		close(fd);
	}
	free(slot);
	CHECK(shape, "%s: not a growth cut short (write %d)", bname, rc);
	for (size_t i = 0; i < len; i++)
		want[i] = (uint8_t)(i * 131 + 7);
	memset(want + len, 0, size - len);
	memcpy(want + size - 10, more, 10);
	return shape ? size : 0;
}

static bool reads_back(int dfd, const char *bname, const uint8_t *want,
		       size_t len)
{
	uint8_t *got = malloc(len + 1);
	size_t n = 0;
	bool ok = got != NULL &&
		  tvol_read(kr, dfd, bname, got, len + 1, &n) == 0 &&
		  n == len && memcmp(got, want, len) == 0;

	free(got);
	return ok;
}

/* The plaintext name of /g1's salvaged copy in lost+found. */
static void g_action(const struct fsck_action *a, void *arg)
{
	if (a->kind == FSCK_SALVAGED && a->salvage != NULL &&
	    a->ppath != NULL && strcmp(a->ppath, "/g1") == 0)
		snprintf(arg, 256, "%s", a->salvage->name);
}

/*
 * The old last block of a growth cut short reads as its bytes and zeros
 * on the mount; every other reader agrees: fsck finds nothing (data block
 * or, for an old block of at most 8 bytes, one shaped like a hole record),
 * repair leaves the file alone, a full rekey re-seals it (reads the same,
 * no damage), and repair's salvage of a file damaged elsewhere keeps that
 * block's bytes and its holes. The same slot zeroed, or one byte of it
 * flipped, is still damage.
 */
static void grown_cut(void)
{
	static const size_t lens[G_FILES] = { 3 * 4096 + 100, 2 * 4096 + 5,
					      2 * 4096 + 5 };
	char dir[PATH_MAX], g[G_FILES][ENCNAME_MAX], name[8], copy[256] = "";
	uint8_t *want[G_FILES] = { NULL };
	size_t size[G_FILES] = { 0 }, cb;
	struct keyring *saved = kr;
	struct fsck_opts o = { 0 };
	struct rekey_cb rcb = { .full = true };
	const struct fsck_cb cb_copy = { NULL, g_action, NULL, NULL, copy };
	struct rekey_result rr;
	struct fsck_result r;
	struct bname bn;
	int rootfd, fd, lf;

	snprintf(dir, sizeof(dir), "%s/grown", top);
	CHECK_RC(tvol_create(dir, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(dir, keypath, &rootfd, &kr), 0);
	if (kr == NULL) {
		kr = saved;
		return;
	}
	bs = keyring_volume(kr)->block_size;
	cb = bs + BLOCK_OVERHEAD;
	CHECK(keyring_version(kr) >= 3 && bs == 4096, "format 3, 4 KiB");
	o.root = dir;
	o.keep_list = true;
	for (int i = 0; i < G_FILES; i++) {
		want[i] = malloc((size_t)G_FAR * bs + 10);
		snprintf(name, sizeof(name), "g%d", i);
		mkfile(rootfd, name, lens[i], g[i]);
		size[i] = cut_growth(rootfd, g[i], lens[i], want[i]);
		CHECK(reads_back(rootfd, g[i], want[i], size[i]),
		      "g%d: the mount reads it", i);
	}

	/* fsck: no damage; repair: nothing to do */
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.files == G_FILES,
	      "cut short: %lu problems, %lu files", r.problems, r.files);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);
	CHECK_RC(volio_lock_offline(rootfd), 0);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.salvaged == 0 && r.quarantined == 0,
	      "repair: %lu problems, %lu salvaged, %lu quarantined",
	      r.problems, r.salvaged, r.quarantined);
	fsck_result_free(&r);
	o.repair = false;
	for (int i = 0; i < G_FILES; i++)
		CHECK(reads_back(rootfd, g[i], want[i], size[i]),
		      "g%d after repair", i);

	/* a full rekey (cmkfs rekey --full) re-seals every block */
	close(rootfd);		/* the offline lock with it */
	keyring_free(kr);
	kr = NULL;
	CHECK_RC(rekey_volume(dir, keypath, &rcb, &rr), 0);
	CHECK(rr.p.full && rr.p.damaged == 0 && rr.p.rewrapped >= G_FILES,
	      "rekey --full: %s; %llu damaged, %llu re-sealed", rr.msg,
	      (unsigned long long)rr.p.damaged,
	      (unsigned long long)rr.p.rewrapped);
	CHECK_RC(tvol_unlock(dir, keypath, &rootfd, &kr), 0);
	if (kr == NULL) {
		kr = saved;
		goto out;
	}
	for (int i = 0; i < G_FILES; i++) {
		/* under the new name key, each has a new backing name */
		snprintf(name, sizeof(name), "g%d", i);
		CHECK_RC(tvol_bname(kr, rootfd, name, &bn), 0);
		snprintf(g[i], sizeof(g[i]), "%s", bn.name);
		CHECK(reads_back(rootfd, g[i], want[i], size[i]),
		      "g%d after the full rekey", i);
	}
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "after the full rekey: %lu problems",
	      r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	/* Cut short again, then: g0's old last block zeroed, g2's flipped
	 * (damage, at that block); g1's block 0 flipped (damage there, its
	 * cut-short block is not). */
	for (int i = 0; i < G_FILES; i++) {
		uint64_t b = (lens[i] - 1) / bs;
		uint8_t *z = calloc(1, cb);

		size[i] = cut_growth(rootfd, g[i], lens[i], want[i]);
		fd = openat(rootfd, g[i], O_RDWR | O_CLOEXEC);
		if (i == 0)
			CHECK(fd >= 0 && z != NULL &&
				      pwrite(fd, z, cb,
					     (off_t)(HEADER_LEN + b * cb)) ==
					      (ssize_t)cb,
			      "zero g0's old last block");
		if (fd >= 0)
			close(fd);
		free(z);
	}
	flip(rootfd, g[1], HEADER_LEN + 20);
	flip(rootfd, g[2], (off_t)(HEADER_LEN + 2 * cb + 20));
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	{
		const struct fsck_item *i0 = find(&r, g[0], "");
		const struct fsck_item *i1 = find(&r, g[1], "");
		const struct fsck_item *i2 = find(&r, g[2], "");

		/* g0: its zeros before a record that starts after them */
		CHECK(r.problems == 3 && i0 != NULL && i1 != NULL &&
			      i1->block == 0 && i2 != NULL && i2->block == 2,
		      "zeroed, flipped: %lu problems (want g0, g1 block 0, "
		      "g2 block 2)",
		      r.problems);
		if (r.problems != 3)
			dump(&r);
	}
	fsck_result_free(&r);

	/* Salvage: one block lost each; the holes are no loss, and g1's
	 * copy keeps its cut-short block's bytes. */
	CHECK_RC(volio_lock_offline(rootfd), 0);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, &cb_copy, &r), 0);
	CHECK(r.salvaged == 3 && r.lost_blocks == 3,
	      "salvaged %lu, lost %lu blocks (want 3, 3)", r.salvaged,
	      r.lost_blocks);
	fsck_result_free(&r);
	o.repair = false;
	CHECK(copy[0] != '\0', "g1's copy named");
	CHECK_RC(tvol_bname(kr, rootfd, LOSTFOUND_NAME, &bn), 0);
	lf = openat(rootfd, bn.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(lf >= 0, "lost+found");
	if (lf >= 0 && copy[0] != '\0') {
		CHECK_RC(tvol_bname(kr, lf, copy, &bn), 0);
		memset(want[1], 0, bs);		/* block 0: lost */
		CHECK(reads_back(lf, bn.name, want[1], size[1]),
		      "g1's copy: its cut-short block kept, holes zeros");
	}
	if (lf >= 0)
		close(lf);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "after salvage: %lu problems", r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);
	close(rootfd);
	keyring_free(kr);
	kr = saved;
out:
	for (int i = 0; i < G_FILES; i++)
		free(want[i]);
	bs = keyring_volume(kr)->block_size;
}

/* Format 3, names beyond one: dfd/from (a backing name) gets the hard link
 * `to`, as the mount makes one (the header names it, durably, first). */
static void ln_bound(int rootfd, int dfd, const char *from, const char *to)
{
	struct cfile cf;
	int fd = openat(dfd, from, O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0, "open %s", from);
	if (fd < 0)
		return;
	cfile_init(&cf, kr, bs, fd);
	cf.rootfd = rootfd;
	CHECK_RC(cfile_edit_slots(&cf, fd, to, NULL, true), 0);
	cfile_destroy(&cf);
	close(fd);
	CHECK(linkat(dfd, from, dfd, to, 0) == 0, "link %s", to);
}

/* A rename cut short by a kill after the backing rename: the header still
 * names {from, to}. */
static void mv_crashed(int dfd, const char *from, const char *to)
{
	struct cfile cf;
	int fd = openat(dfd, from, O_RDWR | O_CLOEXEC);

	CHECK(fd >= 0, "open %s", from);
	if (fd < 0)
		return;
	cfile_init(&cf, kr, bs, fd);
	CHECK_RC(cfile_set_slots(&cf, fd, from, to, true), 0);
	cfile_destroy(&cf);
	close(fd);
	CHECK(renameat(dfd, from, dfd, to) == 0, "rename %s", from);
}

/* dfd/bname opens where it is (a link set read from rootfd) and holds
 * mkfile's `len` bytes. */
static bool reads(int rootfd, int dfd, const char *bname, size_t len)
{
	uint8_t *buf = malloc(len + 1);
	struct cfile cf;
	size_t got = 0;
	bool ok;
	int fd = openat(dfd, bname, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || buf == NULL) {
		free(buf);
		if (fd >= 0)
			close(fd);
		return false;
	}
	cfile_init(&cf, kr, bs, fd);
	cf.rootfd = rootfd;
	ok = cfile_load(&cf, fd) == 0 &&
	     cfile_read(&cf, fd, 0, len + 1, buf, &got) == 0 && got == len;
	cfile_destroy(&cf);
	close(fd);
	for (size_t i = 0; ok && i < len; i++)
		ok = buf[i] == (uint8_t)(i * 131 + 7);
	free(buf);
	return ok;
}

static void id_hex(const uint8_t *id, char *out)
{
	for (int i = 0; i < FILE_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static bool head_of(int dfd, const char *bname, struct header *h)
{
	int fd = openat(dfd, bname, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && cfile_read_header(fd, h) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static size_t count_problem(const struct fsck_result *r, const char *what)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nlist; i++)
		n += strstr(r->list[i].what, what) != NULL;
	return n;
}

/* Format 3 beyond one name (linkfsck.h): LINKSET_DIR's entries (a valid
 * set copied under another file id, a set whose file's names are all gone,
 * a temporary, an unknown name) and bindings a crash left wider than the
 * file's names (a rename killed after the backing rename, an unlink of
 * one of two names and of one of four killed before the header forgot
 * it) are named; two names in two slots and three in a set are not; a
 * repair sets aside the set files, binds each file to its names alone
 * (times kept) and leaves the volume clean. A copy of a file put at the
 * place its stale binding still names opens there: both backing files
 * are named, neither is rewritten, and once the copy is removed a repair
 * narrows the binding. */
static void link_bindings(void)
{
	enum { LEN = 5000 };
	char dir[PATH_MAX], s0[ENCNAME_MAX], s1[ENCNAME_MAX], u1[ENCNAME_MAX],
		u2[ENCNAME_MAX], m[5][ENCNAME_MAX], g[3][ENCNAME_MAX],
		c0[ENCNAME_MAX], c1[ENCNAME_MAX], hex[33], fake[33],
		mhex[33], cmd[4 * PATH_MAX];
	struct keyring *saved = kr;
	struct fsck_opts o = { 0 };
	struct fsck_result r;
	struct header h;
	struct bname bn;
	struct stat st0, st1;
	int rootfd, hfd, fd;

	snprintf(dir, sizeof(dir), "%s/links", top);
	CHECK_RC(tvol_create(dir, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(dir, keypath, &rootfd, &kr), 0);
	if (kr == NULL) {
		kr = saved;
		return;
	}
	bs = keyring_volume(kr)->block_size;
	o.root = dir;
	o.keep_list = true;
	/* /s0, /u1 = /u2 (two slots), /m1 = /m2 = /m3 (a link set),
	 * /g1 = /g2 = /g3 */
	mkfile(rootfd, "s0", LEN, s0);
	CHECK_RC(tvol_bname(kr, rootfd, "s1", &bn), 0);
	strcpy(s1, bn.name);
	mkfile(rootfd, "u1", LEN, u1);
	CHECK_RC(tvol_bname(kr, rootfd, "u2", &bn), 0);
	strcpy(u2, bn.name);
	ln_bound(rootfd, rootfd, u1, u2);
	for (int i = 0; i < 5; i++) {
		char n[8];

		snprintf(n, sizeof(n), "m%d", i + 1);
		if (i == 0) {
			mkfile(rootfd, n, LEN, m[0]);
			continue;
		}
		CHECK_RC(tvol_bname(kr, rootfd, n, &bn), 0);
		strcpy(m[i], bn.name);
		if (i < 3)
			ln_bound(rootfd, rootfd, m[0], m[i]);
	}
	mkfile(rootfd, "g1", LEN, g[0]);
	for (int i = 1; i < 3; i++) {
		char n[8];

		snprintf(n, sizeof(n), "g%d", i + 1);
		CHECK_RC(tvol_bname(kr, rootfd, n, &bn), 0);
		strcpy(g[i], bn.name);
		ln_bound(rootfd, rootfd, g[0], g[i]);
	}
	CHECK(head_of(rootfd, m[0], &h) && header_is_set(&h),
	      "three names: a link set");
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "two slots and a link set: clean (%lu)",
	      r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	/* The crashes and the adversary. */
	mv_crashed(rootfd, s0, s1);
	CHECK(unlinkat(rootfd, u2, 0) == 0, "unlink /u2, header not told");
	ln_bound(rootfd, rootfd, m[0], m[3]);	/* a fourth name ... */
	CHECK(unlinkat(rootfd, m[3], 0) == 0, "... unlinked, set not told");
	CHECK(head_of(rootfd, g[0], &h), "g's header");
	for (int i = 0; i < 3; i++)
		CHECK(unlinkat(rootfd, g[i], 0) == 0, "unlink g%d", i + 1);
	id_hex(h.file_id, hex);
	CHECK(head_of(rootfd, m[0], &h), "m's header");
	id_hex(h.file_id, fake);
	fake[0] = fake[0] == 'a' ? 'b' : 'a';
	hfd = openat(rootfd, LINKSET_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(hfd >= 0 && tvol_exists(hfd, hex), "g's set left behind");
	id_hex(h.file_id, mhex);
	snprintf(cmd, sizeof(cmd), "cp %s/%s/%s %s/%s/%s", dir, LINKSET_DIR,
		 mhex, dir, LINKSET_DIR, fake);
	CHECK(system(cmd) == 0, "copy m's set under another id");
	CHECK_RC(backing_replace(hfd, "zz", "x", 1, 0600), 0);
	fd = openat(hfd, "cmkfs.tmp.00000000000000ab",
		    O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "stray temporary in " LINKSET_DIR);
	if (fd >= 0)
		close(fd);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(find(&r, s1, "header still names a place") != NULL,
	      "rename cut short: stale slot named");
	CHECK(find(&r, u1, "header still names a place") != NULL,
	      "unlink of one of two names cut short: stale slot named");
	CHECK((find(&r, m[0], "link set still names 1 place") != NULL) +
			      (find(&r, m[1], "link set still names 1 place") !=
			       NULL) +
			      (find(&r, m[2], "link set still names 1 place") !=
			       NULL) ==
		      1,
	      "unlink of one of four names cut short: stale set token");
	CHECK(find(&r, hex, "orphaned link set") != NULL,
	      "a set whose file is gone");
	CHECK(find(&r, fake, "link set fails authentication") != NULL,
	      "a valid set copied under another file id");
	CHECK(find(&r, "zz", "unknown name in " LINKSET_DIR) != NULL,
	      "unknown name");
	CHECK(find(&r, "cmkfs.tmp.00000000000000ab", "leftover temporary") !=
		      NULL,
	      "temporary");
	CHECK(r.problems == 7, "exactly those: %lu problems", r.problems);
	if (r.problems != 7)
		dump(&r);
	fsck_result_free(&r);

	CHECK(fstatat(rootfd, s1, &st0, 0) == 0, "stat /s1");
	CHECK_RC(volio_lock_offline(rootfd), 0);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.quarantined == 4 && r.unrepaired == 0 && r.salvaged == 0,
	      "set files set aside: %lu quarantined, %lu not repaired",
	      r.quarantined, r.unrepaired);
	fsck_result_free(&r);
	o.repair = false;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "clean after the repair: %lu", r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);
	CHECK(fstatat(rootfd, s1, &st1, 0) == 0 &&
		      st1.st_mtim.tv_sec == st0.st_mtim.tv_sec &&
		      st1.st_mtim.tv_nsec == st0.st_mtim.tv_nsec,
	      "mtime kept by the rewrite");
	CHECK(head_of(rootfd, s1, &h) && !header_is_set(&h) &&
		      !memcmp(h.slot[1], "\0\0\0\0\0\0\0\0", 8),
	      "/s1 bound to its name alone");
	CHECK(head_of(rootfd, u1, &h) &&
		      !memcmp(h.slot[1], "\0\0\0\0\0\0\0\0", 8),
	      "/u1 bound to its name alone");
	CHECK(head_of(rootfd, m[0], &h) && header_is_set(&h),
	      "/m1's three names still in a set");
	CHECK(reads(rootfd, rootfd, s1, LEN) && reads(rootfd, rootfd, u1, LEN) &&
		      reads(rootfd, rootfd, m[0], LEN) && reads(rootfd, rootfd, m[1], LEN) &&
		      reads(rootfd, rootfd, m[2], LEN),
	      "every name reads after the repair");
	CHECK(!tvol_exists(hfd, hex) && !tvol_exists(hfd, fake) &&
		      !tvol_exists(hfd, "zz"),
	      "set files gone from " LINKSET_DIR);

	/* The stale slot's risk: a copy at the old place opens there. */
	mkfile(rootfd, "c0", LEN, c0);
	CHECK_RC(tvol_bname(kr, rootfd, "c1", &bn), 0);
	strcpy(c1, bn.name);
	mv_crashed(rootfd, c0, c1);
	snprintf(cmd, sizeof(cmd), "cp -p %s/%s %s/%s", dir, c1, dir, c0);
	CHECK(system(cmd) == 0, "copy the file back to its old place");
	CHECK(reads(rootfd, rootfd, c0, LEN), "the copy opens at the old place");
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(find(&r, c0, "file id also held by another backing file") !=
			      NULL &&
		      find(&r, c1, "file id also held by another backing "
				   "file") != NULL &&
		      r.problems == 2,
	      "both copies named: %lu problems", r.problems);
	if (r.problems != 2)
		dump(&r);
	fsck_result_free(&r);
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.unrepaired == 2 && count_problem(&r, "also held") == 2,
	      "neither copy rewritten: %lu not repaired", r.unrepaired);
	fsck_result_free(&r);
	CHECK(unlinkat(rootfd, c0, 0) == 0, "the copy removed by hand");
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(find(&r, c1, "header still names a place") != NULL &&
		      r.unrepaired == 0,
	      "then the stale slot is named and dropped");
	fsck_result_free(&r);
	o.repair = false;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && reads(rootfd, rootfd, c1, LEN),
	      "clean, /c1 reads: %lu", r.problems);
	fsck_result_free(&r);

	if (hfd >= 0)
		close(hfd);
	keyring_free(kr);
	kr = saved;
	bs = keyring_volume(kr)->block_size;
	close(rootfd);
}

/* Faults under the walk (Makefile.am links this test with --wrap of
 * readdir64, fstatat64 and openat64; with _FILE_OFFSET_BITS=64 those are
 * what libcmkfs.a calls): while `fault` is set, the listing that reaches
 * backing name `fault_name` fails there (EIO), or stat or open of that
 * name fails (EIO). `fault_hits` counts the failures made. */
enum fault { F_NONE, F_READDIR, F_FSTATAT, F_OPENAT };
static enum fault fault;
static const char *fault_name;
static unsigned fault_hits;

struct dirent64 *__real_readdir64(DIR *dir);
struct dirent64 *__wrap_readdir64(DIR *dir);
int __real_fstatat64(int dfd, const char *path, struct stat64 *st, int fl);
int __wrap_fstatat64(int dfd, const char *path, struct stat64 *st, int fl);
int __real_openat64(int dfd, const char *path, int fl, ...);
int __wrap_openat64(int dfd, const char *path, int fl, ...);

static bool faulted(enum fault k, const char *name)
{
	if (fault != k || strcmp(name, fault_name) != 0)
		return false;
	fault_hits++;
	errno = EIO;
	return true;
}

struct dirent64 *__wrap_readdir64(DIR *dir)
{
	struct dirent64 *de = __real_readdir64(dir);

	return de != NULL && faulted(F_READDIR, de->d_name) ? NULL : de;
}

int __wrap_fstatat64(int dfd, const char *path, struct stat64 *st, int fl)
{
	return faulted(F_FSTATAT, path) ? -1 :
					  __real_fstatat64(dfd, path, st, fl);
}

int __wrap_openat64(int dfd, const char *path, int fl, ...)
{
	unsigned mode = 0;
	va_list ap;

	if (fl & (O_CREAT | O_TMPFILE)) {
		va_start(ap, fl);
		mode = va_arg(ap, unsigned);
		va_end(ap);
	}
	return faulted(F_OPENAT, path) ? -1 :
					 __real_openat64(dfd, path, fl, mode);
}

struct pw {
	unsigned warnings, rewritten, moved;
};

static void p_warning(const char *what, void *arg)
{
	(void)what;
	((struct pw *)arg)->warnings++;
}

static void p_action(const struct fsck_action *a, void *arg)
{
	struct pw *c = arg;

	c->rewritten += a->kind == FSCK_REWRITTEN;
	c->moved += a->kind == FSCK_QUARANTINED || a->kind == FSCK_SALVAGED ||
		    a->kind == FSCK_DESTROYED;
}

/* A walk that misses a name (its directory's listing fails midway, its
 * stat fails, or its file cannot be opened: EIO from the wraps above) is
 * partial: a repair must not narrow a binding, nor set aside a link set,
 * for want of a name it never saw. /a and /d/x are one file (two slots);
 * with /d/x unseen, the binding still names it: that is no stale slot
 * (the walk says so in a warning, and names what it could not read), and
 * after the repair both names still read and a check is clean. One fresh
 * volume per fault. */
static void partial_walk(enum fault k, const char *what)
{
	enum { LEN = 3000 };
	char dir[PATH_MAX], a[ENCNAME_MAX], dn[ENCNAME_MAX], x[ENCNAME_MAX];
	struct keyring *saved = kr;
	struct fsck_opts o = { 0 };
	struct pw c = { 0 };
	const struct fsck_cb cb = { NULL, p_action, NULL, p_warning, &c };
	struct fsck_result r;
	struct header h;
	struct bname bn;
	struct cfile cf;
	int rootfd, dfd, fd;

	snprintf(dir, sizeof(dir), "%s/partial%d", top, (int)k);
	CHECK_RC(tvol_create(dir, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(dir, keypath, &rootfd, &kr), 0);
	if (kr == NULL) {
		kr = saved;
		return;
	}
	bs = keyring_volume(kr)->block_size;
	o.root = dir;
	o.keep_list = true;
	mkfile(rootfd, "a", LEN, a);
	dfd = mkdir_in(rootfd, "d", dn);
	CHECK_RC(tvol_bname(kr, dfd, "x", &bn), 0);
	strcpy(x, bn.name);
	/* the hard link /d/x, bound first as the mount does */
	fd = openat(rootfd, a, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0, "open /a");
	if (fd >= 0) {
		cfile_init(&cf, kr, bs, fd);
		cf.rootfd = rootfd;
		CHECK_RC(cfile_edit_slots(&cf, fd, x, NULL, true), 0);
		cfile_destroy(&cf);
		close(fd);
	}
	CHECK(linkat(rootfd, a, dfd, x, 0) == 0, "link /d/x");
	CHECK(reads(rootfd, rootfd, a, LEN) && reads(rootfd, dfd, x, LEN),
	      "/a and /d/x read");
	CHECK_RC(fsck_run(rootfd, kr, &o, &cb, &r), 0);
	CHECK(r.problems == 0 && c.warnings == 0,
	      "two names in two directories: clean (%lu problems)",
	      r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	CHECK_RC(volio_lock_offline(rootfd), 0);
	memset(&c, 0, sizeof(c));
	fault_hits = 0;
	fault_name = x;
	fault = k;
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, &cb, &r), 0);
	fault = F_NONE;
	o.repair = false;
	CHECK(fault_hits > 0, "%s: fault made (%u)", what, fault_hits);
	CHECK(count_problem(&r, "still names") == 0 && c.rewritten == 0 &&
		      c.moved == 0,
	      "%s: no stale binding judged, nothing rewritten or moved "
	      "(%u, %u)",
	      what, c.rewritten, c.moved);
	CHECK(r.problems > 0 && c.warnings > 0,
	      "%s: the unseen part named (%lu problems), bindings not "
	      "checked (%u warnings)",
	      what, r.problems, c.warnings);
	if (count_problem(&r, "still names") != 0 || r.problems == 0)
		dump(&r);
	fsck_result_free(&r);
	CHECK(head_of(rootfd, a, &h) &&
		      memcmp(h.slot[1], "\0\0\0\0\0\0\0\0", 8) != 0,
	      "%s: /a still bound to both names", what);
	CHECK(reads(rootfd, rootfd, a, LEN) && reads(rootfd, dfd, x, LEN),
	      "%s: /a and /d/x still read", what);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "%s: then clean (%lu problems)", what,
	      r.problems);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);
	close(dfd);
	keyring_free(kr);
	kr = saved;
	bs = keyring_volume(kr)->block_size;
	close(rootfd);
}

int main(void)
{
	char a[ENCNAME_MAX], d[ENCNAME_MAX], b[ENCNAME_MAX], sub[ENCNAME_MAX],
		c[ENCNAME_MAX], lng[ENCNAME_MAX], lname[201], side[ENCNAME_MAX];
	uint64_t c1 = 0;
	struct fsck_result r;
	struct counts cnt = { 0 };
	const struct fsck_cb cb = { c_problem, c_action, c_progress, NULL, &cnt };
	struct fsck_opts o = { 0 };
	const struct fsck_item *it;
	int rootfd, dfd, subfd, fd;

	if (tvol_tmpdir("test_fsck", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(vol, sizeof(vol), "%s/vol", top);
	snprintf(keypath, sizeof(keypath), "%s/service.key", top);
	CHECK_RC(tvol_create(vol, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(vol, keypath, &rootfd, &kr), 0);
	if (kr == NULL)
		return t_done("test_fsck");
	bs = keyring_volume(kr)->block_size;
	/* header + block 0: where block 1 starts */
	CHECK_RC(cfile_cipher_size(bs, bs, &c1), 0);

	/* /a (3 blocks), /d/b (2 blocks), /d/sub/c (1), /LLL... (1) */
	mkfile(rootfd, "a", 2 * bs + 100, a);
	dfd = mkdir_in(rootfd, "d", d);
	mkfile(dfd, "b", bs + 1, b);
	subfd = mkdir_in(dfd, "sub", sub);
	mkfile(subfd, "c", 10, c);
	memset(lname, 'L', 200);
	lname[200] = '\0';
	mkfile(rootfd, lname, 5, lng);
	CHECK(names_is_longname(lng), "a long name: %s", lng);

	/* clean: nothing found, everything counted, callbacks called */
	o.root = vol;
	CHECK_RC(fsck_run(rootfd, kr, &o, &cb, &r), 0);
	CHECK(r.problems == 0 && cnt.problems == 0, "clean: %lu problems",
	      r.problems);
	CHECK(r.dirs == 3 && r.files == 4 && r.blocks == 7,
	      "counts: %lu dirs %lu files %lu blocks", r.dirs, r.files,
	      r.blocks);
	CHECK(cnt.expired == 1 && cnt.walk >= 7, "progress: %lu %lu",
	      cnt.expired, cnt.walk);
	CHECK(r.nlist == 0 && !r.repair, "no list unless asked");
	fsck_result_free(&r);

	/* plant damage */
	flip(rootfd, a, (off_t)(c1 + 10));	/* block 1 of /a */
	fd = openat(dfd, b, O_RDWR | O_CLOEXEC);	/* /d/b's header cut */
	CHECK(fd >= 0 && ftruncate(fd, HEADER_LEN / 2) == 0, "cut header");
	if (fd >= 0)
		close(fd);
	CHECK(unlinkat(subfd, DIRID_FILE, 0) == 0, "rm dirid");
	fd = openat(rootfd, "cmkfs.tmp.0123456789abcdef",
		    O_WRONLY | O_CREAT | O_CLOEXEC, 0600);	/* stray temp */
	CHECK(fd >= 0, "stray tmp");
	if (fd >= 0)
		close(fd);
	fd = openat(rootfd, "cmkfs.bogus", O_WRONLY | O_CREAT | O_CLOEXEC,
		    0600);
	if (fd >= 0)
		close(fd);
	fd = openat(dfd, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		    O_WRONLY | O_CREAT | O_CLOEXEC, 0600);	/* no name */
	if (fd >= 0)
		close(fd);
	CHECK_RC(names_side_name(lng, side, sizeof(side)), 0);
	CHECK(unlinkat(rootfd, side, 0) == 0, "rm side file");

	memset(&cnt, 0, sizeof(cnt));
	o.keep_list = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, &cb, &r), 0);
	it = find(&r, a, "block fails authentication");
	CHECK(it != NULL && it->block == 1 && it->ppath != NULL &&
		      strcmp(it->ppath, "/a") == 0,
	      "flipped block of /a");
	it = find(&r, b, "header: malformed or truncated");
	CHECK(it != NULL && it->ppath && strcmp(it->ppath, "/d/b") == 0 &&
		      it->block == -1,
	      "cut header of /d/b");
	it = find(&r, sub, "directory id (cmkfs.dirid) missing");
	CHECK(it != NULL && it->ppath && strcmp(it->ppath, "/d/sub") == 0,
	      "missing dirid of /d/sub");
	CHECK(find(&r, "cmkfs.tmp.0123456789abcdef", "leftover temporary") !=
		      NULL,
	      "stray temporary");
	CHECK(find(&r, "cmkfs.bogus", "unknown reserved name") != NULL,
	      "unknown reserved name");
	it = find(&r, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		  "name fails authentication");
	CHECK(it != NULL && it->ppath == NULL, "unnamed entry");
	CHECK(find(&r, lng, "long-name side file missing") != NULL,
	      "long name without side file");
	/* the unnamed entry is an empty file: its header is missing too */
	CHECK(find(&r, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
		   "header: malformed") != NULL,
	      "unnamed entry's header");
	CHECK(r.problems == 8 && r.nlist == 8 && cnt.problems == 8,
	      "exactly the planted problems: %lu", r.problems);
	/* /d/sub/c is below the lost id: not counted as a checked file */
	CHECK(r.files == 4, "files checked: %lu", r.files);
	if (r.problems != 8)
		dump(&r);
	fsck_result_free(&r);

	/* repair: /a salvaged, the rest set aside; then a clean check */
	CHECK_RC(volio_lock_offline(rootfd), 0);
	memset(&cnt, 0, sizeof(cnt));
	o.repair = true;
	CHECK_RC(fsck_run(rootfd, kr, &o, &cb, &r), 0);
	CHECK(r.repair && r.salvaged == 1 && r.lost_blocks == 1,
	      "salvaged %lu, lost %lu", r.salvaged, r.lost_blocks);
	CHECK(r.quarantined == 7 && r.unrepaired == 0,
	      "quarantined %lu, not repaired %lu", r.quarantined, r.unrepaired);
	CHECK(cnt.actions == r.salvaged + r.quarantined, "actions: %lu",
	      cnt.actions);
	if (r.quarantined != 7)
		dump(&r);
	fsck_result_free(&r);
	o.repair = false;
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0, "clean after repair: %lu", r.problems);
	/* lost+found holds the copy of /a, three blocks */
	CHECK(r.dirs == 3 && r.files == 1 && r.blocks == 3,
	      "after repair: %lu dirs %lu files %lu blocks", r.dirs, r.files,
	      r.blocks);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);

	/* a locked keyring: no name key, nothing checked */
	keyring_lock(kr);
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), -EKEYREVOKED);
	fsck_result_free(&r);

	close(subfd);
	close(dfd);
	test_volume(rootfd);	/* closes rootfd */
	unreadable_subdir();
	long_links();
	full_rekey();
	trunc_records();
	grown_cut();
	link_bindings();
	partial_walk(F_READDIR, "listing cut short");
	partial_walk(F_FSTATAT, "stat fails");
	partial_walk(F_OPENAT, "open fails");
	keyring_free(kr);
	CHECK(tvol_rmtree(top) == 0, "cleanup");
	return t_done("test_fsck");
}
