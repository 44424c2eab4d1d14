/* tests/lib/tvol.c — set-up shared by the unit tests (tvol.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/cfile.h"
#include "cmkfs/create.h"
#include "cmkfs/volio.h"
#include "tap.h"
#include "tvol.h"

int tvol_tmpdir(const char *name, char *top, size_t cap)
{
	const char *tmp = getenv("TMPDIR");
	int n;

	n = snprintf(top, cap, "%s/cmkfs-%s.XXXXXX",
		     tmp && *tmp ? tmp : "/tmp", name);
	if (n < 0 || (size_t)n >= cap) {
		errno = ENAMETOOLONG;	/* for the caller's perror() */
		return -ENAMETOOLONG;
	}
	return mkdtemp(top) == NULL ? -errno : 0;
}

static int rm_one(const char *p, const struct stat *st, int flag,
		  struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p) < 0 ? -1 : 0;
}

int tvol_rmtree(const char *path)
{
	return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -errno;
}

bool tvol_exists(int dfd, const char *name)
{
	return faccessat(dfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
}

ssize_t tvol_slurp(const char *dir, const char *name, char *buf, size_t cap)
{
	char p[PATH_MAX];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, cap - 1);
	close(fd);
	buf[n < 0 ? 0 : n] = '\0';
	return n;
}

bool tvol_file_has(const char *path, const char *needle)
{
	static char buf[65536];
	FILE *f = fopen(path, "r");
	size_t n;

	if (f == NULL)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

int tvol_mem_make(struct tvol_mem *vo, uint32_t bs, uint32_t seed)
{
	uint8_t skey[SERVICE_KEY_LEN], volid[VOLUME_ID_LEN];
	int rc;

	memset(vo, 0, sizeof(*vo));
	t_fill(skey, sizeof(skey), seed);
	t_fill(volid, sizeof(volid), seed + 1);
	rc = kp_local_open(skey, volid, 0, &vo->prov[0]);
	if (rc == 0)
		rc = kp_local_open(skey, volid, 1, &vo->prov[1]);
	if (rc == 0)
		rc = keyring_create(vo->prov, bs, volid, &vo->v, &vo->kr);
	return rc;
}

void tvol_mem_free(struct tvol_mem *vo)
{
	keyring_free(vo->kr);
	keyprov_close(vo->prov[0]);
	keyprov_close(vo->prov[1]);
	memset(vo, 0, sizeof(*vo));
}

int tvol_create(const char *dir, const char *key, uint32_t bs)
{
	/* create_result holds a message of PATH_MAX and more: not on the
	 * stack of a test that may run under a small one. */
	static struct create_result r;
	struct create_opts o = { .service_key = key, .block_size = bs };

	return create_volume(dir, &o, &r);
}

int tvol_unlock(const char *dir, const char *key, int *rootfd,
		struct keyring **kr)
{
	int rc;

	*kr = NULL;
	*rootfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (*rootfd < 0)
		return -errno;
	rc = volio_unlock(*rootfd, key, kr);
	if (rc < 0) {
		keyring_free(*kr);
		*kr = NULL;
		close(*rootfd);
		*rootfd = -1;
	}
	return rc;
}

int tvol_bname(struct keyring *kr, int dfd, const char *name,
	       struct bname *bn)
{
	uint8_t dirid[DIRID_LEN];
	int rc;

	/* The root, or a directory whose id is bound to its name. */
	rc = dirtree_read_dirid(kr, dfd, NULL, dirid);
	if (rc == -EXDEV)
		rc = dirtree_read_dirid_fd(kr, -1, dfd, dirid);
	if (rc == 0)
		rc = dirtree_bname(kr, dirid, name, bn);
	if (rc == 0)
		rc = dirtree_longname_add(dfd, bn);
	return rc;
}

int tvol_write(struct keyring *kr, int dfd, const char *bname,
	       const uint8_t *data, size_t len)
{
	struct cfile cf;
	uint64_t at;
	int fd, rc;

	fd = openat(dfd, bname, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	cfile_init(&cf, kr, keyring_volume(kr)->block_size, fd);
	rc = cfile_create(&cf, fd, t_bname(fd));
	if (rc == 0)
		rc = cfile_write(&cf, fd, 0, data, len, false, &at);
	cfile_destroy(&cf);
	close(fd);
	return rc;
}

int tvol_read(struct keyring *kr, int dfd, const char *bname, uint8_t *buf,
	      size_t cap, size_t *got)
{
	struct cfile cf;
	int fd, rc;

	*got = 0;
	fd = openat(dfd, bname, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	cfile_init(&cf, kr, keyring_volume(kr)->block_size, fd);
	rc = cfile_load(&cf, fd);
	if (rc == 0)
		rc = cfile_read(&cf, fd, 0, cap, buf, got);
	cfile_destroy(&cf);
	close(fd);
	return rc;
}
