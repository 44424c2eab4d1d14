/* src/cli/mount_helper.c — `mount.cmkfs` / `mount.fuse.cmkfs`: the helper
 * mount(8) runs for `mount -t fuse.cmkfs CIPHERDIR MOUNTPOINT -o OPTS` and
 * for fstab lines (mount(8) "External helpers": spec dir [-sfnv] [-o opts]),
 * and `cmkfs CIPHERDIR MOUNTPOINT [-o OPTS]`, the form the generic
 * mount.fuse3 runs when it finds no mount.fuse.cmkfs (with the cmkfs first
 * on its PATH). cmkfs's own options travel inside -o (service_key=FILE,
 * key_check_interval=N, grace=N, confirm_delay=N, expiry_margin=DAYS,
 * ca_file=FILE, audit_log=FILE, noxattr, writeback); fstab-only options are dropped;
 * everything else goes to FUSE. Then it runs `cmkfs mount`, which returns
 * once the mount serves. `make install` links the helper names to the
 * installed cmkfs, in $(sbindir) and in /sbin, where mount(8) looks
 * (configure --with-mount-helper-dir). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "keyopts.h"

/* mount(8) and systemd options that are not for FUSE. */
static int fstab_only(const char *o)
{
	static const char *const drop[] = { "defaults", "auto", "noauto",
					    "user", "nouser", "users", "nofail",
					    "_netdev", "rw", "owner", "group",
					    "comment" };

	for (size_t i = 0; i < CMK_ARRAY_LEN(drop); i++) {
		size_t n = strlen(drop[i]);

		if (strncmp(o, drop[i], n) == 0 && (o[n] == '\0' || o[n] == '='))
			return 1;
	}
	return strncmp(o, "x-", 2) == 0;	/* x-systemd.*, x-gvfs-* */
}

/* name: how errors call us; generic: the mount.fuse3 form, which takes
 * no flag but -o (there -f would read as FUSE's "foreground"). */
static int helper_run(const char *name, bool generic, int argc, char **argv)
{
	static const struct {
		const char *opt, *flag;
	} ours[] = {
		{ "key_check_interval=", "--key-check-interval" },
		{ "grace=", "--grace" },
		{ "confirm_delay=", "--confirm-delay" },
		{ "expiry_margin=", "--expiry-margin" },
	};
	char *args[64], fuse_opts[4096] = "", *opts = NULL, *copy = NULL;
	const char *spec = NULL, *dir = NULL;
	int n = 0, fake = 0, rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
			opts = argv[++i];
		} else if (strncmp(argv[i], "-o", 2) == 0 && argv[i][2]) {
			opts = argv[i] + 2;
		} else if (generic && argv[i][0] == '-' && argv[i][1]) {
			return cli_usage_error("mount", "%s: '%s': only -o "
					       "OPTIONS is taken in this form; "
					       "use 'cmkfs mount' for others",
					       name, argv[i]);
		} else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
			i++;	/* fuse.cmkfs: we know */
		} else if (strcmp(argv[i], "-N") == 0 && i + 1 < argc) {
			return cli_fail(name, "-N (namespaces) is not "
					      "supported");
		} else if (argv[i][0] == '-') {
			fake |= strchr(argv[i], 'f') != NULL;	/* -s -n -v: fine */
		} else if (spec == NULL) {
			spec = argv[i];
		} else if (dir == NULL) {
			dir = argv[i];
		} else {
			return cli_usage_error("mount", "%s: extra argument "
							"'%s'",
					       name, argv[i]);
		}
	}
	if (spec == NULL || dir == NULL)
		return cli_usage_error("mount", "usage: %s CIPHERDIR "
						"MOUNTPOINT [-o OPTIONS]",
				       name);
	args[n++] = "cmkfs";
	args[n++] = "mount";
	if (opts != NULL) {
		char *save = NULL;

		copy = strdup(opts);
		if (copy == NULL)
			return cli_fail(name, "out of memory");
		for (char *o = strtok_r(copy, ",", &save); o != NULL;
		     o = strtok_r(NULL, ",", &save)) {
			const char *flag = NULL, *val = NULL;

			for (size_t k = 0; k < CMK_ARRAY_LEN(ours); k++) {
				if (strncmp(o, ours[k].opt,
					    strlen(ours[k].opt)) == 0) {
					flag = ours[k].flag;
					val = o + strlen(ours[k].opt);
					break;
				}
			}
			if (flag == NULL)
				(void)keyopts_fstab(o, &flag, &val);
			if (strcmp(o, "noxattr") == 0 ||
			    strcmp(o, "writeback") == 0) {
				if (n + 1 >= (int)CMK_ARRAY_LEN(args) - 4)
					break;
				args[n++] = o[0] == 'n' ? "--no-xattr" :
							  "--writeback";
			} else if (flag != NULL) {
				if (n + 2 >= (int)CMK_ARRAY_LEN(args) - 4)
					break;
				args[n++] = (char *)flag;
				args[n++] = (char *)val;
			} else if (!fstab_only(o)) {
				size_t l = strlen(fuse_opts);

				snprintf(fuse_opts + l, sizeof(fuse_opts) - l,
					 "%s%s", l ? "," : "", o);
			}
		}
		/* copy stays alive: args point into it until cmd_mount returns */
	}
	if (fuse_opts[0] != '\0') {
		args[n++] = "-o";
		args[n++] = fuse_opts;
	}
	args[n++] = (char *)spec;
	args[n++] = (char *)dir;
	args[n] = NULL;
	rc = CMK_EXIT_OK;	/* mount -f: do everything but mount */
	if (!fake) {
		optind = 1;
		rc = cmd_mount(n - 1, args + 1);
	}
	free(copy);
	return rc;
}

int mount_helper_main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');

	return helper_run(base ? base + 1 : argv[0], false, argc, argv);
}

static bool is_dir(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

bool mount_helper_is_generic(int argc, char **argv)
{
	return argc >= 3 && argv[1][0] != '-' && argv[2][0] != '-' &&
	       is_dir(argv[1]) && is_dir(argv[2]);
}

int mount_helper_generic(int argc, char **argv)
{
	return helper_run("cmkfs", true, argc, argv);
}
