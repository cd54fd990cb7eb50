/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A gzip member as rekey reads one from an initramfs: whole (libdeflate), and in pieces
 * (gz_stream_scan, the first pass of the streamed plan). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "initramfs/gzpatch.h"

struct mem {
	const uint8_t *data;
	size_t size;
};

/* Whole ranges, as the file's reader gives them: a range past the end is an error. */
static int mem_pread(void *userdata, uint64_t off, void *buf, size_t len)
{
	const struct mem *m = userdata;

	if (off > m->size || len > m->size - off)
		return -EIO;
	memcpy(buf, m->data + off, len);
	return 0;
}

/* The scan's decompressed output is bounded by the visitor, as rekey's is by what a key member
 * may hold: past 16 MiB, stop. */
static int visit(void *userdata, uint64_t off, const unsigned char *data, size_t len)
{
	(void)userdata, (void)data;
	return off + len > (16u << 20) ? -EFBIG : 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mem m = { data, size };
	void *out = NULL;
	size_t out_len, member_len;

	fuzz_quiet();
	/* A key member is small: what rekey asks of it (the bound keeps the fuzzer fast). */
	if (gzip_inflate(data, size, 1 << 20, &out, &out_len, &member_len) == 0)
		free(out);
	{
		struct gz_file f = { .pread = mem_pread, .userdata = &m, .size = size };
		struct gz_stream *s = NULL;

		(void)gz_stream_scan(&f, 0, visit, NULL, &s);
		gz_stream_free(s);
	}
	return 0;
}
