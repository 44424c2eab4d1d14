/* src/keys/monitor.c — key checks, grace period, lock and resume. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmkfs/audit.h"
#include "cmkfs/http.h"
#include "cmkfs/log.h"
#include "cmkfs/monitor.h"
#include "cmkfs/tclock.h"
#include "cmkfs/rand.h"

struct monitor {
	struct keyring *kr;
	struct monitor_cfg cfg;
	char service_key[4096];
	pthread_t thread;
	pthread_mutex_t mtx;
	pthread_cond_t cond;
	bool stop, kick;		/* protected by mtx */
	struct monitor_status st;	/* protected by mtx */
	int last_rc;			/* the last check's; protected by mtx */
	/* `cmkfs unlock` requests (protected by mtx): numbered; the check
	 * thread serves the newest at its next check and signals `done`.
	 * A request whose waiter gave up (given_up) unlocks nothing, unless
	 * a check had already claimed it (claimed) before. */
	pthread_cond_t done;
	unsigned long unlock_seq, unlock_served, unlock_claimed;
	unsigned long unlock_given_up;
	uint64_t unlock_gen;		/* keyring generation at the request */
	int unlock_rc;
	/* only the check thread (monitor_start before it) */
	struct monitor_warned key_warned, cred_warned;
	struct monitor_hb hb;		/* the audit summary of checks */
	/* a version the pre-flight checks refused: not tried again (the
	 * monitor thread's own) */
	char refused[VOLUME_KEYID_MAX + 1];
};

int monitor_is_denial(int rc)
{
	switch (rc) {
	case -EKEYREVOKED:
	case -EKEYEXPIRED:
	case -EKEYREJECTED:
	case -EACCES:
	case -ENOKEY:
	case -EPERM:
	case -EBADMSG:
		return 1;
	default:
		return 0;	/* network, timeouts, 5xx, 429, hostile replies */
	}
}

const char *monitor_result_kind(int rc)
{
	if (rc == 0)
		return "ok";
	if (monitor_is_denial(rc))
		return "denied";
	switch (rc) {
	case -EAGAIN:		/* Key Vault's and Entra's 5xx, 429, firewall */
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -ENETDOWN:
		return "transient";
	default:
		return "error";	/* local I/O, malformed reply, TLS, memory */
	}
}

void monitor_hb_init(struct monitor_hb *h, int period, time_t now)
{
	memset(h, 0, sizeof(*h));
	h->period = period;
	snprintf(h->last_kind, sizeof(h->last_kind), "ok");
	h->last_line = now;
}

bool monitor_hb_step(struct monitor_hb *h, const char *kind, time_t now,
		     unsigned long *n)
{
	bool ok = strcmp(kind, "ok") == 0;
	bool line = !ok || strcmp(h->last_kind, "ok") != 0 ||
		    h->period <= 0 || now - h->last_line >= h->period;

	snprintf(h->last_kind, sizeof(h->last_kind), "%s", kind);
	if (!line) {
		h->quiet++;
		return false;
	}
	*n = h->quiet + 1;
	h->quiet = 0;
	h->last_line = now;
	return true;
}

int monitor_expiry_level(int64_t exp, time_t now)
{
	static const int days[] = { MONITOR_WARN_DAYS_3, MONITOR_WARN_DAYS_2,
				    MONITOR_WARN_DAYS_1 };

	if (exp == 0)
		return 0;
	if (exp <= (int64_t)now)
		return -1;
	for (size_t i = 0; i < sizeof(days) / sizeof(days[0]); i++) {
		if (exp - (int64_t)now <= (int64_t)days[i] * 86400)
			return days[i];
	}
	return 0;
}

int monitor_expiry_step(struct monitor_warned *w, int64_t exp, time_t now)
{
	int level = monitor_expiry_level(exp, now);

	if (exp != w->exp) {
		/* rotated or extended: its thresholds are new ones */
		w->exp = exp;
		w->level = 0;
	}
	if (level == 0)
		w->level = 0;
	/* past: the check itself fails, the lock says it */
	if (level <= 0 || (w->level != 0 && level >= w->level))
		return 0;
	w->level = level;
	return level;
}

long monitor_days_left(int64_t exp, time_t now)
{
	int64_t d = exp - (int64_t)now;

	return (long)(d >= 0 ? d / 86400 : -((-d + 86399) / 86400));
}

