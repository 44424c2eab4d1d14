/* include/cmkfs/exitcodes.h — process exit codes of the cmkfs command.
 * Scripts depend on these; never renumber. */
#ifndef CMKFS_EXITCODES_H
#define CMKFS_EXITCODES_H

#define CMK_EXIT_OK 0		/* success */
#define CMK_EXIT_RUNTIME 1	/* runtime error (I/O, bad volume, mount failed) */
#define CMK_EXIT_USAGE 2	/* wrong command line */
#define CMK_EXIT_NOKEYS 3	/* fsck: keys unavailable, nothing was checked */
/* status: printed, and the mount warns of an expiry within 30 days (the
 * key in use or the credential's certificate) */
#define CMK_EXIT_EXPIRY_WARNING 4
/* status: the mount is locked (its keys are wiped, by `cmkfs lock` or a
 * key check); unlock: its key check failed, the mount stays locked */
#define CMK_EXIT_LOCKED 5
/* status: the mount is not locked, but its last successful key check is
 * older than its grace period plus two check intervals: it should have
 * locked by then, so its checks are stuck */
#define CMK_EXIT_STALE 6
/* status: mounted, but its daemon does not answer on the control socket
 * (killed, or gone) */
#define CMK_EXIT_DEAD 7

#endif
