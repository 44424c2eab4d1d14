/* src/cli/cmd_fsck.c — `cmkfs fsck [--repair] [--json] CIPHERDIR` (issue
 * #4): checks the volume config (unlock = MAC verified), every directory
 * id, every encrypted name and long-name side file, every file header and
 * every block in both layers, every symlink target and user xattr. Reports
 * each problem with the backing path, the plaintext path where it can
 * still be derived, and the block number. Without --repair it changes
 * nothing but transient-zone expiry (only while no mount is live: the
 * mount's sweeper owns expiry then). --repair (unmounted volumes only)
 * salvages damaged files into lost+found and quarantines what cannot be
 * read (src/fs/repair.c). Exit: 0 clean, 1 damage found (repaired or
 * not), 2 usage (and --repair on a mounted volume), 3 keys unavailable. */
#include "config.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/file.h"
#include "cmkfs/journal.h"
#include "cmkfs/http.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/mount.h"
#include "cmkfs/names.h"
#include "cmkfs/repair.h"
#include "cmkfs/secmem.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"


struct fsck {
	struct keyring *kr;
	uint8_t key[NAME_KEY_LEN];
	uint32_t bs;
	bool json, tty;
	unsigned long files, dirs, blocks, problems;
	/* truncates cut short by a crash whose record completes them
	 * (file.h): not damage; the next mount or --repair completes them */
	unsigned long pending, completed;
	int jfd;
	const char *root;
	/* transient zones: expired by this run, or due (a mount is live) */
	struct tzone *z;
	size_t nz;
	unsigned long expired, due;
	const char *due_owner;	/* who expires what is due instead of us */
	/* --repair */
	struct repair *rp;
	unsigned long salvaged, lost_blocks, quarantined, destroyed, unrepaired;
};

/* Where a damaged file below a directory is salvaged to: lost+found at the
 * volume root, or at the top of the transient zone it is in, so that the
 * copy keeps expiring (doc/OPERATIONS.md "fsck"). In a zone, what cannot
 * be salvaged is destroyed as expiry would, not quarantined: the
 * quarantine would keep zone data past its TTL. */
struct place {
	int fd;			/* backing directory that holds lost+found */
	const char *ppath;	/* its plaintext path, "" for the root */
	bool zone;
};

/* check_file() results: unreadable header (nothing to salvage), damaged
 * size or blocks (salvage), an error that says nothing about the file
 * (EACCES, EIO on the header...: left alone). */
enum { DMG_ENTRY = 1, DMG_CONTENT = 2, DMG_IO = 3 };

static void report(struct fsck *f, const char *bpath, const char *ppath,
		   long long block, const char *what)
{
	f->problems++;
	if (f->json) {
		printf("{\"backing\":");
		cli_json_str(bpath);
		printf(",\"path\":");
		if (ppath != NULL)
			cli_json_str(ppath);
		else
			printf("null");
		if (block >= 0)
			printf(",\"block\":%lld", block);
		printf(",\"problem\":");
		cli_json_str(what);
		printf("}\n");
	} else {
		if (f->tty)
			fprintf(stderr, "\r\033[K");
		printf("DAMAGE %s%s%s%s: %s", bpath, ppath ? " (" : "",
		       ppath ? ppath : "", ppath ? ")" : "", what);
		if (block >= 0)
			printf(" [block %lld]", block);
		printf("\n");
	}
	fflush(stdout);
}

static void progress(struct fsck *f)
{
	if (f->tty && (f->files + f->dirs) % 64 == 0)
		fprintf(stderr, "\rfsck: %lu dirs, %lu files, %lu blocks checked",
			f->dirs, f->files, f->blocks);
}

