/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The bubblewrap route as an ordinary user: what the unpacked tree cannot hold, kept from the
 * archive for image/ext4-owners.c.
 *
 * Why not a user namespace mapping the tarball's every id (newuidmap and a subuid range, as
 * mkosi does): a range of 65536 cannot map uid 4000000000, nobody can make a device node or
 * set security.selinux in a user namespace, and /etc/subuid is one more thing a CI job's user
 * does not have. The one mapping any user gets (the user as root) is enough for the tools;
 * the rest goes into the ext4 by libext2fs, where nothing needs a privilege.
 */
#include <errno.h>
#include <fcntl.h>
#include <search.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "owners.h"
#include "target.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

static const char *const acl_names[] = { "system.posix_acl_access", "system.posix_acl_default" };

/* xattrs the owner of a file cannot set (CAP_SYS_ADMIN or CAP_SETFCAP in the filesystem's
 * namespace), or whose ids mke2fs would read through the namespace's mapping. */
static bool kept_back(const char *name)
{
	return strncmp(name, "security.", 9) == 0 || strncmp(name, "trusted.", 8) == 0 ||
	       strncmp(name, "system.posix_acl_", 17) == 0;
}

/* A path that has a record, in the tree of owners_defer_entry()'s seen: a later entry of the
 * same path replaces what the earlier one unpacked (tar's rule), and its record with it. */
struct seen {
	size_t index;
	char path[];
};

static int cmp_seen(const void *a, const void *b)
{
	return strcmp(((const struct seen *)a)->path, ((const struct seen *)b)->path);
}

static struct seen *seen_new(const char *path, size_t index)
{
	struct seen *k = malloc(sizeof(*k) + strlen(path) + 1);

	if (k) {
		k->index = index;
		strcpy(k->path, path);
	}
	return k;
}

/* The record of path so far (NULL: none), and removed from seen when replace. */
static struct ext4_owner *seen_find(struct ext4_owners *o, void **seen, const char *path,
				    bool replace)
{
	_cleanup_free_ struct seen *key = seen_new(path, 0);
	struct seen **hit, *k;

	if (!key)
		return NULL;
	hit = tfind(key, seen, cmp_seen);
	if (!hit)
		return NULL;
	k = *hit;
	if (replace) {
		o->v[k->index].gone = true;
		tdelete(key, seen, cmp_seen);
		free(k);
		return NULL;
	}
	return &o->v[k->index];
}

static int seen_add(void **seen, const char *path, size_t index)
{
	struct seen *k = seen_new(path, index);

	if (!k || !tsearch(k, seen, cmp_seen)) {
		free(k);
		return -ENOMEM;
	}
	return 0;
}

/* The entry's xattrs that stay in it, copied out: archive_entry_xattr_clear() frees them. */
struct xattr_copy {
	char *name;
	void *value;
	size_t size;
};

static int split_xattrs(struct archive_entry *e, struct ext4_owner *r)
{
	struct xattr_copy *keep = NULL;
	size_t n_keep = 0, cap = 0, n_back = 0;
	const char *name;
	const void *value;
	size_t size;
	int res = 0;

	archive_entry_xattr_reset(e);
	while (res == 0 && archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
		if (kept_back(name)) {
			res = ext4_owner_add_xattr(r, name, value, size);
			n_back++;
			continue;
		}
		if (greedy_realloc((void **)&keep, &cap, n_keep + 1, sizeof(*keep)) < 0) {
			res = -ENOMEM;
			break;
		}
		keep[n_keep].name = strdup(name);
		keep[n_keep].value = malloc(size ? size : 1);
		keep[n_keep].size = size;
		if (!keep[n_keep].name || !keep[n_keep].value)
			res = -ENOMEM;
		else
			memcpy(keep[n_keep].value, value, size);
		n_keep++;
	}
	if (res == 0 && n_back > 0) {
		archive_entry_xattr_clear(e);
		for (size_t i = 0; i < n_keep; i++)
			archive_entry_xattr_add_entry(e, keep[i].name, keep[i].value, keep[i].size);
	}
	for (size_t i = 0; i < n_keep; i++) {
		free(keep[i].name);
		free(keep[i].value);
	}
	free(keep);
	return res;
}

static bool has_kept_back(struct archive_entry *e)
{
	const char *name;
	const void *value;
	size_t size;

	archive_entry_xattr_reset(e);
	while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK)
		if (kept_back(name))
			return true;
	return false;
}

