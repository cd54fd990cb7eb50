/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Re-encryption of byte ranges of a LUKS payload (rekey --reencrypt): each range read from
 * the old image, decrypted with the old volume key, encrypted with the new one and written at
 * the same offset of the new image. AES-XTS runs at about 3 GB/s a core here, so one thread
 * doing read, decrypt, encrypt and write in turn is bound by the CPU; the ranges are cut into
 * 1 MiB chunks that worker threads take in turn, each with its own cipher contexts (an
 * EVP_CIPHER_CTX is not to be shared) and buffer. pread/pwrite at fixed offsets need no order.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recrypt.h"
#include "common/log.h"
#include "shared/interrupt.h"
#include "shared/util.h"

#define CHUNK ((uint64_t)MiB)
#define MAX_THREADS 8

struct chunk {
	uint64_t off;
	uint32_t len;
};

struct recrypt {
	int in, out;
	uint64_t base;
	struct xts *old, *new;
	struct chunk *chunks;
	size_t n, cap;
	atomic_size_t next;
	atomic_int error;      /* the first error, -errno */
	const char *error_op;  /* what failed, set with it */
	atomic_uint_fast64_t bytes;
};

int recrypt_new(int in, int out, uint64_t base, struct xts *old, struct xts *new,
		struct recrypt **ret)
{
	struct recrypt *r = calloc(1, sizeof(*r));

	if (!r)
		return log_error_errno(ENOMEM, "out of memory");
	*r = (struct recrypt){ .in = in, .out = out, .base = base, .old = old, .new = new };
	*ret = r;
	return 0;
}

void recrypt_free(struct recrypt *r)
{
	free(r->chunks);
	free(r);
}

int recrypt_add(uint64_t off, uint64_t len, void *userdata)
{
	struct recrypt *r = userdata;

	while (len > 0) {
		uint64_t n = len < CHUNK ? len : CHUNK;

		if (greedy_realloc((void **)&r->chunks, &r->cap, r->n + 1, sizeof(*r->chunks)) < 0)
			return log_error_errno(ENOMEM, "out of memory");
		r->chunks[r->n++] = (struct chunk){ off, (uint32_t)n };
		off += n;
		len -= n;
	}
	return 0;
}

static void fail(struct recrypt *r, int error, const char *op)
{
	int expected = 0;

	if (atomic_compare_exchange_strong(&r->error, &expected, error))
		r->error_op = op;
}

struct worker {
	struct recrypt *r;
	struct xts *old, *new;
	pthread_t thread;
	bool started;
};

/* One chunk through buf. Returns 0, or -errno with *op naming what failed. */
static int recrypt_chunk(struct worker *w, const struct chunk *c, unsigned char *buf,
			 const char **op)
{
	struct recrypt *r = w->r;
	off_t at = (off_t)(r->base + c->off);
	int e;

	if (interrupt_pending()) {
		*op = "go on";
		return -EINTR;
	}
	e = pread_all(r->in, buf, c->len, at);
	if (e < 0) {
		*op = "read the image";
		return e;
	}
	if (xts_decrypt(w->old, buf, c->len, c->off / XTS_SECTOR_SIZE) < 0 ||
	    xts_encrypt(w->new, buf, c->len, c->off / XTS_SECTOR_SIZE) < 0) {
		*op = "re-encrypt";
		return -EIO;
	}
	e = pwrite_all(r->out, buf, c->len, at);
	if (e < 0) {
		*op = "write the new image";
		return e;
	}
	atomic_fetch_add(&r->bytes, c->len);
	return 0;
}

static void *work(void *userdata)
{
	struct worker *w = userdata;
	struct recrypt *r = w->r;
	unsigned char *buf = malloc(CHUNK);
	const char *op = "allocate a buffer";
	int e = buf ? 0 : -ENOMEM;
	size_t i;

	while (e == 0 && atomic_load(&r->error) == 0 && (i = atomic_fetch_add(&r->next, 1)) < r->n)
		e = recrypt_chunk(w, &r->chunks[i], buf, &op);
	if (e < 0)
		fail(r, e, op);
	free(buf);
	return NULL;
}

int recrypt_run(struct recrypt *r, uint64_t *ret_bytes)
{
	struct worker w[MAX_THREADS] = {};
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	size_t n = cpus < 1 ? 1 : cpus > MAX_THREADS ? MAX_THREADS : (size_t)cpus;
	int e;

	if (n > r->n)
		n = r->n ?: 1;
	/* The calling thread is worker 0, with the caller's contexts; the others get copies.
	 * One that cannot start leaves its share to the others. */
	w[0] = (struct worker){ .r = r, .old = r->old, .new = r->new };
	for (size_t i = 1; i < n; i++) {
		w[i].r = r;
		if (xts_dup(r->old, &w[i].old) < 0 || xts_dup(r->new, &w[i].new) < 0)
			break;
		e = pthread_create(&w[i].thread, NULL, work, &w[i]);
		if (e != 0) {
			log_debug("cannot start a re-encryption thread: %s", strerror(e));
			break;
		}
		w[i].started = true;
	}
	work(&w[0]);
	for (size_t i = 1; i < n; i++) {
		if (w[i].started)
			pthread_join(w[i].thread, NULL);
		if (w[i].old)
			xts_free(w[i].old);
		if (w[i].new)
			xts_free(w[i].new);
	}
	*ret_bytes = atomic_load(&r->bytes);
	e = atomic_load(&r->error);
	if (e == -EINTR)
		return log_error_errno(e, "interrupted");
	if (e < 0)
		return log_error_errno(e, "cannot %s: %m", r->error_op);
	return 0;
}
