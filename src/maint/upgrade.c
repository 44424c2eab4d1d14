/* src/maint/upgrade.c — `cmkfs upgrade`: format 1/2 to format 3 in place
 * (include/cmkfs/upgrade.h). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/convert.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/engine.h"
#include "cmkfs/fsck.h"
#include "cmkfs/journal.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/linkset.h"
#include "cmkfs/linktgt.h"
#include "cmkfs/migrate.h"
#include "cmkfs/names.h"
#include "cmkfs/rekey.h"
#include "cmkfs/reserved.h"
#include "cmkfs/transient.h"
#include "cmkfs/upgrade.h"
#include "cmkfs/volio.h"
#include "cmkfs/walk.h"

/* The volume has damage: fsck --repair first. */
#define UPGRADE_EDAMAGED (-EILSEQ)

struct up {
	char bad[256];		/* the entry a limit refused */
	int rootfd;
	struct keyring *kr;
	const struct upgrade_cb *cb;
	struct upgrade_progress p;
	struct convert_links links;
	struct timespec start;
	uint64_t last;		/* entries at the last report */
};

static int report(struct up *u, const char *phase, bool force)
{
	struct timespec now;

	if (phase != NULL)
		u->p.phase = phase;
	if (!force && u->p.entries - u->last < 1000)
		return 0;
	u->last = u->p.entries;
	clock_gettime(CLOCK_MONOTONIC, &now);
	u->p.elapsed = (double)(now.tv_sec - u->start.tv_sec) +
		       (double)(now.tv_nsec - u->start.tv_nsec) / 1e9;
	if (u->cb == NULL || u->cb->progress == NULL)
		return 0;
	return u->cb->progress(&u->p, u->cb->arg) ? -ECANCELED : 0;
}

/* An object that does not open under the volume's keys stays as it is:
 * it was unreadable before too, and fsck names it. */
static int damaged(struct up *u, const char *path, const char *what, int rc)
{
	if (rc != -EBADMSG)
		return rc < 0 ? rc : 0;
	u->p.damaged++;
	if (u->cb != NULL && u->cb->problem != NULL)
		u->cb->problem(path != NULL ? path : "", what, u->cb->arg);
	return 0;
}

static int persist(const struct volume *v, void *arg)
{
	return volio_write(*(int *)arg, v);
}

/* keyring_upgrade_begin/_finish under the config writers' lock. */
static int flag_step(struct up *u, bool begin)
{
	struct volume v;
	int lk, rc;

	lk = volio_lock_config(u->rootfd);
	if (lk < 0)
		return lk;
	rc = volio_same_as_disk(u->rootfd, keyring_volume_copy(u->kr, &v));
	if (rc == 0)
		rc = begin ? keyring_upgrade_begin(u->kr, persist, &u->rootfd) :
			     keyring_upgrade_finish(u->kr, persist,
						    &u->rootfd);
	volio_unlock_config(lk);
	return rc;
}

/* The walk before anything is rewritten: the names of files with more
 * than one, and what format 3 could not hold (more names than a link set
 * takes, an xattr value that would outgrow its limit), refused here and
 * not halfway through. */
