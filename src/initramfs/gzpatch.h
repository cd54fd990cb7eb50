/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A gzip member changed in a few places without compressing it again: only the deflate
 * blocks around each change are compressed anew, all others are copied bit for bit. */
#pragma once

#include <stddef.h>
#include <stdint.h>

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

/*
 * The same change with bounded memory, for a member inside a file too large to hold (an
 * initramfs of hundreds of MiB): the member is read and decompressed in pieces, twice (a
 * scan that finds the block boundaries and hands each piece of the data to a visitor, then
 * a pass up to the last change that compresses the regions around the changes again), and
 * written back from the first change on. Memory: a few pieces of 256 KiB, the regions, and
 * one entry per deflate block.
 */

/* The file that holds the member: reads and writes of whole ranges (0 or -errno); a write
 * past size makes the file longer; truncate (may be NULL where nothing needs it) shortens it. */
struct gz_file {
	int (*pread)(void *userdata, uint64_t off, void *buf, size_t len);
	int (*pwrite)(void *userdata, uint64_t off, const void *buf, size_t len);
	void *userdata;
	uint64_t size;
	int (*truncate)(void *userdata, uint64_t size);
};

/* 0 when f holds only zeros in [off, off + len) (or up to its end, if that comes first),
 * -EOPNOTSUPP when not, or the reader's -errno. buf: 256 KiB to read into. */
int gz_file_zeros(const struct gz_file *f, uint64_t off, uint64_t len, unsigned char *buf);

/* Each piece of the uncompressed data, in order, with its offset in it. 0 or -errno. */
typedef int (*gz_visit_fn)(void *userdata, uint64_t off, const unsigned char *data, size_t len);

struct gz_stream;

/*
 * Decompress the gzip member at off in f, piece by piece into visit, checking its CRC and
 * length. *ret: what the changes below need. Returns 0, -EBADMSG (not one valid member),
 * -ENOMEM, or what the reader or visit returned. Does not log.
 */
int gz_stream_scan(const struct gz_file *f, uint64_t off, gz_visit_fn visit, void *userdata,
		   struct gz_stream **ret);
/* The member's length in f, its trailer included. */
uint64_t gz_stream_member_len(const struct gz_stream *s);
void gz_stream_free(struct gz_stream *s);

/* The uncompressed bytes [start, start + len) become data (as long). */
struct gz_change {
	uint64_t start;
	const void *data;
	size_t len;
};

/*
 * Work out the member with changes (ascending, without overlap) made: the regions around them
 * compressed again (as gzip_patch() does), the new CRC, the new length. Nothing is written.
 * The member may get a few bytes shorter (zeros then fill its old end: the kernel skips zeros
 * between archives) or longer, which needs as many zeros after it in f, or nothing but zeros
 * up to the end of f (it then grows): -EOPNOTSUPP otherwise. *ret_recompressed: bytes of data
 * compressed again. Does not log.
 */
int gz_stream_plan(struct gz_stream *s, const struct gz_file *f, const struct gz_change *changes,
		   size_t n_changes, size_t *ret_recompressed);

/* Write the planned member over the old one in f, from the first changed byte on. */
int gz_stream_apply(struct gz_stream *s, const struct gz_file *f);
