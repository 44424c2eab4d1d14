/* tests/unit/test_keyring.c — volume keys: create and reopen with local
 * providers, wrong service key, tampered KEK wraps and config fields, per-file
 * DEK wrap round trip, tampered and foreign headers, name key stability, and
 * no secret memory left allocated after everything is freed. */
#include "config.h"

#include <errno.h>
#include <string.h>

#include "cmkfs/block.h"
#include "cmkfs/header.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "cmkfs/secmem.h"
#include "../lib/tap.h"

/* Both local providers of volume `volid` under service key `skey`. */
static int open_provs(const uint8_t *skey, const uint8_t *volid,
		      struct keyprov *prov[2])
{
	int rc;

	prov[0] = prov[1] = NULL;
	rc = kp_local_open(skey, volid, 0, &prov[0]);
	if (rc == 0)
		rc = kp_local_open(skey, volid, 1, &prov[1]);
	if (rc < 0) {
		keyprov_close(prov[0]);
		prov[0] = NULL;
	}
	return rc;
}

static void close_provs(struct keyprov *prov[2])
{
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	prov[0] = prov[1] = NULL;
}

static int vol_eq(const struct volume *a, const struct volume *b)
{
	if (memcmp(a->volume_id, b->volume_id, VOLUME_ID_LEN) != 0 ||
	    a->block_size != b->block_size || a->suite != b->suite ||
	    a->kek_gen != b->kek_gen || a->created_sec != b->created_sec ||
	    memcmp(a->mac, b->mac, HMAC_LEN) != 0)
		return 0;
	for (int i = 0; i < 2; i++) {
		const struct vol_layer *x = &a->layer[i], *y = &b->layer[i];

		if (x->prov != y->prov || strcmp(x->key_id, y->key_id) != 0 ||
		    x->wrapped_len != y->wrapped_len ||
		    memcmp(x->wrapped, y->wrapped, x->wrapped_len) != 0)
			return 0;
	}
	return 1;
}

/* keyring_open() of `v`: returns its rc and frees a keyring that opened. */
static int try_open(const struct volume *v, struct keyprov *prov[2])
{
	struct keyring *kr = NULL;
	int rc;

	rc = keyring_open(v, prov, &kr);
	keyring_free(kr);
	return rc;
}

