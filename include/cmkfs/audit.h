/* include/cmkfs/audit.h — one JSON line per key event (doc/KEYS.md
 * "Audit log"), appended to the audit file and sent to syslog. Takes key
 * URIs, versions and volume ids, never key bytes or tokens. Thread-safe.
 * Also reads a log back, one volume's events (`cmkfs audit`). */
#ifndef CMKFS_AUDIT_H
#define CMKFS_AUDIT_H

#include <stddef.h>
#include <time.h>

#include "cmkfs/common.h"

#define AUDIT_DEFAULT_PATH "/var/log/cmkfs/audit.log"

/* $CMKFS_AUDIT_LOG if set and not empty, else AUDIT_DEFAULT_PATH. */
const char *audit_default_path(void);
/* Path: `path`, else audit_default_path(). Creates the file 0600
 * (directory 0700). Failure to open is reported once and events still go
 * to syslog. Rotation (doc/OPERATIONS.md "Log rotation"): before each
 * event the path is compared with the open file (device and inode); once
 * it names another file or none (logrotate moved it away), the path is
 * opened afresh, so the next event lands in the new file and no signal
 * or copytruncate is needed. */
void audit_open(const char *path);
const char *audit_path(void);
void audit_set_volume(const char *volume_id_hex);
/* event: "mount", "unwrap", "wrap", "check", "lock", "resume", "cmk_enable",
 * "cmk_rotate", "cmk_disable", "umount", "transient_expire", "fsck_repair",
 * "file_rekey" (the last three with counts in detail, never names). key: a key URI or
 * local:<id> (may be NULL). result: "ok", "denied" (Key Vault, Entra ID or
 * the key refused), "transient" (not reachable: network, 5xx, 429),
 * "error" (anything else), "manual", "refused", "warning".
 * detail: a short reason (may be NULL). */
void audit_event(const char *event, const char *key, const char *result,
		 const char *detail);
/* The same with the cause of a result and the request ids that join it to
 * the service's own logs (Key Vault's AuditEvent): each of cause, code,
 * request_id, client_request_id (any may be NULL or "") becomes a field of
 * the line when not empty. */
struct audit_why {
	const char *cause;		/* "disabled", "firewall", ... */
	const char *code;		/* "Forbidden/KeyDisabled", "AADSTS7000222" */
	const char *request_id;		/* the service's x-ms-request-id */
	const char *client_request_id;	/* our x-ms-client-request-id */
	unsigned long checks;	/* "checks":N when > 0: the key checks a
				 * summary line stands for */
};
void audit_event_why(const char *event, const char *key, const char *result,
		     const char *detail, const struct audit_why *why);

/* One event of the log as audit_reader_next() hands it over; the strings
 * live until the next call or audit_reader_close(). */
struct audit_record {
	const char *time;	/* "2026-11-23T10:00:00.123Z" */
	const char *event;
	const char *result;
	const char *key;	/* NULL: no key involved */
	const char *detail;	/* "" if none */
	const char *line;	/* the line as logged, newline included */
};

/* Reads back the events of one volume from an audit log. */
struct audit_reader;

/* Open the log at `path` for the events of volume `volume_id_hex` whose
 * time is at or after `since` ("YYYY-MM-DDTHH:MM:SS" or a prefix of it,
 * copied; "" for all). Free with audit_reader_close().
 * Errors: -errno of fopen, -ENOMEM, -EINVAL (an id or `since` longer
 * than those forms). */
CMK_MUST_CHECK int audit_reader_open(const char *path,
				     const char *volume_id_hex,
				     const char *since,
				     struct audit_reader **out);
/* The next matching event, oldest first: 1 and *rec filled, or 0 at the
 * end. Lines that are not events of this format are skipped. */
int audit_reader_next(struct audit_reader *ar, struct audit_record *rec);
void audit_reader_close(struct audit_reader *ar);	/* NULL-safe */
/* A --since argument, an age ("90m", "24h", "7d", counted back from now)
 * or an ISO 8601 UTC time or date ("2026-11-23T10:00:00Z", "2026-11-23"),
 * into the `since` form of audit_read(). Errors: -EINVAL. */
CMK_MUST_CHECK int audit_parse_since(const char *s, time_t now, char *out,
				     size_t cap);

#endif
