/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A disk image's partition table: cvm-image's header checks, then libblkid's probe, as
 * gpt_read_table()'s confined child reads it for inspect and every image command (here in
 * this process, so that libFuzzer sees its coverage). */
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "image/gpt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gpt_table t;
	int fd;

	fuzz_quiet();
	fd = memfd_create("fuzz-gpt", MFD_CLOEXEC);
	if (fd < 0)
		return 0;
	/* The input is the image's first sectors; the rest of a 4 MiB disk reads as zeros, and
	 * its last sector (the backup header) is the input's first 512 bytes after the LBA 1
	 * header, so both headers are reached. */
	if (write(fd, data, size) == (ssize_t)size && ftruncate(fd, 4 << 20) == 0) {
		if (size >= 1024)
			(void)!pwrite(fd, data + 512, 512, (4 << 20) - 512);
		(void)gpt_read_table_unconfined("fuzz", fd, &t);
	}
	close(fd);
	return 0;
}