static void open_volume(void)
{
	uint8_t skey[SERVICE_KEY_LEN], skey2[SERVICE_KEY_LEN];
	uint8_t volid[VOLUME_ID_LEN], volid2[VOLUME_ID_LEN];
	struct keyprov *prov[2], *prov2[2], *provx[2], *swapped[2];
	struct keyring *kr = NULL, *kr2 = NULL;
	struct volume v, w;
	uint8_t cfg[VOLUME_MAX_LEN];
	size_t cfg_len = 0;

	t_fill(skey, sizeof(skey), 10);
	t_fill(skey2, sizeof(skey2), 11);
	t_fill(volid, sizeof(volid), 12);
	t_fill(volid2, sizeof(volid2), 13);
	CHECK_RC(open_provs(skey, volid, prov), 0);
	CHECK_RC(open_provs(skey2, volid, prov2), 0);
	CHECK_RC(open_provs(skey, volid2, provx), 0);
	if (prov[0] == NULL || prov2[0] == NULL || provx[0] == NULL)
		return;
	CHECK(strncmp(prov[0]->key_id, "local:", 6) == 0, "key id %s",
	      prov[0]->key_id);
	CHECK(strcmp(prov[0]->key_id, prov[1]->key_id) == 0,
	      "one service key, one id");
	CHECK(strcmp(prov[0]->key_id, prov2[0]->key_id) != 0,
	      "two service keys, one id");

	CHECK_RC(keyring_create(prov, 4096, volid, &v, &kr), 0);
	if (kr == NULL)
		goto out;
	CHECK(v.block_size == 4096 && v.suite == VOLUME_SUITE_GCM_GCM_SIV &&
		      v.kek_gen == 1 && v.created_sec > 0,
	      "volume fields");
	CHECK(memcmp(v.volume_id, volid, VOLUME_ID_LEN) == 0, "volume id");
	for (int i = 0; i < 2; i++) {
		CHECK(v.layer[i].prov == KPROV_LOCAL, "layer %d prov", i);
		CHECK(strcmp(v.layer[i].key_id, prov[i]->key_id) == 0,
		      "layer %d key id", i);
		CHECK(v.layer[i].wrapped_len == AEAD_WRAP_LEN,
		      "layer %d wrapped_len %u", i, v.layer[i].wrapped_len);
	}
	CHECK(memcmp(v.layer[0].wrapped, v.layer[1].wrapped,
		     AEAD_WRAP_LEN) != 0,
	      "layers wrapped alike");
	CHECK(keyring_generation(kr) == 1, "generation");
	CHECK(vol_eq(keyring_volume(kr), &v), "keyring_volume differs");
	keyring_free(kr);
	kr = NULL;

	/* Same key: opens, also after a trip through the config bytes. */
	CHECK_RC(try_open(&v, prov), 0);
	CHECK_RC(volume_serialize(&v, cfg, sizeof(cfg), &cfg_len), 0);
	CHECK_RC(volume_parse(cfg, cfg_len, &w), 0);
	CHECK_RC(try_open(&w, prov), 0);
	CHECK(vol_eq(&w, &v), "config round trip");
	/* The MAC under another key. */
	CHECK_RC(volume_check_mac(&v, skey2), -EBADMSG);

	/* Wrong service key, providers bound to another volume, the two
	 * providers given in the wrong order. */
	CHECK_RC(try_open(&v, prov2), -EKEYREJECTED);
	CHECK_RC(try_open(&v, provx), -EKEYREJECTED);
	swapped[0] = prov[1];
	swapped[1] = prov[0];
	CHECK_RC(try_open(&v, swapped), -EKEYREJECTED);
	/* Only one layer's key right: still refused. */
	swapped[0] = prov[0];
	swapped[1] = prov2[1];
	CHECK_RC(try_open(&v, swapped), -EKEYREJECTED);
	swapped[0] = prov2[0];
	swapped[1] = prov[1];
	CHECK_RC(try_open(&v, swapped), -EKEYREJECTED);

	/* Every byte of each wrapped KEK. */
	for (int i = 0; i < 2; i++) {
		for (size_t j = 0; j < v.layer[i].wrapped_len; j++) {
			w = v;
			w.layer[i].wrapped[j] ^= 0x01;
			CHECK_RC(try_open(&w, prov), -EKEYREJECTED);
			w.layer[i].wrapped[j] ^= 0x81;
			CHECK_RC(try_open(&w, prov), -EKEYREJECTED);
		}
		w = v;
		w.layer[i].wrapped_len--;
		CHECK(try_open(&w, prov) < 0, "short wrap of layer %d", i);
		w = v;
		w.layer[i].prov = KPROV_AKV;
		CHECK_RC(try_open(&w, prov), -EKEYREJECTED);
	}
	/* The two layers' wraps swapped. */
	w = v;
	memcpy(w.layer[0].wrapped, v.layer[1].wrapped, AEAD_WRAP_LEN);
	memcpy(w.layer[1].wrapped, v.layer[0].wrapped, AEAD_WRAP_LEN);
	CHECK_RC(try_open(&w, prov), -EKEYREJECTED);
	/* A layer's wrap copied over the other. */
	w = v;
	memcpy(w.layer[1].wrapped, v.layer[0].wrapped, AEAD_WRAP_LEN);
	CHECK_RC(try_open(&w, prov), -EKEYREJECTED);

	/* Config fields under the MAC only. */
	w = v;
	w.block_size = 8192;
	CHECK_RC(try_open(&w, prov), -EBADMSG);
	w = v;
	w.block_size = 512;
	CHECK_RC(try_open(&w, prov), -EBADMSG);
	w = v;
	w.created_sec++;
	CHECK_RC(try_open(&w, prov), -EBADMSG);
	w = v;
	w.created_sec ^= 1ull << 63;
	CHECK_RC(try_open(&w, prov), -EBADMSG);
	w = v;
	w.suite = 2;
	CHECK_RC(try_open(&w, prov), -EBADMSG);
	for (int i = 0; i < 2; i++) {
		size_t n = strlen(v.layer[i].key_id);

		w = v;
		w.layer[i].key_id[n - 1] ^= 0x01;
		CHECK_RC(try_open(&w, prov), -EBADMSG);
		w = v;
		w.layer[i].key_id[n - 1] = '\0';
		CHECK_RC(try_open(&w, prov), -EBADMSG);
		w = v;
		strcpy(w.layer[i].key_id, "local:0000000000000000");
		CHECK_RC(try_open(&w, prov), -EBADMSG);
	}
	for (size_t j = 0; j < HMAC_LEN; j++) {
		w = v;
		w.mac[j] ^= 0x10;
		CHECK_RC(try_open(&w, prov), -EBADMSG);
	}
	/* kek_gen and volume_id are in the wrap AAD too: refused either way. */
	w = v;
	w.kek_gen = 2;
	CHECK(try_open(&w, prov) < 0, "kek_gen changed");
	w = v;
	w.kek_gen = 1u << 24 | 1;
	CHECK(try_open(&w, prov) < 0, "kek_gen high byte changed");
	for (size_t j = 0; j < VOLUME_ID_LEN; j++) {
		w = v;
		w.volume_id[j] ^= 0x04;
		CHECK(try_open(&w, prov) < 0, "volume id byte %zu", j);
	}

	/* Another volume of the same service key: its config does not open
	 * with this volume's providers, nor the other way round. */
	CHECK_RC(keyring_create(provx, 4096, volid2, &w, &kr2), 0);
	keyring_free(kr2);
	kr2 = NULL;
	CHECK_RC(try_open(&w, provx), 0);
	CHECK_RC(try_open(&w, prov), -EKEYREJECTED);
	CHECK_RC(try_open(&v, provx), -EKEYREJECTED);
out:
	keyring_free(kr);
	close_provs(prov);
	close_provs(prov2);
	close_provs(provx);
}

