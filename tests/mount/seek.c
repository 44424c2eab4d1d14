/*
 * seek.c - lseek(2) SEEK_DATA / SEEK_HOLE from the command line, for the
 * mount tests (fstests generic/285 checks these on every file system).
 *
 * Usage: seek FILE data|hole OFFSET...
 * Prints one line per offset: the offset lseek returned, or the errno
 * name (ENXIO past EOF). Exit 0, or 2 on a usage or open error.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int fd, whence;

	if (argc < 4 || (strcmp(argv[2], "data") != 0 &&
			 strcmp(argv[2], "hole") != 0)) {
		fprintf(stderr, "usage: seek FILE data|hole OFFSET...\n");
		return 2;
	}
	whence = strcmp(argv[2], "data") == 0 ? SEEK_DATA : SEEK_HOLE;
	fd = open(argv[1], O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "seek: %s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	for (int i = 3; i < argc; i++) {
		char *end;
		long long off;
		off_t r;

		errno = 0;
		off = strtoll(argv[i], &end, 10);
		if (errno != 0 || *end != '\0') {
			fprintf(stderr, "seek: bad offset %s\n", argv[i]);
			return 2;
		}
		r = lseek(fd, (off_t)off, whence);
		if (r < 0)
			printf("%s\n", errno == ENXIO ? "ENXIO" :
				       errno == EIO   ? "EIO" :
							strerror(errno));
		else
			printf("%jd\n", (intmax_t)r);
	}
	close(fd);
	return 0;
}
