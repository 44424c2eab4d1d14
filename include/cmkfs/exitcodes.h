/* include/cmkfs/exitcodes.h — process exit codes of the cmkfs command.
 * Scripts and systemd units (RestartPreventExitStatus=) depend on these;
 * never renumber. cmkfs(1) "EXIT STATUS" lists them; keep it in step. */
#ifndef CMKFS_EXITCODES_H
#define CMKFS_EXITCODES_H

#define CMK_EXIT_OK 0		/* success */
/* runtime error not classed below (I/O error of the backing directory,
 * out of memory, the FUSE mount itself failed) */
#define CMK_EXIT_RUNTIME 1
#define CMK_EXIT_USAGE 2	/* wrong command line */
#define CMK_EXIT_NOKEYS 3	/* fsck: keys unavailable, nothing was checked */
/* status: printed, and the mount warns of an expiry within 30 days (the
 * key in use or the credential's certificate) */
#define CMK_EXIT_EXPIRY_WARNING 4
/* status: the mount is locked (its keys are wiped, by `cmkfs lock` or a
 * key check); unlock: its key check failed, the mount stays locked;
 * mount: the volume is held locked */
#define CMK_EXIT_LOCKED 5
/* status: the mount is not locked, but its last successful key check is
 * older than its grace period plus two check intervals: it should have
 * locked by then, so its checks are stuck */
#define CMK_EXIT_STALE 6
/* status: mounted, but its daemon does not answer on the control socket
 * (killed, or gone) */
#define CMK_EXIT_DEAD 7
/* the service key is missing, unreadable, malformed (not 32 bytes), has
 * unsafe permissions, or is not this volume's: fatal until an operator
 * fixes the key source */
#define CMK_EXIT_KEY 8
/* Key Vault (or Entra ID) refused: access revoked (403), the key disabled,
 * deleted or expired, the credential rejected (401, invalid_client): fatal
 * until the customer restores access */
#define CMK_EXIT_DENIED 9
/* Key Vault or Entra ID unreachable: DNS, connect, TLS, timeout, HTTP 429
 * or 5xx; retrying later may succeed */
#define CMK_EXIT_UNREACHABLE 10
/* the mount point is unsafe or unusable: missing, not a directory, not
 * empty (without -o nonempty), the key file, inside or equal to the cipher
 * directory, or the volume is already mounted on this host */
#define CMK_EXIT_MOUNTPOINT 11
/* the cipher directory is not a cmkfs volume, or its volume config or
 * headers are damaged or were tampered with (run `cmkfs fsck`) */
#define CMK_EXIT_DAMAGED 12
/* fsck --repair: the cipher directory's file system has less free space
 * than the repair's copies need; nothing was changed (free space, or
 * repair a copy elsewhere, then run it again). Not 1: that says damage
 * was found and repaired. */
#define CMK_EXIT_NOSPACE 13

#endif
