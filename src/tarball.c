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

#include <archive.h>
#include <archive_entry.h>

#include "tarball.h"
#include "log.h"
#include "shared/cleanup.h"
#include "shared/interrupt.h"
#include "shared/util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_read_free);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct archive *, archive_write_free);

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

static int tarball_open(const char *path, struct archive **ret)
{
	_cleanup_(archive_read_freep) struct archive *a = archive_read_new();

	if (!a)
		return log_error_errno(ENOMEM, "cannot allocate archive reader: %m");
	archive_read_support_filter_all(a);
	archive_read_support_format_all(a);
	if (access(path, R_OK) < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	if (archive_read_open_filename(a, path, 256 * 1024) != ARCHIVE_OK)
		return log_error_errno(errno_or(EINVAL), "cannot read '%s': %s", path,
				       archive_error_string(a));
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

static int check_entry(const char *archive_path, struct archive_entry *e, void **links)
{
	const char *name = archive_entry_pathname(e), *hl = archive_entry_hardlink(e);
	_cleanup_free_ char *norm = NULL, *hnorm = NULL;
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
	link = under_symlink(*links, norm);
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
	}
	if (archive_entry_filetype(e) == AE_IFLNK && *norm) {
		char *key = strdup(norm);

		if (!key || !tsearch(key, links, cmp_str))
			return log_error_errno(ENOMEM, "out of memory");
	}
	return 0;
}

static int read_small(struct archive *a, const char *archive_path, char **ret)
{
	_cleanup_free_ char *buf = malloc(OS_RELEASE_MAX + 1);
	la_ssize_t n;
	size_t len = 0;

	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	while ((n = archive_read_data(a, buf + len, OS_RELEASE_MAX - len)) > 0)
		len += (size_t)n;
	if (n < 0)
		return log_error_errno(EIO, "cannot read '%s': %s", archive_path,
				       archive_error_string(a));
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	return 0;
}

int tarball_scan(const char *path, struct rootfs_index *ret)
{
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	struct rootfs_index idx = {};
	struct archive_entry *e;
	void *links = NULL;
	int r, ar;

	r = tarball_open(path, &a);
	if (r < 0)
		return r;

	while ((ar = archive_read_next_header(a, &e)) == ARCHIVE_OK || ar == ARCHIVE_WARN) {
		_cleanup_free_ char *norm = NULL;
		bool abs, dotdot;

		if (interrupt_pending()) {
			r = log_error_errno(EINTR, "interrupted");
			goto out;
		}
		r = check_entry(path, e, &links);
		if (r < 0)
			goto out;
		idx.entries++;
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
			r = read_small(a, path, &idx.os_release);
			if (r < 0)
				goto out;
			idx.os_release_path = streq(norm, "etc/os-release") ? "/etc/os-release" :
									      "/usr/lib/os-release";
		}
	}
	if (ar != ARCHIVE_EOF) {
		r = log_error_errno(EINVAL, "cannot read '%s': %s", path,
				    archive_error_string(a) ?: "unknown error");
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
	tdestroy(links, free);
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

int tarball_extract(const char *path, const char *dir, uint64_t expected_entries)
{
	_cleanup_(archive_read_freep) struct archive *a = NULL;
	_cleanup_(archive_write_freep) struct archive *w = NULL;
	_cleanup_close_ int cwd = -1, dfd = -1;
	struct archive_entry *e;
	uint64_t n = 0, next_report = 0;
	int r = 0, ar;

	r = tarball_open(path, &a);
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
		ar = archive_write_header(w, e);
		if (ar < ARCHIVE_WARN) {
			r = log_error_errno(EPERM, "'%s': cannot extract '%s': %s", path, name,
					    archive_error_string(w));
			goto out;
		}
		if (ar == ARCHIVE_WARN)
			log_debug("'%s': %s", name, archive_error_string(w));
		if (archive_entry_size(e) > 0 && copy_data(a, w) < 0) {
			if (interrupt_pending())
				r = log_error_errno(EINTR, "interrupted");
			else
				r = log_error_errno(errno_or(EIO), "'%s': cannot extract '%s': %s",
						    path, name,
						    archive_error_string(a) ?: archive_error_string(w));
			goto out;
		}
		if (archive_write_finish_entry(w) < ARCHIVE_WARN) {
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
		r = log_error_errno(EINVAL, "cannot read '%s': %s", path, archive_error_string(a));
		goto out;
	}
	/* Directory times and modes are applied at close. */
	if (archive_write_close(w) != ARCHIVE_OK) {
		r = log_error_errno(errno_or(EIO), "cannot finish extracting '%s': %s", path,
				    archive_error_string(w));
		goto out;
	}
out:
	if (fchdir(cwd) < 0 && r == 0)
		r = log_error_errno(errno, "cannot return to the working directory: %m");
	return r;
}
