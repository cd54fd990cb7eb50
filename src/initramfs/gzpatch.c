/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A gzip member changed in a few places without compressing it again.
 *
 * rekey replaces a 44-byte key inside an initramfs of 100 MiB or more. Compressing all of it
 * again costs seconds; but a deflate stream is a sequence of blocks, and a block refers back
 * at most 32 KiB into what came before it. So only the blocks from the one holding a change
 * to the first block boundary at least 32 KiB after it need compressing again: every later
 * block decodes the same, because everything it can refer to is unchanged. The new blocks end
 * with a sync flush (byte aligned, not final), the old blocks that follow are copied shifted
 * to that alignment, and a new region starting in the middle of a byte gets the bits before it
 * through deflatePrime(). The same approach as zlib's examples/gzappend.c and zran.c.
 *
 * libdeflate decompresses the whole member (three times as fast as zlib here, and CRC
 * checked); zlib's inflate(Z_BLOCK) finds the block boundaries, which libdeflate does not
 * expose, and zlib's deflate makes the new blocks.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libdeflate.h>
#include <zlib.h>

#include "gzpatch.h"
#include "gzpatch-internal.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/util.h"



/* Length of the gzip header at p (RFC 1952), or -EBADMSG. */
int gz_header_len(const unsigned char *p, size_t len, size_t *ret)
{
	size_t off = 10;
	const unsigned char *z;

	if (len < 10 + GZIP_TRAILER || p[0] != 0x1f || p[1] != 0x8b || p[2] != 8 || (p[3] & 0xe0))
		return -EBADMSG;
	if (p[3] & 0x04) { /* FEXTRA */
		if (off + 2 > len)
			return -EBADMSG;
		off += 2 + (size_t)(p[off] | p[off + 1] << 8);
	}
	for (unsigned flag = 0x08; flag <= 0x10; flag <<= 1) { /* FNAME, FCOMMENT */
		if (!(p[3] & flag))
			continue;
		if (off >= len || !(z = memchr(p + off, 0, len - off)))
			return -EBADMSG;
		off = (size_t)(z - p) + 1;
	}
	if (p[3] & 0x02) /* FHCRC */
		off += 2;
	if (off + GZIP_TRAILER > len)
		return -EBADMSG;
	*ret = off;
	return 0;
}

int gzip_inflate(const void *in, size_t in_len, size_t max_out, void **ret, size_t *ret_len,
		 size_t *ret_member_len)
{
	_cleanup_(libdeflate_free_decompressorp) struct libdeflate_decompressor *d = NULL;
	const unsigned char *p = in;
	size_t cap, got = 0, used = 0, hdr;
	void *out = NULL;

	if (gz_header_len(p, in_len, &hdr) < 0)
		return -EBADMSG;
	d = libdeflate_alloc_decompressor();
	if (!d)
		return -ENOMEM;
	/* The trailer's ISIZE is right unless something follows the member: try it first. */
	cap = (size_t)(p[in_len - 4] | p[in_len - 3] << 8 | p[in_len - 2] << 16 |
		       (uint32_t)p[in_len - 1] << 24);
	if (cap < in_len)
		cap = in_len * 4;
	for (;;) {
		enum libdeflate_result res;
		void *o;

		if (cap > max_out)
			cap = max_out;
		o = realloc(out, cap ?: 1);
		if (!o) {
			free(out);
			return -ENOMEM;
		}
		out = o;
		res = libdeflate_gzip_decompress_ex(d, in, in_len, out, cap, &used, &got);
		if (res == LIBDEFLATE_SUCCESS)
			break;
		if (res != LIBDEFLATE_INSUFFICIENT_SPACE || cap == max_out) {
			free(out);
			return res == LIBDEFLATE_INSUFFICIENT_SPACE ? -EFBIG : -EBADMSG;
		}
		cap = cap > max_out / 2 ? max_out : cap * 2;
	}
	*ret = out;
	*ret_len = got;
	*ret_member_len = used;
	return 0;
}


int gz_boundary_push(struct boundaries *bs, uint64_t bit, size_t out)
{
	if (greedy_realloc((void **)&bs->b, &bs->cap, bs->n + 1, sizeof(*bs->b)) < 0)
		return -ENOMEM;
	bs->b[bs->n++] = (struct boundary){ bit, out };
	return 0;
}

/* Whether inflate(Z_BLOCK) stopped at a block boundary (but not after the last block), and
 * *ret_bit, where in the member the next block's header starts: data_type & 7 bits before the
 * end of the input consumed. */
bool gz_at_boundary(const z_stream *z, size_t hdr, uint64_t *ret_bit)
{
	if (!(z->data_type & 128) || (z->data_type & 64))
		return false;
	*ret_bit = (uint64_t)(hdr + z->total_in) * 8 - (unsigned)(z->data_type & 7);
	return true;
}

