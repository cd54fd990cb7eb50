/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The libguestfs appliance as the build's sandbox (appliance.h). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <guestfs.h>

#include "appliance.h"
#include "tarball.h"
#include "target.h"
#include "common/gfs.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/cleanup-libs.h"
#include "shared/interrupt.h"
#include "shared/spawn.h"
#include "shared/strv.h"
#include "shared/util.h"

/* Where the hook's output is kept while it runs, inside the target's private /run. */
#define OUTPUT_FILE "/run/.cvm-image-output"
#define OUTPUT_MAX "262144"
#define STATUS_TAG "\ncvm-image-status="

/* The appliance: libguestfs's own (supermin.d, built from the host's packages and kernel on
 * first use) or a fixed one (kernel, initrd, root) somewhere in its path. */
static int find_appliance(guestfs_h *g, bool *ret_supermin)
{
	const char *path = guestfs_get_path(g);
	_cleanup_free_ char *copy = path ? strdup(path) : NULL;
	char *save = NULL;

	if (!copy)
		return -ENOMEM;
	for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
		_cleanup_free_ char *sd = strdupf("%s/supermin.d", d), *k = strdupf("%s/kernel", d);

		if (sd && access(sd, R_OK | X_OK) == 0) {
			*ret_supermin = true;
			return 0;
		}
		if (k && access(k, R_OK) == 0) {
			*ret_supermin = false;
			return 0;
		}
	}
	return -ENOENT;
}

/* supermin boots the appliance with the host's kernel: one must be readable by this user
 * (Ubuntu's /boot/vmlinuz-* are 0600), or named by $SUPERMIN_KERNEL. */
static int check_kernel(void)
{
	const char *k = getenv("SUPERMIN_KERNEL");
	glob_t gl;
	int r = -ENOENT;

	if (k)
		return access(k, R_OK) == 0 ? 0 : -errno;
	if (glob("/boot/vmlinuz-*", 0, NULL, &gl) != 0)
		return -ENOENT;
	for (size_t i = 0; i < gl.gl_pathc && r < 0; i++)
		r = access(gl.gl_pathv[i], R_OK) == 0 ? 0 : -errno;
	globfree(&gl);
	return r;
}

int appliance_check(void)
{
	_cleanup_(guestfs_closep) guestfs_h *g = NULL;
	_cleanup_free_ char *hv = NULL, *supermin = NULL;
	bool use_supermin = false;
	int r;

	r = gfs_new(&g);
	if (r < 0)
		return r;
	hv = guestfs_get_hv(g);
	if (!hv || access(hv, X_OK) < 0)
		return log_error_errno(ENOPKG, "--sandbox vm: qemu ('%s') is not installed (Debian "
				       "package 'qemu-system-x86'): the appliance is a VM",
				       hv ?: "qemu-system-x86_64");
	if (find_appliance(g, &use_supermin) < 0)
		return log_error_errno(ENOPKG, "--sandbox vm: no libguestfs appliance in '%s' "
				       "(Debian package 'libguestfs0' with 'supermin', or a fixed "
				       "appliance in $LIBGUESTFS_PATH)", guestfs_get_path(g) ?: "");
	if (!use_supermin)
		return 0;
	supermin = find_program_path("supermin");
	if (!supermin)
		return log_error_errno(ENOPKG, "--sandbox vm: 'supermin' is not installed (Debian "
				       "package 'supermin'): it builds the appliance");
	r = check_kernel();
	if (r < 0)
		return log_error_errno(ENOPKG, "--sandbox vm: no kernel for the appliance: %s "
				       "(%s); make one readable or name one in $SUPERMIN_KERNEL",
				       getenv("SUPERMIN_KERNEL") ?: "no /boot/vmlinuz-* readable by this user",
				       strerror(-r));
	return 0;
}

