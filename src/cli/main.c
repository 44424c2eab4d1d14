/* src/cli/main.c — subcommand table, global --help and --version
 * (wireguard-tools src/wg.c style). */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cmkfs/cfile.h"
#include "cmkfs/log.h"
#include "cmkfs/secmem.h"
#include "cmkfs/tclock.h"

static const struct subcmd subcmds[] = {
	{ "init", "create a volume in an empty cipher directory", cmd_init },
	{ "mount", "mount a volume (returns once it serves)", cmd_mount },
	{ "umount", "flush and unmount a mounted volume", cmd_umount },
	{ "status", "show a volume's keys, format and mount state", cmd_status },
	{ "cmk", "enable, rotate or disable the customer-managed key", cmd_cmk },
	{ "lock", "wipe a running mount's keys now (until unlock)", cmd_lock },
	{ "unlock", "prove the keys again and resume a locked mount",
	  cmd_unlock },
	{ "audit", "show a volume's key events from the audit log", cmd_audit },
	{ "transient", "add, list or remove transient zones (files expire)",
	  cmd_transient },
	{ "fsck", "check every name, header and block of a volume", cmd_fsck },
	{ "rekey", "new key-encryption keys, every file header re-wrapped",
	  cmd_rekey },
	{ "upgrade", "rewrite a format-1/2 volume in format 3, in place",
	  cmd_upgrade },
	{ "service-key", "create a service key, or move a volume to another",
	  cmd_service_key },
};

static void help(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs COMMAND [OPTIONS] ...\n"
		"       cmkfs CIPHERDIR MOUNTPOINT [-o OPTIONS]\n"
		"       cmkfs -h|--help|--version\n"
		"\n"
		"cmkfs is an encrypted FUSE filesystem: every block in the cipher\n"
		"directory is sealed twice (AES-256-GCM), under a service-side and\n"
		"a customer-side key.\n"
		"\n"
		"Commands:\n");
	for (size_t i = 0; i < CMK_ARRAY_LEN(subcmds); i++)
		fprintf(f, "  %-11s %s\n", subcmds[i].name, subcmds[i].summary);
	fprintf(f,
		"\n"
		"  -h, --help           this text\n"
		"  --version            the version and the on-disk formats\n"
		"\n"
		"'cmkfs CIPHERDIR MOUNTPOINT -o OPTIONS' is 'cmkfs mount' as the\n"
		"generic mount.fuse3 runs it, cmkfs's options inside -o as for\n"
		"'mount -t fuse.cmkfs' (service_key=FILE, grace=N, ...; see\n"
		"cmkfs-mount(1)).\n"
		"\n"
		"'cmkfs COMMAND --help' explains a command. Exit status\n"
		"(cmkfs(1) explains each): 0 success, 1 runtime error, 2 usage,\n"
		"3 keys unavailable (fsck, rekey), 4 expiry warning, 5 locked,\n"
		"6 stale key checks, 7 daemon dead, 8 service key missing or\n"
		"wrong, 9 Key Vault refused, 10 Key Vault unreachable (retry),\n"
		"11 bad mount point, 12 not a volume or damaged, 13 no space\n"
		"for a repair.\n");
}

int main(int argc, char **argv)
{
	const char *base = strrchr(argv[0], '/');

	/* Before anything lets OpenSSL allocate: keyed cipher contexts then
	 * come from its locked, undumpable secure heap (util/secmem.c). */
	if (secmem_ossl_install(SECMEM_OSSL_ARENA_LEN) < 0)
		log_warn("cannot hook OpenSSL's allocator: key schedules go "
			 "to ordinary memory");
	/* Read once, before any thread (include/cmkfs/cfile.h). */
	if (cfile_budget_from_env() < 0) {
		fprintf(stderr, "cmkfs: %s must be a number of seals from %d "
				"to %llu (a test hook: it can only lower the "
				"budget)\n",
			CFILE_TEST_BUDGET_ENV, CFILE_TEST_BUDGET_MIN,
			(unsigned long long)CFILE_SEAL_BUDGET);
		return CMK_EXIT_USAGE;
	}
	if (cfile_budget() != CFILE_SEAL_BUDGET)
		log_warn("test hook %s: data keys are re-keyed after %llu "
			 "seals", CFILE_TEST_BUDGET_ENV,
			 (unsigned long long)cfile_budget());
	/* Read once, before any thread (include/cmkfs/tclock.h). */
	if (tclock_from_env() < 0) {
		fprintf(stderr, "cmkfs: %s must be a number of seconds from 0 "
				"to %ld (a test hook: it can only move the "
				"clock ahead)\n",
			TCLOCK_SKEW_ENV, TCLOCK_SKEW_MAX);
		return CMK_EXIT_USAGE;
	}
	if (tclock_skew() != 0)
		log_warn("test hook %s: creation times and transient expiry "
			 "run %ld s ahead of the clock", TCLOCK_SKEW_ENV,
			 tclock_skew());
	base = base ? base + 1 : argv[0];
	/* mount -t fuse.cmkfs / fstab run us as mount.cmkfs (or
	 * mount.fuse.cmkfs): installed as links to this binary. */
	if (strncmp(base, "mount.", 6) == 0)
		return mount_helper_main(argc, argv);
	if (argc < 2) {
		help(stderr);
		return CMK_EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "help") == 0) {
		help(stdout);
		return CMK_EXIT_OK;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("cmkfs %s (on-disk format 3, reads 1 and 2)\n", PACKAGE_VERSION);
		return CMK_EXIT_OK;
	}
	for (size_t i = 0; i < CMK_ARRAY_LEN(subcmds); i++) {
		if (strcmp(argv[1], subcmds[i].name) == 0)
			return subcmds[i].run(argc - 1, argv + 1);
	}
	/* mount.fuse3 (mount -t fuse.cmkfs without our helper, or type
	 * fuse with cmkfs#CIPHERDIR) runs `cmkfs CIPHERDIR MOUNTPOINT -o
	 * OPTS`: the mount.cmkfs form under our own name. */
	if (mount_helper_is_generic(argc, argv))
		return mount_helper_generic(argc, argv);
	if (argv[1][0] != '-' && strchr(argv[1], '/') != NULL) {
		fprintf(stderr, "cmkfs: unknown command '%s': to mount a "
				"volume, 'cmkfs mount CIPHERDIR MOUNTPOINT' "
				"(see 'cmkfs --help')\n",
			argv[1]);
		return CMK_EXIT_USAGE;
	}
	fprintf(stderr, "cmkfs: unknown command '%s' (see 'cmkfs --help')\n",
		argv[1]);
	return CMK_EXIT_USAGE;
}
