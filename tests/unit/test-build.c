/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build's inputs: the tarball's path checks (tarball_scan), distro.conf and its INHERIT
 * chain, detection from os-release, and how hooks from the common, tool, distro and site
 * directories merge: replaced, masked, ordered, a non-executable one refused; what an ordinary
 * user's tree cannot hold, written into the ext4 (ext4_owners_apply). */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/sysmacros.h>

#include <archive.h>
#include <archive_entry.h>
#include <ext2fs/ext2fs.h>

#include "tap.h"
#include "build/distro.h"
#include "build/hooks.h"
#include "build/tarball.h"
#include "image/ext4.h"
#include "image/ext4-owners.h"
#include "common/log.h"
#include "shared/cleanup.h"

static char tmp[] = "/tmp/cvm-test-build.XXXXXX";

/* One entry of a test tarball: a path, its type (AE_IFREG, AE_IFDIR, AE_IFLNK, or 0 for a
 * hard link to target), its data or link target. */
struct entry {
	const char *path;
	unsigned type;
	const char *target;
	unsigned uid;
};

static char *write_tar(const char *name, const struct entry *e, size_t n)
{
	static char path[256];
	struct archive *a = archive_write_new();
	struct archive_entry *ae = archive_entry_new();

	snprintf(path, sizeof(path), "%s/%s", tmp, name);
	archive_write_set_format_pax_restricted(a);
	if (archive_write_open_filename(a, path) != ARCHIVE_OK)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		archive_entry_clear(ae);
		archive_entry_set_pathname(ae, e[i].path);
		archive_entry_set_uid(ae, e[i].uid);
		archive_entry_set_perm(ae, 0644);
		if (e[i].type == 0) {
			archive_entry_set_filetype(ae, AE_IFREG);
			archive_entry_set_hardlink(ae, e[i].target);
		} else {
			archive_entry_set_filetype(ae, e[i].type);
			if (e[i].type == AE_IFLNK)
				archive_entry_set_symlink(ae, e[i].target);
			if (e[i].type == AE_IFREG)
				archive_entry_set_size(ae, e[i].target ? strlen(e[i].target) : 0);
		}
		archive_write_header(a, ae);
		if (e[i].type == AE_IFREG && e[i].target)
			archive_write_data(a, e[i].target, strlen(e[i].target));
	}
	archive_entry_free(ae);
	archive_write_close(a);
	archive_write_free(a);
	return path;
}

static int scan(const char *name, const struct entry *e, size_t n)
{
	struct rootfs_index idx = {};
	const char *p = write_tar(name, e, n);
	int r = p ? tarball_scan(p, &idx) : -EIO;

	rootfs_index_done(&idx);
	return r;
}

#define SCAN(name, ...) scan(name, (const struct entry[]){ __VA_ARGS__ }, \
			     sizeof((const struct entry[]){ __VA_ARGS__ }) / sizeof(struct entry))

static void test_tarball(void)
{
	struct rootfs_index idx = {};
	char long_name[300];
	const char *p;

	p = write_tar("good.tar", (const struct entry[]){
		{ "./", AE_IFDIR }, { "./etc/", AE_IFDIR },
		{ "./etc/os-release", AE_IFREG, "ID=debian\n" },
		{ "./usr/", AE_IFDIR }, { "./usr/lib/", AE_IFDIR }, { "./lib", AE_IFLNK, "usr/lib" },
		{ "./usr/lib/x", AE_IFREG, "x", 4000000000u }, { "./usr/lib/y", 0, "usr/lib/x" },
	}, 8);
	ok(p && tarball_scan(p, &idx) == 0, "tarball: a good tree is accepted");
	ok(idx.os_release && strcmp(idx.os_release, "ID=debian\n") == 0,
	   "tarball: os-release found and read");
	ok(idx.max_uid == 4000000000u, "tarball: the largest owner recorded");
	ok(rootfs_index_find(&idx, "etc/os-*") != NULL, "tarball: paths normalised and found by glob");
	ok(rootfs_index_find(&idx, "lib/x") != NULL, "tarball: /lib and /usr/lib count as one (merged /usr)");
	ok(rootfs_index_find(&idx, "etc/passwd") == NULL, "tarball: an absent path is not found");
	rootfs_index_done(&idx);

	ok(SCAN("abs.tar", { "/etc/passwd", AE_IFREG, "x" }) == -EPERM,
	   "tarball: an absolute path is refused");
	ok(SCAN("dotdot.tar", { "./a/../../etc/passwd", AE_IFREG, "x" }) == -EPERM,
	   "tarball: '..' is refused");
	ok(SCAN("below-link.tar", { "./etc", AE_IFLNK, "/etc" }, { "./etc/passwd", AE_IFREG, "x" }) == -EPERM,
	   "tarball: an entry below a symlink of the archive is refused");
	ok(SCAN("hl-out.tar", { "./a", 0, "../../etc/shadow" }) == -EPERM,
	   "tarball: a hard link out of the tree is refused");
	ok(SCAN("hl-none.tar", { "./a", 0, "b" }) == -EPERM,
	   "tarball: a hard link to no earlier entry is refused");
	ok(SCAN("hl-link.tar", { "./d", AE_IFLNK, "/etc" }, { "./a", 0, "d/shadow" }) == -EPERM,
	   "tarball: a hard link through a symlink is refused");
	memset(long_name, 'n', sizeof(long_name));
	memcpy(long_name, "./", 2);
	long_name[258] = '\0'; /* a name of 256 bytes */
	ok(SCAN("long.tar", { long_name, AE_IFREG, "x" }) == -ENAMETOOLONG,
	   "tarball: a name over 255 bytes is refused");
	long_name[257] = '\0'; /* 255 */
	ok(SCAN("long255.tar", { long_name, AE_IFREG, "x" }) == 0, "tarball: a name of 255 bytes is accepted");
}

