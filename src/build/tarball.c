/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The rootfs tarball: index scan with path checks, and secure extraction (libarchive). */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <fcntl.h>
#include <search.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <archive.h>
#include <archive_entry.h>
#include <zlib.h>

#include "tarball.h"
#include "owners.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/interrupt.h"
#include "shared/util.h"


#define OS_RELEASE_MAX (64 * 1024)

void rootfs_index_done(struct rootfs_index *idx)
{
	for (size_t i = 0; i < idx->n_paths; i++)
		free(idx->paths[i]);
	free(idx->paths);
	idx->paths = NULL;
	idx->n_paths = idx->cap_paths = 0;
	free(idx->os_release);
	idx->os_release = NULL;
}

/* "usr/sbin/x" and "sbin/x" are one path on a merged-/usr system: compare without "usr/". */
static const char *usr_merged(const char *p)
{
	static const char *const dirs[] = { "bin/", "sbin/", "lib/", "lib64/", "lib32/" };

	if (strncmp(p, "usr/", 4) != 0)
		return p;
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++)
		if (strncmp(p + 4, dirs[i], strlen(dirs[i])) == 0)
			return p + 4;
	return p;
}

const char *rootfs_index_find(const struct rootfs_index *idx, const char *glob)
{
	const char *g = usr_merged(glob[0] == '/' ? glob + 1 : glob);

	for (size_t i = 0; i < idx->n_paths; i++)
		if (fnmatch(g, usr_merged(idx->paths[i]), FNM_PATHNAME) == 0)
			return idx->paths[i];
	return NULL;
}

static int add_path(struct rootfs_index *idx, char *path)
{
	if (greedy_realloc((void **)&idx->paths, &idx->cap_paths, idx->n_paths + 1,
			   sizeof(*idx->paths)) < 0)
		return -ENOMEM;
	idx->paths[idx->n_paths++] = path;
	return 0;
}

/*
 * The archive's bytes. libarchive never checks a gzip member's CRC-32 and length
 * (archive_read_support_filter_gzip.c: "XXX TODO: Verify the length and CRC"), so a gzip
 * tarball is decompressed here with zlib, which does, and libarchive reads plain tar. Other
 * compressions (xz, zstd, bzip2) are left to libarchive, whose decoders check them when
 * they reach the end of the stream: read_concatenated_archives makes it read that far
 * instead of stopping at the tar end marker.
 */
#define SOURCE_CHUNK (256 * 1024)

struct tar_source {
	const char *path;
	int fd;
	bool gzip, seekable, in_member, input_eof;
	z_stream z;
	unsigned char *in, *out;
	char error[160]; /* what went wrong in here: libarchive reports "truncated" instead */
};

/* libarchive's message, unless the source itself failed: then the source's. */
static const char *source_error(const struct tar_source *s, struct archive *a)
{
	return s->error[0] ? s->error : archive_error_string(a) ?: "unknown error";
}

#define source_fail(s, a, e, ...)                                               \
	({                                                                      \
		snprintf((s)->error, sizeof((s)->error), __VA_ARGS__);          \
		archive_set_error((a), (e), "%s", (s)->error);                  \
		(la_ssize_t)-1;                                                 \
	})