int monitor_judge(struct keyprov *prov[2], struct monitor_expiry *ex)
{
	struct monitor_expiry e;
	int rc = 0;

	memset(&e, 0, sizeof(e));
	for (int i = 0; i < 2 && rc == 0; i++) {
		int64_t k = 0, c = 0;

		if (prov[i]->ops->check != NULL)
			rc = prov[i]->ops->check(prov[i]);
		if (rc < 0 || prov[i]->ops->expiry == NULL)
			continue;
		prov[i]->ops->expiry(prov[i], &k, &c);
		if (k != 0 && (e.key_exp == 0 || k < e.key_exp)) {
			e.key_exp = k;
			snprintf(e.key_id, sizeof(e.key_id), "%s",
				 prov[i]->key_id);
		}
		if (c != 0 && (e.cred_exp == 0 || c < e.cred_exp))
			e.cred_exp = c;
	}
	if (rc == 0 && ex != NULL)
		*ex = e;
	return rc;
}

static void utc_time(int64_t exp, char *out, size_t cap)
{
	time_t t = (time_t)exp;
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int monitor_margin_check(const struct monitor_expiry *e, int margin_days,
			 time_t now, char *why, size_t cap)
{
	char when[32];

	if (e->key_exp == 0 ||
	    e->key_exp - (int64_t)now > (int64_t)margin_days * 86400)
		return 0;
	utc_time(e->key_exp, when, sizeof(when));
	snprintf(why, cap,
		 "the key expires %s (%ld days from now), within the %d-day "
		 "expiry margin: rotate to a key or version that expires "
		 "later ('cmkfs cmk rotate'), or extend its expiry ('az "
		 "keyvault key set-attributes --id %s --expires "
		 "YYYY-MM-DDTHH:MM:SSZ', or in the portal: the key version's "
		 "\"Set expiration date\"); --expiry-margin 0 accepts it",
		 when, monitor_days_left(e->key_exp, now), margin_days,
		 e->key_id);
	return -EPERM;
}

/* One warning: log and audit, with the days left and what to do. */
static void warn_expiry(const char *event, const char *what,
			const char *key, int64_t exp, int level, time_t now)
{
	char when[32], detail[200], code[40];
	struct audit_why aw = { .cause = "expiry", .code = code };
	long days = monitor_days_left(exp, now);

	utc_time(exp, when, sizeof(when));
	snprintf(code, sizeof(code), "exp=%lld", (long long)exp);
	snprintf(detail, sizeof(detail),
		 "%ld days left: expires %s (%d-day warning)", days, when,
		 level);
	log_warn("%s%s%s expires %s, %ld days left: %s (doc/KEYS.md "
		 "\"Expiry\")", what, key != NULL ? " " : "",
		 key != NULL ? key : "", when, days,
		 key != NULL ? "rotate the key or extend its expiry" :
			       "renew the certificate");
	audit_event_why(event, key, "warning", detail, &aw);
}

/* What a judgement that succeeded found: status fields, and a warning
 * for each threshold crossed since the last (once per crossing). */
static void note_expiry(struct monitor *m, const struct monitor_expiry *e,
			time_t now)
{
	int kl = monitor_expiry_step(&m->key_warned, e->key_exp, now);
	int cl = monitor_expiry_step(&m->cred_warned, e->cred_exp, now);

	pthread_mutex_lock(&m->mtx);
	m->st.key_exp = e->key_exp;
	m->st.cred_exp = e->cred_exp;
	m->st.key_warn = m->key_warned.level;
	m->st.cred_warn = m->cred_warned.level;
	pthread_mutex_unlock(&m->mtx);
	if (kl > 0)
		warn_expiry("key_expiry_warning", "key", e->key_id,
			    e->key_exp, kl, now);
	if (cl > 0)
		warn_expiry("credential_expiry_warning",
			    "client certificate (AZURE_CLIENT_CERTIFICATE_PATH)",
			    NULL, e->cred_exp, cl, now);
}

/* Key-state and network errors are best told by the provider's own last
 * failure (Key Vault's code and message); the rest by the creator's words. */
static const char *why(const struct monitor *m, int rc)
{
	if ((rc == -EKEYREVOKED || rc == -EKEYEXPIRED || rc == -EACCES ||
	     rc == -EAGAIN || rc == -EPROTO) &&
	    strcmp(keyprov_last_error(), "no error") != 0)
		return keyprov_last_error();
	return m->cfg.strerror != NULL ? m->cfg.strerror(rc) : strerror(-rc);
}

/* One check: providers for the current config, attributes, unwrap proof.
 * It starts with no provider result, so what it reports is its own. */
static int check_once(struct monitor *m, struct keyprov *prov[2],
		      struct monitor_expiry *ex)
{
	struct volume v;
	int rc;

	keyprov_clear_error();
	keyring_volume_copy(m->kr, &v);
	rc = m->cfg.open_providers(&v, m->service_key, prov);
	if (rc == 0)
		rc = monitor_judge(prov, ex);	/* the mount's rule too */
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = keyring_verify_layer(m->kr, prov[i], i);
	return rc;
}

static void set_lock_cause(struct monitor *m, const char *cause)
{
	pthread_mutex_lock(&m->mtx);
	if (!m->st.locked)
		snprintf(m->st.lock_cause, sizeof(m->st.lock_cause), "%s",
			 cause);
	pthread_mutex_unlock(&m->mtx);
}

/* kind: the audit result of a lock a check caused (monitor_result_kind
 * of its failure: a grace period that ran out in an outage is
 * "transient", not "denied"); a manual lock is "manual". */
static void do_lock(struct monitor *m, const char *reason, bool manual,
		    const char *kind, struct monitor_status *st,
		    const struct audit_why *aw)
{
	char key_id[sizeof(m->st.key_id)];
	bool was, was_manual;

	keyring_lock(m->kr);
	keyprov_forget();
	if (m->cfg.on_lock != NULL)
		m->cfg.on_lock(m->cfg.ud);
	pthread_mutex_lock(&m->mtx);
	was = m->st.locked;
	was_manual = m->st.manual;
	m->st.locked = true;
	/* a manual lock on a mount a check locked turns it into one that
	 * only `cmkfs unlock` ends */
	m->st.manual = manual || was_manual;
	if (st != NULL)
		*st = m->st;
	memcpy(key_id, m->st.key_id, sizeof(key_id));
	pthread_mutex_unlock(&m->mtx);
	if (!was || (manual && !was_manual)) {
		log_err("keys wiped, mount locked: %s", reason);
		audit_event_why("lock", key_id, manual ? "manual" : kind,
				reason, aw);
	}
}

static void follow_newer(struct monitor *m, struct keyprov *prov[2]);

/* Sleep up to sec seconds unless the monitor is stopped; true if stopped. */
static bool pause_unless_stopped(struct monitor *m, int sec)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += sec;
	pthread_mutex_lock(&m->mtx);
	while (!m->stop &&
	       pthread_cond_timedwait(&m->cond, &m->mtx, &ts) == 0)
		;
	stop = m->stop;
	pthread_mutex_unlock(&m->mtx);
	return stop;
}

