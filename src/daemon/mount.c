/* src/fs/mount.c — FUSE session, daemonising, runtime state. */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <time.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cmkfs/aead.h"
#include "cmkfs/audit.h"
#include "cmkfs/backing.h"
#include "cmkfs/ctl.h"
#include "cmkfs/journal.h"
#include "cmkfs/http.h"
#include "cmkfs/monitor.h"
#include "cmkfs/exitcodes.h"
#include "cmkfs/inode.h"
#include "cmkfs/kdf.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/kv.h"
#include "cmkfs/log.h"
#include "cmkfs/mount.h"
#include "cmkfs/ops.h"
#include "cmkfs/rekey.h"
#include "cmkfs/secmem.h"
#include "cmkfs/transient.h"
#include "cmkfs/volio.h"
#include "cmkfs/wire.h"

static const char *state_dir(char *buf, size_t cap)
{
	const char *d = getenv("CMKFS_RUNTIME_DIR");

	if (d != NULL && *d != '\0')
		return d;
	if (geteuid() == 0)
		return "/run/cmkfs";
	d = getenv("XDG_RUNTIME_DIR");
	snprintf(buf, cap, "%s/cmkfs", d ? d : "/tmp");
	return buf;
}

int mount_state_path(const char *mountpoint, char *out, size_t cap)
{
	char dbuf[4096];
	uint8_t md[32];
	int rc;

	rc = kdf_sha256(mountpoint, strlen(mountpoint), md);
	if (rc < 0)
		return rc;
	snprintf(out, cap, "%s/%02x%02x%02x%02x%02x%02x%02x%02x.pid",
		 state_dir(dbuf, sizeof(dbuf)), md[0], md[1], md[2], md[3],
		 md[4], md[5], md[6], md[7]);
	return 0;
}

