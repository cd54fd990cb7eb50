/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ext4 root filesystem inside a LUKS payload, opened with libext2fs through an I/O
 * manager that decrypts and encrypts sectors on the fly: files are read and replaced in place,
 * with no device-mapper, no loop device and no mount. */
#include <errno.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "cryptfs.h"
#include "ext4.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

/*
 * Our own io_manager, because libext2fs offers none that transforms data: unix_io reads a
 * plain file. It is the unix_io contract (blocks of channel->block_size, a negative count
 * meaning bytes) over pread/pwrite of whole 512-byte sectors, decrypted after reading and
 * encrypted before writing, always into a private buffer.
 */
struct xio {
	int fd;
	uint64_t base;
	struct xts *xts;
	uint64_t bytes_read, bytes_written;
};

struct cryptfs {
	ext2_filsys fs;
	struct xio *io;
};

/* libext2fs opens a channel by name only: the name carries this pointer. */
static struct xio *pending_open;

static errcode_t xio_open(const char *name, int flags, io_channel *channel);

static errcode_t xio_close(io_channel ch)
{
	if (--ch->refcount > 0)
		return 0;
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t xio_set_blksize(io_channel ch, int blksize)
{
	ch->block_size = blksize;
	return 0;
}

static errcode_t xio_rw(io_channel ch, unsigned long long block, int count, void *data, bool write)
{
	struct xio *x = ch->private_data;
	size_t len = count < 0 ? (size_t)-count : (size_t)count * (size_t)ch->block_size;
	uint64_t off = block * (uint64_t)ch->block_size;
	_cleanup_free_ unsigned char *buf = NULL;
	int r;

	if (len % XTS_SECTOR_SIZE || off % XTS_SECTOR_SIZE)
		return EXT2_ET_UNIMPLEMENTED; /* never asked by libext2fs for 512-aligned fs */
	buf = malloc(len);
	if (!buf)
		return EXT2_ET_NO_MEMORY;
	if (write) {
		memcpy(buf, data, len);
		if (xts_encrypt(x->xts, buf, len, off / XTS_SECTOR_SIZE) < 0)
			return EXT2_ET_SHORT_WRITE;
		r = pwrite_all(x->fd, buf, len, (off_t)(x->base + off));
		if (r < 0)
			return (errcode_t)-r;
		x->bytes_written += len;
		return 0;
	}
	r = pread_all(x->fd, buf, len, (off_t)(x->base + off));
	if (r < 0)
		return r == -EIO ? EXT2_ET_SHORT_READ : (errcode_t)-r;
	x->bytes_read += len;
	if (xts_decrypt(x->xts, buf, len, off / XTS_SECTOR_SIZE) < 0)
		return EXT2_ET_SHORT_READ;
	memcpy(data, buf, len);
	return 0;
}

static errcode_t xio_read_blk64(io_channel ch, unsigned long long block, int count, void *data)
{
	return xio_rw(ch, block, count, data, false);
}

static errcode_t xio_write_blk64(io_channel ch, unsigned long long block, int count,
				 const void *data)
{
	return xio_rw(ch, block, count, (void *)data, true);
}

static errcode_t xio_read_blk(io_channel ch, unsigned long block, int count, void *data)
{
	return xio_read_blk64(ch, block, count, data);
}

static errcode_t xio_write_blk(io_channel ch, unsigned long block, int count, const void *data)
{
	return xio_write_blk64(ch, block, count, data);
}

/* Bytes at any offset: read-modify-write of the sectors they touch. */
static errcode_t xio_write_byte(io_channel ch, unsigned long offset, int count, const void *data)
{
	uint64_t first = offset / XTS_SECTOR_SIZE, last = (offset + (unsigned)count - 1) / XTS_SECTOR_SIZE;
	int n = (int)(last - first + 1) * XTS_SECTOR_SIZE, saved = ch->block_size;
	_cleanup_free_ unsigned char *buf = malloc((size_t)n);
	errcode_t err;

	if (!buf)
		return EXT2_ET_NO_MEMORY;
	ch->block_size = XTS_SECTOR_SIZE;
	err = xio_rw(ch, first, -n, buf, false);
	if (!err) {
		memcpy(buf + (offset - first * XTS_SECTOR_SIZE), data, (size_t)count);
		err = xio_rw(ch, first, -n, buf, true);
	}
	ch->block_size = saved;
	return err;
}

static errcode_t xio_flush(io_channel ch)
{
	struct xio *x = ch->private_data;

	return fdatasync(x->fd) < 0 ? (errcode_t)errno : 0;
}

static errcode_t xio_set_option(io_channel ch, const char *option, const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager xio_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "cvm-image XTS I/O manager",
	.open = xio_open,
	.close = xio_close,
	.set_blksize = xio_set_blksize,
	.read_blk = xio_read_blk,
	.write_blk = xio_write_blk,
	.flush = xio_flush,
	.write_byte = xio_write_byte,
	.set_option = xio_set_option,
	.read_blk64 = xio_read_blk64,
	.write_blk64 = xio_write_blk64,
};

static errcode_t xio_open(const char *name, int flags, io_channel *channel)
{
	io_channel ch;

	if (!pending_open)
		return EXT2_ET_BAD_DEVICE_NAME;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return EXT2_ET_NO_MEMORY;
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = &xio_manager;
	ch->name = strdup(name);
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->private_data = pending_open;
	if (!ch->name) {
		free(ch);
		return EXT2_ET_NO_MEMORY;
	}
	*channel = ch;
	return 0;
}

/* What libext2fs takes from the superblock on trust, checked against the ext4 layout. */
static int check_geometry(ext2_filsys fs)
{
	struct ext2_super_block *sb = fs->super;
	uint64_t blocks = ext2fs_blocks_count(sb), groups;
	unsigned bs = EXT2_BLOCK_SIZE(sb);
	const char *what = NULL;

	if (sb->s_log_block_size > 6)
		what = "a block size over 64 KiB";
	else if (sb->s_first_data_block != (bs == 1024 ? 1u : 0u))
		what = "a first data block that is not the one of its block size";
	else if (sb->s_log_cluster_size != sb->s_log_block_size)
		what = "clusters (bigalloc), which cvm-image never makes";
	else if (sb->s_blocks_per_group == 0 || sb->s_blocks_per_group > 8 * bs ||
		 sb->s_blocks_per_group % 8)
		what = "a number of blocks per group its bitmaps cannot hold";
	else if (sb->s_inodes_per_group == 0 || sb->s_inodes_per_group > 8 * bs ||
		 sb->s_inodes_per_group % 8)
		what = "a number of inodes per group its bitmaps cannot hold";
	else if (blocks <= sb->s_first_data_block)
		what = "no blocks";
	if (!what) {
		groups = (blocks - sb->s_first_data_block + sb->s_blocks_per_group - 1) /
			 sb->s_blocks_per_group;
		if (groups != fs->group_desc_count)
			what = "a number of groups that its block count does not give";
		else if ((uint64_t)sb->s_inodes_per_group * groups != sb->s_inodes_count)
			what = "an inode count that its groups do not give";
	}
	if (what)
		return log_error_errno(EUCLEAN, "the root filesystem's superblock says %s: damaged or "
				       "made to harm its reader; nothing is read from it", what);
	return 0;
}

int cryptfs_open(int fd, uint64_t payload_offset, struct xts *xts, bool writable,
		 struct cryptfs **ret)
{
	_cleanup_free_ struct cryptfs *c = calloc(1, sizeof(*c));
	errcode_t err;
	int r;

	if (!c || !(c->io = calloc(1, sizeof(*c->io))))
		return log_error_errno(ENOMEM, "out of memory");
	/* libext2fs's messages ("Bad magic number in super-block"), not "Unknown code ext2 19":
	 * the table is only loaded by those who ask (com_err). Loading it twice is harmless. */
	initialize_ext2_error_table();
	*c->io = (struct xio){ .fd = fd, .base = payload_offset, .xts = xts };
	pending_open = c->io;
	err = ext2fs_open2("cvm-image-luks-payload", NULL,
			   EXT2_FLAG_64BITS | (writable ? EXT2_FLAG_RW : 0), 0, 0, &xio_manager,
			   &c->fs);
	pending_open = NULL;
	if (err) {
		free(c->io);
		return log_error_errno(EIO, "the LUKS payload holds no ext4 filesystem: %s",
				       error_message(err));
	}
	/* The image's guest knows the key and can write any metadata: the superblock and the
	 * group descriptors are checked before libext2fs sizes bitmaps from them (1.47.0's
	 * ext2fs_read_bitmaps() overflows its heap on a wrong s_first_data_block). */
	r = check_geometry(c->fs);
	if (r == 0 && (err = ext2fs_check_desc(c->fs)))
		r = log_error_errno(EUCLEAN, "the root filesystem's group descriptors are damaged: %s",
				    error_message(err));
	if (r == 0 && (err = ext2fs_read_bitmaps(c->fs)))
		r = log_error_errno(EIO, "cannot read the filesystem's bitmaps: %s",
				    error_message(err));
	if (r < 0) {
		ext2fs_close_free(&c->fs);
		free(c->io);
		return r;
	}
	*ret = TAKE_PTR(c);
	return 0;
}

int cryptfs_close(struct cryptfs *c)
{
	errcode_t err = ext2fs_close_free(&c->fs);

	free(c->io);
	free(c);
	if (err)
		return log_error_errno(EIO, "cannot write the filesystem back: %s", error_message(err));
	return 0;
}

void cryptfs_abort(struct cryptfs *c)
{
	if (!c)
		return;
	/* Drop dirty state: nothing more is written. */
	if (c->fs)
		c->fs->flags &= ~(EXT2_FLAG_DIRTY | EXT2_FLAG_IB_DIRTY | EXT2_FLAG_BB_DIRTY);
	ext2fs_free(c->fs);
	free(c->io);
	free(c);
}

void cryptfs_stats(const struct cryptfs *c, uint64_t *read, uint64_t *written)
{
	*read = c->io->bytes_read;
	*written = c->io->bytes_written;
}

static void uuid_format(const unsigned char u[16], char out[37])
{
	snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12],
		 u[13], u[14], u[15]);
}