static void put(const char *rel, const char *text, mode_t mode)
{
	char path[512], *slash;

	snprintf(path, sizeof(path), "%s/%s", tmp, rel);
	for (slash = strchr(path + strlen(tmp) + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
		*slash = '\0';
		mkdir(path, 0755);
		*slash = '/';
	}
	FILE *f = fopen(path, "w");
	if (f) {
		fputs(text, f);
		fclose(f);
	}
	chmod(path, mode);
}

static const struct hook *find(const struct hook_set *s, const char *phase, const char *name)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->hooks[i].phase, phase) == 0 && strcmp(s->hooks[i].name, name) == 0)
			return &s->hooks[i];
	return NULL;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t a = s ? strlen(s) : 0, b = strlen(tail);

	return a >= b && strcmp(s + a - b, tail) == 0;
}

static void test_distro_and_hooks(void)
{
	_cleanup_(distro_freep) struct distro *d = NULL, *det = NULL;
	struct hook_set s = {};
	char site[512];
	char *sites[] = { site, NULL };
	const struct hook *h;
	bool ordered = true;

	setenv("CVM_IMAGE_DATADIR", tmp, 1);
	put("distro/base/distro.conf", "ID=base\nMATCH=\"base\"\nINITRAMFS=dracut\n"
	    "REQUIRES=\"boot/vmlinuz-*:kernel\"\nGRUB_DIR=/boot/grub2\nGRUB_TOOL_PREFIX=grub2\n", 0644);
	put("distro/child/distro.conf", "ID=child\nMATCH=\"child kid\"\nINHERIT=base\n", 0644);
	put("distro/common/hooks/configure/50-a", "#!/bin/sh\n", 0755);
	put("distro/common/hooks/configure/60-b", "#!/bin/sh\n", 0755);
	put("distro/common/hooks/finalize/10-f", "#!/bin/sh\n", 0755);
	put("distro/initramfs/dracut/tool.conf", "DETECT=\"usr/bin/dracut\"\n", 0644);
	put("distro/initramfs/dracut/hooks/initramfs/50-dracut", "#!/bin/sh\n", 0755);
	put("distro/base/hooks/configure/50-a", "#!/bin/sh\n# base's\n", 0755);
	put("distro/child/hooks/configure/10-first", "#!/bin/sh\n", 0755);
	put("site/hooks/configure/60-b", "", 0644);      /* masks */
	put("site/hooks/finalize/10-f", "#!/bin/sh\n# site's\n", 0755);
	snprintf(site, sizeof(site), "%s/site", tmp);

	ok(distro_load("child", &d) == 0, "distro: child loads with its INHERIT chain");
	ok(d && d->parent && strcmp(d->parent->id, "base") == 0, "distro: INHERIT names the parent");
	ok(d && strcmp(d->initramfs, "dracut") == 0, "distro: INITRAMFS inherited");
	ok(d && strcmp(d->grub_dir, "/boot/grub2") == 0 && strcmp(d->grub_tool_prefix, "grub2") == 0,
	   "distro: GRUB_DIR and GRUB_TOOL_PREFIX inherited");
	ok(d && d->n_match == 2 && strcmp(d->match[1], "kid") == 0, "distro: MATCH is a word list");
	ok(distro_detect("ID=kid\n", &det) == 0 && strcmp(det->id, "child") == 0,
	   "distro: os-release ID matched by a MATCH word");
	distro_free(det);
	det = NULL;
	ok(distro_detect("ID=mine\nID_LIKE=\"other base\"\n", &det) == 0 && strcmp(det->id, "base") == 0,
	   "distro: else the first ID_LIKE word that matches");
	distro_free(det);
	det = NULL;
	ok(distro_detect("ID=nothing\n", &det) < 0, "distro: no match is an error");
	ok(distro_load("../etc", &det) < 0, "distro: an id that is a path is refused");

	ok(hooks_resolve(d, "dracut", sites, &s) == 0, "hooks: resolved");
	h = find(&s, "configure", "50-a");
	ok(h && ends_with(h->path, "/distro/base/hooks/configure/50-a") &&
	   ends_with(h->overridden, "/distro/common/hooks/configure/50-a"),
	   "hooks: the distro's replaces the common one of the same phase and name");
	h = find(&s, "configure", "60-b");
	ok(h && h->masked && ends_with(h->path, "/site/hooks/configure/60-b"), "hooks: an empty site file masks");
	h = find(&s, "finalize", "10-f");
	ok(h && !h->masked && ends_with(h->path, "/site/hooks/finalize/10-f"), "hooks: a site file replaces");
	ok(find(&s, "initramfs", "50-dracut") != NULL, "hooks: the tool's hooks are in");
	for (size_t i = 1; i < s.n; i++) {
		int pa = 0, pb = 0;

		for (int k = 0; hook_phases[k]; k++) {
			if (strcmp(hook_phases[k], s.hooks[i - 1].phase) == 0)
				pa = k;
			if (strcmp(hook_phases[k], s.hooks[i].phase) == 0)
				pb = k;
		}
		if (pa > pb || (pa == pb && strcmp(s.hooks[i - 1].name, s.hooks[i].name) >= 0))
			ordered = false;
	}
	ok(ordered && s.n == 5, "hooks: by phase, then by name (%zu hooks)", s.n);
	ok(s.n && strcmp(s.hooks[0].name, "10-first") == 0, "hooks: 10-first runs first in configure");
	hook_set_done(&s);

	put("site/hooks/configure/70-plain", "#!/bin/sh\n", 0644);
	ok(hooks_resolve(d, "dracut", sites, &s) < 0, "hooks: a non-empty hook that is not executable is an error");
	hook_set_done(&s);
}