/* The audit fields of this thread's last provider result. */
static void why_parts(struct keyprov_why *w, struct audit_why *aw, int rc,
		      const char *resumed_from)
{
	keyprov_last_why(w);
	if (rc < 0 && w->cause[0] == '\0')
		snprintf(w->cause, sizeof(w->cause), "%s",
			 monitor_is_denial(rc) ? "denied" : "unavailable");
	if (rc == 0)
		snprintf(w->cause, sizeof(w->cause), "%s",
			 resumed_from != NULL ? resumed_from : "");
	aw->cause = w->cause;
	aw->code = w->code;
	aw->request_id = w->request_id;
	aw->client_request_id = w->client_request_id;
	aw->checks = 0;		/* only a summary line counts checks */
}

/* One check. A denial is not acted on at once: unless `confirming`, the
 * check is made again confirm_sec later, and only a denial then locks (a
 * 403 while a role assignment propagates, or one spurious reply, must not
 * take a mount down). A transient result of that second check is judged
 * by the grace period like any other. */
static void run_check_pass(struct monitor *m, bool confirming,
			   unsigned long serve)
{
	struct keyprov *prov[2] = { NULL, NULL };
	time_t now = time(NULL);
	struct monitor_expiry ex;
	char key_id[sizeof(m->st.key_id)];
	char reason[256], cause[16];
	struct keyprov_why w;
	struct audit_why aw;
	bool locked, manual, unlocking;
	int rc;

	/* A lock from here on is newer than this check's proof and must
	 * not be undone by it: a resume needs a check that starts later.
	 * (Without this a lock landing while a check unwrapped could leave
	 * the keyring locked and the state unlocked, and no later check
	 * would ever unlock it.) Only this thread unlocks, so the keyring's
	 * generation moves on from gen0 by a lock or by our own unlock. */
	uint64_t gen0 = keyring_generation(m->kr);

	rc = check_once(m, prov, &ex);
	/* The grace period is judged when the check ends: one that started
	 * inside it and outlasted it (its requests waited or timed out)
	 * locks now, not a whole interval later. */
	time_t end = time(NULL);
	const char *kind = monitor_result_kind(rc);
	unsigned long nline = 0;

	snprintf(reason, sizeof(reason), "%s", rc == 0 ? "ok" : why(m, rc));
	why_parts(&w, &aw, rc, NULL);
	pthread_mutex_lock(&m->mtx);
	/* a check proves the keys when its last request (the unwrap) is
	 * answered: the grace period runs from there */
	m->st.last_check = end;
	m->st.checks++;
	if (rc < 0 && strcmp(kind, "denied") == 0)
		m->st.fail_denied++;
	else if (rc < 0 && strcmp(kind, "transient") == 0)
		m->st.fail_transient++;
	else if (rc < 0)
		m->st.fail_error++;
	m->st.last_check_ok = rc == 0;
	snprintf(m->st.last_result, sizeof(m->st.last_result), "%s", reason);
	if (rc == 0)
		m->st.last_ok = end;
	m->last_rc = rc;
	locked = m->st.locked;
	manual = m->st.manual;
	bool lock_since = keyring_generation(m->kr) != gen0;
	/* `cmkfs lock` holds until `cmkfs unlock`: only a check serving an
	 * unlock request may end it, and only if the keyring is still where
	 * the request found it (a lock since then is newer than the request)
	 * and the request's waiter is still there. Claimed here, it is seen
	 * through even if the waiter's time runs out meanwhile. */
	unlocking = serve != 0 && serve > m->unlock_given_up &&
		    m->unlock_gen == gen0;
	if (rc == 0 && locked && !lock_since && unlocking)
		m->unlock_claimed = serve;
	time_t last_ok = m->st.last_ok;
	/* monitor_reload() may change it meanwhile */
	memcpy(key_id, m->st.key_id, sizeof(key_id));
	snprintf(cause, sizeof(cause), "%s", m->st.lock_cause);
	pthread_mutex_unlock(&m->mtx);
	bool confirm = rc < 0 && !locked && monitor_is_denial(rc) &&
		       !confirming;
	char detail[300];

	snprintf(detail, sizeof(detail), "%s%s", rc == 0 ? "" : reason,
		 confirm	     ? " (to be confirmed by a second check)" :
		 confirming && rc == 0 ? "denial not confirmed by a second check" :
					 "");
	/* Every failure and every change of result has its line; an
	 * unchanged "ok" only a heartbeat now and then, which counts the
	 * checks since the last line. */
	if (monitor_hb_step(&m->hb, kind, now, &nline)) {
		if (rc == 0 && detail[0] == '\0' && nline > 1)
			snprintf(detail, sizeof(detail),
				 "heartbeat: %lu checks ok since the last "
				 "check line", nline);
		aw.checks = nline;
		audit_event_why("check", key_id, kind,
				detail[0] ? detail : NULL, &aw);
	}
	if (rc == 0)
		note_expiry(m, &ex, now);
	if (rc == 0 && locked && !lock_since && (!manual || unlocking)) {
		bool resumed = false;

		/* Installs the keys only if no lock came since gen0 (then
		 * gen0 + 1); a lock after that wipes them again before it
		 * sets the state, which then stands. */
		rc = keyring_unlock(m->kr, prov, gen0);
		if (rc == 0) {
			pthread_mutex_lock(&m->mtx);
			resumed = keyring_generation(m->kr) == gen0 + 1;
			if (resumed) {
				m->st.locked = m->st.manual = false;
				m->st.lock_cause[0] = '\0';
			}
			pthread_mutex_unlock(&m->mtx);
		}
		if (resumed && manual) {
			why_parts(&w, &aw, 0, "manual");
			log_warn("cmkfs unlock: keys proven again, mount "
				 "unlocked");
			audit_event_why("resume", key_id, "ok",
					"cmkfs unlock: keys proven again", &aw);
			audit_event("unwrap", key_id, "ok", "resume");
		} else if (resumed) {
			char r[64];

			/* the resume names what it recovered from */
			snprintf(r, sizeof(r), "access restored after: %s",
				 cause[0] ? cause : "lock");
			why_parts(&w, &aw, 0, cause);
			log_warn("key access restored, mount resumed (locked "
				 "for: %s)", cause[0] ? cause : "lock");
			audit_event_why("resume", key_id, "ok", r, &aw);
			audit_event("unwrap", key_id, "ok", "resume");
		}
	} else if (confirm) {
		log_warn("key check denied (%s): checking again in %d s before "
			 "locking", reason, m->cfg.confirm_sec);
		keyprov_close(prov[0]);
		keyprov_close(prov[1]);
		if (!pause_unless_stopped(m, m->cfg.confirm_sec))
			run_check_pass(m, true, serve);
		return;
	} else if (rc == 0 && !locked && !lock_since) {
		follow_newer(m, prov);
	} else if (rc < 0 && !locked) {
		if (monitor_is_denial(rc)) {
			set_lock_cause(m, w.cause);
			do_lock(m, reason, false, "denied", NULL, &aw);
		} else if (end - last_ok >= m->cfg.grace_sec) {
			char r2[300];

			snprintf(r2, sizeof(r2),
				 "grace period of %d s over: %s",
				 m->cfg.grace_sec, reason);
			/* the cause stays the transient one: "firewall",
			 * "outage"; the detail says the grace ran out */
			set_lock_cause(m, w.cause);
			do_lock(m, r2, false, monitor_result_kind(rc), NULL,
				&aw);
		} else {
			log_warn("key check failed (transient: %s, locking in "
				 "%ld s if it persists): %s",
				 w.cause,
				 (long)(m->cfg.grace_sec - (end - last_ok)),
				 reason);
		}
	}
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	/* A locked mount holds no secret: the token this check fetched to
	 * see whether access is back goes with it (keyprov.h). */
	pthread_mutex_lock(&m->mtx);
	locked = m->st.locked;
	pthread_mutex_unlock(&m->mtx);
	if (locked)
		keyprov_forget();
}

