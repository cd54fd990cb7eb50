/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What initramfs.c (whole files) and stream.c (in pieces) share: the newc header's layout and
 * the archive writer cvm-image writes a changed archive with. Not for use outside
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
