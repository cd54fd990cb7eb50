/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The disk layout: the GPT plan, writing it with libfdisk, checking it with libblkid. */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <blkid/blkid.h>
#include <libfdisk/libfdisk.h>
#include <zlib.h>

#include "gpt.h"
#include "luks.h"
#include "common/confine.h"
#include "common/log.h"
#include "shared/cleanup-libs.h"
#include "shared/cleanup.h"
#include "shared/fault.h"
#include "shared/util.h"

#define SECTOR 512


uint64_t gpt_disk_size_for_root(uint64_t root_size)
{
	return GPT_ROOT_START + round_up(root_size, MiB) + GPT_TAIL;
}

int gpt_plan_compute(uint64_t disk_size, struct gpt_plan *plan)
{
	if (disk_size % MiB || disk_size < GPT_ROOT_START + GPT_TAIL + MiB)
		return -EINVAL;
	plan->disk_size = disk_size;
	plan->esp_start = GPT_ESP_START;
	plan->esp_size = GPT_ESP_SIZE;
	plan->root_start = GPT_ROOT_START;
	plan->root_size = disk_size - GPT_ROOT_START - GPT_TAIL;
	return 0;
}

static int add_partition(struct fdisk_context *cxt, size_t partno, uint64_t start, uint64_t size,
			 const char *type_guid, const char *uuid, const char *name)
{
	_cleanup_(fdisk_unref_partitionp) struct fdisk_partition *pa = fdisk_new_partition();
	_cleanup_(fdisk_unref_parttypep) struct fdisk_parttype *type = NULL;
	int r;

	if (!pa)
		return -ENOMEM;
	type = fdisk_label_get_parttype_from_string(fdisk_get_label(cxt, NULL), type_guid);
	if (!type)
		return -EINVAL;
	r = fdisk_partition_set_partno(pa, partno);
	if (r >= 0)
		r = fdisk_partition_set_start(pa, start / SECTOR);
	if (r >= 0)
		r = fdisk_partition_set_size(pa, size / SECTOR);
	if (r >= 0)
		r = fdisk_partition_set_type(pa, type);
	if (r >= 0)
		r = fdisk_partition_set_uuid(pa, uuid);
	if (r >= 0)
		r = fdisk_partition_set_name(pa, name);
	if (r >= 0)
		r = fdisk_add_partition(cxt, pa, NULL);
	return r < 0 ? r : 0;
}

int gpt_write(const char *path, const struct gpt_plan *plan)
{
	_cleanup_(fdisk_unref_contextp) struct fdisk_context *cxt = fdisk_new_context();
	int r;

	if (!cxt)
		return log_error_errno(ENOMEM, "cannot allocate libfdisk context: %m");
	fdisk_disable_dialogs(cxt, 1);
	r = fdisk_assign_device(cxt, path, 0);
	if (r < 0)
		return log_error_errno(r, "cannot open '%s' for partitioning: %m", path);
	r = fdisk_create_disklabel(cxt, "gpt");
	if (r >= 0)
		r = fdisk_set_disklabel_id_from_string(cxt, plan->disk_uuid);
	if (r < 0)
		return log_error_errno(r, "cannot create GPT on '%s': %m", path);
	r = add_partition(cxt, 0, plan->esp_start, plan->esp_size, GPT_TYPE_ESP, plan->esp_uuid,
			  "EFI System Partition");
	if (r < 0)
		return log_error_errno(r, "cannot add the EFI System Partition: %m");
	r = add_partition(cxt, 1, plan->root_start, plan->root_size, GPT_TYPE_ROOT_X86_64,
			  plan->root_uuid, "root");
	if (r < 0)
		return log_error_errno(r, "cannot add the root partition: %m");
	r = fdisk_write_disklabel(cxt);
	if (r < 0)
		return log_error_errno(r, "cannot write GPT to '%s': %m", path);
	r = fdisk_deassign_device(cxt, 1); /* no sync: the output is fsync'd at commit */
	if (r < 0)
		return log_error_errno(r, "cannot write GPT to '%s': %m", path);
	return 0;
}

static void copy_value(blkid_probe pr, const char *name, char *out, size_t len)
{
	const char *v = NULL;

	out[0] = '\0';
	if (blkid_probe_lookup_value(pr, name, &v, NULL) == 0 && v)
		snprintf(out, len, "%s", v);
}

