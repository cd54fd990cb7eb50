/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os-release(5) syntax (KEY=value, shell-like quoting) parsed, never sourced. Never logs. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "envfile.h"

void envfile_done(struct envfile *e)
{
	for (size_t i = 0; i < e->n; i++) {
		free(e->keys[i]);
		free(e->values[i]);
	}
	free(e->keys);
	free(e->values);
	memset(e, 0, sizeof(*e));
}

const char *envfile_get(const struct envfile *e, const char *key)
{
	for (size_t i = e->n; i > 0; i--)
		if (streq(e->keys[i - 1], key))
			return e->values[i - 1];
	return NULL;
}

static int add(struct envfile *e, char *key, char *value)
{
	char **k = realloc(e->keys, (e->n + 1) * sizeof(char *));
	char **v;

	if (!k)
		return -ENOMEM;
	e->keys = k;
	v = realloc(e->values, (e->n + 1) * sizeof(char *));
	if (!v)
		return -ENOMEM;
	e->values = v;
	e->keys[e->n] = key;
	e->values[e->n] = value;
	e->n++;
	return 0;
}

/* One value: unquoted words, '...' literally, "..." with \" \\ \$ \` escapes, as
 * os-release(5) allows. No expansion of anything. */
static int parse_value(const char *p, const char *end, char **ret)
{
	_cleanup_free_ char *out = malloc((size_t)(end - p) + 1);
	char *o = out;

	if (!out)
		return -ENOMEM;
	while (p < end) {
		if (*p == '\'') {
			const char *q = memchr(p + 1, '\'', (size_t)(end - p - 1));
			if (!q)
				return -EINVAL;
			memcpy(o, p + 1, (size_t)(q - p - 1));
			o += q - p - 1;
			p = q + 1;
		} else if (*p == '"') {
			for (p++; p < end && *p != '"'; p++) {
				if (*p == '\\' && p + 1 < end && strchr("\"\\$`", p[1]))
					p++;
				*o++ = *p;
			}
			if (p >= end)
				return -EINVAL;
			p++;
		} else if (*p == '\\' && p + 1 < end) {
			*o++ = p[1];
			p += 2;
		} else if (isspace((unsigned char)*p)) {
			/* Trailing blanks or a comment after the value. */
			while (p < end && isspace((unsigned char)*p))
				p++;
			if (p < end && *p != '#')
				return -EINVAL;
			break;
		} else if (strchr("$`;&|<>(){}", *p)) {
			return -EINVAL; /* shell syntax we do not (and must not) interpret */
		} else {
			*o++ = *p++;
		}
	}
	*o = '\0';
	*ret = TAKE_PTR(out);
	return 0;
}

int envfile_parse(const char *text, struct envfile *ret, unsigned *ret_line)
{
	struct envfile e = {};
	unsigned line = 0;
	int r;

	for (const char *p = text; *p;) {
		const char *eol = strchrnul(p, '\n'), *eq, *s = p;
		char *key = NULL, *value = NULL;

		line++;
		while (s < eol && isspace((unsigned char)*s))
			s++;
		if (s == eol || *s == '#') {
			p = *eol ? eol + 1 : eol;
			continue;
		}
		eq = memchr(s, '=', (size_t)(eol - s));
		if (!eq || eq == s)
			goto bad;
		for (const char *k = s; k < eq; k++)
			if (!(isalnum((unsigned char)*k) || *k == '_'))
				goto bad;
		key = strndup(s, (size_t)(eq - s));
		if (!key) {
			r = -ENOMEM;
			goto fail;
		}
		r = parse_value(eq + 1, eol, &value);
		if (r == -EINVAL) {
			free(key);
			goto bad;
		}
		if (r < 0 || (r = add(&e, key, value)) < 0) {
			free(key);
			free(value);
			goto fail;
		}
		p = *eol ? eol + 1 : eol;
	}
	*ret = e;
	return 0;
bad:
	r = -EINVAL;
	if (ret_line)
		*ret_line = line;
fail:
	envfile_done(&e);
	return r;
}

int envfile_load(const char *path, struct envfile *ret, unsigned *ret_line)
{
	_cleanup_free_ char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");
	int r;

	if (!f)
		return -errno;
	buf = malloc(65536);
	if (!buf) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(buf, 1, 65535, f);
	r = ferror(f) ? -EIO : 0;
	fclose(f);
	if (r < 0)
		return r;
	buf[len] = '\0';
	return envfile_parse(buf, ret, ret_line);
}
