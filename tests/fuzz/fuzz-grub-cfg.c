/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A grub.cfg from the image's root, as inspect's grub-boots check scans it. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "image/grub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	struct grub_cfg_lock g;

	fuzz_quiet();
	if (!text)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	grub_cfg_lock_scan(text, &g);
	if (strlen(g.first_title) >= sizeof(g.first_title))
		__builtin_trap();
	free(text);
	return 0;
}