/* One check; if it serves unlock request `serve` (0: none), its result
 * goes to the waiter: 0 once unlocked, the check's error, or -EAGAIN (the
 * check passed, and a lock came while it ran). */
static void run_check(struct monitor *m, unsigned long serve)
{
	run_check_pass(m, false, serve);
	if (serve == 0)
		return;
	pthread_mutex_lock(&m->mtx);
	m->unlock_served = serve;
	m->unlock_rc = !m->st.locked ? 0 : m->last_rc < 0 ? m->last_rc :
							     -EAGAIN;
	pthread_cond_broadcast(&m->done);
	pthread_mutex_unlock(&m->mtx);
}

long monitor_next_wait_ms(int interval_sec)
{
	long base = (interval_sec > 0 ? interval_sec : 1) * 1000L;
	long span = base / 5;	/* 0.9 to 1.1: a width of 0.2 x base */
	uint32_t r = 0;

	/* Without randomness the checks stay regular, never stop. */
	if (rand_bytes(&r, sizeof(r)) < 0)
		r = UINT32_MAX / 2;
	return base - span / 2 + (long)((uint64_t)r * (uint64_t)(span + 1) >>
					32);
}

static void *loop(void *arg)
{
	struct monitor *m = arg;

	pthread_mutex_lock(&m->mtx);
	while (!m->stop) {
		long wait = monitor_next_wait_ms(m->cfg.interval_sec);
		struct timespec ts;

		/* Failing checks within the grace period: the next one comes
		 * no later than the grace period's end, so a mount locks
		 * then, not up to an interval later (doc/KEYS.md "Grace
		 * period"). */
		if (!m->st.locked && !m->st.last_check_ok) {
			long left = ((long)m->st.last_ok + m->cfg.grace_sec -
				     (long)time(NULL)) * 1000L;

			if (left < wait)
				wait = left > 0 ? left : 1000;
		}

		tclock_deadline_ms(wait, &ts);
		while (!m->stop && !m->kick &&
		       pthread_cond_timedwait(&m->cond, &m->mtx, &ts) == 0)
			;
		if (m->stop)
			break;
		m->kick = false;
		/* the newest unlock request not served yet, if any */
		unsigned long serve = m->unlock_seq > m->unlock_served ?
					      m->unlock_seq : 0;
		/* A throttled Key Vault's Retry-After is waited for as long as
		 * the grace period has time left: that check then succeeds
		 * instead of failing as transient. Never longer: no retry
		 * outlasts the grace period, and once it is over (or the
		 * mount is locked) a check makes one attempt per request.
		 * Someone waiting for `cmkfs unlock` gets half its wait. */
		long budget = ((long)m->st.last_ok + m->cfg.grace_sec -
			       (long)time(NULL)) * 1000L;
		if (serve != 0)
			budget = MONITOR_UNLOCK_WAIT_SEC * 1000L / 2;
		pthread_mutex_unlock(&m->mtx);
		http_set_budget(budget > 0 ? budget : 1);
		run_check(m, serve);
		http_set_budget(0);
		pthread_mutex_lock(&m->mtx);
	}
	pthread_mutex_unlock(&m->mtx);
	return NULL;
}

