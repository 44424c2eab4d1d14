/* src/format/volume.c — volume config bytes <-> struct (doc/FORMAT.md §1). */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cmkfs/rdwr.h"
#include "cmkfs/volume.h"

int volume_block_size_ok(uint64_t bs)
{
	return bs >= BLOCK_SIZE_MIN && bs <= BLOCK_SIZE_MAX &&
	       (bs & (bs - 1)) == 0;
}

const char *volume_prov_name(uint8_t prov)
{
	switch (prov) {
	case KPROV_LOCAL:
		return "local";
	case KPROV_AKV:
		return "akv";
	default:
		return "unknown";
	}
}

void volume_id_hex(const struct volume *v, char out[static VOLUME_ID_HEX_LEN])
{
	static const char d[] = "0123456789abcdef";

	for (int i = 0; i < VOLUME_ID_LEN; i++) {
		out[2 * i] = d[v->volume_id[i] >> 4];
		out[2 * i + 1] = d[v->volume_id[i] & 15];
	}
	out[2 * VOLUME_ID_LEN] = '\0';
}

static int parse_layer(struct rd *r, struct vol_layer *l)
{
	uint16_t id_len;

	if (rd_u8(r, &l->prov) < 0 ||
	    (l->prov != KPROV_LOCAL && l->prov != KPROV_AKV) ||
	    rd_u16(r, &id_len) < 0 || id_len > VOLUME_KEYID_MAX ||
	    rd_bytes(r, l->key_id, id_len) < 0 ||
	    memchr(l->key_id, '\0', id_len) != NULL ||
	    rd_u16(r, &l->wrapped_len) < 0 || l->wrapped_len == 0 ||
	    l->wrapped_len > VOLUME_WRAPPED_MAX ||
	    rd_bytes(r, l->wrapped, l->wrapped_len) < 0)
		return -EBADMSG;
	l->key_id[id_len] = '\0';
	return 0;
}

static int parse_wrapped(struct rd *r, uint16_t *len, uint8_t *buf)
{
	if (rd_u16(r, len) < 0 || *len == 0 || *len > VOLUME_WRAPPED_MAX ||
	    rd_bytes(r, buf, *len) < 0)
		return -EBADMSG;
	return 0;
}

/* v2 only: the wrapped volume secret and, while a rekey runs, the
 * previous generation's wrapped KEKs. */
static int parse_v2(struct rd *r, struct volume *p)
{
	uint16_t n;

	if (rd_u16(r, &n) < 0 || n != VOLUME_SECRET_WRAPPED_LEN ||
	    rd_bytes(r, p->secret_wrapped, n) < 0)
		return -EBADMSG;
	if (!(p->flags & VOLUME_FLAG_REKEY))
		return 0;
	if (rd_u32(r, &p->prev_gen) < 0 || p->prev_gen >= p->kek_gen ||
	    parse_wrapped(r, &p->prev_wrapped_len[0], p->prev_wrapped[0]) < 0 ||
	    parse_wrapped(r, &p->prev_wrapped_len[1], p->prev_wrapped[1]) < 0)
		return -EBADMSG;
	if (!(p->flags & VOLUME_FLAG_FULL))
		return 0;
	if (rd_u16(r, &n) < 0 || n != VOLUME_SECRET_WRAPPED_LEN ||
	    rd_bytes(r, p->prev_secret_wrapped, n) < 0)
		return -EBADMSG;
	return 0;
}

/* The flags a config of `version` may carry: FULL only with REKEY. */
static bool flags_ok(uint16_t version, uint16_t flags)
{
	if (version < 2)
		return flags == 0;
	if (flags & ~(VOLUME_FLAG_REKEY | VOLUME_FLAG_FULL |
		      VOLUME_FLAG_UPGRADE | VOLUME_FLAG_FOLLOW))
		return false;
	if ((flags & VOLUME_FLAG_UPGRADE) &&
	    (version < 3 || (flags & VOLUME_FLAG_REKEY)))
		return false;
	return !(flags & VOLUME_FLAG_FULL) || (flags & VOLUME_FLAG_REKEY);
}

int volume_parse(const uint8_t *buf, size_t len, struct volume *out)
{
	struct rd r = rd_init(buf, len);
	struct volume tmp, *p = &tmp;
	char magic[8];
	uint32_t bs;

	memset(p, 0, sizeof(*p));
	if (len > VOLUME_MAX_LEN ||
	    rd_bytes(&r, magic, sizeof(magic)) < 0 ||
	    memcmp(magic, VOLUME_MAGIC, sizeof(magic)) != 0 ||
	    rd_u16(&r, &p->version) < 0 || p->version < VOLUME_VERSION_MIN ||
	    p->version > VOLUME_VERSION ||
	    rd_u16(&r, &p->flags) < 0 ||
	    !flags_ok(p->version, p->flags) ||
	    (p->version == 1 && len > 4096) ||
	    rd_bytes(&r, p->volume_id, VOLUME_ID_LEN) < 0 ||
	    rd_u32(&r, &bs) < 0 || !volume_block_size_ok(bs) ||
	    rd_u16(&r, &p->suite) < 0 || p->suite != VOLUME_SUITE_GCM_GCM_SIV ||
	    rd_u32(&r, &p->kek_gen) < 0 || p->kek_gen == 0 ||
	    rd_u64(&r, &p->created_sec) < 0 ||
	    parse_layer(&r, &p->layer[0]) < 0 ||
	    parse_layer(&r, &p->layer[1]) < 0 ||
	    (p->version >= 2 && parse_v2(&r, p) < 0) ||
	    (p->version >= 3 && rd_u64(&r, &p->zones_version) < 0) ||
	    rd_bytes(&r, p->mac, HMAC_LEN) < 0 || rd_left(&r) != 0)
		return -EBADMSG;
	if ((p->flags & VOLUME_FLAG_FOLLOW) && p->layer[1].prov != KPROV_AKV)
		return -EBADMSG;	/* nothing to follow */
	p->block_size = bs;
	*out = *p;
	return 0;
}