/* tarball_extract() for an ordinary user: the records of what the tree cannot hold; a later
 * entry of the same path replaces the earlier one's record (tar's rule: the last one wins). */
static void test_owners_deferred(void)
{
	struct ext4_owners o = {};
	char dir[512];
	const char *p;
	size_t live = 0;

	p = write_tar("dup.tar", (const struct entry[]){
		{ "./", AE_IFDIR }, { "./f", AE_IFREG, "first", 5 }, { "./f", AE_IFREG, "second", 0 },
		{ "./g", AE_IFREG, "first", 0 }, { "./g", AE_IFREG, "second", 7 },
		{ "./h", AE_IFREG, "h", 4000000000u } }, 6);
	snprintf(dir, sizeof(dir), "%s/dup-tree", tmp);
	mkdir(dir, 0755);
	ok(p && tarball_extract(p, dir, 6, &o) == 0, "owners: a tarball unpacked with its owners kept back");
	for (size_t i = 0; i < o.n; i++)
		if (!o.v[i].gone)
			live++;
	ok(live == 2, "owners: two records live (%zu)", live);
	for (size_t i = 0; i < o.n; i++) {
		if (o.v[i].gone)
			ok(strcmp(o.v[i].path, "f") == 0, "owners: f's first owner (5) dropped: its later entry is root's");
		else if (strcmp(o.v[i].path, "g") == 0)
			ok(o.v[i].uid == 7, "owners: g's later entry's owner (7) kept");
		else
			ok(strcmp(o.v[i].path, "h") == 0 && o.v[i].uid == 4000000000u, "owners: h's owner 4000000000 kept");
	}
	ext4_owners_done(&o);
}

/* The inode of path in the filesystem image img, read with libext2fs (0 if absent). */
static ext2_ino_t inode_of(const char *img, const char *path, struct ext2_inode *ret)
{
	ext2_filsys fs = NULL;
	ext2_ino_t ino = 0;

	if (ext2fs_open2(img, NULL, EXT2_FLAG_64BITS, 0, 0, unix_io_manager, &fs))
		return 0;
	if (ext2fs_namei(fs, EXT2_ROOT_INO, EXT2_ROOT_INO, path, &ino) ||
	    ext2fs_read_inode(fs, ino, ret))
		ino = 0;
	ext2fs_close_free(&fs);
	return ino;
}