static int lookup(struct cryptfs *c, const char *path, ext2_ino_t *ino)
{
	errcode_t err = ext2fs_namei(c->fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, ino);

	if (err == EXT2_ET_FILE_NOT_FOUND || err == EXT2_ET_NO_DIRECTORY)
		return -ENOENT;
	if (err)
		return log_error_errno(EIO, "cannot look up '%s' in the root filesystem: %s", path,
				       error_message(err));
	return 0;
}

/* The inode at path: -ENOENT if absent. Logs other errors. */
static int lookup_inode(struct cryptfs *c, const char *path, ext2_ino_t *ino,
			struct ext2_inode *inode)
{
	errcode_t err;
	int r = lookup(c, path, ino);

	if (r < 0)
		return r;
	err = ext2fs_read_inode(c->fs, *ino, inode);
	if (err)
		return log_error_errno(EIO, "cannot read the inode of '%s': %s", path, error_message(err));
	return 0;
}

int cryptfs_stat(struct cryptfs *c, const char *path, uint32_t *ret_mode, uint64_t *ret_size)
{
	struct ext2_inode inode;
	ext2_ino_t ino;
	int r = lookup_inode(c, path, &ino, &inode);

	if (r < 0)
		return r;
	*ret_mode = inode.i_mode;
	*ret_size = EXT2_I_SIZE(&inode);
	return 0;
}

