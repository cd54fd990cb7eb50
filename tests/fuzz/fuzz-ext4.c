/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The root filesystem as rekey and inspect --key-file open it: the input is the plain ext4
 * (what the guest, which knows the key, may write), encrypted here under a fixed key and
 * opened through cryptfs's XTS I/O manager; then the reads inspect makes. */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "image/cryptfs.h"
#include "image/xts.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned char key[64] = { 1, 2, 3, 4, 5, 6, 7, 8 };
	struct xts *x = NULL;
	struct cryptfs *fs = NULL;
	size_t len = (size + 511) / 512 * 512;
	unsigned char *buf;
	int fd;

	fuzz_quiet();
	if (size < 2048 || size > (4 << 20) || xts_new(key, sizeof(key), &x) < 0)
		return 0;
	buf = calloc(1, len);
	fd = memfd_create("fuzz-ext4", MFD_CLOEXEC);
	if (buf && fd >= 0) {
		memcpy(buf, data, size);
		if (xts_encrypt(x, buf, len, 0) == 0 && write(fd, buf, len) == (ssize_t)len &&
		    cryptfs_open(fd, 0, x, false, &fs) == 0) {
			char *out = NULL;
			size_t out_len;
			uint32_t mode;
			uint64_t fsize;
			struct cryptfs_info info;

			cryptfs_info(fs, &info);
			if (cryptfs_stat(fs, "/etc/crypttab", &mode, &fsize) == 0 &&
			    cryptfs_read_file(fs, "/etc/crypttab", &out, &out_len) == 0)
				free(out);
			cryptfs_abort(fs);
		}
	}
	if (fd >= 0)
		close(fd);
	free(buf);
	xts_free(x);
	return 0;
}