int appliance_start(struct appliance *a, const char *disk, const char *tmpdir)
{
	double t = now_seconds();
	int r;

	r = gfs_new(&a->g);
	if (r < 0)
		return r;
	/* Two vCPUs: TCG runs one host thread per vCPU. "unsafe": the disk is a scratch file
	 * until the appliance has shut down, which writes everything back. */
	guestfs_set_smp(a->g, 2);
	if (guestfs_set_tmpdir(a->g, tmpdir) < 0)
		return gfs_error(a->g, "set_tmpdir");
	if (guestfs_add_drive_opts(a->g, disk, GUESTFS_ADD_DRIVE_OPTS_FORMAT, "raw",
				   GUESTFS_ADD_DRIVE_OPTS_CACHEMODE, "unsafe", -1) < 0)
		return gfs_error(a->g, "add_drive");
	log_notice("starting the libguestfs appliance (a minute or more without KVM)");
	if (guestfs_launch(a->g) < 0)
		return gfs_error(a->g, "launch");
	/* ^C goes to our process group, not to qemu's: the handler kills it. */
	interrupt_kill_on_signal(guestfs_get_pid(a->g));
	if (guestfs_mount(a->g, "/dev/sda", "/") < 0)
		return gfs_error(a->g, "mount the root filesystem");
	a->startup_seconds = now_seconds() - t;
	log_info("appliance: up in %.1fs", a->startup_seconds);
	return 0;
}

static int wait_child(pid_t pid)
{
	int status;

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EIO;
}

/*
 * GNU tar in the appliance unpacks what a child of ours writes: the tarball again, as plain
 * pax with numeric owners only (tarball_export()). That way every compression libarchive
 * reads works (tar_in knows neither zstd nor lz4), and the appliance's tar, which has no
 * --numeric-owner here, cannot map a user name of the tarball to another id of its own.
 */
int appliance_unpack(struct appliance *a, const char *tarball)
{
	_cleanup_close_ int rfd = -1;
	int p[2], r, rc;
	char path[32];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return log_error_errno(errno, "cannot make a pipe: %m");
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return log_error_errno(errno, "cannot fork: %m");
	}
	if (pid == 0) {
		close(p[0]);
		signal(SIGPIPE, SIG_IGN);
		_exit(tarball_export(tarball, p[1]) < 0 ? 1 : 0);
	}
	close(p[1]);
	rfd = p[0];
	snprintf(path, sizeof(path), "/dev/fd/%d", rfd);
	rc = guestfs_tar_in_opts(a->g, path, "/", GUESTFS_TAR_IN_OPTS_XATTRS, 1,
				 GUESTFS_TAR_IN_OPTS_ACLS, 1, -1);
	r = rc < 0 ? gfs_error(a->g, "unpack the tarball") : 0;
	close(TAKE_FD(rfd));
	if (wait_child(pid) < 0 && r == 0)
		r = log_error_errno(EIO, "cannot read '%s' to the end", tarball);
	return r;
}

/* The target's path resolved inside the target (the daemon chroots for realpath): what every
 * later call names, so that no symlink is followed into the appliance's own tree. */
static int resolve(struct appliance *a, const char *path, char **ret)
{
	char *rp = guestfs_realpath(a->g, path);

	if (!rp)
		return guestfs_last_errno(a->g) == ENOENT ? -ENOENT : gfs_error(a->g, path);
	*ret = rp;
	return 0;
}

int appliance_prepare_run(struct appliance *a, const char *const *points, const char *hostdir,
			  const char *dest)
{
	_cleanup_free_ char *base = path_basename(hostdir), *from = NULL, *to = NULL;

	/* The daemon binds its /dev, /proc and /sys there for each command, silently not when
	 * they are missing. */
	for (size_t i = 0; points[i]; i++) {
		_cleanup_free_ char *point = strdupf("/%s", points[i]);
		_cleanup_free_ char *sysroot = strdupf("/sysroot/%s", points[i]);
		struct guestfs_statns *st = point ? guestfs_lstatns(a->g, point) : NULL;
		char *args[] = { "mount", "-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "tmpfs",
				 sysroot, NULL };
		char *out;
		bool dir = st && S_ISDIR(st->st_mode);

		if (!point || !sysroot)
			return log_error_errno(ENOMEM, "out of memory");
		if (st)
			guestfs_free_statns(st);
		else if (guestfs_mkdir_mode(a->g, point, 0755) < 0)
			return gfs_error(a->g, point);
		else
			dir = true;
		if (!dir)
			return log_error_errno(ENOTDIR, "'%s' in the rootfs is not a directory (a "
					       "symlink?): the sandbox needs to mount there", point);
		if (!streq(points[i], "run") && !streq(points[i], "tmp"))
			continue;
		out = guestfs_debug(a->g, "sh", args);
		if (!out)
			return gfs_error(a->g, "mount a tmpfs");
		free(out);
	}
	if (guestfs_chmod(a->g, 0755, "/run") < 0)
		return gfs_error(a->g, "chmod /run");
	from = base ? strdupf("/run/%s", base) : NULL;
	to = strdupf("/run/%s", dest);
	if (!from || !to)
		return log_error_errno(ENOMEM, "out of memory");
	if (guestfs_copy_in(a->g, hostdir, "/run") < 0)
		return gfs_error(a->g, "copy the hooks in");
	if (!streq(from, to) && guestfs_rename(a->g, from, to) < 0)
		return gfs_error(a->g, "rename the hooks' directory");
	return 0;
}

