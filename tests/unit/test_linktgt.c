/* tests/unit/test_linktgt.c — long symlink targets re-made without
 * orphans (include/cmkfs/linktgt.h: linktgt_make_tmp, linktgt_rename_over,
 * linktgt_retire, linktgt_unlink), through a full rekey's name migration
 * (migrate_dir, include/cmkfs/migrate.h) of a format-3 volume with a long symlink (its
 * target in a side file in cmkfs.links/, doc/FORMAT.md §4.3) and a short
 * one, killed at every file-changing call it makes. The calls are wrapped
 * at link time (-Wl,--wrap, see Makefile.am): a child process runs the
 * migration of the root and of the directory holding the symlinks and
 * kills itself (SIGKILL) at the entry of its N-th call, as kill -9 would
 * stop it there.
 * After each kill, fsck names only leftovers of the step in flight
 * (temporaries, long-name side files, a renamed directory's second place:
 * the allowlist of tests/mount/t_fullcrash.sh) and no orphaned side file;
 * a rerun of the migration leaves the volume clean, nothing pending, both
 * symlinks readable and exactly one side file in cmkfs.links/. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/fsck.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/migrate.h"
#include "cmkfs/names.h"
#include "cmkfs/volio.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

/* The kill point: 0 off, else the calls left before the kill. */
static int countdown;

static void step(void)
{
	if (countdown > 0 && --countdown == 0)
		raise(SIGKILL);	/* as kill -9: no exit handlers, no leak check */
}

int __real_symlinkat(const char *t, int dfd, const char *n);
int __real_renameat(int a, const char *b, int c, const char *d);
int __real_renameat2(int a, const char *b, int c, const char *d,
		     unsigned int f);
int __real_linkat(int a, const char *b, int c, const char *d, int f);
int __real_unlinkat(int dfd, const char *n, int f);
int __real_mkdirat(int dfd, const char *n, mode_t m);
int __real_fsync(int fd);
int __real_fdatasync(int fd);
ssize_t __real_pwrite(int fd, const void *b, size_t n, off_t o);
int __wrap_symlinkat(const char *t, int dfd, const char *n);
int __wrap_renameat(int a, const char *b, int c, const char *d);
int __wrap_renameat2(int a, const char *b, int c, const char *d,
		     unsigned int f);
int __wrap_linkat(int a, const char *b, int c, const char *d, int f);
int __wrap_unlinkat(int dfd, const char *n, int f);
int __wrap_mkdirat(int dfd, const char *n, mode_t m);
int __wrap_fsync(int fd);
int __wrap_fdatasync(int fd);
ssize_t __wrap_pwrite(int fd, const void *b, size_t n, off_t o);

int __wrap_symlinkat(const char *t, int dfd, const char *n)
{
	step();
	return __real_symlinkat(t, dfd, n);
}

int __wrap_renameat(int a, const char *b, int c, const char *d)
{
	step();
	return __real_renameat(a, b, c, d);
}

int __wrap_renameat2(int a, const char *b, int c, const char *d,
		     unsigned int f)
{
	step();
	return __real_renameat2(a, b, c, d, f);
}

int __wrap_linkat(int a, const char *b, int c, const char *d, int f)
{
	step();
	return __real_linkat(a, b, c, d, f);
}

int __wrap_unlinkat(int dfd, const char *n, int f)
{
	step();
	return __real_unlinkat(dfd, n, f);
}

int __wrap_mkdirat(int dfd, const char *n, mode_t m)
{
	step();
	return __real_mkdirat(dfd, n, m);
}

int __wrap_fsync(int fd)
{
	step();
	return __real_fsync(fd);
}

int __wrap_fdatasync(int fd)
{
	step();
	return __real_fdatasync(fd);
}

ssize_t __wrap_pwrite(int fd, const void *b, size_t n, off_t o)
{
	step();
	return __real_pwrite(fd, b, n, o);
}

static char top[1024], pristine[PATH_MAX], work[PATH_MAX], keypath[PATH_MAX];

static int persist_fd(const struct volume *v, void *arg)
{
	return volio_write(*(int *)arg, v);
}