void cryptfs_info(struct cryptfs *c, struct cryptfs_info *ret)
{
	struct ext2_super_block *sb = c->fs->super;

	*ret = (struct cryptfs_info){
		.block_size = c->fs->blocksize,
		.blocks = ext2fs_blocks_count(sb),
		.free_blocks = ext2fs_free_blocks_count(sb),
		.inodes = sb->s_inodes_count,
		.free_inodes = sb->s_free_inodes_count,
	};
	uuid_format(sb->s_uuid, ret->uuid);
	snprintf(ret->label, sizeof(ret->label), "%.*s", (int)sizeof(sb->s_volume_name),
		 (const char *)sb->s_volume_name);
}

/* What file_range() does with the range: read it, write it within the file, write it and
 * make the file longer if it goes past the end, or write it and make the file end there. */
enum range_mode { RANGE_READ, RANGE_WRITE, RANGE_GROW, RANGE_RESIZE };

/* One path for every access to a regular file's bytes (reads and writes by range, whole
 * contents, truncation): the range within its size for RANGE_READ and RANGE_WRITE (no block
 * allocated); a size change written back at once with the bitmaps, so that each file is whole
 * on its own. */
static int inode_range(struct cryptfs *c, const char *path, ext2_ino_t ino,
		       const struct ext2_inode *inode, uint64_t off, void *buf, size_t len,
		       enum range_mode mode)
{
	bool write = mode != RANGE_READ;
	uint64_t size = EXT2_I_SIZE(inode);
	ext2_file_t file = NULL;
	size_t done = 0;
	unsigned n = 0;
	errcode_t err, err2;

