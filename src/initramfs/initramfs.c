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
#include "zstdframe.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/util.h"


#define NEWC_HEADER 110

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

static unsigned long newc_field(const unsigned char *h, unsigned i)
{
	char field[9] = "";

	memcpy(field, h + 6 + 8 * i, 8);
	return strtoul(field, NULL, 16);
}

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
static int open_writer(struct archive *w, int code, void *userdata, archive_write_callback *callback)
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
		const char *name;
		bool key, pin;

		if (code < 0) {
			code = archive_filter_code(r, 0);
			if (out && !filter_writable(code)) {
				/* Fine as long as this archive does not hold the key. */
				unwritable = true;
				out = NULL;
			}
			if (out) {
				w = archive_write_new();
				if (!w)
					return log_error_errno(ENOMEM, "out of memory");
				if (open_writer(w, code, out, mem_write) < 0)
					return log_error_errno(EIO, "%s: cannot write an archive: %s", what,
							       archive_error_string(w));
			}
		}
		if (size < 0)
			return log_error_errno(EBADMSG, "%s: member '%s' has a negative size", what,
					       archive_entry_pathname(e));
		name = archive_entry_pathname(e) ?: "";
		/* Held whole only where it may change: a key or pin candidate by its name and
		 * length, a member that may carry the UUID (up to 16 MiB: a config, not a
		 * module); every other member is copied (or skipped) a piece at a time, so a
		 * member's claimed size allocates nothing. */
		if (!(regular && size > 0 &&
		      ((size == (la_int64_t)old_len && str_ends_with(name, ".key")) ||
		       (u && u->old_pin && size == (la_int64_t)strlen(u->old_pin) &&
			str_ends_with(name, ".pin")) ||
		       (out && u && u->old_uuid && size <= 16 * (la_int64_t)MiB)))) {
			unsigned char piece[16384];
			la_ssize_t got;

			if (!out)
				continue; /* libarchive skips the data */
			if (u && u->old_uuid) {
				_cleanup_free_ char *renamed = strdup(name);

				if (renamed && uuid_replace_all(renamed, strlen(renamed), u->old_uuid,
								u->new_uuid)) {
					archive_entry_set_pathname(e, renamed);
					(*changed)++;
				}
			}
			if (archive_write_header(w, e) != ARCHIVE_OK)
				return log_error_errno(EIO, "%s: cannot write '%s': %s", what,
						       archive_entry_pathname(e), archive_error_string(w));
			while (regular && (got = archive_read_data(r, piece, sizeof(piece))) != 0)
				if (got < 0 || archive_write_data(w, piece, (size_t)got) != got)
					return log_error_errno(EIO, "%s: cannot copy '%s': %s", what,
							       archive_entry_pathname(e),
							       archive_error_string(got < 0 ? r : w));
			continue;
		}
		d = realloc(data, (size_t)size + 1);
		if (!d)
			return log_error_errno(ENOMEM, "out of memory");
		data = d;
		if (size > 0 && archive_read_data(r, data, (size_t)size) != size)
			return log_error_errno(EBADMSG, "%s: cannot read '%s': %s", what,
					       archive_entry_pathname(e), archive_error_string(r));
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
		if (u && u->old_uuid) {
			_cleanup_free_ char *renamed = strdup(name);

			if (renamed && uuid_replace_all(renamed, strlen(renamed), u->old_uuid, u->new_uuid)) {
				archive_entry_set_pathname(e, renamed);
				(*changed)++;
			}
			if (regular && !key && !pin &&
			    uuid_replace_all(data, (size_t)size, u->old_uuid, u->new_uuid))
				(*changed)++;
		}
		if (archive_write_header(w, e) != ARCHIVE_OK ||
		    (regular && archive_entry_size(e) > 0 &&
		     archive_write_data(w, key ? new_key : data, key ? new_len : (size_t)size) < 0))
			return log_error_errno(EIO, "%s: cannot write '%s': %s", what,
					       archive_entry_pathname(e), archive_error_string(w));
	}
	if (ar != ARCHIVE_EOF)
		return log_error_errno(EBADMSG, "%s: %s", what, archive_error_string(r));
	if (unwritable && (*count > 0 || *changed > 0))
		return log_error_errno(EMEDIUMTYPE, "%s: the %s is in a %s-compressed archive, which "
						"cvm-image cannot write back (gzip and zstd only)",
				       what, *count > 0 ? "key" : "LUKS UUID or pin",
				       archive_filter_name(r, 0));
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

	if (!a)
		return log_error_errno(ENOMEM, "out of memory");
	archive_read_support_filter_all(a);
	archive_read_support_format_cpio(a);
	if (archive_read_open_memory(a, (const unsigned char *)in + seg->start,
				     seg->data_end - seg->start) != ARCHIVE_OK) {
		log_error_errno(EBADMSG, "%s: not a cpio archive: %s", what, archive_error_string(a));
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
		if (ar != ARCHIVE_EOF)
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

/* ---- Streaming: an initramfs read and changed in pieces (initramfs.h) ---- */

#define PIECE (256u * 1024u)

/* A member holding a key: where its data is, in the file (plain archive) or in the gzip
 * member's uncompressed data, and where its header is (for a 070702 checksum). */
struct key_hit {
	uint64_t data, hdr;
	bool checksum, is_new;
};

#define MAX_HITS 16

/* A newc archive (or, after zero padding, several) parsed as its bytes come. */
struct newc_scan {
	const unsigned char *old_key, *new_key;
	size_t key_len;
	bool plain;               /* an archive in the file itself: done at its trailer */
	enum { NS_GAP, NS_HEADER, NS_NAME, NS_NAME_PAD, NS_DATA, NS_DATA_PAD, NS_DONE } state;
	unsigned char hdr[NEWC_HEADER];
	char name[4096];
	size_t have;              /* of the header, the name or the data kept */
	uint64_t left;            /* bytes of the current state still to come */
	uint64_t hdr_off, data_off, size, end;
	unsigned long mode, namesize;
	bool checksum, candidate, trailer;
	unsigned char data[64];   /* a candidate's data (a key is 44 bytes) */
	struct key_hit hits[MAX_HITS];
	size_t n_hits;
};

/* The transitions that take no byte. */
static int newc_settle(struct newc_scan *s, uint64_t pos)
{
	for (;;) {
		switch (s->state) {
		case NS_NAME_PAD:
			if (s->left)
				return 0;
			s->state = NS_DATA;
			s->left = s->size;
			s->have = 0;
			break;
		case NS_DATA:
			if (s->left)
				return 0;
			if (s->candidate && s->have == s->key_len) {
				bool old = memcmp(s->data, s->old_key, s->key_len) == 0;
				bool new = s->new_key && memcmp(s->data, s->new_key, s->key_len) == 0;

				if (old || new) {
					if (s->n_hits == MAX_HITS)
						return -E2BIG;
					s->hits[s->n_hits++] = (struct key_hit){
						s->data_off, s->hdr_off, s->checksum, !old,
					};
				}
			}
			s->state = NS_DATA_PAD;
			s->left = round_up(s->data_off + s->size, 4) - (s->data_off + s->size);
			break;
		case NS_DATA_PAD:
			if (s->left)
				return 0;
			if (s->trailer && s->plain) {
				s->state = NS_DONE;
				s->end = pos;
			} else {
				s->state = s->trailer ? NS_GAP : NS_HEADER;
				s->have = 0;
				s->hdr_off = pos;
			}
			break;
		default:
			return 0;
		}
	}
}

/* A gz_visit_fn, and the reader of plain archives: the bytes at off of the stream. */
static int newc_feed(void *userdata, uint64_t off, const unsigned char *p, size_t len)
{
	struct newc_scan *s = userdata;
	size_t i = 0, n;
	int r;

	while ((r = newc_settle(s, off + i)) == 0 && i < len && s->state != NS_DONE) {
		switch (s->state) {
		case NS_GAP:
			/* Zeros between archives; the next one starts at a multiple of 4. */
			if (p[i] == 0) {
				i++;
				break;
			}
			if ((off + i) % 4)
				return -EBADMSG;
			s->state = NS_HEADER;
			s->have = 0;
			s->hdr_off = off + i;
			break;
		case NS_HEADER:
			n = MIN(NEWC_HEADER - s->have, len - i);
			memcpy(s->hdr + s->have, p + i, n);
			s->have += n;
			i += n;
			if (s->have < NEWC_HEADER)
				break;
			if (memcmp(s->hdr, "07070", 5) != 0 || (s->hdr[5] != '1' && s->hdr[5] != '2'))
				return -EBADMSG;
			s->namesize = newc_field(s->hdr, 11);
			s->size = newc_field(s->hdr, 6);
			s->mode = newc_field(s->hdr, 1);
			s->checksum = s->hdr[5] == '2';
			if (s->namesize == 0 || s->namesize > sizeof(s->name))
				return -EBADMSG;
			s->state = NS_NAME;
			s->have = 0;
			break;
		case NS_NAME:
			n = MIN(s->namesize - s->have, len - i);
			memcpy(s->name + s->have, p + i, n);
			s->have += n;
			i += n;
			if (s->have < s->namesize)
				break;
			if (s->name[s->namesize - 1] != 0)
				return -EBADMSG;
			s->trailer = streq(s->name, "TRAILER!!!");
			s->candidate = (s->mode & 0170000) == 0100000 && s->size == s->key_len &&
				       s->key_len <= sizeof(s->data) && str_ends_with(s->name, ".key");
			s->data_off = round_up(s->hdr_off + NEWC_HEADER + s->namesize, 4);
			s->left = s->data_off - (s->hdr_off + NEWC_HEADER + s->namesize);
			s->state = NS_NAME_PAD;
			break;
		case NS_NAME_PAD:
		case NS_DATA_PAD:
			n = (size_t)MIN(s->left, (uint64_t)(len - i));
			i += n;
			s->left -= n;
			break;
		case NS_DATA:
			n = (size_t)MIN(s->left, (uint64_t)(len - i));
			if (s->candidate)
				memcpy(s->data + (s->size - s->left), p + i, n);
			s->have += n;
			i += n;
			s->left -= n;
			break;
		case NS_DONE:
			break;
		}
	}
	return r;
}

struct initramfs_edit {
	int zfd;                      /* a zstd archive written again (rewrite_zstd()), or -1 */
	uint64_t zoff, zlen, size;    /* where it goes, its length, the file's length now */
	struct gz_change plain[MAX_HITS * 2]; /* in plain archives: at file offsets */
	size_t n_plain;
	bool key_archive;             /* only in cvm-image build's key archive at the end */
	struct gz_stream *gz;         /* the gzip archive holding the key, planned */
	size_t recompressed;
	char sums[MAX_HITS][9];       /* 070702 checksums of the new key */
	size_t n_sums;
	unsigned char *new_key;
	size_t key_len;
};

void initramfs_edit_free(struct initramfs_edit *e)
{
	if (!e)
		return;
	if (e->zfd >= 0)
		close(e->zfd);
	gz_stream_free(e->gz);
	if (e->new_key)
		explicit_bzero(e->new_key, e->key_len);
	free(e->new_key);
	free(e);
}

/* The changes a scan's hits of the old key ask for, appended to c (room for MAX_HITS * 2):
 * the key, and a 070702 header's sum; the hits counted. */
static int hit_changes(struct initramfs_edit *e, const struct newc_scan *s, struct gz_change *c,
		       size_t *n, unsigned *n_old, unsigned *n_new)
{
	for (size_t i = 0; i < s->n_hits; i++) {
		const struct key_hit *h = &s->hits[i];
		uint32_t v = 0;
		char *sum;

		*n_new += h->is_new;
		*n_old += !h->is_new;
		if (h->is_new)
			continue;
		if (*n + 2 > MAX_HITS * 2)
			return -E2BIG;
		if (h->checksum) {
			if (e->n_sums == MAX_HITS)
				return -E2BIG;
			sum = e->sums[e->n_sums++];
			for (size_t k = 0; k < e->key_len; k++)
				v += e->new_key[k];
			snprintf(sum, sizeof(e->sums[0]), "%08X", v);
			c[(*n)++] = (struct gz_change){ h->hdr + 6 + 8 * 12, sum, 8 };
		}
		c[(*n)++] = (struct gz_change){ h->data, e->new_key, e->key_len };
	}
	return 0;
}

/* libarchive's reader of f from pos to end, a piece at a time. */
struct stream_in {
	const struct gz_file *f;
	uint64_t pos, end;
	unsigned char *buf;
};

static la_ssize_t stream_read(struct archive *a, void *userdata, const void **buf)
{
	struct stream_in *in = userdata;
	size_t n = (size_t)MIN(in->end - in->pos, (uint64_t)PIECE);
	int r;

	if (n == 0)
		return 0;
	r = in->f->pread(in->f->userdata, in->pos, in->buf, n);
	if (r < 0) {
		archive_set_error(a, -r, "cannot read: %s", strerror(-r));
		return -1;
	}
	in->pos += n;
	*buf = in->buf;
	return (la_ssize_t)n;
}

/* libarchive's writer into fd, from its start. */
struct stream_out {
	int fd;
	uint64_t len;
	uint64_t data; /* uncompressed bytes written */
};

static la_ssize_t stream_write(struct archive *a, void *userdata, const void *buf, size_t n)
{
	struct stream_out *out = userdata;
	int r = pwrite_all(out->fd, buf, n, (off_t)out->len);

	if (r < 0) {
		archive_set_error(a, -r, "cannot write a temporary file: %s", strerror(-r));
		return -1;
	}
	out->len += n;
	return (la_ssize_t)n;
}

/*
 * The zstd archive at [off, end) in f (its frames, as zstd_frames_end() measured them), read
 * and written again into out through libarchive a piece at a time (zstd at level 1 on every
 * core, as process() does), members holding old given new_key; counts them. Only a candidate
 * key's data is held whole. -EOPNOTSUPP if it is not zstd. With out NULL, only read and
 * counted (a read-only plan: f has no truncate).
 */
static int rewrite_zstd(const char *what, const struct gz_file *f, uint64_t off, uint64_t end,
			const void *old, const void *new_key, size_t key_len,
			struct stream_out *out, unsigned *n_old, unsigned *n_new)
{
	_cleanup_(archive_read_freep) struct archive *r = archive_read_new();
	_cleanup_(archive_write_freep) struct archive *w = archive_write_new();
	_cleanup_free_ unsigned char *inbuf = malloc(PIECE), *buf = malloc(PIECE);
	struct stream_in in = { f, off, end, inbuf };
	struct archive_entry *e;
	bool opened = false;
	int ar;

	if (!r || !w || !inbuf || !buf)
		return log_error_errno(ENOMEM, "out of memory");
	archive_read_support_filter_all(r);
	archive_read_support_format_cpio(r);
	if (archive_read_open(r, &in, NULL, stream_read, NULL) != ARCHIVE_OK)
		return -EOPNOTSUPP;
	while ((ar = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
		bool regular = archive_entry_filetype(e) == AE_IFREG;
		la_int64_t size = regular ? archive_entry_size(e) : 0;
		const char *name = archive_entry_pathname(e) ?: "";
		unsigned char k[64];
		bool key = false;
		la_ssize_t got;

		if (!opened) {
			if (archive_filter_code(r, 0) != ARCHIVE_FILTER_ZSTD)
				return -EOPNOTSUPP;
			if (out && open_writer(w, ARCHIVE_FILTER_ZSTD, out, stream_write) < 0)
				return log_error_errno(EIO, "%s: cannot write an archive: %s", what,
						       archive_error_string(w));
			opened = true;
		}
		if (size < 0)
			return -EOPNOTSUPP;
		if (regular && (size_t)size == key_len && key_len <= sizeof(k) &&
		    str_ends_with(name, ".key")) {
			if (archive_read_data(r, k, key_len) != (la_ssize_t)key_len)
				return log_error_errno(EBADMSG, "%s: cannot read '%s': %s", what, name,
						       archive_error_string(r));
			key = memcmp(k, old, key_len) == 0;
			*n_old += key;
			*n_new += !key && new_key && memcmp(k, new_key, key_len) == 0;
			if (key)
				memcpy(k, new_key, key_len);
			if (out && (archive_write_header(w, e) != ARCHIVE_OK ||
			    archive_write_data(w, k, key_len) != (la_ssize_t)key_len)) {
				explicit_bzero(k, sizeof(k));
				return log_error_errno(EIO, "%s: cannot write '%s': %s", what, name,
						       archive_error_string(w));
			}
			explicit_bzero(k, sizeof(k));
			continue;
		}
		if (out && archive_write_header(w, e) != ARCHIVE_OK)
			return log_error_errno(EIO, "%s: cannot write '%s': %s", what, name,
					       archive_error_string(w));
		while (regular && (got = archive_read_data(r, buf, PIECE)) != 0) {
			if (got < 0)
				return log_error_errno(EBADMSG, "%s: cannot read '%s': %s", what, name,
						       archive_error_string(r));
			if (out && archive_write_data(w, buf, (size_t)got) != got)
				return log_error_errno(EIO, "%s: cannot write '%s': %s", what, name,
						       archive_error_string(w));
		}
	}
	if (ar != ARCHIVE_EOF || !opened)
		return -EOPNOTSUPP; /* the whole-file path says what is wrong */
	if (!out)
		return 0;
	out->data = (uint64_t)archive_filter_bytes(w, 0);
	if (archive_write_close(w) != ARCHIVE_OK)
		return log_error_errno(EIO, "%s: cannot write an archive: %s", what, archive_error_string(w));
	return 0;
}

bool initramfs_edit_in_key_archive(const struct initramfs_edit *e)
{
	return e->key_archive;
}

/*
 * cvm-image build's layout: the file ends with its key archive (initramfs_key_archive()),
 * every member holding old or new_key; the distro's archives before it hold the key zeroed.
 * Then only the last INITRAMFS_KEY_ARCHIVE_MAX bytes are read and the key members are all
 * that changes: 1. 0 when the file is not like that (the caller reads all of it).
 */
/* How many times key stands in the file's bytes as they are, read in pieces. */
static int count_plain_copies(const struct gz_file *f, const void *key, size_t key_len,
			      unsigned *ret)
{
	_cleanup_free_ unsigned char *buf = malloc(PIECE + key_len);
	size_t have = 0, keep;
	unsigned n = 0;

	if (!buf || key_len == 0)
		return -ENOMEM;
	for (uint64_t at = 0; at < f->size;) {
		size_t m = (size_t)MIN(f->size - at, (uint64_t)PIECE);
		int r = f->pread(f->userdata, at, buf + have, m);

		if (r < 0) {
			explicit_bzero(buf, PIECE + key_len);
			return r;
		}
		at += m;
		have += m;
		/* What is kept from the last piece is shorter than a copy: none is counted twice. */
		for (unsigned char *p = buf, *end = buf + have;
		     (p = memmem(p, (size_t)(end - p), key, key_len)); p++)
			n++;
		keep = MIN(have, key_len - 1);
		memmove(buf, buf + have - keep, keep);
		have = keep;
	}
	explicit_bzero(buf, PIECE + key_len);
	*ret = n;
	return 0;
}

static int plan_key_archive(const struct gz_file *f, struct initramfs_edit *e, const void *old,
			    const void *new_key, unsigned *n_old, unsigned *n_new)
{
	uint64_t start = f->size > INITRAMFS_KEY_ARCHIVE_MAX ?
				 (f->size - INITRAMFS_KEY_ARCHIVE_MAX) & ~UINT64_C(511) : 0;
	size_t len = (size_t)(f->size - start), offs[MAX_HITS];
	_cleanup_free_ unsigned char *tail = malloc(len ?: 1);
	int n, r;

	if (!tail)
		return -ENOMEM;
	r = f->pread(f->userdata, start, tail, len);
	if (r < 0)
		return r;
	n = initramfs_key_archive(tail, len, e->key_len, offs, ELEMENTSOF(offs));
	for (int i = 0; i < n; i++)
		if (memcmp(tail + offs[i], old, e->key_len) != 0 &&
		    memcmp(tail + offs[i], new_key, e->key_len) != 0)
			n = 0; /* some other key: the whole file says what it holds */
	if (n > 0) {
		unsigned in_archive = 0, in_file = 0;

		for (int i = 0; i < n; i++)
			in_archive += memcmp(tail + offs[i], old, e->key_len) == 0;
		/* The old key nowhere else in the clear (a key archive repeated, say): or the
		 * whole file is read, so that no copy is left behind. */
		r = count_plain_copies(f, old, e->key_len, &in_file);
		if (r < 0)
			return r;
		if (in_file != in_archive)
			n = 0;
	}
	for (int i = 0; i < n; i++) {
		bool is_old = memcmp(tail + offs[i], old, e->key_len) == 0;

		*n_old += is_old;
		*n_new += !is_old;
		if (is_old)
			e->plain[e->n_plain++] = (struct gz_change){ start + offs[i], e->new_key,
								     e->key_len };
	}
	explicit_bzero(tail, len);
	e->key_archive = n > 0;
	return n > 0;
}

/* 0 if f holds only zeros from off to its end, -EOPNOTSUPP if not; buf: PIECE bytes. */
static int zero_to_end(const struct gz_file *f, uint64_t off, unsigned char *buf)
{
	while (off < f->size) {
		size_t n = (size_t)MIN(f->size - off, (uint64_t)PIECE);
		int r = f->pread(f->userdata, off, buf, n);

		if (r < 0)
			return r;
		for (size_t i = 0; i < n; i++)
			if (buf[i] != 0)
				return -EOPNOTSUPP;
		off += n;
	}
	return 0;
}

int initramfs_stream_plan(const char *what, const struct gz_file *f, const void *old,
			  const void *new_key, size_t key_len, struct initramfs_edit **ret,
			  unsigned *ret_old, unsigned *ret_new)
{
	_cleanup_free_ unsigned char *buf = malloc(PIECE);
	struct initramfs_edit *e = calloc(1, sizeof(*e));
	struct gz_change gzc[MAX_HITS * 2];
	size_t n_gzc = 0;
	unsigned n_old = 0, n_new = 0;
	uint64_t off = 0;
	int r = 0;

	*ret = NULL;
	if (e)
		e->zfd = -1;
	if (!buf || !e || !(e->new_key = malloc(key_len ?: 1))) {
		initramfs_edit_free(e);
		return log_error_errno(ENOMEM, "out of memory");
	}
	e->size = f->size;
	memcpy(e->new_key, new_key, key_len);
	e->key_len = key_len;
	/* As cvm-image build left it: its end alone. */
	r = plan_key_archive(f, e, old, new_key, &n_old, &n_new);
	if (r > 0)
		off = f->size;
	r = r > 0 ? 0 : r;
	for (unsigned segments = 0; r == 0 && off < f->size; segments++) {
		size_t n = (size_t)MIN(f->size - off, (uint64_t)4096), z = 0;
		struct newc_scan s = { .old_key = old, .new_key = new_key, .key_len = key_len };

		if (segments > 64) {
			r = -EOPNOTSUPP;
			break;
		}
		r = f->pread(f->userdata, off, buf, n);
		if (r < 0)
			break;
		while (z < n && buf[z] == 0)
			z++;
		if (z == n) {
			off += n;
			segments--;
			continue;
		}
		off += z;
		if (n - z >= 5 && memcmp(buf + z, "07070", 5) == 0) {
			/* An uncompressed archive, in place in the file. */
			s.plain = true;
			s.state = NS_GAP;
			for (uint64_t at = off; r == 0 && s.state != NS_DONE;) {
				size_t m = (size_t)MIN(f->size - at, (uint64_t)PIECE);

				if (m == 0) {
					r = -EBADMSG;
					break;
				}
				r = f->pread(f->userdata, at, buf, m);
				if (r == 0)
					r = newc_feed(&s, at, buf, m);
				at += m;
			}
			if (r == 0)
				r = hit_changes(e, &s, e->plain, &e->n_plain, &n_old, &n_new);
			off = s.end;
		} else if (n - z >= 3 && buf[z] == 0x1f && buf[z + 1] == 0x8b && buf[z + 2] == 8) {
			struct gz_stream *gz = NULL;
			size_t before = n_gzc;

			s.state = NS_GAP;
			r = gz_stream_scan(f, off, newc_feed, &s, &gz);
			if (r < 0)
				break;
			off += gz_stream_member_len(gz);
			r = hit_changes(e, &s, gzc, &n_gzc, &n_old, &n_new);
			if (r < 0 || n_gzc == before) {
				gz_stream_free(gz);
			} else if (e->gz) {
				/* The key in two gzip archives: no initramfs tool does that. */
				gz_stream_free(gz);
				r = -EOPNOTSUPP;
			} else {
				e->gz = gz;
			}
		} else if (n - z >= 4 && !memcmp(buf + z, "\x28\xb5\x2f\xfd", 4) && !f->truncate) {
			/* Read only (f cannot be cut): the members counted, nothing planned. */
			uint64_t zend;

			r = zstd_frames_end(f->pread, f->userdata, off, f->size, &zend);
			if (r == 0)
				r = rewrite_zstd(what, f, off, zend, old, new_key, key_len, NULL,
						 &n_old, &n_new);
			off = zend;
		} else if (n - z >= 4 && !memcmp(buf + z, "\x28\xb5\x2f\xfd", 4) && e->zfd < 0) {
			/* zstd: written again whole, in pieces, into an unnamed file (0600, gone
			 * with us) now, so that writing it back later can only fail at I/O. */
			struct stream_out o = { .fd = -1 };
			unsigned before_old = n_old;
			uint64_t zend;

			/* Its frames, then only zero padding: the file is cut after the archive
			 * written again, so nothing else may follow it here (the whole-file path
			 * takes a chain with more after the zstd archive). */
			r = zstd_frames_end(f->pread, f->userdata, off, f->size, &zend);
			if (r == 0)
				r = zero_to_end(f, zend, buf);
			if (r < 0)
				break;
			o.fd = open(getenv("TMPDIR") ?: "/var/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
			if (o.fd < 0) {
				r = log_error_errno(errno, "cannot create a temporary file in '%s': %m",
						    getenv("TMPDIR") ?: "/var/tmp");
				break;
			}
			r = rewrite_zstd(what, f, off, zend, old, new_key, key_len, &o, &n_old, &n_new);
			if (r == 0 && n_old > before_old) {
				e->zfd = o.fd;
				e->zoff = off;
				e->zlen = o.len;
				e->recompressed += (size_t)o.data;
			} else {
				close(o.fd);
			}
			off = f->size;
		} else {
			/* xz, lz4, bzip2, ...: the whole-file path says what it can do. */
			r = -EOPNOTSUPP;
		}
	}
	if (r == 0 && e->gz)
	{
		size_t redone = 0;

		r = gz_stream_plan(e->gz, f, gzc, n_gzc, &redone);
		e->recompressed += redone;
	}
	if (r == -EBADMSG || r == -E2BIG)
		r = -EOPNOTSUPP; /* the whole-file path says what is wrong with it */
	if (r < 0) {
		initramfs_edit_free(e);
		/* The reader's errors are its own to log (cryptfs does); what is left, here. */
		return r == -ENOMEM ? log_error_errno(r, "%s: out of memory", what) :
		       r == -EINVAL ? log_error_errno(r, "%s: cannot plan its changes", what) : r;
	}
	*ret_old = n_old;
	*ret_new = n_new;
	if (n_old == 0) {
		initramfs_edit_free(e);
		e = NULL;
	}
	*ret = e;
	return 0;
}

int initramfs_stream_apply(const char *what, struct initramfs_edit *e, const struct gz_file *f,
			   size_t *ret_recompressed)
{
	int r = 0;

	for (size_t i = 0; r == 0 && i < e->n_plain; i++)
		r = f->pwrite(f->userdata, e->plain[i].start, e->plain[i].data, e->plain[i].len);
	if (r == 0 && e->gz)
		r = gz_stream_apply(e->gz, f);
	if (r == 0 && e->zfd >= 0) {
		/* The zstd archive written again, over the old one, and the file cut after it. */
		_cleanup_free_ unsigned char *buf = malloc(PIECE);

		if (!buf)
			return log_error_errno(ENOMEM, "out of memory");
		for (uint64_t at = 0; r == 0 && at < e->zlen;) {
			size_t n = (size_t)MIN(e->zlen - at, (uint64_t)PIECE);

			r = pread_all(e->zfd, buf, n, (off_t)at);
			if (r == 0)
				r = f->pwrite(f->userdata, e->zoff + at, buf, n);
			at += n;
		}
		if (r == 0 && e->zoff + e->zlen < e->size)
			r = f->truncate(f->userdata, e->zoff + e->zlen);
		explicit_bzero(buf, PIECE);
	}
	/* The writer's errors are logged where they happened (cryptfs); what is left, here. */
	if (r == -ENOMEM || r == -EINVAL)
		return log_error_errno(r, "cannot write %s: %m", what);
	if (r < 0)
		return r;
	if (ret_recompressed)
		*ret_recompressed = e->recompressed;
	return 0;
}