/* Symlink `name` in dfd to a target of len bytes, bound to its place. */
static void mklink(struct keyring *kr, int rootfd, int dfd, const char *name,
		   size_t len)
{
	static char tgt[SYMLINK_TARGET_MAX + 1], enc[ENCLINK_MAX];
	uint8_t key[NAME_KEY_LEN], dirid[DIRID_LEN];
	struct names_loc loc;
	struct bname bn;

	memset(tgt, 'x', len);
	CHECK_RC(keyring_name_key(kr, key), 0);
	CHECK_RC(tvol_bname(kr, dfd, name, &bn), 0);
	CHECK_RC(dirtree_dirid_unverified(dfd, dirid), 0);
	CHECK_RC(names_loc_set(&loc, dirid, bn.name), 0);
	CHECK_RC(names_target_seal3(key, &loc, tgt, len, enc, sizeof(enc)), 0);
	CHECK_RC(linktgt_make(rootfd, dfd, bn.name, enc, strlen(enc)), 0);
}

/* The one directory in the root (its name changes in the migration),
 * its backing name in bname. */
static int open_sub(int rootfd, char bname[static NAME_MAX + 1])
{
	char path[64];
	struct dirent *e;
	int fd = -1;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", rootfd);
	d = opendir(path);
	while (d != NULL && fd < 0 && (e = readdir(d)) != NULL)
		if (e->d_type == DT_DIR && e->d_name[0] != '.' &&
		    strncmp(e->d_name, "cmkfs.", 6) != 0) {
			snprintf(bname, NAME_MAX + 1, "%s", e->d_name);
			fd = openat(rootfd, e->d_name, O_RDONLY | O_DIRECTORY |
							       O_CLOEXEC);
		}
	if (d != NULL)
		closedir(d);
	return fd;
}

/* The migration as a full rekey's walk does it (src/maint/rekey.c): the
 * root, then the directory, each id bound anew after its entries. */
