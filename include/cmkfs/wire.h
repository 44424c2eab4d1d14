/* include/cmkfs/wire.h — a shim on the FUSE wire, between /dev/fuse and
 * libfuse (fuse_session_custom_io), for what libfuse 3.14 cannot say.
 *
 * It negotiates FUSE_HANDLE_KILLPRIV_V2 (Linux >= 5.11): the kernel then
 * stops asking for security.capability (a GETXATTR round trip) before
 * writes, and instead tells the daemon, request by request, when the
 * caller lacks CAP_FSETID so that setuid/setgid must go: a flag on WRITE,
 * on SETATTR of the size, and on OPEN/CREATE with O_TRUNC. libfuse drops
 * those flags, so the shim reads them off the raw request and keeps them
 * for the worker thread that goes on to handle it (libfuse reads and
 * handles a request in the same thread); the handler takes them with
 * wire_kill_suidgid(). doc/PERFORMANCE.md has the counts. */
#ifndef CMKFS_WIRE_H
#define CMKFS_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct fuse_session;

/* Route the session's reads and writes through the shim. Call after
 * fuse_session_mount. Returns 0, or -1 if libfuse refused it (the mount
 * then runs as before, with the GETXATTR per write). */
int wire_attach(struct fuse_session *se);

/* Whether the kernel accepted FUSE_HANDLE_KILLPRIV_V2 (after INIT). */
bool wire_killpriv_v2(void);

/* Whether the request this thread is handling must clear setuid/setgid
 * (the kernel's FUSE_*_KILL_SUIDGID flag). */
bool wire_kill_suidgid(void);

/* The pieces, exposed for tests/unit/test_wire.c: look at one request
 * read from /dev/fuse (n bytes) and remember what it asks; patch a reply
 * about to be written. `offered` reports whether an INIT offered V2. */
void wire_note_request(const void *buf, size_t n);
void wire_patch_reply(struct iovec *iov, int count);

#endif
