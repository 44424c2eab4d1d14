/* include/cmkfs/volio.h — a volume on disk: read/write cmkfs.conf and
 * unlock it with the service key (coordinates format/volume.c, keys/). */
#ifndef CMKFS_VOLIO_H
#define CMKFS_VOLIO_H

#include "cmkfs/keyring.h"
#include "cmkfs/volume.h"

/* Errors: -ENOENT (no volume here), -EBADMSG (malformed config). */
CMK_MUST_CHECK int volio_read(int dirfd, struct volume *v);
CMK_MUST_CHECK int volio_write(int dirfd, const struct volume *v);
/* Load the service key and unlock the volume at dirfd. */
CMK_MUST_CHECK int volio_unlock(int dirfd, const char *service_key_path,
				struct keyring **kr);
/* Providers for both layers of v: the service key for `local` layers,
 * Key Vault for `akv` ones. Close both with keyprov_close(). */
CMK_MUST_CHECK int volio_providers(const struct volume *v,
				   const char *service_key_path,
				   struct keyprov *prov[2]);
/* Serialise config writers (cmk, rekey) of the volume at dirfd: an
 * exclusive flock on the root's cmkfs.dirid. Returns a lock fd for
 * volio_unlock_config(), or -errno. Blocks. */
CMK_MUST_CHECK int volio_lock_config(int dirfd);
/* The same without waiting: -EBUSY when another process holds it. */
CMK_MUST_CHECK int volio_trylock_config(int dirfd);
void volio_unlock_config(int lockfd);
/* Commands that write a volume without a mount (offline rekey, fsck
 * --repair) take an exclusive flock on the directory fd; a mount daemon
 * holds a shared one for its life. Errors: -EBUSY (mounted or busy). */
CMK_MUST_CHECK int volio_lock_offline(int dirfd);
/* 0 if cmkfs.conf on disk is byte for byte `v`, -ESTALE if not. */
CMK_MUST_CHECK int volio_same_as_disk(int dirfd, const struct volume *v);
/* A user-facing sentence for an error of volio_unlock / cfile calls. */
const char *volio_strerror(int rc);

#endif