static int probe_region(int fd, uint64_t off, uint64_t size, char *type, size_t type_len,
			char *uuid, size_t uuid_len, char *version, size_t version_len)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = blkid_new_probe();

	if (!pr)
		return -ENOMEM;
	if (blkid_probe_set_device(pr, fd, (blkid_loff_t)off, (blkid_loff_t)size) < 0)
		return -EIO;
	blkid_probe_enable_superblocks(pr, 1);
	blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_UUID |
						      BLKID_SUBLKS_VERSION);
	/* libblkid: 0 found, 1 nothing found, -2 ambiguous, -1 error. */
	if (blkid_do_safeprobe(pr) != 0)
		return -ENODATA;
	copy_value(pr, "TYPE", type, type_len);
	copy_value(pr, "UUID", uuid, uuid_len);
	if (version)
		copy_value(pr, "VERSION", version, version_len);
	return 0;
}

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t le64(const unsigned char *p)
{
	return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

/* One GPT header at lba: 0 not one (no signature), 1 sound, 2 damaged (why in damage);
 * -errno for claims beyond the bounds (logged). The header is ours to parse: the point is to
 * look before libblkid, with bounds of our own. */
static int check_header(const char *path, int fd, uint64_t lba, const char *which, char *damage,
			size_t damage_len)
{
	_cleanup_free_ unsigned char *entries = NULL;
	unsigned char h[SECTOR];
	uint32_t hsize, n, esize, crc;
	uint64_t eslba;

	if (pread(fd, h, sizeof(h), (off_t)(lba * SECTOR)) != (ssize_t)sizeof(h) ||
	    memcmp(h, "EFI PART", 8) != 0)
		return 0;
	hsize = le32(h + 12);
	n = le32(h + 80);
	esize = le32(h + 84);
	eslba = le64(h + 72);
	if (n > GPT_MAX_ENTRIES || esize < 128 || esize > GPT_MAX_ENTRY_SIZE || esize % 128)
		return log_error_errno(EMEDIUMTYPE, "'%s': its %s GPT header claims %" PRIu32 " partition "
				       "entries of %" PRIu32 " bytes: more than a disk image's GPT holds "
				       "(at most %d of 128 to %d bytes); not read", path, which, n, esize,
				       GPT_MAX_ENTRIES, GPT_MAX_ENTRY_SIZE);
	if (hsize < 92 || hsize > SECTOR) {
		snprintf(damage, damage_len, "its %s GPT header's size is %" PRIu32, which, hsize);
		return 2;
	}
	crc = le32(h + 16);
	memset(h + 16, 0, 4);
	if (crc32(0, h, hsize) != crc) {
		snprintf(damage, damage_len, "its %s GPT header's CRC does not match", which);
		return 2;
	}
	entries = malloc((size_t)n * esize + 1);
	if (!entries)
		return log_error_errno(ENOMEM, "out of memory");
	if (pread(fd, entries, (size_t)n * esize, (off_t)(eslba * SECTOR)) != (ssize_t)((size_t)n * esize) ||
	    crc32(0, entries, n * esize) != le32(h + 88)) {
		snprintf(damage, damage_len, "its %s GPT's partition entries do not match their CRC", which);
		return 2;
	}
	return 1;
}

int gpt_check_headers(const char *path, int fd, char *damage, size_t damage_len)
{
	char backup_damage[96] = "";
	struct stat st;
	int r;

	damage[0] = '\0';
	r = check_header(path, fd, 1, "primary", damage, damage_len);
	if (r < 0)
		return r;
	if (r == 0)
		snprintf(damage, damage_len, "no primary GPT header");
	if (fstat(fd, &st) < 0)
		return log_error_errno(errno, "cannot stat '%s': %m", path);
	if (st.st_size >= 2 * SECTOR) {
		int b = check_header(path, fd, (uint64_t)st.st_size / SECTOR - 1, "backup",
				     backup_damage, sizeof(backup_damage));
		if (b < 0)
			return b;
	}
	if (r == 1)
		damage[0] = '\0';
	return 0;
}

/* Probe the partition table of the image open as fd. Logs. */
static int probe_partitions(const char *path, int fd, blkid_probe *ret_pr, blkid_partlist *ret_ls)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	char damage[96];
	int r;

	r = gpt_check_headers(path, fd, damage, sizeof(damage));
	if (r < 0)
		return r;
	pr = blkid_new_probe();
	if (!pr || blkid_probe_set_device(pr, fd, 0, 0) < 0)
		return log_error_errno(ENOMEM, "cannot probe '%s'", path);
	blkid_probe_enable_superblocks(pr, 0);
	blkid_probe_enable_partitions(pr, 1);
	blkid_probe_set_partitions_flags(pr, BLKID_PARTS_ENTRY_DETAILS);
	if (blkid_do_fullprobe(pr) < 0)
		return log_error_errno(EIO, "cannot probe '%s'", path);
	*ret_ls = blkid_probe_get_partitions(pr);
	*ret_pr = TAKE_PTR(pr);
	return 0;
}

