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

#endif
