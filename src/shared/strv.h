/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NULL-terminated arrays of allocated strings (argv, environments, name lists). Never logs. */
#pragma once

#include <stddef.h>

/* Free each string and the array; NULL is fine. */
void strv_free(char **v);
/* Append s (taken: freed on failure; NULL is -ENOMEM, so strv_push(&v, &n, strdup(x)) needs no
 * check of its own) to *v of *n strings, keeping it NULL-terminated. Returns 0 or -ENOMEM. */
int strv_push(char ***v, size_t *n, char *s);

static inline void strv_freep(char ***v)
{
	strv_free(*v);
}
#define _cleanup_strv_free_ __attribute__((cleanup(strv_freep)))
