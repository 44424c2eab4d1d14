/* include/cmkfs/linkset.h — the link set of a format-3 regular file with
 * more names than its header's two slots hold (doc/FORMAT.md §2.1):
 * LINKSET_DIR/<file id in hex>, the location tokens of every name of the
 * file, MACed under a key from the volume secret, with a version that the
 * header's slot b names (slot a all HEADER_SLOT_SET). The file keeps its
 * newest set and the one before, so that the header may name either while
 * it is rewritten. */
#ifndef CMKFS_LINKSET_H
#define CMKFS_LINKSET_H

#include "cmkfs/header.h"
#include "cmkfs/keyring.h"
#include "cmkfs/reserved.h"

#define LINKSET_MAGIC "CMKFSLS1"
#define LINKSET_MAX 4096		/* names of one file: EMLINK beyond */
#define LINKSET_LABEL "cmkfs v3 link set"

struct linkset {
	uint64_t version;
	uint32_t n;
	uint8_t (*tok)[HEADER_SLOT_LEN];	/* n tokens, malloc'd */
};

/* The version a set-mode header names (its slot b). */
uint64_t linkset_header_version(const struct header *h);
/* Parse and authenticate file bytes (pure but for the keys): the entries
 * newest first into s[0], s[1] (s[1].n = 0 and version 0 if there is one
 * entry only). The MAC is checked under the current secret and, while a
 * full rekey runs, the previous one (*prev set if that one it was).
 * Errors: -EBADMSG. */
CMK_MUST_CHECK int linkset_parse(struct keyring *kr, const uint8_t *buf,
				 size_t len,
				 const uint8_t id[static FILE_ID_LEN],
				 struct linkset s[2], bool *prev);
void linkset_free(struct linkset s[2]);
/* Both entries of file id's set file in rootfd's LINKSET_DIR, as
 * linkset_parse gives them (free with linkset_free). Errors: -ENOENT,
 * -EBADMSG (malformed, too long, fails its MAC, another file id's),
 * -errno of reading it. */
CMK_MUST_CHECK int linkset_read(struct keyring *kr, int rootfd,
				const uint8_t id[static FILE_ID_LEN],
				struct linkset s[2], bool *prev);
/* Is `name` a set file's name, a file id in lowercase hex? 0 (id gets it)
 * or -EINVAL. Pure. */
CMK_MUST_CHECK int linkset_name_id(const char *name,
				   uint8_t id[static FILE_ID_LEN]);
/* The set that header h (set mode) names, read from rootfd's LINKSET_DIR.
 * Errors: -ENOENT (no file), -EBADMSG (bad, or no entry of h's version). */
CMK_MUST_CHECK int linkset_load(struct keyring *kr, int rootfd,
				const struct header *h, struct linkset *out);
/* Is the token of backing base name bname in the set h names? 0 yes,
 * 1 no, -errno (-ENOENT, -EBADMSG: no such set). */
CMK_MUST_CHECK int linkset_has(struct keyring *kr, int rootfd,
			       const struct header *h, const char *bname);
/* Write the file's link set durably: `cur` newest, `old` (NULL: none)
 * kept beside it, MACed under the current secret. */
CMK_MUST_CHECK int linkset_store(struct keyring *kr, int rootfd,
				 const uint8_t id[static FILE_ID_LEN],
				 const struct linkset *cur,
				 const struct linkset *old);
/* Remove a file's link set (it went back to its slots). */
void linkset_remove(int rootfd, const uint8_t id[static FILE_ID_LEN]);
/* A full rekey's step: every link set still MACed under the previous
 * secret is stored again under the current one. *n counts them. */
CMK_MUST_CHECK int linkset_remac_all(struct keyring *kr, int rootfd,
				     size_t *n);
#endif
