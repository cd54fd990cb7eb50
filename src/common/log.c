/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Diagnostics and progress on stderr; an error is logged once, where it is understood. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static enum log_level max_level = LOG_LEVEL_NOTICE;

void log_set_max_level(enum log_level level)
{
	max_level = level;
}

enum log_level log_get_max_level(void)
{
	return max_level;
}

int log_internal(enum log_level level, int error, const char *fmt, ...)
{
	static const char *const prefix[] = {
		[LOG_LEVEL_ERR] = "error: ",
		[LOG_LEVEL_WARNING] = "warning: ",
		[LOG_LEVEL_NOTICE] = "",
		[LOG_LEVEL_INFO] = "",
		[LOG_LEVEL_DEBUG] = "debug: ",
	};
	int e = error < 0 ? -error : error;
	va_list ap;

	if (level <= max_level) {
		int saved = errno;

		errno = e; /* so that %m prints the error we were given */
		va_start(ap, fmt);
		fprintf(stderr, "cvm-image: %s", prefix[level]);
		vfprintf(stderr, fmt, ap);
		fputc('\n', stderr);
		va_end(ap);
		errno = saved;
	}
	return -e;
}

void log_child_output(const char *prog, const char *output)
{
	const char *p = output;

	if (max_level < LOG_LEVEL_DEBUG || !output)
		return;
	while (*p) {
		const char *nl = strchr(p, '\n');
		int len = nl ? (int)(nl - p) : (int)strlen(p);

		fprintf(stderr, "cvm-image: debug: %s: %.*s\n", prog, len, p);
		p += len + (nl ? 1 : 0);
	}
}
