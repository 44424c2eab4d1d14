/* src/keys/kp_local.c — the service key file and the `local` provider.
 * The file holds 32 random bytes (doc/KEYS.md). Each layer wraps its KEK
 * under its own HKDF-derived key, so the two layers' wrapping keys differ
 * even when both come from the service key (CMK off). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cmkfs/kdf.h"
#include "cmkfs/keyprov.h"
#include "cmkfs/log.h"
#include "cmkfs/rand.h"
#include "cmkfs/secmem.h"

struct kp_local {
	uint8_t *wrap_key;	/* secmem, AEAD_KEY_LEN */
};

/* The key read once, for the source named (kp_local_pin). */
static struct {
	pthread_mutex_t mtx;
	char *source;		/* NULL: nothing pinned */
	uint8_t *key;		/* secmem; NULL until first loaded */
} pin = { .mtx = PTHREAD_MUTEX_INITIALIZER };

const char *kp_local_default_path(void)
{
	static char cred[PATH_MAX];
	const char *p = getenv("CMKFS_SERVICE_KEY");
	const char *d = getenv("CREDENTIALS_DIRECTORY");
	struct stat st;

	if (p != NULL && *p != '\0')
		return p;
	/* systemd LoadCredential= / SetCredentialEncrypted=: a 0400 file
	 * owned by the service user under /run/credentials/UNIT (the mode
	 * rule below holds for it). Only if the unit passed ours. */
	if (d != NULL && *d == '/' &&
	    snprintf(cred, sizeof(cred), "%s/%s", d, SERVICE_KEY_CREDENTIAL) <
		    (int)sizeof(cred) &&
	    lstat(cred, &st) == 0)
		return cred;
	return SERVICE_KEY_DEFAULT;
}

bool kp_local_is_fd(const char *source)
{
	return strncmp(source, SERVICE_KEY_FD_PREFIX,
		       strlen(SERVICE_KEY_FD_PREFIX)) == 0;
}

/* N of "fd:N", or -1. */
static int fd_of(const char *source)
{
	const char *n = source + strlen(SERVICE_KEY_FD_PREFIX);
	char *end;
	long v;

	errno = 0;
	v = strtol(n, &end, 10);
	if (errno || end == n || *end != '\0' || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

static int load_file(const char *path, uint8_t **key)
{
	uint8_t *k = NULL;
	struct stat st;
	ssize_t n;
	int fd, rc;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	/* OpenSSH authfile.c sshkey_perm_ok(): no group/other access. */
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) != 0) {
		rc = -EPERM;
		goto out;
	}
	if (st.st_size != SERVICE_KEY_LEN) {
		rc = -EBADMSG;
		goto out;
	}
	rc = secmem_zalloc(SERVICE_KEY_LEN, (void **)&k);
	if (rc < 0)
		goto out;
	n = pread(fd, k, SERVICE_KEY_LEN, 0);
	if (n != SERVICE_KEY_LEN) {
		rc = n < 0 ? -errno : -EBADMSG;
		goto out;
	}
	*key = k;
	k = NULL;			/* transferred */
	rc = 0;
out:
	secmem_free(k, SERVICE_KEY_LEN);
	close(fd);
	return rc;
}

static int copy_key(const uint8_t *from, uint8_t **key)
{
	uint8_t *k = NULL;
	int rc = secmem_zalloc(SERVICE_KEY_LEN, (void **)&k);

	if (rc < 0)
		return rc;
	memcpy(k, from, SERVICE_KEY_LEN);
	*key = k;
	return 0;
}

/* Exactly SERVICE_KEY_LEN bytes up to end of file from descriptor fd, which
 * is closed (0..2 become /dev/null: nothing else may take their numbers). */
