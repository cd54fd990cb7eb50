/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sandbox for everything that runs inside the target (DESIGN.md §3): bubblewrap. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "appliance.h"
#include "sandbox.h"
#include "target.h"
#include "common/log.h"
#include "shared/cleanup.h"
#include "shared/interrupt.h"
#include "shared/spawn.h"
#include "shared/strv.h"
#include "shared/util.h"

/*
 * bubblewrap, as mkosi runs every tool, rather than unshare/pivot_root of our own: it is
 * the reviewed implementation of exactly this (PID 1 of the namespace reaps and dies with
 * its parent, /proc/sys and friends covered read-only, a minimal /dev).
 */
static const char *const namespaces[] = {
	"--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-net",
	"--unshare-cgroup-try",
	/* Every process of the sandbox dies with cvm-image, SIGKILL of cvm-image included
	 * (PR_SET_PDEATHSIG on bwrap and its PID 1; the kernel kills the rest of the PID
	 * namespace with its PID 1). */
	"--die-with-parent",
	/* No TIOCSTI into a terminal of ours. */
	"--new-session",
	/* What building an initramfs and a bootloader needs of root's powers, and no more: no
	 * CAP_SYS_ADMIN (mount a devtmpfs or the host's disks), CAP_MKNOD (make a node of a
	 * host disk), CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_SYS_BOOT, CAP_SYS_TIME, CAP_NET_ADMIN,
	 * CAP_SYS_PTRACE, CAP_BPF, ... */
	"--cap-drop", "ALL",
	"--cap-add", "CAP_CHOWN", "--cap-add", "CAP_DAC_OVERRIDE",
	"--cap-add", "CAP_DAC_READ_SEARCH", "--cap-add", "CAP_FOWNER",
	"--cap-add", "CAP_FSETID", "--cap-add", "CAP_KILL", "--cap-add", "CAP_SETGID",
	"--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETFCAP", "--cap-add", "CAP_SYS_CHROOT",
	NULL,
};

/* As an ordinary user, bwrap's namespaces need one of the user's own (the user as root in it,
 * the only mapping a user may write): there the capabilities above are the user's powers over
 * its own files (the tree), and nothing of anyone else's. */
static const char *const user_namespace[] = {
	"--unshare-user", "--uid", "0", "--gid", "0", NULL,
};

/* The file systems of the sandbox, after its root. */
static const char *const filesystems[] = {
	"--proc", "/proc",
	/* bwrap covers /proc/irq and /proc/bus but, as root, not /proc/sys (its access(W_OK)
	 * test fails on the directory, not on the files in it): read-only, or a hook could
	 * set the host's kernel.core_pattern. */
	"--ro-bind", "/proc/sys", "/proc/sys",
	"--ro-bind-try", "/proc/sysrq-trigger", "/proc/sysrq-trigger",
	"--dev", "/dev", /* null, zero, full, random, urandom, tty, pts, shm: no host device */
	"--ro-bind", "/sys", "/sys",
	"--perms", "0755", "--tmpfs", "/run",
	"--perms", "1777", "--tmpfs", "/tmp",
	NULL,
};

/* The mount points below the target root. */
static const char *const mount_points[] = { "proc", "dev", "sys", "run", "tmp", NULL };

static int push(const char **v, size_t *n, size_t cap, const char *s)
{
	if (*n + 1 >= cap)
		return -E2BIG;
	v[(*n)++] = s;
	v[*n] = NULL;
	return 0;
}

static int push_all(const char **v, size_t *n, size_t cap, const char *const *list)
{
	int r = 0;

	for (size_t i = 0; list[i] && r == 0; i++)
		r = push(v, n, cap, list[i]);
	return r;
}