int mount_state_read(const char *mountpoint, pid_t *pid, char *cipherdir,
		     size_t cap)
{
	char path[4200], line[4200];
	long p;
	FILE *f;
	int rc = -ENOENT;

	if (mount_state_path(mountpoint, path, sizeof(path)) < 0)
		return -ENOENT;
	f = fopen(path, "re");
	if (f == NULL)
		return -ENOENT;
	if (fgets(line, sizeof(line), f) != NULL) {
		char *end;

		p = strtol(line, &end, 10);
		if (p > 0 && *end == '\n' &&
		    fgets(line, sizeof(line), f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			snprintf(cipherdir, cap, "%s", line);
			*pid = (pid_t)p;
			rc = 0;
		}
	}
	fclose(f);
	return rc;
}

static void state_write(const char *mountpoint, const char *cipherdir)
{
	char path[4200], dbuf[4096];
	FILE *f;

	(void)mkdir(state_dir(dbuf, sizeof(dbuf)), 0700);
	if (mount_state_path(mountpoint, path, sizeof(path)) < 0)
		return;
	f = fopen(path, "we");
	if (f == NULL)
		return;
	fprintf(f, "%ld\n%s\n", (long)getpid(), cipherdir);
	fclose(f);
}

static void state_remove(const char *mountpoint)
{
	char path[4200];

	if (mount_state_path(mountpoint, path, sizeof(path)) == 0)
		(void)unlink(path);
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '7' && s[2] &&
		    s[3]) {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				      (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

int mount_find(const char *path, char *cipherdir, size_t ccap, char *mnt,
	       size_t mcap)
{
	char line[8192];
	FILE *f = fopen("/proc/self/mountinfo", "re");
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *fields[10], *sep, *save = NULL, *tok;
		int n = 0;

		/* id parent maj:min root mountpoint opts [tags] - type src */
		sep = strstr(line, " - ");
		if (sep == NULL)
			continue;
		*sep = '\0';
		for (tok = strtok_r(line, " ", &save); tok && n < 5;
		     tok = strtok_r(NULL, " ", &save))
			fields[n++] = tok;
		if (n < 5)
			continue;
		n = 5;
		save = NULL;
		for (tok = strtok_r(sep + 3, " \n", &save); tok && n < 7;
		     tok = strtok_r(NULL, " \n", &save))
			fields[n++] = tok;
		if (n < 7 || strcmp(fields[5], "fuse.cmkfs") != 0)
			continue;
		unescape(fields[4]);
		unescape(fields[6]);
		if (strcmp(fields[4], path) == 0 ||
		    strcmp(fields[6], path) == 0) {
			snprintf(cipherdir, ccap, "%s", fields[6]);
			snprintf(mnt, mcap, "%s", fields[4]);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

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

/* systemd's notify protocol (sd_notify(3)) without libsystemd: one
 * datagram to $NOTIFY_SOCKET (a path, or '@' for the abstract namespace). */
static void notify(const char *msg)
{
	const char *p = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t n;
	int fd;

	if (p == NULL || (*p != '/' && *p != '@'))
		return;
	n = strlen(p);
	if (n >= sizeof(sa.sun_path))
		return;
	memcpy(sa.sun_path, p, n);
	if (*p == '@')
		sa.sun_path[0] = '\0';
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa,
		   (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n)) < 0)
		log_warn("sd_notify: %s", strerror(errno));
	close(fd);
}

struct inval {
	dev_t dev;
	ino_t ino;
	char name[256];
};

struct daemon {
	struct fsctx *fs;
	struct monitor *mon;
	const struct mount_opts *o;
	struct keyring *kr;
	int rootfd;			/* O_RDONLY cipherdir */
	pthread_t sweeper;
	pthread_mutex_t smtx;
	pthread_cond_t scond;
	bool stop, kick;		/* protected by smtx */
	pthread_mutex_t sweep_mtx;	/* one sweep at a time (owns inv) */
	struct inval *inv;		/* collected during a sweep */
	size_t ninv, capinv;
	pthread_mutex_t rekey_mtx;	/* one rekey at a time */
	volatile int stopping;		/* unmounting: cancel a rekey */
};

static void collect(dev_t dev, ino_t ino, const char *name, void *ud)
{
	struct daemon *d = ud;

	if (d->ninv == d->capinv) {
		size_t cap = d->capinv ? 2 * d->capinv : 64;
		struct inval *p = realloc(d->inv, cap * sizeof(*p));

		if (p == NULL)
			return;
		d->inv = p;
		d->capinv = cap;
	}
	d->inv[d->ninv].dev = dev;
	d->inv[d->ninv].ino = ino;
	snprintf(d->inv[d->ninv].name, sizeof(d->inv[d->ninv].name), "%s", name);
	d->ninv++;
}

/* Expire every zone now (doc/OPERATIONS.md "Transient zones"): under the
 * namespace lock, then the kernel's dentries, outside it (the kernel may
 * wait on requests that need that lock). */
static void sweep_zones(struct daemon *d, bool at_mount)
{
	struct tzone z[TRANSIENT_MAX_ZONES];
	unsigned long total = 0, c;
	size_t n = 0;
	int rc;

	if (keyring_is_locked(d->kr))
		return;
	pthread_mutex_lock(&d->sweep_mtx);
	rc = transient_load(d->rootfd, d->kr, z, &n);
	if (rc < 0) {
		pthread_mutex_unlock(&d->sweep_mtx);
		log_err("transient zone list unreadable: %s", volio_strerror(rc));
		return;
	}
	if (d->fs != NULL)
		pthread_mutex_lock(&d->fs->ns);
	d->ninv = 0;
	for (size_t i = 0; i < n; i++) {
		if (transient_expire(d->rootfd, d->kr, &z[i], time(NULL),
				     d->fs ? collect : NULL, d, &c) == 0)
			total += c;
	}
	if (d->fs != NULL)
		pthread_mutex_unlock(&d->fs->ns);
	for (size_t i = 0; d->fs != NULL && d->fs->se != NULL && i < d->ninv; i++) {
		uint64_t parent = inode_nodeid(d->fs, d->inv[i].dev, d->inv[i].ino);

		if (parent != 0)
			ops_invalidate_entry(d->fs->se, parent, d->inv[i].name);
	}
	pthread_mutex_unlock(&d->sweep_mtx);
	if (total > 0) {
		char detail[64];

		snprintf(detail, sizeof(detail), "%lu expired%s", total,
			 at_mount ? " at mount" : "");
		audit_event("transient_expire", NULL, "ok", detail);
	}
}

static void *sweeper(void *arg)
{
	struct daemon *d = arg;
	const char *e = getenv("CMKFS_TRANSIENT_SWEEP_SEC");
	long every = e ? strtol(e, NULL, 10) : 30;

	if (every <= 0 || every > 3600)
		every = 30;
	pthread_mutex_lock(&d->smtx);
	while (!d->stop) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += every;
		while (!d->stop && !d->kick &&
		       pthread_cond_timedwait(&d->scond, &d->smtx, &ts) == 0)
			;
		if (d->stop)
			break;
		d->kick = false;
		pthread_mutex_unlock(&d->smtx);
		sweep_zones(d, false);
		pthread_mutex_lock(&d->smtx);
	}
	pthread_mutex_unlock(&d->smtx);
	return NULL;
}

static void on_lock(void *ud)
{
	fsctx_on_lock(ud);
}


struct rekey_client {
	struct daemon *d;
	int fd;
};

static int rekey_progress(const struct rekey_progress *p, void *arg)
{
	struct rekey_client *rc = arg;
	char line[512];

	rekey_progress_json(p, line, sizeof(line));
	/* A client that went away does not stop the rekey: it is safer
	 * finished, and a kill -9 of `cmkfs rekey` must not leave it half
	 * done any longer than necessary. */
	(void)ctl_send_line(rc->fd, line);
	return rc->d->stopping;
}

static void rekey_problem(const char *bpath, const char *what, void *arg)
{
	struct rekey_client *rc = arg;
	char line[4200];
	int n;

	n = snprintf(line, sizeof(line), "{\"problem\":{\"backing\":\"");
	for (const char *p = bpath; *p && n < (int)sizeof(line) - 300; p++)
		n += snprintf(line + n, sizeof(line) - (size_t)n,
			      (*p == '"' || *p == '\\') ? "\\%c" :
			      ((unsigned char)*p < 0x20) ? "?" : "%c", *p);
	snprintf(line + n, sizeof(line) - (size_t)n, "\",\"what\":\"%s\"}}",
		 what);
	(void)ctl_send_line(rc->fd, line);
}

/* `cmkfs rekey` on a live mount: done here, so new files of this mount
 * get the new generation from the same instant as the config. */
static void ctl_rekey(struct daemon *d, int fd, char *reply, size_t cap)
{
	struct rekey_client cl = { d, fd };
	struct rekey_cb cb = { rekey_progress, rekey_problem, &cl };
	struct keyprov *prov[2] = { NULL, NULL };
	struct rekey_progress p = { 0 };
	struct volume v;
	int rc;

	if (pthread_mutex_trylock(&d->rekey_mtx) != 0) {
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"a rekey is "
			 "already running on this mount\"}");
		return;
	}
	keyring_volume_copy(d->kr, &v);
	rc = volio_providers(&v, d->o->service_key, prov);
	if (rc == 0)
		rc = rekey_run(d->rootfd, d->kr, prov, &cb, &p);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	pthread_mutex_unlock(&d->rekey_mtx);
	keyring_volume_copy(d->kr, &v);
	rekey_audit(&p, v.layer[1].key_id, rc, false);
	if (rc < 0) {
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"%s\","
			 "\"errno\":%d}", volio_strerror(rc), -rc);
		return;
	}
	rekey_result_json(&p, reply, cap);
}

