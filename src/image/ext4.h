/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The root filesystem: mke2fs -d into a sparse file, and its allocated blocks (libext2fs). */
#pragma once

#include <stdint.h>
#include <time.h>

#define EXT4_BLOCK_SIZE 4096
#define EXT4_MIN_SIZE (16 * 1024 * 1024)

/* Make an ext4 filesystem of size bytes at offset bytes into the existing file at path (the
 * disk image: no separate plaintext copy), with the given UUID and label, populated from
 * srcdir (NULL: empty). wrap (NULL: none): a command line mke2fs runs under (at most 32
 * words), such as a user namespace's. Logs. */
int ext4_mkfs(const char *path, uint64_t offset, uint64_t size, const char *uuid,
	      const char *label, const char *srcdir, char *const *wrap);

/* A time's i_*_extra word: the nanoseconds, and the epoch bits past 2038. */
uint32_t ext4_time_extra(const struct timespec *ts);

/* Called for each maximal run of allocated blocks, in bytes from the start of the fs. */
typedef int (*ext4_range_fn)(uint64_t offset, uint64_t length, void *userdata);

/*
 * Walk the block bitmap of the filesystem at offset in path (group metadata, inode tables and the
 * journal count as allocated, whatever mke2fs left as holes) and call fn for each run, less
 * the never-used inode table blocks of groups not flagged as zeroed (see ext4.c).
 * Sets *ret_allocated to the allocated bytes. Logs.
 */
int ext4_for_each_allocated(const char *path, uint64_t offset, ext4_range_fn fn, void *userdata,
			    uint64_t *ret_allocated);

/* The same walk over an already opened filesystem (ext2_filsys). */
struct struct_ext2_filsys;
int ext4_walk_allocated(struct struct_ext2_filsys *fs, ext4_range_fn fn, void *userdata,
			uint64_t *ret_allocated);

/* The smallest filesystem likely to hold data_bytes of files in n_files files. */
uint64_t ext4_min_size(uint64_t data_bytes, uint64_t n_entries);