/* A block sealed with `a` opens with `b` (same file) or not (other file). */
static int cross_open(const struct filekeys *a, const struct filekeys *b)
{
	uint8_t pt[100], ct[sizeof(pt) + BLOCK_OVERHEAD], back[sizeof(pt)];
	int rc;

	t_fill(pt, sizeof(pt), 20);
	rc = block_seal(&a->bc, 3, false, pt, sizeof(pt), ct);
	if (rc == 0)
		rc = block_open(&b->bc, 3, false, ct, sizeof(ct), back);
	if (rc == 0 && memcmp(back, pt, sizeof(pt)) != 0)
		rc = -EIO;
	return rc;
}

/* keyring_open_file() of `h`: its rc; checks and frees the contexts. */
static int try_open_file(struct keyring *kr, const struct header *h,
			 const struct filekeys *orig)
{
	struct filekeys *fk = NULL;
	int rc;

	rc = keyring_open_file(kr, h, &fk);
	if (rc == 0 && orig != NULL)
		rc = cross_open(orig, fk);
	keyring_filekeys_free(fk);
	return rc;
}

static void files(void)
{
	uint8_t skey[SERVICE_KEY_LEN], volid[VOLUME_ID_LEN],
		volid2[VOLUME_ID_LEN];
	uint8_t hb[HEADER_LEN], tb[HEADER_LEN];
	struct keyprov *prov[2], *prov2[2];
	struct keyring *kr = NULL, *kr2 = NULL, *kr_re = NULL;
	struct filekeys *fk = NULL, *fk2 = NULL, *fk_re = NULL, *fk_dup = NULL;
	struct header h, h2, hb2, ht;
	struct volume v, v2;
	int parsed = 0;

	t_fill(skey, sizeof(skey), 30);
	t_fill(volid, sizeof(volid), 31);
	t_fill(volid2, sizeof(volid2), 32);
	CHECK_RC(open_provs(skey, volid, prov), 0);
	CHECK_RC(open_provs(skey, volid2, prov2), 0);
	if (prov[0] == NULL || prov2[0] == NULL)
		goto out;
	CHECK_RC(keyring_create(prov, 4096, volid, &v, &kr), 0);
	CHECK_RC(keyring_create(prov2, 4096, volid2, &v2, &kr2), 0);
	if (kr == NULL || kr2 == NULL)
		goto out;

	/* the caller sets the location slots: none here */
	memset(&h, 0, sizeof(h));
	memset(&h2, 0, sizeof(h2));
	CHECK_RC(keyring_new_file(kr, &h, &fk), 0);
	CHECK_RC(keyring_new_file(kr, &h2, &fk2), 0);
	if (fk == NULL || fk2 == NULL)
		goto out;
	CHECK(h.kek_gen == v.kek_gen, "header kek_gen %u", h.kek_gen);
	CHECK(memcmp(fk->file_id, h.file_id, FILE_ID_LEN) == 0 &&
		      fk->bc.file_id == fk->file_id,
	      "contexts carry the file id");
	CHECK(memcmp(h.file_id, h2.file_id, FILE_ID_LEN) != 0,
	      "file ids repeat");
	CHECK(memcmp(h.wrap_inner, h2.wrap_inner, AEAD_WRAP_LEN) != 0,
	      "wraps repeat");
	CHECK(fk->generation == keyring_generation(kr), "generation");

	/* Round trip: the reopened contexts open what the new ones sealed,
	 * in both directions, also through the header bytes. */
	CHECK_RC(keyring_open_file(kr, &h, &fk_re), 0);
	CHECK_RC(keyring_dup_file(kr, &h, &fk_dup), 0);
	if (fk_re != NULL && fk_dup != NULL) {
		CHECK_RC(cross_open(fk, fk_re), 0);
		CHECK_RC(cross_open(fk_re, fk), 0);
		CHECK_RC(cross_open(fk_dup, fk_re), 0);
		CHECK(memcmp(fk_re->file_id, h.file_id, FILE_ID_LEN) == 0,
		      "reopened file id");
	}
	header_serialize(&h, hb);
	CHECK_RC(header_parse(hb, sizeof(hb), &hb2), 0);
	CHECK_RC(try_open_file(kr, &hb2, fk), 0);
	/* Contexts of one file do not open another file's blocks. */
	CHECK_RC(cross_open(fk, fk2), -EBADMSG);
	CHECK_RC(cross_open(fk2, fk), -EBADMSG);

	/* A reopened keyring (same config, same service key) opens the
	 * header too. */
	CHECK_RC(keyring_open(&v, prov, &kr_re), 0);
	if (kr_re != NULL)
		CHECK_RC(try_open_file(kr_re, &h, fk), 0);

	/* Every bit of the serialized header: refused by the parser or by
	 * the unwrap, never accepted. */
	for (size_t i = 0; i < HEADER_LEN * 8; i++) {
		int rc;

		memcpy(tb, hb, HEADER_LEN);
		tb[i / 8] ^= (uint8_t)(1 << (i % 8));
		rc = header_parse(tb, HEADER_LEN, &ht);
		if (rc < 0) {
			CHECK(rc == -EBADMSG, "bit %zu: parse %d", i, rc);
			continue;
		}
		parsed++;
		CHECK_RC(try_open_file(kr, &ht, NULL), -EKEYREJECTED);
	}
	/* Magic and version: 48 bits the parser refuses, but one (version
	 * 3 -> 1) that parses as an older header; the sealing count parses,
	 * and the unwrap refuses it changed (it is in the AAD). */
	CHECK(parsed == (HEADER_LEN - 6) * 8 + 1, "parsed %d tampered headers",
	      parsed);
	/* The two wraps swapped. */
	ht = h;
	memcpy(ht.wrap_inner, h.wrap_outer, AEAD_WRAP_LEN);
	memcpy(ht.wrap_outer, h.wrap_inner, AEAD_WRAP_LEN);
	CHECK_RC(try_open_file(kr, &ht, NULL), -EKEYREJECTED);
	/* One wrap from another file of the same volume. */
	ht = h;
	memcpy(ht.wrap_outer, h2.wrap_outer, AEAD_WRAP_LEN);
	CHECK_RC(try_open_file(kr, &ht, NULL), -EKEYREJECTED);
	ht = h;
	memcpy(ht.wrap_inner, h2.wrap_inner, AEAD_WRAP_LEN);
	CHECK_RC(try_open_file(kr, &ht, NULL), -EKEYREJECTED);
	/* Another file's id with this file's wraps. */
	ht = h;
	memcpy(ht.file_id, h2.file_id, FILE_ID_LEN);
	CHECK_RC(try_open_file(kr, &ht, NULL), -EKEYREJECTED);
	/* Another KEK generation. */
	ht = h;
	ht.kek_gen = 2;
	CHECK_RC(try_open_file(kr, &ht, NULL), -EKEYREJECTED);

	/* A header of volume A does not open in volume B. */
	CHECK_RC(try_open_file(kr2, &h, NULL), -EKEYREJECTED);
	CHECK_RC(try_open_file(kr, &h2, fk2), 0);
out:
	keyring_filekeys_free(fk);
	keyring_filekeys_free(fk2);
	keyring_filekeys_free(fk_re);
	keyring_filekeys_free(fk_dup);
	keyring_free(kr);
	keyring_free(kr2);
	keyring_free(kr_re);
	close_provs(prov);
	close_provs(prov2);
}

