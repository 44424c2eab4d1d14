/* src/cli/keyopts.h — the options that say where the keys and the audit
 * trail are, shared by the subcommands that open a volume's keys:
 * --service-key FILE or --service-key-fd N, --ca-file FILE, --audit-log
 * FILE (and their fstab forms service_key=, service_key_fd=, ca_file=,
 * audit_log= for mount.cmkfs). Each
 * subcommand lists the entries it accepts in its own getopt table, so an
 * option it does not take stays an "unknown option". */
#ifndef CMKFS_KEYOPTS_H
#define CMKFS_KEYOPTS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "cmkfs/audit.h"
#include "cmkfs/keyprov.h"

/* getopt_long values, above every short option character. */
enum {
	KEYOPTS_SERVICE_KEY = 0x100,
	KEYOPTS_CA_FILE,
	KEYOPTS_AUDIT_LOG,
	KEYOPTS_SERVICE_KEY_FD,
};

/* Two entries: --service-key FILE and --service-key-fd N. */
#define KEYOPTS_OPT_SERVICE_KEY                                              \
	{ "service-key", required_argument, NULL, KEYOPTS_SERVICE_KEY },     \
	{ "service-key-fd", required_argument, NULL, KEYOPTS_SERVICE_KEY_FD }
#define KEYOPTS_OPT_CA_FILE { "ca-file", required_argument, NULL, KEYOPTS_CA_FILE }
#define KEYOPTS_OPT_AUDIT_LOG                                                \
	{ "audit-log", required_argument, NULL, KEYOPTS_AUDIT_LOG }

/* The --help lines of the three options, as most subcommands print them. */
#define KEYOPTS_HELP_SERVICE_KEY                                             \
	"  --service-key FILE   service key (default $CMKFS_SERVICE_KEY, else\n" \
	"                       the systemd credential " SERVICE_KEY_CREDENTIAL "\n" \
	"                       if passed, else " SERVICE_KEY_DEFAULT ")\n"     \
	"  --service-key-fd N   read the service key (32 bytes, then end of\n"  \
	"                       file) from descriptor N, e.g. 3<FILE or a pipe\n"
#define KEYOPTS_HELP_CA_FILE                                                 \
	"  --ca-file FILE       extra CA for Key Vault TLS (or $CMKFS_CA_FILE)\n"
#define KEYOPTS_HELP_AUDIT_LOG                                               \
	"  --audit-log FILE     audit log (default $CMKFS_AUDIT_LOG, else\n"     \
	"                       " AUDIT_DEFAULT_PATH ")\n"

struct keyopts {
	/* the source: a file, or "fd:N" (kp_local_is_fd); never NULL after
	 * init */
	const char *service_key;
	char fd_source[24];		/* storage of an "fd:N" source */
	const char *ca_file;		/* NULL: $CMKFS_CA_FILE (azure/http.c) */
	const char *audit_log;		/* NULL: audit_default_path() */
};

/* Defaults: the service key from kp_local_default_path(), the others NULL
 * (resolved by the layer that uses them). */
void keyopts_init(struct keyopts *ko);
/* One getopt_long result: true if c is one of the four (arg stored in
 * *ko, borrowed from argv), false if the caller must handle it. */
bool keyopts_parse(int c, const char *arg, struct keyopts *ko);
/* For a subcommand that opens keys in this process: hands --ca-file to the
 * Key Vault provider. (A mount passes it to its daemon instead.) */
void keyopts_apply(const struct keyopts *ko);
/* The audit log this run reads or writes: --audit-log, else the default. */
const char *keyopts_audit_log(const struct keyopts *ko);
/* The source string of a --service-key-fd N (or --new-key-fd) argument
 * in buf (cap >= 24): "fd:N", or, for a malformed N or one not open now,
 * a source that fails with EBADF when read. Returns buf. */
const char *keyopts_fd_source(const char *arg, char *buf, size_t cap);
/* --expiry-margin DAYS (0..365) into *days; false if malformed. */
bool keyopts_margin(const char *arg, int *days);
/* mount.cmkfs: if the -o entry `o` is service_key=, ca_file= or
 * audit_log=, the `cmkfs mount` flag it stands for and its value (a
 * pointer into o). Returns false for any other entry. */
bool keyopts_fstab(const char *o, const char **flag, const char **value);

#endif
