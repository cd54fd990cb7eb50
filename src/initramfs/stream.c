/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Streaming: an initramfs read and changed in pieces (initramfs.h's initramfs_stream_plan()
 * and initramfs_stream_apply()), for files too large to hold whole: a newc scanner fed
 * piece by piece, gzip members changed in place (gzpatch), a zstd frame run rewritten. */
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
	struct newc_filter filter;
	struct archive_entry *e;
	bool opened = false;
	int ar;

	if (!r || !w || !inbuf || !buf)
		return log_error_errno(ENOMEM, "out of memory");
	if (newc_read_open(r, &in, stream_read, &filter) != ARCHIVE_OK ||
	    filter.code != ARCHIVE_FILTER_ZSTD)
		return -EOPNOTSUPP;
	while ((ar = archive_read_next_header(r, &e)) == ARCHIVE_OK) {
		bool regular = archive_entry_filetype(e) == AE_IFREG;
		la_int64_t size = regular ? archive_entry_size(e) : 0;
		const char *name = archive_entry_pathname(e) ?: "";
		unsigned char k[64];
		bool key = false;
		la_ssize_t got;

		if (!opened) {
			if (out && initramfs_open_writer(w, ARCHIVE_FILTER_ZSTD, out, stream_write) < 0)
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
	if (ar != ARCHIVE_EOF || !opened || archive_read_close(r) != ARCHIVE_OK)
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

/* What initramfs_stream_plan() carries from one archive of the chain to the next. */
struct plan {
	const char *what;
	const struct gz_file *f;
	const void *old, *new_key;
	size_t key_len;
	struct initramfs_edit *e;
	unsigned char *buf;                 /* PIECE bytes */
	struct gz_change gzc[MAX_HITS * 2]; /* in the gzip archive: at uncompressed offsets */
	size_t n_gzc;
	unsigned n_old, n_new;
};

static struct newc_scan plan_scan(const struct plan *p, bool plain)
{
	return (struct newc_scan){ .old_key = p->old, .new_key = p->new_key, .key_len = p->key_len,
				   .plain = plain, .state = NS_GAP };
}

/* An uncompressed archive, changed in place in the file. */
static int plan_plain(struct plan *p, uint64_t *off)
{
	struct newc_scan s = plan_scan(p, true);
	int r = 0;

	for (uint64_t at = *off; r == 0 && s.state != NS_DONE;) {
		size_t m = (size_t)MIN(p->f->size - at, (uint64_t)PIECE);

		if (m == 0)
			return -EBADMSG;
		r = p->f->pread(p->f->userdata, at, p->buf, m);
		if (r == 0)
			r = newc_feed(&s, at, p->buf, m);
		at += m;
	}
	if (r == 0)
		r = hit_changes(p->e, &s, p->e->plain, &p->e->n_plain, &p->n_old, &p->n_new);
	*off = s.end;
	return r;
}

/* A gzip archive: its deflate blocks around the key compressed again (gz_stream_plan(), once
 * every archive is planned). */
static int plan_gzip(struct plan *p, uint64_t *off)
{
	struct newc_scan s = plan_scan(p, false);
	struct gz_stream *gz = NULL;
	size_t before = p->n_gzc;
	int r;

	r = gz_stream_scan(p->f, *off, newc_feed, &s, &gz);
	if (r < 0)
		return r;
	*off += gz_stream_member_len(gz);
	r = hit_changes(p->e, &s, p->gzc, &p->n_gzc, &p->n_old, &p->n_new);
	if (r < 0 || p->n_gzc == before) {
		gz_stream_free(gz);
	} else if (p->e->gz) {
		/* The key in two gzip archives: no initramfs tool does that. */
		gz_stream_free(gz);
		r = -EOPNOTSUPP;
	} else {
		p->e->gz = gz;
	}
	return r;
}

/* A zstd archive: written again whole, in pieces, into an unnamed file (0600, gone with us)
 * now, so that writing it back later can only fail at I/O. When f cannot be cut (a read-only
 * count), its members are only counted. */
static int plan_zstd(struct plan *p, uint64_t *off)
{
	const char *tmpdir = getenv("TMPDIR") ?: "/var/tmp";
	struct stream_out o = { .fd = -1 };
	unsigned before_old = p->n_old;
	uint64_t zend;
	int r;

	r = zstd_frames_end(p->f->pread, p->f->userdata, *off, p->f->size, &zend);
	if (r < 0)
		return r;
	if (!p->f->truncate) {
		r = rewrite_zstd(p->what, p->f, *off, zend, p->old, p->new_key, p->key_len, NULL,
				 &p->n_old, &p->n_new);
		*off = zend;
		return r;
	}
	if (p->e->zfd >= 0)
		return -EOPNOTSUPP; /* a second zstd archive: the whole-file path */
	/* Its frames, then only zero padding: the file is cut after the archive written again,
	 * so nothing else may follow it here (the whole-file path takes a chain with more after
	 * the zstd archive). */
	r = gz_file_zeros(p->f, zend, UINT64_MAX, p->buf);
	if (r < 0)
		return r;
	o.fd = open(tmpdir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (o.fd < 0)
		return log_error_errno(errno, "cannot create a temporary file in '%s': %m", tmpdir);
	r = rewrite_zstd(p->what, p->f, *off, zend, p->old, p->new_key, p->key_len, &o, &p->n_old,
			 &p->n_new);
	if (r == 0 && p->n_old > before_old) {
		p->e->zfd = o.fd;
		p->e->zoff = *off;
		p->e->zlen = o.len;
		p->e->recompressed += (size_t)o.data;
	} else {
		close(o.fd);
	}
	*off = p->f->size;
	return r;
}

/* The archives of a chain the streamed plan takes, by their magic; any other (xz, lz4, bzip2,
 * ...) is the whole-file path's to say what it can do. */
static const struct {
	const char *magic;
	size_t len;
	int (*plan)(struct plan *p, uint64_t *off);
} archive_kinds[] = {
	{ "07070", 5, plan_plain },
	{ "\x1f\x8b\x08", 3, plan_gzip },
	{ "\x28\xb5\x2f\xfd", 4, plan_zstd },
};

/* Each archive of the chain from off, planned; zero padding skipped. */
static int plan_chain(struct plan *p, uint64_t off)
{
	int r = 0;

	for (unsigned segments = 0; r == 0 && off < p->f->size; segments++) {
		size_t n = (size_t)MIN(p->f->size - off, (uint64_t)4096), z = 0, k;

		if (segments > 64)
			return -EOPNOTSUPP;
		r = p->f->pread(p->f->userdata, off, p->buf, n);
		if (r < 0)
			return r;
		while (z < n && p->buf[z] == 0)
			z++;
		if (z == n) {
			off += n;
			segments--;
			continue;
		}
		off += z;
		for (k = 0; k < ELEMENTSOF(archive_kinds); k++)
			if (n - z >= archive_kinds[k].len &&
			    memcmp(p->buf + z, archive_kinds[k].magic, archive_kinds[k].len) == 0)
				break;
		r = k < ELEMENTSOF(archive_kinds) ? archive_kinds[k].plan(p, &off) : -EOPNOTSUPP;
	}
	return r;
}

int initramfs_stream_plan(const char *what, const struct gz_file *f, const void *old,
			  const void *new_key, size_t key_len, struct initramfs_edit **ret,
			  unsigned *ret_old, unsigned *ret_new)
{
	_cleanup_free_ unsigned char *buf = malloc(PIECE);
	_cleanup_free_ struct plan *p = calloc(1, sizeof(*p));
	struct initramfs_edit *e = calloc(1, sizeof(*e));
	int r = 0;

	*ret = NULL;
	if (e)
		e->zfd = -1;
	if (!buf || !p || !e || !(e->new_key = malloc(key_len ?: 1))) {
		initramfs_edit_free(e);
		return log_error_errno(ENOMEM, "out of memory");
	}
	e->size = f->size;
	memcpy(e->new_key, new_key, key_len);
	e->key_len = key_len;
	*p = (struct plan){ .what = what, .f = f, .old = old, .new_key = new_key,
			    .key_len = key_len, .e = e, .buf = buf };
	/* As cvm-image build left it: its end alone. */
	r = plan_key_archive(f, e, old, new_key, &p->n_old, &p->n_new);
	if (r == 0)
		r = plan_chain(p, 0);
	else if (r > 0)
		r = 0;
	if (r == 0 && e->gz) {
		size_t redone = 0;

		r = gz_stream_plan(e->gz, f, p->gzc, p->n_gzc, &redone);
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
	*ret_old = p->n_old;
	*ret_new = p->n_new;
	if (p->n_old == 0) {
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