static void name_keys(void)
{
	uint8_t skey[SERVICE_KEY_LEN], volid[VOLUME_ID_LEN],
		volid2[VOLUME_ID_LEN];
	uint8_t k1[NAME_KEY_LEN], k1re[NAME_KEY_LEN], k2[NAME_KEY_LEN],
		zero[NAME_KEY_LEN] = { 0 };
	struct keyprov *prov[2], *prov2[2];
	struct keyring *kr = NULL, *kr2 = NULL, *kr_re = NULL;
	struct volume v, v2;

	t_fill(skey, sizeof(skey), 40);
	t_fill(volid, sizeof(volid), 41);
	t_fill(volid2, sizeof(volid2), 42);
	CHECK_RC(open_provs(skey, volid, prov), 0);
	CHECK_RC(open_provs(skey, volid2, prov2), 0);
	if (prov[0] == NULL || prov2[0] == NULL)
		goto out;
	CHECK_RC(keyring_create(prov, 512, volid, &v, &kr), 0);
	CHECK_RC(keyring_create(prov2, 512, volid2, &v2, &kr2), 0);
	CHECK_RC(keyring_open(&v, prov, &kr_re), 0);
	if (kr == NULL || kr2 == NULL || kr_re == NULL)
		goto out;
	memset(k1, 0, sizeof(k1));
	memset(k1re, 0xaa, sizeof(k1re));
	memset(k2, 0x55, sizeof(k2));
	CHECK_RC(keyring_name_key(kr, k1), 0);
	CHECK_RC(keyring_name_key(kr_re, k1re), 0);
	CHECK_RC(keyring_name_key(kr2, k2), 0);
	CHECK(memcmp(k1, zero, sizeof(k1)) != 0, "name key is zero");
	CHECK(memcmp(k1, k1re, sizeof(k1)) == 0, "name key changed on reopen");
	CHECK(memcmp(k1, k2, sizeof(k1)) != 0, "two volumes, one name key");
out:
	secmem_wipe(k1, sizeof(k1));
	secmem_wipe(k1re, sizeof(k1re));
	secmem_wipe(k2, sizeof(k2));
	keyring_free(kr);
	keyring_free(kr2);
	keyring_free(kr_re);
	close_provs(prov);
	close_provs(prov2);
}

