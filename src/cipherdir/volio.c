/* src/cipherdir/volio.c — read, write and unlock a volume's config. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/names.h"
#include "cmkfs/secmem.h"
#include "cmkfs/volio.h"

int volio_read(int dirfd, struct volume *v)
{
	uint8_t buf[VOLUME_MAX_LEN];
	size_t len = 0;
	int rc;

	rc = backing_read_small(dirfd, VOLUME_FILE, buf, sizeof(buf), &len);
	if (rc == -EFBIG)
		return -EBADMSG;
	if (rc < 0)
		return rc;
	return volume_parse(buf, len, v);
}

int volio_write(int dirfd, const struct volume *v)
{
	uint8_t buf[VOLUME_MAX_LEN];
	size_t len;
	int rc;

	rc = volume_serialize(v, buf, sizeof(buf), &len);
	if (rc < 0)
		return rc;
	return backing_replace(dirfd, VOLUME_FILE, buf, len, 0644);
}

static int lock_config(int dirfd, int how)
{
	int fd;

	/* The root's cmkfs.dirid is written once and never replaced, unlike
	 * cmkfs.conf (a format-3 full rekey rewrites its record in place):
	 * a stable object to hold the writers' lock on. */
	fd = openat(dirfd, DIRID_FILE, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	while (flock(fd, how) < 0) {
		if (errno != EINTR) {
			int rc = errno == EWOULDBLOCK ? -EBUSY : -errno;

			close(fd);
			return rc;
		}
	}
	return fd;
}

int volio_lock_config(int dirfd)
{
	return lock_config(dirfd, LOCK_EX);
}

int volio_trylock_config(int dirfd)
{
	return lock_config(dirfd, LOCK_EX | LOCK_NB);
}

void volio_unlock_config(int lockfd)
{
	if (lockfd >= 0)
		close(lockfd);	/* drops the flock */
}

int volio_lock_offline(int dirfd)
{
	if (flock(dirfd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	return errno == EWOULDBLOCK ? -EBUSY : -errno;
}

int volio_same_as_disk(int dirfd, const struct volume *v)
{
	uint8_t a[VOLUME_MAX_LEN], b[VOLUME_MAX_LEN];
	size_t la, lb;
	struct volume d;
	int rc;

	rc = volio_read(dirfd, &d);
	if (rc == 0)
		rc = volume_serialize(&d, a, sizeof(a), &la);
	if (rc == 0)
		rc = volume_serialize(v, b, sizeof(b), &lb);
	if (rc < 0)
		return rc;
	return la == lb && memcmp(a, b, la) == 0 ? 0 : -ESTALE;
}

int volio_providers(const struct volume *v, const char *service_key_path,
		    struct keyprov *prov[2])
{
	uint8_t *skey = NULL;
	int rc;

	prov[0] = prov[1] = NULL;
	rc = kp_local_load(service_key_path, &skey);
	if (rc < 0)
		return rc == -ENOENT ? -ENOKEY : rc;
	for (int i = 0; i < 2 && rc == 0; i++)
		rc = keyprov_for_layer(v, i, skey, &prov[i]);
	secmem_free(skey, SERVICE_KEY_LEN);
	if (rc < 0) {
		keyprov_close(prov[0]);
		keyprov_close(prov[1]);
		prov[0] = prov[1] = NULL;
	}
	return rc;
}

int volio_unlock(int dirfd, const char *service_key_path, struct keyring **kr)
{
	struct keyprov *prov[2] = { NULL, NULL };
	struct volume v;
	int rc;

	rc = volio_read(dirfd, &v);
	if (rc < 0)
		return rc;
	rc = volio_providers(&v, service_key_path, prov);
	if (rc == 0)
		rc = keyring_open(&v, prov, kr);
	keyprov_close(prov[0]);
	keyprov_close(prov[1]);
	return rc;
}

const char *volio_strerror(int rc)
{
	switch (rc) {
	case -ENOENT:
		return "no cmkfs volume here (run 'cmkfs init' first)";
	case -ENOTEMPTY:
		return "cmkfs.quarantine is not empty: what 'cmkfs fsck "
		       "--repair' set aside would stay under the old keys; "
		       "look at it, move what you need out of the volume and "
		       "remove it first";
	case -EINPROGRESS:
		return "a header-only rekey is in progress: finish it with "
		       "'cmkfs rekey' first";
	case -ENOKEY:
		return "service key file not found (see --service-key, "
		       "$CMKFS_SERVICE_KEY)";
	case -EPERM:
		return "service key file is readable by group or others, or not "
		       "a regular file (chmod 600 it)";
	case -EBADMSG:
		return "volume config is malformed or was tampered with";
	case -EBUSY:
		return "the volume is busy: mounted, or an offline rekey or "
		       "repair is running";
	case -EALREADY:
		return "a rekey is in progress: run 'cmkfs rekey' to finish it";
	case -EUCLEAN:
		return "an upgrade to format 3 is in progress: run 'cmkfs "
		       "upgrade' to finish it";
	case -ESTALE:
		return "the volume config changed meanwhile (another cmkfs "
		       "command?); try again";
	case -ECANCELED:
		return "stopped (the mount is going away); run 'cmkfs rekey' "
		       "again to finish";
	case -EKEYREJECTED:
		return "wrong key: the service key does not unlock this volume";
	case -EOPNOTSUPP:
		return "this volume uses a key provider this build does not "
		       "support";
	case -EKEYREVOKED:
		return "the customer-managed key is not accessible: access "
		       "revoked, key disabled or deleted (see the audit log)";
	case -EKEYEXPIRED:
		return "the customer-managed key is expired or not yet valid";
	case -EACCES:
		return "Entra ID refused the configured Azure credential";
	case -EAGAIN:
	case -ETIMEDOUT:
	case -ECONNREFUSED:
	case -EHOSTUNREACH:
	case -ECONNRESET:
		return "Key Vault is unreachable or throttling (transient; "
		       "retry later)";
	case -EPROTO:
		return "Key Vault or Entra ID sent an unexpected reply";
	case -EBADE:
		return "TLS verification of Key Vault failed (see --ca-file, "
		       "$CMKFS_CA_FILE)";
	default:
		return strerror(-rc);
	}
}
