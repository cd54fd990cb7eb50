/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key material in memory (a key, a passphrase, a secret table): a buffer wiped before it is
 * freed. Never logs. */
#pragma once

#include <stddef.h>

struct secret {
	unsigned char *data;
	size_t size;
};

/* Wipe and free; safe on a zeroed or already freed secret. */
void secret_free(struct secret *s);
/* size zeroed bytes (at least one allocated). Returns 0 or -ENOMEM. */
int secret_alloc(struct secret *s, size_t size);
/* A copy of src, wiped when freed as any secret. */
int secret_copy(struct secret *dst, const struct secret *src);
/* All of fd, up to max bytes, into a new secret: 0, -errno of read(2), or -EFBIG when fd holds
 * more than max bytes (what was read is wiped). */
int secret_read_fd(int fd, size_t max, struct secret *ret);

static inline void secret_freep(struct secret *s)
{
	secret_free(s);
}
#define _cleanup_secret_ __attribute__((cleanup(secret_freep)))
