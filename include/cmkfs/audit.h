/* include/cmkfs/audit.h — one JSON line per key event (issue #3, doc/KEYS.md
 * "Audit log"), appended to the audit file and sent to syslog. Takes key
 * URIs, versions and volume ids, never key bytes or tokens. Thread-safe. */
#ifndef CMKFS_AUDIT_H
#define CMKFS_AUDIT_H

#include "cmkfs/common.h"

#define AUDIT_DEFAULT_PATH "/var/log/cmkfs/audit.log"

/* Path: `path`, else $CMKFS_AUDIT_LOG, else AUDIT_DEFAULT_PATH. Creates the
 * file 0600 (directory 0700). Failure to open is reported once and events
 * still go to syslog. */
void audit_open(const char *path);
const char *audit_path(void);
void audit_set_volume(const char *volume_id_hex);
/* event: "mount", "unwrap", "wrap", "check", "lock", "resume", "cmk_enable",
 * "cmk_rotate", "cmk_disable", "umount", "transient_expire", "fsck_repair"
 * (the last two with counts in detail, never names). key: a key URI or
 * local:<id> (may be NULL). result: "ok", "denied", "transient", "error".
 * detail: a short reason (may be NULL). */
void audit_event(const char *event, const char *key, const char *result,
		 const char *detail);

#endif
