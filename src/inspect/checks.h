/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect's findings: named checks (ok, warning, fail) with a one-line detail, recorded in the
 * order they are made, and the files the offline checks read (for --deep to compare). Both
 * inspect.c and deep.c record here. */
#pragma once

#include <stddef.h>
#include <stdint.h>

enum check_state { CHECK_OK, CHECK_WARN, CHECK_FAIL };

/* One finding. */
struct check {
	char name[48];
	enum check_state state;
	char detail[512];
};

/* The findings so far. */
struct checks {
	struct check *v;
	size_t n, cap;
};

/* A file of the root filesystem as the offline checks saw it, for --deep to compare. */
struct inspect_file {
	char path[128];
	uint32_t mode;
	char sha256[65];
};

/* Record a finding (printf-style detail, cut to fit). Out of memory is logged; the finding
 * is lost. */
void checks_add(struct checks *l, const char *name, enum check_state state, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void checks_done(struct checks *l);
