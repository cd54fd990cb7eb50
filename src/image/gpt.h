/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The disk layout: the GPT plan, writing it with libfdisk, checking it with libblkid. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define GPT_TYPE_ESP "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define GPT_TYPE_ROOT_X86_64 "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"

#define GPT_ESP_START (1024 * 1024)         /* 1 MiB */
#define GPT_ROOT_START (100 * 1024 * 1024)  /* 100 MiB */
#define GPT_ESP_SIZE (GPT_ROOT_START - GPT_ESP_START)
#define GPT_TAIL (1024 * 1024)              /* room for the backup GPT, keeps MiB alignment */

struct gpt_plan {
	uint64_t disk_size;
	uint64_t esp_start, esp_size;
	uint64_t root_start, root_size;
	char disk_uuid[37], esp_uuid[37], root_uuid[37]; /* PTUUID and PARTUUIDs */
};

/* The smallest disk whose root partition is root_size bytes. */
uint64_t gpt_disk_size_for_root(uint64_t root_size);

/* Lay out a disk of disk_size bytes (a multiple of 1 MiB). The UUIDs are left as they are.
 * Returns -EINVAL if disk_size is not MiB-aligned or leaves no root partition. Never logs. */
int gpt_plan_compute(uint64_t disk_size, struct gpt_plan *plan);

/* Write the protective MBR and both GPTs into the file at path (already disk_size long). Logs. */
int gpt_write(const char *path, const struct gpt_plan *plan);

/* What libblkid reads back from an assembled image. */
struct gpt_probe {
	char ptuuid[37];
	char esp_partuuid[37], root_partuuid[37];
	char esp_type[16], esp_uuid[37];
	char root_type[16], root_uuid[37], root_version[8];
};

/* Probe the image at path with libblkid and check it against the plan and the expected LUKS
 * UUID and ESP volume id ("ABCD-1234"). Logs what differs. */
int gpt_verify(const char *path, const struct gpt_plan *plan, const char *luks_uuid,
	       const char *esp_volume_id, struct gpt_probe *ret);

/* The first vfat partition (the ESP): its offset and size in bytes. Logs. */
int gpt_find_esp(const char *path, uint64_t *ret_offset, uint64_t *ret_size);

/* A partition table as libblkid reads it, and what each partition holds. */
struct gpt_part {
	unsigned number;
	uint64_t start, size; /* bytes */
	char type_guid[37], partuuid[37], name[73];
	char fs_type[16], fs_uuid[37], fs_version[8]; /* "" when libblkid finds nothing */
};

struct gpt_table {
	char type[8]; /* "gpt", "dos" */
	char ptuuid[37];
	unsigned n;
	struct gpt_part parts[16];
	char primary_damage[96]; /* "" or what is wrong with the primary GPT (the backup served) */
};

/* The most partition entries (of 128 bytes) a GPT may claim before anything reads them: the
 * usual 128, and room for tools that reserve more. libblkid reads and holds the whole array
 * a header claims (a 1 GiB one: 31 s, 1 GB of memory, twice). */
#define GPT_MAX_ENTRIES 1024
#define GPT_MAX_ENTRY_SIZE 512

/*
 * Check the GPT headers of the image open as fd (the primary at LBA 1, and the backup at the
 * last LBA) before libblkid or libfdisk reads them: entry counts and sizes within bounds (an
 * error naming path otherwise). The primary's own damage (signature, header or entries CRC)
 * is put in damage (damage_len bytes, "" when it is sound): libblkid then takes the backup.
 * Logs on error.
 */
int gpt_check_headers(const char *path, int fd, char *damage, size_t damage_len);

/* Read the partition table of the image at path, in a confined child (confine.h: libblkid on
 * bytes the image's maker wrote); messages name the image as name. Logs when there is none
 * (truncated, or not a disk image) and when the child dies. */
int gpt_read_table(const char *path, const char *name, struct gpt_table *ret);
/* gpt_read_table()'s reader of the image open as fd, in this process: for the fuzz target
 * (whose coverage a confined child would not give back) and for the confined child itself. */
int gpt_read_table_unconfined(const char *name, int fd, struct gpt_table *ret);
