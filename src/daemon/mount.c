/* src/daemon/mount.c — the daemon of one mounted volume
 * (include/cmkfs/mount.h): fork, unlock, serve the FUSE session with the
 * key monitor, zone sweeper and control socket beside it, tear down. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmkfs/aead.h"
#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/cmk.h"
#include "cmkfs/ctl.h"
#include "cmkfs/ctlcmd.h"
#include "cmkfs/exitcodes.h"
#include "cmkfs/http.h"
#include "cmkfs/inode.h"
#include "cmkfs/journal.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/log.h"
#include "cmkfs/monitor.h"
#include "cmkfs/mount.h"
#include "cmkfs/ops.h"
#include "cmkfs/runtime.h"
#include "cmkfs/sdnotify.h"
#include "cmkfs/secmem.h"
#include "cmkfs/sweeper.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"
#include "cmkfs/wire.h"

#define LOOP_THREADS 16

/* Everything serve() sets up, so that one teardown undoes what was done. */
struct session {
	const struct mount_opts *o;
	struct keyring *kr;
	struct fsctx *fs;
	int rootfd;			/* O_RDONLY cipherdir: flock, sweeps */
	struct fuse_args args;
	struct fuse_session *se;
	bool signals;			/* fuse_set_signal_handlers done */
	bool mounted;			/* fuse_session_mount done */
	struct sweeper *sw;
	struct monitor *mon;
	struct ctl *ctl;
	struct ctlcmd cmd;		/* the control socket's context */
	struct monitor_expiry expiry;	/* the mount's judgement found */
};

/* Every inode the kernel remembers holds an O_PATH descriptor (as in
 * libfuse passthrough_ll.c): lift the soft limit to the hard one. */
static void raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warn("cannot raise the open file limit: %s",
				 strerror(errno));
	}
}

/* The process itself: undumpable, limits, libraries, credentials, audit. */
static int prepare_process(const struct mount_opts *o)
{
	secmem_harden_process();
	raise_nofile();
	/* Requests allocate 1 MiB chunk buffers: keep glibc from mapping and
	 * unmapping them per request (a page fault per 4 KiB every time). */
	mallopt(M_MMAP_THRESHOLD, 8 << 20);
	mallopt(M_TRIM_THRESHOLD, 16 << 20);
	umask(0);	/* modes arrive from the kernel with umask applied */
	if (aead_global_init() < 0 || http_global_init() < 0) {
		log_err("OpenSSL lacks AES-256-GCM or AES-256-SIV, or libcurl "
			"failed to start");
		return -1;
	}
	kp_akv_set_ca_file(o->ca_file);
	/* A client secret in our environment would stay readable in
	 * /proc/PID/environ for the daemon's whole life. On failure (e.g. a
	 * secret without a tenant) it stays: a CMK unlock reports why. */
	if (kp_akv_take_credentials() < 0)
		log_warn("Azure credentials in the environment are incomplete");
	audit_open(o->audit_log);
	return 0;
}

/* What volio_unlock does, with the monitor's judgement of the keys
 * (monitor_judge) before the unwrap: a key a check would lock on (an
 * expired one: Key Vault still unwraps it) is refused here too, with the
 * same cause; and the pre-flight expiry margin, if one is asked for. */
