/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An initramfs as rekey and inspect read it: the chain of (compressed) newc archives and its
 * key members, and the key archive cvm-image appends at its end. */
#include <stdbool.h>
#include <stdlib.h>

#include "fuzz.h"
#include "initramfs/initramfs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char key[] = "0123456789abcdef0123456789abcdef0123456789ab";
	struct initramfs_member m[8];
	size_t n = 0, offs[4];
	unsigned count;

	fuzz_quiet();
	if (initramfs_key_members("fuzz", data, size, key, sizeof(key) - 1, m, 8, &n) == 0)
		initramfs_members_done(m, n);
	(void)initramfs_count_key("fuzz", data, size, key, sizeof(key) - 1, &count);
	(void)initramfs_key_archive(data, size, sizeof(key) - 1, offs, 4);
	return 0;
}
