/* tests/lib/tap.h — tiny assertion helpers for unit tests.
 * A test program counts checks and ends with t_done(), which prints the
 * plain "NAME: N passed, M failed" line and returns the exit status
 * (0 all passed, 1 a failure). */
#ifndef CMKFS_TAP_H
#define CMKFS_TAP_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int t_count, t_fails;

#define CHECK(cond, ...)                                                     \
	do {                                                                 \
		t_count++;                                                   \
		if (!(cond)) {                                               \
			t_fails++;                                           \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__,        \
				__LINE__, #cond);                            \
			fprintf(stderr, __VA_ARGS__);                        \
			fputc('\n', stderr);                                 \
		}                                                            \
	} while (0)

#define CHECK_RC(expr, want)                                                 \
	do {                                                                 \
		int rc_ = (expr);                                            \
		CHECK(rc_ == (want), "got %d, want %d", rc_, (int)(want));   \
	} while (0)

/* The base name backing fd is open as (for cfile_create's location, which
 * format 3 binds the header to); a static buffer. */
static inline const char *t_bname(int fd)
{
	static char buf[4096];
	char proc[64];
	ssize_t n;
	char *slash;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, buf, sizeof(buf) - 1);
	if (n < 0)
		return "?";
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	return slash != NULL ? slash + 1 : buf;
}

static inline int t_done(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, t_count - t_fails, t_fails);
	return t_fails ? 1 : 0;
}

static inline int t_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode lowercase hex into out (n bytes); returns 0 if well-formed. */
static inline int t_unhex(const char *hex, uint8_t *out, size_t n)
{
	if (strlen(hex) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int hi = t_hexval(hex[2 * i]), lo = t_hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static inline void t_hex(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/* 1 if p[0..n) equals the hex string; prints the actual hex if not, so a
 * deliberate format change shows the new vector. */
static inline int t_eq_hex(const uint8_t *p, size_t n, const char *hex)
{
	char got[2 * 4096 + 1];

	if (n > 4096)
		return 0;
	t_hex(p, n, got);
	if (strcmp(got, hex) == 0)
		return 1;
	fprintf(stderr, "  got  %s\n  want %s\n", got, hex);
	return 0;
}

/* Deterministic filler: byte i of stream `seed`. */
static inline void t_fill(uint8_t *p, size_t n, uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (uint8_t)x;
	}
}

#endif
