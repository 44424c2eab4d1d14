/* include/cmkfs/keyring.h — the unwrapped volume keys of one volume.
 * Holds KEK_S and KEK_C (secmem; during a rekey also the previous pair),
 * the volume secret M with the name key derived from it, and the
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
 * Errors: -EKEYREJECTED (wrong key), -EBADMSG (config tampered),
 * -EUCLEAN (an upgrade is in progress, VOLUME_FLAG_UPGRADE: only
 * keyring_open_upgrade() opens it), ... */
CMK_MUST_CHECK int keyring_open(const struct volume *v, struct keyprov *prov[2],
				struct keyring **out);
CMK_MUST_CHECK int keyring_open_upgrade(const struct volume *v,
					struct keyprov *prov[2],
					struct keyring **out);
void keyring_free(struct keyring *kr);	/* NULL-safe, wipes */

/* Fill a new header (random file id and DEKs) and its keyed contexts. In a
 * format-3 volume the header is version 3: its birth time is now and its
 * location slots are h->slot as the caller set them (doc/FORMAT.md §2);
 * every other field of *h is overwritten. */
CMK_MUST_CHECK int keyring_new_file(struct keyring *kr, struct header *h,
				    struct filekeys **fk);
/* Unwrap a header's DEKs into keyed contexts.
 * Errors: -EKEYREJECTED (wrong KEK or tampered header), -EKEYREVOKED (locked). */
CMK_MUST_CHECK int keyring_open_file(struct keyring *kr, const struct header *h,
				     struct filekeys **fk);
/* Another set of contexts for the same file (for a second thread). */
CMK_MUST_CHECK int keyring_dup_file(struct keyring *kr, const struct header *h,
				    struct filekeys **fk);
void keyring_filekeys_free(struct filekeys *fk);	/* NULL-safe */

/* Copy the name key out (for a pure codec call). Errors: -EKEYREVOKED. */
CMK_MUST_CHECK int keyring_name_key(struct keyring *kr,
				    uint8_t key[static NAME_KEY_LEN]);
uint64_t keyring_generation(struct keyring *kr);

/* Lock means wipe (STYLE.md §3): KEKs, name and MAC keys are cleansed and
 * the generation bumped, so every cached per-file context is refused from
 * now on. Calls needing keys fail with -EKEYREVOKED until unlocked. */
void keyring_lock(struct keyring *kr);
bool keyring_is_locked(struct keyring *kr);
/* Unwrap the current config's KEKs again (resume after a lock), and install
 * them only if the generation is still `since` (keyring_generation() taken
 * before the caller proved access): a lock that came meanwhile stands.
 * Errors: the providers', -EAGAIN (locked or unlocked since `since`). */
CMK_MUST_CHECK int keyring_unlock(struct keyring *kr, struct keyprov *prov[2],
				  uint64_t since);
/* Prove that provider p still unwraps layer's KEK (and, unlocked, that it
 * unwraps to the KEK in memory). Errors as the provider's unwrap,
 * -EKEYREJECTED for a different key. */
CMK_MUST_CHECK int keyring_verify_layer(struct keyring *kr, struct keyprov *p,
					int layer);
/* A copy of the config with `layer` re-wrapped by p (its type and key id
 * recorded) and the MAC resealed. KEKs do not change: no file is touched.
 * Errors: -EBUSY (a rekey is in progress), -EKEYREVOKED, the provider's. */
CMK_MUST_CHECK int keyring_rewrap(struct keyring *kr, int layer,
				  struct keyprov *p, struct volume *out);
/* Adopt a config rewritten by `cmkfs cmk` (same volume, same KEKs: its
 * MAC must verify under our keys). Errors: -EKEYREJECTED, -EBADMSG. */
CMK_MUST_CHECK int keyring_set_volume(struct keyring *kr,
				      const struct volume *v);
struct volume *keyring_volume_copy(struct keyring *kr, struct volume *out);
/* Format 3: a copy of the config naming transient-zone list version zv,
 * MACed; written by the caller, then adopted (keyring_set_volume).
 * Errors: -EINVAL (older format), -EKEYREVOKED. */
CMK_MUST_CHECK int keyring_commit_zones(struct keyring *kr, uint64_t zv,
					struct volume *out);
/* A purpose key from both KEKs: HKDF(KEK_S ‖ KEK_C, volume id, label).
 * Errors: -EKEYREVOKED (locked). */
CMK_MUST_CHECK int keyring_derive(struct keyring *kr, const char *label,
				  uint8_t *out, size_t len);
/* The config itself: only where no rekey can run at the same time (an
 * offline tool, or before the control socket opens); a live daemon reads
 * keyring_volume_copy() or the accessors below. */
const struct volume *keyring_volume(struct keyring *kr);
/* Lock-free: the config's format version (1, 2, 3), the block size. */
unsigned keyring_version(struct keyring *kr);
uint32_t keyring_block_size(struct keyring *kr);
uint64_t keyring_zones_version(struct keyring *kr);
/* Unit tests only: run the same volume under another format's rules. */
void keyring_test_set_version(struct keyring *kr, unsigned version);

/* Rekey (doc/KEYS.md "Rekey"). persist() writes a config durably (it is
 * called with the keyring write-locked: keep it to a file write). */
