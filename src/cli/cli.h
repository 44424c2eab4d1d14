/* src/cli/cli.h — the subcommand table's contract, and the helpers every
 * subcommand prints with (src/cli/cli.c). Each cmd_*.c owns one
 * subcommand; run() gets argv from the subcommand name on and returns an
 * exit code from cmkfs/exitcodes.h. main.c holds only the table. */
#ifndef CMKFS_CLI_H
#define CMKFS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "cmkfs/common.h"
#include "cmkfs/exitcodes.h"

struct subcmd {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
};

int cmd_init(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_umount(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_cmk(int argc, char **argv);
int cmd_lock(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_audit(int argc, char **argv);
int cmd_transient(int argc, char **argv);
int cmd_fsck(int argc, char **argv);
int cmd_rekey(int argc, char **argv);
int cmd_upgrade(int argc, char **argv);
int cmd_service_key(int argc, char **argv);
/* A rekey as `cmkfs rekey` shows it, offline or through the mount daemon:
 * `full`, and with new_uri / new_c (the same key, opened and checked by
 * the caller) the customer layer moved to that key: `cmkfs cmk enable`.
 * Returns the exit status. */
struct keyprov;
int cli_rekey(const char *cmd, const char *cdir, const char *keypath,
	      bool json, bool full, const char *new_uri,
	      struct keyprov *new_c);
/* argv[0] is mount.cmkfs or mount.fuse.cmkfs (mount(8) helper). */
int mount_helper_main(int argc, char **argv);
/* `cmkfs CIPHERDIR MOUNTPOINT [-o OPTIONS]`, as mount.fuse3 runs a FUSE
 * file system: true if argv[1] and argv[2] are directories; then
 * mount_helper_generic() mounts with the options mount.cmkfs takes. */
bool mount_helper_is_generic(int argc, char **argv);
int mount_helper_generic(int argc, char **argv);

/* Print "cmkfs CMD: msg" and a hint to use --help; returns CMK_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) CMK_PRINTF(2, 3);
/* Print "cmkfs CMD: msg" on stderr; returns CMK_EXIT_RUNTIME. */
int cli_fail(const char *cmd, const char *fmt, ...) CMK_PRINTF(2, 3);
/* Print s as a JSON string literal. */
void cli_json_str(const char *s);
/* fputs with control bytes shown as '?': names that came from the cipher
 * directory or a daemon must not drive the terminal. */
void cli_fputs_safe(const char *s, FILE *f);

#endif
