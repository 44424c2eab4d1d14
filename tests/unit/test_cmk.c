/* tests/unit/test_cmk.c — the cmk engine on a temporary volume, without root
 * or Key Vault: an in-process provider stands in for the customer-managed
 * key. Enable, rotate and disable move layer C's wrapping and nothing
 * else; the volume then opens with the new key and not with the old one;
 * a refused state, a key that wraps but does not unwrap, wrong current keys
 * and a rekey in progress leave cmkfs.conf byte for byte as it was; the
 * caller's committed() hook runs once, after the write, under the config
 * lock; every change is audited. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/audit.h"
#include "cmkfs/cmk.h"
#include "cmkfs/create.h"
#include "cmkfs/reserved.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

static char top[1024], keypath[PATH_MAX], vol[PATH_MAX];

/* --- a fake customer-managed key: AES-GCM wrap under its own key --- */

struct fake {
	uint8_t kek[AEAD_KEY_LEN];
	int no_unwrap;		/* wraps, but every unwrap is refused */
};

static int fake_wrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		     const uint8_t key[static AEAD_KEY_LEN], uint8_t *out,
		     size_t cap, size_t *out_len)
{
	struct fake *f = kp->priv;
	int rc;

	if (cap < AEAD_WRAP_LEN)
		return -ENOBUFS;
	rc = aead_wrap_key(f->kek, aad, aad_len, key, out);
	if (rc == 0)
		*out_len = AEAD_WRAP_LEN;
	return rc;
}

static int fake_unwrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		       const uint8_t *in, size_t len,
		       uint8_t key[static AEAD_KEY_LEN])
{
	struct fake *f = kp->priv;

	if (f->no_unwrap || len != AEAD_WRAP_LEN)
		return -EKEYREJECTED;
	return aead_unwrap_key(f->kek, aad, aad_len, in, key);
}

static void fake_close(struct keyprov *kp)
{
	free(kp->priv);
	free(kp);
}

static const struct keyprov_ops fake_ops = {
	.name = "fake",
	.type = KPROV_AKV,
	.wrap = fake_wrap,
	.unwrap = fake_unwrap,
	.close = fake_close,
};

static struct keyprov *fake_new(uint32_t seed, int no_unwrap)
{
	struct keyprov *kp = calloc(1, sizeof(*kp));
	struct fake *f = calloc(1, sizeof(*f));

	if (kp == NULL || f == NULL) {
		free(kp);
		free(f);
		return NULL;
	}
	t_fill(f->kek, sizeof(f->kek), seed);
	f->no_unwrap = no_unwrap;
	kp->ops = &fake_ops;
	kp->priv = f;
	snprintf(kp->key_id, sizeof(kp->key_id),
		 "https://fake.vault.azure.net/keys/cmk/%08x", seed);
	return kp;
}

/* --- helpers --- */

static int read_vol(const char *dir, struct volume *v)
{
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc;

	if (fd < 0)
		return -errno;
	rc = volio_read(fd, v);
	close(fd);
	return rc;
}

/* The local providers of the volume in `dir`. */
static int local_provs(const char *dir, struct keyprov *p[2])
{
	uint8_t *skey = NULL;
	struct volume v;
	int rc;

	p[0] = p[1] = NULL;
	rc = read_vol(dir, &v);
	if (rc == 0)
		rc = kp_local_load(keypath, &skey);
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = kp_local_open(skey, v.volume_id, i, &p[i]);
	secmem_free(skey, SERVICE_KEY_LEN);
	return rc;
}

struct seen {
	int committed, warned;
	int locked;		/* the config lock was held in committed() */
	int on_disk;		/* the new config was on disk in committed() */
	char key_id[VOLUME_KEYID_MAX + 1];
};

