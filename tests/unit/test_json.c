/* tests/unit/test_json.c — bounded JSON: typed getters, hostile input, and
 * the string escaper: every control byte, quotes, backslashes, UTF-8, and
 * every output bound. */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cmkfs/json.h"
#include "../lib/tap.h"

static int parse(const char *s, struct json **j)
{
	return json_parse(s, strlen(s), j);
}

/* 1 if `esc` (json_escape output) parses back, as a JSON string, to the
 * first n bytes of s. */
static int parses_back(const char *esc, const char *s, size_t n)
{
	char doc[4096];
	struct json *j = NULL;
	const char *got;
	int ok;

	if ((size_t)snprintf(doc, sizeof(doc), "{\"s\":\"%s\"}", esc) >=
	    sizeof(doc))
		return 0;
	if (json_parse(doc, strlen(doc), &j) < 0)
		return 0;
	ok = json_str(j, "s", &got) == 0 && strlen(got) == n &&
	     memcmp(got, s, n) == 0;
	json_free(j);
	return ok;
}

static void test_escape(void)
{
	static const char mixed[] = "a\"b\\c\x01\x1f d\xc3\xa9\xe2\x82\xac"
				    "\xf0\x9f\x98\x80\x7f\n\"\\z";
	char out[512], want[16], in[4];
	size_t used, n, full_len;
	char full[512];

	/* every control byte: \u00XX, lowercase hex, between neighbours */
	for (int c = 1; c < 0x20; c++) {
		in[0] = 'x';
		in[1] = (char)c;
		in[2] = 'y';
		in[3] = '\0';
		snprintf(want, sizeof(want), "x\\u%04xy", c);
		n = json_escape(out, sizeof(out), in, &used);
		CHECK(strcmp(out, want) == 0 && n == strlen(want) && used == 3,
		      "control 0x%02x gave %s", c, out);
		CHECK(parses_back(out, in, 3), "control 0x%02x round trip", c);
	}
	/* quotes and backslashes get a backslash; DEL and UTF-8 pass */
	n = json_escape(out, sizeof(out), "\"q\\\"\\", &used);
	CHECK(strcmp(out, "\\\"q\\\\\\\"\\\\") == 0 && n == 9 && used == 5,
	      "quotes: %s", out);
	n = json_escape(out, sizeof(out), "\xc3\xa9\xe2\x82\xac\x7f", &used);
	CHECK(strcmp(out, "\xc3\xa9\xe2\x82\xac\x7f") == 0 && n == 6 &&
		      used == 6,
	      "utf-8 passes");
	/* malformed UTF-8 passes byte by byte too */
	n = json_escape(out, sizeof(out), "\x80\xc3\xff\xe2\x82", &used);
	CHECK(strcmp(out, "\x80\xc3\xff\xe2\x82") == 0 && n == 5 && used == 5,
	      "malformed utf-8 passes");
	/* NULL is "", cap 0 writes nothing */
	out[0] = 'Q';
	CHECK(json_escape(out, sizeof(out), NULL, &used) == 0 &&
		      out[0] == '\0' && used == 0,
	      "NULL");
	out[0] = 'Q';
	CHECK(json_escape(out, 0, "abc", &used) == 0 && out[0] == 'Q' &&
		      used == 0,
	      "cap 0");
	CHECK(json_escape(out, 1, "abc", &used) == 0 && out[0] == '\0' &&
		      used == 0,
	      "cap 1");

	full_len = json_escape(full, sizeof(full), mixed, &used);
	CHECK(used == strlen(mixed) && parses_back(full, mixed, used),
	      "mixed round trip: %s", full);
	/* every bound: never past cap, NUL-terminated, a prefix of the full
	 * escape cut between characters, and it parses back to the prefix
	 * of the input it says it consumed */
	for (size_t cap = 1; cap <= full_len + 2; cap++) {
		int bad = 0;

		memset(out, 0xaa, sizeof(out));
		n = json_escape(out, cap, mixed, &used);
		for (size_t i = cap; i < sizeof(out); i++)
			bad |= (unsigned char)out[i] != 0xaa;
		CHECK(!bad, "cap %zu: wrote past cap", cap);
		CHECK(n < cap && out[n] == '\0' && strlen(out) == n,
		      "cap %zu: length %zu", cap, n);
		CHECK(memcmp(out, full, n) == 0, "cap %zu: not a prefix", cap);
		CHECK(used <= strlen(mixed) && parses_back(out, mixed, used),
		      "cap %zu: cut inside a character: %s", cap, out);
		CHECK(cap <= full_len || used == strlen(mixed),
		      "cap %zu: fits but cut", cap);
		/* a character that fits is never left out */
		CHECK(cap > full_len || n + 6 >= cap,
		      "cap %zu: stopped early at %zu", cap, n);
	}
	/* chunked, as a caller streaming a long string does */
	{
		char acc[512];
		const char *p = mixed;
		size_t k = 0;
		int rounds = 0;

		while (*p != '\0' && rounds++ < 100) {
			n = json_escape(out, 7, p, &used);
			CHECK(used > 0, "chunk of cap 7 made no progress");
			memcpy(acc + k, out, n);
			k += n;
			p += used;
		}
		acc[k] = '\0';
		CHECK(strcmp(acc, full) == 0, "chunked: %s", acc);
	}
}

