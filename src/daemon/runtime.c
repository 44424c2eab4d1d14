/* src/daemon/runtime.c — runtime state file, mountinfo lookup, unmount
 * (include/cmkfs/runtime.h). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmkfs/kdf.h"
#include "cmkfs/log.h"
#include "cmkfs/runtime.h"

#define MOUNTINFO "/proc/self/mountinfo"

static const char *state_dir(char *buf, size_t cap)
{
	const char *d = getenv("CMKFS_RUNTIME_DIR");

	if (d != NULL && *d != '\0')
		return d;
	if (geteuid() == 0)
		return "/run/cmkfs";
	d = getenv("XDG_RUNTIME_DIR");
	/* /tmp is shared: a name per user, so that one user's directory
	 * never stands in another's way. */
	if (d != NULL && *d != '\0')
		snprintf(buf, cap, "%s/cmkfs", d);
	else
		snprintf(buf, cap, "/tmp/cmkfs-%ld", (long)geteuid());
	return buf;
}

int runtime_dir_check(const char *dir, bool quiet)
{
	struct stat st;

	if (lstat(dir, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		if (!quiet)
			log_err("runtime directory %s is not a directory "
				"(a symlink or file there is refused: remove it, "
				"or set CMKFS_RUNTIME_DIR)", dir);
		return -ENOTDIR;
	}
	if (st.st_uid != geteuid() || (st.st_mode & 077) != 0) {
		if (!quiet)
			log_err("runtime directory %s is owned by uid %ld with "
				"mode %04o; it must be yours (uid %ld) and 0700, "
				"since whoever can write there can stand in for a "
				"daemon: remove it, or set CMKFS_RUNTIME_DIR",
				dir, (long)st.st_uid,
				(unsigned)(st.st_mode & 07777), (long)geteuid());
		return -EPERM;
	}
	return 0;
}

int runtime_mkdir(void)
{
	char dbuf[4096];
	const char *d = state_dir(dbuf, sizeof(dbuf));

	/* 0700 whatever the umask: it only takes bits away. */
	if (mkdir(d, 0700) < 0 && errno != EEXIST) {
		int rc = -errno;

		log_err("cannot create the runtime directory %s: %s", d,
			strerror(-rc));
		return rc;
	}
	return runtime_dir_check(d, false);
}

int runtime_state_path(const char *mountpoint, char *out, size_t cap)
{
	char dbuf[4096];
	uint8_t md[32];
	int rc, n;

	rc = kdf_sha256(mountpoint, strlen(mountpoint), md);
	if (rc < 0)
		return rc;
	n = snprintf(out, cap, "%s/%02x%02x%02x%02x%02x%02x%02x%02x.pid",
		     state_dir(dbuf, sizeof(dbuf)), md[0], md[1], md[2], md[3],
		     md[4], md[5], md[6], md[7]);
	if (n < 0 || (size_t)n >= cap)
		return -ENAMETOOLONG;
	return 0;
}

/* runtime_dir_check, quietly, on the directory of `path`. */
static int dir_of_path_safe(const char *path)
{
	char dir[4200];
	const char *slash = strrchr(path, '/');

	if (slash == NULL || (size_t)(slash - path) >= sizeof(dir))
		return -ENOENT;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	return runtime_dir_check(dir[0] ? dir : "/", true);
}

int runtime_state_read(const char *mountpoint, pid_t *pid, char *cipherdir,
		       size_t cap)
{
	char path[4200], line[4200];
	long p;
	FILE *f;
	int rc = -ENOENT;

	if (runtime_state_path(mountpoint, path, sizeof(path)) < 0)
		return -ENOENT;
	/* What an unsafe directory holds may be anyone's. */
	if (dir_of_path_safe(path) < 0)
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

int runtime_state_write(const char *mountpoint, const char *cipherdir)
{
	char path[4200];
	FILE *f;
	int fd, rc;

	rc = runtime_mkdir();
	if (rc < 0)
		return rc;
	rc = runtime_state_path(mountpoint, path, sizeof(path));
	if (rc < 0)
		return rc;
	/* A fresh file, 0600 whatever the umask (the daemon runs with 0),
	 * never through a symlink left there. */
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	f = fdopen(fd, "w");
	if (f == NULL) {
		rc = -errno;
		close(fd);
		return rc;
	}
	fprintf(f, "%ld\n%s\n", (long)getpid(), cipherdir);
	return fclose(f) == 0 ? 0 : -errno;
}

void runtime_state_remove(const char *mountpoint)
{
	char path[4200];

	if (runtime_state_path(mountpoint, path, sizeof(path)) == 0)
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

int runtime_mountinfo_parse(char *line, char **mnt, char **source)
{
	char *fields[7], *sep, *save = NULL, *tok;
	int n = 0;

	/* id parent maj:min root mountpoint opts [tags] - type src */
	sep = strstr(line, " - ");
	if (sep == NULL)
		return 0;
	*sep = '\0';
	for (tok = strtok_r(line, " ", &save); tok && n < 5;
	     tok = strtok_r(NULL, " ", &save))
		fields[n++] = tok;
	if (n < 5)
		return 0;
	save = NULL;
	for (tok = strtok_r(sep + 3, " \n", &save); tok && n < 7;
	     tok = strtok_r(NULL, " \n", &save))
		fields[n++] = tok;
	if (n < 7 || strcmp(fields[5], "fuse.cmkfs") != 0)
		return 0;
	unescape(fields[4]);
	unescape(fields[6]);
	*mnt = fields[4];
	*source = fields[6];
	return 1;
}

int runtime_find(const char *path, char *cipherdir, size_t ccap, char *mnt,
		 size_t mcap)
{
	char line[8192];
	FILE *f = fopen(MOUNTINFO, "re");
	int found = 0;

	if (f == NULL)
		return 0;
	while (!found && fgets(line, sizeof(line), f) != NULL) {
		char *m, *src;

		if (!runtime_mountinfo_parse(line, &m, &src))
			continue;
		if (strcmp(m, path) == 0 || strcmp(src, path) == 0) {
			snprintf(cipherdir, ccap, "%s", src);
			snprintf(mnt, mcap, "%s", m);
			found = 1;
		}
	}
	fclose(f);
	return found;
}

int runtime_unmount(const char *mountpoint)
{
	pid_t pid;
	int status;

	if (geteuid() == 0)
		return umount2(mountpoint, UMOUNT_NOFOLLOW) == 0 ? 0 : -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "--", mountpoint,
		       (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
	    WEXITSTATUS(status) != 0)
		return -EPERM;
	return 0;
}

int runtime_wait_exit(pid_t pid, int timeout_ms)
{
	if (pid <= 0)
		return 0;
	for (int i = 0; i < timeout_ms / 100; i++) {
		struct timespec ts = { 0, 100000000 };

		if (kill(pid, 0) < 0 && errno == ESRCH)
			return 0;
		nanosleep(&ts, NULL);
	}
	return kill(pid, 0) == 0 ? -ETIMEDOUT : 0;
}
