/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The target root as a chroot: /proc, /sys, /dev, /dev/pts and /run mounted with libmount,
 * always unmounted again; programs run in it with a clean environment. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libmount/libmount.h>

#include "chroot.h"
#include "log.h"
#include "shared/cleanup.h"
#include "shared/spawn.h"
#include "shared/util.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct libmnt_context *, mnt_free_context);

static const struct {
	const char *source, *target, *fstype, *options;
} mounts[] = {
	{ "/proc", "proc", NULL, NULL },
	{ "/sys", "sys", NULL, NULL },
	{ "/dev", "dev", NULL, NULL },
	{ "/dev/pts", "dev/pts", NULL, NULL },
	/* Not the host's /run: the target's scripts must not see or change it. */
	{ "tmpfs", "run", "tmpfs", "mode=0755,nosuid,nodev,size=64m" },
};

/* The mount point must be a real directory inside root, reached without symlinks. */
static int mountpoint_path(const char *root, const char *rel, char **ret)
{
	_cleanup_free_ char *path = strdupf("%s/%s", root, rel);
	char real[PATH_MAX], realroot[PATH_MAX];
	struct stat st;

	if (!path)
		return -ENOMEM;
	if (lstat(path, &st) < 0) {
		if (errno != ENOENT || mkdir(path, 0755) < 0 || lstat(path, &st) < 0)
			return log_error_errno(errno, "cannot create mount point '%s': %m", path);
	}
	if (!S_ISDIR(st.st_mode))
		return log_error_errno(ENOTDIR, "refusing to mount on '/%s' of the rootfs: not a "
						"directory (a symlink?)", rel);
	if (!realpath(path, real) || !realpath(root, realroot))
		return log_error_errno(errno, "cannot resolve '%s': %m", path);
	if (strncmp(real, realroot, strlen(realroot)) != 0 || real[strlen(realroot)] != '/' ||
	    !streq(real + strlen(realroot) + 1, rel))
		return log_error_errno(EPERM, "refusing to mount on '/%s' of the rootfs: it leads "
					      "to '%s'", rel, real);
	*ret = TAKE_PTR(path);
	return 0;
}

/* A libmount context that only makes the syscall: no mtab/utab, no mount helpers, no path
 * canonicalisation (the paths were checked by mountpoint_path()). */
static struct libmnt_context *new_context(void)
{
	struct libmnt_context *cxt = mnt_new_context();

	if (cxt) {
		mnt_context_disable_mtab(cxt, 1);
		mnt_context_disable_helpers(cxt, 1);
		mnt_context_disable_canonicalize(cxt, 1);
	}
	return cxt;
}

/* libmount: 0 success, < 0 its own error, > 0 the syscall failed: one -errno either way. */
static int context_result(struct libmnt_context *cxt, int r)
{
	if (r > 0)
		r = mnt_context_syscall_called(cxt) ? -mnt_context_get_syscall_errno(cxt) : -EIO;
	return r;
}

static int do_mount(const char *source, const char *target, const char *fstype,
		    const char *options)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = new_context();
	int r;

	if (!cxt)
		return -ENOMEM;
	r = mnt_context_set_source(cxt, source);
	if (r == 0)
		r = mnt_context_set_target(cxt, target);
	if (r == 0 && fstype)
		r = mnt_context_set_fstype(cxt, fstype);
	if (r == 0 && options)
		r = mnt_context_set_options(cxt, options);
	if (r == 0 && !fstype)
		r = mnt_context_set_mflags(cxt, MS_BIND);
	if (r == 0)
		r = mnt_context_mount(cxt);
	return context_result(cxt, r);
}

static int do_umount(const char *target, bool lazy)
{
	_cleanup_(mnt_free_contextp) struct libmnt_context *cxt = new_context();
	int r;

	if (!cxt)
		return -ENOMEM;
	if (lazy)
		mnt_context_enable_lazy(cxt, 1);
	r = mnt_context_set_target(cxt, target);
	if (r == 0)
		r = mnt_context_umount(cxt);
	return context_result(cxt, r);
}

int chroot_setup(struct chroot_session *s, const char *root)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->root = strdup(root);
	if (!s->root)
		return log_error_errno(ENOMEM, "out of memory");
	for (size_t i = 0; i < ELEMENTSOF(mounts); i++) {
		_cleanup_free_ char *target = NULL;

		r = mountpoint_path(root, mounts[i].target, &target);
		if (r < 0)
			goto fail;
		r = do_mount(mounts[i].source, target, mounts[i].fstype, mounts[i].options);
		if (r < 0) {
			log_error_errno(r, "cannot mount '%s' on '%s': %m", mounts[i].source, target);
			goto fail;
		}
		log_debug("mounted %s on %s", mounts[i].source, target);
		s->mounted[s->n_mounted++] = TAKE_PTR(target);
	}
	return 0;
fail:
	chroot_teardown(s);
	return r;
}

int chroot_teardown(struct chroot_session *s)
{
	int ret = 0;

	while (s->n_mounted > 0) {
		char *target = s->mounted[--s->n_mounted];
		int r = do_umount(target, false);

		if (r == -EBUSY) {
			log_warning("'%s' is busy, detaching it lazily", target);
			r = do_umount(target, true);
		}
		if (r < 0 && ret == 0)
			ret = log_error_errno(r, "cannot unmount '%s': %m", target);
		else if (r == 0)
			log_debug("unmounted %s", target);
		free(target);
	}
	free(s->root);
	s->root = NULL;
	return ret;
}

int chroot_run(const struct chroot_session *s, const char *what, char *const argv[],
	       char *const env[], int *ret_status, char **ret_output)
{
	struct spawn_options opts = { .chroot = s->root, .env = env, .umask = 0077 };
	struct spawn_result res;
	int r;

	r = spawn_capture_chroot(argv, &opts, &res);
	if (r == -EINTR)
		return log_error_errno(r, "interrupted while running %s", what);
	if (r < 0)
		return log_error_errno(r, "cannot run %s: %m", what);
	log_child_output(what, res.output);
	*ret_status = res.status;
	if (ret_output)
		*ret_output = TAKE_PTR(res.output);
	spawn_result_free(&res);
	return 0;
}