static void on_committed(const char *cdir, const struct cmk_result *r,
			 void *arg)
{
	struct seen *s = arg;
	char p[PATH_MAX];
	struct volume v;
	int fd;

	s->committed++;
	snprintf(s->key_id, sizeof(s->key_id), "%s", r->key_id);
	snprintf(p, sizeof(p), "%s/%s", cdir, DIRID_FILE);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	s->locked = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0 &&
		    errno == EWOULDBLOCK;
	if (fd >= 0)
		close(fd);
	s->on_disk = read_vol(cdir, &v) == 0 &&
		     strcmp(v.layer[1].key_id, r->key_id) == 0;
}

static void on_warn(const char *why, void *arg)
{
	(void)why;
	((struct seen *)arg)->warned++;
}

static int run(enum cmk_action a, struct keyprov *newk, struct keyprov *c0,
	       struct keyprov *c1, struct seen *s, struct cmk_result *r)
{
	struct cmk_opts o = {
		.action = a,
		.service_key = keypath,
		.new_key = newk,
		.cur = { c0, c1 },
		.warn = on_warn,
		.committed = on_committed,
		.arg = s,
	};

	memset(s, 0, sizeof(*s));
	return cmk_run(vol, &o, r);
}

/* A run that must fail at `stage` with `err` and leave the config and the
 * hooks alone. */
static void refused(const char *what, enum cmk_action a, struct keyprov *newk,
		    struct keyprov *c0, struct keyprov *c1,
		    enum cmk_stage stage, int err)
{
	static char before[VOLUME_MAX_LEN + 1], after[VOLUME_MAX_LEN + 1];
	static struct cmk_result r;
	ssize_t n1, n2;
	struct seen s;
	int rc;

	n1 = tvol_slurp(vol, VOLUME_FILE, before, sizeof(before));
	rc = run(a, newk, c0, c1, &s, &r);
	n2 = tvol_slurp(vol, VOLUME_FILE, after, sizeof(after));
	CHECK(rc == err && r.err == err && r.stage == stage,
	      "%s: rc %d err %d stage %d, want %d at stage %d (%s)", what, rc,
	      r.err, r.stage, err, stage, r.msg);
	CHECK(r.msg[0] != '\0', "%s: no message", what);
	CHECK(n1 > 0 && n1 == n2 && memcmp(before, after, (size_t)n1) == 0,
	      "%s: the config changed", what);
	CHECK(s.committed == 0 && s.warned == 0, "%s: hooks ran (%d, %d)",
	      what, s.committed, s.warned);
}

/* A run that must succeed and leave layer C under `want_id`. */
static void done(const char *what, enum cmk_action a, struct keyprov *newk,
		 struct keyprov *c0, struct keyprov *c1, const char *want_id,
		 const char *old_id)
{
	static struct cmk_result r;
	struct volume before, after;
	struct seen s;
	int rc;

	CHECK_RC(read_vol(vol, &before), 0);
	rc = run(a, newk, c0, c1, &s, &r);
	CHECK(rc == 0 && r.stage == CMK_STAGE_DONE,
	      "%s: rc %d stage %d: %s", what, rc, r.stage, r.msg);
	CHECK(s.committed == 1 && s.locked && s.on_disk,
	      "%s: committed %d times, locked %d, on disk %d", what,
	      s.committed, s.locked, s.on_disk);
	CHECK(strcmp(s.key_id, want_id) == 0 &&
		      strcmp(r.key_id, want_id) == 0 &&
		      strcmp(r.old_key_id, old_id) == 0,
	      "%s: key %s (was %s), want %s (was %s)", what, r.key_id,
	      r.old_key_id, want_id, old_id);
	CHECK_RC(read_vol(vol, &after), 0);
	CHECK(strcmp(after.layer[1].key_id, want_id) == 0,
	      "%s: config names %s", what, after.layer[1].key_id);
	/* Layer S, the generation and the volume id do not move. */
	CHECK(after.layer[0].wrapped_len == before.layer[0].wrapped_len &&
		      memcmp(after.layer[0].wrapped, before.layer[0].wrapped,
			     before.layer[0].wrapped_len) == 0 &&
		      strcmp(after.layer[0].key_id, before.layer[0].key_id) == 0 &&
		      after.kek_gen == before.kek_gen &&
		      memcmp(after.volume_id, before.volume_id,
			     VOLUME_ID_LEN) == 0,
	      "%s: more than layer C changed", what);
	CHECK(s.warned == 0, "%s: warned", what);
}