static int migrate(struct keyring *kr, int rootfd)
{
	char dname[NAME_MAX + 1];
	struct migrate_stats st = { 0 };
	struct migrate_keys k;
	uint8_t id[DIRID_LEN];
	int rc, dfd;

	rc = migrate_keys_get(kr, &k);
	if (rc == 0)
		rc = dirtree_dirid_unverified(rootfd, id);
	if (rc == 0)
		rc = migrate_dir(&k, rootfd, rootfd, id, NULL, &st);
	if (rc == 0)
		rc = dirtree_bind_dirid(kr, rootfd, NULL, NULL);
	dfd = rc == 0 ? open_sub(rootfd, dname) : -1;
	if (rc == 0 && dfd < 0)
		rc = -ENOENT;
	if (rc == 0)
		rc = dirtree_dirid_unverified(dfd, id);
	if (rc == 0)
		rc = migrate_dir(&k, rootfd, dfd, id, NULL, &st);
	if (rc == 0)
		rc = dirtree_bind_dirid(kr, dfd, NULL, dname);
	if (dfd >= 0)
		close(dfd);
	migrate_keys_wipe(&k);
	return rc;
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

static void dump(const struct fsck_result *r)
{
	for (size_t i = 0; i < r->nlist; i++)
		fprintf(stderr, "#   %s: %s\n", r->list[i].bpath,
			r->list[i].what);
}

/* Only what the step in flight leaves (t_fullcrash's allowlist). */
static bool explained(const struct fsck_result *r)
{
	for (size_t i = 0; i < r->nlist; i++) {
		const char *w = r->list[i].what;

		if (strstr(w, "still names a second place") != NULL)
			continue;
		if (r->list[i].ppath != NULL ||
		    (strstr(w, "temporary") == NULL &&
		     strstr(w, "long-name side file") == NULL))
			return false;
	}
	return true;
}

static void setup(void)
{
	struct keyprov *prov[2] = { NULL, NULL };
	struct keyring *kr = NULL;
	struct bname bn;
	int rootfd = -1, dfd;

	CHECK_RC(tvol_create(pristine, keypath, 4096), 0);
	CHECK_RC(tvol_unlock(pristine, keypath, &rootfd, &kr), 0);
	if (kr == NULL)
		return;
	CHECK(keyring_volume(kr)->version >= 3, "a format-3 volume");
	CHECK_RC(tvol_bname(kr, rootfd, "d", &bn), 0);
	CHECK_RC(dirtree_make(kr, rootfd, "cmkfs.tmp.00000000000000aa",
			      bn.name, 0700, 0, 0, false),
		 0);
	CHECK(renameat(rootfd, "cmkfs.tmp.00000000000000aa", rootfd,
		       bn.name) == 0,
	      "rename d");
	dfd = openat(rootfd, bn.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(dfd >= 0, "open d");
	mklink(kr, rootfd, dfd, "long", 3000);
	mklink(kr, rootfd, dfd, "short", 20);
	CHECK(count_links(rootfd) == 1, "one side file");
	CHECK_RC(volio_providers(keyring_volume(kr), keypath, prov), 0);
	CHECK_RC(keyring_rekey_begin(kr, prov, true, persist_fd, &rootfd), 0);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	close(dfd);
	close(rootfd);
	keyring_free(kr);
}

/* One run killed at call n: 1 killed, 0 done before it. */
static int killed_at(int n)
{
	struct fsck_opts o = { .root = work, .keep_list = true };
	char cmd[3 * PATH_MAX];
	struct keyring *kr = NULL;
	struct fsck_result r;
	int rootfd = -1, status = -1, ret = 0;
	pid_t pid;

	if (access(work, F_OK) == 0)
		CHECK_RC(tvol_rmtree(work), 0);
	snprintf(cmd, sizeof(cmd), "cp -a '%s' '%s'", pristine, work);
	CHECK(system(cmd) == 0, "copy the volume");
	CHECK_RC(tvol_unlock(work, keypath, &rootfd, &kr), 0);
	if (kr == NULL)
		return 0;
	pid = fork();
	if (pid == 0) {
		countdown = n;
		_exit(migrate(kr, rootfd) == 0 ? 0 : 4);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid &&
		      (WIFEXITED(status) ||
		       (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)),
	      "child");
	status = WIFEXITED(status)			       ? WEXITSTATUS(status) :
		 WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 3 :
								       -1;
	CHECK(status == 0 || status == 3, "killed at %d or done: %d", n,
	      status);
	ret = status == 3;
	if (ret) {
		CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
		CHECK(explained(&r),
		      "killed at call %d: only leftovers of the step in "
		      "flight (%lu problems)",
		      n, r.problems);
		if (!explained(&r))
			dump(&r);
		fsck_result_free(&r);
	}
	CHECK_RC(migrate(kr, rootfd), 0);	/* the rerun */
	CHECK_RC(fsck_run(rootfd, kr, &o, NULL, &r), 0);
	CHECK(r.problems == 0 && r.names_pending == 0 &&
		      r.targets_pending == 0 && r.symlinks == 2,
	      "killed at call %d, rerun: %lu problems, %lu names and %lu "
	      "targets pending, %lu symlinks",
	      n, r.problems, r.names_pending, r.targets_pending, r.symlinks);
	if (r.problems != 0)
		dump(&r);
	fsck_result_free(&r);
	CHECK(count_links(rootfd) == 1,
	      "killed at call %d, rerun: %zu side files, want 1", n,
	      count_links(rootfd));
	close(rootfd);
	keyring_free(kr);
	return ret;
}

int main(void)
{
	int n;

	if (tvol_tmpdir("test_linktgt", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(pristine, sizeof(pristine), "%s/pristine", top);
	snprintf(work, sizeof(work), "%s/work", top);
	snprintf(keypath, sizeof(keypath), "%s/service.key", top);
	setup();
	for (n = 1; n < 500 && killed_at(n); n++)
		;
	CHECK(n > 10 && n < 500, "ran to its end after %d kill points", n - 1);
	fprintf(stderr, "# %d kill points\n", n - 1);
	tvol_rmtree(top);
	return t_done("test_linktgt");
}
