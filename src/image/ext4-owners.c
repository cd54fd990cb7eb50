/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The tarball's owners, device nodes and root-only extended attributes, written into the ext4
 * with libext2fs after mke2fs -d made it from a tree an ordinary user unpacked (the bubblewrap
 * route as an ordinary user). mke2fs -d, run in a user namespace where that user is root,
 * already gave every file of the tree root's owner, and its modes, times and user.* xattrs;
 * this pass adds what the user could not put in the tree. It is ours because no tool does
 * it: mke2fs -d copies a tree as it stands, and e2fsprogs 1.47.1's `-d TARBALL` (which writes
 * the ext4 from the archive itself) is not in Debian 12, and would not run the hooks.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "ext4.h"
#include "ext4-owners.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

void ext4_owners_done(struct ext4_owners *o)
{
	for (size_t i = 0; i < o->n; i++) {
		struct ext4_owner *r = &o->v[i];

		for (size_t j = 0; j < r->n_xattrs; j++) {
			free(r->xattrs[j].name);
			free(r->xattrs[j].value);
		}
		free(r->xattrs);
		free(r->path);
		free(r->link_to);
	}
	free(o->v);
	*o = (struct ext4_owners){};
}

struct ext4_owner *ext4_owners_add(struct ext4_owners *o, const char *path, uint32_t uid,
				   uint32_t gid)
{
	struct ext4_owner *r;
	char *copy = strdup(path);

	if (!copy || greedy_realloc((void **)&o->v, &o->cap, o->n + 1, sizeof(*o->v)) < 0) {
		free(copy);
		return NULL;
	}
	r = &o->v[o->n++];
	*r = (struct ext4_owner){ .path = copy, .uid = uid, .gid = gid };
	return r;
}

int ext4_owner_add_xattr(struct ext4_owner *r, const char *name, const void *value, size_t size)
{
	struct ext4_xattr *x;
	size_t cap = r->n_xattrs;

	if (greedy_realloc((void **)&r->xattrs, &cap, r->n_xattrs + 1, sizeof(*r->xattrs)) < 0)
		return -ENOMEM;
	x = &r->xattrs[r->n_xattrs];
	x->name = strdup(name);
	x->value = malloc(size ? size : 1);
	if (!x->name || !x->value) {
		free(x->name);
		free(x->value);
		return -ENOMEM;
	}
	memcpy(x->value, value, size);
	x->size = size;
	r->n_xattrs++;
	return 0;
}

/* The inode of path, each component looked up in its directory: a symlink on the way (a tool
 * may have put one where the tarball had a directory) is not followed, and gives "not found",
 * as does a missing name. */
static errcode_t lookup(ext2_filsys fs, const char *path, ext2_ino_t *ret)
{
	ext2_ino_t ino = EXT2_ROOT_INO;
	const char *p = path;

	while (*p) {
		size_t len = strcspn(p, "/");
		struct ext2_inode inode;
		errcode_t err;

		err = ext2fs_read_inode(fs, ino, &inode);
		if (err)
			return err;
		if (!LINUX_S_ISDIR(inode.i_mode))
			return EXT2_ET_FILE_NOT_FOUND;
		err = ext2fs_lookup(fs, ino, p, (int)len, NULL, &ino);
		if (err)
			return err;
		p += len;
		p += *p == '/';
	}
	*ret = ino;
	return 0;
}

