/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What initramfs.c (whole files) and stream.c (in pieces) share: the newc header's layout, the
 * archive writer cvm-image writes a changed archive with, and the checked reader
 * (newc-reader.c) every archive is read through. Not for use outside
 * src/initramfs/. */
#pragma once

#include <stdlib.h>
#include <string.h>

#include <archive.h>

/* A newc header: "070701" or "070702", then 13 fields of 8 hex digits. */
#define NEWC_HEADER 110

/* Field i (0: c_ino, 1: c_mode, ... 6: c_filesize, ... 11: c_namesize) of a newc header. */
static inline unsigned long newc_field(const unsigned char *h, unsigned i)
{
	char field[9] = "";

	memcpy(field, h + 6 + 8 * i, 8);
	return strtoul(field, NULL, 16);
}

/* w as a newc writer with filter code (level 1; zstd on every core) writing through
 * callback. -EIO when libarchive refuses. */
int initramfs_open_writer(struct archive *w, int code, void *userdata, archive_write_callback *callback);

/* The compression of an archive newc_read_open*() opened: ARCHIVE_FILTER_*, and its name. */
struct newc_filter {
	int code;
	const char *name; /* libarchive's, valid while the reader is */
};

/*
 * r, new, opened on the (compressed) newc archive in [p, p + len), or read through read from
 * userdata, with libarchive's cpio format: what archive_read_next_header(r) and
 * archive_read_data(r) give is what the kernel unpacks, but that each member's header is
 * checked before libarchive reads it (newc-reader.c: a name or symlink target longer than
 * PATH_MAX, which libarchive would hold whole whatever it claims, is refused, as is a header
 * that is not newc). Returns ARCHIVE_OK with *ret_filter set, or ARCHIVE_FATAL with r's error
 * saying why; r is freed by the caller either way. After archive_read_next_header()'s
 * ARCHIVE_EOF, archive_read_close(r) checks what follows the trailer (the kernel unpacks it,
 * libarchive does not): ARCHIVE_FATAL with r's error set unless it is zeros. A caller that
 * lists or changes members must call it.
 */
int newc_read_open_memory(struct archive *r, const void *p, size_t len,
			  struct newc_filter *ret_filter);
int newc_read_open(struct archive *r, void *userdata, archive_read_callback *read,
		   struct newc_filter *ret_filter);
