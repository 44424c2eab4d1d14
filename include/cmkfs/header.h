/* include/cmkfs/header.h — per-file header, doc/FORMAT.md §2.
 * Owns parsing and serialising header bytes. No I/O, no keys, no logging.
 * All functions are pure and thread-safe. */
#ifndef CMKFS_HEADER_H
#define CMKFS_HEADER_H

#include <stdbool.h>

#include "cmkfs/aead.h"
#include "cmkfs/common.h"

#define HEADER_MAGIC 0x434d4b48u	/* "CMKH" */
#define HEADER_VERSION 1	/* formats 1 and 2 */
#define HEADER_VERSION_3 3	/* format 3: birth time, location slots */
#define FILE_ID_LEN 16
#define HEADER_PREFIX_LEN 28	/* v1 magic..file_id: bound into both wraps */
#define HEADER_LEN (HEADER_PREFIX_LEN + 2 * AEAD_WRAP_LEN)	/* 148 */
/* Version 3 keeps the length: its DEKs are wrapped with AES-SIV (tag ‖
 * ciphertext, no nonce), and the 24 bytes saved hold the birth time and
 * two location slots, all bound into both wraps. */
#define HEADER_SLOT_LEN 8	/* = NAMES_TOKEN_LEN */
#define HEADER_PREFIX3_LEN (HEADER_PREFIX_LEN + 8 + 2 * HEADER_SLOT_LEN) /* 52 */
#define HEADER_WRAP3_LEN (SIV_TAG_LEN + AEAD_KEY_LEN)	/* 48 */
/* Slot a all 0xFF: the file has several links, slot b is the digest of
 * their token set (kept in LINKSET_DIR). */
#define HEADER_SLOT_SET 0xff
/* Seals per unit of the header's sealing count (doc/FORMAT.md §3.3):
 * seal_units = u says the DEKs sealed at most (u + 1) * HEADER_SEAL_UNIT
 * blocks; 2^16 units of 2^16 are the 2^32 NIST SP 800-38D allows a key. */
#define HEADER_SEAL_UNIT (1u << 16)
#define HEADER_SEAL_UNITS_MAX UINT16_MAX

enum layer { LAYER_INNER = 1, LAYER_OUTER = 2 };

struct header {
	uint16_t version;		/* HEADER_VERSION or HEADER_VERSION_3 */
	uint16_t seal_units;		/* sealing count reserved beyond the
					 * first unit (bytes 6..7, once
					 * "flags": old files have 0) */
	uint32_t kek_gen;		/* KEK generation that wrapped the DEKs */
	uint8_t file_id[FILE_ID_LEN];
	/* v3 only (zero in v1): creation time, ns since the epoch, which
	 * transient expiry goes by; the location slots (doc/FORMAT.md §2). */
	uint64_t birth_ns;
	uint8_t slot[2][HEADER_SLOT_LEN];
	/* v1: nonce ‖ GCM ‖ tag (AEAD_WRAP_LEN); v3: SIV tag ‖ ciphertext
	 * (HEADER_WRAP3_LEN, the rest zero). */
	uint8_t wrap_inner[AEAD_WRAP_LEN];	/* DEK_1 under KEK_S */
	uint8_t wrap_outer[AEAD_WRAP_LEN];	/* DEK_2 under KEK_C */
};

/* Parse exactly `len` bytes into *h. Errors: -EBADMSG (bad magic, unknown
 * version, wrong length). Every seal_units value is valid (the wraps'
 * AAD authenticates it). *h is untouched on error. */
CMK_MUST_CHECK int header_parse(const uint8_t *buf, size_t len,
				struct header *h);
void header_serialize(const struct header *h, uint8_t buf[static HEADER_LEN]);
/* AAD for the wrap of `layer`'s DEK: header prefix (v1 28 bytes, v3 52)
 * ‖ layer byte. Returns its length. */
#define HEADER_AAD_LEN (HEADER_PREFIX3_LEN + 1)
size_t header_aad(const struct header *h, enum layer layer,
		  uint8_t aad[static HEADER_AAD_LEN]);
/* Is `tok` one of h's location slots (v3; a set header's digest is checked
 * elsewhere)? An all-zero token never matches. */
bool header_slot_has(const struct header *h, const uint8_t *tok);
/* Does h name a set of links (slot a all HEADER_SLOT_SET)? */
bool header_is_set(const struct header *h);

#endif