	if (!LINUX_S_ISREG(inode->i_mode))
		return log_error_errno(EINVAL, "'%s' in the root filesystem is not a regular file", path);
	if ((mode == RANGE_READ || mode == RANGE_WRITE) && (off > size || len > size - off))
		return log_error_errno(ERANGE, "'%s': bytes %" PRIu64 "+%zu are beyond its end", path,
				       off, len);
	err = ext2fs_file_open(c->fs, ino, write ? EXT2_FILE_WRITE : 0, &file);
	if (!err && (mode == RANGE_RESIZE || (mode == RANGE_GROW && off + len > size)))
		err = ext2fs_file_set_size2(file, off + len);
	if (!err)
		err = ext2fs_file_llseek(file, off, EXT2_SEEK_SET, NULL);
	while (!err && done < len) {
		if (write)
			err = ext2fs_file_write(file, (const char *)buf + done, (unsigned)(len - done), &n);
		else
			err = ext2fs_file_read(file, (char *)buf + done, (unsigned)(len - done), &n);
		if (!err && n == 0)
			break;
		done += n;
	}
	if (!err && write)
		err = ext2fs_file_flush(file);
	err2 = file ? ext2fs_file_close(file) : 0;
	if (err || err2 || done != len)
		return log_error_errno(EIO, "cannot %s '%s' in the root filesystem: %s",
				       write ? "write" : "read", path,
				       err || err2 ? error_message(err ? err : err2) : "short read");
	if (mode == RANGE_RESIZE || (mode == RANGE_GROW && off + len > size)) {
		err = ext2fs_flush(c->fs);
		if (err)
			return log_error_errno(EIO, "cannot write the filesystem back: %s",
					       error_message(err));
	}
	return 0;
}

/* The same on the file at path. */
static int file_range(struct cryptfs *c, const char *path, uint64_t off, void *buf, size_t len,
		      enum range_mode mode)
{
	struct ext2_inode inode;
	ext2_ino_t ino;
	int r = lookup_inode(c, path, &ino, &inode);

	if (r < 0)
		return r == -ENOENT ? log_error_errno(r, "'%s' is not in the root filesystem", path) : r;
	return inode_range(c, path, ino, &inode, off, buf, len, mode);
}

int cryptfs_write_file(struct cryptfs *c, const char *path, const void *data, size_t len)
{
	return file_range(c, path, 0, (void *)data, len, RANGE_RESIZE);
}

int cryptfs_read_file(struct cryptfs *c, const char *path, char **ret, size_t *ret_len)
{
	_cleanup_free_ char *buf = NULL;
	struct ext2_inode inode;
	ext2_ino_t ino;
	uint64_t size;
	int r;

	/* -ENOENT unlogged: the callers say what a missing file means. */
	r = lookup_inode(c, path, &ino, &inode);
	if (r < 0)
		return r;
	size = EXT2_I_SIZE(&inode);
	if (size > 512 * MiB)
		return log_error_errno(EFBIG, "'%s' is too large", path);
	buf = malloc(size + 1);
	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	r = inode_range(c, path, ino, &inode, 0, buf, (size_t)size, RANGE_READ);
	if (r < 0)
		return r;
	buf[size] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = (size_t)size;
	return 0;
}