int main(void)
{
	struct json *j = NULL;
	const struct json *o, *arr;
	const char *s;
	int64_t v;
	bool b;
	size_t n;

	CHECK_RC(parse("{\"a\":\"x\",\"n\":42,\"s\":\"1700000000\",\"b\":true,"
		       "\"o\":{\"k\":\"v\"},\"l\":[\"p\",1]} \n",
		       &j),
		 0);
	CHECK_RC(json_str(j, "a", &s), 0);
	CHECK(strcmp(s, "x") == 0, "str");
	CHECK_RC(json_int(j, "n", &v), 0);
	CHECK(v == 42, "int");
	CHECK_RC(json_int(j, "s", &v), 0);	/* IMDS sends numbers as strings */
	CHECK(v == 1700000000, "int from string");
	CHECK_RC(json_bool(j, "b", &b), 0);
	CHECK(b, "bool");
	CHECK_RC(json_obj(j, "o", &o), 0);
	CHECK_RC(json_str(o, "k", &s), 0);
	CHECK_RC(json_array(j, "l", &arr, &n), 0);
	CHECK(n == 2 && strcmp(json_array_str(arr, 0), "p") == 0 &&
		      json_array_str(arr, 1) == NULL && json_array_str(arr, 9) == NULL,
	      "array");
	/* wrong types and missing fields are one error: -EPROTO */
	CHECK_RC(json_str(j, "n", &s), -EPROTO);
	CHECK_RC(json_int(j, "a", &v), -EPROTO);
	CHECK_RC(json_bool(j, "a", &b), -EPROTO);
	CHECK_RC(json_obj(j, "a", &o), -EPROTO);
	CHECK_RC(json_str(j, "missing", &s), -EPROTO);
	CHECK(json_has(j, "a") && !json_has(j, "zz"), "has");
	json_free(j);

	static const char *const bad[] = {
		"", "{", "{\"a\":}", "{} x", "[1,2", "nul", "{\"a\":1}{}",
		"{\"n\":1.5}", "{\"n\":1e300}", "{\"s\":\"12a\"}",
		"{\"s\":\"99999999999999999999\"}", "{\"n\":-1e19}",
	};
	for (size_t i = 0; i < CMK_ARRAY_LEN(bad); i++) {
		int rc = parse(bad[i], &j);

		if (rc == 0) {
			/* parses, but the typed read must refuse */
			CHECK(json_int(j, "n", &v) < 0 && json_int(j, "s", &v) < 0,
			      "accepted '%s'", bad[i]);
			json_free(j);
		}
	}
	/* depth cap */
	{
		char deep[200];
		size_t k = 0;

		for (int i = 0; i < 40; i++)
			deep[k++] = '[';
		for (int i = 0; i < 40; i++)
			deep[k++] = ']';
		deep[k] = '\0';
		CHECK_RC(parse(deep, &j), -EPROTO);
	}
	/* size cap */
	{
		size_t big = JSON_MAX_LEN + 10;
		char *p = malloc(big + 1);

		memset(p, ' ', big);
		memcpy(p, "{\"a\":1}", 7);
		p[big] = '\0';
		CHECK_RC(json_parse(p, big, &j), -EPROTO);
		free(p);
	}
	/* not NUL-terminated input is read only up to len */
	CHECK_RC(json_parse("{\"a\":1}garbage", 7, &j), 0);
	json_free(j);
	test_escape();
	return t_done("test_json");
}
