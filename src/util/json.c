/* src/util/json.c — bounded, typed access to untrusted JSON via cJSON. */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <malloc.h>
#include <openssl/crypto.h>

#include "cmkfs/json.h"

/* cJSON frees its nodes and strings without wiping them, and an unwrapkey
 * reply's "value" is a key in base64: every block cJSON frees is wiped
 * first. (With hooks of its own cJSON never calls realloc.) Set before
 * main() runs, so no thread can see the hooks change. */
static void json_wipe_free(void *p)
{
	if (p != NULL) {
		OPENSSL_cleanse(p, malloc_usable_size(p));
		free(p);
	}
}

__attribute__((constructor)) static void json_hooks(void)
{
	cJSON_Hooks h = { .malloc_fn = malloc, .free_fn = json_wipe_free };

	cJSON_InitHooks(&h);
}

/* struct json is cJSON itself: the opaque name keeps cJSON in this file. */
#define C(j) ((const cJSON *)(const void *)(j))

static int depth_ok(const cJSON *n, int depth)
{
	if (depth > JSON_MAX_DEPTH)
		return 0;
	for (const cJSON *c = n->child; c != NULL; c = c->next) {
		if (!depth_ok(c, depth + 1))
			return 0;
	}
	return 1;
}

int json_parse(const char *buf, size_t len, struct json **out)
{
	const char *end = NULL;
	cJSON *root;

	if (len == 0 || len > JSON_MAX_LEN)
		return -EPROTO;
	root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
	if (root == NULL)
		return -EPROTO;
	/* Only whitespace may follow the value. */
	while (end != NULL && end < buf + len &&
	       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
		end++;
	if (end != buf + len || !depth_ok(root, 0)) {
		cJSON_Delete(root);
		return -EPROTO;
	}
	*out = (struct json *)(void *)root;
	return 0;
}

void json_free(struct json *j)
{
	cJSON_Delete((cJSON *)(void *)j);
}

static const cJSON *field(const struct json *j, const char *key)
{
	if (j == NULL || !cJSON_IsObject(C(j)))
		return NULL;
	return cJSON_GetObjectItemCaseSensitive(C(j), key);
}

int json_has(const struct json *j, const char *key)
{
	return field(j, key) != NULL;
}

int json_obj(const struct json *j, const char *key, const struct json **out)
{
	const cJSON *f = field(j, key);

	if (!cJSON_IsObject(f))
		return -EPROTO;
	*out = (const struct json *)(const void *)f;
	return 0;
}

int json_str(const struct json *j, const char *key, const char **out)
{
	const cJSON *f = field(j, key);

	if (!cJSON_IsString(f) || f->valuestring == NULL)
		return -EPROTO;
	*out = f->valuestring;
	return 0;
}

int json_bool(const struct json *j, const char *key, bool *out)
{
	const cJSON *f = field(j, key);

	if (!cJSON_IsBool(f))
		return -EPROTO;
	*out = cJSON_IsTrue(f);
	return 0;
}

int json_int(const struct json *j, const char *key, int64_t *out)
{
	const cJSON *f = field(j, key);

	if (cJSON_IsNumber(f)) {
		double d = f->valuedouble;

		/* 2^63 is exactly representable; anything at or past it is not
		 * an int64. Fractions are refused too. */
		if (!isfinite(d) || d < -9223372036854775808.0 ||
		    d >= 9223372036854775808.0 || d != (double)(int64_t)d)
			return -EPROTO;
		*out = (int64_t)d;
		return 0;
	}
	if (cJSON_IsString(f) && f->valuestring != NULL) {
		const char *s = f->valuestring;
		char *end;
		long long v;

		if (*s == '\0' || strlen(s) > 19)
			return -EPROTO;
		for (const char *p = s; *p; p++) {
			if (*p < '0' || *p > '9')
				return -EPROTO;
		}
		errno = 0;
		v = strtoll(s, &end, 10);
		if (errno != 0 || *end != '\0')
			return -EPROTO;
		*out = v;
		return 0;
	}
	return -EPROTO;
}

int json_array(const struct json *j, const char *key, const struct json **arr,
	       size_t *n)
{
	const cJSON *f = field(j, key);
	int sz;

	if (!cJSON_IsArray(f))
		return -EPROTO;
	sz = cJSON_GetArraySize(f);
	if (sz < 0)
		return -EPROTO;
	*arr = (const struct json *)(const void *)f;
	*n = (size_t)sz;
	return 0;
}

const char *json_array_str(const struct json *arr, size_t i)
{
	const cJSON *e;

	if (i > INT_MAX)
		return NULL;
	e = cJSON_GetArrayItem(C(arr), (int)i);
	return cJSON_IsString(e) ? e->valuestring : NULL;
}

int json_array_int(const struct json *arr, size_t i, int64_t *out)
{
	const cJSON *e;

	if (i > INT_MAX)
		return -EPROTO;
	e = cJSON_GetArrayItem(C(arr), (int)i);
	/* 2^63 as a double is the first value out of range */
	if (!cJSON_IsNumber(e) || !(e->valuedouble >= 0) ||
	    e->valuedouble >= 9223372036854775808.0 ||
	    e->valuedouble != (double)(int64_t)e->valuedouble)
		return -EPROTO;
	*out = (int64_t)e->valuedouble;
	return 0;
}

/* Bytes of the character that starts at s: an escape's source byte, or a
 * UTF-8 lead byte with the continuation bytes that follow it (at most the
 * lead promises). Anything else, malformed UTF-8 included, is one byte. */
static size_t char_len(const unsigned char *s)
{
	size_t want = 1, n = 1;

	if (s[0] >= 0xc0 && s[0] <= 0xdf)
		want = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		want = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf7)
		want = 4;
	while (n < want && s[n] >= 0x80 && s[n] <= 0xbf)
		n++;
	return n;
}

size_t json_escape(char *out, size_t cap, const char *s, size_t *used)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)(s != NULL ? s : "");
	size_t o = 0, i = 0;

	if (cap == 0)
		goto out;
	while (p[i] != '\0') {
		unsigned char c = p[i];
		size_t in = 1, need;

		if (c == '"' || c == '\\')
			need = 2;
		else if (c < 0x20)
			need = 6;
		else
			need = in = char_len(p + i);
		/* Keep room for the NUL. */
		if (need >= cap - o)
			break;
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c < 0x20) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 15];
			o += 6;
		} else {
			memcpy(out + o, p + i, in);
			o += in;
		}
		i += in;
	}
	out[o] = '\0';
out:
	if (used != NULL)
		*used = i;
	return o;
}