int cryptfs_pread(struct cryptfs *c, const char *path, uint64_t off, void *buf, size_t len)
{
	return file_range(c, path, off, buf, len, RANGE_READ);
}

int cryptfs_pwrite(struct cryptfs *c, const char *path, uint64_t off, const void *data, size_t len)
{
	return file_range(c, path, off, (void *)data, len, RANGE_WRITE);
}

int cryptfs_pwrite_grow(struct cryptfs *c, const char *path, uint64_t off, const void *data,
			size_t len)
{
	return file_range(c, path, off, (void *)data, len, RANGE_GROW);
}

int cryptfs_truncate(struct cryptfs *c, const char *path, uint64_t size)
{
	return file_range(c, path, size, NULL, 0, RANGE_RESIZE);
}

int cryptfs_rename(struct cryptfs *c, const char *dir, const char *old, const char *new_name)
{
	_cleanup_free_ char *path = strdupf("%s/%s", dir, old);
	ext2_ino_t dino, ino;
	errcode_t err;
	int r;

	if (!path)
		return log_error_errno(ENOMEM, "out of memory");
	r = lookup(c, dir, &dino);
	if (r == 0)
		r = lookup(c, path, &ino);
	if (r < 0)
		return r == -ENOENT ? log_error_errno(r, "'%s' is not in the root filesystem", path) : r;
	err = ext2fs_link(c->fs, dino, new_name, ino, EXT2_FT_REG_FILE);
	if (err == EXT2_ET_DIR_NO_SPACE) {
		err = ext2fs_expand_dir(c->fs, dino);
		if (!err)
			err = ext2fs_link(c->fs, dino, new_name, ino, EXT2_FT_REG_FILE);
	}
	if (!err)
		err = ext2fs_unlink(c->fs, dino, old, ino, 0);
	if (!err)
		err = ext2fs_flush(c->fs);
	if (err)
		return log_error_errno(EIO, "cannot rename '%s' to '%s': %s", path, new_name,
				       error_message(err));
	return 0;
}

struct list_ctx {
	const char *glob;
	char **v;
	size_t n;
	int r;
};

static int list_cb(ext2_ino_t dir, int entry, struct ext2_dir_entry *de, int offset, int blocksize,
		   char *buf, void *priv)
{
	struct list_ctx *l = priv;
	int len = ext2fs_dirent_name_len(de);
	char name[256], **nv;

	snprintf(name, sizeof(name), "%.*s", len, de->name);
	if (fnmatch(l->glob, name, 0) != 0)
		return 0;
	nv = realloc(l->v, (l->n + 2) * sizeof(char *));
	if (!nv || !(nv[l->n] = strdup(name))) {
		l->r = -ENOMEM;
		if (nv)
			l->v = nv;
		return DIRENT_ABORT;
	}
	l->v = nv;
	l->v[++l->n] = NULL;
	return 0;
}

int cryptfs_list(struct cryptfs *c, const char *dir, const char *glob, char ***ret)
{
	struct list_ctx l = { .glob = glob };
	ext2_ino_t ino;
	errcode_t err;
	int r;

	r = lookup(c, dir, &ino);
	if (r < 0)
		return r;
	err = ext2fs_dir_iterate2(c->fs, ino, 0, NULL, list_cb, &l);
	if (err || l.r < 0) {
		for (size_t i = 0; i < l.n; i++)
			free(l.v[i]);
		free(l.v);
		return log_error_errno(l.r < 0 ? l.r : EIO, "cannot list '%s': %s", dir,
				       err ? error_message(err) : "out of memory");
	}
	if (!l.v)
		l.v = calloc(1, sizeof(char *));
	*ret = l.v;
	return 0;
}

int cryptfs_for_each_allocated(struct cryptfs *c,
			       int (*fn)(uint64_t off, uint64_t len, void *userdata),
			       void *userdata, uint64_t *ret_allocated)
{
	return ext4_walk_allocated(c->fs, fn, userdata, ret_allocated);
}
