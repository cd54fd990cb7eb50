/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The root filesystem: mke2fs -d into a sparse file, and its allocated blocks (libext2fs). */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "ext4.h"
#include "common/log.h"
#include "common/run.h"
#include "shared/cleanup.h"
#include "shared/util.h"

/*
 * mke2fs -d (e2fsprogs 1.47.0) keeps only the seconds of each time, and as 32 bits: every
 * nanosecond is lost and a time past 2038 wraps (2200-01-01 becomes 1927-10-19). A pass of
 * our own puts back each inode's mtime from the tree it was made from, in ext4's encoding:
 * the low 32 bits of the seconds in i_mtime, the nanoseconds and two more bits of epoch in
 * i_mtime_extra. (e2fsprogs 1.47.1 fixed it, and writes the ext4 from a
 * tarball itself; Debian 12 has 1.47.0.) atime and ctime stay mke2fs's: the build's own
 * reads of the tree have set atime already, and a tarball does not set ctime.
 */
struct times_walk {
	ext2_filsys fs;
	size_t root_len;
	int r;
};

static struct times_walk *times_walk;

uint32_t ext4_time_extra(const struct timespec *ts)
{
	int64_t epoch = ((int64_t)ts->tv_sec - (int32_t)ts->tv_sec) >> 32;

	return ((uint32_t)ts->tv_nsec << EXT4_EPOCH_BITS) | ((uint32_t)epoch & EXT4_EPOCH_MASK);
}

