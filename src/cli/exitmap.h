/* src/cli/exitmap.h — exit codes and messages for the faults subcommands
 * share (src/cli/exitmap.c). The codes are cmkfs/exitcodes.h's. */
#ifndef CMKFS_EXITMAP_H
#define CMKFS_EXITMAP_H

#include <stddef.h>

#include "cmkfs/exitcodes.h"

/* src/cli/exitmap.c: the one map from an internal error (a negative errno
 * of the key, volume and Key Vault layers) to an exit code: key file
 * faults and a key that is not the volume's 8, Key Vault refusals 9, Key
 * Vault or Entra ID unreachable 10, no volume or a damaged config 12,
 * else 1. */
int cli_exit_code(int rc);
/* Check the service key file at path as kp_local_load does (exists, a
 * regular file or a followed link to one, no group/other access, 32
 * bytes, readable). On a fault print what and the fix on stderr and
 * return CMK_EXIT_KEY; else CMK_EXIT_OK. */
int cli_key_fault(const char *cmd, const char *path);
/* The service key path to use for `path`: itself, or when it is a
 * symbolic link owned by root or the caller, its target (resolved, so
 * init and every command that opens keys behave alike). Returns
 * CMK_EXIT_OK with out filled, or prints why and returns CMK_EXIT_KEY. */
int cli_key_path(const char *cmd, const char *path, char *out, size_t cap);
/* An unlock of cdir failed with rc (detail: the provider's words, may be
 * NULL): print the real fault (the key file's, checked first for the
 * errnos a key file can cause; not this volume's key; not a volume; a
 * damaged config; Key Vault's answer) and return its exit code. */
int cli_unlock_fail(const char *cmd, const char *cdir, const char *keypath,
		    int rc, const char *detail);
/* Opening or reading the volume config of cdir failed with rc: print and
 * return the exit code (12 for no volume or a damaged config). */
int cli_open_volume_fail(const char *cmd, const char *cdir, int rc);
/* If path is the mount point of a cmkfs mount, print "PATH is a cmkfs
 * mount point; give its cipher directory CDIR" and return CMK_EXIT_USAGE;
 * else CMK_EXIT_OK. */
int cli_not_mountpoint(const char *cmd, const char *path);

#endif
