/* src/cli/cmd_fsck.c — `cmkfs fsck [--json] CIPHERDIR` (issue #4): checks
 * the volume config (unlock = MAC verified), every directory id, every
 * encrypted name and long-name side file, every file header and every
 * block in both layers, every symlink target and user xattr. Reports each
 * problem with the backing path, the plaintext path where it can still be
 * derived, and the block number. Read-only: safe beside a live mount.
 * Exit: 0 clean, 1 damage found, 2 usage, 3 keys unavailable. */
#include "config.h"

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
#include <sys/xattr.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/file.h"
#include "cmkfs/http.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/names.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"


struct fsck {
	struct keyring *kr;
	uint8_t key[NAME_KEY_LEN];
	uint32_t bs;
	bool json, tty;
	unsigned long files, dirs, blocks, problems;
	const char *root;
};

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

static void check_file(struct fsck *f, int dfd, const char *bn,
		       const char *bpath, const char *ppath)
{
	struct cfile cf;
	uint64_t size, nb;
	uint8_t *buf;
	size_t got;
	int fd, rc;

	f->files++;
	fd = openat(dfd, bn, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		report(f, bpath, ppath, -1, strerror(errno));
		return;
	}
	cfile_init(&cf, f->kr, f->bs, fd);
	rc = cfile_load(&cf, fd);
	if (rc < 0) {
		report(f, bpath, ppath, -1,
		       rc == -EKEYREJECTED ? "header: wrong key or tampered" :
					     "header: malformed or truncated");
		goto out;
	}
	rc = cfile_size(&cf, fd, &size);
	if (rc < 0) {
		report(f, bpath, ppath, -1, "impossible size: cut short or extended");
		goto out;
	}
	if (cfile_check_tail(&cf, fd) < 0)
		report(f, bpath, ppath, size ? (long long)((size - 1) / f->bs) : 0,
		       "last block fails authentication (cut at a block boundary?)");
	buf = malloc(f->bs);
	nb = size ? (size - 1) / f->bs + 1 : 0;
	for (uint64_t b = 0; buf != NULL && b < nb; b++) {
		f->blocks++;
		if (cfile_read(&cf, fd, b * f->bs, f->bs, buf, &got) < 0)
			report(f, bpath, ppath, (long long)b,
			       "block fails authentication");
	}
	if (buf != NULL)
		secmem_wipe(buf, f->bs);
	free(buf);
out:
	cfile_destroy(&cf);
	close(fd);
}

static void check_xattrs(struct fsck *f, int dfd, const char *bn,
			 const char *bpath, const char *ppath)
{
	char path[PATH_MAX], list[8192], name[XATTR_NAME_MAX + 1];
	uint8_t val[65536], out[65536];
	ssize_t n, vl;

	snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", dfd, bn);
	n = llistxattr(path, list, sizeof(list));
	for (char *p = list; n > 0 && p < list + n; p += strlen(p) + 1) {
		if (strncmp(p, "user.", 5) != 0)
			continue;
		if (names_xattr_name_decrypt(f->key, p, name, sizeof(name)) < 0) {
			report(f, bpath, ppath, -1, "xattr name fails authentication");
			continue;
		}
		vl = lgetxattr(path, p, val, sizeof(val));
		if (vl < 0 || names_xattr_value_open(f->key, name, val, (size_t)vl,
						     out) < 0)
			report(f, bpath, ppath, -1, "xattr value fails authentication");
	}
}