static int ser_layer(struct wr *w, const struct vol_layer *l)
{
	size_t id_len = strnlen(l->key_id, sizeof(l->key_id));

	if (id_len > VOLUME_KEYID_MAX || l->wrapped_len == 0 ||
	    l->wrapped_len > VOLUME_WRAPPED_MAX)
		return -EINVAL;
	if (wr_u8(w, l->prov) < 0 || wr_u16(w, (uint16_t)id_len) < 0 ||
	    wr_bytes(w, l->key_id, id_len) < 0 ||
	    wr_u16(w, l->wrapped_len) < 0 ||
	    wr_bytes(w, l->wrapped, l->wrapped_len) < 0)
		return -ENOSPC;
	return 0;
}

static int ser_wrapped(struct wr *w, uint16_t len, const uint8_t *buf)
{
	if (len == 0 || len > VOLUME_WRAPPED_MAX)
		return -EINVAL;
	if (wr_u16(w, len) < 0 || wr_bytes(w, buf, len) < 0)
		return -ENOSPC;
	return 0;
}

static int ser_v2(struct wr *w, const struct volume *v)
{
	int rc;

	if (!flags_ok(v->version, v->flags))
		return -EINVAL;
	if (wr_u16(w, VOLUME_SECRET_WRAPPED_LEN) < 0 ||
	    wr_bytes(w, v->secret_wrapped, VOLUME_SECRET_WRAPPED_LEN) < 0)
		return -ENOSPC;
	if (!(v->flags & VOLUME_FLAG_REKEY))
		return 0;
	if (v->prev_gen >= v->kek_gen)
		return -EINVAL;
	if (wr_u32(w, v->prev_gen) < 0)
		return -ENOSPC;
	rc = ser_wrapped(w, v->prev_wrapped_len[0], v->prev_wrapped[0]);
	if (rc == 0)
		rc = ser_wrapped(w, v->prev_wrapped_len[1], v->prev_wrapped[1]);
	if (rc < 0 || !(v->flags & VOLUME_FLAG_FULL))
		return rc;
	if (wr_u16(w, VOLUME_SECRET_WRAPPED_LEN) < 0 ||
	    wr_bytes(w, v->prev_secret_wrapped, VOLUME_SECRET_WRAPPED_LEN) < 0)
		return -ENOSPC;
	return 0;
}

int volume_serialize(const struct volume *v, uint8_t *buf, size_t cap,
		     size_t *len)
{
	struct wr w = wr_init(buf, cap);
	int rc;

	if (v->version < VOLUME_VERSION_MIN || v->version > VOLUME_VERSION ||
	    !flags_ok(v->version, v->flags) ||
	    ((v->flags & VOLUME_FLAG_FOLLOW) && v->layer[1].prov != KPROV_AKV))
		return -EINVAL;
	if (wr_bytes(&w, VOLUME_MAGIC, 8) < 0 ||
	    wr_u16(&w, v->version) < 0 || wr_u16(&w, v->flags) < 0 ||
	    wr_bytes(&w, v->volume_id, VOLUME_ID_LEN) < 0 ||
	    wr_u32(&w, v->block_size) < 0 || wr_u16(&w, v->suite) < 0 ||
	    wr_u32(&w, v->kek_gen) < 0 || wr_u64(&w, v->created_sec) < 0)
		return -ENOSPC;
	rc = ser_layer(&w, &v->layer[0]);
	if (rc == 0)
		rc = ser_layer(&w, &v->layer[1]);
	if (rc == 0 && v->version >= 2)
		rc = ser_v2(&w, v);
	if (rc == 0 && v->version >= 3 && wr_u64(&w, v->zones_version) < 0)
		rc = -ENOSPC;
	if (rc < 0)
		return rc;
	if (wr_bytes(&w, v->mac, HMAC_LEN) < 0 ||
	    (v->version == 1 && w.pos > 4096))
		return -ENOSPC;
	*len = w.pos;
	return 0;
}

static int compute_mac(const struct volume *v, const uint8_t key[static 32],
		       uint8_t mac[static HMAC_LEN])
{
	uint8_t buf[VOLUME_MAX_LEN];
	size_t len;
	int rc;

	rc = volume_serialize(v, buf, sizeof(buf), &len);
	if (rc < 0)
		return rc;
	return kdf_hmac(key, 32, buf, len - HMAC_LEN, mac);
}

int volume_seal_mac(struct volume *v, const uint8_t mac_key[static 32])
{
	return compute_mac(v, mac_key, v->mac);
}

int volume_check_mac(const struct volume *v, const uint8_t mac_key[static 32])
{
	uint8_t mac[HMAC_LEN];
	int rc;

	rc = compute_mac(v, mac_key, mac);
	if (rc < 0)
		return rc;
	return CRYPTO_memcmp(mac, v->mac, HMAC_LEN) == 0 ? 0 : -EBADMSG;
}
