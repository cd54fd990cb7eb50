/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An initramfs image as a chain of cpio archives (an uncompressed early one, a compressed
 * main one, ...): find members and replace the key file in it, keeping each archive's
 * compression and every other member's contents, owner and mode. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "gzpatch.h"
#include "initramfs.h"
#include "newc.h"
#include "zstdframe.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/util.h"


char *initramfs_path(const char *version, unsigned which)
{
	return which == 0 ? strdupf("/boot/initrd.img-%s", version) :
			    strdupf("/boot/initramfs-%s.img", version);
}

/* One member of a newc archive; offsets from the archive's start. */
struct newc {
	size_t hdr, name, namesize, data, size;
	unsigned long mode;
	bool checksum; /* "070702": the header's last field sums the data's bytes */
};

/*
 * The member at *off, *off moved past it: 1, or 0 for the trailer ("TRAILER!!!", *off then
 * after its padding), or -EBADMSG. Our own scan: libarchive reads a concatenation of archives
 * but does not say where one ended or where a member's data is, and both are needed to find
 * the compressed archive after it and to change a member in place.
 */
static int newc_next(const unsigned char *p, size_t len, size_t *off, struct newc *m)
{
	const unsigned char *h = p + *off;

	if (*off + NEWC_HEADER > len || memcmp(h, "07070", 5) != 0 || (h[5] != '1' && h[5] != '2'))
		return -EBADMSG;
	*m = (struct newc){
		.hdr = *off,
		.name = *off + NEWC_HEADER,
		.namesize = newc_field(h, 11),
		.size = newc_field(h, 6),
		.mode = newc_field(h, 1),
		.checksum = h[5] == '2',
	};
	if (m->namesize == 0 || m->namesize > len - m->name)
		return -EBADMSG;
	m->data = round_up(m->name + m->namesize, 4);
	if (m->data > len || m->size > len - m->data)
		return -EBADMSG;
	*off = round_up(m->data + m->size, 4);
	if (*off > len)
		*off = len;
	return m->namesize == 11 && memcmp(p + m->name, "TRAILER!!!", 10) == 0 ? 0 : 1;
}

/* Where an uncompressed newc archive starting at p ends (after its trailer), or 0. */
static size_t newc_end(const unsigned char *p, size_t len)
{
	size_t off = 0;
	struct newc m;
	int r;

	while ((r = newc_next(p, len, &off, &m)) > 0)
		;
	return r == 0 ? off : 0;
}

/* Whether p[s, len) is cvm-image's key archive: one uncompressed newc archive of regular
 * members named *.key (at least one), then only zero padding to the end. */
static bool is_key_archive(const unsigned char *p, size_t len, size_t s)
{
	size_t off = s;
	unsigned keys = 0;
	struct newc m;
	int r;

	while ((r = newc_next(p, len, &off, &m)) > 0) {
		if ((m.mode & 0170000) != 0100000 || m.namesize < 5 || p[m.name + m.namesize - 1] != 0 ||
		    memcmp(p + m.name + m.namesize - 5, ".key", 4) != 0)
			return false;
		keys++;
	}
	if (r < 0 || keys == 0)
		return false;
	for (; off < len; off++)
		if (p[off] != 0)
			return false;
	return true;
}

/*
 * Where the key archive that ends p starts (at a multiple of 4 from p, at or after from), or
 * len if p does not end with one. The earliest start that parses as one wins: a later
 * "start" would be one of its own members. Our own scan, because a compressed archive does
 * not say where it ends without decompressing all of it, and this is what lets rekey read
 * and write only the end of the file.
 */
static size_t key_archive_start(const unsigned char *p, size_t len, size_t from)
{
	size_t s = len > INITRAMFS_KEY_ARCHIVE_MAX ? len - INITRAMFS_KEY_ARCHIVE_MAX : 0;

	for (s = round_up(s > from ? s : from, 4); s < len && len - s >= NEWC_HEADER; s += 4)
		if (memcmp(p + s, "07070", 5) == 0 && is_key_archive(p, len, s))
			return s;
	return len;
}

