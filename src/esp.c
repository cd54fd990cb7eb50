/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The EFI System Partition: FAT32 made in user space (mkfs.fat, mtools), no vfat driver. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "esp.h"
#include "log.h"
#include "run.h"
#include "shared/cleanup.h"
#include "shared/util.h"

/* mtools refuses images whose geometry does not look like a floppy unless told not to. */
static char *const mtools_env[] = { "MTOOLS_SKIP_CHECK=1", "MTOOLS_NO_VFAT=0", NULL };

void esp_format_volume_id(uint32_t id, char out[10])
{
	snprintf(out, 10, "%04X-%04X", id >> 16, id & 0xffff);
}

int esp_make(const char *path, uint64_t size, uint32_t volume_id)
{
	char kib[32], volid[16];
	_cleanup_free_ char *img = strdupf("%s", path);
	int r;

	if (!img)
		return log_error_errno(ENOMEM, "out of memory");
	snprintf(kib, sizeof(kib), "%" PRIu64, size / 1024);
	snprintf(volid, sizeof(volid), "%08" PRIX32, volume_id);

	char *mkfs[] = { "mkfs.fat", "-F", "32", "-s", "1", "-n", ESP_LABEL, "-i", volid,
			 "-C", img, kib, NULL };
	r = run_program(mkfs, NULL);
	if (r < 0)
		return r;

	char *mmd[] = { "mmd", "-i", img, "::/EFI", "::/EFI/BOOT", NULL };
	return run_program(mmd, mtools_env);
}

int esp_add_file(const char *esp_path, const char *src, const char *dest)
{
	_cleanup_free_ char *target = strdupf("::/%s", dest);

	if (!target)
		return log_error_errno(ENOMEM, "out of memory");
	char *argv[] = { "mcopy", "-o", "-i", (char *)esp_path, (char *)src, target, NULL };
	return run_program(argv, mtools_env);
}