/* bwrap ROOT-OPTION ROOT / [--bind RUNDIR SANDBOX_RUNDIR] namespaces... -- argv... */
static const char **bwrap_argv(const char *bwrap, const char *root_opt, const char *root,
			       const char *rundir, char *const argv[])
{
	size_t n = 0, cap = 128;
	const char **v = calloc(cap, sizeof(char *));
	int r;

	if (!v)
		return NULL;
	r = push(v, &n, cap, bwrap);
	r = r ?: push(v, &n, cap, root_opt);
	r = r ?: push(v, &n, cap, root);
	r = r ?: push(v, &n, cap, "/");
	r = r ?: push_all(v, &n, cap, filesystems);
	if (rundir) {
		r = r ?: push(v, &n, cap, "--bind");
		r = r ?: push(v, &n, cap, rundir);
		r = r ?: push(v, &n, cap, SANDBOX_RUNDIR);
	}
	if (geteuid() != 0)
		r = r ?: push_all(v, &n, cap, user_namespace);
	r = r ?: push_all(v, &n, cap, namespaces);
	r = r ?: push(v, &n, cap, "--chdir");
	r = r ?: push(v, &n, cap, "/");
	r = r ?: push(v, &n, cap, "--");
	for (size_t i = 0; argv[i] && r == 0; i++)
		r = push(v, &n, cap, argv[i]);
	if (r < 0) {
		free(v);
		return NULL;
	}
	return v;
}

static int run_bwrap(const char *const *argv, char *const env[], struct spawn_result *res)
{
	struct spawn_options opts = {
		.env = env,
		.umask = 0077,
		/* bwrap's PID 1 and so the whole sandbox die with it. */
		.kill_signal = SIGKILL,
	};

	return spawn_capture_isolated((char *const *)argv, &opts, res);
}

static const char *const kind_names[] = {
	[SANDBOX_AUTO] = "auto",
	[SANDBOX_BWRAP] = "bwrap",
	[SANDBOX_VM] = "vm",
};

int sandbox_kind_from_string(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(kind_names); i++)
		if (streq(s, kind_names[i]))
			return (int)i;
	return -1;
}

const char *sandbox_kind_to_string(enum sandbox_kind k)
{
	return (size_t)k < ELEMENTSOF(kind_names) ? kind_names[k] : "?";
}

int sandbox_check(char **ret_why)
{
	_cleanup_free_ char *bwrap = find_program_path("bwrap");
	_cleanup_free_ const char **argv = NULL;
	char *true_argv[] = { "/bin/true", NULL };
	char *env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
	struct spawn_result res;
	int r;

	*ret_why = NULL;
	if (!bwrap) {
		*ret_why = strdup("required program 'bwrap' not found in $PATH (install the Debian "
				  "package 'bubblewrap'): the distro's tools run in its sandbox");
		return -ENOPKG;
	}
	/* The same namespaces and file systems, over the host's root read-only: nothing of the
	 * target runs yet. */
	argv = bwrap_argv(bwrap, "--ro-bind", "/", NULL, true_argv);
	if (!argv)
		return log_error_errno(ENOMEM, "out of memory");
	r = run_bwrap(argv, env, &res);
	if (r < 0)
		return log_error_errno(r, "cannot run '%s': %m", bwrap);
	if (res.status != 0) {
		if (geteuid() != 0)
			*ret_why = strdupf("bubblewrap cannot make a user namespace here (a "
					   "container's seccomp filter, or user namespaces turned "
					   "off for ordinary users):\n%s", last_lines(res.output, 4));
		else
			*ret_why = strdupf("cannot create the sandbox for the distro's tools "
					   "(bubblewrap needs CAP_SYS_ADMIN: run cvm-image as root on "
					   "the host or in a privileged container, or use --sandbox "
					   "vm):\n%s", last_lines(res.output, 4));
		r = -ENOTSUP;
	}
	spawn_result_free(&res);
	return r;
}