static errcode_t set_owner(ext2_filsys fs, ext2_ino_t ino, const struct ext4_owner *r,
			   bool node)
{
	struct ext2_inode_large inode;
	errcode_t err;

	err = ext2fs_read_inode_full(fs, ino, (struct ext2_inode *)&inode, sizeof(inode));
	if (err)
		return err;
	inode.i_uid = (uint16_t)r->uid;
	ext2fs_set_i_uid_high(inode, r->uid >> 16);
	inode.i_gid = (uint16_t)r->gid;
	ext2fs_set_i_gid_high(inode, r->gid >> 16);
	if (node) {
		inode.i_mtime = inode.i_atime = inode.i_ctime = (uint32_t)r->mtime.tv_sec;
		if (EXT2_INODE_SIZE(fs->super) > EXT2_GOOD_OLD_INODE_SIZE &&
		    inode.i_extra_isize >= offsetof(struct ext2_inode_large, i_crtime) -
						   EXT2_GOOD_OLD_INODE_SIZE)
			inode.i_mtime_extra = inode.i_atime_extra = inode.i_ctime_extra =
				ext4_time_extra(&r->mtime);
	}
	return ext2fs_write_inode_full(fs, ino, (struct ext2_inode *)&inode, sizeof(inode));
}

static errcode_t link_in(ext2_filsys fs, ext2_ino_t dir, const char *name, ext2_ino_t ino,
			 int type)
{
	errcode_t err = ext2fs_link(fs, dir, name, ino, type);

	if (err == EXT2_ET_DIR_NO_SPACE) {
		err = ext2fs_expand_dir(fs, dir);
		if (!err)
			err = ext2fs_link(fs, dir, name, ino, type);
	}
	return err;
}

/* The directory that is to hold path and path's last component: "not found" when the
 * directory is gone (a tool removed it), "exists" when the name is taken (a tool put
 * something there). */
static errcode_t free_name(ext2_filsys fs, const char *path, ext2_ino_t *ret_dir,
			   const char **ret_name)
{
	_cleanup_free_ char *parent = path_dirname(path);
	const char *slash = strrchr(path, '/');
	ext2_ino_t dir = EXT2_ROOT_INO, ino;
	errcode_t err;

	if (!parent)
		return EXT2_ET_NO_MEMORY;
	if (!streq(parent, ".")) {
		err = lookup(fs, parent, &dir);
		if (err)
			return err;
	}
	*ret_name = slash ? slash + 1 : path;
	err = ext2fs_lookup(fs, dir, *ret_name, (int)strlen(*ret_name), NULL, &ino);
	if (err == 0)
		return EXT2_ET_FILE_EXISTS;
	if (err != EXT2_ET_FILE_NOT_FOUND)
		return err;
	*ret_dir = dir;
	return 0;
}

/* A device node at r->path, as mke2fs -d makes one (misc/create_inode.c: the old 16-bit
 * encoding of the device number in i_block[0] where it fits, the new one in i_block[1]). */
static errcode_t make_node(ext2_filsys fs, const struct ext4_owner *r, ext2_ino_t *ret)
{
	int type = S_ISCHR(r->node_mode) ? EXT2_FT_CHRDEV : EXT2_FT_BLKDEV;
	unsigned major = major(r->rdev), minor = minor(r->rdev);
	struct ext2_inode inode = {};
	const char *name;
	ext2_ino_t dir, ino;
	errcode_t err;

	err = free_name(fs, r->path, &dir, &name);
	if (!err)
		err = ext2fs_new_inode(fs, dir, 010755, NULL, &ino);
	if (!err)
		err = link_in(fs, dir, name, ino, type);
	if (err)
		return err;
	ext2fs_inode_alloc_stats2(fs, ino, +1, 0);
	inode.i_mode = (uint16_t)r->node_mode;
	if (major < 256 && minor < 256)
		inode.i_block[0] = major * 256 + minor;
	else
		inode.i_block[1] = (minor & 0xff) | (major << 8) | ((minor & ~0xffu) << 12);
	inode.i_links_count = 1;
	err = ext2fs_write_new_inode(fs, ino, &inode);
	if (!err)
		*ret = ino;
	return err;
}