typedef int (*keyring_persist_fn)(const struct volume *v, void *arg);
/* Step 1: fresh KEK_S and KEK_C for generation + 1, wrapped by prov[]
 * (the volume's own providers, unless `full`); the current KEKs kept as the previous
 * generation (VOLUME_FLAG_REKEY). persist() is called with the new config;
 * only if it succeeds do new files get the new generation. v1 volumes
 * become v2 (the name key is kept). Errors: -EALREADY (a rekey is already
 * in progress: walk and finish it), -EKEYREVOKED, -EKEYREJECTED (prov[]
 * are not the volume's), -EAGAIN (the config changed meanwhile), the
 * providers' and persist()'s. */
CMK_MUST_CHECK int keyring_rekey_begin(struct keyring *kr,
				       struct keyprov *prov[2], bool full,
				       keyring_persist_fn persist, void *arg);
/* Step 2, per file: *out = *in with its DEKs re-wrapped under the current
 * KEKs. Returns 1 if re-wrapped, 0 if `in` is already current (out
 * untouched). Errors: -EKEYREJECTED (neither generation / tampered),
 * -EKEYREVOKED. */
CMK_MUST_CHECK int keyring_rewrap_header(struct keyring *kr,
					 const struct header *in,
					 struct header *out);
/* *out = *in with seal_units = `units` (doc/FORMAT.md §3.3) and the same
 * DEKs wrapped again, since the wraps' AAD covers the count: under the
 * current KEKs, or, while a full rekey runs, under those of in's own
 * generation (there an old header gets fresh DEKs, never a mere new wrap:
 * keyring_refresh_file). Errors: -EKEYREJECTED (neither generation /
 * tampered), -EKEYREVOKED, -ENOMEM. */
CMK_MUST_CHECK int keyring_header_units(struct keyring *kr,
					const struct header *in,
					uint16_t units, struct header *out);
/* *out = *in (a version-3 header) with location slots `slot` and the same
 * DEKs wrapped again, as keyring_header_units() does. Errors: -EINVAL (not
 * version 3), as keyring_header_units(). */
CMK_MUST_CHECK int keyring_header_slots(struct keyring *kr,
					const struct header *in,
					const uint8_t slot[2][HEADER_SLOT_LEN],
					struct header *out);
/* Step 3, once no header of the previous generation is left (and they are
 * durable): drop the previous KEKs from the config and from memory. A
 * no-op without a rekey in progress. */
CMK_MUST_CHECK int keyring_rekey_finish(struct keyring *kr,
					keyring_persist_fn persist, void *arg);

/* Full rekey (doc/KEYS.md "Full rekey", VOLUME_FLAG_FULL): begun with
 * `full`, step 1 also makes a fresh volume secret M (so a fresh name key)
 * and keeps the current M as the previous generation's; prov[] may differ
 * from the volume's providers (`cmk enable` moves layer C to Key Vault),
 * and the previous generation's KEKs are re-wrapped by them. In step 2
 * every name is re-encrypted and every file gets fresh DEKs with its
 * blocks re-sealed (keyring_refresh_file, cfile_reseal); headers are
 * never merely re-wrapped (keyring_rewrap_header returns 0). Step 3 drops
 * the previous KEKs and M. */
bool keyring_full_rekey(struct keyring *kr);
/* Upgrade of a format-2 volume to format 3 (doc/FORMAT.md "Upgrade",
 * VOLUME_FLAG_UPGRADE). begin: the config becomes version 3 with the flag
 * (zone list version 0), keys unchanged; a no-op if the flag is set
 * already (a rerun). finish: the flag cleared (a no-op without it).
 * Errors: -EINVAL (format 1: rekey it first), -EALREADY (a rekey is in
 * progress), -EEXIST (format 3 already), -EKEYREVOKED, persist()'s. */
CMK_MUST_CHECK int keyring_upgrade_begin(struct keyring *kr,
					 keyring_persist_fn persist, void *arg);
CMK_MUST_CHECK int keyring_upgrade_finish(struct keyring *kr,
					  keyring_persist_fn persist,
					  void *arg);
bool keyring_upgrading(struct keyring *kr);
/* *out = the format-1/2 header `in` as version 3: the same file id, seal
 * count and DEKs, location slots `slot`, birth time birth_ns, the DEKs
 * wrapped the format-3 way. Only while upgrading. Errors: -EINVAL (in is
 * version 3, or no upgrade runs), as keyring_header_units(). */
CMK_MUST_CHECK int keyring_header_upgrade(struct keyring *kr,
					  const struct header *in,
					  const uint8_t slot[2][HEADER_SLOT_LEN],
					  uint64_t birth_ns, struct header *out);
/* The previous generation's name key / a purpose key from its M, while a
 * full rekey runs. Errors: -ENOENT (none), -EKEYREVOKED. */
CMK_MUST_CHECK int keyring_prev_name_key(struct keyring *kr,
					 uint8_t key[static NAME_KEY_LEN]);
CMK_MUST_CHECK int keyring_derive_prev(struct keyring *kr, const char *label,
				       uint8_t *out, size_t len);
/* Is the header of the current KEK generation? */
bool keyring_header_current(struct keyring *kr, const struct header *h);
/* *out = `in` with fresh DEKs wrapped under the current KEKs (same file
 * id, current generation); *old_fk keyed with in's DEKs (either
 * generation), *new_fk with the fresh ones. Errors: -EKEYREJECTED,
 * -EKEYREVOKED, -ENOMEM, -EIO. */
CMK_MUST_CHECK int keyring_refresh_file(struct keyring *kr,
					const struct header *in,
					struct header *out,
					struct filekeys **old_fk,
					struct filekeys **new_fk);

#endif
