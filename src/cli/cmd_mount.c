/* src/cli/cmd_mount.c — `cmkfs mount [-f] [-o OPTS] [--service-key FILE]
 * CIPHERDIR MOUNTPOINT`. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/log.h"
#include "cmkfs/mount.h"
#include "cmkfs/ctl.h"
#include "cmkfs/runtime.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs mount [OPTIONS] CIPHERDIR MOUNTPOINT\n"
		"\n"
		"Mount the volume in CIPHERDIR on MOUNTPOINT. Returns 0 only once the\n"
		"mount is serving; the daemon then runs in the background and logs\n"
		"to syslog.\n"
		"\n"
		"  -f, --foreground     stay in the foreground, log to stderr\n"
		"  -d, --debug          debug logging (implies -f); never logs keys\n"
		"  -o OPTIONS           FUSE mount options, comma separated, e.g.\n"
		"                       allow_other, ro, default_permissions (always on)\n"
		KEYOPTS_HELP_SERVICE_KEY
		"  --key-check-interval SECONDS\n"
		"                       prove access to the keys this often (default\n"
		"                       60, each wait +-10 %% at random); a denial\n"
		"                       (access revoked, key disabled, deleted or\n"
		"                       expired) that a second check confirms\n"
		"                       wipes the keys\n"
		"  --confirm-delay SECONDS\n"
		"                       wait before that second check (1..60,\n"
		"                       default 5)\n"
		"  --grace SECONDS      how long to serve on through transient Key\n"
		"                       Vault faults before locking (default 3600)\n"
		"  --expiry-margin DAYS refuse to mount if the customer-managed key\n"
		"                       expires within DAYS (default 0: only an\n"
		"                       expired key is refused, as a key check\n"
		"                       would lock on it); warnings come 30, 7 and\n"
		"                       1 days ahead in the log, the audit log and\n"
		"                       'cmkfs status' (fstab: expiry_margin=DAYS)\n"
		KEYOPTS_HELP_CA_FILE
		KEYOPTS_HELP_AUDIT_LOG
		"  --no-xattr           no extended attributes (ENOTSUP): the kernel\n"
		"                       then asks for none, one request less per\n"
		"                       file written and two less per entry of\n"
		"                       'ls -l'\n"
		"                       (fstab: noxattr)\n"
		"  --writeback          the kernel's writeback cache: writes are\n"
		"                       gathered in its page cache and sent in\n"
		"                       large batches; acknowledged writes not yet\n"
		"                       fsynced or closed live only in the kernel\n"
		"                       until then (fstab: writeback)\n"
		"  -h, --help           this text\n"
		"\n"
		"MOUNTPOINT must be an empty directory outside CIPHERDIR (-o nonempty\n"
		"allows a non-empty one: its files are hidden while mounted), and\n"
		"must not contain CIPHERDIR. One mount per volume: a second mount of\n"
		"the same CIPHERDIR is refused.\n"
		"\n"
		"A locked mount answers everything with EKEYREVOKED ('Key has been\n"
		"revoked') and resumes by itself once the keys can be unwrapped again.\n"
		"Unmount with 'cmkfs umount MOUNTPOINT'.\n");
}

/* Remove option `name` from the comma-separated list opts (in place);
 * true if it was there. */
static bool take_opt(char *opts, const char *name)
{
	size_t nl = strlen(name);
	bool found = false;
	char *p = opts;

	while (opts != NULL && *p != '\0') {
		char *end = strchr(p, ',');
		size_t l = end != NULL ? (size_t)(end - p) : strlen(p);

		if (l == nl && strncmp(p, name, nl) == 0) {
			found = true;
			memmove(p, end != NULL ? end + 1 : p + l,
				strlen(end != NULL ? end + 1 : p + l) + 1);
			continue;
		}
		p += l;
		if (*p == ',')
			p++;
	}
	if (opts != NULL) {
		size_t n = strlen(opts);

		if (n > 0 && opts[n - 1] == ',')
			opts[n - 1] = '\0';
	}
	return found;
}

/* a == b or a below b (both absolute, resolved) */
static bool path_within(const char *a, const char *b)
{
	size_t n = strlen(b);

	if (strcmp(b, "/") == 0)
		return true;
	return strncmp(a, b, n) == 0 && (a[n] == '\0' || a[n] == '/');
}

/* 1: dir has an entry besides . and ..; 0: empty; -errno. */
static int dir_nonempty(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int rc = 0;

	if (d == NULL)
		return -errno;
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			rc = 1;
			break;
		}
	closedir(d);
	return rc;
}

/* Where a refused mount is audited: the volume's own log, so that
 * `cmkfs audit CIPHERDIR` shows it. Set once the options are parsed. */
