/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A zstd archive in an initramfs chain: where its frames end (our own walk of the frame and
 * block headers), and the chain read with it (libarchive's zstd reader over the frames). */
#include <stdlib.h>

#include "fuzz.h"
#include "initramfs/initramfs.h"
#include "initramfs/zstdframe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char key[] = "0123456789abcdef0123456789abcdef0123456789ab";
	struct initramfs_member m[8];
	size_t end, n = 0;

	fuzz_quiet();
	if (zstd_frames_end_mem(data, size, 0, &end) == 0 && end > size)
		abort(); /* an end past the data would send the readers out of bounds */
	if (initramfs_key_members("fuzz", data, size, key, sizeof(key) - 1, m, 8, &n) == 0)
		initramfs_members_done(m, n);
	return 0;
}