static void tar_source_done(struct tar_source *s)
{
	if (s->gzip)
		inflateEnd(&s->z);
	if (s->fd >= 0)
		close(s->fd);
	free(s->in);
	free(s->out);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

static la_ssize_t read_input(struct tar_source *s, struct archive *a)
{
	ssize_t n;

	do
		n = read(s->fd, s->in, SOURCE_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return source_fail(s, a, errno, "read error: %s", strerror(errno));
	if (n == 0)
		s->input_eof = true;
	s->z.next_in = s->in;
	s->z.avail_in = (uInt)n;
	return n;
}

static la_ssize_t gzip_read(struct archive *a, struct tar_source *s)
{
	s->z.next_out = s->out;
	s->z.avail_out = SOURCE_CHUNK;
	while (s->z.avail_out == SOURCE_CHUNK) {
		int zr;

		if (s->z.avail_in == 0 && !s->input_eof && read_input(s, a) < 0)
			return -1;
		if (!s->in_member) {
			/* Between members: the end of the file, another member, or zero padding. */
			while (s->z.avail_in > 0 && s->z.next_in[0] == 0) {
				s->z.next_in++;
				s->z.avail_in--;
			}
			if (s->z.avail_in == 0) {
				if (s->input_eof)
					return 0;
				continue;
			}
			if (inflateReset(&s->z) != Z_OK)
				return source_fail(s, a, EIO, "gzip: cannot reset the decoder");
			s->in_member = true;
		}
		if (s->z.avail_in == 0 && s->input_eof)
			return source_fail(s, a, EIO, "gzip: unexpected end of the compressed data "
					   "(truncated)");
		zr = inflate(&s->z, Z_NO_FLUSH);
		if (zr == Z_STREAM_END) {
			s->in_member = false;
		} else if (zr == Z_BUF_ERROR && s->z.avail_in == 0) {
			continue; /* needs more input */
		} else if (zr != Z_OK) {
			/* "incorrect data check" is a bad CRC-32, "incorrect length check" a bad
			 * length: the archive is corrupt. */
			return source_fail(s, a, EILSEQ, "gzip: %s", s->z.msg ?: "corrupt data");
		}
	}
	return (la_ssize_t)(SOURCE_CHUNK - s->z.avail_out);
}

static la_ssize_t source_read(struct archive *a, void *userdata, const void **buf)
{
	struct tar_source *s = userdata;
	ssize_t n;

	if (s->gzip) {
		*buf = s->out;
		return gzip_read(a, s);
	}
	*buf = s->in;
	do
		n = read(s->fd, s->in, SOURCE_CHUNK);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return source_fail(s, a, errno, "read error: %s", strerror(errno));
	return n;
}

/* Plain tar in a file: what the scan does not read is skipped, not read. */
static la_int64_t source_skip(struct archive *a, void *userdata, la_int64_t request)
{
	struct tar_source *s = userdata;
	off_t cur, end;

	if (s->gzip || !s->seekable)
		return 0;
	cur = lseek(s->fd, 0, SEEK_CUR);
	end = lseek(s->fd, 0, SEEK_END);
	if (cur < 0 || end < 0)
		return 0;
	if (request > end - cur)
		request = end - cur; /* the next read says "truncated" */
	if (lseek(s->fd, cur + request, SEEK_SET) < 0)
		return 0;
	return request;
}

static int tarball_open(const char *path, struct tar_source *src, struct archive **ret)
{
	_cleanup_(archive_read_freep) struct archive *a = archive_read_new();
	unsigned char magic[2];
	struct stat st;

	src->path = path;
	if (!a)
		return log_error_errno(ENOMEM, "cannot allocate archive reader: %m");
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	if (archive_read_set_options(a, "tar:read_concatenated_archives") != ARCHIVE_OK)
		return log_error_errno(EINVAL, "libarchive: %s", archive_error_string(a));
	src->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (src->fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	if (fstat(src->fd, &st) < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	if (S_ISDIR(st.st_mode))
		return log_error_errno(EISDIR, "cannot read '%s': %m", path);
	if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode))
		return log_error_errno(EINVAL, "cannot read '%s': not a file", path);
	/* A FIFO or a terminal as the tarball: read it blocking, like a file. */
	if (fcntl(src->fd, F_SETFL, 0) < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	src->in = malloc(SOURCE_CHUNK);
	src->out = malloc(SOURCE_CHUNK);
	if (!src->in || !src->out)
		return log_error_errno(ENOMEM, "out of memory");
	src->seekable = S_ISREG(st.st_mode);
	if (S_ISREG(st.st_mode) && pread(src->fd, magic, 2, 0) == 2 && magic[0] == 0x1f &&
	    magic[1] == 0x8b) {
		/* gzip: zlib's gzip wrapper (15 + 16) checks each member's CRC-32 and length. */
		if (inflateInit2(&src->z, 15 + 16) != Z_OK)
			return log_error_errno(ENOMEM, "cannot set up the gzip decoder");
		src->gzip = true;
	}
	if (archive_read_set_skip_callback(a, source_skip) != ARCHIVE_OK ||
	    archive_read_open(a, src, NULL, source_read, NULL) != ARCHIVE_OK)
		return log_error_errno(errno_or(EINVAL), "cannot read '%s': %s", path,
				       source_error(src, a));
	*ret = TAKE_PTR(a);
	return 0;
}

/*
 * Normalise an archive path: drop leading "./" and "/" (remembering the latter), empty and
 * "." components; report ".." components. Returns a new string, "" for the root.
 */
static char *normalize(const char *name, bool *absolute, bool *dotdot)
{
	char *out = malloc(strlen(name) + 1), *o = out;
	const char *p = name;

	if (!out)
		return NULL;
	*absolute = name[0] == '/';
	*dotdot = false;
	while (*p) {
		const char *end = strchrnul(p, '/');
		size_t len = (size_t)(end - p);

		if (len == 2 && p[0] == '.' && p[1] == '.')
			*dotdot = true;
		if (len > 0 && !(len == 1 && p[0] == '.')) {
			if (o != out)
				*o++ = '/';
			memcpy(o, p, len);
			o += len;
		}
		p = *end ? end + 1 : end;
	}
	*o = '\0';
	return out;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* True if a proper prefix directory of path is a symlink recorded earlier in the archive. */
static const char *under_symlink(void *links, const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return NULL;
	for (char *slash = strrchr(copy, '/'); slash; slash = strrchr(copy, '/')) {
		void **hit;

		*slash = '\0';
		hit = tfind(copy, &links, cmp_str);
		if (hit)
			return *hit;
	}
	return NULL;
}

/* What the scan remembers of the entries it has seen. */
struct scan_state {
	void *links; /* symlinks of the archive */
	void *files; /* entries a hard link may point to: everything but directories */
};

static int remember(void **tree, const char *path)
{
	char *key = strdup(path);
	void **hit;

	if (!key)
		return -ENOMEM;
	hit = tsearch(key, tree, cmp_str);
	if (!hit) {
		free(key);
		return -ENOMEM;
	}
	if (*hit != key)
		free(key); /* there already */
	return 0;
}

/* mke2fs -d aborts with heap corruption below about 1016 levels (e2fsprogs 1.47.0,
 * measured); the kernel and the target's tools take paths of at most PATH_MAX. */
#define TREE_DEPTH_MAX 1000
#define TREE_PATH_MAX 4095
#define NAME_MAX_BYTES 255

/* The depth of a normalised path, or 0 when a component is longer than NAME_MAX_BYTES. */
static size_t path_depth(const char *p, size_t *ret_longest)
{
	size_t depth = 0, longest = 0;

	while (*p) {
		size_t len = strcspn(p, "/");

		depth++;
		if (len > longest)
			longest = len;
		p += len;
		if (*p == '/')
			p++;
	}
	*ret_longest = longest;
	return depth;
}

static int check_entry(const char *archive_path, struct archive_entry *e, struct scan_state *st)
{
	const char *name = archive_entry_pathname(e), *hl = archive_entry_hardlink(e);
	_cleanup_free_ char *norm = NULL, *hnorm = NULL;
	size_t depth, longest;
	bool abs, dotdot;
	const char *link;

	if (!name)
		return log_error_errno(EINVAL, "'%s': an entry has no path name", archive_path);
	norm = normalize(name, &abs, &dotdot);
	if (!norm)
		return log_error_errno(ENOMEM, "out of memory");
	if (abs)
		return log_error_errno(EPERM, "'%s': refusing entry '%s': absolute path",
				       archive_path, name);
	if (dotdot)
		return log_error_errno(EPERM, "'%s': refusing entry '%s': path contains '..'",
				       archive_path, name);
	depth = path_depth(norm, &longest);
	if (longest > NAME_MAX_BYTES)
		return log_error_errno(ENAMETOOLONG, "'%s': refusing entry '%.200s...': a name in it "
				       "is %zu bytes long, more than the %d a file system takes",
				       archive_path, name, longest, NAME_MAX_BYTES);
	if (strlen(norm) > TREE_PATH_MAX)
		return log_error_errno(ENAMETOOLONG, "'%s': refusing entry '%.200s...': its path is "
				       "%zu bytes long, more than %d", archive_path, name,
				       strlen(norm), TREE_PATH_MAX);
	if (depth > TREE_DEPTH_MAX)
		return log_error_errno(ENAMETOOLONG, "'%s': refusing entry '%.200s...': %zu levels "
				       "deep, more than %d", archive_path, name, depth,
				       TREE_DEPTH_MAX);
	link = under_symlink(st->links, norm);
	if (link)
		return log_error_errno(EPERM,
				       "'%s': refusing entry '%s': it lies below the symlink '%s'",
				       archive_path, name, link);
	if (hl) {
		hnorm = normalize(hl, &abs, &dotdot);
		if (!hnorm)
			return log_error_errno(ENOMEM, "out of memory");
		if (abs || dotdot)
			return log_error_errno(EPERM,
					       "'%s': refusing hard link '%s' to '%s': target outside the tree",
					       archive_path, name, hl);
		link = under_symlink(st->links, hnorm);
		if (link)
			return log_error_errno(EPERM, "'%s': refusing hard link '%s' to '%s': the "
					       "target lies below the symlink '%s'", archive_path, name,
					       hl, link);
		if (!tfind(hnorm, &st->files, cmp_str))
			return log_error_errno(EPERM, "'%s': refusing hard link '%s' to '%s': no "
					       "such file earlier in the archive", archive_path, name, hl);
	}
	if (archive_entry_filetype(e) == AE_IFLNK && *norm && remember(&st->links, norm) < 0)
		return log_error_errno(ENOMEM, "out of memory");
	if (archive_entry_filetype(e) != AE_IFDIR && *norm && remember(&st->files, norm) < 0)
		return log_error_errno(ENOMEM, "out of memory");
	return 0;
}

static int read_small(struct archive *a, const struct tar_source *src, char **ret)
{
	_cleanup_free_ char *buf = malloc(OS_RELEASE_MAX + 1);
	la_ssize_t n;
	size_t len = 0;

	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	while ((n = archive_read_data(a, buf + len, OS_RELEASE_MAX - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return log_error_errno(EIO, "cannot read '%s': %s", src->path, source_error(src, a));
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

int tarball_scan(const char *path, struct rootfs_index *ret)
{
	_cleanup_(tar_source_done) struct tar_source src = { .fd = -1 };
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	struct rootfs_index idx = {};
	struct archive_entry *e;
	struct scan_state st = {};
	int r, ar;

	r = tarball_open(path, &src, &a);
	if (r < 0)
		return r;

	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		_cleanup_free_ char *norm = NULL;
		bool abs, dotdot;

		if (interrupt_pending()) {
			r = log_error_errno(EINTR, "interrupted");
			goto out;
		}
		r = check_entry(path, e, &st);
		if (r < 0)
			goto out;
		idx.entries++;
		if ((uint64_t)archive_entry_uid(e) > idx.max_uid)
			idx.max_uid = (uint64_t)archive_entry_uid(e);
		if ((uint64_t)archive_entry_gid(e) > idx.max_gid)
			idx.max_gid = (uint64_t)archive_entry_gid(e);
		if (archive_entry_filetype(e) == AE_IFCHR || archive_entry_filetype(e) == AE_IFBLK)
			idx.devices++;
		norm = normalize(archive_entry_pathname(e), &abs, &dotdot);
		if (!norm) {
			r = log_error_errno(ENOMEM, "out of memory");
			goto out;
		}
		if (*norm) {
			char *copy = strdup(norm);

			if (!copy || add_path(&idx, copy) < 0) {
				free(copy);
				r = log_error_errno(ENOMEM, "out of memory");
				goto out;
			}
		}
		if (archive_entry_filetype(e) != AE_IFREG || archive_entry_hardlink(e))
			continue;
		idx.files++;
		idx.data_bytes += round_up((uint64_t)archive_entry_size(e), 4096);

		if ((streq(norm, "etc/os-release") ||
			     (streq(norm, "usr/lib/os-release") && !idx.os_release))) {
			free(idx.os_release);
			idx.os_release = NULL;
			r = read_small(a, &src, &idx.os_release);
			if (r < 0)
				goto out;
			idx.os_release_path = streq(norm, "etc/os-release") ? "/etc/os-release" :
									      "/usr/lib/os-release";
		}
	}
	if (ar != ARCHIVE_EOF) {
		r = log_error_errno(EINVAL, "cannot read '%s': %s", path, source_error(&src, a));
		goto out;
	}
	if (idx.entries == 0) {
		r = log_error_errno(EINVAL, "'%s' is empty: no files in the archive", path);
		goto out;
	}
	*ret = idx;
	memset(&idx, 0, sizeof(idx));
	r = 0;
out:
	tdestroy(st.links, free);
	tdestroy(st.files, free);
	rootfs_index_done(&idx);
	return r;
}

static int copy_data(struct archive *in, struct archive *out)
{
	const void *buf;
	size_t size;
	la_int64_t off;
	int ar;

	while ((ar = archive_read_data_block(in, &buf, &size, &off)) == ARCHIVE_OK) {
		if (archive_write_data_block(out, buf, size, off) < ARCHIVE_WARN)
			return -1;
		if (interrupt_pending())
			return -1;
	}
	return ar == ARCHIVE_EOF ? 0 : -1;
}

/* owners_defer_entry() with the entry's paths normalised as the scan checked them. */
static int defer_entry(struct ext4_owners *defer, void **seen, struct archive_entry *e,
		       bool *ret_skip)
{
	_cleanup_free_ char *norm = NULL, *hnorm = NULL;
	const char *hl = archive_entry_hardlink(e);
	bool abs, dotdot;

	norm = normalize(archive_entry_pathname(e), &abs, &dotdot);
	if (norm && hl)
		hnorm = normalize(hl, &abs, &dotdot);
	if (!norm || (hl && !hnorm))
		return log_error_errno(ENOMEM, "out of memory");
	return owners_defer_entry(defer, seen, e, norm, hnorm, ret_skip);
}

int tarball_extract(const char *path, const char *dir, uint64_t expected_entries,
		    struct ext4_owners *defer)
{
	void *seen = NULL;
	_cleanup_(tar_source_done) struct tar_source src = { .fd = -1 };
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	_cleanup_(archive_write_freep) struct archive *w = NULL;
	_cleanup_close_ int cwd = -1, dfd = -1;
	struct archive_entry *e;
	uint64_t n = 0, next_report = 0;
	int r = 0, ar;

	r = tarball_open(path, &src, &a);
	if (r < 0)
		return r;
	w = archive_write_disk_new();
	if (!w)
		return log_error_errno(ENOMEM, "cannot allocate archive writer: %m");
	/* No archive_write_disk_set_standard_lookup(): owners stay numeric, as in the tarball. */
	archive_write_disk_set_options(
		w, ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_TIME |
			   ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL | ARCHIVE_EXTRACT_FFLAGS |
			   ARCHIVE_EXTRACT_SECURE_SYMLINKS | ARCHIVE_EXTRACT_SECURE_NODOTDOT |
			   ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_SPARSE);

	/* libarchive writes relative to the working directory; the SECURE flags need
	 * relative names, so work from inside dir and go back afterwards. */
	cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (cwd < 0 || dfd < 0 || fchdir(dfd) < 0)
		return log_error_errno(errno, "cannot enter '%s': %m", dir);

	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);

		if (interrupt_pending()) {
			r = log_error_errno(EINTR, "interrupted");
			goto out;
		}
		if (defer) {
			bool skip;

			r = defer_entry(defer, &seen, e, &skip);
			if (r < 0)
				goto out;
			if (skip)
				continue;
		}
		/* A warning is an error: it says an owner, a mode, an xattr or an ACL could not
		 * be set ("Can't set user=42"), and the image would be silently wrong. */
		ar = archive_write_header(w, e);
		if (ar != ARCHIVE_OK) {
			r = log_error_errno(EPERM, "'%s': cannot extract '%s': %s", path, name,
					    archive_error_string(w));
			goto out;
		}
		if (archive_entry_size(e) > 0 && copy_data(a, w) < 0) {
			if (interrupt_pending())
				r = log_error_errno(EINTR, "interrupted");
			else
				r = log_error_errno(errno_or(EIO), "'%s': cannot extract '%s': %s",
						    path, name,
						    src.error[0] || archive_error_string(a) ?
							    source_error(&src, a) : archive_error_string(w));
			goto out;
		}
		if (archive_write_finish_entry(w) != ARCHIVE_OK) {
			r = log_error_errno(errno_or(EIO), "'%s': cannot extract '%s': %s", path,
					    name, archive_error_string(w));
			goto out;
		}
		if (++n >= next_report && expected_entries > 1000) {
			log_info("unpack: %" PRIu64 "/%" PRIu64 " entries", n, expected_entries);
			next_report = n + expected_entries / 10;
		}
	}
	if (ar != ARCHIVE_EOF) {
		r = log_error_errno(EINVAL, "cannot read '%s': %s", path, source_error(&src, a));
		goto out;
	}
	/* Directory times and modes are applied at close. */
	if (archive_write_close(w) != ARCHIVE_OK) {
		r = log_error_errno(errno_or(EIO), "cannot finish extracting '%s': %s", path,
				    archive_error_string(w));
		goto out;
	}
	if (defer)
		r = owners_after_unpack(defer, dfd);
out:
	tdestroy(seen, free);
	if (fchdir(cwd) < 0 && r == 0)
		r = log_error_errno(errno, "cannot return to the working directory: %m");
	return r;
}

/* Zeros for the holes of a sparse file: the pax writer takes the whole file and drops what its
 * sparse map says is a hole. */
static int write_hole(struct archive *out, int64_t len)
{
	static const char zeros[64 * 1024];

	while (len > 0) {
		size_t n = len < (int64_t)sizeof(zeros) ? (size_t)len : sizeof(zeros);

		if (archive_write_data(out, zeros, n) < 0)
			return -1;
		len -= (int64_t)n;
	}
	return 0;
}

int tarball_export(const char *path, int fd)
{
	_cleanup_(tar_source_done) struct tar_source src = { .fd = -1 };
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	_cleanup_(archive_write_freep) struct archive *w = NULL;
	struct archive_entry *e;
	int r, ar;

	r = tarball_open(path, &src, &a);
	if (r < 0)
		return r;
	w = archive_write_new();
	/* hdrcharset=BINARY: names go on as the bytes they are, whatever the locale (libarchive
	 * would convert them to UTF-8 from it, and fail on a Debian rootfs's certificate links
	 * in the C locale). GNU tar ignores the keyword, with a warning, and takes the bytes. */
	if (!w || archive_write_set_format_pax(w) != ARCHIVE_OK ||
	    archive_write_set_options(w, "hdrcharset=BINARY") != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(w, 1) != ARCHIVE_OK ||
	    archive_write_open_fd(w, fd) != ARCHIVE_OK)
		return log_error_errno(ENOMEM, "cannot set up the archive writer: %s",
				       w ? archive_error_string(w) : "out of memory");
	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		const char *name = archive_entry_pathname(e);
		const void *buf;
		size_t size;
		la_int64_t off, done = 0;

		if (interrupt_pending())
			return log_error_errno(EINTR, "interrupted");
		/* Numeric owners only: the unpacking tar must not map names to its own ids. */
		archive_entry_set_uname(e, NULL);
		archive_entry_set_gname(e, NULL);
		if (archive_write_header(w, e) != ARCHIVE_OK)
			return log_error_errno(EIO, "'%s': cannot pass on '%s': %s", path, name,
					       archive_error_string(w));
		if (archive_entry_size(e) <= 0 || archive_entry_hardlink(e))
			continue;
		while ((ar = archive_read_data_block(a, &buf, &size, &off)) == ARCHIVE_OK) {
			if ((off > done && write_hole(w, off - done) < 0) ||
			    (size > 0 && archive_write_data(w, buf, size) < 0))
				return log_error_errno(EIO, "'%s': cannot pass on '%s': %s", path,
						       name, archive_error_string(w));
			done = off + (la_int64_t)size;
		}
		if (ar != ARCHIVE_EOF)
			return log_error_errno(EINVAL, "cannot read '%s': %s", path,
					       source_error(&src, a));
		if (archive_entry_size(e) > done && write_hole(w, archive_entry_size(e) - done) < 0)
			return log_error_errno(EIO, "'%s': cannot pass on '%s': %s", path, name,
					       archive_error_string(w));
	}
	if (ar != ARCHIVE_EOF)
		return log_error_errno(EINVAL, "cannot read '%s': %s", path, source_error(&src, a));
	if (archive_write_close(w) != ARCHIVE_OK)
		return log_error_errno(EIO, "cannot pass on '%s': %s", path, archive_error_string(w));
	return 0;
}
