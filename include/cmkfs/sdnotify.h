/* include/cmkfs/sdnotify.h — systemd's readiness protocol (sd_notify(3))
 * without libsystemd: one datagram of "KEY=value\n" lines to the socket
 * named by $NOTIFY_SOCKET (a path, or '@' for the abstract namespace).
 * Without $NOTIFY_SOCKET (not started by systemd) nothing is sent. */
#ifndef CMKFS_SDNOTIFY_H
#define CMKFS_SDNOTIFY_H

/* Send `msg` (e.g. "READY=1\nMAINPID=42"). Best effort: a send that fails
 * is logged as a warning; a missing or malformed $NOTIFY_SOCKET is
 * ignored. Thread-safe. */
void sdnotify_send(const char *msg);

#endif
