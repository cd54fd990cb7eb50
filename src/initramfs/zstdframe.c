/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Where a run of zstd frames ends.
 *
 * An initramfs is a chain: a zstd-compressed archive may be followed by zero padding and by
 * more archives (cvm-image build puts the key archive there). The kernel decompresses one
 * frame and goes on after it; libarchive (3.6.2) reads past the frame into the padding and
 * fails ("Truncated input file"), so the chain's readers need the frame's end first.
 * libzstd's ZSTD_findFrameCompressedSize() answers this but wants the whole frame in memory,
 * and rekey's streamed path must not hold a 100 MiB archive; the frame format makes the
 * walk short: a frame header, then blocks whose 3-byte headers give their sizes, then an
 * optional checksum (RFC 8878, 3.1.1). Our own code, bounded by size at every step.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "zstdframe.h"

#define ZSTD_MAGIC 0xFD2FB528u
#define SKIPPABLE_MASK 0xFFFFFFF0u
#define SKIPPABLE_MAGIC 0x184D2A50u
#define BLOCK_MAX (128u * 1024)

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static int get(zstd_pread_fn pread, void *userdata, uint64_t off, uint64_t size, void *buf,
	       size_t len)
{
	if (off > size || size - off < len)
		return -EBADMSG;
	return pread(userdata, off, buf, len);
}

/* One frame at *off: *off moves past it. */
static int frame(zstd_pread_fn pread, void *userdata, uint64_t *off, uint64_t size)
{
	static const unsigned char fcs_len[4] = { 0, 2, 4, 8 }, did_len[4] = { 0, 1, 2, 4 };
	unsigned char h[6];
	uint64_t at = *off;
	unsigned fhd;
	bool last = false;
	int r;

	r = get(pread, userdata, at, size, h, 4);
	if (r < 0)
		return r;
	if ((le32(h) & SKIPPABLE_MASK) == SKIPPABLE_MAGIC) {
		r = get(pread, userdata, at + 4, size, h, 4);
		if (r < 0)
			return r;
		at += 8;
		if (size - at < le32(h))
			return -EBADMSG;
		*off = at + le32(h);
		return 0;
	}
	if (le32(h) != ZSTD_MAGIC)
		return -EBADMSG;
	r = get(pread, userdata, at + 4, size, h, 1);
	if (r < 0)
		return r;
	fhd = h[0];
	if (fhd & 0x08) /* the reserved bit */
		return -EBADMSG;
	at += 5;
	at += !(fhd & 0x20);             /* Window_Descriptor unless Single_Segment */
	at += did_len[fhd & 3];          /* Dictionary_ID */
	at += (fhd >> 6) == 0 ? (fhd & 0x20 ? 1 : 0) : fcs_len[fhd >> 6]; /* Frame_Content_Size */
	while (!last) {
		uint32_t bh, type, bsize;

		r = get(pread, userdata, at, size, h, 3);
		if (r < 0)
			return r;
		bh = (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16;
		last = bh & 1;
		type = (bh >> 1) & 3;
		bsize = bh >> 3;
		if (type == 3 || bsize > BLOCK_MAX)
			return -EBADMSG;
		at += 3;
		at += type == 1 ? 1 : bsize; /* RLE: one byte, repeated bsize times */
		if (at > size)
			return -EBADMSG;
	}
	at += fhd & 0x04 ? 4 : 0; /* Content_Checksum */
	if (at > size)
		return -EBADMSG;
	*off = at;
	return 0;
}

int zstd_frames_end(zstd_pread_fn pread, void *userdata, uint64_t off, uint64_t size,
		    uint64_t *ret_end)
{
	unsigned char m[4];
	int r;

	r = frame(pread, userdata, &off, size);
	if (r < 0)
		return r;
	/* More frames, as zstd writes with several inputs, or skippable ones. */
	while (size - off >= 4) {
		uint32_t magic;

		r = pread(userdata, off, m, 4);
		if (r < 0)
			return r;
		magic = le32(m);
		if (magic != ZSTD_MAGIC && (magic & SKIPPABLE_MASK) != SKIPPABLE_MAGIC)
			break;
		r = frame(pread, userdata, &off, size);
		if (r < 0)
			return r;
	}
	*ret_end = off;
	return 0;
}

struct mem {
	const unsigned char *p;
};

static int mem_pread(void *userdata, uint64_t off, void *buf, size_t len)
{
	memcpy(buf, ((struct mem *)userdata)->p + off, len);
	return 0;
}

int zstd_frames_end_mem(const void *p, size_t len, size_t off, size_t *ret_end)
{
	struct mem m = { p };
	uint64_t end;
	int r;

	r = zstd_frames_end(mem_pread, &m, off, len, &end);
	if (r == 0)
		*ret_end = (size_t)end;
	return r;
}