/* keyring_open() of the config on disk with (p0, p1), then its name key
 * into out unless out is NULL; frees the keyring. The KEKs behind the name
 * key must not change across enable, rotate and disable. */
static int name_key(struct keyprov *p0, struct keyprov *p1,
		    uint8_t out[NAME_KEY_LEN])
{
	struct keyprov *p[2] = { p0, p1 };
	struct keyring *kr = NULL;
	struct volume v;
	int rc;

	rc = read_vol(vol, &v);
	if (rc == 0)
		rc = keyring_open(&v, p, &kr);
	if (rc == 0 && out != NULL)
		rc = keyring_name_key(kr, out);
	keyring_free(kr);
	return rc;
}

static int opens_with(struct keyprov *p0, struct keyprov *p1)
{
	return name_key(p0, p1, NULL);
}

static int persist(const struct volume *v, void *arg)
{
	return volio_write(*(int *)arg, v);
}

static void transactions(void)
{
	struct keyprov *loc[2] = { NULL, NULL }, *a = fake_new(1, 0),
		       *b = fake_new(2, 0), *bad = fake_new(3, 1);
	uint8_t nk0[NAME_KEY_LEN], nk[NAME_KEY_LEN];
	char local1[VOLUME_KEYID_MAX + 1];
	struct volume v;

	if (a == NULL || b == NULL || bad == NULL) {
		CHECK(0, "out of memory");
		goto out;
	}
	CHECK_RC(tvol_create(vol, keypath, 0), 0);
	CHECK_RC(local_provs(vol, loc), 0);
	if (loc[1] == NULL)
		goto out;
	snprintf(local1, sizeof(local1), "%s", loc[1]->key_id);
	CHECK_RC(name_key(loc[0], loc[1], nk0), 0);

	/* Service-managed: nothing to rotate or disable. */
	refused("rotate without a CMK", CMK_ROTATE, b, NULL, NULL,
		CMK_STAGE_STATE, -ENOKEY);
	refused("disable without a CMK", CMK_DISABLE, NULL, NULL, NULL,
		CMK_STAGE_STATE, -ENOKEY);
	/* A key that wraps but does not unwrap: the prove step refuses. */
	refused("enable, no unwrap", CMK_ENABLE, bad, NULL, NULL,
		CMK_STAGE_PROVE, -EKEYREJECTED);

	/* Enable: the current keys come from the service key. */
	done("enable", CMK_ENABLE, a, NULL, NULL, a->key_id, local1);
	CHECK_RC(read_vol(vol, &v), 0);
	CHECK(v.layer[1].prov == KPROV_AKV, "layer C provider %u",
	      v.layer[1].prov);
	CHECK_RC(opens_with(loc[0], a), 0);
	CHECK(opens_with(loc[0], loc[1]) < 0,
	      "still opens with the service key's layer C");
	CHECK(opens_with(loc[0], b) < 0, "opens with another fake key");
	CHECK(name_key(loc[0], a, nk) == 0 && memcmp(nk, nk0, sizeof(nk)) == 0,
	      "the KEKs changed on enable");

	refused("enable twice", CMK_ENABLE, b, loc[0], a, CMK_STAGE_STATE,
		-EEXIST);
	refused("rotate, wrong current key", CMK_ROTATE, b, loc[0], bad,
		CMK_STAGE_UNLOCK, -EKEYREJECTED);
	refused("rotate, no unwrap", CMK_ROTATE, bad, loc[0], a,
		CMK_STAGE_PROVE, -EKEYREJECTED);
	CHECK_RC(opens_with(loc[0], a), 0);

	/* Rotate a -> b. */
	done("rotate", CMK_ROTATE, b, loc[0], a, b->key_id, a->key_id);
	CHECK_RC(opens_with(loc[0], b), 0);
	CHECK(opens_with(loc[0], a) < 0, "still opens with the old CMK");
	CHECK(name_key(loc[0], b, nk) == 0 && memcmp(nk, nk0, sizeof(nk)) == 0,
	      "the KEKs changed on rotate");

	/* Disable: back under the service key, the same key id as before. */
	done("disable", CMK_DISABLE, NULL, loc[0], b, local1, b->key_id);
	CHECK_RC(read_vol(vol, &v), 0);
	CHECK(v.layer[1].prov == KPROV_LOCAL, "layer C provider %u",
	      v.layer[1].prov);
	CHECK_RC(opens_with(loc[0], loc[1]), 0);
	CHECK(opens_with(loc[0], b) < 0, "still opens with the CMK");
	{
		struct keyring *kr = NULL;
		int fd = -1;

		CHECK_RC(tvol_unlock(vol, keypath, &fd, &kr), 0);
		keyring_free(kr);
		if (fd >= 0)
			close(fd);
	}
	CHECK(name_key(loc[0], loc[1], nk) == 0 &&
		      memcmp(nk, nk0, sizeof(nk)) == 0,
	      "the KEKs changed on disable");
out:
	keyprov_close(loc[0]);
	keyprov_close(loc[1]);
	keyprov_close(a);
	keyprov_close(b);
	keyprov_close(bad);
}

