/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * What a tree that an ordinary user unpacked cannot hold, written into the ext4 made from it
 * (libext2fs): the tarball's owners, its device nodes, and the extended attributes only root
 * may set (security.*, trusted.*) or whose ids a user namespace would rewrite (POSIX ACLs).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

struct ext4_xattr {
	char *name;
	void *value;
	size_t size;
};

struct ext4_owner {
	char *path;       /* relative to the root: "etc/shadow" */
	uint32_t uid, gid;
	/* A device node to make (S_IFCHR or S_IFBLK with its permissions): the tree has nothing
	 * there. 0 for a file the tree holds. */
	mode_t node_mode;
	dev_t rdev;
	struct timespec mtime; /* a node's */
	char *link_to;    /* a hard link to the node made for this earlier path */
	/* Given only to the very inode unpacked: dropped when a tool replaced or rewrote it. */
	struct ext4_xattr *xattrs;
	size_t n_xattrs;
	bool harvest;     /* ACLs to read back from the tree (and remove there) after unpacking */
	bool gone;        /* not in the tree any more, or of another type: nothing to give */
	ino_t ino;        /* the unpacked file, to tell it from a replacement */
	struct timespec tree_mtime;
	mode_t tree_type;
};

struct ext4_owners {
	struct ext4_owner *v;
	size_t n, cap;
};

void ext4_owners_done(struct ext4_owners *o);

/* A new record at the end of o for path (copied), zeroed but for its path and ids. NULL
 * (out of memory) on failure. */
struct ext4_owner *ext4_owners_add(struct ext4_owners *o, const char *path, uint32_t uid,
				   uint32_t gid);

/* Add a copy of an extended attribute to r. 0 or -ENOMEM. */
int ext4_owner_add_xattr(struct ext4_owner *r, const char *name, const void *value, size_t size);

/*
 * Give the filesystem at offset in path what o holds: each record not gone gets its owner
 * and group (by its path, never through a symlink; a path no longer there is passed over),
 * its extended attributes, and its node (made where the name is still free; its hard links
 * after it). Logs.
 */
int ext4_owners_apply(const char *path, uint64_t offset, const struct ext4_owners *o);
