/* include/cmkfs/keyring.h — the unwrapped volume keys of one volume.
 * Holds KEK_S and KEK_C (secmem), the name key derived from both, and the
 * generation counter the file layer compares before using cached DEKs.
 * Wraps and unwraps per-file DEKs; never touches the network or files.
 * Thread-safe: key material is read under kr->lock. */
#ifndef CMKFS_KEYRING_H
#define CMKFS_KEYRING_H

#include <stdbool.h>

#include "cmkfs/aead.h"
#include "cmkfs/block.h"
#include "cmkfs/header.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/names.h"
#include "cmkfs/volume.h"

struct keyring;

/* Keyed per-file contexts; one user at a time. */
struct filekeys {
	struct block_ctx bc;	/* bc.file_id points at file_id below */
	uint8_t file_id[FILE_ID_LEN];
	uint64_t generation;	/* keyring generation it was made under */
	struct filekeys *next;	/* free-list link of the owner */
};

/* Make a new volume `volume_id` (random, chosen by the caller since the
 * providers bind to it): random KEKs wrapped by prov[0] (layer S) and
 * prov[1] (layer C), MAC sealed, written to *v. */
CMK_MUST_CHECK int keyring_create(struct keyprov *prov[2], uint32_t block_size,
				  const uint8_t volume_id[static VOLUME_ID_LEN],
				  struct volume *v, struct keyring **out);
/* Unwrap both KEKs of `v` and verify the config MAC.
 * Errors: -EKEYREJECTED (wrong key), -EBADMSG (config tampered), ... */
CMK_MUST_CHECK int keyring_open(const struct volume *v, struct keyprov *prov[2],
				struct keyring **out);
void keyring_free(struct keyring *kr);	/* NULL-safe, wipes */

/* Fill a new header (random file id and DEKs) and its keyed contexts. */
CMK_MUST_CHECK int keyring_new_file(struct keyring *kr, struct header *h,
				    struct filekeys **fk);
/* Unwrap a header's DEKs into keyed contexts.
 * Errors: -EKEYREJECTED (wrong KEK or tampered header), -EKEYREVOKED (locked). */
CMK_MUST_CHECK int keyring_open_file(struct keyring *kr, const struct header *h,
				     struct filekeys **fk);
/* Another set of contexts for the same file (for a second thread). */
CMK_MUST_CHECK int keyring_dup_file(struct keyring *kr, const struct header *h,
				    struct filekeys **fk);
void filekeys_free(struct filekeys *fk);	/* NULL-safe */

/* Copy the name key out (for a pure codec call). Errors: -EKEYREVOKED. */
CMK_MUST_CHECK int keyring_name_key(struct keyring *kr,
				    uint8_t key[static NAME_KEY_LEN]);
uint64_t keyring_generation(struct keyring *kr);
const struct volume *keyring_volume(struct keyring *kr);

#endif
