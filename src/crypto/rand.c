/* src/crypto/rand.c — RAND_bytes that fails closed. */
#include "config.h"

#include <errno.h>
#include <limits.h>

#include <openssl/rand.h>

#include "cmkfs/rand.h"

int rand_bytes(void *buf, size_t len)
{
	if (len > INT_MAX)
		return -EINVAL;
	if (RAND_bytes(buf, (int)len) != 1)
		return -EIO;
	return 0;
}
