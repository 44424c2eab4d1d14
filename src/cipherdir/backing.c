/* src/cipherdir/backing.c — careful syscalls on the ciphertext directory. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "cmkfs/backing.h"
#include "cmkfs/names.h"
#include "cmkfs/rand.h"

int backing_pread_full(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG;	/* the backing file is cut short */
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int backing_pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int backing_read_small(int dirfd, const char *name, void *buf, size_t cap,
		       size_t *len)
{
	size_t got = 0;
	int fd, rc = 0;

	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	for (;;) {
		ssize_t n = read(fd, (uint8_t *)buf + got, cap - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			break;
		}
		if (n == 0)
			break;
		got += (size_t)n;
		if (got == cap) {
			char extra;

			/* One byte more than fits means it is too big. */
			if (read(fd, &extra, 1) == 1)
				rc = -EFBIG;
			break;
		}
	}
	close(fd);
	if (rc == 0)
		*len = got;
	return rc;
}

int backing_tmpname(char *out, size_t cap)
{
	uint8_t r[8];
	int rc;

	rc = rand_bytes(r, sizeof(r));
	if (rc < 0)
		return rc;
	snprintf(out, cap, TMP_PREFIX "%02x%02x%02x%02x%02x%02x%02x%02x", r[0],
		 r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
	return 0;
}

int backing_replace(int dirfd, const char *name, const void *buf, size_t len,
		    mode_t mode)
{
	char tmp[40];
	int fd, rc;

	rc = backing_tmpname(tmp, sizeof(tmp));
	if (rc < 0)
		return rc;
	fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	rc = backing_pwrite_full(fd, buf, len, 0);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc == 0 && renameat(dirfd, tmp, dirfd, name) < 0)
		rc = -errno;
	if (rc < 0) {
		unlinkat(dirfd, tmp, 0);
		return rc;
	}
	return backing_fsync_dir(dirfd);
}

int backing_fsync_dir(int dirfd)
{
	int fd, rc;

	/* dirfd may be O_PATH, which fsync() refuses: open the directory. */
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	rc = backing_fsync(fd, false);
	close(fd);
	return rc;
}

/* Set by backing_probe_order() for ext4 backings. */
static bool journal_fs;

/* A name no cmkfs object has (cmkfs xattr names are encrypted): replacing
 * it fails with ENODATA and changes nothing, but only after ext4 has
 * started a journal handle, which fails with EROFS once the journal has
 * aborted (ext4_journal_check_start). */
#define JOURNAL_PROBE XATTR_PREFIX "cmkfs.journal-probe"

int backing_fsync(int fd, bool datasync)
{
	struct statfs sfs;

	if ((datasync ? fdatasync(fd) : fsync(fd)) < 0)
		return -errno;
	/* ext4 (6.18 measured, bench/fsyncerr.sh) answers 0 to an fsync
	 * whose journal transaction the error's journal abort ended without
	 * writing it, in the window before the error makes the file system
	 * read-only: a file so "fsynced" is gone after e2fsck. Such a 0
	 * always comes after the abort, so a journal that is aborted now
	 * makes the fsync EIO (it may also be a commit that made it just
	 * before the error: EIO then says "unknown", which is true). A
	 * read-only mount (ST_RDONLY; the error does not set it) has nothing
	 * left to write and is not probed. */
	if (!journal_fs || fstatfs(fd, &sfs) < 0 || (sfs.f_flags & ST_RDONLY))
		return 0;
	if (fsetxattr(fd, JOURNAL_PROBE, "", 0, XATTR_REPLACE) < 0 &&
	    (errno == EROFS || errno == EIO))
		return -EIO;
	return 0;
}

void backing_lock_head(int fd, size_t len, bool on)
{
	struct flock fl = { .l_type = on ? F_WRLCK : F_UNLCK,
			    .l_whence = SEEK_SET, .l_start = 0,
			    .l_len = (off_t)len };

	while (fcntl(fd, F_OFD_SETLKW, &fl) < 0 && errno == EINTR)
		;
}

void backing_procpath(int fd, char out[static 32])
{
	snprintf(out, 32, "/proc/self/fd/%d", fd);
}

#define EXT4_MAGIC 0xEF53	/* linux/magic.h EXT4_SUPER_MAGIC */

static bool ordered_fs;

/* ext4 whose mount (by device, in /proc/self/mountinfo) is not
 * data=writeback: its data=ordered default orders a file's allocated data
 * before the journal commit that allocated it (Documentation/filesystems/
 * ext4.rst, "data=ordered"). */
void backing_probe_order(int rootfd)
{
	char line[4096], dev[32];
	struct statfs sfs;
	struct stat st;
	bool found = false, writeback = false;
	FILE *f;

	ordered_fs = false;
	journal_fs = false;
	if (fstatfs(rootfd, &sfs) < 0 || sfs.f_type != EXT4_MAGIC ||
	    fstat(rootfd, &st) < 0)
		return;
	journal_fs = true;
	snprintf(dev, sizeof(dev), " %u:%u ", major(st.st_dev),
		 minor(st.st_dev));
	f = fopen("/proc/self/mountinfo", "re");
	if (f == NULL)
		return;
	while (fgets(line, sizeof(line), f) != NULL) {
		const char *sep = strstr(line, " - ");

		if (strstr(line, dev) == NULL || sep == NULL ||
		    strstr(line, dev) > sep)
			continue;
		found = true;
		if (strstr(sep, "data=writeback") != NULL)
			writeback = true;
	}
	fclose(f);
	ordered_fs = found && !writeback;
}

int backing_order_data(int fd)
{
	if (ordered_fs)
		return sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE) < 0 ?
			       -errno :
			       0;
	return fdatasync(fd) < 0 ? -errno : 0;
}
