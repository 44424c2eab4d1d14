/* tests/unit/test_json.c — bounded JSON: typed getters, hostile input. */
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
	return t_done("test_json");
}
