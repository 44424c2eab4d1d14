/* src/cli/exitmap.c — the one place an internal error becomes an exit code
 * (include/cmkfs/exitcodes.h), and the messages that name the path, the
 * real fault and the fix for the faults every subcommand shares: a bad
 * service key file, a key that is not the volume's, a Key Vault refusal or
 * outage, a mount point given where a cipher directory belongs. */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "exitmap.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/runtime.h"
#include "cmkfs/volio.h"

int cli_exit_code(int rc)
{
	switch (rc) {
	case 0:
		return CMK_EXIT_OK;
	case -ENOKEY:		/* service key file missing (volio) */
	case -EKEYREJECTED:	/* not this volume's key */
	case -ELOOP:		/* a symlink kp_local_load does not follow */
	case -EISDIR:
		return CMK_EXIT_KEY;
	/* azerr.h: disabled, deleted, permission (403, 401), expired; the
	 * token endpoint refused the credential */
	case -EKEYREVOKED:
	case -EKEYEXPIRED:
	case -EACCES:
		return CMK_EXIT_DENIED;
	/* azerr.h: firewall, throttled (429), outage (408, 5xx); and the
	 * network errors of azure/http.c (DNS, connect, TLS, timeout) */
	case -EAGAIN:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -ECONNRESET:
	case -EHOSTUNREACH:
	case -ENETUNREACH:
	case -EHOSTDOWN:
	case -EBADE:
		return CMK_EXIT_UNREACHABLE;
	case -ENOENT:		/* volio_read: no cmkfs.conf */
	case -EBADMSG:		/* volio_read: malformed or tampered */
		return CMK_EXIT_DAMAGED;
	default:
		return CMK_EXIT_RUNTIME;
	}
}

int cli_key_fault(const char *cmd, const char *path)
{
	struct stat lst, st;
	int fd;

	if (kp_local_is_fd(path)) {
		/* read once, already consumed: what it gave is all we know */
		fprintf(stderr, "cmkfs %s: service key from descriptor %s: "
			"not open, not exactly 32 bytes, or a file with group "
			"or other access (--service-key-fd)\n", cmd, path + 3);
		return CMK_EXIT_KEY;
	}
	if (lstat(path, &lst) < 0) {
		if (errno == ENOENT || errno == ENOTDIR) {
			fprintf(stderr, "cmkfs %s: service key %s: not found "
				"(give --service-key FILE or $CMKFS_SERVICE_KEY; "
				"'cmkfs init' creates one)\n", cmd, path);
			return CMK_EXIT_KEY;
		}
		fprintf(stderr, "cmkfs %s: service key %s: %s\n", cmd, path,
			strerror(errno));
		return CMK_EXIT_KEY;
	}
	if (S_ISLNK(lst.st_mode)) {
		if (stat(path, &st) < 0) {
			fprintf(stderr, "cmkfs %s: service key %s: a symbolic "
				"link to a file that does not exist (%s)\n", cmd,
				path, strerror(errno));
			return CMK_EXIT_KEY;
		}
	} else {
		st = lst;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "cmkfs %s: service key %s: a directory, not a "
			"key file (give the path of the 32-byte key file itself)\n",
			cmd, path);
		return CMK_EXIT_KEY;
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "cmkfs %s: service key %s: not a regular file "
			"(a service key is a 32-byte file of mode 0600)\n", cmd,
			path);
		return CMK_EXIT_KEY;
	}
	if ((st.st_mode & 077) != 0) {
		fprintf(stderr, "cmkfs %s: service key %s: mode %04o lets group "
			"or others read it; refused (chmod 600 %s)\n", cmd, path,
			(unsigned)(st.st_mode & 07777), path);
		return CMK_EXIT_KEY;
	}
	if (st.st_size != SERVICE_KEY_LEN) {
		fprintf(stderr, "cmkfs %s: service key %s: %lld bytes, a service "
			"key is %d (cmkfs init creates one; a copy cut short or "
			"with a newline added does not work)\n", cmd, path,
			(long long)st.st_size, SERVICE_KEY_LEN);
		return CMK_EXIT_KEY;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "cmkfs %s: service key %s: %s (run as root or "
			"as the key's owner)\n", cmd, path, strerror(errno));
		return CMK_EXIT_KEY;
	}
	close(fd);
	return CMK_EXIT_OK;
}

