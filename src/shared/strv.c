/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* NULL-terminated arrays of allocated strings. Never logs. */
#include <errno.h>
#include <stdlib.h>

#include "strv.h"

void strv_free(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

int strv_push(char ***v, size_t *n, char *s)
{
	char **nv;

	if (!s)
		return -ENOMEM;
	nv = realloc(*v, (*n + 2) * sizeof(char *));
	if (!nv) {
		free(s);
		return -ENOMEM;
	}
	*v = nv;
	(*v)[(*n)++] = s;
	(*v)[*n] = NULL;
	return 0;
}
