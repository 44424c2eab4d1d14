/* tests/unit/test_monitor.c — the key-check loop over a keyring, without a
 * mount or root. Fake providers wrap the local ones and fail on demand, so
 * a test can revoke and restore access: a denial that a second check
 * confirms locks (and wipes), a single one the second check does not see
 * again does not, a transient failure within the grace period does not,
 * one past it does, a good check after a lock resumes, a manual lock
 * holds across good checks until monitor_unlock, which unlocks only when
 * its own check succeeds, a reload adopts the config it is given.
 * States are polled with generous deadlines; nothing asserts on timing. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/aead.h"
#include "cmkfs/audit.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/keyring.h"
#include "cmkfs/monitor.h"
#include "cmkfs/secmem.h"
#include "../lib/tap.h"
#include "../lib/tvol.h"

#define DEADLINE_SEC 20

static uint8_t skey[SERVICE_KEY_LEN];
/* Set by the test, read by the check thread. */
static int check_rc;	/* what the fake providers' check and unwrap say */
static int open_rc;	/* what opening the providers says */
static int deny_left;	/* checks still to deny (then check_rc again) */
static int locks;	/* on_lock calls */
static int64_t key_exp, cred_exp;	/* what the fake providers' expiry says */

static int get(int *p)
{
	return __atomic_load_n(p, __ATOMIC_SEQ_CST);
}

static void set(int *p, int v)
{
	__atomic_store_n(p, v, __ATOMIC_SEQ_CST);
}

struct fake {
	struct keyprov *inner;	/* a local provider doing the real work */
	int layer;
};

static struct keyprov *inner(struct keyprov *kp)
{
	return ((struct fake *)kp->priv)->inner;
}

static int fake_wrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		     const uint8_t key[static AEAD_KEY_LEN], uint8_t *out,
		     size_t cap, size_t *out_len)
{
	struct keyprov *in = inner(kp);

	return in->ops->wrap(in, aad, aad_len, key, out, cap, out_len);
}

static int fake_unwrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		       const uint8_t *wrapped, size_t len,
		       uint8_t key[static AEAD_KEY_LEN])
{
	struct keyprov *in = inner(kp);
	int rc = get(&check_rc);

	if (rc < 0)
		return rc;
	return in->ops->unwrap(in, aad, aad_len, wrapped, len, key);
}

static int fake_check(struct keyprov *kp)
{
	(void)kp;
	if (__atomic_load_n(&deny_left, __ATOMIC_SEQ_CST) > 0 &&
	    __atomic_sub_fetch(&deny_left, 1, __ATOMIC_SEQ_CST) >= 0)
		return -EKEYREVOKED;
	return get(&check_rc);
}

static void fake_expiry(const struct keyprov *kp, int64_t *k, int64_t *c)
{
	/* layer C's key expires; layer S's never does */
	*k = ((const struct fake *)kp->priv)->layer == 1 ?
		     __atomic_load_n(&key_exp, __ATOMIC_SEQ_CST) :
		     0;
	*c = __atomic_load_n(&cred_exp, __ATOMIC_SEQ_CST);
}

static void fake_close(struct keyprov *kp)
{
	keyprov_close(inner(kp));
	free(kp->priv);
	free(kp);
}

static const struct keyprov_ops fake_ops = {
	.name = "fake",
	.type = KPROV_LOCAL,
	.wrap = fake_wrap,
	.unwrap = fake_unwrap,
	.check = fake_check,
	.close = fake_close,
	.expiry = fake_expiry,
};

static int fake_open(const uint8_t *volume_id, int layer, struct keyprov **out)
{
	struct keyprov *kp = calloc(1, sizeof(*kp));
	struct fake *f = calloc(1, sizeof(*f));
	int rc = -ENOMEM;

	if (kp == NULL || f == NULL)
		goto fail;
	rc = kp_local_open(skey, volume_id, layer, &f->inner);
	if (rc < 0)
		goto fail;
	kp->ops = &fake_ops;
	kp->priv = f;
	f->layer = layer;
	memcpy(kp->key_id, f->inner->key_id, sizeof(kp->key_id));
	*out = kp;
	return 0;
fail:
	free(f);
	free(kp);
	return rc;
}

