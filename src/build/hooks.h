/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hook resolution: hooks/<phase>/NN-name from the shared, tool, distro and site directories. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "distro.h"

extern const char *const hook_phases[]; /* configure, initramfs, bootloader, finalize; NULL */

struct hook {
	const char *phase;
	char *name;
	char *path;        /* the file that runs (or the empty file that masks) */
	char *overridden;  /* the file it replaced or masked, or NULL */
	bool masked;
};

struct hook_set {
	struct hook *hooks; /* by phase, then name */
	size_t n;
	char **dirs;        /* the directories merged, least specific first */
	size_t n_dirs;
};

/*
 * Merge DATADIR/distro/common, DATADIR/distro/initramfs/<tool>, the distro's INHERIT chain
 * (base first) and the site directories: a later file of the same phase and name replaces an
 * earlier one, an empty file masks it. A hook that is neither empty nor executable is an
 * error. Logs.
 */
int hooks_resolve(const struct distro *d, const char *tool, char *const site_dirs[],
		  struct hook_set *ret);
void hook_set_done(struct hook_set *s);
