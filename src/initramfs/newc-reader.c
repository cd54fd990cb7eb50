/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libarchive's cpio reader on a (compressed) newc archive of an initramfs, given the
 * decompressed bytes only after each member's header has passed our own check.
 *
 * Why our own check: libarchive's cpio reader holds a member's name whole in its read-ahead
 * buffer, whatever length the header claims (up to 4 GiB, filled from a few hundred KiB of
 * gzip: the initramfs fuzzer's out-of-memory), and it has no limit to set. The kernel skips
 * a member whose name, or symlink target, is longer than PATH_MAX (init/initramfs.c,
 * do_header()), so no initramfs a distro's tool wrote has one: such an archive is refused.
 * The check stands between libarchive's decompressor (an outer reader, format raw) and its
 * cpio reader (the reader the caller gets), so the bytes are decompressed once.
 *
 * And after the trailer: libarchive's cpio reader stops there, but the kernel does not. It
 * skips the zeros after a trailer and unpacks the next archive in the same decompressed
 * stream (init/initramfs.c: SkipIt, then Reset, then Start), so members a guest hid there
 * would reach its root unseen. No initramfs tool writes one; what follows the trailer must be
 * zeros, checked as the bytes pass and, when the caller closes the reader (newc.h), to the
 * stream's end.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "newc.h"
#include "shared/util.h"

struct newc_guard {
	struct archive *outer;           /* the decompressor: format raw, every filter */
	uint64_t pos;                    /* bytes of the decompressed stream checked */
	uint64_t skip;                   /* bytes to pass before the next header */
	unsigned char hdr[NEWC_HEADER];
	size_t have;                     /* of hdr, or of the name when in_name */
	unsigned char name[11];          /* enough to tell the trailer */
	size_t namesize;
	bool in_name;
	bool done;                       /* after the trailer: libarchive reads no further */
	bool after;                      /* a byte other than zero after the trailer, at: */
	uint64_t after_at;
};

/* What may follow a trailer unread: the zeros the kernel skips, up to this much. */
#define AFTER_TRAILER_MAX (64 * 1024 * 1024)

static bool all_hex(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f') ||
		      (p[i] >= 'A' && p[i] <= 'F')))
			return false;
	return true;
}

/* The header in g->hdr, which started at byte at: fine (g set to pass its name and data), or
 * -EBADMSG with a's error set. */
static int check_header(struct archive *a, struct newc_guard *g, uint64_t at)
{
	unsigned long mode, filesize;
	char why[256];

	/* Formatted here: libarchive's archive_set_error() knows few conversions. */
	if (memcmp(g->hdr, "07070", 5) != 0 || (g->hdr[5] != '1' && g->hdr[5] != '2'))
		snprintf(why, sizeof(why), "no newc header at byte %" PRIu64 " of the uncompressed archive", at);
	else if (!all_hex(g->hdr + 6, NEWC_HEADER - 6))
		snprintf(why, sizeof(why), "the newc header at byte %" PRIu64 " has a field that is not hexadecimal", at);
	else {
		mode = newc_field(g->hdr, 1);
		filesize = newc_field(g->hdr, 6);
		g->namesize = newc_field(g->hdr, 11);
		if (g->namesize == 0 || g->namesize > PATH_MAX)
			snprintf(why, sizeof(why), "the member at byte %" PRIu64 " claims a name of %zu bytes "
				 "(the kernel skips a member whose name is empty or longer than %d)",
				 at, g->namesize, PATH_MAX);
		else if ((mode & 0170000) == 0120000 && filesize > PATH_MAX)
			snprintf(why, sizeof(why), "the symlink at byte %" PRIu64 " claims a target of %lu bytes "
				 "(the kernel skips one longer than %d)", at, filesize, PATH_MAX);
		else {
			/* The padding as libarchive counts it: the name to a multiple of 4 with
			 * the header (110 bytes), the data to a multiple of 4. */
			g->skip = ((2 - g->namesize) & 3) + (uint64_t)filesize + ((4 - (filesize & 3)) & 3);
			g->in_name = true;
			return 0;
		}
	}
	archive_set_error(a, EBADMSG, "%s", why);
	return -EBADMSG;
}

/* n more bytes of the decompressed stream: 0, or -EBADMSG with a's error set. */
static int check(struct archive *a, struct newc_guard *g, const unsigned char *p, size_t n)
{
	size_t i = 0, k;

	while (i < n && !g->after) {
		if (g->done && g->skip == 0) {
			/* After the trailer and what it claims: zeros only. */
			while (i < n && p[i] == 0)
				i++;
			if (i < n) {
				g->after = true;
				g->after_at = g->pos + i;
			}
		} else if (g->in_name) {
			/* The name: its first 11 bytes kept (the trailer's), the rest passed. */
			k = MIN(g->namesize - g->have, n - i);
			if (g->have < sizeof(g->name))
				memcpy(g->name + g->have, p + i, MIN(k, sizeof(g->name) - g->have));
			g->have += k;
			i += k;
			if (g->have < g->namesize)
				continue;
			g->in_name = false;
			g->have = 0;
			g->done = g->namesize == 11 && memcmp(g->name, "TRAILER!!!", 11) == 0;
		} else if (g->skip > 0) {
			k = (size_t)MIN(g->skip, (uint64_t)(n - i));
			g->skip -= k;
			i += k;
		} else {
			k = MIN(NEWC_HEADER - g->have, n - i);
			memcpy(g->hdr + g->have, p + i, k);
			g->have += k;
			i += k;
			if (g->have < NEWC_HEADER)
				continue;
			g->have = 0;
			if (check_header(a, g, g->pos + i - NEWC_HEADER) < 0)
				return -EBADMSG;
		}
	}
	g->pos += n;
	return 0;
}

