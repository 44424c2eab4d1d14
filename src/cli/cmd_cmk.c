/* src/cli/cmd_cmk.c — `cmkfs cmk enable|rotate|disable`: parse, run the
 * engine, print. rotate and disable re-wrap KEK_C (maint/cmk.c); a live
 * mount adopts the new config through its control socket, asked here
 * while the engine holds the config lock. enable hands the volume over to
 * the customer's key: a full rekey with the customer layer moved to it
 * (cli_rekey, doc/KEYS.md "Enable"). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "exitmap.h"
#include "keyopts.h"
#include "cmkfs/audit.h"
#include "cmkfs/cmk.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/http.h"
#include "cmkfs/kv.h"
#include "cmkfs/runtime.h"
#include "cmkfs/volio.h"

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs cmk enable  --key KEY_URI [--force] [--json] [OPTIONS] CIPHERDIR\n"
		"       cmkfs cmk rotate  --key KEY_URI [--force] [OPTIONS] CIPHERDIR\n"
		"       cmkfs cmk disable [OPTIONS] CIPHERDIR\n"
		"\n"
		"Put the customer layer's key (KEK_C) under a customer-managed key in\n"
		"Azure Key Vault or Managed HSM (enable), move it to another key or\n"
		"version (rotate; the old one must still be reachable), or back under\n"
		"the service key (disable: do this before revoking the CMK, so the\n"
		"data stays usable; it gives control back to whoever holds the\n"
		"service key). Works on a mounted volume without a remount.\n"
		"\n"
		"enable hands control to the customer for real: new KEKs, a new\n"
		"volume secret (every name, symlink target and xattr re-encrypted)\n"
		"and fresh data keys for every file, every block re-sealed, so the\n"
		"service key with any earlier copy of the volume's metadata opens\n"
		"nothing the volume holds afterwards. It rewrites the volume (with\n"
		"progress and an ETA; --json for JSON lines), is resumable after a\n"
		"kill or crash (run it again), and a live mount keeps serving.\n"
		"rotate and disable only re-wrap KEK_C: no file is rewritten. After\n"
		"a rotation, disable the old key version in Key Vault: an old copy\n"
		"of cmkfs.conf stays protected by it.\n"
		"\n"
		"KEY_URI is the key's URI. Without a version the volume follows the\n"
		"key: it is wrapped by the current version, and a mount moves to a\n"
		"newer one (a rotation in Key Vault, by hand or by a rotation policy)\n"
		"within one key-check interval, audited as an automatic rotation.\n"
		"With a version it stays pinned to that version, e.g.\n"
		"  https://NAME.vault.azure.net/keys/KEY             (follows KEY)\n"
		"  https://NAME.vault.azure.net/keys/KEY/VERSION     (pinned)\n"
		"  https://NAME.managedhsm.azure.net/keys/KEY[/VERSION]\n"
		"Before enabling or rotating, the key must be enabled, not expire\n"
		"within the expiry margin, allow wrapKey and unwrapKey, and its vault\n"
		"must have soft delete and purge protection (recoveryLevel); --force\n"
		"skips these checks.\n"
		"\n"
		"  --key KEY_URI        the new customer-managed key (enable, rotate)\n"
		"  --force              use the key even if it fails the checks\n"
		"  --expiry-margin DAYS refuse a key that expires within DAYS\n"
		"                       (default 7; 0: only an expired one)\n"
		"  --json               enable: progress and result as JSON lines\n"
		KEYOPTS_HELP_SERVICE_KEY
		KEYOPTS_HELP_CA_FILE
		KEYOPTS_HELP_AUDIT_LOG
		"  -h, --help           this text\n"
		"Azure credentials come from the Azure SDK environment variables\n"
		"(AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET, ...; see\n"
		"doc/KEYS.md). Exit status: 0 done, 1 refused or failed (an enable\n"
		"cut short stays in progress: run it again) or damaged files found,\n"
		"2 usage, 3 enable offline: the keys could not be unwrapped.\n");
}

/* Tell a live mount of this cipherdir to adopt the new config. */
static void notify_mount(const char *cipherdir)
{
	char cdir[PATH_MAX], mnt[PATH_MAX];
	struct ctlcmd_state st;
	int rc;

	if (!runtime_find(cipherdir, cdir, sizeof(cdir), mnt, sizeof(mnt)))
		return;
	rc = ctlcmd_reload(mnt, &st);
	if (rc < 0 || !st.ok)
		fprintf(stderr,
			"cmkfs cmk: warning: the mount on %s did not adopt the "
			"change (%s); remount it\n",
			mnt, rc < 0 ? strerror(-rc) : st.reply);
	else if (!st.last_check_ok)
		fprintf(stderr,
			"cmkfs cmk: warning: the mount on %s adopted the change "
			"but cannot use the key yet: %s. Does the mount daemon's "
			"environment hold the Azure credentials (doc/KEYS.md)? It "
			"locks when the grace period ends.\n",
			mnt, st.reply);
	else
		printf("The mount on %s adopted the change and proved the key.\n",
		       mnt);
}