/* A rekey in progress: its previous generation's wraps would stay under
 * the old key, so cmk refuses until the rekey finishes. */
static void during_rekey(void)
{
	struct keyprov *loc[2] = { NULL, NULL }, *a = fake_new(4, 0);
	struct keyring *kr = NULL;
	struct volume v;
	int fd;

	fd = open(vol, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_RC(local_provs(vol, loc), 0);
	CHECK_RC(read_vol(vol, &v), 0);
	if (fd < 0 || a == NULL || loc[1] == NULL ||
	    keyring_open(&v, loc, &kr) < 0) {
		CHECK(0, "cannot open the volume for a rekey");
		goto out;
	}
	CHECK_RC(keyring_rekey_begin(kr, loc, false, persist, &fd), 0);
	refused("enable during a rekey", CMK_ENABLE, a, NULL, NULL,
		CMK_STAGE_WRAP, -EBUSY);
	CHECK_RC(keyring_rekey_finish(kr, persist, &fd), 0);
	done("enable after the rekey", CMK_ENABLE, a, NULL, NULL, a->key_id,
	     loc[1]->key_id);
out:
	keyring_free(kr);
	if (fd >= 0)
		close(fd);
	keyprov_close(loc[0]);
	keyprov_close(loc[1]);
	keyprov_close(a);
}

/* A volume made with the customer layer under an injected key. */
static void create_with_cmk(void)
{
	struct keyprov *loc[2] = { NULL, NULL }, *a = fake_new(5, 0);
	char dir[PATH_MAX];
	static struct create_result cr;
	struct create_opts co = { .service_key = keypath, .cmk = a };
	struct volume v;

	snprintf(dir, sizeof(dir), "%s/cmkvol", top);
	CHECK_RC(create_volume(dir, &co, &cr), 0);
	CHECK_RC(read_vol(dir, &v), 0);
	CHECK(v.layer[1].prov == KPROV_AKV &&
		      a != NULL && strcmp(v.layer[1].key_id, a->key_id) == 0,
	      "layer C: provider %u key %s", v.layer[1].prov,
	      v.layer[1].key_id);
	CHECK_RC(local_provs(dir, loc), 0);
	{
		struct keyprov *p[2] = { loc[0], a }, *q[2] = { loc[0], loc[1] };
		struct keyring *kr = NULL;

		CHECK_RC(keyring_open(&v, p, &kr), 0);
		keyring_free(kr);
		kr = NULL;
		CHECK(keyring_open(&v, q, &kr) < 0,
		      "opens without the customer key");
		keyring_free(kr);
	}
	keyprov_close(loc[0]);
	keyprov_close(loc[1]);
	keyprov_close(a);
}

static void no_volume(void)
{
	static struct cmk_result r;
	struct cmk_opts o = { .action = CMK_DISABLE, .service_key = keypath };
	char dir[PATH_MAX];

	snprintf(dir, sizeof(dir), "%s/nothing", top);
	CHECK_RC(cmk_run(dir, &o, &r), -ENOENT);
	CHECK(r.stage == CMK_STAGE_READ && strstr(r.msg, dir) != NULL,
	      "stage %d msg '%s'", r.stage, r.msg);
	CHECK(mkdir(dir, 0700) == 0, "mkdir");
	CHECK_RC(cmk_run(dir, &o, &r), -ENOENT);
	CHECK(r.stage == CMK_STAGE_READ, "stage %d", r.stage);
}

/* A line of the audit log with this event, key (a prefix) and result. */
static int has_event(const char *log, const char *event, const char *key,
		     const char *result)
{
	char ev[64], k[128], res[64];

	snprintf(ev, sizeof(ev), "\"event\":\"%s\"", event);
	snprintf(k, sizeof(k), "\"key\":\"%s", key);
	snprintf(res, sizeof(res), "\"result\":\"%s\"", result);
	for (const char *l = log; *l != '\0';) {
		const char *nl = strchr(l, '\n');
		size_t n = nl ? (size_t)(nl - l) : strlen(l);
		char line[4096];

		snprintf(line, sizeof(line), "%.*s", (int)n, l);
		if (strstr(line, ev) && strstr(line, k) && strstr(line, res))
			return 1;
		l += n + (nl != NULL);
	}
	return 0;
}

static void audited(void)
{
	static char log[65536];
	const char *fk = "https://fake.vault.azure.net/keys/cmk/";
	char k1[128], k2[128], k5[128];

	snprintf(k1, sizeof(k1), "%s00000001", fk);
	snprintf(k2, sizeof(k2), "%s00000002", fk);
	snprintf(k5, sizeof(k5), "%s00000005", fk);
	CHECK(tvol_slurp(top, "audit.log", log, sizeof(log)) > 0,
	      "no audit log");
	CHECK(has_event(log, "wrap", k1, "ok"), "no wrap event for key 1");
	CHECK(has_event(log, "cmk_enable", k1, "ok"), "no cmk_enable event");
	CHECK(has_event(log, "cmk_rotate", k2, "ok"), "no cmk_rotate event");
	CHECK(has_event(log, "cmk_disable", "local:", "ok"),
	      "no cmk_disable event");
	CHECK(has_event(log, "cmk_enable", k5, "ok"),
	      "no cmk_enable event for a volume made with a CMK");
	/* Refused runs are not recorded as done. */
	CHECK(!has_event(log, "cmk_enable", k2, "ok"),
	      "a refused enable was audited as done");
}

int main(void)
{
	char alog[PATH_MAX];
	size_t base;

	CHECK_RC(aead_global_init(), 0);
	if (tvol_tmpdir("test_cmk", top, sizeof(top)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(keypath, sizeof(keypath), "%s/service.key", top);
	snprintf(vol, sizeof(vol), "%s/vol", top);
	snprintf(alog, sizeof(alog), "%s/audit.log", top);
	audit_open(alog);
	base = secmem_in_use();
	transactions();
	during_rekey();
	create_with_cmk();
	no_volume();
	audited();
	CHECK(secmem_in_use() == base, "secmem in use %zu, was %zu",
	      secmem_in_use(), base);
	(void)tvol_rmtree(top);
	return t_done("test_cmk");
}