/* Returns 0 or a DMG_* kind. */
static int check_file(struct fsck *f, int dfd, const char *bn,
		      const char *bpath, const char *ppath)
{
	struct cfile cf;
	uint64_t size, nb;
	uint8_t *buf;
	size_t got;
	bool tail_ok;
	int fd, rc, dmg = 0;

	f->files++;
	fd = openat(dfd, bn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		report(f, bpath, ppath, -1, strerror(errno));
		return DMG_IO;
	}
	cfile_init(&cf, f->kr, f->bs, fd);
	rc = cfile_load(&cf, fd);
	if (rc == -EBADMSG || rc == -EKEYREJECTED) {
		report(f, bpath, ppath, -1,
		       rc == -EKEYREJECTED ? "header: wrong key or tampered" :
					     "header: malformed or truncated");
		dmg = DMG_ENTRY;
		goto out;
	}
	if (rc < 0) {
		report(f, bpath, ppath, -1, strerror(-rc));
		dmg = DMG_IO;
		goto out;
	}
	rc = cfile_size(&cf, fd, &size);
	tail_ok = rc == 0 && cfile_check_tail(&cf, fd) == 0;
	if (!tail_ok && cfile_resolve_truncate(&cf, fd, f->jfd, true) == 1) {
		f->pending++;
		goto out;
	}
	if (rc < 0) {
		report(f, bpath, ppath, -1, "impossible size: cut short or extended");
		dmg = DMG_CONTENT;
		goto out;
	}
	if (!tail_ok) {
		report(f, bpath, ppath, size ? (long long)((size - 1) / f->bs) : 0,
		       "last block fails authentication (cut at a block boundary?)");
		dmg = DMG_CONTENT;
	}
	buf = malloc(f->bs);
	if (buf == NULL) {	/* never report an unchecked file as clean */
		report(f, bpath, ppath, -1, strerror(ENOMEM));
		dmg = DMG_IO;
		goto out;
	}
	nb = size ? (size - 1) / f->bs + 1 : 0;
	for (uint64_t b = 0; b < nb; b++) {
		f->blocks++;
		if (cfile_read(&cf, fd, b * f->bs, f->bs, buf, &got) < 0) {
			report(f, bpath, ppath, (long long)b,
			       "block fails authentication");
			dmg = DMG_CONTENT;
		}
	}
	secmem_wipe(buf, f->bs);
	free(buf);
out:
	cfile_destroy(&cf);
	close(fd);
	return dmg;
}

/* Returns the number of user xattrs that fail. */
static unsigned check_xattrs(struct fsck *f, int dfd, const char *bn,
			     const char *bpath, const char *ppath)
{
	char path[PATH_MAX], list[8192], name[XATTR_NAME_MAX + 1];
	uint8_t val[65536], out[65536];
	unsigned bad = 0;
	ssize_t n, vl;

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, bn);
	n = llistxattr(path, list, sizeof(list));
	for (char *p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) != 0)
			continue;
		if (names_xattr_name_decrypt(f->key, p, name, sizeof(name)) < 0) {
			report(f, bpath, ppath, -1, "xattr name fails authentication");
			bad++;
			continue;
		}
		vl = lgetxattr(path, p, val, sizeof(val));
		if (vl < 0 || names_xattr_value_open(f->key, name, val, (size_t)vl,
						     out) < 0) {
			report(f, bpath, ppath, -1, "xattr value fails authentication");
			bad++;
		}
	}
	secmem_wipe(out, sizeof(out));
	return bad;
}

/* One line (or JSON object) per repair action. `to` is where it went: the
 * copy's plaintext path, or a path in the cipher directory. */
static void report_action(struct fsck *f, const char *action, const char *bpath,
			  const char *ppath, const char *to,
			  const struct salvage *s, const char *why)
{
	if (f->tty)
		fprintf(stderr, "\r\033[K");
	if (f->json) {
		/* "NOT-REPAIRED" -> "not_repaired", as the summary's keys */
		printf("{\"action\":\"");
		for (const char *a = action; *a != '\0'; a++)
			putchar(*a == '-' ? '_' : tolower((unsigned char)*a));
		printf("\",\"backing\":");
		cli_json_str(bpath);
		printf(",\"path\":");
		if (ppath != NULL)
			cli_json_str(ppath);
		else
			printf("null");
		if (s != NULL) {
			printf(",\"new_path\":");
			cli_json_str(to);
			printf(",\"lost_blocks\":[");
			for (size_t i = 0; i < s->nlost; i++)
				printf("%s%llu", i ? "," : "",
				       (unsigned long long)s->lost[i]);
			printf("],\"cut\":%s,\"size\":%llu", s->cut ? "true" : "false",
			       (unsigned long long)s->size);
		} else if (to != NULL) {
			printf(",\"to\":");
			cli_json_str(to);
		}
		if (why != NULL) {
			printf(",\"reason\":");
			cli_json_str(why);
		}
		printf("}\n");
		fflush(stdout);
		return;
	}
	printf("%s %s%s%s%s", action, bpath, ppath ? " (" : "", ppath ? ppath : "",
	       ppath ? ")" : "");
	if (s != NULL) {
		printf(" -> %s: ", to);
		if (s->nlost == 0)
			printf("no block lost");
		else
			printf("%zu block%s lost, written as zeros: block%s", s->nlost,
			       s->nlost == 1 ? "" : "s", s->nlost == 1 ? "" : "s");
		for (size_t i = 0; i < s->nlost; i++)
			printf("%s%llu", i ? "," : " ", (unsigned long long)s->lost[i]);
		if (s->cut)
			printf("; file cut short: whatever followed is lost");
	} else if (to != NULL) {
		printf(" -> %s", to);
	}
	if (why != NULL)
		printf(": %s", why);
	printf("\n");
	fflush(stdout);
}

