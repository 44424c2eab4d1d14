/* include/cmkfs/header.h — per-file header, doc/FORMAT.md §2.
 * Owns parsing and serialising header bytes. No I/O, no keys, no logging.
 * All functions are pure and thread-safe. */
#ifndef CMKFS_HEADER_H
#define CMKFS_HEADER_H

#include "cmkfs/aead.h"
#include "cmkfs/common.h"

#define HEADER_MAGIC 0x434d4b48u	/* "CMKH" */
#define HEADER_VERSION 1
#define FILE_ID_LEN 16
#define HEADER_PREFIX_LEN 28	/* magic..file_id: bound into both wraps */
#define HEADER_LEN (HEADER_PREFIX_LEN + 2 * AEAD_WRAP_LEN)	/* 148 */
/* Seals per unit of the header's sealing count (doc/FORMAT.md §3.3):
 * seal_units = u says the DEKs sealed at most (u + 1) * HEADER_SEAL_UNIT
 * blocks; 2^16 units of 2^16 are the 2^32 NIST SP 800-38D allows a key. */
#define HEADER_SEAL_UNIT (1u << 16)
#define HEADER_SEAL_UNITS_MAX UINT16_MAX

enum layer { LAYER_INNER = 1, LAYER_OUTER = 2 };

struct header {
	uint16_t seal_units;		/* sealing count reserved beyond the
					 * first unit (bytes 6..7, once
					 * "flags": old files have 0) */
	uint32_t kek_gen;		/* KEK generation that wrapped the DEKs */
	uint8_t file_id[FILE_ID_LEN];
	uint8_t wrap_inner[AEAD_WRAP_LEN];	/* DEK_1 under KEK_S */
	uint8_t wrap_outer[AEAD_WRAP_LEN];	/* DEK_2 under KEK_C */
};

/* Parse exactly `len` bytes into *h. Errors: -EBADMSG (bad magic, unknown
 * version, wrong length). Every seal_units value is valid (the wraps'
 * AAD authenticates it). *h is untouched on error. */
CMK_MUST_CHECK int header_parse(const uint8_t *buf, size_t len,
				struct header *h);
void header_serialize(const struct header *h, uint8_t buf[static HEADER_LEN]);
/* AAD for the wrap of `layer`'s DEK: header prefix ‖ layer byte. */
#define HEADER_AAD_LEN (HEADER_PREFIX_LEN + 1)
void header_aad(const struct header *h, enum layer layer,
		uint8_t aad[static HEADER_AAD_LEN]);

#endif