static void warn_forced(const char *why, void *arg)
{
	(void)arg;
	fprintf(stderr, "cmkfs cmk: warning: %s (forced)\n", why);
}

/* The new config is on disk; the engine still holds the config lock. */
static void committed(const char *cdir, const struct cmk_result *r, void *arg)
{
	(void)arg;
	printf("%s: customer layer now protected by %s (was %s)\n", cdir,
	       r->key_id, r->old_key_id);
	notify_mount(cdir);
}

/* enable: the full rekey with the customer layer moved to the new key,
 * after the same checks as ever; or the rest of one a crash cut short. */
/* Is layer C of v already what `uri` asks for: that version pinned, or
 * (versionless) following that key? */
static bool layer_is(const struct volume *v, const char *uri)
{
	char base[VOLUME_KEYID_MAX + 1];
	struct kv_uri u;

	if (v->layer[1].prov != KPROV_AKV || kv_parse_uri(uri, &u) < 0)
		return false;
	if (u.version[0] != '\0')
		return !(v->flags & VOLUME_FLAG_FOLLOW) &&
		       strcmp(v->layer[1].key_id, uri) == 0;
	return (v->flags & VOLUME_FLAG_FOLLOW) &&
	       kp_akv_versionless(v->layer[1].key_id, base, sizeof(base)) == 0 &&
	       strcasecmp(base, uri) == 0;
}

/* A Key Vault key could not be opened or used: 9 refused, 10
 * unreachable, else 1. */
static int key_vault_exit(int rc)
{
	int ex = cli_exit_code(rc);

	return ex == CMK_EXIT_DENIED || ex == CMK_EXIT_UNREACHABLE ?
		       ex : CMK_EXIT_RUNTIME;
}

/* cmk_run stopped (cmk.h): the stage says whose fault it is. */
static int run_failed(const char *cdir, const struct cmk_opts *o,
		      const struct cmk_result *r)
{
	switch (r->stage) {
	case CMK_STAGE_READ:
		if (r->err == -ENOENT || r->err == -EBADMSG)
			return cli_open_volume_fail("cmk", cdir, r->err);
		break;
	case CMK_STAGE_UNLOCK:
		if (cli_exit_code(r->err) == CMK_EXIT_KEY ||
		    cli_exit_code(r->err) == CMK_EXIT_DAMAGED ||
		    r->err == -EPERM)
			return cli_unlock_fail("cmk", cdir, o->service_key,
					       r->err, NULL);
		fprintf(stderr, "cmkfs cmk: %s\n", r->msg);
		return key_vault_exit(r->err);
	case CMK_STAGE_OPEN_KEY:
		if (o->action == CMK_DISABLE)
			return cli_unlock_fail("cmk", cdir, o->service_key,
					       r->err, NULL);
		fprintf(stderr, "cmkfs cmk: %s\n", r->msg);
		return key_vault_exit(r->err);
	case CMK_STAGE_WRAP:
	case CMK_STAGE_PROVE:
		fprintf(stderr, "cmkfs cmk: %s\n", r->msg);
		return key_vault_exit(r->err);
	default:
		break;
	}
	return cli_fail("cmk", "%s", r->msg);
}

static int enable(const char *cdir, const struct cmk_opts *o, bool json)
{
	char found[PATH_MAX], mnt[PATH_MAX], old[VOLUME_KEYID_MAX + 1];
	struct keyprov *p = NULL;
	char why[700];
	struct volume v;
	bool live;
	int fd, rc, ex;

	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	rc = fd < 0 ? -errno : volio_read(fd, &v);
	if (fd >= 0)
		close(fd);
	if (rc < 0)
		return cli_open_volume_fail("cmk", cdir, rc);
	live = runtime_find(cdir, found, sizeof(found), mnt, sizeof(mnt));
	if (v.flags & VOLUME_FLAG_FULL) {
		if (!layer_is(&v, o->key_uri))
			return cli_fail("cmk", "%s: a hand-over to %s is in "
					"progress; finish it with 'cmkfs cmk "
					"enable --key %s' first", cdir,
					v.layer[1].key_id, v.layer[1].key_id);
		fprintf(stderr, "cmkfs cmk: %s: resuming the hand-over to %s\n",
			cdir, v.layer[1].key_id);
		return cli_rekey("cmk", cdir, o->service_key, json, true, NULL,
				 NULL);
	}
	if (v.flags & VOLUME_FLAG_REKEY)
		return cli_fail("cmk", "%s: a rekey is in progress; finish it "
				"with 'cmkfs rekey %s' first", cdir, cdir);
	/* A rerun of an enable that completed (its command was killed
	 * after the last config write) has nothing left to do. */
	if (layer_is(&v, o->key_uri)) {
		printf("%s: already handed over to %s; nothing to do\n", cdir,
		       o->key_uri);
		return CMK_EXIT_OK;
	}
	if (v.layer[1].prov == KPROV_AKV)
		return cli_fail("cmk", "%s: a customer-managed key is already "
				"enabled (%s); use 'cmkfs cmk rotate'", cdir,
				v.layer[1].key_id);
	snprintf(old, sizeof(old), "%s", v.layer[1].key_id);
	rc = kp_akv_open(o->key_uri, &p);
	if (rc < 0) {
		cli_fail("cmk", "%s: %s: %s", o->key_uri, volio_strerror(rc),
			 kv_last_error());
		return key_vault_exit(rc);
	}
	if (cmk_preflight(p, o->expiry_margin_days, why, sizeof(why)) < 0) {
		if (!o->force) {
			audit_event("cmk_enable", o->key_uri, "refused", why);
			keyprov_close(p);
			return cli_fail("cmk", "%s: refused: %s (use --force to "
					"override)", o->key_uri, why);
		}
		warn_forced(why, NULL);
	}
	ex = cli_rekey("cmk", cdir, o->service_key, json, true, o->key_uri, p);
	keyprov_close(p);
	/* a live mount's daemon audits its own run */
	if (ex == CMK_EXIT_OK && !live)
		audit_event("cmk_enable", o->key_uri, "ok", old);
	if (ex == CMK_EXIT_OK && !json)
		printf("%s: customer layer now protected by %s (was %s); "
		       "every name and file re-encrypted\n", cdir, o->key_uri,
		       old);
	/* the daemon proves the key it now depends on, and says so */
	if (ex == CMK_EXIT_OK && live && !json)
		notify_mount(cdir);
	return ex;
}