static int links_check(const struct walk_entry *e, bool dir, void *arg)
{
	struct up *u = arg;
	struct stat st;
	int fd, rc = 0;

	if (e->type != DT_REG && !dir)
		return 0;
	fd = openat(e->dfd, e->name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		rc = -errno;
	if (rc == 0 && !dir && st.st_nlink > LINKSET_MAX)
		rc = -EMLINK;
	if (rc == 0 && !dir && st.st_nlink > 1)
		rc = convert_links_add(&u->links, st.st_dev, st.st_ino,
				       e->name);
	if (rc == 0 && !u->p.resumed)
		rc = convert_check_xattrs(fd);
	close(fd);
	if (rc == -EMLINK || rc == -E2BIG)
		snprintf(u->bad, sizeof(u->bad), "%s", e->name);
	return rc;
}

static int links_file(const struct walk_entry *e, void *arg)
{
	return links_check(e, false, arg);
}

static int links_dir(const struct walk_entry *e, void *arg)
{
	return e->cls == WALK_TMP ? WALK_SKIP : links_check(e, true, arg);
}

/* An fsck of the format-2 volume first: the upgrade starts only from a
 * volume with nothing to repair (a missing directory id or side file, a
 * damaged zone list would stop it halfway, with a volume nothing else
 * opens). Expires nothing. */
static void pre_problem(const struct fsck_problem *p, void *arg)
{
	struct up *u = arg;

	if (u->cb != NULL && u->cb->problem != NULL)
		u->cb->problem(p->bpath, p->what, u->cb->arg);
}

static int pre_fsck(struct up *u, const char *cipherdir)
{
	const struct fsck_opts o = { .root = cipherdir, .keep_zones = true };
	const struct fsck_cb cb = { .problem = pre_problem, .arg = u };
	struct fsck_result r;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = fsck_run(u->rootfd, u->kr, &o, &cb, &r);
	if (rc == 0 && r.problems > 0) {
		u->p.damaged = r.problems;
		rc = UPGRADE_EDAMAGED;
	}
	fsck_result_free(&r);
	return rc;
}

/* Offline nothing is in flight: a temporary is a crash's (a killed
 * create, or this command's own symlink or id record), gone with it. */
static int drop_tmp(const struct walk_entry *e, void *arg)
{
	const struct up *u = arg;

	migrate_drop_tmp(u->rootfd, e->dfd, e->name, e->type == DT_DIR);
	return 0;
}

static int conv_enter(const struct walk_entry *e, void *arg)
{
	struct up *u = arg;
	int fd, rc;

	if (e->cls == WALK_TMP) {
		(void)drop_tmp(e, arg);
		return WALK_SKIP;
	}
	fd = openat(e->dfd, e->name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = convert_dir(u->kr, fd, e->name);
	close(fd);
	u->p.entries++;
	u->p.dirs += rc > 0;
	rc = damaged(u, e->name, "directory id does not open", rc);
	return rc < 0 ? rc : report(u, NULL, false);
}

static int conv_file(const struct walk_entry *e, void *arg)
{
	struct up *u = arg;
	int rc = 0;

	if (e->cls == WALK_TMP)
		return drop_tmp(e, arg);
	u->p.entries++;
	if (e->type == DT_REG) {
		rc = convert_file(u->kr, u->rootfd, e->dfd, e->name, &u->links);
		u->p.files += rc > 0;
		rc = damaged(u, e->name, "file header does not open", rc);
	} else if (e->type == DT_LNK) {
		rc = convert_symlink(u->kr, u->rootfd, e->dfd, e->name);
		u->p.links += rc > 0;
		rc = damaged(u, e->name, "symlink target does not open", rc);
	}
	return rc < 0 ? rc : report(u, NULL, false);
}

/* Temporaries of the root's side directories (a long target's, a link
 * set's): made under the namespace lock by a mount, so a crash's now. */
static void drop_side_tmps(struct up *u)
{
	static const char *const sub[] = { LINKS_DIR, LINKSET_DIR };

	for (int i = 0; i < 2; i++) {
		int sfd = openat(u->rootfd, sub[i], O_RDONLY | O_DIRECTORY |
					     O_NOFOLLOW | O_CLOEXEC);

		if (sfd < 0)
			continue;
		if (walk_entries(sfd, WALK_TMP, WALK_F_TYPE | WALK_F_SKIP_ERRORS,
				 drop_tmp, u) < 0) {
			/* fsck names what is left */
		}
		close(sfd);
	}
}

static int tmp_file(const struct walk_entry *e, void *arg)
{
	return e->cls == WALK_TMP ? drop_tmp(e, arg) : 0;
}

static int tmp_dir(const struct walk_entry *e, void *arg)
{
	if (e->cls != WALK_TMP)
		return 0;
	(void)drop_tmp(e, arg);
	return WALK_SKIP;
}

/* Before the check: the leftovers of killed operations (this command's
 * own included) are no damage, and offline they are nobody's. */
static int drop_all_tmps(struct up *u)
{
	const struct walk_tree_cb cb = {
		.want = WALK_ENTRIES | WALK_TMP, .file = tmp_file,
		.enter = tmp_dir, .arg = u,
	};

	drop_side_tmps(u);
	return walk_tree(u->rootfd, &cb);
}

static int quarantine_empty(int rootfd)
{
	int fd = openat(rootfd, QUARANTINE_DIR,
			O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	int rc;

	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	rc = dirtree_is_empty(fd);
	close(fd);
	return rc < 0 ? rc : rc == 1 ? 0 : -ENOTEMPTY;
}

/* What comes before the flag: a format-1 volume or a rekey in progress
 * finished by `cmkfs rekey`; truncate records of a crash completed under
 * the format-2 rules they were written by. */
static int prepare(struct up *u, struct keyprov *prov[2])
{
	struct volume v;
	unsigned done = 0;
	int jfd, rc = 0;

	keyring_volume_copy(u->kr, &v);
	if (v.version == 1 || (v.flags & VOLUME_FLAG_REKEY)) {
		struct rekey_progress rp;

		rc = report(u, "rekey", true);
		if (rc == 0)
			rc = rekey_run(u->rootfd, u->kr, prov, NULL, &rp);
		if (rc == 0 && rp.damaged > 0)
			rc = -EBADMSG;
		if (rc < 0)
			return rc;
	}
	jfd = journal_open(u->rootfd, false);
	if (jfd == -ENOENT)
		return 0;
	if (jfd < 0)
		return jfd;
	rc = journal_recover(u->rootfd, jfd, u->kr,
			     keyring_block_size(u->kr), &done);
	close(jfd);
	return rc;
}

static int run(struct up *u, struct keyprov *prov[2], const char *cipherdir)
{
	const struct walk_tree_cb links = {
		.want = WALK_ENTRIES, .file = links_file, .enter = links_dir,
		.arg = u,
	};
	const struct walk_tree_cb conv = {
		.want = WALK_ENTRIES | WALK_TMP,
		.file = conv_file,
		.enter = conv_enter,
		.arg = u,
	};
	int rc = 0;

	if (!u->p.resumed) {
		rc = quarantine_empty(u->rootfd);
		if (rc == 0)
			rc = prepare(u, prov);
		if (rc == 0)
			rc = report(u, "check", true);
		if (rc == 0)
			rc = drop_all_tmps(u);
		if (rc == 0)
			rc = pre_fsck(u, cipherdir);
	}
	if (rc == 0)
		rc = report(u, "links", true);
	if (rc == 0) {
		drop_side_tmps(u);
		rc = walk_tree(u->rootfd, &links);
	}
	if (rc == 0 && !u->p.resumed)
		rc = convert_check_xattrs(u->rootfd);
	if (rc == 0 && !u->p.resumed) {
		rc = report(u, "begin", true);
		if (rc == 0)
			rc = flag_step(u, true);
	}
	if (rc == 0) {
		rc = transient_upgrade(u->rootfd, u->kr);
		u->p.zone_lists += rc > 0;
	}
	if (rc >= 0)
		rc = report(u, "convert", true);
	if (rc == 0) {
		rc = convert_dir(u->kr, u->rootfd, NULL);
		u->p.dirs += rc > 0;
		rc = damaged(u, ".", "the root's directory id does not open",
			     rc);
	}
	if (rc == 0)
		rc = walk_tree(u->rootfd, &conv);
	/* Every rewritten object durable before the config stops saying
	 * that old ones may remain. */
	if (rc == 0)
		rc = report(u, "sync", true);
	if (rc == 0 && syncfs(u->rootfd) < 0)
		rc = -errno;
	if (rc == 0)
		rc = report(u, "finish", true);
	if (rc == 0)
		rc = flag_step(u, false);
	if (rc == 0)
		rc = report(u, NULL, true);
	return rc;
}

static const char *why(int rc)
{
	switch (rc) {
	case -ENOTEMPTY:
		return "cmkfs.quarantine is not empty: what 'cmkfs fsck "
		       "--repair' set aside would keep its old format; look at "
		       "it, move what you need out of the volume and remove it "
		       "first";
	case -EBADMSG:
		return "objects that do not open under the volume's keys were "
		       "found while finishing a rekey first (see 'cmkfs fsck')";
	case UPGRADE_EDAMAGED:
		return "'cmkfs fsck' finds problems in the volume (above): "
		       "repair them first ('cmkfs fsck --repair'); the upgrade "
		       "starts only from a clean volume";
	case -EMLINK:
		return "a file has more names than format 3 keeps (4096)";
	case -E2BIG:
		return "an xattr value is too big for format 3 (16 bytes more "
		       "per value)";
	default:
		return volio_strerror(rc);
	}
}

int upgrade_volume(const char *cipherdir, const char *service_key,
		   const struct upgrade_cb *cb, struct upgrade_result *r)
{
	struct keyprov *prov[2] = { NULL, NULL };
	struct up u = { .rootfd = -1, .cb = cb };
	char id[VOLUME_ID_HEX_LEN], detail[256];
	struct volume v;
	int rc;

	memset(r, 0, sizeof(*r));
	clock_gettime(CLOCK_MONOTONIC, &u.start);
	u.rootfd = open(cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = u.rootfd < 0 ? -errno : volio_lock_offline(u.rootfd);
	if (rc == 0)
		rc = volio_read(u.rootfd, &v);
	if (rc < 0) {
		ENGINE_FAIL(r, UPGRADE_STAGE_OPEN, rc, "%s: %s", cipherdir,
			    volio_strerror(rc));
		goto out;
	}
	u.p.from_version = v.version;
	u.p.resumed = (v.flags & VOLUME_FLAG_UPGRADE) != 0;
	if (v.version >= 3 && !u.p.resumed) {
		u.p.already = true;
		r->p = u.p;
		r->stage = UPGRADE_STAGE_DONE;
		goto out;
	}
	volume_id_hex(&v, id);
	audit_set_volume(id);
	rc = volio_providers(&v, service_key, prov);
	if (rc == 0)
		rc = keyring_open_upgrade(&v, prov, &u.kr);
	if (rc < 0) {
		ENGINE_FAIL(r, UPGRADE_STAGE_UNLOCK, rc,
			    "%s: cannot unlock: %s", cipherdir,
			    volio_strerror(rc));
		audit_event("upgrade", v.layer[1].key_id, "denied",
			    volio_strerror(rc));
		goto out;
	}
	rc = run(&u, prov, cipherdir);
	snprintf(detail, sizeof(detail),
		 "format %u to 3%s: %llu files, %llu directories, %llu "
		 "symlinks, %llu damaged", u.p.from_version,
		 u.p.resumed ? " (resumed)" : "",
		 (unsigned long long)u.p.files, (unsigned long long)u.p.dirs,
		 (unsigned long long)u.p.links,
		 (unsigned long long)u.p.damaged);
	audit_event("upgrade", v.layer[1].key_id, rc == 0 ? "ok" : "error",
		    rc == 0 ? detail : why(rc));
	r->p = u.p;
	if (rc < 0) {
		struct volume now;

		keyring_volume_copy(u.kr, &now);
		ENGINE_FAIL(r, UPGRADE_STAGE_RUN, rc, "%s: %s%s%s%s", cipherdir,
			    why(rc), u.bad[0] ? " (backing entry " : "", u.bad,
			    u.bad[0] ? ")" :
			    (now.flags & VOLUME_FLAG_UPGRADE) ?
				    "; fix the cause and run 'cmkfs upgrade' "
				    "again to finish" :
				    "; nothing was changed");
		goto out;
	}
	r->stage = UPGRADE_STAGE_DONE;
out:
	convert_links_free(&u.links);
	keyring_free(u.kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	if (u.rootfd >= 0)
		close(u.rootfd);
	return rc;
}

void upgrade_json(const struct upgrade_progress *p, bool final, char *buf,
		  size_t cap)
{
	snprintf(buf, cap,
		 "{%s\"%s\":{\"phase\":\"%s\",\"from_version\":%u,"
		 "\"resumed\":%s,\"already\":%s,\"entries\":%llu,\"files\":%llu,"
		 "\"directories\":%llu,\"symlinks\":%llu,\"zone_lists\":%llu,"
		 "\"damaged\":%llu,\"elapsed\":%.3f}}",
		 final ? "\"ok\":true," : "", final ? "upgrade" : "progress",
		 p->phase != NULL ? p->phase : "", p->from_version,
		 p->resumed ? "true" : "false", p->already ? "true" : "false",
		 (unsigned long long)p->entries, (unsigned long long)p->files,
		 (unsigned long long)p->dirs, (unsigned long long)p->links,
		 (unsigned long long)p->zone_lists,
		 (unsigned long long)p->damaged, p->elapsed);
}
