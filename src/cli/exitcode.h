/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Process exit statuses, and how a command maps a pipeline's -errno to one. */
#pragma once

#include <errno.h>

enum {
	EXIT_OK = 0,
	EXIT_FAILED = 1,
	EXIT_USAGE = 2,
	EXIT_ENVIRONMENT = 3, /* a missing tool, not enough space, not root */
};

static inline int exit_status_from_errno(int r)
{
	if (r >= 0)
		return EXIT_OK;
	switch (-r) {
	case ENOPKG: /* a required program is not installed */
	case ENOSPC:
	case EDQUOT:
	case ENOTSUP: /* this backend cannot run here (e.g. not root) */
		return EXIT_ENVIRONMENT;
	default:
		return EXIT_FAILED;
	}
}