int cmd_cmk(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "key", required_argument, NULL, 'K' },
		{ "force", no_argument, NULL, 'F' },
		{ "expiry-margin", required_argument, NULL, 'E' },
		{ "json", no_argument, NULL, 'j' },
		KEYOPTS_OPT_SERVICE_KEY,
		KEYOPTS_OPT_CA_FILE,
		KEYOPTS_OPT_AUDIT_LOG,
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct cmk_opts o = {
		.warn = warn_forced,
		.committed = committed,
		.expiry_margin_days = CMK_EXPIRY_MARGIN_DEFAULT,
	};
	struct cmk_result r;
	struct keyopts ko;
	const char *action;
	char cdir[PATH_MAX], kpath[PATH_MAX];
	bool json = false;
	int c, rc;

	if (argc < 2 || strcmp(argv[1], "--help") == 0 ||
	    strcmp(argv[1], "-h") == 0) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? CMK_EXIT_USAGE : CMK_EXIT_OK;
	}
	action = argv[1];
	if (strcmp(action, "enable") == 0)
		o.action = CMK_ENABLE;
	else if (strcmp(action, "rotate") == 0)
		o.action = CMK_ROTATE;
	else if (strcmp(action, "disable") == 0)
		o.action = CMK_DISABLE;
	else
		return cli_usage_error("cmk", "unknown action '%s'", action);
	argc--;
	argv++;
	keyopts_init(&ko);
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'K':
			o.key_uri = optarg;
			break;
		case 'F':
			o.force = true;
			break;
		case 'E':
			if (!keyopts_margin(optarg, &o.expiry_margin_days))
				return cli_usage_error("cmk", "--expiry-margin "
						       "takes days (0..365)");
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			if (keyopts_parse(c, optarg, &ko))
				break;
			return cli_usage_error("cmk", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("cmk", "expected one CIPHERDIR");
	if ((o.action == CMK_DISABLE) != (o.key_uri == NULL))
		return cli_usage_error("cmk", "%s",
				       o.key_uri ? "disable takes no --key" :
						   "--key KEY_URI is required");
	if (o.key_uri != NULL) {
		struct kv_uri u;

		if (kv_parse_uri(o.key_uri, &u) < 0)
			return cli_usage_error(
				"cmk",
				"--key must be https://HOST/keys/NAME[/VERSION]");
	}
	rc = cli_not_mountpoint("cmk", argv[optind]);
	if (rc != CMK_EXIT_OK)
		return rc;
	if (realpath(argv[optind], cdir) == NULL)
		return cli_open_volume_fail("cmk", argv[optind], -errno);
	rc = cli_key_path("cmk", ko.service_key, kpath, sizeof(kpath));
	if (rc != CMK_EXIT_OK)
		return rc;
	o.service_key = kpath;
	keyopts_apply(&ko);
	if (http_global_init() < 0)
		return cli_fail("cmk", "libcurl failed to start");
	audit_open(keyopts_audit_log(&ko));
	if (o.action == CMK_ENABLE)
		return enable(cdir, &o, json);
	rc = cmk_run(cdir, &o, &r);
	if (rc < 0)
		return run_failed(cdir, &o, &r);
	if (r.unchanged)
		printf("%s: customer layer already protected by %s; nothing to "
		       "do\n", cdir, r.key_id);
	return CMK_EXIT_OK;
}
