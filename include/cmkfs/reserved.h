/* include/cmkfs/reserved.h — every backing name cmkfs keeps for itself
 * (doc/FORMAT.md §0). Base64url text never contains '.', so a backing name
 * that starts with RESERVED_PREFIX is ours and every other name is an
 * encrypted name; names_is_reserved() (names.h) is the one test for it,
 * names_is_longname() and names_is_tmp() tell the kinds apart that are
 * not fixed names. Definitions only: no code, no I/O. */
#ifndef CMKFS_RESERVED_H
#define CMKFS_RESERVED_H

#define RESERVED_PREFIX "cmkfs."

/* In every directory, the root included. */
#define DIRID_FILE "cmkfs.dirid"		/* the directory's random id */
#define TMP_PREFIX "cmkfs.tmp."			/* + 16 hex: in flight */
#define LONGNAME_PREFIX "cmkfs.ln."		/* + base64url(SHA-256) */
#define LONGNAME_SUFFIX ".name"			/* long name's side file */

/* In the root only. */
#define VOLUME_FILE "cmkfs.conf"		/* volume configuration */
#define JOURNAL_DIR "cmkfs.journal"		/* truncate records */
#define TRANSIENT_FILE "cmkfs.transient"	/* sealed zone list */
#define QUARANTINE_DIR "cmkfs.quarantine"	/* set aside by repair */
#define LINKS_DIR "cmkfs.links"			/* long symlink targets */
#define LINKSET_DIR "cmkfs.hl"			/* link sets of files (format 3) */

/* The target of a backing symlink whose encrypted target is in
 * LINKS_DIR/<id>: LINKTGT_PREFIX + id (43 base64url characters). */
#define LINKTGT_PREFIX "cmkfs.lt."

/* In QUARANTINE_DIR/<run>/<dir>/: the raw xattrs of what was set aside. */
#define XATTRS_DIR "cmkfs.xattrs"

#endif
