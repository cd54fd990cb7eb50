/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An initramfs image as a chain of cpio archives (an uncompressed early one, a compressed
 * main one, ...): find members and replace the key file in it, keeping each archive's
 * compression and every other member's contents, owner and mode. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <archive.h>
#include <archive_entry.h>

#include "initramfs.h"
#include "log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_write_free);

#define NEWC_HEADER 110

/*
 * Where an uncompressed newc archive starting at p ends (after "TRAILER!!!"), or 0. Our own
 * scan: libarchive reads a concatenation of archives but does not say where one ended, and
 * the compressed archive after it must be found at its exact offset.
 */
static size_t newc_end(const unsigned char *p, size_t len)
{
	size_t off = 0;

	while (off + NEWC_HEADER <= len) {
		char field[9] = "";
		unsigned long namesize, filesize;
		const char *name;

		if (memcmp(p + off, "07070", 5) != 0 || (p[off + 5] != '1' && p[off + 5] != '2'))
			return 0;
		memcpy(field, p + off + 6 + 6 * 8, 8);
		filesize = strtoul(field, NULL, 16);
		memcpy(field, p + off + 6 + 11 * 8, 8);
		namesize = strtoul(field, NULL, 16);
		name = (const char *)p + off + NEWC_HEADER;
		if (off + NEWC_HEADER + namesize > len)
			return 0;
		off = round_up(off + NEWC_HEADER + namesize, 4);
		off = round_up(off + filesize, 4);
		if (namesize == 11 && memcmp(name, "TRAILER!!!", 10) == 0)
			return off <= len ? off : len;
	}
	return 0;
}

struct segment {
	size_t start, end; /* end: where the next segment may start */
	bool plain;
};

/* Split the image into archives. Zero padding between them belongs to the previous one. */
static int split(const unsigned char *p, size_t len, struct segment *segs, size_t max, size_t *n)
{
	size_t off = 0;

	*n = 0;
	while (off < len) {
		size_t end;

		if (*n == max)
			return -E2BIG;
		if (len - off >= 6 && memcmp(p + off, "07070", 5) == 0) {
			end = newc_end(p + off, len - off);
			if (end == 0)
				return -EBADMSG;
			end += off;
			while (end < len && p[end] == 0)
				end++;
			segs[(*n)++] = (struct segment){ off, end, true };
		} else {
			/* A compressed archive: the kernel reads it to the end of the image. */
			segs[(*n)++] = (struct segment){ off, len, false };
			end = len;
		}
		off = end;
	}
	return 0;
}

struct membuf {
	unsigned char *data;
	size_t len, cap;
};

static la_ssize_t mem_write(struct archive *a, void *userdata, const void *buf, size_t n)
{
	struct membuf *m = userdata;

	if (m->len + n > m->cap) {
		size_t cap = (m->len + n) * 2;
		unsigned char *d = realloc(m->data, cap);

		if (!d) {
			if (a)
				archive_set_error(a, ENOMEM, "out of memory");
			return -1;
		}
		m->data = d;
		m->cap = cap;
	}
	memcpy(m->data + m->len, buf, n);
	m->len += n;
	return (la_ssize_t)n;
}

static int filter_writable(int code)
{
	/* What the kernel unpacks and libarchive writes in a form the kernel reads: gzip and
	 * zstd. Not xz (libarchive writes CRC64, the kernel wants CRC32), not lz4 (the kernel
	 * wants the legacy format). */
	return code == ARCHIVE_FILTER_NONE || code == ARCHIVE_FILTER_GZIP ||
	       code == ARCHIVE_FILTER_ZSTD;
}

static bool is_key_member(struct archive_entry *e, const unsigned char *data, size_t size,
			  const void *key, size_t key_len)
{
	const char *name = archive_entry_pathname(e);

	return name && str_ends_with(name, ".key") && archive_entry_filetype(e) == AE_IFREG &&
	       size == key_len && memcmp(data, key, key_len) == 0;
}

struct uuid_change {
	const char *old_uuid, *new_uuid; /* NULL: none */
};

/*
 * Read one archive; with out != NULL write it again with the same filter, members holding
 * old replaced by new_key (and the UUID changed, if asked). Counts the key members in *count.
 */
