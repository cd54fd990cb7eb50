/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect --deep: the image opened by the real kernel in the libguestfs appliance (read-only,
 * its format given, the key passed through the API), e2fsck -fn of the root, and the files the
 * offline checks read compared, mode and SHA-256, with the kernel's view of them. */
#pragma once

#include <stddef.h>

#include "checks.h"
#include "shared/cleanup.h"

/* Findings go to c. Returns 0, or -errno when the appliance could not be used
 * (logged). */
int deep_inspect(struct checks *c, const char *image, const char *format,
		 const struct secret *key, const struct inspect_file *files, size_t n_files);
