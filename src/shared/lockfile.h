/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An exclusive lock on a path that may not exist yet: a lock file beside it. Never logs. */
#pragma once

#include <sys/types.h>

struct lockfile {
	char *path; /* "<dir>/.<name>.lock" */
	int fd;
};

#define LOCKFILE_INIT { .fd = -1 }

/*
 * Lock target (which need not exist) for this process: flock(LOCK_EX|LOCK_NB) on
 * ".<basename>.lock" in its directory, which holds our process id. Returns 0, -EBUSY when
 * another process holds it (*ret_holder: its pid, 0 if unknown), or -errno.
 */
int lockfile_take(struct lockfile *l, const char *target, pid_t *ret_holder);

/* Remove the lock file and drop the lock. Safe to call twice and on an untaken lock. */
void lockfile_release(struct lockfile *l);
