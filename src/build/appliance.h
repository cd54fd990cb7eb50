/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The libguestfs appliance as the build's sandbox (--sandbox vm, DESIGN.md §3): a real VM with
 * its own kernel, the target's ext4 mounted at its /sysroot. The tarball is unpacked there by
 * the appliance's root, so owners, device nodes and file capabilities need no privilege on
 * the build host, and the hooks run chrooted into the target with the appliance's /proc,
 * /sys and /dev: nothing of the host is reachable from them. Needs qemu and libguestfs's
 * appliance, no root, no namespaces.
 */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct appliance {
	struct guestfs_h *g;
	double startup_seconds; /* launching it, for --json */
};

/* In the prepare stage: qemu and the appliance (its kernel readable) are there. Returns 0 or
 * -ENOPKG / -EACCES, logged with what is missing. */
int appliance_check(void);

/* Launch the appliance over disk (a raw file holding the empty ext4) and mount it as the
 * target's root. libguestfs's temporary files go below tmpdir (the build's work directory:
 * what a killed build leaves is found and removed with it). Logs. */
int appliance_start(struct appliance *a, const char *disk, const char *tmpdir);

/* Unpack the tarball into the target's root as the appliance's root: numeric owners, modes,
 * times, xattrs (file capabilities, SELinux labels), ACLs, hard links, device nodes, sparse
 * files. The tarball has passed tarball_scan(). Logs. */
int appliance_unpack(struct appliance *a, const char *tarball);

/* The mount points (names below the target's root, NULL-terminated) made real directories
 * of the tree (created when missing, a symlink refused), private tmpfs on "run" and "tmp"
 * as bubblewrap gives, and the host directory hostdir copied to dest below /run. Logs. */
int appliance_prepare_run(struct appliance *a, const char *const *points, const char *hostdir,
			  const char *dest);

/* Run argv chrooted into the target, with only env as its environment, umask 077, stdin
 * /dev/null, for at most timeout seconds (0: no limit; then the appliance is killed and this
 * fails with -ETIME); its output (stdout and stderr, the last 256 KiB) into the debug log and
 * *ret_output, its exit status in *ret_status. Logs errors naming what. */
int appliance_run(struct appliance *a, const char *what, char *const argv[], char *const env[],
		  unsigned timeout, int *ret_status, char **ret_output);

/* The files of the target as target.h reads and writes them: a regular file only, replaced
 * through a temporary name (a symlink there is replaced, not followed; an old file's owner
 * and group kept). read returns -ENOENT, not logged, for an absent file. Log otherwise. */
int appliance_read_file(struct appliance *a, const char *path, size_t max, char **ret,
			size_t *ret_len, mode_t *ret_mode);
int appliance_write_file(struct appliance *a, const char *path, const void *data, size_t len,
			 mode_t mode);
/* mkdir -p; the last component gets mode and root's ownership even if it existed. Logs. */
int appliance_mkdir_secure(struct appliance *a, const char *path, mode_t mode);
/* The names in a directory of the target. Logs. */
int appliance_list(struct appliance *a, const char *dir, char ***ret);
/* Remove a file; absent is fine. Logs. */
int appliance_remove(struct appliance *a, const char *path);
/* Copy the directory dir of the target (no symlink on its way: -ELOOP, not logged; absent:
 * -ENOENT, not logged) into the empty host directory hostdir, contents only. */
int appliance_copy_out(struct appliance *a, const char *dir, const char *hostdir);

/* Unmount, sync and stop the appliance: the disk holds the finished filesystem. Logs. */
int appliance_finish(struct appliance *a);
/* Stop it if running (after an error: nothing is synced) and free. */
void appliance_done(struct appliance *a);
