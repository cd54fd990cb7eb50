/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A file written under a temporary name beside its final name, renamed only on success. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "tmpfile.h"
#include "util.h"

int tmpfile_create(struct tmpfile *t, const char *final, mode_t mode)
{
	_cleanup_free_ char *dir = path_dirname(final), *base = path_basename(final);

	if (!dir || !base)
		return -ENOMEM;
	t->final = strdup(final);
	/* The process id in the name: leftovers of a dead process can be told apart. */
	t->path = strdupf("%s/.%s" TMPFILE_MARK "%d-XXXXXX", dir, base, (int)getpid());
	if (!t->final || !t->path)
		return -ENOMEM;
	t->fd = mkostemp(t->path, O_CLOEXEC);
	if (t->fd < 0) {
		int r = -errno;

		free(t->path);
		t->path = NULL;
		return r;
	}
	/* 0600 until committed: it may hold plaintext while it is written. */
	t->mode = mode;
	if (fchmod(t->fd, 0600) < 0)
		return -errno;
	return 0;
}

int tmpfile_sync(struct tmpfile *t)
{
	if (t->fd >= 0) {
		if (fchmod(t->fd, t->mode) < 0 || fsync(t->fd) < 0)
			return -errno;
		if (close(t->fd) < 0) {
			t->fd = -1;
			return -errno;
		}
		t->fd = -1;
	}
	return 0;
}

int tmpfile_commit(struct tmpfile *t, bool replace)
{
	int r = tmpfile_sync(t);

	if (r < 0)
		return r;
	if (replace) {
		if (rename(t->path, t->final) < 0)
			return -errno;
	} else {
		/* RENAME_NOREPLACE: an existing output appearing meanwhile is never replaced. */
		if (renameat2(AT_FDCWD, t->path, AT_FDCWD, t->final, RENAME_NOREPLACE) < 0)
			return -errno;
	}
	free(t->path);
	t->path = NULL;
	return fsync_dir_of(t->final);
}

void tmpfile_discard(struct tmpfile *t)
{
	if (t->fd >= 0)
		close(t->fd);
	t->fd = -1;
	if (t->path)
		unlink(t->path);
	free(t->path);
	free(t->final);
	t->path = t->final = NULL;
}
