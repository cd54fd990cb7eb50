/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* gzip_patch(): a member changed in place decodes (zlib and libdeflate) to the changed data,
 * and keeps the old compressed blocks away from the changes; gz_stream_*(): the same on a
 * member inside a file, through reads and writes of it, with what is around it kept. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <errno.h>
#include <libdeflate.h>
#include <zlib.h>

#include "tap.h"
#include "initramfs/gzpatch.h"

static uint64_t rng = 88172645463325252ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)rng;
}

/* Text-like data that compresses (words from a small list), with runs of noise and zeros. */
static unsigned char *make_data(size_t len)
{
	static const char *words[] = { "kernel ", "module ", "initramfs ", "cryptroot ", "key ",
				       "/usr/lib/", ".ko\n", "firmware ", "\0\0\0\0", "07070100" };
	unsigned char *d = malloc(len);

	for (size_t i = 0; i < len;) {
		uint32_t x = rnd();

		if (x % 4000 == 0) {
			for (size_t k = 0; k < 3000 && i < len; k++)
				d[i++] = (unsigned char)rnd();
		} else {
			const char *w = words[x % 10];
			size_t n = x % 10 == 8 ? 4 : strlen(w);

			for (size_t k = 0; k < n && i < len; k++)
				d[i++] = (unsigned char)w[k];
		}
	}
	return d;
}

