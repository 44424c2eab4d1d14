/* include/cmkfs/fsck.h — the volume check behind `cmkfs fsck`
 * (doc/OPERATIONS.md "fsck"): every directory id, encrypted name and
 * long-name side file, every file header and block in both layers, every
 * symlink target and user xattr, and the reserved names (side files in
 * LINKS_DIR that no symlink points to among them). In a format-3 volume
 * also LINKSET_DIR's entries and bindings wider than a file's names
 * (linkfsck.h). Each problem is
 * reported with its backing path, the plaintext path where it can still be
 * derived, and the block number. Transient zones expire first (only
 * counted while the volume is mounted or cannot be written).
 *
 * With repair (an unmounted volume only), damaged files are salvaged into
 * lost+found and what cannot be read is quarantined (repair.h), or
 * destroyed inside a transient zone; truncates and reseals cut short by a
 * crash are completed first (journal.h).
 *
 * A volume caught mid full rekey (VOLUME_FLAG_FULL) is checked under both
 * generations' keys and what is still under the previous one counted,
 * not reported (struct fsck_result).
 *
 * The engine prints nothing: each finding reaches the caller through
 * struct fsck_cb as it is made, and the counts (and, if asked, a list of
 * the problems) come back in struct fsck_result. Not thread-safe: one run
 * per result. */
#ifndef CMKFS_FSCK_H
#define CMKFS_FSCK_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>

#include "cmkfs/keyring.h"
#include "cmkfs/repair.h"

/* At most this many problems are kept in fsck_result.list. */
#define FSCK_LIST_MAX 4096

/* Progress by bytes (man/cmkfs-fsck.1 "Progress"): the backing bytes of
 * the regular files the walk checks, summed by a first walk of the tree
 * (phase "count"), then done file by file and within a file every MiB or
 * so. A repair adds the bytes its salvages copy, and when free space is
 * short first reads the volume once without changing it (phase "size",
 * pass 1 of 2) to learn what its salvages will need. */
struct fsck_progress {
	const char *phase;	/* "count", "size", "check", "repair" */
	unsigned pass, passes;	/* 1-based; passes is 2 with "size" */
	uint64_t bytes_done, bytes_total;	/* bytes_done <= bytes_total */
	uint64_t files_done, files_total;
	double elapsed;		/* seconds since the count began */
	/* bytes_done per second since the count ended, and the seconds
	 * left at that rate: -1 while not known (before half a second or
	 * 16 MiB of work) */
	double rate, eta_s;
	bool final;		/* the last call: bytes_done == bytes_total */
};

/* Room a repair keeps free beyond its salvages' copies: lost+found, the
 * quarantine's directories and dirid copies, long-name side files. */
#define FSCK_SPACE_RESERVE (1u << 20)
#define FSCK_SPACE_PER_FILE (64u << 10)

struct fsck_opts {
	/* The cipher directory's path: prefix of every backing path. */
	const char *root;
	/* Salvage, quarantine, destroy. The caller holds the volume's
	 * offline lock (volio_lock_offline) on rootfd for the whole run. */
	bool repair;
	/* A mount serves the volume: its sweeper owns expiry. */
	bool mounted;
	/* Keep the problems in fsck_result.list as well. */
	bool keep_list;
	/* Expire nothing (an upgrade's check before it starts). */
	bool keep_zones;
	/* fsck_volume() only: the audit log opened at the first event (NULL:
	 * audit_default_path()). A run that stops before the check opens
	 * none. */
	const char *audit_log;
	/* Progress by bytes: called at each phase and between every 0.1 s
	 * or 16 MiB, whichever comes first, the last time with p->final.
	 * Non-NULL asks for the count walk (a repair always makes it, for
	 * its free-space check). */
	void (*meter)(const struct fsck_progress *p, void *arg);
	void *meter_arg;
};

/* One problem found. Strings are valid during the callback only. */
struct fsck_problem {
	const char *bpath;	/* backing path, below fsck_opts.root */
	const char *ppath;	/* plaintext path ("/d/f"), or NULL */
	long long block;	/* plaintext block number, or -1 */
	const char *what;	/* one phrase, no trailing newline */
};