/* The script that runs a command for appliance_run(): $@ is env -i VARS... ARGV... */
static const char run_script[] =
	"umask 077; cd / || exit 1; "
	"\"$@\" >" OUTPUT_FILE " 2>&1 </dev/null; s=$?; "
	"tail -c " OUTPUT_MAX " " OUTPUT_FILE "; rm -f " OUTPUT_FILE "; "
	"printf '" STATUS_TAG "%d\\n' \"$s\"";

int appliance_run(struct appliance *a, const char *what, char *const argv[], char *const env[],
		  unsigned timeout, int *ret_status, char **ret_output)
{
	_cleanup_free_ char **args = NULL;
	_cleanup_free_ char *out = NULL;
	size_t n = 0, cap = 8;
	char *tag;

	for (size_t i = 0; env[i]; i++)
		cap++;
	for (size_t i = 0; argv[i]; i++)
		cap++;
	args = calloc(cap, sizeof(char *));
	if (!args)
		return log_error_errno(ENOMEM, "out of memory");
	args[n++] = "/bin/sh";
	args[n++] = "-c";
	args[n++] = (char *)run_script;
	args[n++] = "cvm-image";
	args[n++] = "env";
	args[n++] = "-i";
	for (size_t i = 0; env[i]; i++)
		args[n++] = env[i];
	for (size_t i = 0; argv[i]; i++)
		args[n++] = argv[i];
	interrupt_deadline(timeout);
	out = guestfs_command(a->g, args);
	if (interrupt_deadline_end() && !out)
		return log_error_errno(ETIME, "%s did not finish within %u s (--hook-timeout): the "
				       "appliance was stopped", what, timeout);
	if (!out)
		return gfs_error(a->g, what);
	/* The last tag is ours: whatever the command printed came before it. */
	tag = NULL;
	for (char *p = strstr(out, STATUS_TAG); p; p = strstr(p + 1, STATUS_TAG))
		tag = p;
	if (!tag || sscanf(tag + strlen(STATUS_TAG), "%d", ret_status) != 1)
		return log_error_errno(EIO, "appliance: %s gave no exit status", what);
	*tag = '\0';
	log_child_output(what, out);
	if (ret_output)
		*ret_output = TAKE_PTR(out);
	return 0;
}

/* A memfd for the file transfers: the file's bytes (the key's, in an initramfs) never touch a
 * disk of the host. The API names files, so it gets /proc/self/fd/N. */
static int transfer_fd(char path[static 32])
{
	int fd = memfd_create("cvm-image-transfer", MFD_CLOEXEC);

	if (fd < 0)
		return -errno;
	snprintf(path, 32, "/proc/self/fd/%d", fd);
	return fd;
}

int appliance_read_file(struct appliance *a, const char *path, size_t max, char **ret,
			size_t *ret_len, mode_t *ret_mode)
{
	_cleanup_free_ char *rp = NULL, *buf = NULL;
	_cleanup_close_ int fd = -1;
	struct guestfs_statns *st;
	char fdpath[32];
	mode_t mode;
	int64_t size;
	int r;

	r = resolve(a, path, &rp);
	if (r < 0)
		return r;
	st = guestfs_lstatns(a->g, rp);
	if (!st)
		return gfs_error(a->g, path);
	mode = (mode_t)st->st_mode;
	size = st->st_size;
	guestfs_free_statns(st);
	r = target_check_read(path, mode, size < 0 ? UINT64_MAX : (uint64_t)size, max);
	if (r < 0)
		return r;
	fd = transfer_fd(fdpath);
	if (fd < 0)
		return log_error_errno(fd, "cannot make a memfd: %m");
	if (guestfs_download(a->g, rp, fdpath) < 0)
		return gfs_error(a->g, path);
	buf = malloc((size_t)size + 1);
	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	r = pread_all(fd, buf, (size_t)size, 0);
	if (r < 0)
		return log_error_errno(r, "cannot read '%s' from the appliance: %m", path);
	buf[size] = '\0';
	*ret = TAKE_PTR(buf);
	if (ret_len)
		*ret_len = (size_t)size;
	if (ret_mode)
		*ret_mode = mode;
	return 0;
}