/* monitor_cfg.open_providers */
static int open_providers(const struct volume *v, const char *service_key,
			  struct keyprov *prov[2])
{
	int rc = get(&open_rc);

	prov[0] = prov[1] = NULL;
	if (strcmp(service_key, "test-key") != 0)
		return -EINVAL;
	if (rc < 0)
		return rc;
	rc = fake_open(v->volume_id, 0, &prov[0]);
	if (rc == 0)
		rc = fake_open(v->volume_id, 1, &prov[1]);
	if (rc < 0) {
		keyprov_close(prov[0]);
		prov[0] = NULL;
	}
	return rc;
}

static const char *words(int rc)
{
	return rc == -ETIMEDOUT ? "test: timed out" : "test: other";
}

/* Runs on the check thread (or the caller of monitor_lock_now). */
static void on_lock(void *ud)
{
	__atomic_add_fetch((int *)ud, 1, __ATOMIC_SEQ_CST);
}

/* Poll until the status says `locked` after more than `checks` completed
 * checks, kicking the monitor meanwhile. 1 if reached. */
static int wait_for(struct monitor *m, bool locked, unsigned long checks,
		    struct monitor_status *st)
{
	time_t end = time(NULL) + DEADLINE_SEC;

	do {
		struct timespec ts = { 0, 20 * 1000 * 1000 };

		monitor_get_status(m, st);
		if (st->locked == locked && st->checks > checks)
			return 1;
		monitor_kick(m);
		nanosleep(&ts, NULL);
	} while (time(NULL) < end);
	return 0;
}

static int name_key_is(struct keyring *kr, const uint8_t *want)
{
	uint8_t k[NAME_KEY_LEN];
	int ok;

	ok = keyring_name_key(kr, k) == 0 &&
	     memcmp(k, want, NAME_KEY_LEN) == 0;
	secmem_wipe(k, sizeof(k));
	return ok;
}

/* A new volume under the fake providers (as open_providers makes them). */
static struct keyring *make_volume(struct volume *v)
{
	struct keyprov *prov[2] = { NULL, NULL };
	uint8_t volid[VOLUME_ID_LEN];
	struct keyring *kr = NULL;

	t_fill(volid, sizeof(volid), 31);
	if (fake_open(volid, 0, &prov[0]) == 0 &&
	    fake_open(volid, 1, &prov[1]) == 0 &&
	    keyring_create(prov, 4096, volid, v, &kr) < 0)
		kr = NULL;
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	return kr;
}