enum fsck_action_kind {
	FSCK_SALVAGED,		/* copied into lost+found; `to`, `salvage` */
	FSCK_QUARANTINED,	/* moved into the quarantine; `to` */
	FSCK_DESTROYED,		/* destroyed in a transient zone */
	FSCK_NOT_REPAIRED,	/* left as it is; `why` */
	FSCK_REWRITTEN,		/* rewritten in place, nothing lost; `why` */
};

/* One repair action. Strings are valid during the callback only. */
struct fsck_action {
	enum fsck_action_kind kind;
	const char *bpath, *ppath;	/* as in fsck_problem */
	/* Where it went: the copy's plaintext path (SALVAGED) or a path in
	 * the cipher directory (QUARANTINED); else NULL. */
	const char *to;
	const struct salvage *salvage;	/* SALVAGED only, else NULL */
	const char *why;		/* or NULL */
};

/* A problem as kept in fsck_result.list (owned by the result). */
struct fsck_item {
	char *bpath, *ppath;	/* ppath may be NULL */
	long long block;
	char *what;
};

struct fsck_result {
	unsigned long dirs, files, blocks, problems;
	unsigned long symlinks;	/* checked, their targets decrypted */
	/* Truncates cut short by a crash whose record completes them
	 * (cfile.h): not damage. Pending: left to the next mount or repair;
	 * completed: by this run (repair only). */
	unsigned long pending, completed;
	/* A full rekey in progress (VOLUME_FLAG_FULL, from generation
	 * full_from to full_to): what it has not reached yet is no damage.
	 * Entry names, symlink targets and user xattrs that open under the
	 * previous name key only, and files whose header is of the previous
	 * generation. Without the flag the previous key is never tried (and
	 * these stay 0). */
	bool full;
	unsigned full_from, full_to;
	unsigned long names_pending, targets_pending, xattrs_pending,
		files_pending;
	/* Files mid reseal (reseal.h): blocks under two keys, explained by
	 * a reseal record that completes them (a dry reseal_recover says
	 * so); finished by the next full rekey run, mount or repair, whose
	 * completions `completed` counts with the truncates'. */
	unsigned long reseal_pending;
	/* Transient zones: entries expired by this run, or due (left to
	 * due_owner, a phrase naming who expires them). */
	unsigned long expired, due;
	const char *due_owner;	/* static string */
	bool repair;		/* the repair counters below mean something */
	unsigned long salvaged, lost_blocks, quarantined, destroyed,
		unrepaired;
	/* Files a repair salvages (damaged blocks or size: a copy is
	 * written), and their backing bytes allocated: counted by a check
	 * too, as what a repair would need. */
	unsigned long salvage_files;
	uint64_t salvage_bytes;
	/* A repair's free-space check (-ENOSPC): the bytes it needs and
	 * those free to it (f_bavail) on the cipher directory's file
	 * system, and whether the need was measured by a sizing pass
	 * (else the upper bound: every file copied). */
	uint64_t space_need, space_free;
	bool space_sized;
	/* keep_list: the first FSCK_LIST_MAX problems, in order found. */
	struct fsck_item *list;
	size_t nlist;
};

enum fsck_phase {
	FSCK_PHASE_EXPIRED,	/* zones expired or counted; walk next */
	FSCK_PHASE_WALK,	/* a directory or entry was checked */
	FSCK_PHASE_DONE,	/* fsck_volume() only: the check is over and
				 * the volume released; the audit event
				 * follows */
};

struct fsck_cb {
	void (*problem)(const struct fsck_problem *p, void *arg);
	void (*action)(const struct fsck_action *a, void *arg);
	/* Counts so far; FSCK_PHASE_WALK after each directory and entry. */
	void (*progress)(enum fsck_phase ph, const struct fsck_result *r,
			 void *arg);
	/* Something that went wrong but is no problem of the volume
	 * (a transient zone whose expiry failed): one phrase. */
	void (*warning)(const char *what, void *arg);
	void *arg;		/* every callback may be NULL */
};

