/* src/cli/cmd_status.c — `cmkfs status [--json] CIPHERDIR|MOUNTPOINT`.
 * Reads only the public fields of the config: needs no key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cmkfs/runtime.h"
#include "cmkfs/ctl.h"
#include "cmkfs/json.h"
#include "cmkfs/kv.h"
#include "cmkfs/volio.h"

static const char *const layer_name[2] = { "inner", "outer" };
static const char *const layer_side[2] = { "service", "customer" };

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: cmkfs status [--json] CIPHERDIR|MOUNTPOINT\n"
		"\n"
		"Show the volume id, on-disk format version, block size, cipher\n"
		"suites, which key protects each layer, and whether (and where) the\n"
		"volume is mounted. Needs no key. --json prints one JSON object.\n"
		"A mounted volume also shows when the key in use and the client\n"
		"certificate expire.\n"
		"\n"
		"  --json               one JSON object\n"
		"  -h, --help           this text\n"
		"\n"
		"Exit status (for monitoring; the first that applies):\n"
		"  7  mounted, but the daemon does not answer (killed or gone)\n"
		"  5  the mount is locked ('cmkfs lock' or a failed key check)\n"
		"  6  stale: not locked, but the last successful key check is\n"
		"     older than the grace period plus two check intervals\n"
		"  4  the key in use or the client certificate expires within\n"
		"     30 days\n"
		"  0  shown (not mounted, or mounted and healthy)\n"
		"  1  error, 2 usage\n");
}

/* The mount's health from the daemon's reply: CMK_EXIT_LOCKED,
 * CMK_EXIT_STALE or CMK_EXIT_OK. Stale: the monitor locks at the first
 * check after the grace period ran out, and checks come every interval
 * (+-10 %), so an unlocked mount whose keys went unproven for longer than
 * grace + 2 x interval has checks that are stuck. *age gets the seconds
 * since the last successful check (-1 unknown). */
static int health(const char *live, time_t now, long *age)
{
	struct json *j = NULL;
	int64_t last_ok = 0, interval = 0, grace = 0;
	bool locked = false;
	int rc = CMK_EXIT_OK;

	*age = -1;
	if (json_parse(live, strlen(live), &j) < 0)
		return CMK_EXIT_OK;
	if (json_bool(j, "locked", &locked) == 0 && locked)
		rc = CMK_EXIT_LOCKED;
	if (json_int(j, "last_ok", &last_ok) == 0 && last_ok > 0) {
		*age = (long)((int64_t)now - last_ok);
		if (rc == CMK_EXIT_OK &&
		    json_int(j, "key_check_interval", &interval) == 0 &&
		    json_int(j, "grace", &grace) == 0 &&
		    *age > grace + 2 * interval)
			rc = CMK_EXIT_STALE;
	}
	json_free(j);
	return rc;
}

/* realpath() of a mountpoint whose daemon is gone fails (ENOTCONN) on the
 * last component: resolve its parent instead, so status can say so. */
static int resolve(const char *arg, char *out)
{
	char a[PATH_MAX], b[PATH_MAX], dir[PATH_MAX];

	if (realpath(arg, out) != NULL)
		return 0;
	if (errno != ENOTCONN || strlen(arg) >= sizeof(a))
		return -errno;
	snprintf(a, sizeof(a), "%s", arg);
	snprintf(b, sizeof(b), "%s", arg);
	if (realpath(dirname(a), dir) == NULL)
		return -ENOTCONN;
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", strcmp(dir, "/") ? dir : "",
			     basename(b)) >= PATH_MAX)
		return -ENAMETOOLONG;
	return 0;
}

/* The daemon's expiry members (ctlcmd.c): in text if `print`; true if
 * either warns. */
static bool expiry_lines(const char *live, bool print)
{
	static const char *const what[2] = { "key", "credential" };
	bool warn = false;
	struct json *j = NULL;

	if (json_parse(live, strlen(live), &j) < 0)
		return false;
	for (int i = 0; i < 2; i++) {
		char name[64], when[32];
		int64_t exp = 0, days = 0, level = 0;
		time_t t;
		struct tm tm;

		snprintf(name, sizeof(name), "%s_expiry_warning", what[i]);
		if (json_int(j, name, &level) == 0 && level > 0)
			warn = true;
		snprintf(name, sizeof(name), "%s_expires", what[i]);
		if (!print || json_int(j, name, &exp) < 0)
			continue;
		snprintf(name, sizeof(name), "%s_days_left", what[i]);
		if (json_int(j, name, &days) < 0)
			continue;
		t = (time_t)exp;
		gmtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
		printf("%-17s%s (%lld days left%s%s)\n",
		       i == 0 ? "key expires:" : "cert expires:", when,
		       (long long)days, level > 0 ? ": WARNING, " : "",
		       level == 30 ? "30-day threshold" :
		       level == 7  ? "7-day threshold" :
		       level == 1  ? "1-day threshold" : "");
	}
	json_free(j);
	return warn;
}

