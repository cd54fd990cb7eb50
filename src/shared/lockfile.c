/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An exclusive lock on a path that may not exist yet: a lock file beside it. Never logs. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"
#include "lockfile.h"
#include "util.h"

static pid_t read_holder(int fd)
{
	char buf[32] = "";

	if (pread(fd, buf, sizeof(buf) - 1, 0) <= 0)
		return 0;
	return (pid_t)strtol(buf, NULL, 10);
}

int lockfile_take(struct lockfile *l, const char *target, pid_t *ret_holder)
{
	_cleanup_free_ char *dir = path_dirname(target), *base = path_basename(target);
	char pid[32];
	int n;

	*ret_holder = 0;
	if (!dir || !base)
		return -ENOMEM;
	l->path = strdupf("%s/.%s.lock", dir, base);
	if (!l->path)
		return -ENOMEM;
	/* The holder unlinks the file before it unlocks: a lock taken on a file that is no
	 * longer the one at the path is no lock, so check and try again. */
	for (int tries = 0; tries < 100; tries++) {
		struct stat a, b;
		int fd = open(l->path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);

		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			int r = errno == EWOULDBLOCK ? -EBUSY : -errno;

			*ret_holder = read_holder(fd);
			close(fd);
			return r;
		}
		if (fstat(fd, &a) == 0 && stat(l->path, &b) == 0 && a.st_ino == b.st_ino &&
		    a.st_dev == b.st_dev) {
			n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
			if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
				int r = -errno;

				close(fd);
				return r;
			}
			l->fd = fd;
			return 0;
		}
		close(fd);
	}
	return -EBUSY;
}

void lockfile_release(struct lockfile *l)
{
	if (l->fd >= 0) {
		unlink(l->path);
		close(l->fd);
	}
	l->fd = -1;
	free(l->path);
	l->path = NULL;
}