static void lock_and_resume(struct keyring *kr, const struct volume *v,
			    const char *audit_log)
{
	struct monitor_cfg cfg = {
		.interval_sec = 1,
		.grace_sec = 3600,
		.service_key = "test-key",
		.open_providers = open_providers,
		.strerror = words,
		.on_lock = on_lock,
		.ud = &locks,
	};
	uint8_t name_key[NAME_KEY_LEN];
	struct monitor *m = NULL;
	struct monitor_status st;
	struct volume bad;
	uint64_t gen;

	CHECK_RC(keyring_name_key(kr, name_key), 0);
	CHECK_RC(monitor_start(kr, &cfg, &m), 0);
	if (m == NULL)
		return;
	monitor_get_status(m, &st);
	CHECK(!st.locked && st.last_check_ok &&
		      strcmp(st.last_result, "ok (mount)") == 0,
	      "fresh status: %s", st.last_result);
	CHECK(strcmp(st.key_id, v->layer[1].key_id) == 0, "key id %s",
	      st.key_id);

	/* access proved: stays unlocked */
	CHECK(wait_for(m, false, st.checks, &st), "no good check");
	CHECK(st.last_check_ok && strcmp(st.last_result, "ok") == 0,
	      "good check: %s", st.last_result);
	CHECK(get(&locks) == 0, "locked on a good check");

	/* a denial locks and wipes within the interval */
	gen = keyring_generation(kr);
	set(&check_rc, -EKEYREVOKED);
	CHECK(wait_for(m, true, st.checks, &st), "revoked key not locked");
	CHECK(keyring_is_locked(kr), "keyring not locked");
	CHECK(keyring_generation(kr) > gen, "generation not bumped");
	CHECK(!name_key_is(kr, name_key), "name key still there");
	CHECK(!st.manual && !st.last_check_ok, "lock status");
	CHECK(get(&locks) == 1, "on_lock called %d times", get(&locks));
	/* still denied: stays locked, no second on_lock */
	CHECK(wait_for(m, true, st.checks, &st), "relocked?");
	CHECK(get(&locks) == 1, "on_lock called %d times", get(&locks));

	/* restored: unlocked again with the same keys */
	set(&check_rc, 0);
	CHECK(wait_for(m, false, st.checks, &st), "not resumed");
	CHECK(!keyring_is_locked(kr), "keyring still locked");
	CHECK(name_key_is(kr, name_key), "name key differs after resume");
	CHECK(st.last_check_ok, "resume status");

	/* transient within the grace period: warned, not locked */
	set(&check_rc, -ETIMEDOUT);
	CHECK(wait_for(m, false, st.checks + 1, &st),
	      "transient failure locked");
	CHECK(!st.last_check_ok &&
		      strcmp(st.last_result, "test: timed out") == 0,
	      "transient status: %s", st.last_result);
	CHECK(!keyring_is_locked(kr) && name_key_is(kr, name_key),
	      "keys gone on a transient failure");
	CHECK(get(&locks) == 1, "on_lock called %d times", get(&locks));
	set(&check_rc, 0);
	CHECK(wait_for(m, false, st.checks, &st) && st.last_check_ok,
	      "no good check after the transient failure");

	/* providers that cannot be opened (service key file gone) */
	set(&open_rc, -ENOKEY);
	CHECK(wait_for(m, true, st.checks, &st), "no providers, not locked");
	set(&open_rc, 0);
	CHECK(wait_for(m, false, st.checks, &st), "not resumed");
	CHECK(name_key_is(kr, name_key), "name key differs after resume");

	/* a manual lock holds across good checks */
	monitor_lock_now(m, "test lock", &st);
	CHECK(st.locked && st.manual && keyring_is_locked(kr), "manual lock");
	CHECK(strcmp(st.lock_cause, "manual") == 0, "cause %s", st.lock_cause);
	CHECK(wait_for(m, true, st.checks + 2, &st),
	      "a good check ended a manual lock");
	CHECK(keyring_is_locked(kr) && st.manual && st.last_check_ok,
	      "manual lock status after 3 good checks");
	/* unlock proves the keys first: denied, it stays locked */
	{
		char why[256];

		set(&check_rc, -EKEYREVOKED);
		CHECK_RC(monitor_unlock(m, why, sizeof(why), &st),
			 -EKEYREVOKED);
		CHECK(st.locked && st.manual && keyring_is_locked(kr) &&
			      strcmp(why, "test: other") == 0,
		      "denied unlock: %s", why);
		set(&check_rc, 0);
		CHECK_RC(monitor_unlock(m, why, sizeof(why), &st), 0);
		CHECK(!st.locked && !st.manual && !keyring_is_locked(kr) &&
			      name_key_is(kr, name_key),
		      "unlock did not unlock");
		/* nothing to do on an unlocked mount */
		CHECK_RC(monitor_unlock(m, why, sizeof(why), &st), 0);
		CHECK(!st.locked, "unlock of an unlocked mount");
	}
	/* a manual lock over a lock a check caused holds once access is
	 * back; unlock ends both */
	set(&check_rc, -EKEYREVOKED);
	CHECK(wait_for(m, true, st.checks, &st), "revoked key not locked");
	monitor_lock_now(m, "test lock", &st);
	set(&check_rc, 0);
	CHECK(wait_for(m, true, st.checks + 2, &st) && st.last_check_ok &&
		      st.manual,
	      "a good check ended a manual lock over a denial");
	{
		char why[256];

		CHECK_RC(monitor_unlock(m, why, sizeof(why), &st), 0);
		CHECK(!st.locked && !keyring_is_locked(kr), "not unlocked");
	}

	/* reload adopts a config under the same keys and checks it */
	{
		unsigned long before = st.checks;

		CHECK_RC(monitor_reload(m, v, &st), 0);
		CHECK(st.checks > before && st.last_check_ok, "reload check");
	}
	bad = *v;
	bad.mac[0] ^= 1;
	CHECK(monitor_reload(m, &bad, &st) < 0, "tampered config adopted");
	monitor_stop(m);
	CHECK(get(&locks) == 5, "on_lock called %d times", get(&locks));
	CHECK(tvol_file_has(audit_log, "\"event\":\"lock\"") &&
		      tvol_file_has(audit_log, "\"event\":\"resume\"") &&
		      tvol_file_has(audit_log, "\"result\":\"transient\""),
	      "audit trail");
	secmem_wipe(name_key, sizeof(name_key));
}

