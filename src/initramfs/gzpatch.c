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
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/util.h"

#define WINDOW 32768u
#define GZIP_TRAILER 8


/* Length of the gzip header at p (RFC 1952), or -EBADMSG. */
static int gzip_header_len(const unsigned char *p, size_t len, size_t *ret)
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

	if (gzip_header_len(p, in_len, &hdr) < 0)
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

struct boundary {
	uint64_t bit; /* where the block starts in the member, in bits */
	size_t out;   /* and in the uncompressed data */
};

struct boundaries {
	struct boundary *b;
	size_t n, cap;
	uint64_t end_bit; /* the end of the deflate stream (byte aligned) */
};

static int push(struct boundaries *bs, uint64_t bit, size_t out)
{
	if (greedy_realloc((void **)&bs->b, &bs->cap, bs->n + 1, sizeof(*bs->b)) < 0)
		return -ENOMEM;
	bs->b[bs->n++] = (struct boundary){ bit, out };
	return 0;
}

/* Whether inflate(Z_BLOCK) stopped at a block boundary (but not after the last block), and
 * *ret_bit, where in the member the next block's header starts: data_type & 7 bits before the
 * end of the input consumed. */
static bool at_boundary(const z_stream *z, size_t hdr, uint64_t *ret_bit)
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
	r = push(bs, (uint64_t)hdr * 8, 0);
	while (r == 0) {
		z.next_out = scratch;
		z.avail_out = 256 * 1024;
		zr = inflate(&z, Z_BLOCK);
		if (zr == Z_STREAM_END) {
			r = z.total_out == data_len ? push(bs, bs->end_bit, data_len) : -EBADMSG;
			break;
		}
		if (zr != Z_OK) {
			r = -EBADMSG;
			break;
		}
		if (at_boundary(&z, hdr, &bit)) {
			r = push(bs, bit, z.total_out);
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
static void put_bits(unsigned char *out, uint64_t *obit, unsigned value, unsigned n)
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
static int recompress_level(unsigned char *out, uint64_t *obit, size_t cap,
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
	return recompress_level(out, obit, cap, data, from, to, final,
				to - from <= (1u << 20) ? Z_DEFAULT_COMPRESSION : 1);
}

/*
 * The regions to compress again, as pairs of boundary indexes: from the last boundary at or
 * before a change to the first one a window past its end where a region can end, taking in
 * the changes that start before that. find_boundaries() went on until there is one.
 */
static int plan(const struct boundaries *bs, const struct gz_range *changed, size_t n_changed,
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
	r = gzip_header_len(m, member_len, &hdr);
	if (r < 0)
		return r;
	reg = calloc(n_changed, sizeof(*reg));
	if (!reg)
		return -ENOMEM;
	r = find_boundaries(m, member_len, hdr, data_len, changed[n_changed - 1].end + WINDOW, &bs);
	if (r == 0)
		r = plan(&bs, changed, n_changed, reg, &n_reg);
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
			put_bits(out, &obit, 0x2, 3);
			put_bits(out, &obit, 0, 7);
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

/* ---- The same with bounded memory, on a member inside a file (gzpatch.h) ---- */

#define PIECE (256u * 1024u)

/* A compressed region, ready to go in place of the member's bits [from_bit, to_bit). */
struct gz_region {
	uint64_t from_bit, to_bit;
	unsigned char *bytes; /* the new bits, from from_bit's byte on; the last byte partial
			       * (to_bit % 8 bits) unless final */
	uint64_t nbits;       /* counted from from_bit's byte */
	bool final;
};

struct gz_stream {
	uint64_t off;         /* where the member starts in the file */
	size_t hdr;           /* its header's length */
	uint64_t len;         /* its length, trailer included */
	uint64_t data_len;    /* uncompressed */
	uint32_t crc, new_crc;
	struct boundaries bs; /* every block boundary, and the end */
	struct gz_region *reg;
	size_t n_reg;
	int64_t growth;       /* the new member's length minus the old one's */
};

void gz_stream_free(struct gz_stream *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n_reg; i++)
		free(s->reg[i].bytes);
	free(s->reg);
	free(s->bs.b);
	free(s);
}

uint64_t gz_stream_member_len(const struct gz_stream *s)
{
	return s->len;
}

/* Sequential reads of f from pos, a piece at a time. */
struct reader {
	const struct gz_file *f;
	uint64_t pos, end;
	unsigned char *buf;
};

static int reader_fill(struct reader *rd, z_stream *z)
{
	size_t n = rd->end - rd->pos > PIECE ? PIECE : (size_t)(rd->end - rd->pos);
	int r;

	if (n == 0)
		return -EBADMSG; /* the member goes on past the end of the file */
	r = rd->f->pread(rd->f->userdata, rd->pos, rd->buf, n);
	if (r < 0)
		return r;
	rd->pos += n;
	z->next_in = rd->buf;
	z->avail_in = (uInt)n;
	return 0;
}

/* The gzip header at off in f: its length. */
static int stream_header(const struct gz_file *f, uint64_t off, size_t *ret)
{
	unsigned char h[4096];
	size_t n = f->size - off > sizeof(h) ? sizeof(h) : (size_t)(f->size - off);
	int r;

	if (off >= f->size)
		return -EBADMSG;
	r = f->pread(f->userdata, off, h, n);
	if (r < 0)
		return r;
	/* Names longer than this are no initramfs tool's. */
	return gzip_header_len(h, n, ret);
}

int gz_stream_scan(const struct gz_file *f, uint64_t off, gz_visit_fn visit, void *userdata,
		   struct gz_stream **ret)
{
	_cleanup_free_ unsigned char *in = malloc(PIECE), *out = malloc(PIECE);
	struct gz_stream *s = calloc(1, sizeof(*s));
	struct reader rd = { .f = f, .end = f->size, .buf = in };
	unsigned char trailer[GZIP_TRAILER];
	z_stream z = {};
	uint32_t crc = 0;
	uint64_t bit;
	int r, zr;

	if (!in || !out || !s) {
		free(s);
		return -ENOMEM;
	}
	s->off = off;
	r = stream_header(f, off, &s->hdr);
	if (r < 0)
		goto fail;
	if (inflateInit2(&z, -15) != Z_OK) {
		r = -ENOMEM;
		goto fail;
	}
	rd.pos = off + s->hdr;
	r = push(&s->bs, (uint64_t)s->hdr * 8, 0);
	while (r == 0) {
		if (z.avail_in == 0 && (r = reader_fill(&rd, &z)) < 0)
			break;
		z.next_out = out;
		z.avail_out = PIECE;
		zr = inflate(&z, Z_BLOCK);
		if (zr != Z_OK && zr != Z_STREAM_END) {
			r = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
			break;
		}
		if (z.next_out > out) {
			size_t got = (size_t)(z.next_out - out);

			crc = (uint32_t)crc32(crc, out, (uInt)got);
			r = visit ? visit(userdata, z.total_out - got, out, got) : 0;
			if (r < 0)
				break;
		}
		if (zr == Z_STREAM_END) {
			s->bs.end_bit = (uint64_t)(s->hdr + z.total_in) * 8;
			r = push(&s->bs, s->bs.end_bit, z.total_out);
			break;
		}
		if (at_boundary(&z, s->hdr, &bit))
			r = push(&s->bs, bit, z.total_out);
	}
	s->data_len = z.total_out;
	s->len = s->hdr + z.total_in + GZIP_TRAILER;
	inflateEnd(&z);
	if (r < 0)
		goto fail;
	if (s->off + s->len > f->size) {
		r = -EBADMSG;
		goto fail;
	}
	r = f->pread(f->userdata, s->off + s->len - GZIP_TRAILER, trailer, GZIP_TRAILER);
	if (r < 0)
		goto fail;
	s->crc = (uint32_t)trailer[0] | (uint32_t)trailer[1] << 8 | (uint32_t)trailer[2] << 16 |
		 (uint32_t)trailer[3] << 24;
	if (s->crc != crc ||
	    ((uint32_t)trailer[4] | (uint32_t)trailer[5] << 8 | (uint32_t)trailer[6] << 16 |
	     (uint32_t)trailer[7] << 24) != (uint32_t)s->data_len) {
		r = -EBADMSG;
		goto fail;
	}
	*ret = s;
	return 0;
fail:
	gz_stream_free(s);
	return r;
}

/* CRC-32 of n zero bytes, by doubling (crc32_combine) instead of n bytes of work. */
static uint32_t crc_zeros(uint64_t n)
{
	static const unsigned char zero[4096];
	uint32_t crc = (uint32_t)crc32(0, zero, (uInt)(n % sizeof(zero)));
	uint32_t piece = (uint32_t)crc32(0, zero, sizeof(zero));
	uint64_t piece_len = sizeof(zero);

	for (uint64_t k = n / sizeof(zero); k; k >>= 1) {
		if (k & 1)
			crc = (uint32_t)crc32_combine64(crc, piece, (z_off64_t)piece_len);
		piece = (uint32_t)crc32_combine64(piece, piece, (z_off64_t)piece_len);
		piece_len *= 2;
	}
	return crc;
}

/*
 * The CRC of the data once the changes are made, from the old one: CRC-32 is affine over
 * GF(2), so for messages of one length crc(a ^ d) = crc(a) ^ crc(d) ^ crc(zeros), where d is
 * zero but where a change flips bits. No second pass over all of the data.
 */
static uint32_t changed_crc(uint32_t crc, uint64_t len, const struct gz_change *c, size_t n,
			    const unsigned char *const *old)
{
	uint32_t d = 0;
	uint64_t at = 0;

	for (size_t i = 0; i < n; i++) {
		unsigned char x[256];
		uint32_t piece = 0;

		d = (uint32_t)crc32_combine64(d, crc_zeros(c[i].start - at), (z_off64_t)(c[i].start - at));
		for (size_t k = 0; k < c[i].len; k += sizeof(x)) {
			size_t m = c[i].len - k > sizeof(x) ? sizeof(x) : c[i].len - k;

			for (size_t j = 0; j < m; j++)
				x[j] = old[i][k + j] ^ ((const unsigned char *)c[i].data)[k + j];
			piece = (uint32_t)crc32(piece, x, (uInt)m);
		}
		d = (uint32_t)crc32_combine64(d, piece, (z_off64_t)c[i].len);
		at = c[i].start + c[i].len;
	}
	d = (uint32_t)crc32_combine64(d, crc_zeros(len - at), (z_off64_t)(len - at));
	return crc ^ d ^ crc_zeros(len);
}

int gz_stream_plan(struct gz_stream *s, const struct gz_file *f, const struct gz_change *changes,
		   size_t n_changes, size_t *ret_recompressed)
{
	_cleanup_free_ unsigned char *in = malloc(PIECE), *out = malloc(PIECE);
	_cleanup_free_ size_t (*reg)[2] = NULL;
	_cleanup_free_ struct gz_range *ranges = calloc(n_changes ?: 1, sizeof(*ranges));
	_cleanup_free_ const unsigned char **old = calloc(n_changes ?: 1, sizeof(*old));
	_cleanup_free_ unsigned char *olddata = NULL;
	struct reader rd = { .f = f, .end = f->size, .buf = in };
	size_t n_reg = 0, recompressed = 0, k = 0, ci = 0, oldlen = 0;
	_cleanup_free_ unsigned char *prev = NULL; /* the previous region's data, changed */
	uint64_t prev_from = 0, prev_to = 0;
	int64_t growth = 0;
	z_stream z = {};
	int r = 0, zr;

	if (!in || !out || !ranges || !old)
		return -ENOMEM;
	if (n_changes == 0 || s->n_reg)
		return -EINVAL;
	for (size_t i = 0; i < n_changes; i++) {
		if (changes[i].start + changes[i].len > s->data_len ||
		    (i && changes[i].start < changes[i - 1].start + changes[i - 1].len))
			return -EINVAL;
		ranges[i] = (struct gz_range){ changes[i].start, changes[i].start + changes[i].len };
		oldlen += changes[i].len;
	}
	olddata = malloc(oldlen ?: 1);
	reg = calloc(n_changes, sizeof(*reg));
	if (!olddata || !reg)
		return -ENOMEM;
	r = plan(&s->bs, ranges, n_changes, reg, &n_reg);
	if (r < 0)
		return r;
	/* A region that starts in the byte where the one before ended would be primed with the
	 * old bits of that byte: one region instead. */
	for (size_t i = 1; i < n_reg;) {
		if (s->bs.b[reg[i][0]].bit / 8 <= s->bs.b[reg[i - 1][1]].bit / 8) {
			reg[i - 1][1] = reg[i][1];
			memmove(reg + i, reg + i + 1, (n_reg - i - 1) * sizeof(*reg));
			n_reg--;
		} else {
			i++;
		}
	}
	s->reg = calloc(n_reg, sizeof(*s->reg));
	if (!s->reg)
		return -ENOMEM;

	/* Decompress again, up to the last region's end, keeping each region's data and the
	 * window before it. */
	if (inflateInit2(&z, -15) != Z_OK)
		return -ENOMEM;
	rd.pos = s->off + s->hdr;
	for (size_t i = 0, oi = 0; i < n_changes; i++) {
		old[i] = olddata + oi;
		oi += changes[i].len;
	}
	while (r == 0 && k < n_reg) {
		const struct boundary *b0 = &s->bs.b[reg[k][0]], *b1 = &s->bs.b[reg[k][1]];
		size_t dict = b0->out < WINDOW ? b0->out : WINDOW;
		uint64_t from = b0->out - dict, to = b1->out;
		unsigned char *data = malloc(to - from ?: 1);
		struct gz_region *g = &s->reg[k];
		size_t cap = deflateBound(NULL, (uLong)(b1->out - b0->out)) + 64;
		uint64_t obit;

		if (!data) {
			r = -ENOMEM;
			break;
		}
		/* The window before this region may reach into the previous one (a region is at
		 * least a window long, so that one holds it, as changed): from there; the rest
		 * decompressed, stopping exactly at the region's end. */
		if (from < prev_to)
			memcpy(data, prev + (from - prev_from), (size_t)(prev_to - from));
		free(prev);
		prev = data;
		while (r == 0 && z.total_out < to) {
			uint64_t at = z.total_out;
			uint64_t want = to - at > PIECE ? PIECE : to - at;
			size_t got;

			if (z.avail_in == 0 && (r = reader_fill(&rd, &z)) < 0)
				break;
			z.next_out = out;
			z.avail_out = (uInt)want;
			zr = inflate(&z, Z_NO_FLUSH);
			if (zr != Z_OK && zr != Z_STREAM_END) {
				r = zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
				break;
			}
			got = (size_t)(z.next_out - out);
			/* The overlap of [at, at + got) with [from, to). */
			if (at + got > from) {
				uint64_t a = at > from ? at : from;

				memcpy(data + (a - from), out + (a - at), (size_t)(at + got - a));
			}
			if (zr == Z_STREAM_END && z.total_out < to)
				r = -EBADMSG;
		}
		if (r < 0)
			break;
		/* The old bytes of the changes in this region, then the new ones. */
		for (; ci < n_changes && changes[ci].start < to; ci++) {
			memcpy((unsigned char *)old[ci], data + (changes[ci].start - from), changes[ci].len);
			memcpy(data + (changes[ci].start - from), changes[ci].data, changes[ci].len);
		}
		prev_from = from;
		prev_to = to;
		g->bytes = calloc(1, cap);
		if (!g->bytes) {
			r = -ENOMEM;
			break;
		}
		g->from_bit = b0->bit;
		g->to_bit = b1->bit;
		g->final = b1->bit == s->bs.end_bit;
		obit = b0->bit % 8;
		if (obit) {
			unsigned char byte;

			r = f->pread(f->userdata, s->off + b0->bit / 8, &byte, 1);
			if (r < 0)
				break;
			g->bytes[0] = byte & (unsigned char)((1u << obit) - 1);
		}
		/* At zlib's best: the member is written back where it was, and every byte it
		 * grows needs room after it (initramfs tools compress at -9). */
		r = recompress_level(g->bytes, &obit, cap, data, dict,
				     dict + (size_t)(b1->out - b0->out), g->final,
				     b1->out - b0->out <= (1u << 20) ? Z_BEST_COMPRESSION : 1);
		if (r < 0)
			break;
		while (!g->final && obit % 8 != b1->bit % 8) {
			put_bits(g->bytes, &obit, 0x2, 3);
			put_bits(g->bytes, &obit, 0, 7);
		}
		g->nbits = obit;
		growth += (int64_t)(obit - b0->bit % 8) - (int64_t)(b1->bit - b0->bit);
		recompressed += (size_t)(b1->out - b0->out);
		s->n_reg = ++k;
	}
	inflateEnd(&z);
	if (r < 0)
		return r;
	s->growth = growth / 8;
	s->new_crc = changed_crc(s->crc, s->data_len, changes, n_changes, old);

	/* Room for a longer member: zeros after it, or the end of the file. */
	if (s->growth > 0) {
		uint64_t at = s->off + s->len, need = (uint64_t)s->growth;

		while (need > 0 && at < f->size) {
			size_t n = f->size - at > PIECE ? PIECE : (size_t)(f->size - at);

			if (n > need)
				n = (size_t)need;
			r = f->pread(f->userdata, at, in, n);
			if (r < 0)
				return r;
			for (size_t i = 0; i < n; i++)
				if (in[i] != 0)
					return -EOPNOTSUPP;
			at += n;
			need -= n;
		}
	}
	if (ret_recompressed)
		*ret_recompressed = recompressed;
	return 0;
}

/* The bytes written back, in order, through a buffer that never overtakes what is still to
 * be read from the old member (a longer member is written ahead of its old bytes). */
struct writer {
	const struct gz_file *f;
	uint64_t pos;         /* where buf[0] goes */
	unsigned char *buf;
	size_t len, cap;
};

static int writer_put(struct writer *w, const void *p, size_t n)
{
	if (greedy_realloc((void **)&w->buf, &w->cap, w->len + n, 1) < 0)
		return -ENOMEM;
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

/* Write what lies before limit (what has been read of the old member); all with UINT64_MAX. */
static int writer_flush(struct writer *w, uint64_t limit)
{
	size_t n = limit >= w->pos + w->len ? w->len : limit > w->pos ? (size_t)(limit - w->pos) : 0;
	int r;

	if (n == 0)
		return 0;
	r = w->f->pwrite(w->f->userdata, w->pos, w->buf, n);
	if (r < 0)
		return r;
	memmove(w->buf, w->buf + n, w->len - n);
	w->len -= n;
	w->pos += n;
	return 0;
}

/* Copy the old member's bytes [from, to) (offsets in the member) to the writer. */
static int copy_old(struct gz_stream *s, const struct gz_file *f, struct writer *w,
		    unsigned char *piece, uint64_t from, uint64_t to)
{
	while (from < to) {
		size_t n = to - from > PIECE ? PIECE : (size_t)(to - from);
		int r = f->pread(f->userdata, s->off + from, piece, n);

		if (r == 0)
			r = writer_put(w, piece, n);
		/* Read up to s->off + from + n: the writer may write up to there. */
		if (r == 0)
			r = writer_flush(w, s->off + from + n);
		if (r < 0)
			return r;
		from += n;
	}
	return 0;
}

int gz_stream_apply(struct gz_stream *s, const struct gz_file *f)
{
	_cleanup_free_ unsigned char *piece = malloc(PIECE);
	struct writer w = { .f = f };
	unsigned char trailer[GZIP_TRAILER];
	uint64_t at;
	int r = 0;

	if (!piece)
		return -ENOMEM;
	if (s->n_reg == 0)
		return -EINVAL;
	at = s->reg[0].from_bit / 8;
	w.pos = s->off + at;
	for (size_t i = 0; r == 0 && i < s->n_reg; i++) {
		const struct gz_region *g = &s->reg[i];
		size_t whole = (size_t)(g->nbits / 8);
		unsigned phase = (unsigned)(g->nbits % 8);

		r = copy_old(s, f, &w, piece, at, g->from_bit / 8);
		if (r == 0)
			r = writer_put(&w, g->bytes, whole);
		if (r == 0 && phase) {
			/* The region's last bits, then the old block's from to_bit on. */
			unsigned char byte, mask = (unsigned char)((1u << phase) - 1);

			r = f->pread(f->userdata, s->off + g->to_bit / 8, &byte, 1);
			byte = (unsigned char)((g->bytes[whole] & mask) | (byte & ~mask));
			if (r == 0)
				r = writer_put(&w, &byte, 1);
			at = g->to_bit / 8 + 1;
		} else {
			at = g->to_bit / 8;
		}
		/* Nothing old up to at is needed any more. */
		if (r == 0)
			r = writer_flush(&w, s->off + at);
	}
	if (r == 0 && !s->reg[s->n_reg - 1].final)
		r = copy_old(s, f, &w, piece, at, s->bs.end_bit / 8);
	for (unsigned i = 0; i < 4; i++) {
		trailer[i] = (unsigned char)(s->new_crc >> (8 * i));
		trailer[4 + i] = (unsigned char)((uint32_t)s->data_len >> (8 * i));
	}
	if (r == 0)
		r = writer_put(&w, trailer, GZIP_TRAILER);
	/* A shorter member: zeros up to its old end, so that nothing after it moves. */
	for (int64_t i = s->growth; r == 0 && i < 0; i++)
		r = writer_put(&w, "", 1);
	if (r == 0)
		r = writer_flush(&w, UINT64_MAX);
	free(w.buf);
	return r;
}