int gpt_verify(const char *path, const struct gpt_plan *plan, const char *luks_uuid,
	       const char *esp_volume_id, struct gpt_probe *ret)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	_cleanup_close_ int fd = -1;
	struct gpt_probe p = {};
	blkid_partlist ls;
	blkid_parttable tab;

	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	r = probe_partitions(path, fd, &pr, &ls);
	if (r < 0)
		return r;
	tab = ls ? blkid_partlist_get_table(ls) : NULL;
	if (!tab || !streq(blkid_parttable_get_type(tab), "gpt") ||
	    blkid_partlist_numof_partitions(ls) != 2)
		return log_error_errno(EIO, "'%s': libblkid does not see a GPT with two partitions",
				       path);
	snprintf(p.ptuuid, sizeof(p.ptuuid), "%s", blkid_parttable_get_id(tab) ?: "");
	snprintf(p.esp_partuuid, sizeof(p.esp_partuuid), "%s",
		 blkid_partition_get_uuid(blkid_partlist_get_partition(ls, 0)) ?: "");
	snprintf(p.root_partuuid, sizeof(p.root_partuuid), "%s",
		 blkid_partition_get_uuid(blkid_partlist_get_partition(ls, 1)) ?: "");
	if (strcasecmp(p.ptuuid, plan->disk_uuid) || strcasecmp(p.esp_partuuid, plan->esp_uuid) ||
	    strcasecmp(p.root_partuuid, plan->root_uuid))
		return log_error_errno(EIO, "'%s': partition table UUIDs read back differ from the plan",
				       path);

	if (probe_region(fd, plan->esp_start, plan->esp_size, p.esp_type, sizeof(p.esp_type),
			 p.esp_uuid, sizeof(p.esp_uuid), NULL, 0) < 0 ||
	    !streq(p.esp_type, "vfat") || strcasecmp(p.esp_uuid, esp_volume_id))
		return log_error_errno(EIO, "'%s': the ESP reads back as '%s' '%s', expected vfat '%s'",
				       path, p.esp_type, p.esp_uuid, esp_volume_id);
	if (probe_region(fd, plan->root_start, plan->root_size, p.root_type, sizeof(p.root_type),
			 p.root_uuid, sizeof(p.root_uuid), p.root_version,
			 sizeof(p.root_version)) < 0 ||
	    !streq(p.root_type, "crypto_LUKS") || strcasecmp(p.root_uuid, luks_uuid) ||
	    !streq(p.root_version, "1"))
		return log_error_errno(EIO,
				       "'%s': the root partition reads back as '%s' '%s' version '%s', expected crypto_LUKS '%s' version 1",
				       path, p.root_type, p.root_uuid, p.root_version, luks_uuid);
	if (ret)
		*ret = p;
	return 0;
}

/* With no partition table libblkid accepts: a primary GPT header whose backup lies past the
 * end of the file means a truncated image, not a disk of another kind. Reads the header
 * itself (libblkid and libfdisk only say "no table"). */
static int no_table_error(const char *path, int fd)
{
	unsigned char h[92];
	struct stat st;
	uint64_t alt = 0;
	char a[32], b[32];

	if (pread(fd, h, sizeof(h), SECTOR) == (ssize_t)sizeof(h) && !memcmp(h, "EFI PART", 8) &&
	    fstat(fd, &st) == 0) {
		for (int i = 7; i >= 0; i--)
			alt = alt << 8 | h[32 + i]; /* AlternateLBA, little-endian */
		if ((alt + 1) * SECTOR > (uint64_t)st.st_size)
			return log_error_errno(EMEDIUMTYPE, "'%s' is shorter than its partition table "
					       "says: %s of %s (truncated?)", path,
					       format_size((uint64_t)st.st_size, a, sizeof(a)),
					       format_size((alt + 1) * SECTOR, b, sizeof(b)));
	}
	return log_error_errno(EMEDIUMTYPE, "'%s' has no partition table (not an image made by "
					    "cvm-image?)", path);
}

int gpt_find_esp(const char *path, uint64_t *ret_offset, uint64_t *ret_size)
{
	struct gpt_table t;
	int r = gpt_read_table(path, path, &t);

	if (r < 0)
		return r;
	for (unsigned i = 0; i < t.n; i++)
		if (streq(t.parts[i].fs_type, "vfat")) {
			*ret_offset = t.parts[i].start;
			*ret_size = t.parts[i].size;
			return 0;
		}
	return log_error_errno(ENOENT, "'%s' has no EFI System Partition", path);
}