/* A transient failure that outlasts the grace period locks. */
static void grace_over(struct keyring *kr)
{
	struct monitor_cfg cfg = {
		.interval_sec = 1,
		.grace_sec = 1,
		.service_key = "test-key",
		.open_providers = open_providers,
	};
	struct monitor *m = NULL;
	struct monitor_status st;

	set(&check_rc, -ETIMEDOUT);
	CHECK_RC(monitor_start(kr, &cfg, &m), 0);
	if (m == NULL)
		return;
	CHECK(wait_for(m, true, 0, &st), "grace period over, not locked");
	CHECK(keyring_is_locked(kr), "keyring not locked");
	/* without a strerror callback the C library's words */
	CHECK(strstr(st.last_result, strerror(ETIMEDOUT)) != NULL,
	      "last result %s", st.last_result);
	set(&check_rc, 0);
	CHECK(wait_for(m, false, st.checks, &st), "not resumed");
	monitor_stop(m);
}

/* A denial is confirmed by a second check before it locks: one spurious
 * 403 (a role assignment propagating, a replica behind) that the second
 * check does not see again leaves the mount up; a denial that stays locks. */
static void confirmed(struct keyring *kr, const char *audit_log)
{
	struct monitor_cfg cfg = {
		.interval_sec = 1,
		.grace_sec = 3600,
		.confirm_sec = 1,
		.service_key = "test-key",
		.open_providers = open_providers,
		.on_lock = on_lock,
		.ud = &locks,
	};
	struct monitor *m = NULL;
	struct monitor_status st;
	int locks0 = get(&locks);

	set(&check_rc, 0);
	CHECK_RC(monitor_start(kr, &cfg, &m), 0);
	if (m == NULL)
		return;
	CHECK(wait_for(m, false, 0, &st), "no good check");
	set(&deny_left, 1);
	/* the denied check, its confirming check, and one more */
	CHECK(wait_for(m, false, st.checks + 2, &st),
	      "a single denial locked the mount");
	CHECK(get(&deny_left) <= 0, "the denial was never seen");
	CHECK(!keyring_is_locked(kr) && get(&locks) == locks0,
	      "locked on an unconfirmed denial (%d locks)",
	      get(&locks) - locks0);
	CHECK(tvol_file_has(audit_log, "to be confirmed by a second check") &&
		      tvol_file_has(audit_log,
				    "denial not confirmed by a second check"),
	      "unconfirmed denial not audited");
	/* a denial the second check sees too locks */
	set(&check_rc, -EKEYREVOKED);
	CHECK(wait_for(m, true, st.checks, &st), "confirmed denial not locked");
	CHECK(keyring_is_locked(kr) && get(&locks) == locks0 + 1,
	      "confirmed denial: %d locks", get(&locks) - locks0);
	monitor_get_status(m, &st);
	CHECK(strcmp(st.lock_cause, "denied") == 0, "lock cause '%s'",
	      st.lock_cause);
	set(&check_rc, 0);
	CHECK(wait_for(m, false, st.checks, &st), "not resumed");
	CHECK(st.lock_cause[0] == '\0', "lock cause kept after resume");
	CHECK(tvol_file_has(audit_log, "access restored after: denied"),
	      "resume does not name the cause");
	monitor_stop(m);
}

