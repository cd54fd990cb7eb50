/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A parser of untrusted bytes run in a child that can compute and nothing else. */
#pragma once

#include <stddef.h>

/*
 * Run fn(userdata, out_fd) in a forked child confined as follows, and return what it wrote to
 * out_fd (at most max bytes; NUL-terminated, *ret_len without the NUL):
 *   - only fds 0, 1, 2, keep_fd and out_fd stay open;
 *   - uid and gid nobody (65534) and no supplementary groups when we are root, so no
 *     capabilities; no_new_privs; not dumpable, no core;
 *   - a seccomp allow-list: reading and seeking the fds it has, writing to out_fd and stderr,
 *     memory without PROT_EXEC, time, exit. No open, exec, socket, ptrace, clone, kill: any
 *     other system call fails with EPERM;
 *   - 4 GiB of address space and 600 s of CPU.
 * fn returns 0 or -errno; the child exits with that. Returns 0, fn's -errno, -ECHILD when the
 * child died of a signal (*ret_signal says which: a memory bug found by the content, or a
 * limit) or wrote more than max, or -errno of the setup. Logs setup failures only: the
 * caller says what a dead child means for the bytes it was reading.
 */
int confine_run(int (*fn)(void *userdata, int out_fd), void *userdata, int keep_fd, size_t max,
		char **ret, size_t *ret_len, int *ret_signal);
