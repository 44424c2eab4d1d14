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

#include <stdbool.h>
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
};

struct rekey_cb {
	/* Called at each phase and every ~0.2 s; nonzero stops the run
	 * (leaving a resumable rekey in progress). May be NULL. */
	int (*progress)(const struct rekey_progress *p, void *arg);
	/* A file the rekey could not re-wrap (backing path relative to the
	 * cipher directory). May be NULL. */
	void (*problem)(const char *bpath, const char *what, void *arg);
	void *arg;
};

/* Rekey the volume at rootfd (an O_RDONLY directory fd) whose keyring is
 * kr, with the volume's own providers prov[] (used only when starting).
 * Errors: as keyring_rekey_begin, -ECANCELED (progress asked to stop),
 * -EKEYREVOKED (locked meanwhile), -errno of the walk. On any error a
 * started rekey stays in progress and a later run finishes it. */
CMK_MUST_CHECK int rekey_run(int rootfd, struct keyring *kr,
			     struct keyprov *prov[2], const struct rekey_cb *cb,
			     struct rekey_progress *out);

/* The JSON lines of `cmkfs rekey --json` and of the control socket's
 * "rekey" stream (man/cmkfs-rekey.1): {"progress":{...}} and the final
 * {"ok":true,"rekey":{...}}. Truncated to cap. */
void rekey_progress_json(const struct rekey_progress *p, char *buf,
			 size_t cap);
void rekey_result_json(const struct rekey_progress *p, char *buf, size_t cap);
/* The `rekey` audit event: counts and generations, never names. */
void rekey_audit(const struct rekey_progress *p, const char *key_id, int rc,
		 bool offline);

#endif
