/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Minimal TAP producer for the C unit tests: each check is one counted test. */
#pragma once

#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

#define ok(cond, ...)                                                        \
	do {                                                                 \
		int _ok = !!(cond);                                          \
		tap_n++;                                                     \
		if (!_ok)                                                    \
			tap_failed++;                                        \
		printf("%sok %d - ", _ok ? "" : "not ", tap_n);              \
		printf(__VA_ARGS__);                                         \
		printf("\n");                                                \
		if (!_ok)                                                    \
			printf("# failed at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
	} while (0)

static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

static inline int unhex(const char *s, unsigned char *out, size_t max)
{
	size_t n = 0;

	for (; s[0] && s[1] && n < max; s += 2)
		if (sscanf(s, "%2hhx", &out[n++]) != 1)
			return -1;
	return (int)n;
}