static void not_repaired(struct fsck *f, const char *bpath,
			 const char *ppath, const char *why)
{
	f->unrepaired++;
	report_action(f, "NOT-REPAIRED", bpath, ppath, NULL, NULL, why);
}

/* The backing path of a directory relative to the cipher root. */
static const char *rel_of(const struct fsck *f, const char *bdir)
{
	size_t n = strlen(f->root);

	return bdir[n] == '/' ? bdir + n + 1 : bdir + n;
}

/* An entry that cannot be read: quarantined, or destroyed in a zone. */
static void set_aside(struct fsck *f, const struct place *pl, int dfd,
		      const char *bdir, const char *b, const char *bpath,
		      const char *ppath)
{
	char q[PATH_MAX], to[PATH_MAX + 8];
	int rc;

	if (pl->zone) {
		rc = transient_destroy(dfd, b);
		if (rc == 0) {
			f->destroyed++;
			report_action(f, "DESTROYED", bpath, ppath, NULL, NULL,
				      "in a transient zone: destroyed as "
				      "expiry does, not quarantined");
			return;
		}
	} else {
		rc = repair_quarantine(f->rp, dfd, rel_of(f, bdir), b, q,
				       sizeof(q));
		if (rc == 0) {
			f->quarantined++;
			snprintf(to, sizeof(to), "%s/%s", f->root, q);
			report_action(f, "QUARANTINED", bpath, ppath, to, NULL, NULL);
			return;
		}
	}
	not_repaired(f, bpath, ppath,
		     rc == -EISDIR ? "a directory in a transient zone is never "
				     "destroyed" :
				     strerror(-rc));
}

/* A file whose header opens: copy what authenticates into lost+found,
 * then set the original aside (the copy is durable first). */
static void salvage(struct fsck *f, const struct place *pl, int dfd,
		    const char *bdir, const char *b, const char *bpath,
		    const char *ppath)
{
	char to[PATH_MAX + 300];
	struct salvage s;
	int rc;

	rc = repair_salvage(f->rp, pl->fd, dfd, b, ppath, &s);
	if (rc < 0) {
		not_repaired(f, bpath, ppath,
			     rc == -ENOTDIR ? "lost+found is not a directory" :
					      strerror(-rc));
		return;
	}
	f->salvaged++;
	f->lost_blocks += s.nlost;
	snprintf(to, sizeof(to), "%s/" LOSTFOUND_NAME "/%s", pl->ppath, s.name);
	report_action(f, "SALVAGED", bpath, ppath, to, &s, NULL);
	salvage_free(&s);
	set_aside(f, pl, dfd, bdir, b, bpath, ppath);
}

static void fix_xattrs(struct fsck *f, const struct place *pl, int dfd,
		       const char *bdir, const char *b, const char *bpath,
		       const char *ppath)
{
	char q[PATH_MAX], to[PATH_MAX + 8], why[64];
	unsigned n = 0;
	int rc;

	q[0] = '\0';
	rc = repair_drop_bad_xattrs(f->rp, dfd, rel_of(f, bdir), b, !pl->zone,
				    &n, q, sizeof(q));
	if (rc < 0) {
		not_repaired(f, bpath, ppath, strerror(-rc));
		return;
	}
	snprintf(why, sizeof(why), "%u damaged xattr%s removed", n,
		 n == 1 ? "" : "s");
	if (pl->zone) {
		f->destroyed++;
		report_action(f, "DESTROYED", bpath, ppath, NULL, NULL, why);
	} else {
		f->quarantined++;
		snprintf(to, sizeof(to), "%s/%s", f->root, q);
		report_action(f, "QUARANTINED", bpath, ppath, to, NULL, why);
	}
}

