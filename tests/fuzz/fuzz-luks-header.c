/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LUKS1 header fields cvm-image reads itself (luks_describe). */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "image/luks.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct luks_desc d;

	fuzz_quiet();
	if (luks_describe(data, size, &d) == 0) {
		/* What inspect prints: every name terminated and printable. */
		if (strlen(d.cipher) > 32 || strlen(d.mode) > 32 || strlen(d.hash) > 32 ||
		    strlen(d.uuid) > 40)
			__builtin_trap();
		for (const char *p = d.uuid; *p; p++)
			if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
				__builtin_trap();
	}
	return 0;
}
