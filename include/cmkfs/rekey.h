/* include/cmkfs/rekey.h — `cmkfs rekey`: new KEKs for a volume, every file
 * header re-wrapped in place, block data untouched (doc/KEYS.md "Rekey").
 * The same code runs offline (the CLI) and inside a mount daemon (asked
 * over the control socket), so a live mount switches to the new KEKs for
 * new files at the same instant as the config.
 *
 * Crash safety: the config names both generations until every header is
 * re-wrapped and synced, so a volume opens and reads at any instant; a run
 * over a volume with a rekey in progress resumes it. */
#ifndef CMKFS_REKEY_H
#define CMKFS_REKEY_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cmkfs/keyring.h"

struct rekey_progress {
	const char *phase;	/* "begin", "count", "rewrap", "verify", "sync",
				 * "finish" */
	uint32_t from_gen, to_gen;
	bool resumed;		/* a rekey was already in progress */
	uint64_t total;		/* regular files found by the count */
	uint64_t done;		/* files visited in this pass */
	uint64_t rewrapped;	/* headers re-wrapped, all passes */
	uint64_t damaged;	/* headers that could not be re-wrapped */
	unsigned pass;
	/* A full rekey (--full, `cmk enable`): files given fresh DEKs and
	 * re-sealed (in `rewrapped`), bytes of their backing files (total
	 * from the count, done in this pass), and names, symlink targets
	 * and xattrs re-encrypted. */
	bool full;
	uint64_t bytes_total, bytes_done;
	uint64_t names;
	double elapsed;		/* seconds since the run began */
};

struct reseal_batch;

/* A full rekey on a live mount goes through the mount's own state. */
struct rekey_live {
	/* Queue regular file dfd/name in batch b as reseal_batch_add()
	 * does, with the mount's cfile for it (its locks and cached keys).
	 * Returns as reseal_batch_add(). */
	int (*reseal)(int dfd, const char *name, struct reseal_batch *b,
		      void *arg);
	/* Hold (true) / release the mount's namespace lock around one
	 * directory's names. */
	void (*ns)(bool lock, void *arg);
	/* Symlink `plain` in dfd was re-made (migrate.h): its kernel entry
	 * is to be dropped once the namespace lock is released. */
	void (*replaced)(int dfd, const char *plain, void *arg);
	void *arg;
};

struct rekey_cb {
	/* Called at each phase and every ~0.2 s; nonzero stops the run
	 * (leaving a resumable rekey in progress). May be NULL. */
	int (*progress)(const struct rekey_progress *p, void *arg);
	/* A file the rekey could not re-wrap (backing path relative to the
	 * cipher directory). May be NULL. */
	void (*problem)(const char *bpath, const char *what, void *arg);
	void *arg;
	/* A full rekey (doc/KEYS.md "Full rekey"): new KEKs, a new volume
	 * secret, every name re-encrypted and every file re-sealed. With
	 * new_c, the customer layer moves to that provider (`cmk enable`). A
	 * full rekey in progress is resumed as one whatever `full` says. */
	bool full;
	struct keyprov *new_c;
	const struct rekey_live *live;	/* NULL offline */
};

/* Rekey the volume at rootfd (an O_RDONLY directory fd) whose keyring is
 * kr, with the volume's own providers prov[] (used only when starting).
 * Errors: as keyring_rekey_begin, -ECANCELED (progress asked to stop),
 * -EKEYREVOKED (locked meanwhile), -errno of the walk. On any error a
 * started rekey stays in progress and a later run finishes it. */
CMK_MUST_CHECK int rekey_run(int rootfd, struct keyring *kr,
			     struct keyprov *prov[2], const struct rekey_cb *cb,
			     struct rekey_progress *out);

/* Where rekey_volume() stopped. */
enum rekey_stage {
	REKEY_STAGE_DONE,	/* every header re-wrapped (some maybe damaged) */
	REKEY_STAGE_OPEN,	/* opening, locking against mounts, reading the
				 * config */
	REKEY_STAGE_UNLOCK,	/* the volume's keys are unavailable */
	REKEY_STAGE_RUN,	/* rekey_run() failed; resumable */
};

/* Long enough for a message naming a path and a Key Vault error. */
#define REKEY_MSG_MAX (PATH_MAX + 1024)

struct rekey_result {
	enum rekey_stage stage;
	int err;			/* 0, or the negative errno */
	/* On failure: one sentence for the user, starting with the
	 * cipherdir as given, without a command prefix. */
	char msg[REKEY_MSG_MAX];
	struct rekey_progress p;	/* the counts (REKEY_STAGE_RUN, DONE) */
};

/* The offline rekey of the volume in `cipherdir`, in this process: open
 * it, hold it against mounts (volio_lock_offline) for the whole run,
 * unlock its keys with the service key file `service_key` (and Key Vault
 * for a CMK), rekey_run(), release. Audits the "rekey" event (or a denied
 * unlock) under the volume's id; the caller opens the audit log. *r is
 * always filled. Errors: -EBUSY (mounted or another rekey), volio_read's
 * (OPEN), the providers' (UNLOCK), rekey_run's (RUN). A volume with damaged
 * headers still returns 0: see r->p.damaged. */
CMK_MUST_CHECK int rekey_volume(const char *cipherdir, const char *service_key,
				const struct rekey_cb *cb,
				struct rekey_result *r);

/* The JSON lines of `cmkfs rekey --json` and of the control socket's
 * "rekey" stream (man/cmkfs-rekey.1): {"progress":{...}} and the final
 * {"ok":true,"rekey":{...}}. Truncated to cap. */
void rekey_progress_json(const struct rekey_progress *p, char *buf,
			 size_t cap);
void rekey_result_json(const struct rekey_progress *p, char *buf, size_t cap);
/* The inverse of both, for the object under "progress" or "rekey": the
 * fields found are set, the others 0 ("files" and "passes" of a result
 * stand for total and pass). p->phase points into phase (cap bytes), ""
 * if absent. */
struct json;
void rekey_progress_from_json(const struct json *obj,
			      struct rekey_progress *p, char *phase,
			      size_t cap);
/* The `rekey` audit event: counts and generations, never names. */
void rekey_audit(const struct rekey_progress *p, const char *key_id, int rc,
		 bool offline);

#endif
