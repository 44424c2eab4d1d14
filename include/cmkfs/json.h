/* include/cmkfs/json.h — the only cJSON user: parse untrusted JSON with a
 * size cap and a depth cap, and read typed fields. A missing field or one
 * of the wrong type is -EPROTO, so hostile replies from the network are
 * refused with one error path (STYLE.md §2). Also the one JSON string
 * escaper for the JSON the tree writes (audit lines, control replies, CLI
 * output). Thread-safe. */
#ifndef CMKFS_JSON_H
#define CMKFS_JSON_H

#include <stdbool.h>

#include "cmkfs/common.h"

#define JSON_MAX_LEN (256 * 1024)
#define JSON_MAX_DEPTH 16

struct json;	/* a parsed document or a node inside one */

/* Parse len bytes (need not be NUL-terminated). Errors: -EPROTO (not JSON,
 * too long, too deep, trailing bytes), -ENOMEM. */
CMK_MUST_CHECK int json_parse(const char *buf, size_t len, struct json **out);
void json_free(struct json *j);	/* only for the root; NULL-safe */

/* Typed getters on an object node. The returned pointers live as long as
 * the root. Errors: -EPROTO (missing or wrong type, or out of range). */
CMK_MUST_CHECK int json_obj(const struct json *j, const char *key,
			    const struct json **out);
CMK_MUST_CHECK int json_str(const struct json *j, const char *key,
			    const char **out);
CMK_MUST_CHECK int json_bool(const struct json *j, const char *key, bool *out);
/* An integer (JSON number, or a string of digits as IMDS sends) in
 * [INT64_MIN, INT64_MAX]. */
CMK_MUST_CHECK int json_int(const struct json *j, const char *key,
			    int64_t *out);
/* 1 if `key` is present (any type), 0 if not. */
int json_has(const struct json *j, const char *key);
/* Array access: number of elements (-EPROTO if not an array) and element. */
CMK_MUST_CHECK int json_array(const struct json *j, const char *key,
			      const struct json **arr, size_t *n);
const char *json_array_str(const struct json *arr, size_t i);	/* or NULL */
/* An integral number element in [0, INT64_MAX]. Errors: -EPROTO. */
CMK_MUST_CHECK int json_array_int(const struct json *arr, size_t i,
				  int64_t *out);

/* Write s as the inside of a JSON string (RFC 8259 §7; no quotes around
 * it): '"' and '\\' get a backslash, bytes below 0x20 become \u00XX, every
 * other byte (UTF-8 included) is copied as it is. out gets at most cap
 * bytes, the NUL included (nothing at all if cap is 0). A string that does
 * not fit is cut before the first escape or UTF-8 sequence that would not
 * fit whole, never inside one. s NULL is "". Returns strlen(out); *used
 * (may be NULL) gets the bytes of s consumed, strlen(s) if all fit, so a
 * caller can go on from s + *used (with cap >= 7 every call consumes at
 * least one character of a non-empty s). Pure. */
size_t json_escape(char *out, size_t cap, const char *s, size_t *used);

#endif