/* Another name for the node made at r->link_to. */
static errcode_t link_node(ext2_filsys fs, const struct ext4_owner *r)
{
	struct ext2_inode inode;
	const char *name;
	ext2_ino_t dir, ino;
	errcode_t err;

	err = lookup(fs, r->link_to, &ino);
	if (!err)
		err = ext2fs_read_inode(fs, ino, &inode);
	if (!err && !LINUX_S_ISCHR(inode.i_mode) && !LINUX_S_ISBLK(inode.i_mode))
		err = EXT2_ET_FILE_NOT_FOUND;
	if (!err)
		err = free_name(fs, r->path, &dir, &name);
	if (!err)
		err = link_in(fs, dir, name, ino,
			      LINUX_S_ISCHR(inode.i_mode) ? EXT2_FT_CHRDEV : EXT2_FT_BLKDEV);
	if (err)
		return err;
	inode.i_links_count++;
	return ext2fs_write_inode(fs, ino, &inode);
}

static errcode_t set_xattrs(ext2_filsys fs, ext2_ino_t ino, const struct ext4_owner *r)
{
	struct ext2_xattr_handle *h = NULL;
	errcode_t err, err2;

	err = ext2fs_xattrs_open(fs, ino, &h);
	if (err)
		return err;
	err = ext2fs_xattrs_read(h);
	for (size_t i = 0; i < r->n_xattrs && !err; i++)
		err = ext2fs_xattr_set(h, r->xattrs[i].name, r->xattrs[i].value, r->xattrs[i].size);
	err2 = ext2fs_xattrs_close(&h);
	return err ?: err2;
}

static errcode_t apply_one(ext2_filsys fs, const struct ext4_owner *r, const char **what)
{
	ext2_ino_t ino;
	errcode_t err;

	if (r->link_to) {
		*what = "link";
		err = link_node(fs, r);
		/* A name the tools took, or a node not made: nothing to link. */
		return err == EXT2_ET_FILE_EXISTS || err == EXT2_ET_FILE_NOT_FOUND ? 0 : err;
	}
	if (r->node_mode) {
		*what = "make";
		err = make_node(fs, r, &ino);
	} else {
		*what = "find";
		err = lookup(fs, r->path, &ino);
	}
	/* What the tools removed, or put in a node's place, or hid behind a symlink. */
	if (err == EXT2_ET_FILE_EXISTS || err == EXT2_ET_FILE_NOT_FOUND)
		return 0;
	if (err)
		return err;
	*what = "set the owner of";
	err = set_owner(fs, ino, r, r->node_mode != 0);
	if (!err && r->n_xattrs) {
		*what = "set the extended attributes of";
		err = set_xattrs(fs, ino, r);
	}
	return err;
}

int ext4_owners_apply(const char *path, uint64_t offset, const struct ext4_owners *o)
{
	ext2_filsys fs = NULL;
	char io_options[64];
	errcode_t err;
	int r = 0;

	if (o->n == 0)
		return 0;
	snprintf(io_options, sizeof(io_options), "offset=%" PRIu64, offset);
	err = ext2fs_open2(path, io_options, EXT2_FLAG_64BITS | EXT2_FLAG_RW, 0, 0, unix_io_manager,
			   &fs);
	if (!err)
		err = ext2fs_read_bitmaps(fs);
	if (err) {
		if (fs)
			ext2fs_close_free(&fs);
		return log_error_errno(EIO, "cannot open the new root filesystem: %s",
				       error_message(err));
	}
	for (size_t i = 0; i < o->n && r == 0; i++) {
		const char *what = "find";

		if (o->v[i].gone)
			continue;
		err = apply_one(fs, &o->v[i], &what);
		if (err)
			r = log_error_errno(err == EXT2_ET_DIR_NO_SPACE || err == EXT2_ET_INODE_ALLOC_FAIL ||
							    err == EXT2_ET_BLOCK_ALLOC_FAIL ? ENOSPC : EIO,
					    "cannot %s '/%s' in the root filesystem: %s", what,
					    o->v[i].path, error_message(err));
	}
	err = ext2fs_close_free(&fs);
	if (err && r == 0)
		r = log_error_errno(EIO, "cannot write the root filesystem: %s", error_message(err));
	return r;
}