/* The wait between checks is the interval +-10 %, and it varies: hosts
 * started together must drift apart. Only the drawn values are checked,
 * never how long anything took. */
static void jitter(void)
{
	static const int iv[] = { 1, 5, 60, 3600, 0 };

	for (size_t i = 0; i < CMK_ARRAY_LEN(iv); i++) {
		long base = (iv[i] > 0 ? iv[i] : 1) * 1000L;
		long lo = base * 9 / 10, hi = base * 11 / 10;
		long min = LONG_MAX, max = 0, w;
		int bad = 0;

		for (int n = 0; n < 2000; n++) {
			w = monitor_next_wait_ms(iv[i]);
			bad += w < lo || w > hi;
			min = w < min ? w : min;
			max = w > max ? w : max;
		}
		CHECK(bad == 0, "interval %d s: %d waits outside [%ld, %ld] ms",
		      iv[i], bad, lo, hi);
		/* 2000 uniform draws all in the middle half: p = 2^-2000 */
		CHECK(min < base - (base / 20) && max > base + (base / 20),
		      "interval %d s: waits %ld..%ld ms do not spread", iv[i],
		      min, max);
	}
}

/* Lines of the file holding needle. */
static int file_count(const char *path, const char *needle)
{
	char line[4096];
	int n = 0;
	FILE *f = fopen(path, "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		n += strstr(line, needle) != NULL;
	if (f != NULL)
		fclose(f);
	return n;
}

/* The thresholds: 30, 7 and 1 days before, the smallest that holds; "now"
 * is passed in, nothing waits. */
static void expiry_levels(void)
{
	const time_t now = 1800000000;
	const int64_t d = 86400;
	static const struct {
		int64_t off;	/* exp - now */
		int level;
	} cases[] = {
		{ 31 * d, 0 },	{ 30 * d + 1, 0 }, { 30 * d, 30 },
		{ 8 * d, 30 },	{ 7 * d + 1, 30 }, { 7 * d, 7 },
		{ 2 * d, 7 },	{ d + 1, 7 },	   { d, 1 },
		{ 1, 1 },	{ 0, -1 },	   { -d, -1 },
	};

	CHECK(monitor_expiry_level(0, now) == 0, "no exp warns");
	for (size_t i = 0; i < CMK_ARRAY_LEN(cases); i++)
		CHECK(monitor_expiry_level(now + cases[i].off, now) ==
			      cases[i].level,
		      "exp now%+lld s: level %d, want %d",
		      (long long)cases[i].off,
		      monitor_expiry_level(now + cases[i].off, now),
		      cases[i].level);
	CHECK(monitor_days_left(now + 5 * d + 3600, now) == 5 &&
		      monitor_days_left(now + d - 1, now) == 0 &&
		      monitor_days_left(now - 1, now) == -1,
	      "days left %ld %ld %ld", monitor_days_left(now + 5 * d + 3600, now),
	      monitor_days_left(now + d - 1, now),
	      monitor_days_left(now - 1, now));
}

/* Once per crossing: each threshold warns once as time passes it, not at
 * every check; a jump over two thresholds warns once, at the nearer one;
 * a new exp (extended or rotated) starts over; a past exp never warns
 * (the check fails and the lock says why). */
static void expiry_once(void)
{
	const time_t t0 = 1800000000;
	const int64_t d = 86400, exp = t0 + 40 * d;
	struct monitor_warned w = { 0, 0 };

	CHECK(monitor_expiry_step(&w, exp, t0) == 0, "40 days out warned");
	CHECK(monitor_expiry_step(&w, exp, t0 + 10 * d) == 30, "no 30-day");
	CHECK(monitor_expiry_step(&w, exp, t0 + 10 * d + 60) == 0 &&
		      monitor_expiry_step(&w, exp, t0 + 20 * d) == 0,
	      "30-day warning repeated");
	CHECK(w.level == 30, "level %d", w.level);
	CHECK(monitor_expiry_step(&w, exp, t0 + 33 * d) == 7, "no 7-day");
	CHECK(monitor_expiry_step(&w, exp, t0 + 34 * d) == 0,
	      "7-day warning repeated");
	CHECK(monitor_expiry_step(&w, exp, t0 + 39 * d) == 1, "no 1-day");
	CHECK(monitor_expiry_step(&w, exp, t0 + 39 * d + 3600) == 0,
	      "1-day warning repeated");
	CHECK(monitor_expiry_step(&w, exp, t0 + 41 * d) == 0, "past warned");
	/* extended by a year: quiet, and its own thresholds later */
	CHECK(monitor_expiry_step(&w, exp + 365 * d, t0 + 39 * d) == 0 &&
		      w.level == 0,
	      "extended key still warns (level %d)", w.level);
	CHECK(monitor_expiry_step(&w, exp + 365 * d, t0 + 380 * d) == 30,
	      "extended key: no 30-day warning");
	/* a fresh state 5 days out: one warning, the 7-day one */
	memset(&w, 0, sizeof(w));
	CHECK(monitor_expiry_step(&w, exp, exp - 5 * d) == 7 &&
		      monitor_expiry_step(&w, exp, exp - 4 * d) == 0,
	      "jump to 5 days left");
}

/* The pre-flight margin: refused within it with when and how to proceed,
 * accepted outside it or without an exp. */
static void expiry_margin(void)
{
	const time_t now = 1800000000;
	struct monitor_expiry e;
	char why[700] = "";

	memset(&e, 0, sizeof(e));
	snprintf(e.key_id, sizeof(e.key_id), "https://v.example/keys/k/1");
	CHECK_RC(monitor_margin_check(&e, 7, now, why, sizeof(why)), 0);
	e.key_exp = now + 8 * 86400;
	CHECK_RC(monitor_margin_check(&e, 7, now, why, sizeof(why)), 0);
	e.key_exp = now + 3 * 86400;
	CHECK_RC(monitor_margin_check(&e, 0, now, why, sizeof(why)), 0);
	CHECK_RC(monitor_margin_check(&e, 7, now, why, sizeof(why)), -EPERM);
	CHECK(strstr(why, "2027-01-18T") != NULL &&
		      strstr(why, "3 days") != NULL &&
		      strstr(why, "cmkfs cmk rotate") != NULL &&
		      strstr(why, "az keyvault key set-attributes --id "
				  "https://v.example/keys/k/1 --expires") != NULL,
	      "refusal says: %s", why);
	e.key_exp = now - 1;
	CHECK_RC(monitor_margin_check(&e, 0, now, why, sizeof(why)), -EPERM);
}

/* The judgement a mount and every check share: each provider's check,
 * then the earliest expiry of both; a failed check reports nothing. */
static void judge(struct keyring *kr, const struct volume *v)
{
	struct keyprov *prov[2] = { NULL, NULL };
	struct monitor_expiry ex;

	(void)kr;
	set(&check_rc, 0);
	__atomic_store_n(&key_exp, (int64_t)1800000000, __ATOMIC_SEQ_CST);
	__atomic_store_n(&cred_exp, (int64_t)1700000000, __ATOMIC_SEQ_CST);
	CHECK_RC(open_providers(v, "test-key", prov), 0);
	if (prov[1] == NULL)
		return;
	memset(&ex, 0x55, sizeof(ex));
	CHECK_RC(monitor_judge(prov, &ex), 0);
	CHECK(ex.key_exp == 1800000000 && ex.cred_exp == 1700000000 &&
		      strcmp(ex.key_id, prov[1]->key_id) == 0,
	      "judged expiry %lld %lld %s", (long long)ex.key_exp,
	      (long long)ex.cred_exp, ex.key_id);
	set(&check_rc, -EKEYEXPIRED);
	CHECK_RC(monitor_judge(prov, &ex), -EKEYEXPIRED);
	set(&check_rc, 0);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	__atomic_store_n(&key_exp, (int64_t)0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&cred_exp, (int64_t)0, __ATOMIC_SEQ_CST);
}

/* A running monitor: the mount's judgement warns at start, checks after it
 * do not repeat the warning, the status carries exp and level; a key
 * extended past 30 days clears the level. */
static void warnings(struct keyring *kr, const char *audit_log)
{
	time_t now = time(NULL);
	struct monitor_cfg cfg = {
		.interval_sec = 1,
		.grace_sec = 3600,
		.service_key = "test-key",
		.open_providers = open_providers,
		.on_lock = on_lock,
		.ud = &locks,
	};
	struct monitor *m = NULL;
	struct monitor_status st;

	set(&check_rc, 0);
	/* 5 days and an hour: the 7-day level for the whole test */
	__atomic_store_n(&key_exp, (int64_t)now + 5 * 86400 + 3600,
			 __ATOMIC_SEQ_CST);
	cfg.mounted.key_exp = now + 5 * 86400 + 3600;
	snprintf(cfg.mounted.key_id, sizeof(cfg.mounted.key_id), "akv-test");
	CHECK_RC(monitor_start(kr, &cfg, &m), 0);
	if (m == NULL)
		return;
	monitor_get_status(m, &st);
	CHECK(st.key_warn == 7 && st.key_exp == cfg.mounted.key_exp,
	      "status at mount: level %d exp %lld", st.key_warn,
	      (long long)st.key_exp);
	CHECK(file_count(audit_log, "\"key_expiry_warning\"") == 1 &&
		      tvol_file_has(audit_log, "5 days left"),
	      "no warning at mount");
	CHECK(wait_for(m, false, st.checks + 2, &st), "no checks");
	CHECK(file_count(audit_log, "\"key_expiry_warning\"") == 1,
	      "warning repeated at every check (%d)",
	      file_count(audit_log, "\"key_expiry_warning\""));
	CHECK(st.key_warn == 7, "status after checks: level %d", st.key_warn);
	__atomic_store_n(&key_exp, (int64_t)now + 90 * 86400,
			 __ATOMIC_SEQ_CST);
	CHECK(wait_for(m, false, st.checks + 1, &st), "no check");
	CHECK(st.key_warn == 0 && st.key_exp == now + 90 * 86400,
	      "extended key: level %d", st.key_warn);
	monitor_stop(m);
	__atomic_store_n(&key_exp, (int64_t)0, __ATOMIC_SEQ_CST);
}

/* Result kinds: a refusal is "denied"; an EIO (a local read, a disk) or a
 * malformed reply is "error", never "denied"; the network and Key
 * Vault's 5xx/429 (-EAGAIN) are "transient". */
static void result_kinds(void)
{
	CHECK(strcmp(monitor_result_kind(0), "ok") == 0, "ok");
	CHECK(strcmp(monitor_result_kind(-EKEYREVOKED), "denied") == 0 &&
		      strcmp(monitor_result_kind(-EACCES), "denied") == 0,
	      "denial");
	CHECK(strcmp(monitor_result_kind(-EIO), "error") == 0 &&
		      strcmp(monitor_result_kind(-EPROTO), "error") == 0 &&
		      strcmp(monitor_result_kind(-ENOMEM), "error") == 0,
	      "EIO, EPROTO, ENOMEM: error");
	CHECK(strcmp(monitor_result_kind(-EAGAIN), "transient") == 0 &&
		      strcmp(monitor_result_kind(-ETIMEDOUT), "transient") == 0 &&
		      strcmp(monitor_result_kind(-ECONNREFUSED), "transient") ==
			      0 &&
		      strcmp(monitor_result_kind(-EHOSTUNREACH), "transient") ==
			      0,
	      "network: transient");
}

/* The audit summary: a day of checks every 60 s with the hourly
 * heartbeat is 24 lines, each standing for 60 checks; failures and the
 * first success after them always get a line; period 0: every check. */
static void heartbeat(void)
{
	struct monitor_hb h;
	time_t t0 = 1800000000, t;
	unsigned long n = 0, lines = 0, sum = 0;

	monitor_hb_init(&h, MONITOR_HEARTBEAT_DEFAULT, t0);
	for (t = t0 + 60; t <= t0 + 86400; t += 60) {
		if (monitor_hb_step(&h, "ok", t, &n)) {
			lines++;
			sum += n;
			CHECK(n == 60, "heartbeat at %ld stands for %lu checks",
			      (long)(t - t0), n);
		}
	}
	CHECK(lines == 24 && sum == 1440, "a day: %lu lines for %lu checks",
	      lines, sum);
	/* 10 quiet checks, then a failure: its own line, counting them */
	monitor_hb_init(&h, 3600, t0);
	for (int i = 1; i <= 10; i++)
		CHECK(!monitor_hb_step(&h, "ok", t0 + i * 60, &n),
		      "quiet ok %d logged", i);
	CHECK(monitor_hb_step(&h, "transient", t0 + 660, &n) && n == 11,
	      "failure: line %lu", n);
	CHECK(monitor_hb_step(&h, "transient", t0 + 720, &n) && n == 1,
	      "second failure: no line or %lu", n);
	CHECK(monitor_hb_step(&h, "ok", t0 + 780, &n) && n == 1,
	      "recovery not logged (%lu)", n);
	CHECK(!monitor_hb_step(&h, "ok", t0 + 840, &n), "ok after recovery");
	CHECK(monitor_hb_step(&h, "denied", t0 + 900, &n) && n == 2,
	      "denial after a quiet ok: %lu", n);
	CHECK(monitor_hb_step(&h, "error", t0 + 960, &n) && n == 1, "error");
	/* the heartbeat is at most hourly: 3599 s is not yet */
	monitor_hb_init(&h, 3600, t0);
	CHECK(!monitor_hb_step(&h, "ok", t0 + 3599, &n), "heartbeat early");
	CHECK(monitor_hb_step(&h, "ok", t0 + 3600, &n) && n == 2,
	      "heartbeat at 3600 s: %lu", n);
	monitor_hb_init(&h, 0, t0);
	CHECK(monitor_hb_step(&h, "ok", t0 + 1, &n) && n == 1 &&
		      monitor_hb_step(&h, "ok", t0 + 2, &n) && n == 1,
	      "period 0: every check");
}

int main(void)
{
	struct monitor_cfg none = { .service_key = "test-key" };
	char dir[PATH_MAX], log[PATH_MAX + 16];
	struct keyring *kr;
	struct monitor *m = NULL;
	struct volume v;
	size_t base;

	CHECK_RC(aead_global_init(), 0);
	if (tvol_tmpdir("test_monitor", dir, sizeof(dir)) < 0) {
		perror("mkdtemp");
		return 1;
	}
	snprintf(log, sizeof(log), "%s/audit.log", dir);
	audit_open(log);
	jitter();
	result_kinds();
	heartbeat();
	expiry_levels();
	expiry_once();
	expiry_margin();
	base = secmem_in_use();
	t_fill(skey, sizeof(skey), 30);
	kr = make_volume(&v);
	CHECK(kr != NULL, "no volume");
	if (kr != NULL) {
		lock_and_resume(kr, &v, log);
		grace_over(kr);
		confirmed(kr, log);
		judge(kr, &v);
		warnings(kr, log);
	}
	keyring_free(kr);
	CHECK(secmem_in_use() == base, "secmem in use %zu, was %zu",
	      secmem_in_use(), base);
	CHECK_RC(monitor_start(NULL, &none, &m), -EINVAL);
	CHECK(monitor_is_denial(-EKEYREVOKED) && monitor_is_denial(-ENOKEY) &&
		      !monitor_is_denial(-ETIMEDOUT) &&
		      !monitor_is_denial(-EAGAIN),
	      "denial or transient");
	monitor_stop(NULL);
	unlink(log);
	rmdir(dir);
	return t_done("test_monitor");
}