static la_ssize_t guard_read(struct archive *a, void *userdata, const void **buf)
{
	struct newc_guard *g = userdata;
	const void *block;
	size_t size;
	la_int64_t offset;
	int ar = archive_read_data_block(g->outer, &block, &size, &offset);

	if (ar == ARCHIVE_EOF)
		return 0;
	if (ar < ARCHIVE_WARN) {
		archive_set_error(a, archive_errno(g->outer) ?: EIO, "%s",
				  archive_error_string(g->outer) ?: "cannot decompress");
		return -1;
	}
	if (check(a, g, block, size) < 0)
		return -1;
	*buf = block;
	return (la_ssize_t)size;
}

/* Closed after the trailer: the rest of the decompressed stream read and checked (zeros, at
 * most AFTER_TRAILER_MAX of them), ARCHIVE_FATAL with a's error set when it is not. */
static int guard_close(struct archive *a, void *userdata)
{
	struct newc_guard *g = userdata;
	const void *block;
	size_t size;
	la_int64_t offset;
	uint64_t trailer_end = g->pos;
	int ar = ARCHIVE_OK, r = ARCHIVE_OK;

	while (g->done && !g->after && g->pos - trailer_end <= AFTER_TRAILER_MAX &&
	       (ar = archive_read_data_block(g->outer, &block, &size, &offset)) == ARCHIVE_OK)
		(void)check(a, g, block, size);
	if (g->after) {
		archive_set_error(a, EBADMSG, "the archive goes on after its trailer (byte %" PRIu64
				  " of the uncompressed archive): the kernel unpacks what follows, "
				  "cvm-image reads no further", g->after_at);
		r = ARCHIVE_FATAL;
	} else if (g->done && ar == ARCHIVE_OK) {
		archive_set_error(a, EBADMSG, "the archive goes on for more than %d MiB after its trailer",
				  AFTER_TRAILER_MAX >> 20);
		r = ARCHIVE_FATAL;
	} else if (g->done && ar != ARCHIVE_EOF) {
		archive_set_error(a, archive_errno(g->outer) ?: EIO, "after its trailer: %s",
				  archive_error_string(g->outer) ?: "cannot decompress");
		r = ARCHIVE_FATAL;
	}
	archive_read_free(g->outer);
	free(g);
	return r;
}

/* The outer reader, opened by open_outer(outer), is set between r and the decompressed
 * stream. On failure r's error says why and the outer reader is freed. */
static int open_guarded(struct archive *r, struct archive *outer, int ar,
			struct newc_filter *ret_filter)
{
	struct archive_entry *e;
	struct newc_guard *g;

	if (ar == ARCHIVE_OK)
		ar = archive_read_next_header(outer, &e);
	if (ar != ARCHIVE_OK) {
		archive_set_error(r, archive_errno(outer) ?: EBADMSG, "%s",
				  archive_error_string(outer) ?: "empty");
		archive_read_free(outer);
		return ARCHIVE_FATAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g) {
		archive_read_free(outer);
		archive_set_error(r, ENOMEM, "out of memory");
		return ARCHIVE_FATAL;
	}
	g->outer = outer;
	*ret_filter = (struct newc_filter){ archive_filter_code(outer, 0), archive_filter_name(outer, 0) };
	archive_read_support_format_cpio(r);
	/* From here on guard_close() frees g and the outer reader, when r is freed. */
	return archive_read_open(r, g, NULL, guard_read, guard_close);
}

static struct archive *new_outer(struct archive *r)
{
	struct archive *outer = archive_read_new();

	if (!outer) {
		archive_set_error(r, ENOMEM, "out of memory");
		return NULL;
	}
	archive_read_support_filter_all(outer);
	archive_read_support_format_raw(outer);
	return outer;
}

int newc_read_open_memory(struct archive *r, const void *p, size_t len,
			  struct newc_filter *ret_filter)
{
	struct archive *outer = new_outer(r);

	if (!outer)
		return ARCHIVE_FATAL;
	return open_guarded(r, outer, archive_read_open_memory(outer, p, len), ret_filter);
}

int newc_read_open(struct archive *r, void *userdata, archive_read_callback *read,
		   struct newc_filter *ret_filter)
{
	struct archive *outer = new_outer(r);

	if (!outer)
		return ARCHIVE_FATAL;
	return open_guarded(r, outer, archive_read_open(outer, userdata, NULL, read, NULL),
			    ret_filter);
}
