/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a run of zstd frames ends, from the frame and block headers alone (RFC 8878). */
#pragma once

#include <stdint.h>

/* Reads [off, off + len) of the data: 0 or -errno (the gz_file reader has this shape). */
typedef int (*zstd_pread_fn)(void *userdata, uint64_t off, void *buf, size_t len);

/*
 * The end of the zstd frames (and skippable frames) that start at off, in data of size bytes:
 * *ret_end is the first byte after the last frame, where what follows (zero padding, the next
 * archive) begins. Nothing is decompressed. Returns 0, -EBADMSG when the data at off is not a
 * zstd frame or a frame is cut short or malformed, or what pread returned. Does not log.
 */
int zstd_frames_end(zstd_pread_fn pread, void *userdata, uint64_t off, uint64_t size,
		    uint64_t *ret_end);

/* The same over a buffer. */
int zstd_frames_end_mem(const void *p, size_t len, size_t off, size_t *ret_end);