static void set_key_id(struct monitor *m)
{
	struct volume v;

	keyring_volume_copy(m->kr, &v);
	pthread_mutex_lock(&m->mtx);
	snprintf(m->st.key_id, sizeof(m->st.key_id), "%s", v.layer[1].key_id);
	m->st.follow = (v.flags & VOLUME_FLAG_FOLLOW) != 0;
	pthread_mutex_unlock(&m->mtx);
}

/* A check passed and the key has a newer version: move to it now, so the
 * old one is never needed again once the config is on disk (and no
 * rotation policy's expiry of old versions can reach the volume). */
static void follow_newer(struct monitor *m, struct keyprov *prov[2])
{
	char kid[VOLUME_KEYID_MAX + 1];
	struct volume nv;
	int rc;

	if (m->cfg.follow == NULL || prov[1]->ops->newer == NULL ||
	    prov[1]->ops->newer(prov[1], kid, sizeof(kid)) != 1 ||
	    strcmp(kid, m->refused) == 0)
		return;
	rc = m->cfg.follow(m->cfg.follow_ud, prov, kid, &nv);
	if (rc == 0)
		rc = keyring_set_volume(m->kr, &nv);
	if (rc < 0) {
		if (rc == -EPERM)
			snprintf(m->refused, sizeof(m->refused), "%s", kid);
		log_warn("the customer-managed key has a new version %s; "
			 "moving to it failed (%s)%s",
			 kid, why(m, rc),
			 rc == -EPERM ? "" : ": the next check tries again");
		return;
	}
	set_key_id(m);
	pthread_mutex_lock(&m->mtx);
	m->st.rotations++;
	m->st.last_rotation = time(NULL);
	pthread_mutex_unlock(&m->mtx);
	log_info("customer-managed key: now wrapped by its new version %s "
		 "(automatic rotation)",
		 nv.layer[1].key_id);
}

