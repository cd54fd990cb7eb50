/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --json output through json-c, strings made valid UTF-8 first. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>

#include "json.h"
#include "shared/cleanup.h"
#include "shared/util.h"

/* Set when an allocation failed while an object was made: json_print() reports it. */
static bool json_enomem;

struct json_object *json_str(const char *s)
{
	_cleanup_free_ char *v = NULL;
	struct json_object *o;

	if (!s)
		return NULL;
	v = utf8_valid_copy(s);
	o = v ? json_object_new_string(v) : NULL;
	if (!o)
		json_enomem = true;
	return o;
}

void json_add(struct json_object *o, const char *key, struct json_object *v)
{
	if (!o || json_object_object_add(o, key, v) < 0) {
		json_object_put(v);
		json_enomem = true;
	}
}

void json_add_str(struct json_object *o, const char *key, const char *s)
{
	json_add(o, key, json_str(s ?: ""));
}

void json_add_u64(struct json_object *o, const char *key, uint64_t v)
{
	struct json_object *n = json_object_new_uint64(v);

	if (!n)
		json_enomem = true;
	json_add(o, key, n);
}

void json_add_int(struct json_object *o, const char *key, int64_t v)
{
	struct json_object *n = json_object_new_int64(v);

	if (!n)
		json_enomem = true;
	json_add(o, key, n);
}

void json_add_bool(struct json_object *o, const char *key, bool v)
{
	struct json_object *n = json_object_new_boolean(v);

	if (!n)
		json_enomem = true;
	json_add(o, key, n);
}

void json_add_double(struct json_object *o, const char *key, double v, int decimals)
{
	char text[64];
	struct json_object *n;

	snprintf(text, sizeof(text), "%.*f", decimals, v);
	n = json_object_new_double_s(v, text);
	if (!n)
		json_enomem = true;
	json_add(o, key, n);
}

int json_print(struct json_object *o, FILE *f)
{
	const char *text;
	int r = 0;

	if (!o || json_enomem)
		r = -ENOMEM;
	else {
		text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
		if (!text)
			r = -ENOMEM;
		else if (fprintf(f, "%s\n", text) < 0 || fflush(f) != 0)
			r = -EIO;
	}
	json_object_put(o);
	json_enomem = false;
	return r;
}