/* gzip with zlib at level, with a file name in the header when named. */
static unsigned char *gz_zlib(const unsigned char *d, size_t len, int level, bool named,
			      size_t *ret_len)
{
	z_stream z = {};
	gz_header h = { .name = (Bytef *)"initrd.img", .os = 3 };
	size_t cap = deflateBound(NULL, len) + 64;
	unsigned char *out = malloc(cap);

	deflateInit2(&z, level, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
	if (named)
		deflateSetHeader(&z, &h);
	z.next_in = (unsigned char *)d;
	z.avail_in = (uInt)len;
	z.next_out = out;
	z.avail_out = (uInt)cap;
	deflate(&z, Z_FINISH);
	*ret_len = z.total_out;
	deflateEnd(&z);
	return out;
}

static unsigned char *gz_libdeflate(const unsigned char *d, size_t len, int level, size_t *ret_len)
{
	struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
	size_t cap = libdeflate_gzip_compress_bound(c, len);
	unsigned char *out = malloc(cap);

	*ret_len = libdeflate_gzip_compress(c, d, len, out, cap);
	libdeflate_free_compressor(c);
	return out;
}

/* Both decoders give back exactly want. */
static bool decodes_to(const unsigned char *gz, size_t gz_len, const unsigned char *want,
		       size_t len)
{
	unsigned char *a = malloc(len + 1), *b = malloc(len + 1);
	z_stream z = {};
	size_t got = 0, used = 0;
	struct libdeflate_decompressor *d = libdeflate_alloc_decompressor();
	bool ok;

	inflateInit2(&z, 31);
	z.next_in = (unsigned char *)gz;
	z.avail_in = (uInt)gz_len;
	z.next_out = a;
	z.avail_out = (uInt)len + 1;
	ok = inflate(&z, Z_FINISH) == Z_STREAM_END && z.total_out == len && z.avail_in == 0 &&
	     memcmp(a, want, len) == 0;
	inflateEnd(&z);
	ok = ok && libdeflate_gzip_decompress_ex(d, gz, gz_len, b, len + 1, &used, &got) ==
			   LIBDEFLATE_SUCCESS &&
	     got == len && used == gz_len && memcmp(b, want, len) == 0;
	libdeflate_free_decompressor(d);
	free(a);
	free(b);
	return ok;
}

/* Change the ranges in a copy of data (random bytes), patch gz, check it. Returns the
 * length of the compressed tail the patched member shares with the old one. */
static bool patch_case(const unsigned char *data, size_t len, const unsigned char *gz,
		       size_t gz_len, const struct gz_range *ch, size_t n, size_t *ret_shared)
{
	unsigned char *nd = malloc(len);
	void *out = NULL;
	size_t out_len = 0, shared = 0;
	bool ok;

	memcpy(nd, data, len);
	for (size_t i = 0; i < n; i++)
		for (size_t k = ch[i].start; k < ch[i].end; k++)
			nd[k] = (unsigned char)(data[k] ^ (1 + rnd() % 255));
	ok = gzip_patch(gz, gz_len, nd, len, ch, n, &out, &out_len, NULL) == 0 &&
	     decodes_to(out, out_len, nd, len);
	/* The trailer (CRC) differs; count what matches before it. */
	while (ok && shared + 8 < out_len && shared + 8 < gz_len &&
	       ((unsigned char *)out)[out_len - 9 - shared] == gz[gz_len - 9 - shared])
		shared++;
	if (ret_shared)
		*ret_shared = shared;
	free(out);
	free(nd);
	return ok;
}


/* A file in memory for the gz_stream functions: it grows on a write past its end, and counts
 * the bytes read and written. */
struct memfile {
	unsigned char *p;
	size_t len, cap, read, written;
};

static int mf_pread(void *userdata, uint64_t off, void *buf, size_t len)
{
	struct memfile *m = userdata;

	if (off > m->len || len > m->len - off)
		return -EIO;
	memcpy(buf, m->p + off, len);
	m->read += len;
	return 0;
}

static int mf_pwrite(void *userdata, uint64_t off, const void *buf, size_t len)
{
	struct memfile *m = userdata;

	if (off + len > m->cap) {
		m->cap = (size_t)(off + len) * 2;
		m->p = realloc(m->p, m->cap);
	}
	if (off > m->len)
		memset(m->p + m->len, 0, (size_t)off - m->len);
	memcpy(m->p + off, buf, len);
	if (off + len > m->len)
		m->len = (size_t)(off + len);
	m->written += len;
	return 0;
}

struct visit_check {
	const unsigned char *want;
	uint64_t seen;
	bool ok;
};

static int visit_cmp(void *userdata, uint64_t off, const unsigned char *data, size_t len)
{
	struct visit_check *v = userdata;

	v->ok = v->ok && off == v->seen && memcmp(v->want + off, data, len) == 0;
	v->seen += len;
	return 0;
}

/*
 * The member gz (of data) in a file after a 1000-byte prefix and before tail_zeros zero
 * bytes, then (with_after) the bytes "AFTER": changed through gz_stream_*, the file must
 * hold the prefix and what came after at the same places (or, at the end of the file, the
 * member longer), and the member there decode to the changed data. -1 when the plan refused
 * (a longer member with no room), 1 when it all checks, 0 when something is wrong.
 */
static int stream_case(const unsigned char *data, size_t len, const unsigned char *gz,
		       size_t gz_len, const struct gz_range *ch, size_t n, size_t tail_zeros,
		       bool with_after, size_t *ret_written)
{
	struct memfile m = {};
	struct gz_file f = { mf_pread, mf_pwrite, &m, 0 };
	struct visit_check v = { data, 0, true };
	struct gz_change c[8];
	unsigned char *nd = malloc(len), *keys = malloc(len);
	struct gz_stream *s = NULL;
	size_t member_end = 1000 + gz_len, recompressed = 0;
	int ret = 0, r;

	m.cap = 1000 + gz_len + tail_zeros + 5;
	m.p = malloc(m.cap);
	for (size_t i = 0; i < 1000; i++)
		m.p[i] = (unsigned char)(i * 7);
	memcpy(m.p + 1000, gz, gz_len);
	memset(m.p + member_end, 0, tail_zeros);
	m.len = member_end + tail_zeros;
	if (with_after) {
		memcpy(m.p + m.len, "AFTER", 5);
		m.len += 5;
	}
	f.size = m.len;
	memcpy(nd, data, len);
	for (size_t i = 0; i < n; i++) {
		for (size_t k = ch[i].start; k < ch[i].end; k++)
			nd[k] = keys[k] = (unsigned char)(data[k] ^ (1 + rnd() % 255));
		c[i] = (struct gz_change){ ch[i].start, keys + ch[i].start, ch[i].end - ch[i].start };
	}
	if (gz_stream_scan(&f, 1000, visit_cmp, &v, &s) < 0 || !v.ok || v.seen != len ||
	    gz_stream_member_len(s) != gz_len)
		goto out;
	m.read = m.written = 0;
	r = gz_stream_plan(s, &f, c, n, &recompressed);
	if (r == -EOPNOTSUPP) {
		ret = m.written == 0 ? -1 : 0; /* refused before any write */
		goto out;
	}
	m.read = m.written = 0;
	if (r < 0 || gz_stream_apply(s, &f) < 0)
		goto out;
	if (ret_written)
		*ret_written = m.written;
	/* The prefix, and what followed, where they were; the member decodes, zeros after it. */
	for (size_t i = 0; i < 1000; i++)
		if (m.p[i] != (unsigned char)(i * 7))
			goto out;
	if (with_after && (m.len != f.size || memcmp(m.p + m.len - 5, "AFTER", 5) != 0))
		goto out;
	{
		unsigned char *back = NULL;
		size_t back_len = 0, used = 0;

		if (gzip_inflate(m.p + 1000, m.len - 1000, 1u << 30, (void **)&back, &back_len, &used) < 0)
			goto out;
		ret = back_len == len && memcmp(back, nd, len) == 0 && decodes_to(m.p + 1000, used, nd, len);
		for (size_t i = 1000 + used; ret && i < m.len - (with_after ? 5 : 0); i++)
			ret = m.p[i] == 0;
		free(back);
	}
out:
	gz_stream_free(s);
	free(m.p);
	free(nd);
	free(keys);
	return ret;
}

int main(void)
{
	const size_t len = 1024 * 1024;
	unsigned char *data = make_data(len);
	struct {
		const char *name;
		unsigned char *gz;
		size_t len;
	} v[5];
	void *back = NULL;
	size_t back_len = 0, member = 0, shared;
	unsigned bad = 0;

	v[0].name = "zlib -1";
	v[0].gz = gz_zlib(data, len, 1, false, &v[0].len);
	v[1].name = "zlib -6, named";
	v[1].gz = gz_zlib(data, len, 6, true, &v[1].len);
	v[2].name = "zlib -9";
	v[2].gz = gz_zlib(data, len, 9, false, &v[2].len);
	v[3].name = "libdeflate -1";
	v[3].gz = gz_libdeflate(data, len, 1, &v[3].len);
	v[4].name = "libdeflate -12";
	v[4].gz = gz_libdeflate(data, len, 12, &v[4].len);

	/* gzip_inflate: whole member, trailing bytes left to the caller, garbage refused. */
	{
		unsigned char *t = malloc(v[1].len + 100);

		memcpy(t, v[1].gz, v[1].len);
		memset(t + v[1].len, 0, 100);
		ok(gzip_inflate(t, v[1].len + 100, 1u << 30, &back, &back_len, &member) == 0 &&
			   back_len == len && member == v[1].len && memcmp(back, data, len) == 0,
		   "gzip_inflate: a named member followed by zero padding");
		free(back);
		ok(gzip_inflate(t, v[1].len / 2, 1u << 30, &back, &back_len, &member) == -EBADMSG,
		   "gzip_inflate: a truncated member is refused");
		ok(gzip_inflate(t, v[1].len, len / 2, &back, &back_len, &member) == -EFBIG,
		   "gzip_inflate: more than max_out is refused");
		t[0] = 0x1e;
		ok(gzip_inflate(t, v[1].len, 1u << 30, &back, &back_len, &member) == -EBADMSG,
		   "gzip_inflate: not gzip is refused");
		free(t);
	}

	for (size_t i = 0; i < 5; i++) {
		struct gz_range start = { 2843, 2843 + 44 }, first = { 0, 1 },
				end = { len - 44, len }, two[] = { { 1000, 1044 }, { 700000, 700044 } },
				near[] = { { 50000, 50044 }, { 70000, 70044 }, { 90000, 90044 } };

		ok(patch_case(data, len, v[i].gz, v[i].len, &start, 1, &shared) &&
			   shared > v[i].len / 2,
		   "%s: a key near the start; %zu of %zu compressed bytes kept", v[i].name, shared,
		   v[i].len);
		ok(patch_case(data, len, v[i].gz, v[i].len, &first, 1, NULL),
		   "%s: the first byte", v[i].name);
		ok(patch_case(data, len, v[i].gz, v[i].len, &end, 1, NULL),
		   "%s: the last bytes (the region runs to the end)", v[i].name);
		ok(patch_case(data, len, v[i].gz, v[i].len, two, 2, NULL),
		   "%s: two changes far apart", v[i].name);
		ok(patch_case(data, len, v[i].gz, v[i].len, near, 3, NULL),
		   "%s: three changes within a window of each other", v[i].name);
	}

	/* Many random changes at random places: every block alignment, filler or none. */
	for (unsigned t = 0; t < 200; t++) {
		size_t i = t % 5, want = 1 + rnd() % 4, n = 0, at = 0;
		struct gz_range ch[4];

		for (size_t k = 0; k < want; k++) {
			size_t gap = rnd() % (len / (2 * want)), l = 1 + rnd() % 100;

			ch[n++] = (struct gz_range){ at + gap, at + gap + l };
			at += gap + l;
		}
		if (!patch_case(data, len, v[i].gz, v[i].len, ch, n, NULL)) {
			bad++;
			printf("# random case %u (%s) failed\n", t, v[i].name);
		}
	}
	ok(bad == 0, "200 random patches decode to the changed data");


	/* The same through gz_stream_*, on the member inside a file. */
	for (size_t i = 0; i < 5; i++) {
		struct gz_range start = { 2843, 2843 + 44 }, end = { len - 44, len },
				two[] = { { 1000, 1044 }, { 700000, 700044 } },
				near[] = { { 50000, 50044 }, { 70000, 70044 }, { 90000, 90044 } };
		size_t written = 0;
		int r;

		ok(stream_case(data, len, v[i].gz, v[i].len, &start, 1, 0, false, &written) == 1,
		   "%s, streamed: a key near the start, the member at the end of the file (%zu "
		   "bytes written of %zu)", v[i].name, written, v[i].len);
		r = stream_case(data, len, v[i].gz, v[i].len, &start, 1, 64, true, NULL);
		ok(r != 0, "%s, streamed: the same with bytes after the member: kept where they are, "
		   "or refused for want of room (%s)", v[i].name, r > 0 ? "kept" : "refused");
		r = stream_case(data, len, v[i].gz, v[i].len, &end, 1, 0, false, NULL);
		ok(r == 1, "%s, streamed: the last bytes, the member at the end of the file", v[i].name);
		ok(stream_case(data, len, v[i].gz, v[i].len, two, 2, 0, false, NULL) == 1,
		   "%s, streamed: two changes far apart", v[i].name);
		ok(stream_case(data, len, v[i].gz, v[i].len, near, 3, 4096, true, NULL) == 1,
		   "%s, streamed: three changes within a window of each other, zeros after", v[i].name);
	}
	/* Random changes; with no zeros after the member and something after them, a longer
	 * member is refused before anything is written (-1), never written wrong. */
	bad = 0;
	{
		unsigned refused = 0, done = 0;

		for (unsigned t = 0; t < 100; t++) {
			size_t i = t % 5, want = 1 + rnd() % 4, n = 0, at = 0;
			struct gz_range ch[4];
			int r;

			for (size_t k = 0; k < want; k++) {
				size_t gap = rnd() % (len / (2 * want)), l = 1 + rnd() % 100;

				ch[n++] = (struct gz_range){ at + gap, at + gap + l };
				at += gap + l;
			}
			r = stream_case(data, len, v[i].gz, v[i].len, ch, n, t % 3 ? 0 : 64, t % 2,
					NULL);
			if (r == 0) {
				bad++;
				printf("# random streamed case %u (%s) failed\n", t, v[i].name);
			}
			refused += r < 0;
			done += r > 0;
		}
		ok(bad == 0 && done > 50, "100 random streamed patches: %u decode to the changed data, "
		   "%u refused for want of room", done, refused);
	}
	/* A damaged member: its CRC. */
	{
		struct memfile m = { .len = v[1].len, .cap = v[1].len };
		struct gz_file f = { mf_pread, mf_pwrite, &m, v[1].len };
		struct gz_stream *s = NULL;

		m.p = malloc(m.len);
		memcpy(m.p, v[1].gz, m.len);
		m.p[m.len - 8] ^= 1;
		ok(gz_stream_scan(&f, 0, NULL, NULL, &s) == -EBADMSG, "streamed: a wrong CRC is refused");
		f.size = m.len / 2;
		ok(gz_stream_scan(&f, 0, NULL, NULL, &s) == -EBADMSG, "streamed: a truncated member is refused");
		free(m.p);
	}

	for (size_t i = 0; i < 5; i++)
		free(v[i].gz);
	free(data);
	return tap_done();
}