static void walk(struct fsck *f, int dfd, const char *bdir, const char *pdir,
		 int depth)
{
	uint8_t dirid[DIRID_LEN];
	char bpath[PATH_MAX], ppath[PATH_MAX], plain[NAME_MAX + 1],
	     enc[ENCNAME_MAX], chk[ENCNAME_MAX], tgt[ENCLINK_MAX];
	struct dirent *de;
	size_t len = 0;
	unsigned long nnames = 0, nbad = 0;
	DIR *d;
	int fd;

	f->dirs++;
	progress(f);
	if (depth > 256) {
		report(f, bdir, pdir, -1, "directories nested too deep");
		return;
	}
	if (backing_read_small(dfd, DIRID_FILE, dirid, sizeof(dirid), &len) < 0 ||
	    len != DIRID_LEN) {
		report(f, bdir, pdir, -1, "directory id (cmkfs.dirid) missing or "
					  "damaged: no name in it can be read");
		return;
	}
	fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd < 0 ? NULL : fdopendir(fd);
	if (d == NULL) {
		report(f, bdir, pdir, -1, strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		const char *b = de->d_name, *e = b;
		struct stat st;
		bool named = false;

		if (strcmp(b, ".") == 0 || strcmp(b, "..") == 0)
			continue;
		snprintf(bpath, sizeof(bpath), "%s/%s", bdir, b);
		if (names_is_reserved(b) && !names_is_longname(b)) {
			size_t bl = strlen(b), sl = sizeof(LONGNAME_SUFFIX) - 1;

			if (strcmp(b, DIRID_FILE) == 0 ||
			    (depth == 0 && (strcmp(b, VOLUME_FILE) == 0 ||
					    strcmp(b, "cmkfs.transient") == 0)))
				continue;
			if (bl > sl && strcmp(b + bl - sl, LONGNAME_SUFFIX) == 0) {
				char owner[ENCNAME_MAX];

				snprintf(owner, sizeof(owner), "%.*s", (int)(bl - sl), b);
				if (faccessat(dfd, owner, F_OK, AT_SYMLINK_NOFOLLOW) < 0)
					report(f, bpath, NULL, -1,
					       "orphaned long-name side file");
				continue;
			}
			if (strncmp(b, TMP_PREFIX, sizeof(TMP_PREFIX) - 1) == 0)
				report(f, bpath, NULL, -1, "leftover temporary file "
							   "of an interrupted operation");
			else
				report(f, bpath, NULL, -1, "unknown reserved name");
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
		if (S_ISDIR(st.st_mode)) {
			int sub = openat(dfd, b, O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
							 O_CLOEXEC);

			if (sub >= 0) {
				walk(f, sub, bpath, named ? ppath : "?", depth + 1);
				close(sub);
			}
		} else if (S_ISREG(st.st_mode)) {
			check_file(f, dfd, b, bpath, named ? ppath : NULL);
			check_xattrs(f, dfd, b, bpath, named ? ppath : NULL);
		} else if (S_ISLNK(st.st_mode)) {
			ssize_t n = readlinkat(dfd, b, enc, sizeof(enc) - 1);

			if (n <= 0 || names_symlink_decrypt(f->key, enc, (size_t)n, tgt,
							    sizeof(tgt), &len) < 0)
				report(f, bpath, named ? ppath : NULL, -1,
				       "symlink target fails authentication");
		}
		progress(f);
	}
	closedir(d);
	/* Names are bound to the directory id: if none decrypts, the id is
	 * the likely culprit (it is not authenticated by itself). */
	if (nbad > 0 && nbad == nnames)
		report(f, bdir, pdir, -1, "no name decrypts: directory id "
					  "(cmkfs.dirid) damaged");
}

int cmd_fsck(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "service-key", required_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keypath = kp_local_default_path();
	struct fsck f = { 0 };
	char cdir[PATH_MAX];
	int c, fd, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			f.json = true;
			break;
		case 'k':
			keypath = optarg;
			break;
		case 'c':
			kp_akv_set_ca_file(optarg);
			break;
		case 'h':
			printf("Usage: cmkfs fsck [--json] [--service-key FILE] "
			       "[--ca-file FILE] CIPHERDIR\n\n"
			       "Check every name, header, block (both layers), symlink\n"
			       "and xattr of the volume; read-only, safe beside a live\n"
			       "mount. Exit: 0 clean, 1 damage found, 2 usage, 3 keys\n"
			       "unavailable. --json prints one JSON object per problem and\n"
			       "a summary line. (--repair: not yet.)\n");
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
	if (http_global_init() < 0)
		return cli_fail("fsck", "libcurl failed to start");
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("fsck", "%s: %s", cdir, strerror(errno));
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
	if (keyring_name_key(f.kr, f.key) < 0) {
		close(fd);
		return CMK_EXIT_NOKEYS;
	}
	walk(&f, fd, cdir, "", 0);
	close(fd);
	if (f.tty)
		fprintf(stderr, "\r\033[K");
	if (f.json)
		printf("{\"summary\":{\"dirs\":%lu,\"files\":%lu,\"blocks\":%lu,"
		       "\"problems\":%lu}}\n",
		       f.dirs, f.files, f.blocks, f.problems);
	else
		printf("fsck %s: %lu dirs, %lu files, %lu blocks checked, %lu "
		       "problem%s\n",
		       cdir, f.dirs, f.files, f.blocks, f.problems,
		       f.problems == 1 ? "" : "s");
	secmem_wipe(f.key, sizeof(f.key));
	keyring_free(f.kr);
	return f.problems ? CMK_EXIT_RUNTIME : CMK_EXIT_OK;
}
