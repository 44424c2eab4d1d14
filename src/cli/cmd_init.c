/* src/cli/cmd_init.c — `cmkfs init [--service-key FILE] [--block-size N]
 * [--cmk KEY_URI] CIPHERDIR`: parse, run the engine (maint/create.c),
 * print. */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/cmk.h"
#include "cmkfs/create.h"
#include "cmkfs/http.h"
#include "cmkfs/kv.h"
#include "cmkfs/volume.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs init [OPTIONS] CIPHERDIR\n"
		"\n"
		"Create a cmkfs volume in CIPHERDIR (made if missing; must be empty).\n"
		"Both encryption layers get fresh random keys (KEK_S, KEK_C), wrapped\n"
		"under keys derived from the service key. The service key file is\n"
		"created (mode 0600, 32 random bytes) if it does not exist.\n"
		"Back it up: without it the volume cannot be read (doc/KEYS.md).\n"
		"\n"
		KEYOPTS_HELP_SERVICE_KEY
		"  --block-size BYTES   plaintext block size, a power of two from 512\n"
		"                       to 1048576 (default 4096)\n"
		"  --cmk KEY_URI        protect the customer layer with this key in\n"
		"                       Azure Key Vault / Managed HSM: without a\n"
		"                       version the volume follows the key's current\n"
		"                       version, with one it stays pinned to it;\n"
		"                       checked as 'cmkfs cmk enable' does\n"
		"  --force              skip the --cmk key checks\n"
		"  --expiry-margin DAYS refuse a --cmk key that expires within DAYS\n"
		"                       (default 7; 0: only an expired one)\n"
		KEYOPTS_HELP_CA_FILE
		"  --audit-log FILE     audit log (default $CMKFS_AUDIT_LOG)\n"
		"  -h, --help           this text\n");
}

static void warn_forced(const char *why, void *arg)
{
	(void)arg;
	fprintf(stderr, "cmkfs init: warning: %s (forced)\n", why);
}

/* The engine stopped (create.h); it removed what it had made. */
static int init_failed(const struct create_opts *o,
		       const struct create_result *r)
{
	int ex;

	switch (r->stage) {
	case CREATE_STAGE_SERVICE_KEY:
		ex = cli_key_fault("init", o->service_key);
		if (ex != CMK_EXIT_OK)
			return ex;
		fprintf(stderr, "cmkfs init: %s\n", r->msg);
		return CMK_EXIT_KEY;
	case CREATE_STAGE_OPEN_KEY:
		fprintf(stderr, "cmkfs init: %s\n", r->msg);
		ex = cli_exit_code(r->err);
		return ex == CMK_EXIT_DENIED || ex == CMK_EXIT_UNREACHABLE ?
			       ex : CMK_EXIT_RUNTIME;
	default:
		return cli_fail("init", "%s", r->msg);
	}
}

int cmd_init(int argc, char **argv)
{
	static const struct option lopts[] = {
		KEYOPTS_OPT_SERVICE_KEY,
		{ "block-size", required_argument, NULL, 'b' },
		{ "cmk", required_argument, NULL, 'C' },
		{ "force", no_argument, NULL, 'F' },
		{ "expiry-margin", required_argument, NULL, 'E' },
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct create_opts o = {
		.block_size = BLOCK_SIZE_DEFAULT,
		.warn = warn_forced,
		.expiry_margin_days = CMK_EXPIRY_MARGIN_DEFAULT,
	};
	struct create_result r;
	struct keyopts ko;
	char kpath[PATH_MAX];
	const char *dir;
	int c, rc;

	keyopts_init(&ko);
	opterr = 0;	/* our own one-line message below */
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		unsigned long long bs;
		char *end;

		switch (c) {
		case 'b':
			errno = 0;
			bs = strtoull(optarg, &end, 10);
			if (errno || *end || !volume_block_size_ok(bs))
				return cli_usage_error(
					"init",
					"--block-size must be a power of two "
					"from 512 to 1048576");
			o.block_size = (uint32_t)bs;
			break;
		case 'C':
			o.cmk_uri = optarg;
			break;
		case 'F':
			o.force = true;
			break;
		case 'E':
			if (!keyopts_margin(optarg, &o.expiry_margin_days))
				return cli_usage_error("init", "--expiry-margin "
						       "takes days (0..365)");
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("init", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("init", "expected one CIPHERDIR");
	dir = argv[optind];
	/* A symlinked key is followed as mount follows it (cli_key_path). */
	rc = cli_key_path("init", ko.service_key, kpath, sizeof(kpath));
	if (rc != CMK_EXIT_OK)
		return rc;
	o.service_key = kpath;
	keyopts_apply(&ko);
	if (o.cmk_uri != NULL) {
		struct kv_uri u;

		if (kv_parse_uri(o.cmk_uri, &u) < 0)
			return cli_usage_error(
				"init", "--cmk must be https://HOST/keys/NAME[/VERSION]");
		if (http_global_init() < 0)
			return cli_fail("init", "libcurl failed to start");
		audit_open(keyopts_audit_log(&ko));
	}
	rc = create_volume(dir, &o, &r);
	if (rc < 0)
		return init_failed(&o, &r);
	if (o.cmk_uri != NULL)
		printf("Customer layer protected by %s\n", o.cmk_uri);
	printf("Created cmkfs volume in %s (block size %llu)\n", dir,
	       (unsigned long long)r.block_size);
	printf("Service key: %s%s\n", o.service_key,
	       r.key_created ? " (new: back it up, the volume is unreadable "
			       "without it)" :
			       "");
	return CMK_EXIT_OK;
}
