/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* For the boot tests: encrypt PLAIN (a filesystem image) with aes-xts-plain64 under the
 * 64-byte key in KEYFILE into OUT at byte OFFSET, as dm-crypt would have written it: what a
 * hostile host can make for a LUKS header of its own.
 *
 *   xts-encrypt KEYFILE PLAIN OUT OFFSET */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "image/xts.h"
#include "shared/util.h"

int main(int argc, char *argv[])
{
	unsigned char key[64], buf[1 << 20];
	struct xts *x = NULL;
	uint64_t sector = 0;
	off_t off;
	ssize_t n;
	int kfd, in, out;

	if (argc != 5) {
		fprintf(stderr, "usage: xts-encrypt KEYFILE PLAIN OUT OFFSET\n");
		return 2;
	}
	kfd = open(argv[1], O_RDONLY);
	in = open(argv[2], O_RDONLY);
	out = open(argv[3], O_WRONLY);
	off = (off_t)strtoull(argv[4], NULL, 0);
	if (kfd < 0 || in < 0 || out < 0 || read(kfd, key, sizeof(key)) != sizeof(key) ||
	    xts_new(key, sizeof(key), &x) < 0) {
		perror("xts-encrypt");
		return 1;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (n % XTS_SECTOR_SIZE || xts_encrypt(x, buf, (size_t)n, sector) < 0 ||
		    pwrite_all(out, buf, (size_t)n, off) < 0) {
			perror("xts-encrypt");
			return 1;
		}
		off += n;
		sector += (uint64_t)n / XTS_SECTOR_SIZE;
	}
	xts_free(x);
	return n < 0 ? 1 : 0;
}
