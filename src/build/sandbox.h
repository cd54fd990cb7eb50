/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sandbox for everything that runs inside the target (DESIGN.md §3): bubblewrap over a
 * directory of the host, or the libguestfs appliance over the mounted filesystem. */
#pragma once

#include <stddef.h>

struct appliance;

/* --sandbox: which route the build takes. */
enum sandbox_kind {
	SANDBOX_AUTO,  /* bubblewrap where it works (root, or a user namespace), the appliance
			* otherwise */
	SANDBOX_BWRAP, /* the tree unpacked on the host, the tools in bubblewrap: root, or an
			* ordinary user where bwrap can make a user namespace (owners.h) */
	SANDBOX_VM,    /* the tree and the tools in the libguestfs appliance: needs qemu only */
};

/* "auto", "bwrap", "vm" <-> the kind; -1 for an unknown name. */
int sandbox_kind_from_string(const char *s);
const char *sandbox_kind_to_string(enum sandbox_kind k);

/* Where the sandbox sees the host directory given to sandbox_init() (hooks, their library,
 * the templates and the hooks' state): on its private /run, never in the image. */
#define SANDBOX_RUNDIR "/run/cvm-image"

struct sandbox {
	char *bwrap;  /* the bwrap program; NULL in the appliance */
	char *root;   /* the target root on the host: '/' in the sandbox */
	char *rundir; /* a host directory (0700): SANDBOX_RUNDIR in the sandbox */
	struct appliance *vm; /* the appliance route: the tree is its /sysroot */
	unsigned timeout;     /* seconds one program may run (0: no limit) */
};

/*
 * Check, in the prepare stage, that bubblewrap sandboxes can be made here: bwrap is installed
 * and can create the namespaces (as root it needs CAP_SYS_ADMIN: real root, not a default
 * container; as an ordinary user, a user namespace).
 * Returns 0, -ENOPKG or -ENOTSUP (both exit 3), with the reason in *ret_why (not logged).
 */
int sandbox_check(char **ret_why);

/* The words a program is run under to be root in a user namespace of the calling ordinary
 * user (only its own files readable and writable whatever their modes, nothing else): mke2fs
 * reading an ordinary user's tree. A strv, NULL for out of memory (or no bwrap). */
char **sandbox_userns_wrap(void);

/* A sandbox over root (bubblewrap) or over the appliance's mounted target (vm != NULL, root
 * unused), with rundir's files as SANDBOX_RUNDIR: the appliance gets a copy, on a tmpfs. The
 * mount points the sandbox needs (proc, dev, sys, run, tmp) must be real directories of the
 * tree (created when missing): a symlink there is refused. Logs. */
int sandbox_init(struct sandbox *s, const char *root, const char *rundir, struct appliance *vm);
void sandbox_done(struct sandbox *s);

/*
 * Run argv (argv[0] a path inside the target) in a fresh sandbox (for at most s->timeout
 * seconds: then it is killed, the appliance with it, and this fails with -ETIME): the target root as '/',
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

/* Read (at most max bytes) and remove the regular file SANDBOX_RUNDIR/rel that the sandbox's
 * programs wrote. -ENOENT, not logged, if there is none. Logs. */
int sandbox_take_file(const struct sandbox *s, const char *rel, size_t max, char **ret,
		      size_t *ret_len);
