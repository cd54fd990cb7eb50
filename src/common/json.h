/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* --json output: json-c objects, with text from images and file names made valid UTF-8 first
 * (json-c copies a string's bytes unchecked, and one stray byte makes the whole output
 * unreadable to a strict parser). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

/* A JSON string of s with invalid UTF-8 bytes as U+FFFD; a JSON null for NULL s. */
struct json_object *json_str(const char *s);
/* key: value into object o, for the types --json prints (json_add_str: NULL as ""). A value
 * that cannot be allocated makes the key a null: json_print() then fails. */
void json_add(struct json_object *o, const char *key, struct json_object *v);
void json_add_str(struct json_object *o, const char *key, const char *s);
void json_add_u64(struct json_object *o, const char *key, uint64_t v);
void json_add_int(struct json_object *o, const char *key, int64_t v);
void json_add_bool(struct json_object *o, const char *key, bool v);
/* v printed with that many decimals (json-c's own form has seventeen digits). */
void json_add_double(struct json_object *o, const char *key, double v, int decimals);
/* o on one line and a newline, then o released. Returns 0, -ENOMEM (an allocation failed while
 * o was made) or -EIO. */
int json_print(struct json_object *o, FILE *f);