static int load_fd(int fd, uint8_t **key)
{
	uint8_t *k = NULL;
	struct stat st;
	size_t got = 0;
	int rc;

	if (fd < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	if (S_ISREG(st.st_mode) ? (st.st_mode & 077) != 0 :
				  !S_ISFIFO(st.st_mode) && !S_ISSOCK(st.st_mode)) {
		rc = -EPERM;
		goto out;
	}
	/* one byte more than a key: a longer input is refused, not cut */
	rc = secmem_zalloc(SERVICE_KEY_LEN + 1, (void **)&k);
	while (rc == 0 && got < SERVICE_KEY_LEN + 1) {
		ssize_t n = read(fd, k + got, SERVICE_KEY_LEN + 1 - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			rc = -errno;
		else if (n == 0)
			break;
		else
			got += (size_t)n;
	}
	if (rc == 0 && got != SERVICE_KEY_LEN)
		rc = -EBADMSG;
	if (rc == 0)
		rc = copy_key(k, key);
out:
	secmem_free(k, SERVICE_KEY_LEN + 1);
	if (fd > 2) {
		close(fd);
	} else {
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);

		if (null >= 0 && null != fd) {
			(void)dup2(null, fd);
			close(null);
		}
	}
	return rc;
}

int kp_local_read(const char *source, uint8_t **key)
{
	if (kp_local_is_fd(source))
		return load_fd(fd_of(source), key);
	return load_file(source, key);
}

int kp_local_load(const char *path, uint8_t **key)
{
	int rc;

	pthread_mutex_lock(&pin.mtx);
	if (pin.source == NULL && kp_local_is_fd(path)) {
		/* a descriptor reads once: keep what it gave */
		pin.source = strdup(path);
		if (pin.source == NULL) {
			pthread_mutex_unlock(&pin.mtx);
			return -ENOMEM;
		}
	}
	if (pin.source == NULL || strcmp(pin.source, path) != 0) {
		pthread_mutex_unlock(&pin.mtx);
		return kp_local_read(path, key);
	}
	if (pin.key == NULL) {
		uint8_t *k = NULL;

		rc = kp_local_read(path, &k);
		if (rc < 0) {
			pthread_mutex_unlock(&pin.mtx);
			return rc;
		}
		pin.key = k;
	}
	rc = copy_key(pin.key, key);
	pthread_mutex_unlock(&pin.mtx);
	return rc;
}

int kp_local_pin(const char *source)
{
	char *s = strdup(source);
	uint8_t *k = NULL;
	int rc = 0;

	if (s == NULL)
		return -ENOMEM;
	pthread_mutex_lock(&pin.mtx);
	if (pin.source != NULL && strcmp(pin.source, source) == 0) {
		/* Already pinned (before a fork: the child's copy of the
		 * page is not locked): move it to fresh locked memory. */
		free(s);
		if (pin.key != NULL) {
			rc = copy_key(pin.key, &k);
			if (rc == 0) {
				secmem_free(pin.key, SERVICE_KEY_LEN);
				pin.key = k;
			}
		}
		pthread_mutex_unlock(&pin.mtx);
		return rc;
	}
	secmem_free(pin.key, SERVICE_KEY_LEN);
	pin.key = NULL;
	free(pin.source);
	pin.source = s;
	pthread_mutex_unlock(&pin.mtx);
	return 0;
}

void kp_local_unpin(void)
{
	pthread_mutex_lock(&pin.mtx);
	secmem_free(pin.key, SERVICE_KEY_LEN);
	pin.key = NULL;
	free(pin.source);
	pin.source = NULL;
	pthread_mutex_unlock(&pin.mtx);
}

static int fsync_parent(const char *path)
{
	char *copy = strdup(path);
	int fd, rc = 0;

	if (copy == NULL)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0)
			rc = -errno;
		close(fd);
	}
	free(copy);
	return rc;
}

