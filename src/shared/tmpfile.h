/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A file written under a temporary name beside its final name, renamed only on success. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

struct tmpfile {
	char *path;  /* temporary name, beside final */
	char *final; /* name it gets on commit */
	int fd;
	mode_t mode; /* the mode it gets on commit; 0600 until then */
};

/* In every temporary name, before the creating process's id. */
#define TMPFILE_MARK ".tmp-"

#define TMPFILE_INIT { .fd = -1 }

/* Create ".<basename>.tmp-<pid>-XXXXXX" in final's directory, mode 0600 until it is
 * committed with the given mode (umask ignored). */
int tmpfile_create(struct tmpfile *t, const char *final, mode_t mode);
/* Give it its mode, fsync and close it (before a rename of one's own). */
int tmpfile_sync(struct tmpfile *t);
/* fsync, rename over final (or fail with -EEXIST unless replace), fsync the directory. */
int tmpfile_commit(struct tmpfile *t, bool replace);
/* Close and unlink the temporary name if it was not committed. Safe to call twice. */
void tmpfile_discard(struct tmpfile *t);
