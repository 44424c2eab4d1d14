/* src/keys/kp_local.c — the service key file and the `local` provider.
 * The file holds 32 random bytes (doc/KEYS.md). Each layer wraps its KEK
 * under its own HKDF-derived key, so the two layers' wrapping keys differ
 * even when both come from the service key (CMK off). */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
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

const char *kp_local_default_path(void)
{
	const char *p = getenv("CMKFS_SERVICE_KEY");

	return (p != NULL && *p != '\0') ? p : SERVICE_KEY_DEFAULT;
}

int kp_local_load(const char *path, uint8_t **key)
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
