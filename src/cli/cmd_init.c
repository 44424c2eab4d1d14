/* src/cli/cmd_init.c — `cmkfs init [--service-key FILE] [--block-size N]
 * CIPHERDIR` (issue #2 contract). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/audit.h"
#include "cmkfs/http.h"
#include "cmkfs/kv.h"
#include "cmkfs/backing.h"
#include "cmkfs/dir.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/names.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs init [--service-key FILE] [--block-size BYTES] CIPHERDIR\n"
		"\n"
		"Create a cmkfs volume in CIPHERDIR (made if missing; must be empty).\n"
		"Both encryption layers get fresh random keys (KEK_S, KEK_C), wrapped\n"
		"under keys derived from the service key. The service key file is\n"
		"created (mode 0600, 32 random bytes) if it does not exist.\n"
		"Back it up: without it the volume cannot be read (doc/KEYS.md).\n"
		"\n"
		"  --service-key FILE   service key (default $CMKFS_SERVICE_KEY, else\n"
		"                       " SERVICE_KEY_DEFAULT ")\n"
		"  --block-size BYTES   plaintext block size, a power of two from 512\n"
		"                       to 1048576 (default 4096)\n"
		"  --cmk KEY_URI        protect the customer layer with this key in\n"
		"                       Azure Key Vault / Managed HSM (full URI with\n"
		"                       version); checked as 'cmkfs cmk enable' does\n"
		"  --force              skip the --cmk key checks\n"
		"  --ca-file FILE       extra CA for Key Vault TLS (or $CMKFS_CA_FILE)\n"
		"  --audit-log FILE     audit log (default $CMKFS_AUDIT_LOG)\n"
		"  -h, --help           this text\n");
}

static int dir_empty_or_new(const char *path)
{
	int fd, rc;

	if (mkdir(path, 0700) == 0)
		return 0;
	if (errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = faccessat(fd, VOLUME_FILE, F_OK, 0) == 0 ? -EEXIST : 0;
	if (rc == 0) {
		rc = dir_is_empty(fd);
		rc = rc == 1 ? 0 : rc == 0 ? -ENOTEMPTY : rc;
	}
	close(fd);
	return rc;
}

int cmd_init(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "service-key", required_argument, NULL, 'k' },
		{ "block-size", required_argument, NULL, 'b' },
		{ "cmk", required_argument, NULL, 'C' },
		{ "force", no_argument, NULL, 'F' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keypath = kp_local_default_path(), *dir, *cmk = NULL,
		   *audit_log = NULL, *why;
	bool force = false;
	struct keyprov *prov[2] = { NULL, NULL };
	struct keyring *kr = NULL;
	uint8_t *skey = NULL, dirid[DIRID_LEN], volid[VOLUME_ID_LEN];
	unsigned long long bs = BLOCK_SIZE_DEFAULT;
	struct volume v;
	int c, rc, fd = -1, created;

	opterr = 0;	/* our own one-line message below */
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'k':
			keypath = optarg;
			break;
		case 'b':
			errno = 0;
			bs = strtoull(optarg, &end, 10);
			if (errno || *end || !volume_block_size_ok(bs))
				return cli_usage_error(
					"init",
					"--block-size must be a power of two "
					"from 512 to 1048576");
			break;
		case 'C':
			cmk = optarg;
			break;
		case 'F':
			force = true;
			break;
		case 'c':
			kp_akv_set_ca_file(optarg);
			break;
		case 'a':
			audit_log = optarg;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("init", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("init", "expected one CIPHERDIR");
	dir = argv[optind];
	if (cmk != NULL) {
		struct kv_uri u;

		if (kv_parse_uri(cmk, &u) < 0)
			return cli_usage_error(
				"init", "--cmk must be https://HOST/keys/NAME/VERSION");
		if (http_global_init() < 0)
			return cli_fail("init", "libcurl failed to start");
		audit_open(audit_log);
	}
	rc = dir_empty_or_new(dir);
	if (rc == -EEXIST)
		return cli_fail("init", "%s: already holds a cmkfs volume", dir);
	if (rc == -ENOTEMPTY)
		return cli_fail("init", "%s: directory is not empty", dir);
	if (rc < 0)
		return cli_fail("init", "%s: %s", dir, strerror(-rc));
	created = kp_local_create(keypath);
	if (created < 0)
		return cli_fail("init", "cannot create service key %s: %s",
				keypath, strerror(-created));
	rc = kp_local_load(keypath, &skey);
	if (rc < 0)
		return cli_fail("init", "%s: %s", keypath,
				volio_strerror(rc == -ENOENT ? -ENOKEY : rc));
	rc = rand_bytes(volid, sizeof(volid));
	for (int i = 0; i < 2 && rc == 0; i++) {
		if (i == 1 && cmk != NULL)
			rc = kp_akv_open(cmk, &prov[i]);
		else
			rc = kp_local_open(skey, volid, i, &prov[i]);
	}
	if (rc < 0 && cmk != NULL) {
		rc = cli_fail("init", "%s: %s: %s", cmk, volio_strerror(rc),
			      kv_last_error());
		goto out;
	}
	if (rc == 0 && cmk != NULL && cli_check_cmk(prov[1], &why) < 0) {
		if (!force) {
			rc = cli_fail("init", "%s: refused: %s (use --force to "
					      "override)",
				      cmk, why);
			goto out;
		}
		fprintf(stderr, "cmkfs init: warning: %s (forced)\n", why);
	}
	if (rc == 0)
		rc = keyring_create(prov, (uint32_t)bs, volid, &v, &kr);
	if (rc < 0) {
		rc = cli_fail("init", "key setup failed: %s", strerror(-rc));
		goto out;
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || rand_bytes(dirid, sizeof(dirid)) < 0) {
		rc = cli_fail("init", "%s: %s", dir, strerror(errno));
		goto out;
	}
	/* Root directory id first, config last: a volume exists once its
	 * config does. */
	rc = backing_replace(fd, DIRID_FILE, dirid, sizeof(dirid), 0400);
	if (rc == 0)
		rc = volio_write(fd, &v);
	if (rc < 0) {
		rc = cli_fail("init", "%s: writing the volume: %s", dir,
			      strerror(-rc));
		goto out;
	}
	if (cmk != NULL) {
		char id[VOLUME_ID_HEX_LEN];

		volume_id_hex(&v, id);
		audit_set_volume(id);
		audit_event("wrap", cmk, "ok", "KEK_C (init)");
		audit_event("cmk_enable", cmk, "ok", "init");
		printf("Customer layer protected by %s\n", cmk);
	}
	printf("Created cmkfs volume in %s (block size %llu)\n", dir, bs);
	printf("Service key: %s%s\n", keypath,
	       created ? " (new: back it up, the volume is unreadable "
			 "without it)" :
			 "");
	rc = CMK_EXIT_OK;
out:
	if (fd >= 0)
		close(fd);
	keyring_free(kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	secmem_free(skey, SERVICE_KEY_LEN);
	return rc;
}