static int judge_and_unlock(const struct mount_opts *o, int dirfd,
			    struct keyring **kr, struct monitor_expiry *ex,
			    bool *refused)
{
	struct keyprov *prov[2] = { NULL, NULL };
	char why[600], id[VOLUME_ID_HEX_LEN];
	struct volume v;
	int rc;

	rc = volio_read(dirfd, &v);
	if (rc == 0) {
		volume_id_hex(&v, id);
		audit_set_volume(id);
		rc = volio_providers(&v, o->service_key, prov);
	}
	if (rc == 0)
		rc = monitor_judge(prov, ex);
	if (rc == 0 && o->expiry_margin_days > 0 &&
	    monitor_margin_check(ex, o->expiry_margin_days, time(NULL), why,
				 sizeof(why)) < 0) {
		log_err("%s: refused: %s", o->cipherdir, why);
		audit_event("mount", ex->key_id, "refused", why);
		*refused = true;
		rc = -EPERM;
	}
	if (rc == 0)
		rc = keyring_open(&v, prov, kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	return rc;
}

/* Both layers' KEKs into a new keyring, audited either way. Returns an
 * exit code. */
static int unlock_volume(const struct mount_opts *o, struct keyring **kr,
			 struct monitor_expiry *ex)
{
	bool refused = false;
	const struct volume *v;
	char id[VOLUME_ID_HEX_LEN];
	int dirfd, rc;

	dirfd = open(o->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		rc = -errno;
		audit_event("mount", NULL, "error", strerror(-rc));
		if (o->unlock_failed != NULL)
			return o->unlock_failed(o, rc, "");
		log_err("%s: %s", o->cipherdir, strerror(-rc));
		return CMK_EXIT_RUNTIME;
	}
	backing_probe_order(dirfd);
	keyprov_clear_error();
	rc = judge_and_unlock(o, dirfd, kr, ex, &refused);
	if (refused) {
		close(dirfd);	/* refused by the margin: audited */
		return CMK_EXIT_DENIED;
	}
	if (rc < 0) {
		struct keyprov_why w;
		struct audit_why aw;
		struct volume fv;
		const char *key = NULL, *kerr = keyprov_last_error();
		bool named = strcmp(kerr, "no error") != 0;
		char detail[400];

		/* The failed mount is the volume's event too: its id and
		 * key, and the cause in Azure's terms when Azure said no. */
		if (volio_read(dirfd, &fv) == 0) {
			volume_id_hex(&fv, id);
			audit_set_volume(id);
			key = fv.layer[1].key_id;
		}
		keyprov_last_why(&w);
		aw = (struct audit_why){ .cause = w.cause, .code = w.code,
					 .request_id = w.request_id,
					 .client_request_id = w.client_request_id };
		snprintf(detail, sizeof(detail), "%s%s%s", volio_strerror(rc),
			 named ? ": " : "", named ? kerr : "");
		audit_event_why("mount", key,
				monitor_is_denial(rc) ? "denied" : "error",
				detail, &aw);
		close(dirfd);
		if (o->unlock_failed != NULL)
			return o->unlock_failed(o, rc, named ? kerr : "");
		log_err("%s: cannot unlock: %s", o->cipherdir, detail);
		return CMK_EXIT_RUNTIME;
	}
	close(dirfd);
	v = keyring_volume(*kr);
	volume_id_hex(v, id);
	audit_set_volume(id);
	audit_event("unwrap", v->layer[0].key_id, "ok", "KEK_S");
	audit_event("unwrap", v->layer[1].key_id, "ok", "KEK_C");
	return CMK_EXIT_OK;
}

/* A mount that failed after the unlock is the volume's event too (its id
 * is set by then): `cmkfs audit CIPHERDIR` shows it. */
static int mount_failed(struct session *s, int ex, const char *why)
{
	struct volume v;

	audit_event("mount", keyring_volume_copy(s->kr, &v)->layer[1].key_id,
		    "error", why);
	return ex;
}

/* A shrink cut short by a crash is completed before anything reads the
 * file (cfile.h, truncate records). Without the directory (a read-only
 * cipher directory) shrinks keep no record. */
static void recover_journal(struct session *s)
{
	struct fsctx *fs = s->fs;
	unsigned done = 0;
	int rc;

	fs->jfd = journal_open(fs->root.fd, true);
	if (fs->jfd < 0) {
		log_warn("%s/%s: %s: truncates are not crash-safe",
			 s->o->cipherdir, JOURNAL_DIR, strerror(-fs->jfd));
		fs->jfd = -1;
		return;
	}
	rc = journal_recover(fs->root.fd, fs->jfd, s->kr, fs->bs, &done);
	if (rc < 0)
		log_warn("%s/%s: %s", s->o->cipherdir, JOURNAL_DIR,
			 strerror(-rc));
}

/* The volume ready to serve. Returns an exit code. */
static int open_volume(struct session *s)
{
	const struct mount_opts *o = s->o;
	int rc;

	rc = inode_table_init(s->fs, o->cipherdir, s->kr);
	if (rc < 0) {
		log_err("%s: %s", o->cipherdir, strerror(-rc));
		return mount_failed(s, CMK_EXIT_RUNTIME, strerror(-rc));
	}
	s->fs->no_xattr = o->no_xattr;
	s->fs->writeback = o->writeback;
	s->rootfd = open(o->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	/* Exclusive, held while the daemon lives: one mount per volume (two
	 * daemons' caches of the same files would disagree), and none while
	 * an offline `cmkfs rekey`, `fsck --repair` or `upgrade` holds it
	 * (volio_lock_offline). */
	if (s->rootfd >= 0 && flock(s->rootfd, LOCK_EX | LOCK_NB) < 0) {
		log_err("%s: in use: mounted by another cmkfs daemon, or an "
			"offline 'cmkfs rekey', 'fsck --repair' or 'upgrade' is "
			"running on it ('cmkfs status %s' says which mount)",
			o->cipherdir, o->cipherdir);
		return mount_failed(s, CMK_EXIT_MOUNTPOINT,
				    "in use: already mounted, or an offline "
				    "command holds it");
	}
	recover_journal(s);
	/* Format 3: the config names the zone list's version; a list
	 * deleted or rolled back alone would silently change what expires. */
	if (s->rootfd >= 0 && keyring_version(s->kr) >= 3) {
		rc = transient_settle(s->rootfd, s->kr);
		if (rc < 0) {
			log_err("%s/%s: %s; not mounted (cmkfs fsck explains; "
				"restore the list with the volume's cmkfs.conf "
				"from one backup)",
				o->cipherdir, TRANSIENT_FILE,
				transient_strerror(rc));
			return mount_failed(s, CMK_EXIT_DAMAGED,
					    transient_strerror(rc));
		}
	}
	/* A host that was down past a TTL must not serve expired data. */
	if (s->rootfd >= 0 && sweeper_new(s->rootfd, s->kr, &s->sw) == 0)
		sweeper_sweep(s->sw, true);
	return CMK_EXIT_OK;
}

/* The FUSE session, mounted. Returns an exit code. */
static int start_fuse(struct session *s)
{
	const struct mount_opts *o = s->o;
	char opts[8192];

	/* fsname shows the cipherdir in mount(8) and mountinfo; the kernel
	 * checks permissions from our attributes (default_permissions). */
	snprintf(opts, sizeof(opts),
		 "fsname=%s,subtype=cmkfs,default_permissions%s%s",
		 o->cipherdir, o->fuse_opts ? "," : "",
		 o->fuse_opts ? o->fuse_opts : "");
	if (fuse_opt_add_arg(&s->args, "cmkfs") != 0 ||
	    fuse_opt_add_arg(&s->args, "-o") != 0 ||
	    fuse_opt_add_arg(&s->args, opts) != 0 ||
	    (o->debug && fuse_opt_add_arg(&s->args, "-d") != 0))
		return CMK_EXIT_RUNTIME;
	s->se = fuse_session_new(&s->args, &ops_lowlevel, sizeof(ops_lowlevel),
				 s->fs);
	if (s->se == NULL) {
		log_err("invalid FUSE options '%s'",
			o->fuse_opts ? o->fuse_opts : "");
		return CMK_EXIT_USAGE;
	}
	if (fuse_set_signal_handlers(s->se) != 0)
		return CMK_EXIT_RUNTIME;
	s->signals = true;
	if (fuse_session_mount(s->se, o->mountpoint) != 0) {
		log_err("%s: mount failed (is it an existing, empty directory? "
			"is /dev/fuse available?)",
			o->mountpoint);
		return mount_failed(s, CMK_EXIT_RUNTIME, "the FUSE mount failed");
	}
	s->mounted = true;
	(void)wire_attach(s->se);
	s->fs->se = s->se;
	return CMK_EXIT_OK;
}

static void on_lock(void *ud)
{
	inode_on_lock(ud);
}

/* The monitor found a newer version of the key the volume follows: the
 * same transaction as `cmkfs cmk rotate` to the versionless URI (its
 * current version, pre-flight checked), unless another writer holds the
 * config or changed it since the check (the mount adopts theirs). */
static int follow_key(void *ud, struct keyprov *cur[2], const char *kid,
		      struct volume *nv)
{
	struct session *s = ud;
	char base[VOLUME_KEYID_MAX + 1];
	struct cmk_result r;
	struct volume v;
	int rc;

	rc = kp_akv_versionless(kid, base, sizeof(base));
	if (rc < 0)
		return rc;
	keyring_volume_copy(s->kr, &v);
	struct cmk_opts o = {
		.action = CMK_ROTATE,
		.service_key = s->o->service_key,
		.key_uri = base,
		.cur = { cur[0], cur[1] },
		.automatic = true,
		.expect = &v,
	};

	rc = cmk_run(s->o->cipherdir, &o, &r);
	if (rc < 0) {
		log_warn("automatic rotation to %s: %s", kid, r.msg);
		return rc;
	}
	return volio_read(s->rootfd, nv);
}

/* Sweeper thread, key monitor, control socket. */
static int start_services(struct session *s)
{
	const struct mount_opts *o = s->o;
	struct monitor_cfg mcfg = {
		.interval_sec = o->key_check_interval_sec,
		.grace_sec = o->grace_sec,
		.confirm_sec = o->confirm_sec,
		.service_key = o->service_key,
		.open_providers = volio_providers,
		.strerror = volio_strerror,
		.on_lock = on_lock,
		.ud = s->fs,
		.mounted = s->expiry,
		.follow = follow_key,
		.follow_ud = s,
	};
	char sock[4200];

	if (runtime_mkdir() < 0)	/* the socket goes there; logged why */
		return -1;
	if (s->sw == NULL || sweeper_start(s->sw, s->fs) < 0) {
		log_err("cannot start the transient-zone sweeper");
		return -1;
	}
	if (monitor_start(s->kr, &mcfg, &s->mon) < 0)
		goto fail;
	s->cmd.cipherdir = o->cipherdir;
	s->cmd.service_key = o->service_key;
	s->cmd.key_check_interval_sec = o->key_check_interval_sec;
	s->cmd.grace_sec = o->grace_sec;
	s->cmd.rootfd = s->rootfd;
	s->cmd.kr = s->kr;
	s->cmd.mon = s->mon;
	s->cmd.fs = s->fs;
	s->cmd.sw = s->sw;
	if (ctl_path(o->mountpoint, sock, sizeof(sock)) < 0 ||
	    ctl_start(sock, ctlcmd_handle, &s->cmd, &s->ctl) < 0)
		goto fail;
	return 0;
fail:
	log_err("cannot start the key monitor or control socket");
	return -1;
}

/* Tell the parent (one byte on ready_fd) that the mount serves, then
 * leave its terminal: stdio to /dev/null, logs to syslog. */
static void detach(int ready_fd)
{
	char c = 'R';
	int nul = open("/dev/null", O_RDWR);

	if (write(ready_fd, &c, 1) != 1)
		log_warn("could not tell the parent we are ready");
	close(ready_fd);
	if (nul >= 0) {
		dup2(nul, 0);
		dup2(nul, 1);
		dup2(nul, 2);
		close(nul);
	}
	log_use_syslog("cmkfs");
}

/* Serving: the state file for umount/status, audit, log, systemd. */
static void announce(struct session *s, int ready_fd)
{
	const struct mount_opts *o = s->o;
	struct volume v;
	char msg[4400];

	(void)runtime_state_write(o->mountpoint, o->cipherdir);
	audit_event("mount", keyring_volume_copy(s->kr, &v)->layer[1].key_id,
		    "ok", o->mountpoint);
	log_info("%s mounted on %s", o->cipherdir, o->mountpoint);
	snprintf(msg, sizeof(msg),
		 "READY=1\nMAINPID=%ld\nSTATUS=serving %s on %s",
		 (long)getpid(), o->cipherdir, o->mountpoint);
	sdnotify_send(msg);
	if (ready_fd >= 0)
		detach(ready_fd);
}

/* Serve requests until unmounted. Returns an exit code. */
static int run_loop(struct fuse_session *se)
{
	struct fuse_loop_config *lc = fuse_loop_cfg_create();
	int rc;

	if (lc == NULL)
		return CMK_EXIT_RUNTIME;
	/* FUSE_USE_VERSION >= 312 (cmkfs/ops.h) makes this the 3.12 loop,
	 * which takes the opaque config: the older entry point reads it as
	 * its own struct and would clone /dev/fuse and start a thread per
	 * request. One shared fd, threads kept: no thread churn. */
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, LOOP_THREADS);
	fuse_loop_cfg_set_idle_threads(lc, LOOP_THREADS);
	rc = fuse_session_loop_mt(se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc == 0 ? CMK_EXIT_OK : CMK_EXIT_RUNTIME;
}

/* Undo what was set up, in reverse. The helpers stop before the unmount:
 * a rekey in a control handler is told to stop first, since ctl_stop
 * waits for its handlers. */
static void teardown(struct session *s)
{
	const struct mount_opts *o = s->o;

	if (s->mounted) {
		sdnotify_send("STOPPING=1");
		ctlcmd_stopping(&s->cmd);
		ctl_stop(s->ctl);
		monitor_stop(s->mon);
		sweeper_free(s->sw);
		s->sw = NULL;
		runtime_state_remove(o->mountpoint);
		fuse_session_unmount(s->se);
		audit_event("umount", NULL, "ok", o->mountpoint);
	}
	if (s->signals)
		fuse_remove_signal_handlers(s->se);
	if (s->se != NULL)
		fuse_session_destroy(s->se);
	fuse_opt_free_args(&s->args);
	sweeper_free(s->sw);
	inode_table_destroy(s->fs);
	keyring_free(s->kr);
	if (s->rootfd >= 0)
		close(s->rootfd);
}

/* Serve in this process. ready_fd >= 0 gets one byte once mounted. */
static int serve(const struct mount_opts *o, int ready_fd)
{
	static struct fsctx fs;	/* large; one per process */
	struct session s = {
		.o = o,
		.fs = &fs,
		.rootfd = -1,
		.args = FUSE_ARGS_INIT(0, NULL),
	};
	int ex;

	/* The service key is read once, at the unlock below: the monitor's
	 * checks and everything else use that copy (doc/KEYS.md "Service
	 * key"). */
	if (kp_local_pin(o->service_key) < 0 || prepare_process(o) < 0)
		return CMK_EXIT_RUNTIME;
	ex = unlock_volume(o, &s.kr, &s.expiry);
	if (ex != CMK_EXIT_OK)
		return ex;
	ctlcmd_init(&s.cmd);
	ex = open_volume(&s);
	if (ex == CMK_EXIT_OK)
		ex = start_fuse(&s);
	if (ex == CMK_EXIT_OK) {
		ex = CMK_EXIT_RUNTIME;
		if (start_services(&s) == 0) {
			announce(&s, ready_fd);
			ex = run_loop(s.se);
		} else {
			(void)mount_failed(&s, ex, "the key monitor or control "
					   "socket did not start");
		}
	}
	teardown(&s);
	ctlcmd_destroy(&s.cmd);
	kp_local_unpin();
	return ex;
}

int mount_run(const struct mount_opts *o)
{
	int pfd[2], status;
	pid_t pid;
	char c;

	if (o->foreground)
		return serve(o, -1);
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		log_err("pipe: %s", strerror(errno));
		return CMK_EXIT_RUNTIME;
	}
	pid = fork();
	if (pid < 0) {
		log_err("fork: %s", strerror(errno));
		return CMK_EXIT_RUNTIME;
	}
	if (pid == 0) {
		/* Child: keys are loaded here, after fork, since mlock()ed
		 * pages are not inherited. */
		close(pfd[0]);
		setsid();
		if (chdir("/") < 0)
			_exit(CMK_EXIT_RUNTIME);
		_exit(serve(o, pfd[1]));
	}
	close(pfd[1]);
	if (read(pfd[0], &c, 1) == 1 && c == 'R') {
		close(pfd[0]);
		return CMK_EXIT_OK;
	}
	close(pfd[0]);
	/* The child failed before serving; its message went to stderr. */
	if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
	    WEXITSTATUS(status) != 0)
		return WEXITSTATUS(status);
	return CMK_EXIT_RUNTIME;
}
