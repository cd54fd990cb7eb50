/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The EFI System Partition: FAT32 made in user space (mkfs.fat, mtools), no vfat driver. */
#pragma once

#include <stdint.h>

#include "shared/cleanup.h"

#define ESP_LABEL "ESP"

/* Create a FAT32 filesystem (one sector per cluster) of size bytes at path, which must not
 * exist, with the given volume id and label, and the directories \EFI\BOOT. Logs. */
int esp_make(const char *path, uint64_t size, uint32_t volume_id);

/* Copy a host file into the ESP image, e.g. "EFI/BOOT/BOOTX64.EFI". Logs. */
int esp_add_file(const char *esp_path, const char *src, const char *dest);

/*
 * Copy the tree below dirfd (the target's staged /boot/efi) into the ESP image: directories
 * and regular files only (a symlink is an error: it could point anywhere on the build host),
 * each file read through the descriptor already opened without following links. First the
 * whole tree is checked: no file may hold key (it would be in the clear on the ESP); the
 * error names the file. Then empty the staged tree, which stays as the mount point. Returns
 * the number of files. Logs.
 */
int esp_populate(const char *esp_path, int dirfd, const char *label, const struct secret *key);

/* In the file path (e.g. "EFI/BOOT/BOOTX64.EFI") of the ESP at offset bytes into image,
 * replace the UUID old by new (same length: grub's embedded early config). Returns the
 * number of replacements. Logs. */
int esp_replace_uuid(const char *image, uint64_t offset, const char *path, const char *old,
		     const char *new_uuid, const char *tmpdir);

/* "ABCD-1234", as blkid and /etc/fstab spell a FAT volume id. */
void esp_format_volume_id(uint32_t id, char out[10]);

/* The files on the ESP at offset bytes into image ("EFI/BOOT/BOOTX64.EFI", ...), a
 * NULL-terminated list. Logs. */
int esp_list_files(const char *image, uint64_t offset, char ***ret);

/* A file of the ESP at offset bytes into image, read through a copy in tmpdir (removed).
 * -ENOENT if it is not there. Logs other errors. */
int esp_read_file(const char *image, uint64_t offset, const char *path, const char *tmpdir,
		  unsigned char **ret, size_t *ret_len);
