/* src/cipherdir/linkset.c — link sets of format-3 regular files
 * (doc/FORMAT.md §2.1). */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cmkfs/backing.h"
#include "cmkfs/kdf.h"
#include "cmkfs/linkset.h"
#include "cmkfs/names.h"
#include "cmkfs/rdwr.h"
#include "cmkfs/secmem.h"

#define HDR_LEN (8 + FILE_ID_LEN + 1)
#define MAX_BYTES (HDR_LEN + 2 * (8 + 2 + LINKSET_MAX * HEADER_SLOT_LEN) + \
		   HMAC_LEN)

uint64_t linkset_header_version(const struct header *h)
{
	uint64_t v = 0;

	for (int i = 0; i < HEADER_SLOT_LEN; i++)
		v = v << 8 | h->slot[1][i];
	return v;
}

static void id_hex(const uint8_t id[static FILE_ID_LEN], char out[33])
{
	for (int i = 0; i < FILE_ID_LEN; i++)
		snprintf(out + 2 * i, 3, "%02x", id[i]);
}

static int mac_key(struct keyring *kr, bool prev, uint8_t key[32])
{
	return prev ? keyring_derive_prev(kr, LINKSET_LABEL, key, 32) :
		      keyring_derive(kr, LINKSET_LABEL, key, 32);
}

void linkset_free(struct linkset s[2])
{
	for (int i = 0; i < 2; i++) {
		free(s[i].tok);
		s[i].tok = NULL;
		s[i].n = 0;
	}
}

int linkset_parse(struct keyring *kr, const uint8_t *buf, size_t len,
		  const uint8_t id[static FILE_ID_LEN], struct linkset s[2],
		  bool *prev)
{
	struct rd r;
	uint8_t magic[8], fid[FILE_ID_LEN], count, key[32], mac[HMAC_LEN];
	int rc = -EBADMSG;

	memset(s, 0, 2 * sizeof(*s));
	if (len < HDR_LEN + HMAC_LEN || len > MAX_BYTES)
		return -EBADMSG;
	/* The MAC first: nothing unauthenticated is looked at further. */
	*prev = false;
	for (int k = 0; k < 2; k++) {
		if (mac_key(kr, k == 1, key) < 0)
			continue;
		if (kdf_hmac(key, sizeof(key), buf, len - HMAC_LEN, mac) == 0 &&
		    CRYPTO_memcmp(mac, buf + len - HMAC_LEN, HMAC_LEN) == 0) {
			*prev = k == 1;
			rc = 0;
			break;
		}
	}
	secmem_wipe(key, sizeof(key));
	if (rc < 0)
		return rc;
	r = rd_init(buf, len - HMAC_LEN);
	if (rd_bytes(&r, magic, 8) < 0 ||
	    memcmp(magic, LINKSET_MAGIC, 8) != 0 ||
	    rd_bytes(&r, fid, FILE_ID_LEN) < 0 ||
	    memcmp(fid, id, FILE_ID_LEN) != 0 || rd_u8(&r, &count) < 0 ||
	    count < 1 || count > 2)
		return -EBADMSG;
	for (int i = 0; i < count; i++) {
		uint16_t n;

		if (rd_u64(&r, &s[i].version) < 0 || rd_u16(&r, &n) < 0 ||
		    n > LINKSET_MAX || s[i].version == 0) {
			linkset_free(s);
			return -EBADMSG;
		}
		s[i].n = n;
		s[i].tok = calloc(n ? n : 1, HEADER_SLOT_LEN);
		if (s[i].tok == NULL) {
			linkset_free(s);
			return -ENOMEM;
		}
		if (rd_bytes(&r, s[i].tok, (size_t)n * HEADER_SLOT_LEN) < 0) {
			linkset_free(s);
			return -EBADMSG;
		}
	}
	if (rd_left(&r) != 0 || (count == 2 && s[0].version <= s[1].version)) {
		linkset_free(s);
		return -EBADMSG;
	}
	return 0;
}

int linkset_read(struct keyring *kr, int rootfd,
		 const uint8_t id[static FILE_ID_LEN], struct linkset s[2],
		 bool *prev)
{
	char name[64], hex[33];
	uint8_t *buf;
	size_t len = 0;
	int dfd, rc;

	id_hex(id, hex);
	snprintf(name, sizeof(name), "%s/%s", LINKSET_DIR, hex);
	buf = malloc(MAX_BYTES + 1);
	if (buf == NULL)
		return -ENOMEM;
	dfd = rootfd;
	rc = backing_read_small(dfd, name, buf, MAX_BYTES + 1, &len);
	if (rc == 0 && len > MAX_BYTES)
		rc = -EBADMSG;
	if (rc == 0)
		rc = linkset_parse(kr, buf, len, id, s, prev);
	free(buf);
	return rc;
}

int linkset_load(struct keyring *kr, int rootfd, const struct header *h,
		 struct linkset *out)
{
	struct linkset s[2];
	uint64_t v = linkset_header_version(h);
	bool prev;
	int rc;

