/* src/cli/cmd_status.c — `cmkfs status [--json] CIPHERDIR|MOUNTPOINT`.
 * Reads only the public fields of the config: needs no key. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
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
		"certificate expire. Exit status: 0 shown, 1 error, 2 usage, 4\n"
		"shown, and the mount warns that one of them expires within 30\n"
		"days.\n");
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
	if (realpath(argv[optind], path) == NULL)
		return cli_fail("status", "%s: %s", argv[optind],
				strerror(errno));
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
	if (mounted && ctl_request(mnt, "status", live, sizeof(live)) < 0)
		snprintf(live, sizeof(live), "null");
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
		}
		printf("}\n");
		return mounted && expiry_lines(live, false) ?
			       CMK_EXIT_EXPIRY_WARNING :
			       CMK_EXIT_OK;
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
		printf("daemon:          %s\n", live);
		if (expiry_lines(live, true))
			return CMK_EXIT_EXPIRY_WARNING;
	} else {
		printf("mounted:         no\n");
	}
	return CMK_EXIT_OK;
}