static int e2fsck_clean(const char *img)
{
	pid_t p = fork();
	int status = -1;

	if (p == 0) {
		char *argv[] = { "e2fsck", "-fn", (char *)img, NULL };
		int null = open("/dev/null", O_WRONLY);

		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	while (p > 0 && waitpid(p, &status, 0) < 0)
		;
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ext4_owners_apply(): what an ordinary user's tree could not hold, given to the ext4 made from
 * it; what the tools changed (a path through a symlink they made, a name they took, a file
 * they removed) left as it is. */
static void test_owners(void)
{
	struct ext4_owners o = {};
	struct ext4_owner *r;
	struct ext2_inode in;
	char tree[512], img[512];
	int fd;

	snprintf(tree, sizeof(tree), "%s/owners-tree", tmp);
	snprintf(img, sizeof(img), "%s/owners.ext4", tmp);
	put("owners-tree/dir/file", "data\n", 0644);
	put("owners-tree/taken", "a file the tools put where the tarball had a node\n", 0644);
	snprintf(img, sizeof(img), "%s/owners-tree/link", tmp);
	ok(symlink("dir", img) == 0, "owners: a symlink in the tree");
	snprintf(img, sizeof(img), "%s/owners.ext4", tmp);
	fd = open(img, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ok(fd >= 0 && ftruncate(fd, 32 << 20) == 0, "owners: an image file");
	close(fd);
	ok(ext4_mkfs(img, 0, 32 << 20, "0c2a57b2-7f2e-4c1a-9d58-0d6a1f0f2f11", "t", tree, NULL) == 0,
	   "owners: mke2fs -d of the tree");

	r = ext4_owners_add(&o, "dir/file", 4000000000u, 42);
	ok(r && ext4_owner_add_xattr(r, "security.selinux", "system_u:object_r:etc_t:s0", 27) == 0,
	   "owners: a file's owner and label");
	ok(ext4_owners_add(&o, "link/file", 7, 7) != NULL, "owners: the same file through a symlink");
	r = ext4_owners_add(&o, "dir/null", 0, 5);
	r->node_mode = S_IFCHR | 0666;
	r->rdev = makedev(1, 3);
	r->mtime = (struct timespec){ 1000000000, 5 };
	r = ext4_owners_add(&o, "dir/null-too", 0, 5);
	r->link_to = strdup("dir/null");
	r = ext4_owners_add(&o, "dir/nvme", 0, 6);
	r->node_mode = S_IFBLK | 0660;
	r->rdev = makedev(259, 300000);
	r = ext4_owners_add(&o, "taken", 0, 0);
	r->node_mode = S_IFBLK | 0600;
	r->rdev = makedev(8, 0);
	ok(ext4_owners_add(&o, "removed-by-a-tool", 9, 9) != NULL, "owners: a file no longer there");
	r = ext4_owners_add(&o, "gone", 9, 9);
	r->gone = true;
	ok(ext4_owners_apply(img, 0, &o) == 0, "owners: applied");
	ext4_owners_done(&o);

	ok(inode_of(img, "dir/file", &in) && inode_uid(in) == 4000000000u && inode_gid(in) == 42,
	   "owners: uid 4000000000 and gid 42 given (the high 16 bits too), not the symlink's 7");
	ok(inode_of(img, "dir/null", &in) && LINUX_S_ISCHR(in.i_mode) && (in.i_mode & 07777) == 0666 &&
	   in.i_block[0] == 0x103 && in.i_links_count == 2 && inode_gid(in) == 5 &&
	   in.i_mtime == 1000000000,
	   "owners: a character device 1:3 (old encoding), two names, its group and time");
	ok(inode_of(img, "dir/null-too", &in) && LINUX_S_ISCHR(in.i_mode), "owners: its hard link");
	ok(inode_of(img, "dir/nvme", &in) && LINUX_S_ISBLK(in.i_mode) && in.i_block[0] == 0 &&
	   in.i_block[1] == ((300000u & 0xff) | (259u << 8) | ((300000u & ~0xffu) << 12)),
	   "owners: a block device 259:300000 (new encoding)");
	ok(inode_of(img, "taken", &in) && LINUX_S_ISREG(in.i_mode), "owners: a name the tools took is left to them");
	ok(e2fsck_clean(img) == 0, "owners: e2fsck -fn finds the filesystem clean (directory entry types, link counts, bitmaps)");
}

int main(void)
{
	log_set_max_level(LOG_LEVEL_ERR);
	if (!mkdtemp(tmp))
		return 1;
	test_tarball();
	test_distro_and_hooks();
	test_owners_deferred();
	test_owners();
	{
		char *argv[] = { "rm", "-rf", "--one-file-system", tmp, NULL };
		pid_t p = fork();

		if (p == 0)
			execvp(argv[0], argv);
		while (p > 0 && wait(NULL) != p)
			;
	}
	return tap_done();
}