int gpt_read_table_unconfined(const char *name, int fd, struct gpt_table *ret)
{
	_cleanup_(blkid_free_probep) blkid_probe pr = NULL;
	struct gpt_table t = {};
	blkid_parttable tab;
	blkid_partlist ls;
	int n, r;

	r = probe_partitions(name, fd, &pr, &ls);
	if (r < 0)
		return r;
	n = ls ? blkid_partlist_numof_partitions(ls) : 0;
	tab = ls ? blkid_partlist_get_table(ls) : NULL;
	if (n <= 0 || !tab)
		return no_table_error(name, fd);
	if (gpt_check_headers(name, fd, t.primary_damage, sizeof(t.primary_damage)) < 0)
		return -EMEDIUMTYPE;
	snprintf(t.type, sizeof(t.type), "%s", blkid_parttable_get_type(tab) ?: "");
	snprintf(t.ptuuid, sizeof(t.ptuuid), "%s", blkid_parttable_get_id(tab) ?: "");
	for (int i = 0; i < n && t.n < ELEMENTSOF(t.parts); i++) {
		blkid_partition par = blkid_partlist_get_partition(ls, i);
		struct gpt_part *p = &t.parts[t.n++];

		p->number = (unsigned)blkid_partition_get_partno(par);
		p->start = (uint64_t)blkid_partition_get_start(par) * SECTOR;
		p->size = (uint64_t)blkid_partition_get_size(par) * SECTOR;
		snprintf(p->type_guid, sizeof(p->type_guid), "%s",
			 blkid_partition_get_type_string(par) ?: "");
		snprintf(p->partuuid, sizeof(p->partuuid), "%s", blkid_partition_get_uuid(par) ?: "");
		snprintf(p->name, sizeof(p->name), "%s", blkid_partition_get_name(par) ?: "");
		for (char *c = p->type_guid; *c; c++)
			*c = (char)toupper((unsigned char)*c);
		(void)probe_region(fd, p->start, p->size, p->fs_type, sizeof(p->fs_type), p->fs_uuid,
				   sizeof(p->fs_uuid), p->fs_version, sizeof(p->fs_version));
	}
	*ret = t;
	return 0;
}

struct read_table_args {
	const char *name;
	int fd;
};

static int read_table_child(void *userdata, int out_fd)
{
	const struct read_table_args *a = userdata;
	struct gpt_table t;
	int r;

	if (fault_requested("gpt-reader-probe")) {
		int fd = open("/etc/passwd", O_RDONLY | O_CLOEXEC), e_open = fd < 0 ? errno : 0;

		log_warning("gpt-reader-probe: uid %u, open %s", (unsigned)geteuid(),
			    strerrorname_np(e_open) ?: "ok");
	}
	if (fault_requested("gpt-reader-crash"))
		abort();
	r = gpt_read_table_unconfined(a->name, a->fd, &t);

	return r < 0 ? r : write_all(out_fd, &t, sizeof(t));
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* Whether the confined child's answer is a table: the count in bounds, every string ended. */
static bool table_sound(const struct gpt_table *t)
{
	if (t->n > ELEMENTSOF(t->parts) || !terminated(t->type, sizeof(t->type)) ||
	    !terminated(t->ptuuid, sizeof(t->ptuuid)) ||
	    !terminated(t->primary_damage, sizeof(t->primary_damage)))
		return false;
	for (unsigned i = 0; i < t->n; i++) {
		const struct gpt_part *p = &t->parts[i];

		if (!terminated(p->type_guid, sizeof(p->type_guid)) ||
		    !terminated(p->partuuid, sizeof(p->partuuid)) ||
		    !terminated(p->name, sizeof(p->name)) ||
		    !terminated(p->fs_type, sizeof(p->fs_type)) ||
		    !terminated(p->fs_uuid, sizeof(p->fs_uuid)) ||
		    !terminated(p->fs_version, sizeof(p->fs_version)))
			return false;
	}
	return true;
}

/*
 * The partition table (libblkid's probe of the table and of each partition's superblock: what
 * the guest or whoever made the image wrote) read in a confined child (confine.h), so that a
 * memory bug a crafted table finds in libblkid cannot act as us. Our own header checks
 * (gpt_check_headers()) run first, in the child too.
 */
int gpt_read_table(const char *path, const char *name, struct gpt_table *ret)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct read_table_args a = { name, -1 };
	_cleanup_free_ char *answer = NULL;
	size_t len = 0;
	int sig = 0, r;

	if (fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", name);
	a.fd = fd;
	r = confine_run(read_table_child, &a, fd, sizeof(struct gpt_table), &answer, &len, &sig);
	if (r == -ECHILD)
		return log_error_errno(EMEDIUMTYPE, "'%s': the confined reader of its partition table "
				       "was killed (%s): the table is damaged or crafted", name,
				       sig ? strsignal(sig) : "its answer was too long");
	if (r < 0)
		return r; /* the child logged why */
	if (len != sizeof(struct gpt_table) || !table_sound((const struct gpt_table *)answer))
		return log_error_errno(EBADMSG, "'%s': the confined reader of its partition table "
				       "answered out of bounds", name);
	memcpy(ret, answer, sizeof(*ret));
	return 0;
}