int appliance_write_file(struct appliance *a, const char *path, const void *data, size_t len,
			 mode_t mode)
{
	_cleanup_free_ char *dir = path_dirname(path), *name = path_basename(path);
	_cleanup_free_ char *rdir = NULL, *tmp = NULL, *final = NULL;
	_cleanup_close_ int fd = -1;
	struct guestfs_statns *old = NULL;
	int64_t uid = 0, gid = 0;
	char fdpath[32];
	int r;

	if (!dir || !name)
		return log_error_errno(ENOMEM, "out of memory");
	r = resolve(a, dir, &rdir);
	if (r < 0)
		return log_error_errno(r, "cannot open the directory of '%s' in the rootfs: %m", path);
	tmp = strdupf("%s/.cvm-image.tmp", streq(rdir, "/") ? "" : rdir);
	final = strdupf("%s/%s", streq(rdir, "/") ? "" : rdir, name);
	if (!tmp || !final)
		return log_error_errno(ENOMEM, "out of memory");
	/* As target_write_file(): a symlink is replaced, a regular file keeps its owner. */
	if (guestfs_exists(a->g, final) > 0 || guestfs_is_symlink(a->g, final) > 0)
		old = guestfs_lstatns(a->g, final);
	if (old) {
		mode_t m = (mode_t)old->st_mode;

		uid = S_ISREG(m) ? old->st_uid : 0;
		gid = S_ISREG(m) ? old->st_gid : 0;
		guestfs_free_statns(old);
		r = target_check_replace(path, m);
		if (r < 0)
			return r;
	}
	fd = transfer_fd(fdpath);
	if (fd < 0)
		return log_error_errno(fd, "cannot make a memfd: %m");
	r = len ? pwrite_all(fd, data, len, 0) : 0;
	if (r < 0)
		return log_error_errno(r, "cannot write '%s': %m", path);
	/* Owner and mode first, then the bytes (an upload keeps an existing file's mode): a key
	 * is never in a file of another mode, not even inside the appliance. */
	guestfs_rm_f(a->g, tmp);
	if (guestfs_touch(a->g, tmp) < 0 || guestfs_chown(a->g, (int)uid, (int)gid, tmp) < 0 ||
	    guestfs_chmod(a->g, (int)mode, tmp) < 0 || guestfs_upload(a->g, fdpath, tmp) < 0 ||
	    guestfs_rename(a->g, tmp, final) < 0) {
		r = gfs_error(a->g, path);
		guestfs_rm_f(a->g, tmp);
		return r;
	}
	return 0;
}

int appliance_mkdir_secure(struct appliance *a, const char *path, mode_t mode)
{
	_cleanup_free_ char *copy = strdup(path), *cur = strdup("/");
	char *save = NULL;

	if (!copy || !cur)
		return log_error_errno(ENOMEM, "out of memory");
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		_cleanup_free_ char *next = strdupf("%s/%s", streq(cur, "/") ? "" : cur, c);
		char *rp;

		if (!next)
			return log_error_errno(ENOMEM, "out of memory");
		rp = guestfs_realpath(a->g, next);
		if (!rp) {
			if (guestfs_mkdir_mode(a->g, next, 0755) < 0)
				return gfs_error(a->g, next);
			rp = TAKE_PTR(next);
		}
		free(cur);
		cur = rp;
		if (guestfs_is_dir(a->g, cur) <= 0)
			return log_error_errno(ENOTDIR, "cannot create '%s' in the rootfs: '%s' is not "
					       "a directory", path, cur);
	}
	if (guestfs_chown(a->g, 0, 0, cur) < 0 || guestfs_chmod(a->g, (int)mode, cur) < 0)
		return gfs_error(a->g, path);
	return 0;
}

int appliance_list(struct appliance *a, const char *dir, char ***ret)
{
	_cleanup_free_ char *rp = NULL;
	char **names;
	int r = resolve(a, dir, &rp);

	if (r < 0)
		return log_error_errno(r, "cannot open '%s' in the rootfs: %m", dir);
	names = guestfs_ls(a->g, rp);
	if (!names)
		return gfs_error(a->g, dir);
	*ret = names;
	return 0;
}