struct segment {
	size_t start, end; /* end: where the next segment may start */
	size_t data_end;   /* where its own bytes end: the zero padding after them not included */
	bool plain;
	bool zeros;        /* zeros before the first archive: the kernel skips them */
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
		if (p[off] == 0) {
			/* Zeros where an archive could start: the kernel skips them, so must we
			 * (padding after an archive already belongs to it: these lead the file). */
			for (end = off; end < len && p[end] == 0;)
				end++;
			segs[(*n)++] = (struct segment){ off, end, end, false, true };
		} else if (len - off >= 6 && memcmp(p + off, "07070", 5) == 0) {
			end = newc_end(p + off, len - off);
			if (end == 0)
				return -EBADMSG;
			end += off;
			while (end < len && p[end] == 0)
				end++;
			segs[(*n)++] = (struct segment){ off, end, end, true };
		} else if (len - off >= 4 && memcmp(p + off, "\x28\xb5\x2f\xfd", 4) == 0) {
			/* zstd: its frames say where it ends (libarchive would read on into the
			 * padding and fail), then zero padding and perhaps more archives. */
			size_t data_end;

			if (zstd_frames_end_mem(p, len, off, &data_end) < 0)
				return -EBADMSG;
			for (end = data_end; end < len && p[end] == 0;)
				end++;
			segs[(*n)++] = (struct segment){ off, end, data_end, false };
		} else {
			/* Another compressed archive (gzip members carry on through padding): to
			 * the end of the image, or to the key archive cvm-image build put after it. */
			end = key_archive_start(p, len, off + 1);
			segs[(*n)++] = (struct segment){ off, end, end, false };
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

	if (greedy_realloc((void **)&m->data, &m->cap, m->len + n, 1) < 0) {
		if (a)
			archive_set_error(a, ENOMEM, "out of memory");
		return -1;
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

/* A key member: a regular file named *.key holding exactly key. */
static bool is_key(const char *name, size_t name_len, bool regular, const unsigned char *data,
		   size_t size, const void *key, size_t key_len)
{
	return regular && name_len >= 4 && memcmp(name + name_len - 4, ".key", 4) == 0 &&
	       size == key_len && memcmp(data, key, key_len) == 0;
}

struct uuid_change {
	const char *old_uuid, *new_uuid; /* NULL: none */
	const char *old_pin, *new_pin;   /* the volume key's pin (*.pin members), NULL: none */
};

/* A pin member: a regular file named *.pin holding exactly the old pin. */
static bool is_pin(const char *name, size_t name_len, bool regular, const unsigned char *data,
		   size_t size, const struct uuid_change *u)
{
	return u && u->old_pin && regular && name_len >= 4 &&
	       memcmp(name + name_len - 4, ".pin", 4) == 0 && size == strlen(u->old_pin) &&
	       memcmp(data, u->old_pin, size) == 0;
}

/* w set up to write a newc archive compressed with code into callback. */
int initramfs_open_writer(struct archive *w, int code, void *userdata, archive_write_callback *callback)
{
	/* Level 1: the kernel unpacks any level, and rekey should take a second, not the time
	 * of gzip -6 over 100 MiB. */
	if (archive_write_set_format_cpio_newc(w) != ARCHIVE_OK ||
	    archive_write_add_filter(w, code) != ARCHIVE_OK ||
	    (code != ARCHIVE_FILTER_NONE &&
	     archive_write_set_filter_option(w, NULL, "compression-level", "1") < ARCHIVE_WARN) ||
	    /* zstd on every core (0: one thread per core). */
	    (code == ARCHIVE_FILTER_ZSTD &&
	     archive_write_set_filter_option(w, NULL, "threads", "0") < ARCHIVE_WARN) ||
	    archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
	    archive_write_open(w, userdata, NULL, callback, NULL) != ARCHIVE_OK)
		return -EIO;
	return 0;
}

/* With a UUID change asked for, e renamed where its name holds the old UUID (name: its name). */
static void rename_member(struct archive_entry *e, const char *name, const struct uuid_change *u,
			  unsigned *changed)
{
	_cleanup_free_ char *renamed = NULL;

	if (!u || !u->old_uuid)
		return;
	renamed = strdup(name);
	if (renamed && uuid_replace_all(renamed, strlen(renamed), u->old_uuid, u->new_uuid)) {
		archive_entry_set_pathname(e, renamed);
		(*changed)++;
	}
}

/* Whether process() holds a member's data whole: where it may change, a key or pin candidate
 * by its name and length, or (rewriting with a UUID change) a member that may carry the UUID,
 * up to 16 MiB (a config, not a module). Every other member is copied (or skipped) a piece at
 * a time, so a member's claimed size allocates nothing. */
static bool held_whole(bool regular, la_int64_t size, const char *name, size_t old_len,
		       bool rewriting, const struct uuid_change *u)
{
	return regular && size > 0 &&
	       ((size == (la_int64_t)old_len && str_ends_with(name, ".key")) ||
		(u && u->old_pin && size == (la_int64_t)strlen(u->old_pin) &&
		 str_ends_with(name, ".pin")) ||
		(rewriting && u && u->old_uuid && size <= 16 * (la_int64_t)MiB));
}

/* e's header, then its data a piece at a time, from r to w. Logs. */
static int copy_member(const char *what, struct archive *r, struct archive *w,
		       struct archive_entry *e, bool regular)
{
	unsigned char piece[16384];
	la_ssize_t got;

	if (archive_write_header(w, e) != ARCHIVE_OK)
		return log_error_errno(EIO, "%s: cannot write '%s': %s", what,
				       archive_entry_pathname(e), archive_error_string(w));
	while (regular && (got = archive_read_data(r, piece, sizeof(piece))) != 0)
		if (got < 0 || archive_write_data(w, piece, (size_t)got) != got)
			return log_error_errno(EIO, "%s: cannot copy '%s': %s", what,
					       archive_entry_pathname(e),
					       archive_error_string(got < 0 ? r : w));
	return 0;
}

/*
 * Read one archive; with out != NULL write it again with the same filter, members holding
 * old replaced by new_key (and the UUID changed, if asked). Counts the key members in *count.
 */
static int process(const char *what, const unsigned char *in, size_t len, const void *old,
		   size_t old_len, const void *new_key, size_t new_len, struct membuf *out,
		   unsigned *count, unsigned *changed, const struct uuid_change *u)
{
	_cleanup_(archive_read_freep) struct archive *r = archive_read_new();
	_cleanup_(archive_write_freep) struct archive *w = NULL;
	_cleanup_free_ unsigned char *data = NULL;
	struct archive_entry *e;
	struct newc_filter filter;
	bool unwritable = false;
	int ar;

	if (!r)
		return log_error_errno(ENOMEM, "out of memory");
	if (newc_read_open_memory(r, in, len, &filter) != ARCHIVE_OK)
		return log_error_errno(EBADMSG, "%s: cannot read a cpio archive: %s", what, archive_error_string(r));
	if (out && !filter_writable(filter.code)) {
		/* Fine as long as this archive does not hold the key. */
		unwritable = true;
		out = NULL;
	}
	if (out && (!(w = archive_write_new()) || initramfs_open_writer(w, filter.code, out, mem_write) < 0))
		return log_error_errno(w ? EIO : ENOMEM, "%s: cannot write an archive: %s", what,
				       w ? archive_error_string(w) : "out of memory");

	while ((ar = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
		/* Only regular files carry data; a symlink's "size" is its target, kept in the
		 * entry itself. */
		bool regular = archive_entry_filetype(e) == AE_IFREG;
		la_int64_t size = regular ? archive_entry_size(e) : 0;
		const char *name = archive_entry_pathname(e) ?: "";
		unsigned char *d;
		bool key, pin;
		int k;

		if (size < 0)
			return log_error_errno(EBADMSG, "%s: member '%s' has a negative size", what, name);
		if (!held_whole(regular, size, name, old_len, out != NULL, u)) {
			if (!out)
				continue; /* libarchive skips the data */
			rename_member(e, name, u, changed);
			k = copy_member(what, r, w, e, regular);
			if (k < 0)
				return k;
			continue;
		}
		d = realloc(data, (size_t)size + 1);
		if (!d)
			return log_error_errno(ENOMEM, "out of memory");
		data = d;
		if (archive_read_data(r, data, (size_t)size) != size)
			return log_error_errno(EBADMSG, "%s: cannot read '%s': %s", what, name,
					       archive_error_string(r));
		key = is_key(name, strlen(name), regular, data, (size_t)size, old, old_len);
		pin = is_pin(name, strlen(name), regular, data, (size_t)size, u);
		if (pin) {
			memcpy(data, u->new_pin, (size_t)size); /* as long: the format is fixed */
			(*changed)++;
		}
		if (key)
			(*count)++;
		if (!out)
			continue;
		if (key)
			archive_entry_set_size(e, (la_int64_t)new_len);
		if (u && u->old_uuid && !key && !pin &&
		    uuid_replace_all(data, (size_t)size, u->old_uuid, u->new_uuid))
			(*changed)++;
		rename_member(e, name, u, changed);
		if (archive_write_header(w, e) != ARCHIVE_OK ||
		    archive_write_data(w, key ? new_key : data, key ? new_len : (size_t)size) < 0)
			return log_error_errno(EIO, "%s: cannot write '%s': %s", what,
					       archive_entry_pathname(e), archive_error_string(w));
	}
	if (ar != ARCHIVE_EOF || archive_read_close(r) != ARCHIVE_OK)
		return log_error_errno(EBADMSG, "%s: %s", what, archive_error_string(r));
	if (unwritable && (*count > 0 || *changed > 0))
		return log_error_errno(EMEDIUMTYPE, "%s: the %s is in a %s-compressed archive, which "
						"cvm-image cannot write back (gzip and zstd only)",
				       what, *count > 0 ? "key" : "LUKS UUID or pin",
				       filter.name);
	if (w && archive_write_close(w) != ARCHIVE_OK)
		return log_error_errno(EIO, "%s: cannot write an archive: %s", what, archive_error_string(w));
	return 0;
}

struct ranges {
	struct gz_range *r;
	size_t n, cap;
};

static int add_range(struct ranges *rs, size_t start, size_t end)
{
	if (greedy_realloc((void **)&rs->r, &rs->cap, rs->n + 1, sizeof(*rs->r)) < 0)
		return -ENOMEM;
	rs->r[rs->n++] = (struct gz_range){ start, end };
	return 0;
}

/*
 * The key members in the uncompressed archives a (one or more newc archives, zero padding
 * between them), counted in *count; with rs, each replaced in place by new_key (old_len
 * bytes too) and the UUID changed as asked, the ranges changed added to rs in ascending order.
 * Returns 0, or -EBADMSG for what is not a newc chain (the caller's libarchive path says what).
 */
static int scan_newc(unsigned char *a, size_t len, const void *old, size_t old_len,
		     const void *new_key, struct ranges *rs, unsigned *count,
		     const struct uuid_change *u)
{
	size_t off = 0;

	while (off < len) {
		struct newc m;
		int r = newc_next(a, len, &off, &m);

		if (r < 0)
			return r;
		if (r == 0) {
			while (off < len && a[off] == 0)
				off++;
			continue;
		}
		bool regular = (m.mode & 0170000) == 0100000;
		bool key = is_key((const char *)a + m.name, m.namesize - 1, regular, a + m.data, m.size,
				  old, old_len);
		bool pin = is_pin((const char *)a + m.name, m.namesize - 1, regular, a + m.data,
				  m.size, u);
		bool name_changed = false, data_changed = false;

		if (key)
			(*count)++;
		if (!rs)
			continue;
		if (key) {
			memcpy(a + m.data, new_key, old_len);
			data_changed = true;
		}
		if (pin) {
			memcpy(a + m.data, u->new_pin, m.size);
			data_changed = true;
		}
		if (u && u->old_uuid) {
			name_changed = uuid_replace_all(a + m.name, m.namesize - 1, u->old_uuid,
							u->new_uuid) > 0;
			if (regular && !key && !pin)
				data_changed = uuid_replace_all(a + m.data, m.size, u->old_uuid,
								u->new_uuid) > 0;
		}
		if (data_changed && m.checksum) {
			uint32_t sum = 0;
			char field[9];

			for (size_t i = 0; i < m.size; i++)
				sum += a[m.data + i];
			snprintf(field, sizeof(field), "%08X", sum);
			memcpy(a + m.hdr + 6 + 8 * 12, field, 8);
			r = add_range(rs, m.hdr + 6 + 8 * 12, m.hdr + 6 + 8 * 13);
			if (r < 0)
				return r;
		}
		if (name_changed && (r = add_range(rs, m.name, m.name + m.namesize)) < 0)
			return r;
		if (data_changed && (r = add_range(rs, m.data, m.data + m.size)) < 0)
			return r;
	}
	return 0;
}

/*
 * process() without libarchive, for the archives that can be changed in place: plain newc,
 * and gzip, where only the deflate blocks around the key are compressed again (gzpatch.c)
 * instead of all of the archive, seconds for a large initramfs. -EOPNOTSUPP: not one of those
 * (another compression, a key of another length, data after a gzip member), use process().
 */
static int process_in_place(const char *what, const unsigned char *in, size_t len, bool plain,
			    const void *old, size_t old_len, const void *new_key, size_t new_len,
			    struct membuf *out, unsigned *count, const struct uuid_change *u)
{
	_cleanup_free_ unsigned char *data = NULL;
	_cleanup_free_ void *member = NULL;
	struct ranges rs = {};
	size_t data_len = len, member_len = len;
	unsigned char *a;
	int r;

	if (out && new_len != old_len)
		return -EOPNOTSUPP;
	if (plain && !out) {
		/* Only counted: scan_newc() writes nothing without ranges to fill. */
		a = (unsigned char *)in;
	} else if (plain) {
		a = data = malloc(len ?: 1);
		if (!data)
			return -ENOMEM;
		memcpy(data, in, len);
	} else {
		if (len < 3 || in[0] != 0x1f || in[1] != 0x8b || in[2] != 8)
			return -EOPNOTSUPP;
		/* Whole in memory up to 256 MiB of data; a larger (or a bomb's) archive goes
		 * through process(), a piece at a time. */
		r = gzip_inflate(in, len, 256 * MiB, (void **)&data, &data_len, &member_len);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			return -EOPNOTSUPP;
		for (size_t i = member_len; i < len; i++)
			if (in[i] != 0)
				return -EOPNOTSUPP;
		a = data;
	}
	r = scan_newc(a, data_len, old, old_len, new_key, out ? &rs : NULL, count, u);
	if (r < 0 || !out)
		goto done;
	/* Unchanged archives go out as they came. */
	if (rs.n == 0)
		r = mem_write(NULL, out, in, len) < 0 ? -ENOMEM : 0;
	else if (plain)
		r = mem_write(NULL, out, data, data_len) < 0 ? -ENOMEM : 0;
	else {
		size_t patched_len, redone;

		r = gzip_patch(in, member_len, data, data_len, rs.r, rs.n, &member, &patched_len,
			       &redone);
		if (r == 0 && (mem_write(NULL, out, member, patched_len) < 0 ||
			       mem_write(NULL, out, in + member_len, len - member_len) < 0))
			r = -ENOMEM;
		if (r == 0)
			log_debug("%s: gzip archive changed in place: %zu of %zu bytes compressed again",
				  what, redone, data_len);
	}
done:
	free(rs.r);
	return r == -EBADMSG ? -EOPNOTSUPP : r;
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
		size_t len = segs[i].data_end - segs[i].start, padded = segs[i].end - segs[i].start;
		unsigned found = 0, changed = 0;
		struct membuf seg = {};

		if (segs[i].zeros) {
			if (out && mem_write(NULL, out, p, padded) < 0)
				return log_error_errno(ENOMEM, "out of memory");
			continue;
		}

		/* An archive after one written again starts where the kernel looks for it: at a
		 * multiple of 4 (zeros are skipped). */
		while (out && segs[i].plain && out->len % 4)
			if (mem_write(NULL, out, "", 1) < 0)
				return log_error_errno(ENOMEM, "out of memory");
		/* Changed in place where the compression allows it. */
		r = process_in_place(what, p, len, segs[i].plain, old, old_len, new_key, new_len, out,
				     &found, u);
		if (r == -ENOMEM)
			return log_error_errno(r, "out of memory");
		if (r == 0) {
			*count += found;
			/* The zero padding after a compressed archive, as it was. */
			if (out && mem_write(NULL, out, p + len, padded - len) < 0)
				return log_error_errno(ENOMEM, "out of memory");
			continue;
		}
		/* Otherwise in one pass through libarchive: rewritten as it is read; kept only if
		 * it held the key or another change (a new UUID or pin in a distro's member),
		 * otherwise the original bytes go out unchanged. */
		found = 0;
		r = process(what, p, len, old, old_len, new_key, new_len, out ? &seg : NULL, &found,
			    &changed, u);
		if (r < 0) {
			free(seg.data);
			return r;
		}
		*count += found;
		if (!out)
			continue;
		if (!found && !changed) {
			free(seg.data);
			if (mem_write(NULL, out, p, padded) < 0)
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
					  NULL, NULL, NULL, ret, ret_len, ret_replaced);
}

int initramfs_replace_key_uuid(const char *what, const void *in, size_t in_len, const void *old,
			       size_t old_len, const void *new_key, size_t new_len,
			       const char *old_uuid, const char *new_uuid, const char *old_pin,
			       const char *new_pin, void **ret, size_t *ret_len,
			       unsigned *ret_replaced)
{
	struct uuid_change u = { old_uuid, new_uuid, old_pin, new_pin };
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

/* A member's path as the kernel resolves it from '/': without a leading "./" or "/". */
static const char *member_path(const char *name)
{
	for (;;) {
		if (name[0] == '/')
			name++;
		else if (name[0] == '.' && name[1] == '/')
			name += 2;
		else
			return name;
	}
}

void initramfs_members_done(struct initramfs_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(m[i].name);
}

/* A libarchive reader of one segment's own bytes (its padding not included). Logs. */
static int open_segment(const char *what, const void *in, const struct segment *seg,
			struct archive **ret)
{
	struct archive *a = archive_read_new();
	struct newc_filter filter;

	if (!a)
		return log_error_errno(ENOMEM, "out of memory");
	if (newc_read_open_memory(a, (const unsigned char *)in + seg->start,
				  seg->data_end - seg->start, &filter) != ARCHIVE_OK) {
		log_error_errno(EBADMSG, "%s: cannot read a cpio archive: %s", what, archive_error_string(a));
		archive_read_free(a);
		return -EBADMSG;
	}
	*ret = a;
	return 0;
}

/* Each member of each archive of the chain, in order, as the kernel unpacks them, given to
 * visit with its reader (the member's data not yet read). Logs. */
static int for_each_member(const char *what, const void *in, size_t in_len,
			   int (*visit)(struct archive *a, struct archive_entry *e, void *userdata),
			   void *userdata)
{
	struct segment segs[16];
	size_t n;
	int r;

	r = split(in, in_len, segs, ELEMENTSOF(segs), &n);
	if (r < 0)
		return log_error_errno(r, "%s: not a chain of cpio archives", what);
	for (size_t i = 0; i < n; i++) {
		_cleanup_(archive_read_freep) struct archive *a = NULL;
		struct archive_entry *e;
		int ar;

		if (segs[i].zeros)
			continue;
		r = open_segment(what, in, &segs[i], &a);
		if (r < 0)
			return r;
		while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK) {
			r = visit(a, e, userdata);
			if (r < 0)
				return r;
		}
		if (ar != ARCHIVE_EOF || archive_read_close(a) != ARCHIVE_OK)
			return log_error_errno(EBADMSG, "%s: %s", what, archive_error_string(a));
	}
	return 0;
}

struct member_scan {
	const char *what;
	const void *key;
	size_t key_len;
	struct initramfs_member *ret;
	size_t max, *ret_n;
	struct initramfs_text *text;
};

static int scan_member(struct archive *a, struct archive_entry *e, void *userdata)
{
	struct member_scan *m = userdata;
	const char *name = archive_entry_pathname(e) ?: "";
	bool regular = archive_entry_filetype(e) == AE_IFREG;
	struct initramfs_member *ret = m->ret;
	size_t found = *m->ret_n, slot;
	unsigned char buf[1024];
	la_ssize_t got;

	if (m->text && regular && streq(member_path(name), member_path(m->text->name))) {
		got = archive_read_data(a, m->text->buf, m->text->max - 1);
		m->text->buf[got > 0 ? got : 0] = '\0';
		m->text->found = true;
		return 0;
	}
	if (!str_ends_with(name, ".key"))
		return 0; /* libarchive skips the data */
	/* What the kernel unpacks: a later member of the same name replaces the earlier one
	 * (its contents, owner and mode). */
	for (slot = 0; slot < found; slot++)
		if (strcmp(member_path(ret[slot].name), member_path(name)) == 0)
			break;
	if (slot < found) {
		free(ret[slot].name);
		ret[slot] = ret[found - 1];
		found--;
		*m->ret_n = found;
	} else if (found == m->max) {
		return log_error_errno(E2BIG, "%s: more than %zu key members", m->what, m->max);
	}
	ret[found] = (struct initramfs_member){
		.name = strdup(name),
		.mode = archive_entry_perm(e),
		.regular = regular,
	};
	if (!ret[found].name)
		return log_error_errno(ENOMEM, "out of memory");
	*m->ret_n = ++found;
	if (!regular || archive_entry_size(e) != (la_int64_t)m->key_len || m->key_len > sizeof(buf))
		return 0;
	got = archive_read_data(a, buf, m->key_len);
	ret[found - 1].holds_key = got == (la_ssize_t)m->key_len && !memcmp(buf, m->key, m->key_len);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

int initramfs_scan(const char *what, const void *in, size_t in_len, const void *key,
		   size_t key_len, struct initramfs_member *ret, size_t max, size_t *ret_n,
		   struct initramfs_text *text)
{
	struct member_scan m = { what, key, key_len, ret, max, ret_n, text };
	int r;

	*ret_n = 0;
	if (text)
		text->found = false;
	r = for_each_member(what, in, in_len, scan_member, &m);
	/* On an error, what was found so far is freed here (the fuzzer found it leaked). */
	if (r < 0) {
		initramfs_members_done(ret, *ret_n);
		*ret_n = 0;
	}
	return r;
}

int initramfs_key_members(const char *what, const void *in, size_t in_len, const void *key,
			  size_t key_len, struct initramfs_member *ret, size_t max, size_t *ret_n)
{
	return initramfs_scan(what, in, in_len, key, key_len, ret, max, ret_n, NULL);
}

/* One newc member (or the trailer: name "TRAILER!!!", no data) appended to out. */
static int newc_append(struct membuf *out, unsigned ino, unsigned mode, const char *name,
		       const void *data, size_t size)
{
	static const unsigned char zeros[4];
	char hdr[NEWC_HEADER + 1];
	size_t namesize = strlen(name) + 1;

	snprintf(hdr, sizeof(hdr),
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X", ino & 0xffffffffu,
		 mode & 0xffffffffu, 0u, 0u, mode ? 1u : 0u, 0u, (unsigned)size & 0xffffffffu, 0u, 0u,
		 0u, 0u, (unsigned)namesize & 0xffffffffu, 0u);
	if (mem_write(NULL, out, hdr, NEWC_HEADER) < 0 || mem_write(NULL, out, name, namesize) < 0 ||
	    mem_write(NULL, out, zeros, round_up(NEWC_HEADER + namesize, 4) - NEWC_HEADER - namesize) < 0 ||
	    (size && mem_write(NULL, out, data, size) < 0) ||
	    mem_write(NULL, out, zeros, round_up(size, 4) - size) < 0)
		return -ENOMEM;
	return 0;
}

int initramfs_move_key(const char *what, const void *in, size_t in_len, const void *key,
		       size_t key_len, void **ret, size_t *ret_len, unsigned *ret_moved)
{
	struct initramfs_member m[16];
	_cleanup_free_ void *zeros = calloc(1, key_len ?: 1);
	struct membuf out = {};
	size_t n, moved = 0;
	unsigned replaced;
	int r;

	*ret = NULL;
	*ret_len = 0;
	*ret_moved = 0;
	if (!zeros)
		return log_error_errno(ENOMEM, "out of memory");
	r = initramfs_key_members(what, in, in_len, key, key_len, m, ELEMENTSOF(m), &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		moved += m[i].holds_key && m[i].regular;
	if (moved == 0)
		goto done;
	/* Every copy in the distro's archives zeroed (same length: plain and gzip are changed
	 * in place), then the key once more in an archive of its own after them. */
	r = initramfs_replace_key(what, in, in_len, key, key_len, zeros, key_len,
				  (void **)&out.data, &out.len, &replaced);
	if (r < 0)
		goto done;
	out.cap = out.len;
	while (r == 0 && out.len % 512)
		r = mem_write(NULL, &out, "", 1) < 0 ? -ENOMEM : 0;
	for (size_t i = 0; r == 0 && i < n; i++)
		if (m[i].holds_key && m[i].regular)
			r = newc_append(&out, 0xc0de0000u + (unsigned)i, 0100000u | (m[i].mode & 07777),
					m[i].name, key, key_len);
	if (r == 0)
		r = newc_append(&out, 0, 0, "TRAILER!!!", NULL, 0);
	while (r == 0 && out.len % 512)
		r = mem_write(NULL, &out, "", 1) < 0 ? -ENOMEM : 0;
	if (r < 0) {
		r = log_error_errno(r, "out of memory");
		goto done;
	}
	*ret = TAKE_PTR(out.data);
	*ret_len = out.len;
	*ret_moved = (unsigned)moved;
done:
	if (out.data)
		explicit_bzero(out.data, out.cap);
	free(out.data);
	initramfs_members_done(m, n);
	return r;
}

int initramfs_key_archive(const void *tail, size_t len, size_t key_len, size_t *ret_offs,
			  size_t max)
{
	const unsigned char *p = tail;
	size_t s = key_archive_start(p, len, 0), off, n = 0;
	struct newc m;

	if (s == len)
		return 0;
	off = s;
	while (newc_next(p, len, &off, &m) > 0) {
		/* Written by initramfs_move_key(): no checksum to keep, the key's length. */
		if (m.checksum || m.size != key_len || n == max)
			return 0;
		ret_offs[n++] = m.data;
	}
	return (int)n;
}
