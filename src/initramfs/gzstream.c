/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gzpatch.c's change of a gzip member in a few places, with bounded memory, on a member
 * inside a file (gzpatch.h: gz_stream_scan(), gz_stream_plan(), gz_stream_apply()): the
 * member is inflated piece by piece to find the block boundaries and the changes, and only
 * the regions around them are compressed again. */
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
	return gz_header_len(h, n, ret);
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
	r = gz_boundary_push(&s->bs, (uint64_t)s->hdr * 8, 0);
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
			r = gz_boundary_push(&s->bs, s->bs.end_bit, z.total_out);
			break;
		}
		if (gz_at_boundary(&z, s->hdr, &bit))
			r = gz_boundary_push(&s->bs, bit, z.total_out);
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

/* A region that starts in the byte where the one before ended would be primed with the old
 * bits of that byte: the two made one. */
static void merge_touching(const struct gz_stream *s, size_t (*reg)[2], size_t *n_reg)
{
	for (size_t i = 1; i < *n_reg;) {
		if (s->bs.b[reg[i][0]].bit / 8 <= s->bs.b[reg[i - 1][1]].bit / 8) {
			reg[i - 1][1] = reg[i][1];
			memmove(reg + i, reg + i + 1, (*n_reg - i - 1) * sizeof(*reg));
			(*n_reg)--;
		} else {
			i++;
		}
	}
}

/* z inflated on, through out (PIECE bytes), up to exactly to: what falls in [from, to) copied
 * into data (from's byte at data[0]). */
static int inflate_until(z_stream *z, struct reader *rd, unsigned char *out, unsigned char *data,
			 uint64_t from, uint64_t to)
{
	int r = 0, zr;

	while (z->total_out < to) {
		uint64_t at = z->total_out;
		uint64_t want = to - at > PIECE ? PIECE : to - at;
		size_t got;

		if (z->avail_in == 0 && (r = reader_fill(rd, z)) < 0)
			return r;
		z->next_out = out;
		z->avail_out = (uInt)want;
		zr = inflate(z, Z_NO_FLUSH);
		if (zr != Z_OK && zr != Z_STREAM_END)
			return zr == Z_MEM_ERROR ? -ENOMEM : -EBADMSG;
		got = (size_t)(z->next_out - out);
		/* The overlap of [at, at + got) with [from, to). */
		if (at + got > from) {
			uint64_t a = at > from ? at : from;

			memcpy(data + (a - from), out + (a - at), (size_t)(at + got - a));
		}
		if (zr == Z_STREAM_END && z->total_out < to)
			return -EBADMSG;
	}
	return 0;
}

int gz_file_zeros(const struct gz_file *f, uint64_t off, uint64_t len, unsigned char *buf)
{
	while (len > 0 && off < f->size) {
		size_t n = f->size - off > PIECE ? PIECE : (size_t)(f->size - off);
		int r;

		if (n > len)
			n = (size_t)len;
		r = f->pread(f->userdata, off, buf, n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (buf[i] != 0)
				return -EOPNOTSUPP;
		off += n;
		len -= n;
	}
	return 0;
}

/*
 * g: the deflate blocks between boundaries b0 and b1 of s compressed again from data (the
 * region's uncompressed bytes, changed, after dict bytes of the window before it), starting
 * at b0's bit in its byte (the bits before it, of the old stream, kept) and, unless it ends
 * the stream, padded with empty fixed blocks to b1's bit in its byte.
 */
static int recompress_region(const struct gz_stream *s, const struct gz_file *f,
			     const struct boundary *b0, const struct boundary *b1,
			     const unsigned char *data, size_t dict, struct gz_region *g)
{
	size_t cap = deflateBound(NULL, (uLong)(b1->out - b0->out)) + 64;
	uint64_t obit = b0->bit % 8;
	int r;

	g->bytes = calloc(1, cap);
	if (!g->bytes)
		return -ENOMEM;
	g->from_bit = b0->bit;
	g->to_bit = b1->bit;
	g->final = b1->bit == s->bs.end_bit;
	if (obit) {
		unsigned char byte;

		r = f->pread(f->userdata, s->off + b0->bit / 8, &byte, 1);
		if (r < 0)
			goto fail;
		g->bytes[0] = byte & (unsigned char)((1u << obit) - 1);
	}
	/* At zlib's best: the member is written back where it was, and every byte it grows
	 * needs room after it (initramfs tools compress at -9). */
	r = gz_recompress_level(g->bytes, &obit, cap, data, dict, dict + (size_t)(b1->out - b0->out),
				g->final, b1->out - b0->out <= (1u << 20) ? Z_BEST_COMPRESSION : 1);
	if (r < 0)
		goto fail;
	while (!g->final && obit % 8 != b1->bit % 8) {
		gz_put_bits(g->bytes, &obit, 0x2, 3);
		gz_put_bits(g->bytes, &obit, 0, 7);
	}
	g->nbits = obit;
	return 0;
fail:
	/* Not counted in s->n_reg: gz_stream_free() would not free it. */
	free(g->bytes);
	g->bytes = NULL;
	return r;
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
	int r = 0;

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
	r = gz_plan(&s->bs, ranges, n_changes, reg, &n_reg);
	if (r < 0)
		return r;
	merge_touching(s, reg, &n_reg);
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
		r = inflate_until(&z, &rd, out, data, from, to);
		if (r < 0)
			break;
		/* The old bytes of the changes in this region, then the new ones. */
		for (; ci < n_changes && changes[ci].start < to; ci++) {
			memcpy((unsigned char *)old[ci], data + (changes[ci].start - from), changes[ci].len);
			memcpy(data + (changes[ci].start - from), changes[ci].data, changes[ci].len);
		}
		prev_from = from;
		prev_to = to;
		r = recompress_region(s, f, b0, b1, data, dict, g);
		if (r < 0)
			break;
		growth += (int64_t)(g->nbits - b0->bit % 8) - (int64_t)(b1->bit - b0->bit);
		recompressed += (size_t)(b1->out - b0->out);
		s->n_reg = ++k;
	}
	inflateEnd(&z);
	if (r < 0)
		return r;
	s->growth = growth / 8;
	s->new_crc = changed_crc(s->crc, s->data_len, changes, n_changes, old);

	/* Room for a longer member: zeros after it, or the end of the file. */
	r = gz_file_zeros(f, s->off + s->len, s->growth > 0 ? (uint64_t)s->growth : 0, in);
	if (r < 0)
		return r;
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