/* --repair acts on each entry as it meets it; a damaged directory id (not
 * authenticated by itself) would make every name fail and every entry be
 * set aside one by one, or destroyed in a transient zone. So before
 * repairing anything in a directory, check that at least one name opens
 * under its id. 1: no name opens (the id is the likely culprit). */
static int dirid_suspect(struct fsck *f, int dfd,
			 const uint8_t dirid[static DIRID_LEN])
{
	char enc[ENCNAME_MAX], plain[NAME_MAX + 1];
	unsigned long tried = 0, ok = 0;
	struct dirent *de;
	DIR *d;
	int fd;

	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (d == NULL) {
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while (ok == 0 && (de = readdir(d)) != NULL) {
		const char *b = de->d_name, *e = b;
		size_t len = 0;

		if (names_is_reserved(b) && !names_is_longname(b))
			continue;	/* ".", "..": not base64url either */
		if (strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
			continue;
		if (names_is_longname(b)) {
			char side[ENCNAME_MAX];

			snprintf(side, sizeof(side), "%s%s", b, LONGNAME_SUFFIX);
			if (backing_read_small(dfd, side, enc, sizeof(enc) - 1,
					       &len) < 0)
				continue;
			enc[len] = '\0';
			e = enc;
		}
		tried++;
		ok += names_decrypt(f->key, dirid, e, strlen(e), plain,
				    sizeof(plain)) == 0;
	}
	closedir(d);
	secmem_wipe(plain, sizeof(plain));
	return tried > 0 && ok == 0;
}


/* Whether a symlink's target decrypts. Targets run to ENCLINK_MAX, far
 * longer than a name: buffers of their own, off walk()'s recursive frame. */
static __attribute__((noinline)) bool symlink_ok(struct fsck *f, int dfd,
						  const char *b)
{
	char enc[ENCLINK_MAX], tgt[ENCLINK_MAX];
	ssize_t n = readlinkat(dfd, b, enc, sizeof(enc) - 1);
	size_t len = 0;
	bool ok;

	ok = n > 0 && names_symlink_decrypt(f->key, enc, (size_t)n, tgt,
					    sizeof(tgt), &len) == 0;
	secmem_wipe(tgt, sizeof(tgt));
	return ok;
}

/* Returns -EBADMSG when the directory's own id is unreadable (nothing in
 * it can be named; with --repair the caller sets the directory aside). */
static int walk(struct fsck *f, int dfd, const char *bdir, const char *pdir,
		const struct place *pl, int depth)
{
	uint8_t dirid[DIRID_LEN];
	char bpath[PATH_MAX], ppath[PATH_MAX], plain[NAME_MAX + 1],
	     enc[ENCNAME_MAX], chk[ENCNAME_MAX];
	struct dirent *de;
	size_t len = 0;
	unsigned long nnames = 0, nbad = 0;
	DIR *d;
	int fd;

	f->dirs++;
	progress(f);
	if (depth > 256) {
		report(f, bdir, pdir, -1, "directories nested too deep");
		return 0;
	}
	if (backing_read_small(dfd, DIRID_FILE, dirid, sizeof(dirid), &len) < 0 ||
	    len != DIRID_LEN) {
		report(f, bdir, pdir, -1, "directory id (cmkfs.dirid) missing or "
					  "damaged: no name in it can be read");
		return -EBADMSG;
	}
	if (f->rp != NULL && dirid_suspect(f, dfd, dirid)) {
		report(f, bdir, pdir, -1, "no name decrypts: directory id "
					  "(cmkfs.dirid) damaged");
		return -EBADMSG;	/* the caller sets it aside whole */
	}
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (d == NULL) {
		report(f, bdir, pdir, -1, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 0;
	}
	while ((de = readdir(d)) != NULL) {
		const char *b = de->d_name, *e = b;
		struct stat st;
		bool named = false, repair = f->rp != NULL;

		if (strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
			continue;
		snprintf(bpath, sizeof(bpath), "%s/%s", bdir, b);
		/* Set aside earlier in this walk (a side file goes with its
		 * long-name entry): readdir may still return it. */
		if (repair && faccessat(dfd, b, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (names_is_reserved(b) && !names_is_longname(b)) {
			size_t bl = strlen(b), sl = sizeof(LONGNAME_SUFFIX) - 1;

			if (strcmp(b, DIRID_FILE) == 0 ||
			    (depth == 0 && (strcmp(b, VOLUME_FILE) == 0 ||
					    strcmp(b, TRANSIENT_FILE) == 0 ||
					    strcmp(b, QUARANTINE_DIR) == 0 ||
					    strcmp(b, JOURNAL_DIR) == 0)))
				continue;
			if (bl > sl && strcmp(b + bl - sl, LONGNAME_SUFFIX) == 0) {
				char owner[ENCNAME_MAX];

				snprintf(owner, sizeof(owner), "%.*s", (int)(bl - sl), b);
				if (faccessat(dfd, owner, F_OK, AT_SYMLINK_NOFOLLOW) < 0) {
					report(f, bpath, NULL, -1,
					       "orphaned long-name side file");
					if (repair)
						set_aside(f, pl, dfd, bdir, b, bpath,
							  NULL);
				}
				continue;
			}
			if (strncmp(b, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
				report(f, bpath, NULL, -1, "leftover temporary file "
							   "of an interrupted operation");
			else
				report(f, bpath, NULL, -1, "unknown reserved name");
			if (repair)
				set_aside(f, pl, dfd, bdir, b, bpath, NULL);
			continue;
		}
		if (names_is_longname(b)) {
			char side[ENCNAME_MAX];

			snprintf(side, sizeof(side), "%s%s", b, LONGNAME_SUFFIX);
			if (backing_read_small(dfd, side, enc, sizeof(enc) - 1,
					       &len) < 0) {
				report(f, bpath, NULL, -1, "long-name side file missing");
				e = NULL;
			} else {
				enc[len] = '\0';
				e = enc;
				if (names_backing(enc, chk, sizeof(chk)) != 1 ||
				    strcmp(chk, b) != 0) {
					report(f, bpath, NULL, -1,
					       "long-name side file does not match");
					e = NULL;
				}
			}
		}
		nnames += e != NULL;
		if (e != NULL && names_decrypt(f->key, dirid, e, strlen(e), plain,
					       sizeof(plain)) == 0) {
			named = true;
			snprintf(ppath, sizeof(ppath), "%s/%s", pdir, plain);
		} else if (e != NULL) {
			nbad++;
			report(f, bpath, NULL, -1, "name fails authentication");
		}
		if (fstatat(dfd, b, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		/* Nameless: quarantined whole, a directory with its subtree
		 * (outside a zone; a zone's unnamed directory stays, walked). */
		if (repair && !named && !(S_ISDIR(st.st_mode) && pl->zone)) {
			set_aside(f, pl, dfd, bdir, b, bpath, NULL);
			progress(f);
			continue;
		}
		if (repair && !named)
			not_repaired(f, bpath, NULL, "unnamed directory in a "
						     "transient zone (its files "
						     "keep expiring)");
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, b, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							 O_CLOEXEC);
			struct place zp = { sub, ppath, true };
			const struct place *spl = pl;

			if (sub < 0)
				continue;
			/* Entering the top of a zone: its own lost+found. */
			if (named && !pl->zone && f->nz > 0) {
				int zi = transient_zone_of(f->z, f->nz, ppath);

				if (zi >= 0 && strcmp(f->z[zi].path, ppath) == 0)
					spl = &zp;
			}
			/* A directory whose id is lost: set aside whole, but
			 * never inside or at the top of a transient zone, where
			 * that would destroy (or keep past its TTL) data that
			 * may still be recoverable by restoring the id. */
			if (walk(f, sub, bpath, named ? ppath : "?", spl,
				 depth + 1) < 0 && repair) {
				if (spl->zone)
					not_repaired(f, bpath, named ? ppath : NULL,
						     "directory id lost in a "
						     "transient zone: restore "
						     "cmkfs.dirid from a backup");
				else
					set_aside(f, pl, dfd, bdir, b, bpath,
						  named ? ppath : NULL);
			}
			close(sub);
		} else if (S_ISREG(st.st_mode)) {
			int dmg = check_file(f, dfd, b, bpath, named ? ppath : NULL);
			unsigned xbad = check_xattrs(f, dfd, b, bpath,
						     named ? ppath : NULL);

			if (repair && dmg == DMG_ENTRY)
				set_aside(f, pl, dfd, bdir, b, bpath, ppath);
			else if (repair && dmg == DMG_CONTENT)
				salvage(f, pl, dfd, bdir, b, bpath, ppath);
			else if (repair && dmg == DMG_IO)
				not_repaired(f, bpath, ppath, "cannot be read: "
							      "check the disk, then "
							      "run fsck again");
			else if (repair && xbad > 0)
				fix_xattrs(f, pl, dfd, bdir, b, bpath, ppath);
		} else if (S_ISLNK(st.st_mode)) {
			if (!symlink_ok(f, dfd, b)) {
				report(f, bpath, named ? ppath : NULL, -1,
				       "symlink target fails authentication");
				if (repair)
					set_aside(f, pl, dfd, bdir, b, bpath,
						  named ? ppath : NULL);
			}
		}
		progress(f);
	}
	closedir(d);
	/* Names are bound to the directory id: if none decrypts, the id is
	 * the likely culprit (it is not authenticated by itself). */
	if (nbad > 0 && nbad == nnames)
		report(f, bdir, pdir, -1, "no name decrypts: directory id "
					  "(cmkfs.dirid) damaged");
	return 0;
}

/* Expiry in fsck (issue #4: "expiry runs on mount, periodically while
 * mounted, and in cmkfs fsck"). Before the walk, so that nothing expired
 * is checked or salvaged out of its zone. While a mount is live (or the
 * cipher directory is read-only) its files are only counted. */
static void zones(struct fsck *f, int fd, bool may_write)
{
	time_t now = time(NULL);
	unsigned long c;
	int rc;

	rc = transient_load(fd, f->kr, f->z, &f->nz);
	if (rc < 0) {
		char bpath[PATH_MAX];

		snprintf(bpath, sizeof(bpath), "%s/%s", f->root, TRANSIENT_FILE);
		f->nz = 0;
		report(f, bpath, NULL, -1,
		       rc == -EBADMSG ? "transient zone list tampered or "
					"malformed: nothing expires" :
					strerror(-rc));
		if (f->rp != NULL)
			not_repaired(f, bpath, NULL, "restore it from a backup, "
					"or remove it and add the zones again "
					"with cmkfs transient add");
		return;
	}
	for (size_t i = 0; i < f->nz; i++) {
		c = 0;
		if (may_write)
			rc = transient_expire(fd, f->kr, &f->z[i], now, NULL, NULL,
					      &c);
		else
			rc = transient_count_due(fd, f->kr, &f->z[i], now, &c);
		if (rc < 0)
			fprintf(stderr, "cmkfs fsck: transient zone: %s\n",
				strerror(-rc));
		if (may_write)
			f->expired += c;
		else
			f->due += c;
	}
}

static void start_audit(struct fsck *f, const char *audit_log, bool *opened)
{
	char id[VOLUME_ID_HEX_LEN];

	if (*opened)
		return;
	audit_open(audit_log);
	volume_id_hex(keyring_volume(f->kr), id);
	audit_set_volume(id);
	*opened = true;
}

static void summary(const struct fsck *f, const char *cdir)
{
	if (f->json) {
		printf("{\"summary\":{\"dirs\":%lu,\"files\":%lu,\"blocks\":%lu,"
		       "\"problems\":%lu,\"expired\":%lu,\"expiry_due\":%lu,"
		       "\"truncates_pending\":%lu,\"truncates_completed\":%lu",
		       f->dirs, f->files, f->blocks, f->problems, f->expired,
		       f->due, f->pending, f->completed);
		if (f->rp != NULL)
			printf(",\"salvaged\":%lu,\"lost_blocks\":%lu,"
			       "\"quarantined\":%lu,\"destroyed\":%lu,"
			       "\"not_repaired\":%lu",
			       f->salvaged, f->lost_blocks, f->quarantined,
			       f->destroyed, f->unrepaired);
		printf("}}\n");
		return;
	}
	printf("fsck %s: %lu dirs, %lu files, %lu blocks checked, %lu "
	       "problem%s\n",
	       cdir, f->dirs, f->files, f->blocks, f->problems,
	       f->problems == 1 ? "" : "s");
	if (f->pending > 0)
		printf("%lu truncate%s cut short by a crash: completed at the "
		       "next mount or by fsck --repair\n",
		       f->pending, f->pending == 1 ? "" : "s");
	if (f->completed > 0)
		printf("%lu truncate%s cut short by a crash completed\n",
		       f->completed, f->completed == 1 ? "" : "s");
	if (f->expired > 0)
		printf("transient zones: %lu expired entr%s destroyed\n",
		       f->expired, f->expired == 1 ? "y" : "ies");
	if (f->due > 0)
		printf("transient zones: %lu entr%s due to expire, left to %s\n",
		       f->due, f->due == 1 ? "y" : "ies", f->due_owner);
	if (f->rp != NULL)
		printf("repair: %lu file%s salvaged into lost+found (%lu block%s "
		       "lost), %lu entr%s quarantined in %s/%s, %lu destroyed in "
		       "transient zones, %lu not repaired\n",
		       f->salvaged, f->salvaged == 1 ? "" : "s", f->lost_blocks,
		       f->lost_blocks == 1 ? "" : "s", f->quarantined,
		       f->quarantined == 1 ? "y" : "ies", cdir, QUARANTINE_DIR,
		       f->destroyed, f->unrepaired);
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "repair", no_argument, NULL, 'r' },
		{ "service-key", required_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keypath = kp_local_default_path(), *audit_log = NULL;
	struct tzone z[TRANSIENT_MAX_ZONES];
	struct fsck f = { 0 };
	char cdir[PATH_MAX], c2[PATH_MAX], mnt[PATH_MAX] = "";
	bool repair = false, may_write, audited = false;
	struct statvfs sv;
	unsigned done = 0;
	int c, fd, lockfd, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			f.json = true;
			break;
		case 'r':
			repair = true;
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
			printf("Usage: cmkfs fsck [--repair] [--json] [--service-key FILE]\n"
			       "                  [--ca-file FILE] [--audit-log FILE] CIPHERDIR\n\n"
			       "Check every name, header, block (both layers), symlink\n"
			       "and xattr of the volume; safe beside a live mount. Expired\n"
			       "files of transient zones are destroyed (only counted while\n"
			       "the volume is mounted). --repair (volume not mounted)\n"
			       "salvages damaged files into lost+found, every bad block\n"
			       "written as zeros, and moves what cannot be read to\n"
			       "CIPHERDIR/" QUARANTINE_DIR "/. Exit: 0 clean, 1 damage found\n"
			       "(repaired or not), 2 usage or --repair while mounted, 3 keys\n"
			       "unavailable. --json prints one JSON object per problem or\n"
			       "action and a summary line.\n");
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("fsck", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("fsck", "expected one CIPHERDIR");
	if (realpath(argv[optind], cdir) == NULL)
		return cli_fail("fsck", "%s: %s", argv[optind], strerror(errno));
	if (!mount_find(cdir, c2, sizeof(c2), mnt, sizeof(mnt)))
		mnt[0] = '\0';
	else if (strcmp(c2, cdir) != 0)
		return cli_usage_error("fsck", "%s is a mountpoint; give its "
					       "cipher directory %s", cdir, c2);
	if (repair && mnt[0] != '\0') {
		fprintf(stderr, "cmkfs fsck: %s is mounted on %s: --repair writes "
				"to the cipher directory and refuses to run beside "
				"a live mount; unmount it first (cmkfs umount %s)\n",
			cdir, mnt, mnt);
		return CMK_EXIT_USAGE;
	}
	if (http_global_init() < 0)
		return cli_fail("fsck", "libcurl failed to start");
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("fsck", "%s: %s", cdir, strerror(errno));
	/* Held to the end (closing fd drops it): a mount holds the lock
	 * shared for its life, so none can start meanwhile, and one in
	 * another mount namespace is seen too. */
	rc = repair ? volio_lock_offline(fd) : 0;
	if (rc < 0) {
		close(fd);
		fprintf(stderr, "cmkfs fsck: %s: %s\n", cdir,
			rc == -EBUSY ? "in use by a mount or an offline rekey: "
				       "--repair needs the volume to itself" :
				       strerror(-rc));
		return CMK_EXIT_USAGE;
	}
	rc = volio_unlock(fd, keypath, &f.kr);
	if (rc == -EBADMSG) {
		close(fd);
		f.json ? printf("{\"problem\":\"volume config tampered or malformed\"}\n") :
			 printf("DAMAGE %s/cmkfs.conf: volume config tampered or "
				"malformed\n", cdir);
		return CMK_EXIT_RUNTIME;
	}
	if (rc < 0) {
		close(fd);
		fprintf(stderr, "cmkfs fsck: %s: keys unavailable: %s\n", cdir,
			volio_strerror(rc));
		return CMK_EXIT_NOKEYS;
	}
	f.bs = keyring_volume(f.kr)->block_size;
	f.tty = !f.json && isatty(2);
	f.root = cdir;
	f.z = z;
	if (keyring_name_key(f.kr, f.key) < 0) {
		close(fd);
		keyring_free(f.kr);
		return CMK_EXIT_NOKEYS;
	}
	f.jfd = journal_open(fd, false);
	if (f.jfd < 0)
		f.jfd = -1;
	else if (repair &&
		 journal_recover(fd, f.jfd, f.kr, f.bs, &done) == 0)
		f.completed = done;
	if (repair && repair_open(fd, f.kr, &f.rp) < 0) {
		close(fd);
		secmem_wipe(f.key, sizeof(f.key));
		keyring_free(f.kr);
		return cli_fail("fsck", "out of memory");
	}
	/* Plain fsck holds the offline lock only while it expires, so that
	 * a mount can start during the (read-only) walk. */
	f.due_owner = "the mount's sweeper";
	may_write = mnt[0] == '\0';
	if (may_write && fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_RDONLY)) {
		may_write = false;
		f.due_owner = "a writable copy (read-only cipher directory)";
	}
	lockfd = may_write && !repair ?
			 open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (may_write && !repair &&
	    (lockfd < 0 || volio_lock_offline(lockfd) < 0)) {
		may_write = false;
		f.due_owner = "the mount or offline rekey holding the volume";
	}
	zones(&f, fd, may_write);
	if (lockfd >= 0)
		close(lockfd);	/* drops the flock */
	if (f.expired > 0) {
		char detail[64];

		start_audit(&f, audit_log, &audited);
		snprintf(detail, sizeof(detail), "%lu expired by fsck", f.expired);
		audit_event("transient_expire", NULL, "ok", detail);
	}
	{
		struct place root = { fd, "", false };

		if (walk(&f, fd, cdir, "", &root, 0) < 0 && f.rp != NULL)
			not_repaired(&f, cdir, "/", "the root's directory id "
					"cannot be replaced: restore it from "
					"a backup");
	}
	close(fd);
	if (f.jfd >= 0)
		close(f.jfd);
	if (f.tty)
		fprintf(stderr, "\r\033[K");
	summary(&f, cdir);
	if (f.rp == NULL) {	/* every check is audited, with its key */
		char detail[160];

		start_audit(&f, audit_log, &audited);
		snprintf(detail, sizeof(detail),
			 "%lu dirs, %lu files, %lu blocks checked, %lu problems",
			 f.dirs, f.files, f.blocks, f.problems);
		audit_event("fsck", keyring_volume(f.kr)->layer[1].key_id,
			    f.problems ? "error" : "ok", detail);
	} else {
		char detail[160];

		start_audit(&f, audit_log, &audited);
		snprintf(detail, sizeof(detail),
			 "%lu problems, %lu salvaged (%lu blocks lost), %lu "
			 "quarantined, %lu destroyed, %lu not repaired",
			 f.problems, f.salvaged, f.lost_blocks, f.quarantined,
			 f.destroyed, f.unrepaired);
		audit_event("fsck_repair", NULL, f.unrepaired ? "error" : "ok",
			    detail);
	}
	repair_close(f.rp);
	secmem_wipe(f.key, sizeof(f.key));
	keyring_free(f.kr);
	return f.problems ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
}