int appliance_remove(struct appliance *a, const char *path)
{
	return guestfs_rm_f(a->g, path) < 0 ? gfs_error(a->g, path) : 0;
}

/* The directory of rel below hostfd, no symlink on the way; *name points into rel. */
static int open_parent_nofollow(int hostfd, const char *rel, const char **name)
{
	_cleanup_free_ char *pdir = path_dirname(rel);
	const char *slash = strrchr(rel, '/');

	if (!pdir)
		return -ENOMEM;
	*name = slash ? slash + 1 : rel;
	return target_open_nofollow(hostfd, pdir, O_DIRECTORY | O_RDONLY, 0);
}

/* One entry of copy_out: a directory, a regular file, a symlink, or anything else as a FIFO
 * (esp_populate() refuses what a FAT cannot hold, and names it), made below hostfd. */
static int copy_entry(struct appliance *a, int hostfd, const char *dir, const char *rel)
{
	_cleanup_free_ char *src = strdupf("%s/%s", dir, rel), *to = NULL, *data = NULL;
	_cleanup_close_ int pfd = -1;
	struct guestfs_statns *st;
	const char *name;
	size_t len;
	mode_t m;
	int r;

	if (!src)
		return -ENOMEM;
	st = guestfs_lstatns(a->g, src);
	if (!st)
		return gfs_error(a->g, src);
	m = (mode_t)st->st_mode;
	guestfs_free_statns(st);
	if (S_ISREG(m)) {
		r = appliance_read_file(a, src, SIZE_MAX / 2, &data, &len, NULL);
		return r < 0 ? r : target_write_file(hostfd, rel, data, len, 0600);
	}
	if (S_ISLNK(m) && !(to = guestfs_readlink(a->g, src)))
		return gfs_error(a->g, src);
	pfd = open_parent_nofollow(hostfd, rel, &name);
	if (pfd < 0)
		r = pfd;
	else if (S_ISDIR(m))
		r = mkdirat(pfd, name, 0700) < 0 ? -errno : 0;
	else if (S_ISLNK(m))
		r = symlinkat(to, pfd, name) < 0 ? -errno : 0;
	else
		r = mkfifoat(pfd, name, 0600) < 0 ? -errno : 0;
	if (r < 0)
		return log_error_errno(r, "cannot copy '%s' out of the appliance: %m", src);
	return 0;
}

int appliance_copy_out(struct appliance *a, const char *dir, const char *hostdir)
{
	_cleanup_close_ int hostfd = -1;
	_cleanup_strv_free_ char **names = NULL;
	_cleanup_free_ char *copy = strdup(dir), *cur = strdup("");
	char *save = NULL;
	int r;

	if (!copy || !cur)
		return log_error_errno(ENOMEM, "out of memory");
	/* No symlink on the way, as target_open_nofollow() for the bubblewrap route. */
	for (char *c = strtok_r(copy, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
		_cleanup_free_ char *next = strdupf("%s/%s", cur, c);
		struct guestfs_statns *st;
		mode_t m;

		if (!next)
			return log_error_errno(ENOMEM, "out of memory");
		if (guestfs_exists(a->g, next) <= 0 && guestfs_is_symlink(a->g, next) <= 0)
			return -ENOENT;
		st = guestfs_lstatns(a->g, next);
		if (!st)
			return gfs_error(a->g, next);
		m = (mode_t)st->st_mode;
		guestfs_free_statns(st);
		if (S_ISLNK(m))
			return -ELOOP;
		if (!S_ISDIR(m))
			return -ENOTDIR;
		free(cur);
		cur = TAKE_PTR(next);
	}
	hostfd = open(hostdir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (hostfd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", hostdir);
	/* find: every path below dir, parents before children. */
	names = guestfs_find(a->g, dir);
	if (!names)
		return gfs_error(a->g, dir);
	for (size_t i = 0; names[i]; i++) {
		r = copy_entry(a, hostfd, dir, names[i]);
		if (r < 0)
			return r;
	}
	return 0;
}

int appliance_finish(struct appliance *a)
{
	if (guestfs_umount_all(a->g) < 0)
		return gfs_error(a->g, "unmount");
	if (guestfs_shutdown(a->g) < 0)
		return gfs_error(a->g, "shut down");
	return 0;
}

void appliance_done(struct appliance *a)
{
	interrupt_kill_on_signal(0);
	if (a->g)
		guestfs_close(a->g); /* kills qemu if it still runs */
	a->g = NULL;
}