/*
 * Block boundaries of the deflate stream at member + hdr, up to the first one at or past
 * need (in uncompressed bytes) that a region may end at (see region_end()); the stream's end
 * is the last entry (bit == end_bit) when the walk reaches it.
 */
static int find_boundaries(const unsigned char *member, size_t member_len, size_t hdr,
			   size_t data_len, size_t need, struct boundaries *bs)
{
	_cleanup_free_ unsigned char *scratch = malloc(256 * 1024);
	z_stream z = {};
	uint64_t bit;
	int r, zr;

	if (!scratch || inflateInit2(&z, -15) != Z_OK)
		return -ENOMEM;
	z.next_in = (unsigned char *)member + hdr;
	z.avail_in = (uInt)(member_len - hdr - GZIP_TRAILER);
	bs->end_bit = (uint64_t)(member_len - GZIP_TRAILER) * 8;
	/* Raw inflate does not stop before the first block. */
	r = gz_boundary_push(bs, (uint64_t)hdr * 8, 0);
	while (r == 0) {
		z.next_out = scratch;
		z.avail_out = 256 * 1024;
		zr = inflate(&z, Z_BLOCK);
		if (zr == Z_STREAM_END) {
			r = z.total_out == data_len ? gz_boundary_push(bs, bs->end_bit, data_len) : -EBADMSG;
			break;
		}
		if (zr != Z_OK) {
			r = -EBADMSG;
			break;
		}
		if (gz_at_boundary(&z, hdr, &bit)) {
			r = gz_boundary_push(bs, bit, z.total_out);
			if (r == 0 && z.total_out >= need && bit % 2 == 0)
				break;
		}
	}
	inflateEnd(&z);
	return r;
}

/*
 * Where a region may end: the stream's end, or a boundary an even number of bits into its
 * byte. New blocks end byte aligned (sync flush); empty fixed-Huffman blocks, 10 bits each,
 * then bring the output to the old block's bit position modulo 8, so that the old blocks are
 * copied byte for byte and keep their own padding at the end of the stream.
 */
static bool region_end(const struct boundaries *bs, size_t i)
{
	return bs->b[i].bit == bs->end_bit || bs->b[i].bit % 2 == 0;
}

/* Append n bits (LSB first, as deflate packs them) at bit *obit of the zeroed tail of out. */
void gz_put_bits(unsigned char *out, uint64_t *obit, unsigned value, unsigned n)
{
	for (unsigned i = 0; i < n; i++, (*obit)++)
		if (value >> i & 1)
			out[*obit / 8] |= (unsigned char)(1u << (*obit % 8));
}

/*
 * Append src's bits [sbit, sbit + n) at bit *obit of out, which is sbit modulo 8: whole bytes,
 * the first one merged with the bits already there, the last one's unused bits zero.
 */
static void copy_bits(unsigned char *out, uint64_t *obit, const unsigned char *src, uint64_t sbit,
		      uint64_t n)
{
	unsigned char *d = out + *obit / 8, first = *d;
	const unsigned char *s = src + sbit / 8;
	unsigned lo = (unsigned)(sbit % 8), hi = (unsigned)((sbit + n) % 8);
	size_t bytes;

	if (n == 0)
		return;
	bytes = (size_t)((sbit + n - 1) / 8 - sbit / 8 + 1);
	memcpy(d, s, bytes);
	if (lo)
		d[0] = (unsigned char)((first & ((1u << lo) - 1)) | (s[0] & ~((1u << lo) - 1)));
	if (hi)
		d[bytes - 1] &= (unsigned char)((1u << hi) - 1);
	*obit += n;
}

/*
 * Compress data[from, to) as deflate blocks at bit *obit of out (after the bits of the partial
 * byte there); final: the stream's last block, else a sync flush, which ends byte aligned.
 */
