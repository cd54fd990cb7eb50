/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A gzip member changed in a few places without compressing it again: only the deflate
 * blocks around each change are compressed anew, all others are copied bit for bit. */
#pragma once

#include <stddef.h>

/* A byte range of the uncompressed data: [start, end). */
struct gz_range {
	size_t start, end;
};

/*
 * Decompress the gzip member at the start of in (libdeflate: whole buffer, CRC checked).
 * *ret_member_len is the member's length with its trailer; what follows it is the caller's.
 * Returns 0, -EBADMSG for data that is not one valid gzip member, -EFBIG past max_out bytes,
 * -ENOMEM. Does not log: the caller knows what the data is.
 */
int gzip_inflate(const void *in, size_t in_len, size_t max_out, void **ret, size_t *ret_len,
		 size_t *ret_member_len);

/*
 * The gzip member member (member_len bytes, as gzip_inflate measured it) once its
 * uncompressed data has become data (same length): changed lists, in ascending order and
 * without overlap, the ranges where data differs from what the member holds. The header is
 * kept, the trailer's CRC is computed anew. *ret_recompressed (if not NULL): how many bytes
 * of data were compressed again. Returns 0, -EBADMSG (a corrupt member), -ENOMEM. Does not log.
 */
int gzip_patch(const void *member, size_t member_len, const void *data, size_t data_len,
	       const struct gz_range *changed, size_t n_changed, void **ret, size_t *ret_len,
	       size_t *ret_recompressed);