static int times_one(const char *fpath, const struct stat *st, int type, struct FTW *ftw)
{
	struct times_walk *w = times_walk;
	struct ext2_inode_large inode;
	const char *rel = fpath + w->root_len;
	ext2_ino_t ino;
	errcode_t err;

	(void)type, (void)ftw;
	if (*rel == '\0')
		rel = "/";
	err = ext2fs_namei(w->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, rel, &ino);
	if (err == EXT2_ET_FILE_NOT_FOUND)
		return 0; /* not in the image (lost+found's place, say) */
	if (!err)
		err = ext2fs_read_inode_full(w->fs, ino, (struct ext2_inode *)&inode, sizeof(inode));
	if (err) {
		w->r = log_error_errno(EIO, "cannot read the inode of '%s' in the root filesystem: %s",
				       rel, error_message(err));
		return 1;
	}
	inode.i_mtime = (uint32_t)st->st_mtim.tv_sec;
	if (EXT2_INODE_SIZE(w->fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
	    inode.i_extra_isize >= offsetof(struct ext2_inode_large, i_crtime) -
				   EXT2_GOOD_OLD_INODE_SIZE) {
		inode.i_mtime_extra = ext4_time_extra(&st->st_mtim);
	}
	err = ext2fs_write_inode_full(w->fs, ino, (struct ext2_inode *)&inode, sizeof(inode));
	if (err) {
		w->r = log_error_errno(EIO, "cannot write the inode of '%s' in the root filesystem: %s",
				       rel, error_message(err));
		return 1;
	}
	return 0;
}

static int copy_times(const char *path, uint64_t offset, const char *srcdir)
{
	struct times_walk w = { .root_len = strlen(srcdir) };
	char io_options[64];
	errcode_t err;

	snprintf(io_options, sizeof(io_options), "offset=%" PRIu64, offset);
	err = ext2fs_open2(path, io_options, EXT2_FLAG_64BITS | EXT2_FLAG_RW, 0, 0, unix_io_manager,
			   &w.fs);
	if (err)
		return log_error_errno(EIO, "cannot open the new root filesystem: %s", error_message(err));
	times_walk = &w;
	if (nftw(srcdir, times_one, 64, FTW_PHYS | FTW_MOUNT) < 0 && w.r == 0)
		w.r = log_error_errno(errno, "cannot walk '%s': %m", srcdir);
	times_walk = NULL;
	err = ext2fs_close_free(&w.fs);
	if (err && w.r == 0)
		w.r = log_error_errno(EIO, "cannot write the root filesystem: %s", error_message(err));
	return w.r;
}

int ext4_mkfs(const char *path, uint64_t offset, uint64_t size, const char *uuid,
	      const char *label, const char *srcdir, char *const *wrap)
{
	char blocks[32], ext[64], journal[32];
	uint64_t jmib = size / 128 / MiB;
	int r;

	snprintf(blocks, sizeof(blocks), "%" PRIu64, size / EXT4_BLOCK_SIZE);
	snprintf(ext, sizeof(ext), "nodiscard,lazy_itable_init=1,offset=%" PRIu64, offset);
	/*
	 * The journal is allocated, so it is encrypted and stored whole in every image, qcow2
	 * included: 1/128 of the filesystem, 16 to 128 MiB, rather than mke2fs's 64 MiB from
	 * 2 GiB on. Below 1 GiB mke2fs's own choice is already small.
	 */
	jmib = jmib < 16 ? 16 : jmib > 128 ? 128 : jmib;
	snprintf(journal, sizeof(journal), "size=%" PRIu64, jmib);

	char *env[] = { "MKE2FS_SYNC=0", "E2FSPROGS_LIBMAGIC_SUPPRESS=1", NULL };
	char *argv[64];
	size_t n = 0;

	for (size_t i = 0; wrap && wrap[i] && n < 32; i++)
		argv[n++] = wrap[i];

	/*
	 * -b 4096: Debian's mke2fs.conf would pick 1 KiB blocks for "small" filesystems.
	 * nodiscard: no hole punching. Whatever mke2fs still leaves as holes is safe because the
	 * encrypt stage writes every block the bitmap marks as allocated, holes included, as
	 * encrypted zeros (DESIGN.md §2.4); free blocks are never read.
	 */
	argv[n++] = "mke2fs";
	argv[n++] = "-q";
	argv[n++] = "-F";
	argv[n++] = "-t";
	argv[n++] = "ext4";
	argv[n++] = "-b";
	argv[n++] = "4096";
	argv[n++] = "-I";
	argv[n++] = "256";
	argv[n++] = "-U";
	argv[n++] = (char *)uuid;
	argv[n++] = "-L";
	argv[n++] = (char *)label;
	argv[n++] = "-E";
	argv[n++] = ext;
	if (size >= GiB) {
		argv[n++] = "-J";
		argv[n++] = journal;
	}
	if (srcdir) {
		argv[n++] = "-d";
		argv[n++] = (char *)srcdir;
	}
	argv[n++] = (char *)path;
	argv[n++] = blocks;
	argv[n] = NULL;

	r = run_program(argv, env);
	if (r == 0)
		r = srcdir ? copy_times(path, offset, srcdir) : 0;
	else if (r != -EINTR) {
		_cleanup_free_ char *dir = path_dirname(path);
		struct statvfs sv;

		/* Whose room ran out: the build host's (the output's filesystem), or the image's. */
		if (dir && statvfs(dir, &sv) == 0 && (uint64_t)sv.f_bavail * sv.f_frsize < 16 * MiB)
			log_error("the root filesystem of %" PRIu64 " MiB could not be made: the filesystem "
				  "holding '%s' is full (%" PRIu64 " KiB free); free room there", size / MiB,
				  path, (uint64_t)sv.f_bavail * sv.f_frsize / 1024);
		else
			log_error("the root filesystem of %" PRIu64 " MiB could not be made; if it is full, "
				  "give a larger --size", size / MiB);
	}
	return r;
}

struct range {
	blk64_t start, end;
};

static int cmp_range(const void *a, const void *b)
{
	const struct range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/*
 * The inode table blocks that may stay holes: in a group whose table the kernel has not been
 * told is zeroed (no EXT2_BG_INODE_ZEROED, as mke2fs -E lazy_itable_init=1 leaves it), the
 * blocks past the last inode in use (bg_itable_unused). Nothing reads them: e2fsck and
 * libext2fs skip unused inodes, and the kernel's lazyinit zeroes them after the first mount,
 * through dm-crypt. This is the converse of the trap in DESIGN.md §2.4, where the flag
 * promises zeros that are not there: without the flag, nothing is promised.
 */
static size_t lazy_itable_ranges(ext2_filsys fs, struct range **ret)
{
	struct range *v = calloc(fs->group_desc_count, sizeof(*v));
	size_t n = 0;

	*ret = v;
	if (!v || !ext2fs_has_group_desc_csum(fs))
		return 0;
	for (dgrp_t g = 0; g < fs->group_desc_count; g++) {
		uint64_t used = EXT2_INODES_PER_GROUP(fs->super) - ext2fs_bg_itable_unused(fs, g);
		blk64_t first = ext2fs_inode_table_loc(fs, g);
		blk64_t used_blocks = (used * EXT2_INODE_SIZE(fs->super) + fs->blocksize - 1) /
				      fs->blocksize;

		if (ext2fs_bg_flags_test(fs, g, EXT2_BG_INODE_ZEROED) || first == 0 ||
		    used_blocks >= fs->inode_blocks_per_group)
			continue;
		v[n++] = (struct range){ first + used_blocks, first + fs->inode_blocks_per_group };
	}
	qsort(v, n, sizeof(*v), cmp_range);
	return n;
}

/* fn over [start, end) less the skip ranges. */
static int emit(ext2_filsys fs, blk64_t start, blk64_t end, const struct range *skip, size_t n_skip,
		ext4_range_fn fn, void *userdata, uint64_t *allocated)
{
	uint64_t bs = fs->blocksize;
	int r;

	for (size_t i = 0; i < n_skip && start < end; i++) {
		if (skip[i].end <= start || skip[i].start >= end)
			continue;
		if (skip[i].start > start) {
			r = fn(start * bs, (skip[i].start - start) * bs, userdata);
			if (r < 0)
				return r;
			*allocated += (skip[i].start - start) * bs;
		}
		start = skip[i].end;
	}
	if (start < end) {
		r = fn(start * bs, (end - start) * bs, userdata);
		if (r < 0)
			return r;
		*allocated += (end - start) * bs;
	}
	return 0;
}

int ext4_walk_allocated(struct struct_ext2_filsys *fs, ext4_range_fn fn, void *userdata,
			uint64_t *ret_allocated)
{
	blk64_t first = fs->super->s_first_data_block, last = ext2fs_blocks_count(fs->super) - 1;
	_cleanup_free_ struct range *skip = NULL;
	size_t n_skip = lazy_itable_ranges(fs, &skip);
	blk64_t start, end;
	uint64_t allocated = 0, bs = fs->blocksize;
	errcode_t err;
	int r;

	if (!skip)
		return log_error_errno(ENOMEM, "out of memory");
	/* Blocks before s_first_data_block (the boot block on 1 KiB filesystems) too. */
	if (first > 0) {
		r = fn(0, first * bs, userdata);
		if (r < 0)
			return r;
		allocated += first * bs;
	}
	for (start = first; start <= last;) {
		err = ext2fs_find_first_set_block_bitmap2(fs->block_map, start, last, &start);
		if (err == ENOENT)
			break;
		if (err)
			return log_error_errno(EIO, "cannot walk the block bitmap: %s", error_message(err));
		err = ext2fs_find_first_zero_block_bitmap2(fs->block_map, start, last, &end);
		if (err == ENOENT)
			end = last + 1;
		else if (err)
			return log_error_errno(EIO, "cannot walk the block bitmap: %s", error_message(err));
		r = emit(fs, start, end, skip, n_skip, fn, userdata, &allocated);
		if (r < 0)
			return r;
		start = end;
	}
	if (ret_allocated)
		*ret_allocated = allocated;
	return 0;
}

int ext4_for_each_allocated(const char *path, uint64_t offset, ext4_range_fn fn, void *userdata,
			    uint64_t *ret_allocated)
{
	ext2_filsys fs = NULL;
	char io_options[64];
	errcode_t err;
	int r;

	snprintf(io_options, sizeof(io_options), "offset=%" PRIu64, offset);
	err = ext2fs_open2(path, io_options, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs);
	if (err)
		return log_error_errno(EIO, "cannot open filesystem '%s': %s", path,
				       error_message(err));
	err = ext2fs_read_block_bitmap(fs);
	if (err)
		r = log_error_errno(EIO, "cannot read block bitmap of '%s': %s", path,
				    error_message(err));
	else
		r = ext4_walk_allocated(fs, fn, userdata, ret_allocated);
	ext2fs_close_free(&fs);
	return r;
}

uint64_t ext4_min_size(uint64_t data_bytes, uint64_t n_entries)
{
	/* Data plus 5% for extent and directory blocks, an inode (256 B at the default
	 * ratio, i.e. 16 KiB of space per inode) per entry, a 16 MiB journal floor. */
	uint64_t need = data_bytes + data_bytes / 20 + n_entries * 16 * KiB + 16 * MiB;

	return round_up(need > EXT4_MIN_SIZE ? need : EXT4_MIN_SIZE, MiB);
}
