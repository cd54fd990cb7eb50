/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ext4 root filesystem inside a LUKS payload, opened with libext2fs through an I/O
 * manager that decrypts and encrypts sectors on the fly: files are read and replaced in place,
 * with no device-mapper, no loop device and no mount. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "xts.h"

struct cryptfs;

/* The filesystem at payload_offset bytes into fd, sectors numbered from there (plain64), with
 * the given cipher. Logs. */
int cryptfs_open(int fd, uint64_t payload_offset, struct xts *xts, bool writable,
		 struct cryptfs **ret);
/* Flush everything (inodes, bitmaps, superblock) and close. Logs. */
int cryptfs_close(struct cryptfs *c);
/* Close without flushing (after a failure). */
void cryptfs_abort(struct cryptfs *c);

/* A regular file's contents (at most 512 MiB), NUL-terminated. -ENOENT if absent. Logs
 * other errors. */
int cryptfs_read_file(struct cryptfs *c, const char *path, char **ret, size_t *ret_len);
/* Replace an existing regular file's contents, keeping its inode, owner and mode. Logs. */
int cryptfs_write_file(struct cryptfs *c, const char *path, const void *data, size_t len);
/* len bytes of a regular file from off, all inside the file. Logs. */
int cryptfs_pread(struct cryptfs *c, const char *path, uint64_t off, void *buf, size_t len);
/* Overwrite len bytes of a regular file from off, all inside the file: its size, inode and
 * blocks stay; only the blocks holding the range are written. Logs. */
int cryptfs_pwrite(struct cryptfs *c, const char *path, uint64_t off, const void *data, size_t len);
/* The same, but the range may go past the file's end: the file is made longer. Logs. */
int cryptfs_pwrite_grow(struct cryptfs *c, const char *path, uint64_t off, const void *data,
			size_t len);
/* Cut a regular file to size bytes (its blocks past it freed). Logs. */
int cryptfs_truncate(struct cryptfs *c, const char *path, uint64_t size);
/* Rename a file within its directory (dir/old to dir/new). Logs. */
int cryptfs_rename(struct cryptfs *c, const char *dir, const char *old, const char *new_name);
/* Names in a directory matching an fnmatch(3) glob, NULL-terminated. Logs. */
int cryptfs_list(struct cryptfs *c, const char *dir, const char *glob, char ***ret);
/* The mode (type and permission bits) and size of path; -ENOENT if absent. Logs other errors. */
int cryptfs_stat(struct cryptfs *c, const char *path, uint32_t *ret_mode, uint64_t *ret_size);

struct cryptfs_info {
	char uuid[37], label[17];
	uint64_t block_size, blocks, free_blocks;
	uint32_t inodes, free_inodes;
};
/* What the superblock says. */
void cryptfs_info(struct cryptfs *c, struct cryptfs_info *ret);

/* Bytes through the I/O manager so far. */
void cryptfs_stats(const struct cryptfs *c, uint64_t *read, uint64_t *written);

/* Walk the block bitmap: as ext4_for_each_allocated, for the encrypted filesystem. */
int cryptfs_for_each_allocated(struct cryptfs *c,
			       int (*fn)(uint64_t off, uint64_t len, void *userdata),
			       void *userdata, uint64_t *ret_allocated);
