/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What gzpatch.c (a member in memory) and gzstream.c (a member in a file, in pieces) share:
 * deflate's block boundaries and the region plan, the bit writer, the recompressor. Not for
 * use outside src/initramfs/. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "gzpatch.h"

#define WINDOW 32768u   /* how far back a deflate block may refer */
#define GZIP_TRAILER 8  /* CRC-32 and ISIZE */

struct boundary {
	uint64_t bit; /* where the block starts in the member, in bits */
	size_t out;   /* and in the uncompressed data */
};

struct boundaries {
	struct boundary *b;
	size_t n, cap;
	uint64_t end_bit; /* the end of the deflate stream (byte aligned) */
};

/* Defined in gzpatch.c, each described there. */
int gz_header_len(const unsigned char *p, size_t len, size_t *ret);
int gz_boundary_push(struct boundaries *bs, uint64_t bit, size_t out);
bool gz_at_boundary(const z_stream *z, size_t hdr, uint64_t *ret_bit);
int gz_plan(const struct boundaries *bs, const struct gz_range *changed, size_t n_changed,
	    size_t (*reg)[2], size_t *ret_n);
int gz_recompress_level(unsigned char *out, uint64_t *obit, size_t cap, const unsigned char *data,
			size_t from, size_t to, bool final, int level);
void gz_put_bits(unsigned char *out, uint64_t *obit, unsigned value, unsigned n);