static int process(const char *what, const unsigned char *in, size_t len, const void *old,
		   size_t old_len, const void *new_key, size_t new_len, struct membuf *out,
		   unsigned *count, const struct uuid_change *u)
{
	_cleanup_(archive_read_freep) struct archive *r = archive_read_new();
	_cleanup_(archive_write_freep) struct archive *w = NULL;
	_cleanup_free_ unsigned char *data = NULL;
	struct archive_entry *e;
	bool unwritable = false;
	int ar, code = -1;

	if (!r)
		return log_error_errno(ENOMEM, "out of memory");
	archive_read_support_filter_all(r);
	archive_read_support_format_cpio(r);
	if (archive_read_open_memory(r, in, len) != ARCHIVE_OK)
		return log_error_errno(EBADMSG, "%s: not a cpio archive: %s", what, archive_error_string(r));

	while ((ar = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
		/* Only regular files carry data; a symlink's "size" is its target, kept in the
		 * entry itself. */
		bool regular = archive_entry_filetype(e) == AE_IFREG;
		la_int64_t size = regular ? archive_entry_size(e) : 0;
		unsigned char *d;
		bool key;

		if (code < 0) {
			code = archive_filter_code(r, 0);
			if (out && !filter_writable(code)) {
				/* Fine as long as this archive does not hold the key. */
				unwritable = true;
				out = NULL;
			}
			if (out) {
				w = archive_write_new();
				/* Level 1: the kernel unpacks any level, and rekey should take a
				 * second, not the time of gzip -6 over 100 MiB. */
				if (!w || archive_write_set_format_cpio_newc(w) != ARCHIVE_OK ||
				    archive_write_add_filter(w, code) != ARCHIVE_OK ||
				    (code != ARCHIVE_FILTER_NONE &&
				     archive_write_set_filter_option(w, NULL, "compression-level", "1") <
					     ARCHIVE_WARN) ||
				    archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
				    archive_write_open(w, out, NULL, mem_write, NULL) != ARCHIVE_OK)
					return log_error_errno(EIO, "%s: cannot write an archive: %s", what,
							       w ? archive_error_string(w) : "out of memory");
			}
		}
		if (size < 0 || size > 256 * (la_int64_t)MiB)
			return log_error_errno(EFBIG, "%s: member '%s' is too large", what,
					       archive_entry_pathname(e));
		d = realloc(data, (size_t)size + 1);
		if (!d)
			return log_error_errno(ENOMEM, "out of memory");
		data = d;
		if (size > 0 && archive_read_data(r, data, (size_t)size) != size)
			return log_error_errno(EBADMSG, "%s: cannot read '%s': %s", what,
					       archive_entry_pathname(e), archive_error_string(r));
		key = is_key_member(e, data, (size_t)size, old, old_len);
		if (key)
			(*count)++;
		if (!out)
			continue;
		if (key)
			archive_entry_set_size(e, (la_int64_t)new_len);
		if (u && u->old_uuid) {
			_cleanup_free_ char *name = strdup(archive_entry_pathname(e) ?: "");

			if (name && uuid_replace_all(name, strlen(name), u->old_uuid, u->new_uuid))
				archive_entry_set_pathname(e, name);
			if (regular && !key)
				uuid_replace_all(data, (size_t)size, u->old_uuid, u->new_uuid);
		}
		if (archive_write_header(w, e) != ARCHIVE_OK ||
		    (regular && archive_entry_size(e) > 0 &&
		     archive_write_data(w, key ? new_key : data, key ? new_len : (size_t)size) < 0))
			return log_error_errno(EIO, "%s: cannot write '%s': %s", what,
					       archive_entry_pathname(e), archive_error_string(w));
	}
	if (ar != ARCHIVE_EOF)
		return log_error_errno(EBADMSG, "%s: %s", what, archive_error_string(r));
	if (unwritable && *count > 0)
		return log_error_errno(EMEDIUMTYPE, "%s: the key is in a %s-compressed archive, which "
						"cvm-image cannot write back (gzip and zstd only)",
				       what, archive_filter_name(r, 0));
	if (w && archive_write_close(w) != ARCHIVE_OK)
		return log_error_errno(EIO, "%s: cannot write an archive: %s", what, archive_error_string(w));
	return 0;
}

static int walk(const char *what, const void *in, size_t in_len, const void *old, size_t old_len,
		const void *new_key, size_t new_len, struct membuf *out, unsigned *count,
		const struct uuid_change *u)
{
	struct segment segs[16];
	size_t n;
	int r;

	r = split(in, in_len, segs, ELEMENTSOF(segs), &n);
	if (r < 0)
		return log_error_errno(r, "%s: not a chain of cpio archives", what);
	*count = 0;
	for (size_t i = 0; i < n; i++) {
		const unsigned char *p = (const unsigned char *)in + segs[i].start;
		size_t len = segs[i].end - segs[i].start;
		unsigned found = 0;
		struct membuf seg = {};

		/* One pass: rewritten as it is read; kept only if it held the key, otherwise the
		 * original bytes go out unchanged. */
		r = process(what, p, len, old, old_len, new_key, new_len, out ? &seg : NULL, &found, u);
		if (r < 0) {
			free(seg.data);
			return r;
		}
		*count += found;
		if (!out)
			continue;
		if (!found) {
			free(seg.data);
			if (mem_write(NULL, out, p, len) < 0)
				return log_error_errno(ENOMEM, "out of memory");
			continue;
		}
		if (segs[i].plain) {
			/* Keep the plain archive's zero padding, so what follows stays aligned. */
			while (r == 0 && seg.len % 512 && seg.len < len)
				r = mem_write(NULL, &seg, "", 1) < 0 ? -ENOMEM : 0;
		}
		if (r == 0 && mem_write(NULL, out, seg.data, seg.len) < 0)
			r = log_error_errno(ENOMEM, "out of memory");
		free(seg.data);
		if (r < 0)
			return r;
	}
	return 0;
}

int initramfs_replace_key(const char *what, const void *in, size_t in_len, const void *old,
			  size_t old_len, const void *new_key, size_t new_len, void **ret,
			  size_t *ret_len, unsigned *ret_replaced)
{
	return initramfs_replace_key_uuid(what, in, in_len, old, old_len, new_key, new_len, NULL,
					  NULL, ret, ret_len, ret_replaced);
}

int initramfs_replace_key_uuid(const char *what, const void *in, size_t in_len, const void *old,
			       size_t old_len, const void *new_key, size_t new_len,
			       const char *old_uuid, const char *new_uuid, void **ret,
			       size_t *ret_len, unsigned *ret_replaced)
{
	struct uuid_change u = { old_uuid, new_uuid };
	struct membuf out = {};
	int r;

	r = walk(what, in, in_len, old, old_len, new_key, new_len, &out, ret_replaced, &u);
	if (r < 0) {
		free(out.data);
		return r;
	}
	*ret = out.data;
	*ret_len = out.len;
	return 0;
}

int initramfs_count_key(const char *what, const void *in, size_t in_len, const void *key,
			size_t key_len, unsigned *ret_count)
{
	return walk(what, in, in_len, key, key_len, NULL, 0, NULL, ret_count, NULL);
}