/* persist() stand-in: keeps the last config, or fails on request. */
static struct volume persisted;
static int persist_calls, persist_fail;

static int persist(const struct volume *v, void *arg)
{
	(void)arg;
	persist_calls++;
	if (persist_fail)
		return -EIO;
	persisted = *v;
	return 0;
}

/* 1 if fa and fb hold the same DEKs: what one seals the other opens. */
static int same_deks(struct filekeys *fa, struct filekeys *fb)
{
	uint8_t pt[100], blk[100 + BLOCK_OVERHEAD], out[100];

	t_fill(pt, sizeof(pt), 77);
	return block_seal(&fa->bc, 3, false, pt, sizeof(pt), blk) == 0 &&
	       block_open(&fb->bc, 3, false, blk, sizeof(blk), out) == 0 &&
	       memcmp(out, pt, sizeof(pt)) == 0;
}

/* Rekey (include/cmkfs/keyring.h): begin, per-header re-wrap, finish; both
 * generations open in between, only the new one after; the name key and
 * the DEKs survive; a failed persist changes nothing. */
static void rekey(void)
{
	uint8_t skey[SERVICE_KEY_LEN], skey2[SERVICE_KEY_LEN],
		volid[VOLUME_ID_LEN];
	uint8_t nk0[NAME_KEY_LEN], nk1[NAME_KEY_LEN], nk2[NAME_KEY_LEN];
	struct keyprov *prov[2], *prov2[2];
	struct keyring *kr = NULL, *kr2 = NULL, *kr3 = NULL;
	struct filekeys *f1 = NULL, *f1b = NULL, *f2 = NULL, *fx = NULL;
	struct header h1, h1n, h2, hx;
	struct volume v, before, out;

	t_fill(skey, sizeof(skey), 80);
	t_fill(skey2, sizeof(skey2), 81);
	t_fill(volid, sizeof(volid), 82);
	CHECK_RC(open_provs(skey, volid, prov), 0);
	CHECK_RC(open_provs(skey2, volid, prov2), 0);
	if (prov[0] == NULL || prov2[0] == NULL)
		goto out;
	CHECK_RC(keyring_create(prov, 4096, volid, &v, &kr), 0);
	if (kr == NULL)
		goto out;
	CHECK(v.version == 3 && v.flags == 0, "new volumes are format 3");
	memset(&h1, 0, sizeof(h1));
	CHECK_RC(keyring_new_file(kr, &h1, &f1), 0);
	CHECK_RC(keyring_name_key(kr, nk0), 0);
	keyring_volume_copy(kr, &before);

	/* A failed persist, or someone else's providers: nothing changes. */
	persist_fail = 1;
	CHECK_RC(keyring_rekey_begin(kr, prov, false, persist, NULL), -EIO);
	persist_fail = 0;
	CHECK_RC(keyring_rekey_begin(kr, prov2, false, persist, NULL), -EKEYREJECTED);
	CHECK(vol_eq(keyring_volume(kr), &before) &&
		      keyring_volume(kr)->flags == 0,
	      "config changed by a failed begin");
	memset(&hx, 0, sizeof(hx));
	CHECK_RC(keyring_new_file(kr, &hx, &fx), 0);
	CHECK(hx.kek_gen == 1, "generation moved by a failed begin");
	keyring_filekeys_free(fx);
	fx = NULL;

	/* Begin: generation 2 for new files, generation 1 still opens. */
	persist_calls = 0;
	CHECK_RC(keyring_rekey_begin(kr, prov, false, persist, NULL), 0);
	CHECK(persist_calls == 1, "persisted %d times", persist_calls);
	CHECK(persisted.version == 3 && persisted.kek_gen == 2 &&
		      persisted.prev_gen == 1 &&
		      persisted.flags == VOLUME_FLAG_REKEY,
	      "begin config");
	CHECK(memcmp(persisted.prev_wrapped[1], before.layer[1].wrapped,
		     before.layer[1].wrapped_len) == 0,
	      "previous wraps kept");
	CHECK(memcmp(persisted.layer[1].wrapped, before.layer[1].wrapped,
		     before.layer[1].wrapped_len) != 0,
	      "KEK_C not new");
	CHECK_RC(keyring_rekey_begin(kr, prov, false, persist, NULL), -EALREADY);
	CHECK_RC(keyring_rewrap(kr, 1, prov[1], &out), -EBUSY);
	memset(&h2, 0, sizeof(h2));
	CHECK_RC(keyring_new_file(kr, &h2, &f2), 0);
	CHECK(h2.kek_gen == 2, "new file generation %u", h2.kek_gen);
	CHECK_RC(keyring_open_file(kr, &h1, &fx), 0);
	keyring_filekeys_free(fx);
	fx = NULL;
	/* The config as written opens both generations, after a lock too. */
	CHECK_RC(keyring_open(&persisted, prov, &kr2), 0);
	if (kr2 != NULL) {
		CHECK_RC(keyring_open_file(kr2, &h1, &fx), 0);
		keyring_filekeys_free(fx);
		fx = NULL;
		CHECK_RC(keyring_open_file(kr2, &h2, &fx), 0);
		keyring_filekeys_free(fx);
		fx = NULL;
		CHECK_RC(keyring_name_key(kr2, nk1), 0);
		CHECK(memcmp(nk0, nk1, NAME_KEY_LEN) == 0, "name key changed");
	}
	CHECK(aead_siv_pinned() > 0, "an open keyring pins its SIV keys");
	keyring_free(kr2);
	kr2 = NULL;
	keyring_lock(kr);
	/* A lock wipes the keys' schedules with them (aead.h pins). */
	CHECK(aead_siv_pinned() == 0, "%u SIV keys pinned after the lock",
	      aead_siv_pinned());
	CHECK_RC(keyring_rewrap_header(kr, &h1, &h1n), -EKEYREVOKED);
	{
		/* A lock after the unlocker took the generation stands. */
		uint64_t g = keyring_generation(kr);

		keyring_lock(kr);
		CHECK_RC(keyring_unlock(kr, prov, g), -EAGAIN);
		CHECK(keyring_is_locked(kr), "an unlock undid a later lock");
	}
	CHECK_RC(keyring_unlock(kr, prov, keyring_generation(kr)), 0);
	CHECK(!keyring_is_locked(kr), "not unlocked");
	CHECK_RC(keyring_open_file(kr, &h1, &fx), 0);
	keyring_filekeys_free(fx);
	fx = NULL;

	/* Re-wrap: same file id and DEKs, new generation; idempotent. */
	CHECK_RC(keyring_rewrap_header(kr, &h1, &h1n), 1);
	CHECK(h1n.kek_gen == 2 && memcmp(h1n.file_id, h1.file_id,
					 FILE_ID_LEN) == 0,
	      "re-wrapped header");
	CHECK(memcmp(h1n.wrap_outer, h1.wrap_outer, AEAD_WRAP_LEN) != 0,
	      "outer wrap unchanged");
	CHECK_RC(keyring_open_file(kr, &h1n, &f1b), 0);
	CHECK(f1b != NULL && same_deks(f1, f1b), "DEKs changed by re-wrap");
	memset(&hx, 0x5a, sizeof(hx));
	CHECK_RC(keyring_rewrap_header(kr, &h2, &hx), 0);
	CHECK(hx.kek_gen == 0x5a5a5a5a, "out written for a current header");
	hx = h1;
	hx.kek_gen = 9;
	CHECK_RC(keyring_rewrap_header(kr, &hx, &h1n), -EKEYREJECTED);
	hx = h1;
	hx.wrap_inner[20] ^= 1;
	CHECK_RC(keyring_rewrap_header(kr, &hx, &h1n), -EKEYREJECTED);

	/* Finish: the old generation is gone from config and memory. */
	CHECK_RC(keyring_rekey_finish(kr, persist, NULL), 0);
	CHECK(persisted.flags == 0 && persisted.kek_gen == 2 &&
		      persisted.prev_gen == 0,
	      "finished config");
	CHECK_RC(keyring_open_file(kr, &h1, &fx), -EKEYREJECTED);
	CHECK_RC(keyring_rekey_finish(kr, persist, NULL), 0);	/* no-op */
	CHECK_RC(keyring_rewrap(kr, 1, prov[1], &out), 0);
	CHECK_RC(keyring_open(&persisted, prov, &kr3), 0);
	if (kr3 != NULL) {
		CHECK_RC(keyring_open_file(kr3, &h1, &fx), -EKEYREJECTED);
		CHECK_RC(keyring_rewrap_header(kr3, &h1, &hx), -EKEYREJECTED);
		CHECK_RC(keyring_open_file(kr3, &h2, &fx), 0);
		keyring_filekeys_free(fx);
		fx = NULL;
		CHECK_RC(keyring_name_key(kr3, nk2), 0);
		CHECK(memcmp(nk0, nk2, NAME_KEY_LEN) == 0,
		      "name key changed by finish");
	}
	/* The old config no longer opens the new headers. */
	keyring_free(kr2);
	kr2 = NULL;
	CHECK_RC(keyring_open(&before, prov, &kr2), 0);
	if (kr2 != NULL)
		CHECK_RC(keyring_open_file(kr2, &h2, &fx), -EKEYREJECTED);
out:
	secmem_wipe(nk0, sizeof(nk0));
	secmem_wipe(nk1, sizeof(nk1));
	secmem_wipe(nk2, sizeof(nk2));
	keyring_filekeys_free(f1);
	keyring_filekeys_free(f1b);
	keyring_filekeys_free(f2);
	keyring_filekeys_free(fx);
	keyring_free(kr);
	keyring_free(kr2);
	keyring_free(kr3);
	close_provs(prov);
	close_provs(prov2);
}