/* Check (and with o->repair, repair) the volume whose cipher directory is
 * rootfd (an O_RDONLY directory fd, kept) and whose keyring kr is
 * unlocked. *r is filled (free with fsck_result_free()) even on error;
 * damage found is no error: r->problems counts it.
 * A repair checks free space before it changes anything: the backing
 * bytes of every file (allocated) plus FSCK_SPACE_PER_FILE each and
 * FSCK_SPACE_RESERVE are always enough; short of that, a sizing pass (a
 * check that reports nothing and changes nothing) finds the files to
 * salvage, and if their copies do not fit either the run stops there.
 * Each salvage checks again (something else may fill the disk) and is
 * not repaired if its copy does not fit.
 * Errors: -EKEYREVOKED (keyring locked: no name key), -ENOMEM (before the
 * walk), -ENOSPC (repair: not enough free space, nothing was changed;
 * r->space_need, r->space_free, r->salvage_* say why). */
CMK_MUST_CHECK int fsck_run(int rootfd, struct keyring *kr,
			    const struct fsck_opts *o, const struct fsck_cb *cb,
			    struct fsck_result *r);
void fsck_result_free(struct fsck_result *r);	/* NULL-safe */

/* Where fsck_volume() stopped. */
enum fsck_stage {
	FSCK_STAGE_DONE,	/* checked: r.problems counts the damage */
	FSCK_STAGE_OPEN,	/* the cipher directory cannot be opened */
	FSCK_STAGE_LOCK,	/* repair: the offline lock is refused */
	FSCK_STAGE_CONFIG,	/* the volume config is tampered or malformed */
	FSCK_STAGE_UNLOCK,	/* the volume's keys are unavailable */
	FSCK_STAGE_RUN,		/* fsck_run() failed */
	FSCK_STAGE_SPACE,	/* repair: not enough free space; nothing
				 * was changed */
};

/* Long enough for a message naming a path and a Key Vault error. */
#define FSCK_MSG_MAX (PATH_MAX + 1024)

struct fsck_volume_result {
	enum fsck_stage stage;
	int err;			/* 0, or the negative errno */
	/* On failure: one sentence for the user, without a command prefix
	 * ("CIPHERDIR: why"; "out of memory"); "" for FSCK_STAGE_CONFIG and
	 * for a keyring locked during the run. */
	char msg[FSCK_MSG_MAX];
	/* The counts (FSCK_STAGE_DONE, and zeroed for RUN); free with
	 * fsck_result_free() at every stage. */
	struct fsck_result r;
};

/* The check of the volume in `cipherdir`, in this process: open it, with
 * o->repair hold it against mounts (volio_lock_offline) until the check is
 * over, unlock its keys with the service key file `service_key` (and Key
 * Vault for a CMK), fsck_run() with o (o->root is cipherdir), release.
 * Audits as fsck_audit_expired() and fsck_audit() say, under the volume's
 * id, opening o->audit_log at the first event. cb gets FSCK_PHASE_DONE
 * between the release and the final audit event. *vr is always filled.
 * Errors: -errno of open (OPEN), -EBUSY (LOCK: mounted or another offline
 * user), -EBADMSG (CONFIG), volio_unlock's (UNLOCK), -ENOSPC (SPACE, with
 * vr->r's space and salvage counts), fsck_run's (RUN).
 * Damage found is no error. */
CMK_MUST_CHECK int fsck_volume(const char *cipherdir, const char *service_key,
			       const struct fsck_opts *o,
			       const struct fsck_cb *cb,
			       struct fsck_volume_result *vr);

/* The JSON line of a progress call for `cmkfs fsck --json`
 * (man/cmkfs-fsck.1): {"progress":{"phase":..,"pass":..,"passes":..,
 * "bytes_done":..,"bytes_total":..,"files_done":..,"files_total":..,
 * "elapsed_ms":..,"rate":B/s,"eta_s":S|null,"final":bool}}. Truncated to
 * cap. */
void fsck_progress_json(const struct fsck_progress *p, char *buf, size_t cap);
/* "SALVAGED", "QUARANTINED", "DESTROYED", "NOT-REPAIRED". */
const char *fsck_action_name(enum fsck_action_kind kind);

/* The audit events of a run: "transient_expire" when it expired entries
 * (call after FSCK_PHASE_EXPIRED, or at the end), and "fsck" (the check,
 * with the volume's customer key id) or "fsck_repair" with the counts.
 * Counts only, never names. */
void fsck_audit_expired(const struct fsck_result *r);
void fsck_audit(const struct fsck_result *r, const char *key_id);

#endif
