/* tests/unit/test_create.c — the volume-creation engine on temporary
 * directories, without root: a new volume reads back and unlocks, its root
 * directory id is there, the service key is made once, and a volume, a
 * non-empty directory, a bad block size or an unsafe service key file are
 * refused without writing anything. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/create.h"
#include "cmkfs/dirtree.h"
#include "cmkfs/names.h"
#include "cmkfs/reserved.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

static char top[1024], keypath[PATH_MAX];

static void path_of(char *out, const char *name)
{
	if (snprintf(out, PATH_MAX, "%s/%s", top, name) >= PATH_MAX)
		abort();
}

static int exists(const char *dir, const char *name)
{
	char p[PATH_MAX];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return access(p, F_OK) == 0;
}

static int create(const char *dir, uint32_t bs, struct create_result *r)
{
	struct create_opts o = { .service_key = keypath, .block_size = bs };

	return create_volume(dir, &o, r);
}

static void new_volume(void)
{
	char dir[PATH_MAX], hex[VOLUME_ID_HEX_LEN];
	static struct create_result r;
	struct keyring *kr = NULL;
	struct volume v;
	struct stat st;
	int fd;

	path_of(dir, "vol");
	CHECK_RC(create(dir, 0, &r), 0);
	CHECK(r.stage == CREATE_STAGE_DONE && r.err == 0, "stage %d err %d",
	      r.stage, r.err);
	CHECK(r.key_created, "the service key was not reported as new");
	CHECK(r.block_size == BLOCK_SIZE_DEFAULT, "block size %u",
	      r.block_size);
	CHECK(stat(keypath, &st) == 0 && (st.st_mode & 0777) == 0600,
	      "service key file mode %o", st.st_mode & 0777);
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700,
	      "volume directory mode %o", st.st_mode & 0777);

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s: %s", dir, strerror(errno));
	CHECK_RC(volio_read(fd, &v), 0);
	CHECK(v.block_size == BLOCK_SIZE_DEFAULT, "config block size %u",
	      v.block_size);
	CHECK(v.layer[0].prov == KPROV_LOCAL && v.layer[1].prov == KPROV_LOCAL,
	      "providers %u %u", v.layer[0].prov, v.layer[1].prov);
	volume_id_hex(&v, hex);
	CHECK(strcmp(hex, r.volume_id) == 0, "volume id %s, reported %s", hex,
	      r.volume_id);
	/* Format 3: the root's id is a record bound to the root's place. */
	CHECK(fstatat(fd, DIRID_FILE, &st, 0) == 0 &&
		      st.st_size == DIRID_V3_LEN && (st.st_mode & 0777) == 0400,
	      "root directory id: size %lld mode %o", (long long)st.st_size,
	      st.st_mode & 0777);
	CHECK_RC(volio_unlock(fd, keypath, &kr), 0);
	{
		uint8_t id[DIRID_LEN];

		CHECK_RC(dirtree_read_dirid(kr, fd, NULL, id), 0);
		CHECK_RC(dirtree_read_dirid(kr, fd, "x", id), -EXDEV);
	}
	keyring_free(kr);
	close(fd);
}

static void refusals(void)
{
	char dir[PATH_MAX], dir2[PATH_MAX], p[PATH_MAX];
	static char before[VOLUME_MAX_LEN + 1], after[VOLUME_MAX_LEN + 1];
	static struct create_result r;
	ssize_t n1, n2;
	int fd;

	/* A second create on the same directory: refused, config kept. */
	path_of(dir, "vol");
	n1 = tvol_slurp(dir, VOLUME_FILE, before, sizeof(before));
	CHECK(n1 > 0, "no config before the second create");
	CHECK_RC(create(dir, 0, &r), -EEXIST);
	CHECK(r.stage == CREATE_STAGE_DIR && strstr(r.msg, "already holds"),
	      "stage %d msg '%s'", r.stage, r.msg);
	n2 = tvol_slurp(dir, VOLUME_FILE, after, sizeof(after));
	CHECK(n1 == n2 && memcmp(before, after, (size_t)n1) == 0,
	      "the config changed under a refused create");

	/* Bad block sizes: refused before the directory is made. */
	path_of(dir2, "badbs");
	CHECK_RC(create(dir2, 1000, &r), -EINVAL);
	CHECK(r.stage == CREATE_STAGE_ARGS, "stage %d", r.stage);
	CHECK_RC(create(dir2, 256, &r), -EINVAL);
	CHECK_RC(create(dir2, 2 * 1048576, &r), -EINVAL);
	CHECK(!exists(top, "badbs"), "a refused create made its directory");

	/* A directory with a user file in it. */
	path_of(dir2, "full");
	CHECK(mkdir(dir2, 0700) == 0, "mkdir: %s", strerror(errno));
	path_of(p, "full/somefile");
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", p);
	if (fd >= 0)
		close(fd);
	CHECK_RC(create(dir2, 0, &r), -ENOTEMPTY);
	CHECK(r.stage == CREATE_STAGE_DIR && strstr(r.msg, "not empty"),
	      "stage %d msg '%s'", r.stage, r.msg);
	CHECK(!exists(dir2, VOLUME_FILE) && !exists(dir2, DIRID_FILE),
	      "a refused create wrote into a non-empty directory");

	/* A parent that does not exist. */
	path_of(dir2, "no/such/dir");
	CHECK_RC(create(dir2, 0, &r), -ENOENT);
	CHECK(r.stage == CREATE_STAGE_DIR, "stage %d", r.stage);

	/* A service key readable by others: refused, nothing written. */
	CHECK(chmod(keypath, 0644) == 0, "chmod: %s", strerror(errno));
	path_of(dir2, "badkey");
	CHECK_RC(create(dir2, 0, &r), -EPERM);
	CHECK(r.stage == CREATE_STAGE_SERVICE_KEY, "stage %d", r.stage);
	CHECK(!exists(dir2, VOLUME_FILE), "config written without a key");
	CHECK(chmod(keypath, 0600) == 0, "chmod: %s", strerror(errno));
}

/* An existing empty directory (stale temporaries allowed), the service key
 * reused, another block size. */
static void existing_dir(void)
{
	char dir[PATH_MAX], p[PATH_MAX];
	static struct create_result r;
	struct keyring *kr = NULL;
	struct volume v;
	int fd;

	path_of(dir, "empty");
	CHECK(mkdir(dir, 0755) == 0, "mkdir: %s", strerror(errno));
	path_of(p, "empty/" TMP_PREFIX "0123456789abcdef");
	fd = open(p, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0, "create %s", p);
	if (fd >= 0)
		close(fd);
	CHECK_RC(create(dir, 512, &r), 0);
	CHECK(!r.key_created, "the existing service key was reported as new");
	CHECK(access(p, F_OK) != 0, "the stale temporary is still there");
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK(fd >= 0, "open %s", dir);
	CHECK_RC(volio_read(fd, &v), 0);
	CHECK(v.block_size == 512, "block size %u", v.block_size);
	CHECK_RC(volio_unlock(fd, keypath, &kr), 0);
	keyring_free(kr);
	close(fd);
}

int main(void)
{
	size_t base;

	CHECK_RC(aead_global_init(), 0);
	if (tvol_tmpdir("test_create", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	path_of(keypath, "service.key");
	base = secmem_in_use();
	new_volume();
	refusals();
	existing_dir();
	CHECK(secmem_in_use() == base, "secmem in use %zu, was %zu",
	      secmem_in_use(), base);
	(void)tvol_rmtree(top);
	return t_done("test_create");
}
