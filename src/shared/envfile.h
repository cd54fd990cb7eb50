/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* os-release(5) syntax (KEY=value, shell-like quoting) parsed, never sourced. Never logs. */
#pragma once

#include <stddef.h>

struct envfile {
	char **keys;
	char **values;
	size_t n;
};

/* Parse text. Returns 0, -ENOMEM, or -EINVAL with *ret_line set to the bad line (1-based). */
int envfile_parse(const char *text, struct envfile *ret, unsigned *ret_line);
/* Read and parse a file; -errno if it cannot be read. */
int envfile_load(const char *path, struct envfile *ret, unsigned *ret_line);
/* The last value of key, or NULL. */
const char *envfile_get(const struct envfile *e, const char *key);
void envfile_done(struct envfile *e);
