/* tests/unit/test_kplocal.c — the service key sources (keys/kp_local.c):
 * a file (mode rule, size), a descriptor ("fd:N": a pipe, exactly 32 bytes
 * then end of file, read once, the regular-file mode rule), the systemd
 * credential as the default path, and pinning: once pinned and loaded, a
 * chmod, edit or removal of the file changes nothing until unpinned. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/keyprov.h"
#include "cmkfs/secmem.h"
#include "../lib/tap.h"

static char dir[] = "/tmp/test_kplocal.XXXXXX";

static void put(const char *path, const uint8_t *b, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	CHECK(fd >= 0 && write(fd, b, n) == (ssize_t)n, "write %s", path);
	close(fd);
	CHECK(chmod(path, mode) == 0, "chmod");
}

/* 0 if the key loaded from src is k; else the load's error */
static int loads_as(const char *src, const uint8_t *k)
{
	uint8_t *got = NULL;
	int rc = kp_local_load(src, &got);

	if (rc == 0 && memcmp(got, k, SERVICE_KEY_LEN) != 0)
		rc = 1;
	secmem_free(got, SERVICE_KEY_LEN);
	return rc;
}

/* "fd:N" of a pipe's read end holding n bytes of b */
static const char *piped(const uint8_t *b, size_t n, char *src, size_t cap)
{
	int p[2];

	CHECK(pipe(p) == 0, "pipe");
	CHECK(write(p[1], b, n) == (ssize_t)n, "pipe write");
	close(p[1]);
	snprintf(src, cap, "fd:%d", p[0]);
	return src;
}

int main(void)
{
	uint8_t k1[SERVICE_KEY_LEN + 1], k2[SERVICE_KEY_LEN];
	char f[256], g[256], src[32], cred[256];
	uint8_t *x = NULL;
	int fd;

	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	for (size_t i = 0; i < sizeof(k1); i++)
		k1[i] = (uint8_t)(i * 7 + 1);
	memset(k2, 0x42, sizeof(k2));
	snprintf(f, sizeof(f), "%s/a.key", dir);
	snprintf(g, sizeof(g), "%s/b.key", dir);

	/* files: as before */
	put(f, k1, SERVICE_KEY_LEN, 0600);
	CHECK_RC(loads_as(f, k1), 0);
	CHECK(chmod(f, 0640) == 0, "chmod");
	CHECK_RC(loads_as(f, k1), -EPERM);
	CHECK(chmod(f, 0600) == 0, "chmod");
	put(g, k1, SERVICE_KEY_LEN - 1, 0600);
	CHECK_RC(loads_as(g, k1), -EBADMSG);
	CHECK_RC(loads_as("/nonexistent/x.key", k1), -ENOENT);

	/* pinned: the first load is kept; the file no longer matters */
	CHECK_RC(kp_local_pin(f), 0);
	CHECK_RC(loads_as(f, k1), 0);
	CHECK(chmod(f, 0644) == 0, "chmod");
	CHECK_RC(loads_as(f, k1), 0);
	put(f, k2, SERVICE_KEY_LEN, 0600);
	CHECK_RC(loads_as(f, k1), 0);
	CHECK(unlink(f) == 0, "unlink");
	CHECK_RC(loads_as(f, k1), 0);
	/* another source is read as usual */
	put(g, k2, SERVICE_KEY_LEN, 0600);
	CHECK_RC(loads_as(g, k2), 0);
	kp_local_unpin();
	CHECK_RC(loads_as(f, k1), -ENOENT);
	/* a pin whose first load fails keeps trying the file */
	CHECK_RC(kp_local_pin(f), 0);
	CHECK_RC(loads_as(f, k1), -ENOENT);
	put(f, k2, SERVICE_KEY_LEN, 0600);
	CHECK_RC(loads_as(f, k2), 0);
	kp_local_unpin();

	/* descriptors: a pipe, read once, then copies */
	CHECK(kp_local_is_fd("fd:3") && !kp_local_is_fd("/etc/fd:3"), "is_fd");
	/* init with a descriptor: nothing to create, no file "fd:3" */
	CHECK_RC(kp_local_create("fd:3"), 0);
	CHECK(access("fd:3", F_OK) < 0, "a file named fd:3 was made");
	piped(k1, SERVICE_KEY_LEN, src, sizeof(src));
	CHECK_RC(loads_as(src, k1), 0);
	CHECK(fcntl(atoi(src + 3), F_GETFD) < 0, "the descriptor is closed");
	CHECK_RC(loads_as(src, k1), 0);
	kp_local_unpin();
	piped(k1, SERVICE_KEY_LEN + 1, src, sizeof(src));
	CHECK_RC(loads_as(src, k1), -EBADMSG);	/* 33 bytes: not cut */
	kp_local_unpin();
	piped(k1, SERVICE_KEY_LEN - 1, src, sizeof(src));
	CHECK_RC(loads_as(src, k1), -EBADMSG);
	kp_local_unpin();
	CHECK_RC(kp_local_read("fd:999", &x), -EBADF);
	CHECK_RC(kp_local_read("fd:x", &x), -EBADF);
	/* a regular file through a descriptor: the same mode rule */
	put(g, k2, SERVICE_KEY_LEN, 0644);
	fd = open(g, O_RDONLY);
	snprintf(src, sizeof(src), "fd:%d", fd);
	CHECK_RC(kp_local_read(src, &x), -EPERM);
	CHECK(chmod(g, 0400) == 0, "chmod");
	fd = open(g, O_RDONLY);
	snprintf(src, sizeof(src), "fd:%d", fd);
	CHECK_RC(kp_local_read(src, &x), 0);
	CHECK(x != NULL && memcmp(x, k2, SERVICE_KEY_LEN) == 0, "fd file");
	secmem_free(x, SERVICE_KEY_LEN);

	/* the default: $CMKFS_SERVICE_KEY, the credential, /etc */
	unsetenv("CMKFS_SERVICE_KEY");
	setenv("CREDENTIALS_DIRECTORY", dir, 1);
	CHECK(strcmp(kp_local_default_path(), SERVICE_KEY_DEFAULT) == 0,
	      "no credential passed: %s", kp_local_default_path());
	snprintf(cred, sizeof(cred), "%s/%s", dir, SERVICE_KEY_CREDENTIAL);
	put(cred, k1, SERVICE_KEY_LEN, 0400);
	CHECK(strcmp(kp_local_default_path(), cred) == 0, "credential: %s",
	      kp_local_default_path());
	CHECK_RC(loads_as(kp_local_default_path(), k1), 0);
	setenv("CMKFS_SERVICE_KEY", g, 1);
	CHECK(strcmp(kp_local_default_path(), g) == 0, "env first");
	unlink(cred);
	unlink(f);
	unlink(g);
	rmdir(dir);
	return t_done("test_kplocal");
}
