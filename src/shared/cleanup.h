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

/* A secret buffer: wiped before it is freed. */
struct secret {
	unsigned char *data;
	size_t size;
};

void secret_free(struct secret *s);
int secret_alloc(struct secret *s, size_t size);
/* A copy of src, wiped when freed as any secret. */
int secret_copy(struct secret *dst, const struct secret *src);
static inline void secret_freep(struct secret *s)
{
	secret_free(s);
}
#define _cleanup_secret_ _cleanup_(secret_freep)

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define streq(a, b) (strcmp((a), (b)) == 0)