int monitor_start(struct keyring *kr, const struct monitor_cfg *cfg,
		  struct monitor **out)
{
	struct monitor *m;

	if (cfg->open_providers == NULL)
		return -EINVAL;
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return -ENOMEM;
	m->kr = kr;
	m->cfg = *cfg;
	snprintf(m->service_key, sizeof(m->service_key), "%s",
		 cfg->service_key != NULL ? cfg->service_key : "");
	m->cfg.service_key = m->service_key;
	if (m->cfg.interval_sec <= 0)
		m->cfg.interval_sec = 60;
	if (m->cfg.grace_sec < 0)
		m->cfg.grace_sec = 3600;
	if (m->cfg.confirm_sec <= 0)
		m->cfg.confirm_sec = MONITOR_CONFIRM_DEFAULT;
	pthread_mutex_init(&m->mtx, NULL);
	pthread_cond_init(&m->cond, NULL);
	pthread_cond_init(&m->done, NULL);
	m->st.last_check = m->st.last_ok = time(NULL);
	m->st.last_check_ok = true;	/* the mount just unwrapped */
	snprintf(m->st.last_result, sizeof(m->st.last_result), "ok (mount)");
	if (m->cfg.heartbeat_sec == 0) {
		const char *e = getenv("CMKFS_AUDIT_HEARTBEAT");
		char *end = NULL;
		long v = e != NULL && *e ? strtol(e, &end, 10) : -1;

		m->cfg.heartbeat_sec = end != NULL && *end == '\0' && v >= 0 &&
						       v <= 86400 * 366 ?
					       (int)v :
					       MONITOR_HEARTBEAT_DEFAULT;
	}
	monitor_hb_init(&m->hb, m->cfg.heartbeat_sec, time(NULL));
	set_key_id(m);
	note_expiry(m, &cfg->mounted, time(NULL));
	if (pthread_create(&m->thread, NULL, loop, m) != 0) {
		pthread_cond_destroy(&m->done);
		pthread_cond_destroy(&m->cond);
		pthread_mutex_destroy(&m->mtx);
		free(m);
		return -EAGAIN;
	}
	*out = m;
	return 0;
}

