/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The target root as a chroot: /proc, /sys, /dev, /dev/pts and /run mounted with libmount,
 * always unmounted again; programs run in it with a clean environment. */
#pragma once

#include <stddef.h>

struct chroot_session {
	char *root;
	char *mounted[8]; /* targets, in mount order */
	size_t n_mounted;
};

/* Mount /proc, /sys, /dev, /dev/pts (bind) and a private tmpfs on /run below root. Refuses
 * mount points that are symlinks or lead out of root. On failure, what was mounted is
 * unmounted again. Logs. */
int chroot_setup(struct chroot_session *s, const char *root);

/* Unmount in reverse order (lazily if busy). Safe to call twice and on a half set-up session.
 * Returns 0 or the first error, logged. */
int chroot_teardown(struct chroot_session *s);

/* Run path (inside the chroot) with env; output into the debug log and, on failure, its last
 * lines into the error, which names what. Exit status in *ret_status. Logs. */
int chroot_run(const struct chroot_session *s, const char *what, char *const argv[],
	       char *const env[], int *ret_status, char **ret_output);