int owners_defer_entry(struct ext4_owners *o, void **seen, struct archive_entry *e,
		       const char *path, const char *hardlink, bool *ret_skip)
{
	struct ext4_owner *target;
	uint32_t uid = (uint32_t)archive_entry_uid(e), gid = (uint32_t)archive_entry_gid(e);
	mode_t type = archive_entry_filetype(e);
	bool acl = archive_entry_acl_count(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS |
						   ARCHIVE_ENTRY_ACL_TYPE_DEFAULT) > 0;
	struct ext4_owner *r;

	*ret_skip = false;
	/* An earlier entry of this path: its record goes with it. (Read before it, as the
	 * hard link's target may be it: "a" then "a" linked to "a" is refused by the scan.) */
	target = hardlink ? seen_find(o, seen, hardlink, false) : NULL;
	if (target && !target->node_mode)
		target = NULL;
	seen_find(o, seen, path, true);
	/* Whatever the archive says, the user unpacks as itself. */
	archive_entry_set_uid(e, geteuid());
	archive_entry_set_gid(e, getegid());
	if (hardlink) {
		/* A regular file's other name: its first name's record covers the inode. */
		if (!target)
			return 0;
		*ret_skip = true;
		r = ext4_owners_add(o, path, uid, gid);
		if (!r || !(r->link_to = strdup(hardlink)) || seen_add(seen, path, o->n - 1) < 0)
			return log_error_errno(ENOMEM, "out of memory");
		return 0;
	}
	if (type == AE_IFCHR || type == AE_IFBLK) {
		*ret_skip = true;
		r = ext4_owners_add(o, path, uid, gid);
		if (!r || seen_add(seen, path, o->n - 1) < 0)
			return log_error_errno(ENOMEM, "out of memory");
		r->node_mode = archive_entry_mode(e);
		r->rdev = archive_entry_rdev(e);
		r->mtime = (struct timespec){ archive_entry_mtime(e), archive_entry_mtime_nsec(e) };
		return 0;
	}
	if (uid == 0 && gid == 0 && !acl && !has_kept_back(e))
		return 0; /* mke2fs, in the namespace, gives root's owner */
	r = ext4_owners_add(o, path, uid, gid);
	if (!r || split_xattrs(e, r) < 0 || seen_add(seen, path, o->n - 1) < 0)
		return log_error_errno(ENOMEM, "out of memory");
	r->harvest = acl;
	return 0;
}

int owners_after_unpack(struct ext4_owners *o, int dirfd)
{
	for (size_t i = 0; i < o->n; i++) {
		struct ext4_owner *r = &o->v[i];
		_cleanup_close_ int fd = -1;
		char link[64];
		struct stat st;

		if (r->node_mode || r->link_to || r->gone)
			continue;
		fd = target_open_nofollow(dirfd, r->path, O_PATH | O_NOFOLLOW, 0);
		if (fd < 0 || fstat(fd, &st) < 0)
			return log_error_errno(fd < 0 ? fd : -errno, "cannot find '/%s' after unpacking "
					       "it: %m", r->path);
		r->ino = st.st_ino;
		r->tree_mtime = st.st_mtim;
		r->tree_type = st.st_mode & S_IFMT;
		if (!r->harvest)
			continue;
		/* libarchive set the ACL (the kernel's encoding, the host's ids): take it back,
		 * through the O_PATH descriptor's /proc link, whatever the file's mode. */
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		for (size_t j = 0; j < ELEMENTSOF(acl_names); j++) {
			char buf[64 * 1024];
			ssize_t n = getxattr(link, acl_names[j], buf, sizeof(buf));

			if (n < 0 && (errno == ENODATA || errno == EOPNOTSUPP))
				continue;
			if (n < 0)
				return log_error_errno(errno, "cannot read the ACL of '/%s': %m", r->path);
			if (ext4_owner_add_xattr(r, acl_names[j], buf, (size_t)n) < 0)
				return log_error_errno(ENOMEM, "out of memory");
			if (removexattr(link, acl_names[j]) < 0)
				return log_error_errno(errno, "cannot remove the ACL of '/%s': %m",
						       r->path);
		}
	}
	return 0;
}

int owners_settle(struct ext4_owners *o, int rootfd)
{
	for (size_t i = 0; i < o->n; i++) {
		struct ext4_owner *r = &o->v[i];
		_cleanup_close_ int fd = -1;
		struct stat st;

		if (r->node_mode || r->link_to || r->gone)
			continue;
		fd = target_open_nofollow(rootfd, r->path, O_PATH | O_NOFOLLOW, 0);
		if (fd < 0 && fd != -ENOENT && fd != -ELOOP && fd != -ENOTDIR)
			return log_error_errno(fd, "cannot look at '/%s': %m", r->path);
		if (fd < 0 || fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != r->tree_type) {
			r->gone = true;
			continue;
		}
		if (st.st_ino != r->ino || (!S_ISDIR(st.st_mode) &&
					    (st.st_mtim.tv_sec != r->tree_mtime.tv_sec ||
					     st.st_mtim.tv_nsec != r->tree_mtime.tv_nsec))) {
			for (size_t j = 0; j < r->n_xattrs; j++) {
				free(r->xattrs[j].name);
				free(r->xattrs[j].value);
			}
			r->n_xattrs = 0;
		}
	}
	return 0;
}
