/* src/cli/cmd_cmk.c — `cmkfs cmk enable|rotate|disable` (issue #3).
 * Only KEK_C's wrapping changes: no file is rewritten. The new config is
 * verified (unwrapped again and MAC-checked) before it atomically replaces
 * the old one, so the volume opens with the old key or the new one at
 * every instant. A live mount adopts it through its control socket. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/audit.h"
#include "cmkfs/ctl.h"
#include "cmkfs/http.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/mount.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs cmk enable  --key KEY_URI [--force] [OPTIONS] CIPHERDIR\n"
		"       cmkfs cmk rotate  --key KEY_URI [--force] [OPTIONS] CIPHERDIR\n"
		"       cmkfs cmk disable [OPTIONS] CIPHERDIR\n"
		"\n"
		"Put the customer layer's key (KEK_C) under a customer-managed key in\n"
		"Azure Key Vault or Managed HSM (enable), move it to another key or\n"
		"version (rotate; the old one must still be reachable), or back under\n"
		"the service key (disable: do this before revoking the CMK, so the\n"
		"data stays usable). No file is rewritten. Works on a mounted volume:\n"
		"the running daemon adopts the change without a remount.\n"
		"\n"
		"KEY_URI is the key's full URI with its version, e.g.\n"
		"  https://NAME.vault.azure.net/keys/KEY/VERSION\n"
		"  https://NAME.managedhsm.azure.net/keys/KEY/VERSION\n"
		"Before enabling or rotating, the key must be enabled, not expired,\n"
		"allow wrapKey and unwrapKey, and its vault must have soft delete and\n"
		"purge protection (recoveryLevel); --force skips these checks.\n"
		"\n"
		"  --service-key FILE   service key (default $CMKFS_SERVICE_KEY, else\n"
		"                       " SERVICE_KEY_DEFAULT ")\n"
		"  --ca-file FILE       extra CA for Key Vault TLS (or $CMKFS_CA_FILE)\n"
		"  --audit-log FILE     audit log (default $CMKFS_AUDIT_LOG, else\n"
		"                       " AUDIT_DEFAULT_PATH ")\n"
		"Azure credentials come from the Azure SDK environment variables\n"
		"(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...; see\n"
		"doc/KEYS.md). Exit status: 0 done, 1 refused or failed, 2 usage.\n");
}

/* Pre-flight checks on a candidate CMK (issue #3); *why gets the reason. */
int cli_check_cmk(const struct keyprov *p, const char **why)
{
	const struct kv_key *k = kp_akv_key(p);
	time_t now = time(NULL);

	if (!k->enabled)
		*why = "the key is disabled";
	else if (k->exp != 0 && k->exp <= now)
		*why = "the key is expired";
	else if (k->nbf != 0 && k->nbf > now)
		*why = "the key is not valid yet (nbf)";
	else if (!k->op_wrap || !k->op_unwrap)
		*why = "the key does not allow wrapKey and unwrapKey";
	else if (strstr(k->recovery_level, "Recoverable") == NULL)
		*why = "the vault has no soft delete (recoveryLevel)";
	else if (strstr(k->recovery_level, "Purgeable") != NULL)
		*why = "the vault has no purge protection (recoveryLevel)";
	else if (k->rsa_bits != 0 && k->rsa_bits < 2048)
		*why = "RSA keys must have at least 2048 bits";
	else
		return 0;
	return -EPERM;
}

/* Tell a live mount of this cipherdir to adopt the new config. */
static void notify_mount(const char *cipherdir)
{
	char cdir[PATH_MAX], mnt[PATH_MAX], reply[4096];
	int rc;

	if (!mount_find(cipherdir, cdir, sizeof(cdir), mnt, sizeof(mnt)))
		return;
	rc = ctl_request(mnt, "reload", reply, sizeof(reply));
	if (rc < 0 || strstr(reply, "\"ok\":true") == NULL)
		fprintf(stderr,
			"cmkfs cmk: warning: the mount on %s did not adopt the "
			"change (%s); remount it\n",
			mnt, rc < 0 ? strerror(-rc) : reply);
	else if (strstr(reply, "\"last_check_ok\":true") == NULL)
		fprintf(stderr,
			"cmkfs cmk: warning: the mount on %s adopted the change "
			"but cannot use the key yet: %s. Does the mount daemon's "
			"environment hold the Azure credentials (doc/KEYS.md)? It "
			"locks when the grace period ends.\n",
			mnt, reply);
	else
		printf("The mount on %s adopted the change and proved the key.\n",
		       mnt);
}

