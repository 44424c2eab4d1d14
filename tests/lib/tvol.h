/* tests/lib/tvol.h — set-up shared by the unit tests that need a volume:
 * a temporary directory and its removal, a keyring for a volume that lives
 * in memory only, a volume on disk made by create_volume() and unlocked,
 * and files written and read through the content codec.
 * Every function returns 0 or a negative errno and asserts nothing: the
 * caller checks, so that its own CHECK counts stay in its own program
 * (tap.h keeps them per file). No root needed. */
#ifndef CMKFS_TVOL_H
#define CMKFS_TVOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "cmkfs/dirtree.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "cmkfs/volume.h"

/* Make ${TMPDIR:-/tmp}/cmkfs-<name>.XXXXXX and put its path in top (cap
 * bytes). Errors: -ENAMETOOLONG, -errno of mkdtemp(). */
int tvol_tmpdir(const char *name, char *top, size_t cap);

/* Remove path and everything below it, links not followed. Errors: -errno
 * of the first entry that could not be removed. */
int tvol_rmtree(const char *path);

/* True if dfd/name exists (a dangling link does). */
bool tvol_exists(int dfd, const char *name);

/* Up to cap - 1 bytes of the file dir/name, NUL-terminated in buf; the
 * number of bytes read, or -1 if it does not open. */
ssize_t tvol_slurp(const char *dir, const char *name, char *buf, size_t cap);

/* True if the file at path (its first 64 KiB) holds needle. */
bool tvol_file_has(const char *path, const char *needle);

/* A volume that exists only in memory: the service key and volume id are
 * t_fill() streams `seed` and `seed + 1`, both layers under local
 * providers. Free with tvol_mem_free(), also after a failed make. */
struct tvol_mem {
	struct keyprov *prov[2];
	struct keyring *kr;
	struct volume v;
};

int tvol_mem_make(struct tvol_mem *vo, uint32_t bs, uint32_t seed);
void tvol_mem_free(struct tvol_mem *vo);

/* create_volume() of dir with the service key file key (made if missing)
 * and block size bs (0: the default), the customer layer under the
 * service key. Errors: create_volume()'s. */
int tvol_create(const char *dir, const char *key, uint32_t bs);

/* Open volume dir into *rootfd and unlock it with the service key file key
 * into *kr (free with keyring_free()). On error *rootfd is -1 and *kr
 * NULL. Errors: -errno of open(), volio_unlock()'s. */
int tvol_unlock(const char *dir, const char *key, int *rootfd,
		struct keyring **kr);

/* The backing name of plaintext `name` in directory dfd (from dfd's
 * directory id) into *bn, its long-name side file written if it needs
 * one: what the mount does before it makes an entry. */
int tvol_bname(struct keyring *kr, int dfd, const char *name,
	       struct bname *bn);

/* A new file dfd/bname (0600, must not exist) holding the len bytes of
 * data as the mount writes them, in the keyring's block size. */
int tvol_write(struct keyring *kr, int dfd, const char *bname,
	       const uint8_t *data, size_t len);

/* Up to cap plaintext bytes of file dfd/bname from offset 0 into buf, the
 * number read in *got. Errors: -errno of openat(), cfile_load()'s and
 * cfile_read()'s. */
int tvol_read(struct keyring *kr, int dfd, const char *bname, uint8_t *buf,
	      size_t cap, size_t *got);

#endif