int gz_recompress_level(unsigned char *out, uint64_t *obit, size_t cap,
			    const unsigned char *data, size_t from, size_t to, bool final, int level)
{
	size_t dict = from < WINDOW ? from : WINDOW, at = (size_t)(*obit / 8);
	unsigned pending = (unsigned)(*obit % 8);
	z_stream z = {};
	int zr;

	if (deflateInit2(&z, level, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	if (dict > 0 && deflateSetDictionary(&z, data + from - dict, (uInt)dict) != Z_OK)
		goto fail;
	/* The byte shared with the bits before goes out again from zlib, bits and all. */
	if (pending && deflatePrime(&z, (int)pending, out[at] & ((1 << pending) - 1)) != Z_OK)
		goto fail;
	z.next_in = (unsigned char *)data + from;
	z.avail_in = (uInt)(to - from);
	z.next_out = out + at;
	z.avail_out = (uInt)(cap - at);
	zr = deflate(&z, final ? Z_FINISH : Z_SYNC_FLUSH);
	if (zr != (final ? Z_STREAM_END : Z_OK) || z.avail_in != 0 || z.avail_out == 0)
		goto fail;
	*obit = (uint64_t)(at + z.total_out) * 8;
	deflateEnd(&z);
	return 0;
fail:
	deflateEnd(&z);
	return -EBADMSG;
}

/* Small regions (the usual case) as well as zlib's default does; a large one fast. */
static int recompress(unsigned char *out, uint64_t *obit, size_t cap, const unsigned char *data,
		      size_t from, size_t to, bool final)
{
	return gz_recompress_level(out, obit, cap, data, from, to, final,
				to - from <= (1u << 20) ? Z_DEFAULT_COMPRESSION : 1);
}

/*
 * The regions to compress again, as pairs of boundary indexes: from the last boundary at or
 * before a change to the first one a window past its end where a region can end, taking in
 * the changes that start before that. find_boundaries() went on until there is one.
 */
int gz_plan(const struct boundaries *bs, const struct gz_range *changed, size_t n_changed,
		size_t (*reg)[2], size_t *ret_n)
{
	size_t n = 0, s = 0, e, target;

	for (size_t i = 0; i < n_changed;) {
		while (s + 1 < bs->n && bs->b[s + 1].out <= changed[i].start)
			s++;
		target = changed[i].end + WINDOW;
		for (i++;; i++) {
			for (e = s + 1; e < bs->n; e++)
				if (bs->b[e].bit == bs->end_bit ||
				    (bs->b[e].out >= target && region_end(bs, e)))
					break;
			if (e == bs->n)
				return -EBADMSG;
			if (i == n_changed || changed[i].start >= bs->b[e].out)
				break;
			if (changed[i].end + WINDOW > target)
				target = changed[i].end + WINDOW;
		}
		reg[n][0] = s;
		reg[n++][1] = e;
	}
	*ret_n = n;
	return 0;
}

int gzip_patch(const void *member, size_t member_len, const void *data, size_t data_len,
	       const struct gz_range *changed, size_t n_changed, void **ret, size_t *ret_len,
	       size_t *ret_recompressed)
{
	const unsigned char *m = member, *p = data;
	struct boundaries bs = {};
	_cleanup_free_ size_t (*reg)[2] = NULL;
	_cleanup_free_ unsigned char *out = NULL;
	size_t hdr, cap, i, n_reg = 0, olen, recompressed = 0;
	uint64_t src_bit, obit;
	uint32_t crc;
	int r;

	if (n_changed == 0 || changed[n_changed - 1].end > data_len)
		return -EINVAL;
	r = gz_header_len(m, member_len, &hdr);
	if (r < 0)
		return r;
	reg = calloc(n_changed, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	r = find_boundaries(m, member_len, hdr, data_len, changed[n_changed - 1].end + WINDOW, &bs);
	if (r == 0)
		r = gz_plan(&bs, changed, n_changed, reg, &n_reg);
	if (r < 0)
		goto out;

	/* The old blocks, and each new region at most deflateBound() of its data. */
	cap = member_len + 64;
	for (i = 0; i < n_reg; i++)
		cap += deflateBound(NULL, bs.b[reg[i][1]].out - bs.b[reg[i][0]].out) + 16;
	out = calloc(1, cap);
	if (!out) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(out, m, hdr);
	obit = src_bit = (uint64_t)hdr * 8;
	for (i = 0; i < n_reg; i++) {
		const struct boundary *s = &bs.b[reg[i][0]], *e = &bs.b[reg[i][1]];

		copy_bits(out, &obit, m, src_bit, s->bit - src_bit);
		r = recompress(out, &obit, cap, p, s->out, e->out, e->bit == bs.end_bit);
		if (r < 0)
			goto out;
		recompressed += e->out - s->out;
		/* Empty fixed-Huffman blocks (BFINAL 0, BTYPE 01, end-of-block 0000000) up to
		 * the old block's bit position modulo 8 (even: see region_end()). */
		while (obit % 8 != e->bit % 8) {
			gz_put_bits(out, &obit, 0x2, 3);
			gz_put_bits(out, &obit, 0, 7);
		}
		src_bit = e->bit;
	}
	copy_bits(out, &obit, m, src_bit, bs.end_bit - src_bit);

	olen = (size_t)(obit / 8);
	crc = libdeflate_crc32(0, p, data_len);
	for (i = 0; i < 4; i++)
		out[olen + i] = (unsigned char)(crc >> (8 * i));
	for (i = 0; i < 4; i++)
		out[olen + 4 + i] = (unsigned char)((uint64_t)data_len >> (8 * i));
	olen += GZIP_TRAILER;
	*ret = TAKE_PTR(out);
	*ret_len = olen;
	if (ret_recompressed)
		*ret_recompressed = recompressed;
	r = 0;
out:
	free(bs.b);
	return r;
}
