/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect's findings, recorded in order. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "checks.h"
#include "common/log.h"
#include "shared/util.h"

void checks_add(struct checks *l, const char *name, enum check_state state, const char *fmt, ...)
{
	struct check *k;
	va_list ap;

	if (greedy_realloc((void **)&l->v, &l->cap, l->n + 1, sizeof(*k)) < 0) {
		log_error_errno(ENOMEM, "out of memory");
		return;
	}
	k = &l->v[l->n++];
	snprintf(k->name, sizeof(k->name), "%s", name);
	k->state = state;
	va_start(ap, fmt);
	vsnprintf(k->detail, sizeof(k->detail), fmt, ap);
	va_end(ap);
}

void checks_done(struct checks *l)
{
	free(l->v);
	*l = (struct checks){};
}