static const char *refusal_log;

/* "cmkfs mount: msg" on stderr, audited as a refused mount of the volume
 * in cdir (when it is one); returns CMK_EXIT_MOUNTPOINT. */
static int mountpoint_fail(const char *cdir, const char *fmt, ...)
	CMK_PRINTF(2, 3);
static int mountpoint_fail(const char *cdir, const char *fmt, ...)
{
	char msg[3 * PATH_MAX], id[VOLUME_ID_HEX_LEN];
	struct volume v;
	va_list ap;
	int fd;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "cmkfs mount: %s\n", msg);
	fd = cdir != NULL ? open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (fd >= 0 && volio_read(fd, &v) == 0) {
		volume_id_hex(&v, id);
		audit_open(refusal_log);
		audit_set_volume(id);
		audit_event("mount", NULL, "refused", msg);
	}
	if (fd >= 0)
		close(fd);
	return CMK_EXIT_MOUNTPOINT;
}

/* Refuse a mount point whose use would hide or leak data: plaintext
 * written into a bare mount point after a failed mount, a volume or key
 * file hidden under the mount. Returns an exit code. */
static int check_mountpoint(const char *cdir, const char *mnt, bool nonempty)
{
	struct stat st;
	int rc;

	if (stat(mnt, &st) < 0)
		return mountpoint_fail(cdir, "mount point %s: %s", mnt,
				       strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return mountpoint_fail(cdir,
				       "mount point %s: not a directory (a mount "
				       "point is an empty directory: mkdir one "
				       "outside %s)",
				       mnt, cdir);
	if (path_within(mnt, cdir))
		return mountpoint_fail(cdir,
				       "mount point %s: inside the cipher "
				       "directory %s (the mount would hide part "
				       "of its own volume): choose a directory "
				       "outside it",
				       mnt, cdir);
	if (path_within(cdir, mnt))
		return mountpoint_fail(cdir,
				       "mount point %s: contains the cipher "
				       "directory %s (the mount would hide it, "
				       "and backups of that path would read "
				       "plaintext): choose a directory outside it",
				       mnt, cdir);
	rc = dir_nonempty(mnt);
	if (rc < 0)
		return mountpoint_fail(cdir, "mount point %s: %s", mnt,
				       strerror(-rc));
	if (rc > 0 && !nonempty)
		return mountpoint_fail(cdir,
				       "mount point %s: not empty (its files "
				       "would be hidden under the mount, and "
				       "whatever is written there if the mount "
				       "fails stays plaintext): use an empty "
				       "directory, or -o nonempty",
				       mnt);
	return CMK_EXIT_OK;
}

/* The daemon could not unlock: the CLI's words and exit code. */
static int unlock_failed(const struct mount_opts *o, int rc,
			 const char *detail)
{
	return cli_unlock_fail("mount", o->cipherdir, o->service_key, rc,
			       detail);
}

int cmd_mount(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		KEYOPTS_OPT_SERVICE_KEY,
		{ "key-check-interval", required_argument, NULL, 'i' },
		{ "grace", required_argument, NULL, 'g' },
		{ "confirm-delay", required_argument, NULL, 'C' },
		{ "expiry-margin", required_argument, NULL, 'E' },
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "no-xattr", no_argument, NULL, 'x' },
		{ "writeback", no_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct mount_opts o = { .key_check_interval_sec = 60,
				.grace_sec = 3600 };
	struct keyopts ko;
	char cdir[PATH_MAX], mnt[PATH_MAX], kpath[PATH_MAX], capath[PATH_MAX];
	char *opts = NULL;
	int c, rc;

	keyopts_init(&ko);
	opterr = 0;	/* our own one-line message below */
	while ((c = getopt_long(argc, argv, "+fdo:h", lopts, NULL)) != -1) {
		switch (c) {
		case 'f':
			o.foreground = true;
			break;
		case 'd':
			o.debug = o.foreground = true;
			break;
		case 'o':
			if (opts == NULL) {
				opts = strdup(optarg);
			} else {
				char *n = malloc(strlen(opts) + strlen(optarg) + 2);

				if (n != NULL)
					snprintf(n, strlen(opts) + strlen(optarg) + 2,
						 "%s,%s", opts, optarg);
				free(opts);
				opts = n;
			}
			if (opts == NULL)
				return cli_fail("mount", "out of memory");
			break;
		case 'C': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 60) {
				free(opts);
				return cli_usage_error(
					"mount",
					"--confirm-delay takes seconds (1..60)");
			}
			o.confirm_sec = (int)v;
			break;
		}
		case 'i':
		case 'g': {
			char *end;
			long v;

			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < (c == 'i') ||
			    v > 86400 * 30) {
				free(opts);
				return cli_usage_error(
					"mount", "--%s takes seconds (%s..2592000)",
					c == 'i' ? "key-check-interval" : "grace",
					c == 'i' ? "1" : "0");
			}
			if (c == 'i')
				o.key_check_interval_sec = (int)v;
			else
				o.grace_sec = (int)v;
			break;
		}
		case 'E':
			if (!keyopts_margin(optarg, &o.expiry_margin_days)) {
				free(opts);
				return cli_usage_error(
					"mount", "--expiry-margin takes days "
						 "(0..365)");
			}
			break;
		case 'x':
			o.no_xattr = true;
			break;
		case 'W':
			o.writeback = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			free(opts);
			return cli_usage_error("mount", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 2) {
		free(opts);
		return cli_usage_error("mount",
				       "expected CIPHERDIR and MOUNTPOINT");
	}
	refusal_log = keyopts_audit_log(&ko);
	if (realpath(argv[optind], cdir) == NULL) {
		rc = -errno;
		free(opts);
		return cli_open_volume_fail("mount", argv[optind], rc);
	}
	if (realpath(argv[optind + 1], mnt) == NULL) {
		rc = errno;
		free(opts);
		return mountpoint_fail(cdir, "mount point %s: %s%s", argv[optind + 1],
				       strerror(rc), rc == ENOENT ?
				       " (create an empty directory for it)" : "");
	}
	{
		char c2[PATH_MAX], m2[PATH_MAX];

		pid_t dead;

		if (runtime_find(mnt, c2, sizeof(c2), m2, sizeof(m2)) &&
		    strcmp(m2, mnt) == 0) {
			free(opts);
			if (ctl_gone(mnt, &dead))
				return mountpoint_fail(cdir, "%s: already a cmkfs "
						       "mount (of %s), but its "
						       "daemon is gone (pid %ld): "
						       "run 'cmkfs umount %s' "
						       "first",
						       mnt, c2, (long)dead, mnt);
			return mountpoint_fail(cdir, "%s: already a cmkfs mount "
					       "(of %s; 'cmkfs umount %s' first)",
					       mnt, c2, mnt);
		}
		/* Files a killed daemon left for this mountpoint (after a
		 * plain 'fusermount3 -u'). */
		(void)ctl_stale_cleanup(mnt);
		if (runtime_find(cdir, c2, sizeof(c2), m2, sizeof(m2)) &&
		    strcmp(c2, cdir) == 0) {
			free(opts);
			return mountpoint_fail(cdir, "%s: already mounted on %s "
					       "(one mount per volume; 'cmkfs "
					       "umount %s' first)",
					       cdir, m2, m2);
		}
	}
	rc = check_mountpoint(cdir, mnt, take_opt(opts, "nonempty"));
	if (rc != CMK_EXIT_OK) {
		free(opts);
		return rc;
	}
	if (opts != NULL && opts[0] == '\0') {
		free(opts);
		opts = NULL;
	}
	o.service_key = ko.service_key;
	o.ca_file = ko.ca_file;
	o.audit_log = ko.audit_log;
	/* A symlinked key: followed as init and every command follow it
	 * (cli_key_path), else refused here; fd:N passes as it is. */
	rc = cli_key_path("mount", o.service_key, kpath, sizeof(kpath));
	if (rc != CMK_EXIT_OK) {
		free(opts);
		return rc;
	}
	o.service_key = kpath;
	/* The daemon chdir()s to /: a relative key path must be made
	 * absolute now. A missing file is reported by the daemon with it. */
	if (!kp_local_is_fd(kpath) && kpath[0] != '/' &&
	    getcwd(capath, sizeof(capath)) != NULL &&
	    strlen(capath) + strlen(kpath) + 2 <= sizeof(kpath)) {
		size_t cl = strlen(capath), kl = strlen(kpath);

		memmove(kpath + cl + 1, kpath, kl + 1);
		memcpy(kpath, capath, cl);
		kpath[cl] = '/';
	}
	if (o.ca_file != NULL && realpath(o.ca_file, capath) != NULL)
		o.ca_file = capath;
	if (o.audit_log != NULL && o.audit_log[0] != '/') {
		free(opts);
		return cli_usage_error("mount", "--audit-log needs an absolute path");
	}
	o.cipherdir = cdir;
	o.mountpoint = mnt;
	o.fuse_opts = opts;
	o.unlock_failed = unlock_failed;
	log_set_level(o.debug ? LOG_LVL_DEBUG : LOG_LVL_WARN);
	rc = mount_run(&o);
	free(opts);
	return rc;
}