int cmd_cmk(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "key", required_argument, NULL, 'K' },
		{ "force", no_argument, NULL, 'F' },
		{ "service-key", required_argument, NULL, 'k' },
		{ "ca-file", required_argument, NULL, 'c' },
		{ "audit-log", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *keypath = kp_local_default_path(), *uri = NULL, *why,
		   *action, *audit_log = NULL;
	struct keyprov *prov[2] = { NULL, NULL }, *newp = NULL;
	struct keyring *kr = NULL, *check = NULL;
	char cdir[PATH_MAX];
	struct volume v, nv;
	bool force = false;
	int c, rc, fd = -1, lk = -1, ex = CMK_EXIT_RUNTIME;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMK_EXIT_USAGE : CMK_EXIT_OK;
	}
	action = argv[1];
	if (strcmp(action, "enable") != 0 && strcmp(action, "rotate") != 0 &&
	    strcmp(action, "disable") != 0)
		return cli_usage_error("cmk", "unknown action '%s'", action);
	argc--;
	argv++;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'K':
			uri = optarg;
			break;
		case 'F':
			force = true;
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
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("cmk", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("cmk", "expected one CIPHERDIR");
	if ((strcmp(action, "disable") == 0) != (uri == NULL))
		return cli_usage_error("cmk", "%s", uri ? "disable takes no --key" :
						    "--key KEY_URI is required");
	if (uri != NULL) {
		struct kv_uri u;

		if (kv_parse_uri(uri, &u) < 0)
			return cli_usage_error(
				"cmk",
				"--key must be https://HOST/keys/NAME/VERSION");
	}
	if (realpath(argv[optind], cdir) == NULL)
		return cli_fail("cmk", "%s: %s", argv[optind], strerror(errno));
	if (http_global_init() < 0)
		return cli_fail("cmk", "libcurl failed to start");
	audit_open(audit_log);
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* Held until a live mount adopted the new config: a rekey must not
	 * start from the old one meanwhile. */
	lk = fd < 0 ? -errno : volio_lock_config(fd);
	rc = lk < 0 ? lk : volio_read(fd, &v);
	if (rc < 0) {
		cli_fail("cmk", "%s: %s", cdir, volio_strerror(rc));
		goto out;
	}
	{
		char id[VOLUME_ID_HEX_LEN];

		volume_id_hex(&v, id);
		audit_set_volume(id);
	}
	if (strcmp(action, "enable") == 0 && v.layer[1].prov == KPROV_AKV) {
		cli_fail("cmk", "%s: a customer-managed key is already enabled "
				"(%s); use 'cmkfs cmk rotate'",
			 cdir, v.layer[1].key_id);
		goto out;
	}
	if (strcmp(action, "enable") != 0 && v.layer[1].prov != KPROV_AKV) {
		cli_fail("cmk", "%s: no customer-managed key is enabled", cdir);
		goto out;
	}
	/* The current keys, through the current (old) CMK. */
	rc = volio_providers(&v, keypath, prov);
	if (rc == 0)
		rc = keyring_open(&v, prov, &kr);
	if (rc < 0) {
		cli_fail("cmk", "%s: cannot unlock with the current keys: %s%s%s",
			 cdir, volio_strerror(rc),
			 v.layer[1].prov == KPROV_AKV ? ": " : "",
			 v.layer[1].prov == KPROV_AKV ? kv_last_error() : "");
		goto out;
	}
	if (uri != NULL) {
		rc = kp_akv_open(uri, &newp);
		if (rc < 0) {
			cli_fail("cmk", "%s: %s: %s", uri, volio_strerror(rc),
				 kv_last_error());
			goto out;
		}
		if (cli_check_cmk(newp, &why) < 0) {
			if (!force) {
				cli_fail("cmk", "%s: refused: %s (use --force "
						"to override)",
					 uri, why);
				audit_event(strcmp(action, "enable") == 0 ?
						    "cmk_enable" :
						    "cmk_rotate",
					    uri, "refused", why);
				goto out;
			}
			fprintf(stderr, "cmkfs cmk: warning: %s (forced)\n", why);
		}
	} else {
		uint8_t *skey = NULL;

		rc = kp_local_load(keypath, &skey);
		if (rc == 0)
			rc = kp_local_open(skey, v.volume_id, 1, &newp);
		secmem_free(skey, SERVICE_KEY_LEN);
		if (rc < 0) {
			cli_fail("cmk", "%s: %s", keypath, volio_strerror(rc));
			goto out;
		}
	}
	rc = keyring_rewrap(kr, 1, newp, &nv);
	if (rc == -EBUSY) {
		cli_fail("cmk", "%s: a rekey is in progress; finish it with "
				"'cmkfs rekey %s' first",
			 cdir, cdir);
		goto out;
	}
	if (rc < 0) {
		cli_fail("cmk", "wrapping with %s failed: %s: %s", newp->key_id,
			 volio_strerror(rc), kv_last_error());
		goto out;
	}
	audit_event("wrap", newp->key_id, "ok", "KEK_C");
	/* Prove the new config opens before it replaces the old one. */
	{
		struct keyprov *np[2] = { prov[0], newp };

		rc = keyring_open(&nv, np, &check);
	}
	if (rc < 0) {
		cli_fail("cmk", "the re-wrapped key does not unwrap: %s",
			 volio_strerror(rc));
		goto out;
	}
	rc = volio_write(fd, &nv);
	if (rc < 0) {
		cli_fail("cmk", "%s: writing the config: %s", cdir,
			 strerror(-rc));
		goto out;
	}
	audit_event(strcmp(action, "enable") == 0   ? "cmk_enable" :
		    strcmp(action, "rotate") == 0 ? "cmk_rotate" :
						    "cmk_disable",
		    newp->key_id, "ok", v.layer[1].key_id);
	printf("%s: customer layer now protected by %s (was %s)\n", cdir,
	       newp->key_id, v.layer[1].key_id);
	notify_mount(cdir);
	ex = CMK_EXIT_OK;
out:
	volio_unlock_config(lk);
	if (fd >= 0)
		close(fd);
	keyring_free(kr);
	keyring_free(check);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	keyprov_close(newp);
	return ex;
}
