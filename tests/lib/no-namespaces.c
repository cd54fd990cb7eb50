/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * no-namespaces COMMAND [ARGS...]: run COMMAND as in a default Docker or Podman container as
 * far as the kernel's namespaces and mounts go: the seccomp filter of their default profile
 * refuses unshare, setns, the mount API and clone with any CLONE_NEW* flag (EPERM) and
 * clone3 (ENOSYS, so that glibc falls back to clone, whose flags a filter can see). The
 * capability side (no CAP_SYS_ADMIN) is setpriv's: `setpriv --bounding-set -sys_admin`.
 */
#include <errno.h>
#include <sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <unistd.h>

int main(int argc, char *argv[])
{
	static const int denied[] = {
		SCMP_SYS(unshare), SCMP_SYS(setns), SCMP_SYS(mount), SCMP_SYS(umount2),
		SCMP_SYS(pivot_root), SCMP_SYS(open_tree), SCMP_SYS(move_mount), SCMP_SYS(fsopen),
		SCMP_SYS(fsconfig), SCMP_SYS(fsmount), SCMP_SYS(fspick), SCMP_SYS(mount_setattr),
	};
	static const unsigned long ns_flags[] = {
		CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET,
		CLONE_NEWCGROUP, CLONE_NEWTIME,
	};
	scmp_filter_ctx ctx;
	int r = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: no-namespaces COMMAND [ARGS...]\n");
		return 2;
	}
	ctx = seccomp_init(SCMP_ACT_ALLOW);
	if (!ctx)
		return 1;
	for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), denied[i], 0);
	for (size_t i = 0; i < sizeof(ns_flags) / sizeof(ns_flags[0]) && r == 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0) {
		errno = -r;
		perror("no-namespaces: seccomp");
		return 1;
	}
	execvp(argv[1], argv + 1);
	perror(argv[1]);
	return 127;
}
