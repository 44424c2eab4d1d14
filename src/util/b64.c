/* src/util/b64.c — canonical base64url without padding. */
#include "config.h"

#include <errno.h>

#include "cmkfs/b64.h"

static const char alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int b64_encode(const uint8_t *in, size_t n, char *out, size_t cap)
{
	size_t o = 0, i = 0;

	if (cap < b64_enc_len(n) + 1)
		return -ENAMETOOLONG;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
			     in[i + 2];
		out[o++] = alpha[v >> 18];
		out[o++] = alpha[(v >> 12) & 63];
		out[o++] = alpha[(v >> 6) & 63];
		out[o++] = alpha[v & 63];
	}
	if (n - i == 1) {
		out[o++] = alpha[in[i] >> 2];
		out[o++] = alpha[(in[i] & 3) << 4];
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];
		out[o++] = alpha[v >> 10];
		out[o++] = alpha[(v >> 4) & 63];
		out[o++] = alpha[(v & 15) << 2];
	}
	out[o] = '\0';
	return 0;
}

static int val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

int b64_decode(const char *in, size_t len, uint8_t *out, size_t cap,
	       size_t *out_len)
{
	size_t o = 0, need;
	uint32_t acc = 0;
	int bits = 0;

	if (len % 4 == 1)
		return -EBADMSG;
	need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
	if (need > cap)
		return -ENOSPC;
	for (size_t i = 0; i < len; i++) {
		int v = val(in[i]);

		if (v < 0)
			return -EBADMSG;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* Canonical: the unused low bits of the last char must be zero. */
	if (bits > 0 && (acc & ((1u << bits) - 1)) != 0)
		return -EBADMSG;
	*out_len = o;
	return 0;
}