/* The registry opens the provider a layer records, by its type. */
static void registry(void)
{
	uint8_t skey[SERVICE_KEY_LEN], volid[VOLUME_ID_LEN];
	struct keyprov *prov[2] = { NULL, NULL }, *p = NULL;
	struct keyring *kr = NULL;
	struct volume v, odd;

	t_fill(skey, sizeof(skey), 20);
	t_fill(volid, sizeof(volid), 21);
	CHECK_RC(open_provs(skey, volid, prov), 0);
	if (prov[0] == NULL)
		return;
	CHECK_RC(keyring_create(prov, 4096, volid, &v, &kr), 0);
	for (int i = 0; i < 2 && kr != NULL; i++) {
		CHECK_RC(keyprov_for_layer(&v, i, skey, &p), 0);
		if (p == NULL)
			continue;
		CHECK(p->ops == &kp_local_ops &&
			      strcmp(p->ops->name, "local") == 0,
		      "layer %d: not the local provider", i);
		CHECK(strcmp(p->key_id, v.layer[i].key_id) == 0,
		      "layer %d key id %s", i, p->key_id);
		/* it unwraps the layer's KEK like the one made directly */
		CHECK_RC(keyring_verify_layer(kr, p, i), 0);
		keyprov_close(p);
		p = NULL;
	}
	odd = v;
	odd.layer[0].prov = 99;
	CHECK_RC(keyprov_for_layer(&odd, 0, skey, &p), -EOPNOTSUPP);
	CHECK(p == NULL, "provider set on error");
	CHECK(kp_akv_ops.type == KPROV_AKV && kp_akv_ops.forget != NULL &&
		      kp_local_ops.forget == NULL,
	      "kinds");
	/* no Key Vault client made yet: nothing to forget, nothing failed */
	keyprov_forget();
	CHECK(strcmp(keyprov_last_error(), "no error") == 0, "last error %s",
	      keyprov_last_error());
	keyring_free(kr);
	close_provs(prov);
}

int main(void)
{
	size_t base;

	CHECK_RC(aead_global_init(), 0);
	base = secmem_in_use();
	open_volume();
	files();
	name_keys();
	rekey();
	registry();
	CHECK(secmem_in_use() == base, "secmem in use %zu, was %zu",
	      secmem_in_use(), base);
	keyprov_close(NULL);
	keyring_free(NULL);
	keyring_filekeys_free(NULL);
	return t_done("test_keyring");
}