int cli_key_path(const char *cmd, const char *path, char *out, size_t cap)
{
	char real[PATH_MAX];
	struct stat lst;

	snprintf(out, cap, "%s", path);
	if (kp_local_is_fd(path))
		return CMK_EXIT_OK;	/* --service-key-fd: no path */
	if (lstat(path, &lst) < 0 || !S_ISLNK(lst.st_mode))
		return CMK_EXIT_OK;	/* missing: the caller says so */
	/* doc/KEYS.md: a symlinked key is followed when the link is root's
	 * or the caller's (whoever owns the link chooses the key), and its
	 * target must pass the checks any key file passes. */
	if (lst.st_uid != 0 && lst.st_uid != geteuid()) {
		fprintf(stderr, "cmkfs %s: service key %s: a symbolic link owned "
			"by uid %ld; only links owned by root or by you are "
			"followed (give the key file itself)\n", cmd, path,
			(long)lst.st_uid);
		return CMK_EXIT_KEY;
	}
	if (realpath(path, real) == NULL) {
		fprintf(stderr, "cmkfs %s: service key %s: a symbolic link to a "
			"file that does not exist (%s)\n", cmd, path,
			strerror(errno));
		return CMK_EXIT_KEY;
	}
	if (strlen(real) >= cap)
		return cli_fail(cmd, "service key %s: path too long", path);
	snprintf(out, cap, "%s", real);
	return CMK_EXIT_OK;
}

int cli_unlock_fail(const char *cmd, const char *cdir, const char *keypath,
		    int rc, const char *detail)
{
	const char *sep = detail != NULL && *detail ? ": " : "";
	int ex;

	if (detail == NULL)
		detail = "";
	switch (rc) {
	case -ENOKEY:
	case -EBADF:
	case -EPERM:
	case -EBADMSG:
	case -ELOOP:
	case -EISDIR:
	case -EACCES:
		/* The service key file's own faults first: kp_local_load's
		 * -EBADMSG (wrong size) must not read as a damaged config. */
		if (keypath != NULL) {
			ex = cli_key_fault(cmd, keypath);
			if (ex != CMK_EXIT_OK)
				return ex;
		}
		break;
	case -EKEYREJECTED:
		/* A flipped byte in the wrapped keys reads the same: the
		 * AEAD cannot tell a wrong key from a changed config. */
		fprintf(stderr, "cmkfs %s: service key %s does not unlock %s: it "
			"is not this volume's key (wrong key), or its cmkfs.conf "
			"was tampered with (give the key the volume was created "
			"with, or restore the key or cmkfs.conf from a backup)\n",
			cmd, keypath != NULL ? keypath : "(none)", cdir);
		return CMK_EXIT_KEY;
	case -ENOENT:
		fprintf(stderr, "cmkfs %s: %s: not a cmkfs volume (no cmkfs.conf; "
			"'cmkfs init %s' creates one in an empty directory)\n",
			cmd, cdir, cdir);
		return CMK_EXIT_DAMAGED;
	default:
		break;
	}
	ex = cli_exit_code(rc);
	/* A Key Vault reply that is not a key (the provider says why) is
	 * not a damaged config. */
	if (rc == -EBADMSG && *detail)
		ex = CMK_EXIT_RUNTIME;
	if (ex == CMK_EXIT_DAMAGED)
		fprintf(stderr, "cmkfs %s: %s/cmkfs.conf: the volume config is "
			"malformed or was tampered with (run 'cmkfs fsck %s'; "
			"restore cmkfs.conf from a backup)%s%s\n", cmd, cdir, cdir,
			sep, detail);
	else if (ex == CMK_EXIT_UNREACHABLE)
		fprintf(stderr, "cmkfs %s: %s: cannot unlock: %s%s%s (retry "
			"later)\n", cmd, cdir, volio_strerror(rc), sep, detail);
	else
		fprintf(stderr, "cmkfs %s: %s: cannot unlock: %s%s%s\n", cmd,
			cdir, volio_strerror(rc), sep, detail);
	return ex;
}

int cli_not_mountpoint(const char *cmd, const char *path)
{
	char real[PATH_MAX], c2[PATH_MAX], m2[PATH_MAX];

	if (realpath(path, real) == NULL)
		return CMK_EXIT_OK;
	if (runtime_find(real, c2, sizeof(c2), m2, sizeof(m2)) &&
	    strcmp(m2, real) == 0 && strcmp(c2, real) != 0) {
		fprintf(stderr, "cmkfs %s: %s is a cmkfs mount point; give its "
			"cipher directory %s\n", cmd, path, c2);
		return CMK_EXIT_USAGE;
	}
	return CMK_EXIT_OK;
}

int cli_open_volume_fail(const char *cmd, const char *cdir, int rc)
{
	struct stat st;

	if (rc == -ENOENT || rc == -ENOTDIR) {
		bool dir = stat(cdir, &st) == 0 && S_ISDIR(st.st_mode);

		fprintf(stderr, "cmkfs %s: %s: not a cmkfs volume (%s; "
			"'cmkfs init %s' creates one in an empty directory)\n",
			cmd, cdir, dir ? "no cmkfs.conf" : "no such directory",
			cdir);
		return CMK_EXIT_DAMAGED;
	}
	return cli_unlock_fail(cmd, cdir, NULL, rc, NULL);
}
