/* src/daemon/sdnotify.c — sd_notify(3) in one datagram
 * (include/cmkfs/sdnotify.h). */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cmkfs/log.h"
#include "cmkfs/sdnotify.h"

void sdnotify_send(const char *msg)
{
	const char *p = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (p == NULL || (*p != '/' && *p != '@'))
		return;
	n = strlen(p);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, p, n);
	if (*p == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("sd_notify: %s", strerror(errno));
	close(fd);
}