void monitor_stop(struct monitor *m)
{
	if (m == NULL)
		return;
	pthread_mutex_lock(&m->mtx);
	m->stop = true;
	pthread_cond_signal(&m->cond);
	pthread_cond_broadcast(&m->done);
	pthread_mutex_unlock(&m->mtx);
	http_interrupt(true);	/* a check waiting out a Retry-After */
	pthread_join(m->thread, NULL);
	http_interrupt(false);
	pthread_cond_destroy(&m->done);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->mtx);
	free(m);
}

void monitor_lock_now(struct monitor *m, const char *reason,
		      struct monitor_status *st)
{
	static const struct audit_why manual = { .cause = "manual" };

	/* even over a check's cause: what holds the mount now is this */
	pthread_mutex_lock(&m->mtx);
	snprintf(m->st.lock_cause, sizeof(m->st.lock_cause), "manual");
	pthread_mutex_unlock(&m->mtx);
	do_lock(m, reason, true, "manual", st, &manual);
}

int monitor_unlock(struct monitor *m, char *why, size_t cap,
		   struct monitor_status *st)
{
	struct timespec ts;
	unsigned long my;
	int rc = 0;

	if (cap > 0)
		why[0] = '\0';
	tclock_deadline_ms(MONITOR_UNLOCK_WAIT_SEC * 1000L, &ts);
	pthread_mutex_lock(&m->mtx);
	if (!m->st.locked)
		goto out;
	my = ++m->unlock_seq;
	m->unlock_gen = keyring_generation(m->kr);
	m->kick = true;
	pthread_cond_signal(&m->cond);
	while (!m->stop && m->unlock_served < my) {
		if (pthread_cond_timedwait(&m->done, &m->mtx, &ts) == 0)
			continue;
		if (m->unlock_claimed >= my) {
			/* proved; the keys are being installed */
			pthread_cond_wait(&m->done, &m->mtx);
			continue;
		}
		m->unlock_given_up = my;
		rc = -ETIMEDOUT;
		snprintf(why, cap, "the key check did not finish within %d s",
			 MONITOR_UNLOCK_WAIT_SEC);
		goto out;
	}
	if (m->unlock_served < my) {
		rc = -ECANCELED;	/* stopping */
		snprintf(why, cap, "the mount is stopping");
		goto out;
	}
	rc = m->unlock_rc;
	if (rc == -EAGAIN)
		snprintf(why, cap, "locked again while the key check ran");
	else if (rc < 0)
		snprintf(why, cap, "%s", m->st.last_result);
out:
	if (st != NULL)
		*st = m->st;
	pthread_mutex_unlock(&m->mtx);
	return rc;
}

void monitor_kick(struct monitor *m)
{
	pthread_mutex_lock(&m->mtx);
	m->kick = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->mtx);
}

int monitor_reload(struct monitor *m, const struct volume *v,
		   struct monitor_status *st)
{
	unsigned long before;
	int rc;

	rc = keyring_set_volume(m->kr, v);
	if (rc < 0)
		return rc;
	set_key_id(m);
	pthread_mutex_lock(&m->mtx);
	before = m->st.checks;
	pthread_mutex_unlock(&m->mtx);
	monitor_kick(m);	/* prove the new key now, and say how it went */
	for (int i = 0; i < 600; i++) {
		struct timespec ts = { 0, 100000000 };

		monitor_get_status(m, st);
		if (st->checks != before)
			break;
		nanosleep(&ts, NULL);
	}
	return 0;
}

void monitor_get_status(struct monitor *m, struct monitor_status *st)
{
	pthread_mutex_lock(&m->mtx);
	*st = m->st;
	pthread_mutex_unlock(&m->mtx);
}
