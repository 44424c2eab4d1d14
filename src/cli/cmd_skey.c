/* src/cli/cmd_skey.c — `cmkfs service-key new FILE` and `cmkfs
 * service-key change --new-key FILE CIPHERDIR`: create a service key, or
 * move a volume to another one (maint/skey.c). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/http.h"
#include "cmkfs/skey.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs service-key new FILE\n"
		"       cmkfs service-key change (--new-key FILE | --new-key-fd N)\n"
		"                                [OPTIONS] CIPHERDIR\n"
		"\n"
		"new creates a service key: FILE gets 32 random bytes, mode 0600; an\n"
		"existing FILE is never overwritten.\n"
		"\n"
		"change puts the volume in CIPHERDIR under another service key (as\n"
		"gocryptfs -passwd does for a password): the current key must open\n"
		"the volume; KEK_S (and KEK_C, without a customer-managed key) is\n"
		"re-wrapped under the new key and cmkfs.conf replaced atomically, so\n"
		"after a crash or kill the volume opens with the old key or the new\n"
		"one. No file is rewritten. The volume must not be mounted. An old\n"
		"copy of cmkfs.conf still opens with the old key: destroy the old\n"
		"key, and if it may have leaked, run a full rekey (cmkfs-rekey(1)).\n"
		"\n"
		"  --new-key FILE       the new service key (see 'new')\n"
		"  --new-key-fd N       read the new key (32 bytes, then end of file)\n"
		"                       from descriptor N\n"
		KEYOPTS_HELP_SERVICE_KEY
		KEYOPTS_HELP_CA_FILE
		KEYOPTS_HELP_AUDIT_LOG
		"  -h, --help           this text\n"
		"\n"
		"Exit status: 0 done, 1 failed (mounted, busy, I/O), 2 usage, 8 a\n"
		"key is missing, unsafe or not this volume's, 9/10 the customer-\n"
		"managed key was refused / Key Vault unreachable, 12 damaged.\n");
}

static int exit_of(const struct skey_result *r)
{
	switch (r->err) {
	case -ENOKEY:
	case -ENOENT:
	case -EPERM:
	case -EBADF:
	case -EKEYREJECTED:
	case -EEXIST:
		return r->stage == SKEY_STAGE_READ ? CMK_EXIT_DAMAGED :
						     CMK_EXIT_KEY;
	case -EBADMSG:
		return r->stage == SKEY_STAGE_NEW_KEY ? CMK_EXIT_KEY :
							CMK_EXIT_DAMAGED;
	default:	/* Key Vault's classes: the one map (exitmap.c) */
		return cli_exit_code(r->err);
	}
}

static int key_new(const char *path)
{
	int rc = kp_local_create(path);

	if (rc == 0)
		return cli_fail("service-key", "%s: exists already (not "
					       "overwritten)",
				path);
	if (rc < 0)
		return cli_fail("service-key", "%s: %s", path, strerror(-rc));
	printf("Service key: %s (32 bytes, mode 0600; keep a copy offline)\n",
	       path);
	return CMK_EXIT_OK;
}

/* change: the options parsed; argv[optind] is CIPHERDIR. */
static int change(const char *cdir_arg, const char *newkey,
		  const struct keyopts *ko)
{
	char cdir[PATH_MAX];
	struct skey_result r;
	int rc;

	if (realpath(cdir_arg, cdir) == NULL)
		return cli_fail("service-key", "%s: %s", cdir_arg,
				strerror(errno));
	keyopts_apply(ko);
	if (http_global_init() < 0)
		return cli_fail("service-key", "libcurl failed to start");
	audit_open(keyopts_audit_log(ko));
	rc = skey_change(cdir, ko->service_key, newkey, &r);
	if (rc < 0) {
		fprintf(stderr, "cmkfs service-key: %s\n", r.msg);
		return exit_of(&r);
	}
	printf("%s: service key changed from %s to %s (%s re-wrapped)\n", cdir,
	       r.old_key_id, r.new_key_id,
	       r.layers == 2 ? "KEK_S and KEK_C" : "KEK_S");
	return CMK_EXIT_OK;
}

int cmd_service_key(int argc, char **argv)
{
	enum { OPT_NEW = 0x200, OPT_NEW_FD };
	static const struct option lopts[] = {
		{ "new-key", required_argument, NULL, OPT_NEW },
		{ "new-key-fd", required_argument, NULL, OPT_NEW_FD },
		KEYOPTS_OPT_SERVICE_KEY,
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *newkey = NULL, *action;
	bool other = false;	/* an option only change takes */
	struct keyopts ko;
	char newfd[24];
	int c;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMK_EXIT_USAGE : CMK_EXIT_OK;
	}
	action = argv[1];
	if (strcmp(action, "new") != 0 && strcmp(action, "change") != 0)
		return cli_usage_error("service-key",
				       "unknown action '%s' (new or change)",
				       action);
	keyopts_init(&ko);
	opterr = 0;
	optind = 1;
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case OPT_NEW:
			newkey = optarg;
			other = true;
			break;
		case OPT_NEW_FD:
			newkey = keyopts_fd_source(optarg, newfd, sizeof(newfd));
			other = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko)) {
				other = true;
				break;
			}
			return cli_usage_error("service-key",
					       "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (strcmp(action, "new") == 0) {
		if (other)
			return cli_usage_error("service-key",
					       "new takes only FILE");
		if (optind != argc - 1)
			return cli_usage_error("service-key",
					       "new takes one FILE");
		return key_new(argv[optind]);
	}
	if (newkey == NULL)
		return cli_usage_error("service-key", "change needs --new-key "
						      "FILE or --new-key-fd N");
	if (optind != argc - 1)
		return cli_usage_error("service-key", "expected one CIPHERDIR");
	return change(argv[optind], newkey, &ko);
}
