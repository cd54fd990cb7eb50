/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Diagnostics and progress on stderr; an error is logged once, where it is understood. */
#pragma once

#include <errno.h>
#include <stdlib.h>

enum log_level {
	LOG_LEVEL_ERR,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_NOTICE, /* progress lines: the default */
	LOG_LEVEL_INFO,   /* -v */
	LOG_LEVEL_DEBUG,  /* --debug: also child process output and library messages */
};

void log_set_max_level(enum log_level level);
enum log_level log_get_max_level(void);

/* Logs (if level is enabled) and returns -abs(error), or 0 for error == 0.
 * "%m" in fmt expands to strerror(error). */
int log_internal(enum log_level level, int error, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error_errno(e, ...) log_internal(LOG_LEVEL_ERR, (e), __VA_ARGS__)
#define log_warning_errno(e, ...) log_internal(LOG_LEVEL_WARNING, (e), __VA_ARGS__)
#define log_error(...) log_internal(LOG_LEVEL_ERR, 0, __VA_ARGS__)
#define log_warning(...) log_internal(LOG_LEVEL_WARNING, 0, __VA_ARGS__)
#define log_notice(...) log_internal(LOG_LEVEL_NOTICE, 0, __VA_ARGS__)
#define log_info(...) log_internal(LOG_LEVEL_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_LEVEL_DEBUG, 0, __VA_ARGS__)

/* Log a child's captured output at debug level, one prefixed line each. */
void log_child_output(const char *prog, const char *output);

/* A library that reports failure without errno: map to an errno for the caller. */
static inline int errno_or(int fallback)
{
	return errno > 0 ? errno : fallback;
}