char **sandbox_userns_wrap(void)
{
	static const char *const opts[] = {
		"--unshare-user", "--uid", "0", "--gid", "0",
		/* root's reading and writing of the user's own files, whatever their modes */
		"--cap-drop", "ALL", "--cap-add", "CAP_DAC_OVERRIDE",
		"--cap-add", "CAP_DAC_READ_SEARCH",
		"--bind", "/", "/", "--dev-bind", "/dev", "/dev",
		/* killed with cvm-image, SIGKILL included: the PID namespace dies with its init */
		"--unshare-pid", "--die-with-parent", "--", NULL,
	};
	char **v = NULL;
	size_t n = 0;
	int r;

	r = strv_push(&v, &n, find_program_path("bwrap"));
	for (size_t i = 0; opts[i] && r == 0; i++)
		r = strv_push(&v, &n, strdup(opts[i]));
	if (r < 0) {
		strv_free(v);
		return NULL;
	}
	return v;
}

int sandbox_init(struct sandbox *s, const char *root, const char *rundir, struct appliance *vm)
{
	_cleanup_close_ int rootfd = -1;
	int r;

	memset(s, 0, sizeof(*s));
	if (vm) {
		r = appliance_prepare_run(vm, mount_points, rundir, SANDBOX_RUNDIR + strlen("/run/"));
		if (r < 0)
			return r;
		s->vm = vm;
		return 0;
	}
	rootfd = open(root, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (rootfd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", root);
	for (size_t i = 0; mount_points[i]; i++) {
		const char *m = mount_points[i];
		struct stat st;

		if (fstatat(rootfd, m, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT || mkdirat(rootfd, m, 0755) < 0)
				return log_error_errno(errno, "cannot create '/%s' in the rootfs: %m", m);
			continue;
		}
		/* bwrap would follow a symlink there on the host side of its mount namespace. */
		if (!S_ISDIR(st.st_mode))
			return log_error_errno(ENOTDIR, "'/%s' in the rootfs is not a directory (a "
							"symlink?): the sandbox needs to mount there", m);
	}
	s->bwrap = find_program_path("bwrap");
	s->root = strdup(root);
	s->rundir = strdup(rundir);
	if (!s->bwrap || !s->root || !s->rundir) {
		sandbox_done(s);
		return log_error_errno(s->bwrap ? ENOMEM : ENOPKG, "cannot set up the sandbox: %m");
	}
	return 0;
}

void sandbox_done(struct sandbox *s)
{
	free(s->bwrap);
	free(s->root);
	free(s->rundir);
	memset(s, 0, sizeof(*s));
}

int sandbox_run(const struct sandbox *s, const char *what, char *const argv[], char *const env[],
		int *ret_status, char **ret_output)
{
	_cleanup_free_ const char **bargv = NULL;
	struct spawn_result res;
	int r;

	if (s->vm)
		return appliance_run(s->vm, what, argv, env, s->timeout, ret_status, ret_output);
	bargv = bwrap_argv(s->bwrap, "--bind", s->root, s->rundir, argv);
	if (!bargv)
		return log_error_errno(ENOMEM, "out of memory");
	interrupt_deadline(s->timeout);
	r = run_bwrap(bargv, env, &res);
	interrupt_deadline_end();
	if (r == -ETIME)
		return log_error_errno(r, "%s did not finish within %u s (--hook-timeout): stopped",
				       what, s->timeout);
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

int sandbox_take_file(const struct sandbox *s, const char *rel, size_t max, char **ret,
		      size_t *ret_len)
{
	_cleanup_close_ int dfd = -1;
	int r;

	if (s->vm) {
		_cleanup_free_ char *path = strdupf(SANDBOX_RUNDIR "/%s", rel);

		if (!path)
			return log_error_errno(ENOMEM, "out of memory");
		r = appliance_read_file(s->vm, path, max, ret, ret_len, NULL);
		return r < 0 ? r : appliance_remove(s->vm, path);
	}
	dfd = open(s->rundir, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dfd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", s->rundir);
	r = target_read_file_max(dfd, rel, max, ret, ret_len, NULL);
	if (r < 0)
		return r;
	if (unlinkat(dfd, rel, 0) < 0)
		return log_error_errno(errno, "cannot remove '%s/%s': %m", s->rundir, rel);
	return 0;
}