static void ctl_handle(const char *cmd, char *reply, size_t cap, int fd,
		       void *ud)
{
	struct daemon *d = ud;
	struct monitor_status st;
	int rc, dirfd;

	if (strcmp(cmd, "rekey") == 0) {
		ctl_rekey(d, fd, reply, cap);
		return;
	} else if (strcmp(cmd, "sweep") == 0) {
		sweep_zones(d, false);	/* synchronous: the caller sees it done */
	} else if (strcmp(cmd, "lock") == 0) {
		/* The reply says what the lock did, even if a check resumes
		 * the mount before the reply is written. */
		monitor_lock_now(d->mon, "cmkfs lock", &st);
		goto reply;
	} else if (strcmp(cmd, "check") == 0) {
		monitor_kick(d->mon);
	} else if (strcmp(cmd, "reload") == 0) {
		dirfd = open(d->o->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		rc = dirfd < 0 ? -errno : monitor_reload(d->mon, dirfd, &st);
		if (dirfd >= 0)
			close(dirfd);
		if (rc < 0) {
			snprintf(reply, cap, "{\"ok\":false,\"error\":\"%s\"}",
				 volio_strerror(rc));
			return;
		}
	} else if (strcmp(cmd, "status") != 0) {
		snprintf(reply, cap, "{\"ok\":false,\"error\":\"unknown command\"}");
		return;
	}
	monitor_get_status(d->mon, &st);
reply:
	/* key_id and last_result are ours (URIs, fixed phrases, Key Vault
	 * codes with controls replaced): no quotes reach them from Key Vault
	 * unescaped because kv_map_error copies codes only. */
	for (char *p = st.last_result; *p; p++) {
		if (*p == '"' || *p == '\\')
			*p = '\'';
	}
	snprintf(reply, cap,
		 "{\"ok\":true,\"locked\":%s,\"manual_lock\":%s,"
		 "\"last_check\":%lld,\"last_ok\":%lld,\"last_result\":\"%s\","
		 "\"key_id\":\"%s\",\"key_check_interval\":%d,\"grace\":%d,"
		 "\"last_check_ok\":%s,\"pid\":%ld,\"audit_log\":\"%s\","
		 "\"inodes\":%zu,\"handles\":%zu}",
		 st.locked ? "true" : "false", st.manual ? "true" : "false",
		 (long long)st.last_check, (long long)st.last_ok,
		 st.last_result, st.key_id, d->o->key_check_interval_sec,
		 d->o->grace_sec, st.last_check_ok ? "true" : "false",
		 (long)getpid(), audit_path(),
		 d->fs != NULL ? fsctx_ninodes(d->fs) : (size_t)0,
		 d->fs != NULL ? fsctx_nhandles(d->fs) : (size_t)0);
}

/* Serve in this process. ready_fd >= 0 gets one byte once mounted. */
static int serve(const struct mount_opts *o, int ready_fd)
{
	struct fuse_loop_config *lc = NULL;
	struct fuse_session *se = NULL;
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct keyring *kr = NULL;
	static struct fsctx fs;
	struct monitor_cfg mcfg = { 0 };
	struct daemon d = { .rootfd = -1 };
	bool sweeper_started = false;
	struct ctl *ctl = NULL;
	char sock[4200];
	char opts[8192];
	int dirfd, rc, ex = CMK_EXIT_RUNTIME;

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
		return CMK_EXIT_RUNTIME;
	}
	kp_akv_set_ca_file(o->ca_file);
	/* A client secret in our environment would stay readable in
	 * /proc/PID/environ for the daemon's whole life. On failure (e.g. a
	 * secret without a tenant) it stays: a CMK unlock reports why. */
	if (kp_akv_take_credentials() < 0)
		log_warn("Azure credentials in the environment are incomplete");
	audit_open(o->audit_log);
	dirfd = open(o->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0) {
		log_err("%s: %s", o->cipherdir, strerror(errno));
		return CMK_EXIT_RUNTIME;
	}
	backing_probe_order(dirfd);
	rc = volio_unlock(dirfd, o->service_key, &kr);
	close(dirfd);
	if (rc < 0) {
		log_err("%s: cannot unlock: %s%s%s", o->cipherdir,
			volio_strerror(rc),
			rc == -EKEYREVOKED || rc == -EKEYEXPIRED ? ": " : "",
			rc == -EKEYREVOKED || rc == -EKEYEXPIRED ?
				kv_last_error() : "");
		audit_event("mount", NULL, "denied", volio_strerror(rc));
		return CMK_EXIT_RUNTIME;
	}
	{
		const struct volume *v = keyring_volume(kr);
		char id[VOLUME_ID_HEX_LEN];

		volume_id_hex(v, id);
		audit_set_volume(id);
		audit_event("unwrap", v->layer[0].key_id, "ok", "KEK_S");
		audit_event("unwrap", v->layer[1].key_id, "ok", "KEK_C");
	}
	rc = fsctx_init(&fs, o->cipherdir, kr);
	if (rc < 0) {
		log_err("%s: %s", o->cipherdir, strerror(-rc));
		goto out;
	}
	fs.no_xattr = o->no_xattr;
	d.kr = kr;
	d.o = o;
	d.rootfd = open(o->cipherdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	pthread_mutex_init(&d.smtx, NULL);
	pthread_cond_init(&d.scond, NULL);
	pthread_mutex_init(&d.sweep_mtx, NULL);
	pthread_mutex_init(&d.rekey_mtx, NULL);
	/* Shared against an offline `cmkfs rekey` or `fsck --repair`, which
	 * take it exclusively (volio_lock_exclusive). */
	if (d.rootfd >= 0 && flock(d.rootfd, LOCK_SH | LOCK_NB) < 0) {
		log_err("%s: an offline 'cmkfs rekey' or 'cmkfs fsck --repair' "
			"is running on this volume", o->cipherdir);
		ex = CMK_EXIT_RUNTIME;
		goto out;
	}
	/* A shrink cut short by a crash is completed before anything reads
	 * the file (file.h, truncate records). Without the directory (a
	 * read-only cipher directory) shrinks keep no record. */
	fs.jfd = journal_open(fs.root.fd, true);
	if (fs.jfd < 0) {
		log_warn("%s/%s: %s: truncates are not crash-safe",
			 o->cipherdir, JOURNAL_DIR, strerror(-fs.jfd));
		fs.jfd = -1;
	} else {
		unsigned done = 0;

		rc = journal_recover(fs.root.fd, fs.jfd, kr, fs.bs, &done);
		if (rc < 0)
			log_warn("%s/%s: %s", o->cipherdir, JOURNAL_DIR,
				 strerror(-rc));
	}
	/* A host that was down past a TTL must not serve expired data. */
	if (d.rootfd >= 0)
		sweep_zones(&d, true);
	/* fsname shows the cipherdir in mount(8) and mountinfo; the kernel
	 * checks permissions from our attributes (default_permissions). */
	snprintf(opts, sizeof(opts),
		 "fsname=%s,subtype=cmkfs,default_permissions%s%s", o->cipherdir,
		 o->fuse_opts ? "," : "", o->fuse_opts ? o->fuse_opts : "");
	if (fuse_opt_add_arg(&args, "cmkfs") != 0 ||
	    fuse_opt_add_arg(&args, "-o") != 0 ||
	    fuse_opt_add_arg(&args, opts) != 0 ||
	    (o->debug && fuse_opt_add_arg(&args, "-d") != 0))
		goto out;
	se = fuse_session_new(&args, &cmkfs_ops, sizeof(cmkfs_ops), &fs);
	if (se == NULL) {
		log_err("invalid FUSE options '%s'",
			o->fuse_opts ? o->fuse_opts : "");
		ex = CMK_EXIT_USAGE;
		goto out;
	}
	if (fuse_set_signal_handlers(se) != 0)
		goto out;
	if (fuse_session_mount(se, o->mountpoint) != 0) {
		log_err("%s: mount failed (is it an existing, empty directory? "
			"is /dev/fuse available?)",
			o->mountpoint);
		goto out_sig;
	}
	(void)wire_attach(se);
	fs.se = se;
	d.fs = &fs;
	mcfg.interval_sec = o->key_check_interval_sec;
	mcfg.grace_sec = o->grace_sec;
	mcfg.service_key = o->service_key;
	mcfg.on_lock = on_lock;
	mcfg.ud = &fs;
	{
		char dbuf[4096];

		(void)mkdir(state_dir(dbuf, sizeof(dbuf)), 0700);
	}
	if (d.rootfd < 0 || pthread_create(&d.sweeper, NULL, sweeper, &d) != 0) {
		log_err("cannot start the transient-zone sweeper");
		goto out_unmount;
	}
	sweeper_started = true;
	if (monitor_start(kr, &mcfg, &d.mon) < 0 ||
	    ctl_path(o->mountpoint, sock, sizeof(sock)) < 0 ||
	    ctl_start(sock, ctl_handle, &d, &ctl) < 0) {
		log_err("cannot start the key monitor or control socket");
		goto out_unmount;
	}
	state_write(o->mountpoint, o->cipherdir);
	audit_event("mount", keyring_volume(kr)->layer[1].key_id, "ok",
		    o->mountpoint);
	log_info("%s mounted on %s", o->cipherdir, o->mountpoint);
	{
		char msg[4400];

		snprintf(msg, sizeof(msg),
			 "READY=1\nMAINPID=%ld\nSTATUS=serving %s on %s",
			 (long)getpid(), o->cipherdir, o->mountpoint);
		notify(msg);
	}
	if (ready_fd >= 0) {
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
	lc = fuse_loop_cfg_create();
	if (lc == NULL)
		goto out_unmount;
	/* Needs FUSE_USE_VERSION >= 312 (cmkfs/ops.h): with 35 the macro
	 * picked fuse_session_loop_mt_32, which read this opaque config as
	 * the old struct (clone_fd = version id, max_idle_threads = 0) and
	 * started a thread and a cloned /dev/fuse per request - one clone3()
	 * per request in strace, sqlite transactions at 7x native time. */
	fuse_loop_cfg_set_clone_fd(lc, 0);
	fuse_loop_cfg_set_max_threads(lc, 16);
	fuse_loop_cfg_set_idle_threads(lc, 16);
	rc = fuse_session_loop_mt(se, lc);
	ex = rc == 0 ? CMK_EXIT_OK : CMK_EXIT_RUNTIME;
	fuse_loop_cfg_destroy(lc);
out_unmount:
	notify("STOPPING=1");
	d.stopping = 1;
	ctl_stop(ctl);
	monitor_stop(d.mon);
	if (sweeper_started) {
		pthread_mutex_lock(&d.smtx);
		d.stop = true;
		pthread_cond_signal(&d.scond);
		pthread_mutex_unlock(&d.smtx);
		pthread_join(d.sweeper, NULL);
	}
	state_remove(o->mountpoint);
	fuse_session_unmount(se);
	audit_event("umount", NULL, "ok", o->mountpoint);
out_sig:
	fuse_remove_signal_handlers(se);
out:
	if (se != NULL)
		fuse_session_destroy(se);
	fuse_opt_free_args(&args);
	fsctx_destroy(&fs);
	keyring_free(kr);
	free(d.inv);
	if (d.rootfd >= 0)
		close(d.rootfd);
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
