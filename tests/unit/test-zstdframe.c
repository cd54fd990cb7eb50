/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a run of zstd frames ends: frames written by hand from RFC 8878 (each one checked
 * against zstd -d when written), whole, followed by padding, and cut short. */
#include <errno.h>
#include <string.h>

#include "tap.h"
#include "initramfs/zstdframe.h"

/* "hello": single segment, a 1-byte content size, one raw last block. */
static const unsigned char RAW[] = { 0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x05, 0x29, 0x00, 0x00,
				     'h', 'e', 'l', 'l', 'o' };
/* 100 times 'x': an RLE block, and a content checksum. */
static const unsigned char RLE_SUM[] = { 0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x64, 0x23, 0x03, 0x00,
					 'x', 1, 2, 3, 4 };
/* A skippable frame of 3 bytes. */
static const unsigned char SKIP[] = { 0x50, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 'a', 'b', 'c' };

static size_t cat(unsigned char *out, const unsigned char *a, size_t an, const unsigned char *b,
		  size_t bn)
{
	memcpy(out, a, an);
	memcpy(out + an, b, bn);
	return an + bn;
}

int main(void)
{
	unsigned char buf[256] = { 0 };
	size_t n, end = 0;

	ok(zstd_frames_end_mem(RAW, sizeof(RAW), 0, &end) == 0 && end == sizeof(RAW),
	   "one frame, a raw block: its end");
	ok(zstd_frames_end_mem(RLE_SUM, sizeof(RLE_SUM), 0, &end) == 0 && end == sizeof(RLE_SUM),
	   "an RLE block and a checksum: its end");
	n = cat(buf, RAW, sizeof(RAW), RLE_SUM, sizeof(RLE_SUM));
	n = cat(buf + n, SKIP, sizeof(SKIP), (const unsigned char *)"", 0) + n;
	ok(zstd_frames_end_mem(buf, n + 64, 0, &end) == 0 && end == n,
	   "three frames (one skippable), then zero padding: the end of the last frame (%zu)", end);
	memset(buf, 0, sizeof(buf));
	n = cat(buf, RAW, sizeof(RAW), (const unsigned char *)"070701", 6);
	ok(zstd_frames_end_mem(buf, n, 0, &end) == 0 && end == sizeof(RAW),
	   "a frame, then a newc archive: the frame's end");
	ok(zstd_frames_end_mem(RAW, sizeof(RAW) - 1, 0, &end) == -EBADMSG, "a block cut short");
	ok(zstd_frames_end_mem(RLE_SUM, sizeof(RLE_SUM) - 2, 0, &end) == -EBADMSG, "a checksum cut short");
	ok(zstd_frames_end_mem(RAW, 6, 0, &end) == -EBADMSG, "a block header cut short");
	memcpy(buf, RAW, sizeof(RAW));
	buf[4] |= 0x08;
	ok(zstd_frames_end_mem(buf, sizeof(RAW), 0, &end) == -EBADMSG, "the reserved bit set");
	memcpy(buf, RAW, sizeof(RAW));
	buf[6] |= 0x06;
	ok(zstd_frames_end_mem(buf, sizeof(RAW), 0, &end) == -EBADMSG, "a reserved block type");
	memcpy(buf, SKIP, sizeof(SKIP));
	buf[4] = 0xff;
	ok(zstd_frames_end_mem(buf, sizeof(SKIP), 0, &end) == -EBADMSG,
	   "a skippable frame longer than the data");
	ok(zstd_frames_end_mem("\x1f\x8b\x08\x00", 4, 0, &end) == -EBADMSG, "gzip is not zstd");
	return tap_done();
}