int cmd_status(int argc, char **argv)
{
	static const struct option lopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char path[PATH_MAX], cdir[PATH_MAX], mnt[PATH_MAX], id[VOLUME_ID_HEX_LEN];
	bool json = false, mounted, have_uri;
	char live[4096] = "null";
	int ctl_rc = 0, exit_rc = CMK_EXIT_OK;
	long age = -1;
	struct kv_uri u;
	struct volume v;
	pid_t pid = 0;
	int c, fd, rc;

	opterr = 0;	/* our own one-line message below */
	while ((c = getopt_long(argc, argv, "+h", lopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			usage(stdout);
			return CMK_EXIT_OK;
		default:
			return cli_usage_error("status", "unknown option '%s'",
					       argv[optind - 1]);
		}
	}
	if (optind != argc - 1)
		return cli_usage_error("status",
				       "expected CIPHERDIR or MOUNTPOINT");
	rc = resolve(argv[optind], path);
	if (rc < 0)
		return cli_fail("status", "%s: %s", argv[optind],
				strerror(-rc));
	mounted = runtime_find(path, cdir, sizeof(cdir), mnt, sizeof(mnt));
	if (!mounted) {
		snprintf(cdir, sizeof(cdir), "%s", path);
		mnt[0] = '\0';
	} else {
		char sdir[PATH_MAX];

		if (runtime_state_read(mnt, &pid, sdir, sizeof(sdir)) < 0)
			pid = 0;
	}
	fd = open(cdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cli_fail("status", "%s: %s", cdir, strerror(errno));
	rc = volio_read(fd, &v);
	close(fd);
	if (rc < 0)
		return cli_fail("status", "%s: %s", cdir, volio_strerror(rc));
	volume_id_hex(&v, id);
	if (mounted)
		ctl_rc = ctl_request(mnt, "status", live, sizeof(live));
	if (ctl_rc < 0)
		snprintf(live, sizeof(live), "null");
	if (mounted && ctl_rc < 0)
		exit_rc = CMK_EXIT_DEAD;
	else if (mounted)
		exit_rc = health(live, time(NULL), &age);
	if (exit_rc == CMK_EXIT_OK && mounted && expiry_lines(live, false))
		exit_rc = CMK_EXIT_EXPIRY_WARNING;
	have_uri = v.layer[1].prov == KPROV_AKV &&
		   kv_parse_uri(v.layer[1].key_id, &u) == 0;
	if (json) {
		printf("{\"cipherdir\":");
		cli_json_str(cdir);
		printf(",\"volume_id\":\"%s\",\"format_version\":%d,"
		       "\"block_size\":%u,\"kek_generation\":%u,"
		       "\"rekey_in_progress\":%s,\"full_rekey_in_progress\":%s,"
		       "\"upgrade_in_progress\":%s,\"created\":%llu,",
		       id, v.version, v.block_size, v.kek_gen,
		       (v.flags & VOLUME_FLAG_REKEY) ? "true" : "false",
		       (v.flags & VOLUME_FLAG_FULL) ? "true" : "false",
		       (v.flags & VOLUME_FLAG_UPGRADE) ? "true" : "false",
		       (unsigned long long)v.created_sec);
		printf("\"ciphers\":{\"inner\":\"AES-256-GCM\",\"outer\":"
		       "\"AES-256-GCM\",\"names\":\"AES-256-SIV\","
		       "\"key_wrap\":\"AES-256-GCM\",\"config_mac\":"
		       "\"HMAC-SHA256\"},\"layers\":[");
		for (int i = 0; i < 2; i++) {
			printf("%s{\"layer\":\"%s\",\"side\":\"%s\","
			       "\"provider\":\"%s\",\"key_id\":",
			       i ? "," : "", layer_name[i], layer_side[i],
			       volume_prov_name(v.layer[i].prov));
			cli_json_str(v.layer[i].key_id);
			printf("}");
		}
		printf("],\"customer_managed_key\":%s",
		       v.layer[1].prov == KPROV_AKV ? "true" : "false");
		if (have_uri) {
			printf(",\"cmk\":{\"uri\":");
			cli_json_str(v.layer[1].key_id);
			printf(",\"vault\":");
			cli_json_str(u.vault);
			printf(",\"name\":");
			cli_json_str(u.name);
			printf(",\"version\":");
			cli_json_str(u.version);
			printf(",\"managed_hsm\":%s,\"follows_latest\":%s}",
			       u.hsm ? "true" : "false",
			       (v.flags & VOLUME_FLAG_FOLLOW) ? "true" :
								"false");
		}
		printf(",\"mounted\":%s", mounted ? "true" : "false");
		if (mounted) {
			printf(",\"mountpoint\":");
			cli_json_str(mnt);
			if (pid > 0)
				printf(",\"pid\":%ld", (long)pid);
			/* the daemon's own JSON: lock state, last key check */
			printf(",\"daemon\":%s", live);
			printf(",\"health\":\"%s\"",
			       exit_rc == CMK_EXIT_DEAD   ? "dead" :
			       exit_rc == CMK_EXIT_LOCKED ? "locked" :
			       exit_rc == CMK_EXIT_STALE  ? "stale" :
							    "ok");
			if (ctl_rc < 0)
				printf(",\"daemon_error\":\"%s\"",
				       strerror(-ctl_rc));
		}
		printf("}\n");
		return exit_rc;
	}
	printf("cipherdir:       %s\n", cdir);
	printf("volume id:       %s\n", id);
	printf("format version:  %d%s\n", v.version,
	       (v.flags & VOLUME_FLAG_UPGRADE) ?
		       " (upgrade in progress: run 'cmkfs upgrade' to finish)" :
		       v.version < 3 ? " (run 'cmkfs upgrade' for format 3)" :
				       "");
	printf("KEK generation:  %u%s\n", v.kek_gen,
	       (v.flags & VOLUME_FLAG_FULL) ?
		       " (full rekey in progress: run 'cmkfs rekey' or "
		       "'cmkfs cmk enable' again to finish)" :
	       (v.flags & VOLUME_FLAG_REKEY) ?
		       " (rekey in progress: run 'cmkfs rekey' to finish)" :
		       "");
	printf("block size:      %u\n", v.block_size);
	printf("ciphers:         inner AES-256-GCM, outer AES-256-GCM, names "
	       "AES-256-SIV,\n                 key wrap AES-256-GCM, config "
	       "HMAC-SHA256\n");
	for (int i = 0; i < 2; i++)
		printf("%s layer:     %s key, provider %s, key %s\n",
		       layer_name[i], layer_side[i],
		       volume_prov_name(v.layer[i].prov), v.layer[i].key_id);
	printf("customer key:    %s\n",
	       v.layer[1].prov == KPROV_AKV ? "customer-managed (Key Vault)" :
					      "off (service-managed)");
	if (have_uri)
		printf("customer key:    vault %s, key %s, version %s (%s)\n",
		       u.vault, u.name, u.version,
		       (v.flags & VOLUME_FLAG_FOLLOW) ?
			       "follows the key's latest version" :
			       "pinned to this version");
	if (mounted) {
		printf("mounted:         yes, on %s (pid %ld)\n", mnt, (long)pid);
		if (ctl_rc < 0) {
			bool gone = pid > 0 && kill(pid, 0) < 0 &&
				    errno == ESRCH;

			printf("daemon:          DEAD: its control socket does "
			       "not answer (%s)%s\n", strerror(-ctl_rc),
			       gone ? "; its pid is gone" : "");
			return exit_rc;
		}
		printf("daemon:          %s\n", live);
		if (exit_rc == CMK_EXIT_LOCKED)
			printf("health:          LOCKED: keys wiped; 'cmkfs "
			       "unlock %s' resumes once a key check passes\n",
			       mnt);
		else if (exit_rc == CMK_EXIT_STALE)
			printf("health:          STALE: last successful key "
			       "check %ld s ago, longer than grace + 2 "
			       "intervals\n", age);
		else
			printf("health:          ok\n");
		expiry_lines(live, true);
	} else {
		printf("mounted:         no\n");
	}
	return exit_rc;
}