int kp_local_create(const char *path)
{
	uint8_t k[SERVICE_KEY_LEN];
	char *copy;
	int fd, rc;

	/* a descriptor brings its key: nothing to create */
	if (kp_local_is_fd(path))
		return 0;
	copy = strdup(path);
	if (copy == NULL)
		return -ENOMEM;
	/* /etc/cmkfs on first use: private to root. */
	if (mkdir(dirname(copy), 0700) < 0 && errno != EEXIST) {
		rc = -errno;
		free(copy);
		return rc;
	}
	free(copy);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
		  0600);
	if (fd < 0)
		return errno == EEXIST ? 0 : -errno;
	rc = rand_bytes(k, sizeof(k));
	if (rc == 0 && write(fd, k, sizeof(k)) != (ssize_t)sizeof(k))
		rc = -EIO;
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	secmem_wipe(k, sizeof(k));
	close(fd);
	if (rc < 0) {
		unlink(path);
		return rc;
	}
	rc = fsync_parent(path);
	return rc < 0 ? rc : 1;
}

static int local_wrap(struct keyprov *kp, const uint8_t *aad, size_t aad_len,
		      const uint8_t key[static AEAD_KEY_LEN], uint8_t *out,
		      size_t cap, size_t *out_len)
{
	struct kp_local *l = kp->priv;
	int rc;

	if (cap < AEAD_WRAP_LEN)
		return -ENOSPC;
	rc = aead_wrap_key(l->wrap_key, aad, aad_len, key, out);
	if (rc == 0)
		*out_len = AEAD_WRAP_LEN;
	return rc;
}

static int local_unwrap(struct keyprov *kp, const uint8_t *aad,
			size_t aad_len, const uint8_t *in, size_t len,
			uint8_t key[static AEAD_KEY_LEN])
{
	struct kp_local *l = kp->priv;

	if (len != AEAD_WRAP_LEN)
		return -EBADMSG;
	return aead_unwrap_key(l->wrap_key, aad, aad_len, in, key);
}

static void local_close(struct keyprov *kp)
{
	struct kp_local *l = kp->priv;

	if (l != NULL)
		secmem_free(l->wrap_key, AEAD_KEY_LEN);
	free(l);
	free(kp);
}

static int local_open_layer(const struct volume *v, int layer,
			    const uint8_t *service_key, struct keyprov **out)
{
	return kp_local_open(service_key, v->volume_id, layer, out);
}

const struct keyprov_ops kp_local_ops = {
	.name = "local",
	.type = KPROV_LOCAL,
	.open = local_open_layer,
	.wrap = local_wrap,
	.unwrap = local_unwrap,
	.close = local_close,
};

int kp_local_open(const uint8_t *service_key,
		  const uint8_t volume_id[static VOLUME_ID_LEN], int layer,
		  struct keyprov **out)
{
	static const char *const label[2] = { "cmkfs v1 local wrap S",
					      "cmkfs v1 local wrap C" };
	struct keyprov *kp = calloc(1, sizeof(*kp));
	struct kp_local *l = calloc(1, sizeof(*l));
	uint8_t fp[8];
	int rc = -ENOMEM;

	if (kp == NULL || l == NULL || layer < 0 || layer > 1)
		goto fail;
	kp->ops = &kp_local_ops;
	kp->priv = l;
	rc = secmem_zalloc(AEAD_KEY_LEN, (void **)&l->wrap_key);
	if (rc < 0)
		goto fail;
	rc = kdf_hkdf(service_key, SERVICE_KEY_LEN, volume_id, VOLUME_ID_LEN,
		      label[layer], l->wrap_key, AEAD_KEY_LEN);
	if (rc == 0)
		rc = kdf_hkdf(service_key, SERVICE_KEY_LEN, NULL, 0,
			      "cmkfs v1 service key id", fp, sizeof(fp));
	if (rc < 0)
		goto fail;
	/* The id names the service key without revealing it. */
	snprintf(kp->key_id, sizeof(kp->key_id),
		 "local:%02x%02x%02x%02x%02x%02x%02x%02x", fp[0], fp[1], fp[2],
		 fp[3], fp[4], fp[5], fp[6], fp[7]);
	*out = kp;
	return 0;
fail:
	if (kp != NULL && kp->priv != NULL) {
		local_close(kp);
		return rc;
	}
	free(l);
	free(kp);
	return rc;
}
