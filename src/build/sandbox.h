/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sandbox for everything that runs inside the target (DESIGN.md §3): bubblewrap. */
#pragma once

/* Where the sandbox sees the host directory given to sandbox_init() (hooks, their library,
 * the templates and the hooks' state): on its private /run, never in the image. */
#define SANDBOX_RUNDIR "/run/cvm-image"

struct sandbox {
	char *bwrap;  /* the bwrap program */
	char *root;   /* the target root on the host: '/' in the sandbox */
	char *rundir; /* a host directory (0700): SANDBOX_RUNDIR in the sandbox */
};

/*
 * Check, in the prepare stage, that sandboxes can be made here: bwrap is installed and can
 * create the namespaces (it needs CAP_SYS_ADMIN: real root, not a default container).
 * Returns 0, -ENOPKG or -ENOTSUP (both exit 3), logged with what is missing.
 */
int sandbox_check(void);

/* A sandbox over root. The mount points the sandbox needs (proc, dev, sys, run, tmp) must be
 * real directories of the tree (created when missing): a symlink there is refused. Logs. */
int sandbox_init(struct sandbox *s, const char *root, const char *rundir);
void sandbox_done(struct sandbox *s);

/*
 * Run argv (argv[0] a path inside the target) in a fresh sandbox: the target root as '/',
 * its own mount, PID, IPC, UTS, network and cgroup namespaces, a procfs of its own PID
 * namespace, a minimal /dev, /sys read-only, private tmpfs on /run and /tmp, only env as the
 * environment, umask 077, a reduced capability set (no CAP_SYS_ADMIN, CAP_MKNOD,
 * CAP_SYS_MODULE, ...). Every process in it is killed when it ends, when cvm-image is
 * interrupted, and when cvm-image dies (SIGKILL included); its mounts go with its mount
 * namespace. Output into the debug log and *ret_output; exit status in *ret_status. Logs
 * errors naming what.
 */
int sandbox_run(const struct sandbox *s, const char *what, char *const argv[], char *const env[],
		int *ret_status, char **ret_output);