	if (!header_is_set(h))
		return -EINVAL;
	rc = linkset_read(kr, rootfd, h->file_id, s, &prev);
	if (rc < 0)
		return rc;
	for (int i = 0; i < 2; i++) {
		if (s[i].tok != NULL && s[i].version == v) {
			*out = s[i];
			s[i].tok = NULL;
			linkset_free(s);
			return 0;
		}
	}
	linkset_free(s);
	return -EBADMSG;
}

int linkset_has(struct keyring *kr, int rootfd, const struct header *h,
		const char *bname)
{
	uint8_t tok[HEADER_SLOT_LEN];
	struct linkset s = { 0 };
	int rc;

	rc = names_link_token(bname, tok);
	if (rc == 0)
		rc = linkset_load(kr, rootfd, h, &s);
	if (rc < 0)
		return rc;
	rc = 1;
	for (uint32_t i = 0; i < s.n && rc == 1; i++)
		if (memcmp(s.tok[i], tok, HEADER_SLOT_LEN) == 0)
			rc = 0;
	free(s.tok);
	return rc;
}

static void put_set(struct wr *w, const struct linkset *s)
{
	(void)(wr_u64(w, s->version) < 0 || wr_u16(w, (uint16_t)s->n) < 0 ||
	       wr_bytes(w, s->tok, (size_t)s->n * HEADER_SLOT_LEN) < 0);
}

int linkset_store(struct keyring *kr, int rootfd,
		  const uint8_t id[static FILE_ID_LEN],
		  const struct linkset *cur, const struct linkset *old)
{
	char hex[33];
	uint8_t *buf, key[32];
	struct wr w;
	int dfd, rc;

	if (cur->n > LINKSET_MAX || (old != NULL && old->n > LINKSET_MAX))
		return -EMLINK;
	buf = malloc(MAX_BYTES);
	if (buf == NULL)
		return -ENOMEM;
	w = wr_init(buf, MAX_BYTES);
	(void)(wr_bytes(&w, LINKSET_MAGIC, 8) < 0 ||
	       wr_bytes(&w, id, FILE_ID_LEN) < 0 ||
	       wr_u8(&w, old != NULL ? 2 : 1) < 0);
	put_set(&w, cur);
	if (old != NULL)
		put_set(&w, old);
	rc = mac_key(kr, false, key);
	if (rc == 0 && w.pos + HMAC_LEN > MAX_BYTES)
		rc = -ENOSPC;
	if (rc == 0)
		rc = kdf_hmac(key, sizeof(key), buf, w.pos, buf + w.pos);
	secmem_wipe(key, sizeof(key));
	if (rc < 0) {
		free(buf);
		return rc;
	}
	if (mkdirat(rootfd, LINKSET_DIR, 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		free(buf);
		return rc;
	}
	dfd = openat(rootfd, LINKSET_DIR, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		rc = -errno;
		free(buf);
		return rc;
	}
	id_hex(id, hex);
	rc = backing_replace(dfd, hex, buf, w.pos + HMAC_LEN, 0600);
	close(dfd);
	free(buf);
	return rc;
}

int linkset_name_id(const char *name, uint8_t id[static FILE_ID_LEN])
{
	static const char hex[] = "0123456789abcdef";

	if (strlen(name) != 2 * FILE_ID_LEN)
		return -EINVAL;
	for (int i = 0; i < FILE_ID_LEN; i++) {
		const char *hi = strchr(hex, name[2 * i]),
			   *lo = strchr(hex, name[2 * i + 1]);

		/* lowercase only: the one spelling id_hex writes */
		if (name[2 * i] == '\0' || name[2 * i + 1] == '\0' ||
		    hi == NULL || lo == NULL)
			return -EINVAL;
		id[i] = (uint8_t)((hi - hex) << 4 | (lo - hex));
	}
	return 0;
}

void linkset_remove(int rootfd, const uint8_t id[static FILE_ID_LEN])
{
	char name[64], hex[33];

	id_hex(id, hex);
	snprintf(name, sizeof(name), "%s/%s", LINKSET_DIR, hex);
	(void)unlinkat(rootfd, name, 0);
}

int linkset_remac_all(struct keyring *kr, int rootfd, size_t *n)
{
	struct dirent *de;
	DIR *d;
	int fd, rc = 0;

	*n = 0;
	fd = openat(rootfd, LINKSET_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	d = fdopendir(fd);
	if (d == NULL) {
		close(fd);
		return -errno;
	}
	while (rc == 0 && (de = readdir(d)) != NULL) {
		uint8_t id[FILE_ID_LEN];
		struct linkset s[2];
		bool prev = false;

		if (linkset_name_id(de->d_name, id) < 0)
			continue;	/* temporaries, dots: not sets */
		if (linkset_read(kr, rootfd, id, s, &prev) < 0)
			continue;	/* damaged: fsck names it */
		if (prev) {
			rc = linkset_store(kr, rootfd, id, &s[0],
					   s[1].tok != NULL ? &s[1] : NULL);
			*n += rc == 0;
		}
		linkset_free(s);
	}
	closedir(d);
	return rc;
}
