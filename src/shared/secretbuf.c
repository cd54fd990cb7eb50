/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key material in memory: a buffer wiped before it is freed. Never logs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "secretbuf.h"

void secret_free(struct secret *s)
{
	if (!s->data)
		return;
	OPENSSL_cleanse(s->data, s->size);
	free(s->data);
	s->data = NULL;
	s->size = 0;
}

int secret_alloc(struct secret *s, size_t size)
{
	s->data = calloc(1, size ? size : 1);
	if (!s->data)
		return -ENOMEM;
	s->size = size;
	return 0;
}

int secret_copy(struct secret *dst, const struct secret *src)
{
	int r = secret_alloc(dst, src->size);

	if (r == 0 && src->size)
		memcpy(dst->data, src->data, src->size);
	return r;
}

int secret_read_fd(int fd, size_t max, struct secret *ret)
{
	_cleanup_secret_ struct secret s = {};
	size_t len = 0;
	int r;

	/* One byte more than max: a file of max bytes and one that is longer are told apart. */
	r = secret_alloc(&s, max + 1);
	if (r < 0)
		return r;
	for (;;) {
		ssize_t n = read(fd, s.data + len, s.size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max)
			return -EFBIG;
	}
	/* Only the first len bytes were written: the wipe covers them. */
	s.size = len;
	*ret = s;
	s.data = NULL;
	return 0;
}
