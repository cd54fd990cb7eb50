/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Cleanup attributes for every handle type, in the style of systemd's macro.h. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                  \
	static inline void func##p(type *p)                      \
	{                                                        \
		if (*p)                                          \
			func(*p);                                \
	}

static inline void freep(void *p)
{
	free(*(void **)p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

/* Take ownership of a pointer or fd out of a cleanup variable. */
#define TAKE_PTR(p)                              \
	({                                       \
		__typeof__(p) _p = (p);          \
		(p) = NULL;                      \
		_p;                              \
	})
#define TAKE_FD(fd)                              \
	({                                       \
		int _fd = (fd);                  \
		(fd) = -1;                       \
		_fd;                             \
	})

/* The key buffer, struct secret, and _cleanup_secret_ are in secretbuf.h. */
#include "secretbuf.h"

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define streq(a, b) (strcmp((a), (b)) == 0)
