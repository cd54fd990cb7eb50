/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LUKS1 header fields cvm-image reads itself (luks_describe), and its key slots opened
 * by our own code (luks1_open: offsets, stripes, the hash named, the key material). */
#include <stdio.h>
#include <string.h>

#include "fuzz.h"
#include "image/luks.h"
#include "image/luks1-open.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct secret pass = { .data = (unsigned char *)"fuzz", .size = 4 };
	unsigned char vk[LUKS_VOLUME_KEY_BYTES];
	struct luks_desc d;
	int slot = -1, r;

	fuzz_quiet();
	/* At most 1000 PBKDF2 iterations a slot (the fast slot's): an input is milliseconds. */
	r = luks1_open(data, size, &pass, 1000, vk, &slot);
	if (r == 0 && (slot < 0 || slot > 7))
		__builtin_trap();
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
