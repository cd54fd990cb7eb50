/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A parser of untrusted bytes run in a child that can compute and nothing else.
 *
 * inspect and rekey read images whose guest knew the disk key and could write any ext4
 * metadata, initramfs or grub.cfg; libext2fs 1.47.0 overflows its heap on a crafted
 * superblock (we check that one, but the library is large). A forked child rather than a
 * helper under bubblewrap: it inherits the opened image, the unlocked volume key and the
 * parsers' state without passing them through argv, the environment or a file (key material
 * goes nowhere but memory), costs a fork (about a millisecond), and needs no user namespace,
 * so it works as an ordinary user and in a container that refuses unshare. What a memory bug
 * there can do: compute, read the fds it was given, write its answer to a pipe the parent
 * parses with bounds, and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include <seccomp.h>

#include "confine.h"
#include "log.h"
#include "shared/cleanup.h"
#include "shared/util.h"

#define NOBODY 65534
#define AS_LIMIT (4ULL << 30)
#define CPU_LIMIT 600

static int allow(scmp_filter_ctx f, int nr, unsigned n, const struct scmp_arg_cmp *args)
{
	return seccomp_rule_add_array(f, SCMP_ACT_ALLOW, nr, n, args);
}

/* The allow-list. Everything else: EPERM (a library that tries more fails closed). */
static int load_filter(int out_fd)
{
	static const int plain[] = {
		SCMP_SYS(read), SCMP_SYS(readv), SCMP_SYS(pread64), SCMP_SYS(preadv),
		SCMP_SYS(lseek), SCMP_SYS(fstat), SCMP_SYS(close),
		SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(madvise),
		SCMP_SYS(futex), SCMP_SYS(getrandom), SCMP_SYS(clock_gettime),
		SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(getpid), SCMP_SYS(gettid),
		SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
		SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask), SCMP_SYS(exit),
		SCMP_SYS(exit_group),
	};
	scmp_filter_ctx f = seccomp_init(SCMP_ACT_ERRNO(EPERM));
	int r = f ? 0 : -ENOMEM;

	for (size_t i = 0; r == 0 && i < ELEMENTSOF(plain); i++)
		r = allow(f, plain[i], 0, NULL);
	/* Writes: the answer and the log, nothing else. */
	if (r == 0)
		r = allow(f, SCMP_SYS(write), 1, (struct scmp_arg_cmp[]){ SCMP_A0(SCMP_CMP_EQ, out_fd) });
	if (r == 0)
		r = allow(f, SCMP_SYS(write), 1, (struct scmp_arg_cmp[]){ SCMP_A0(SCMP_CMP_EQ, 2) });
	if (r == 0)
		r = allow(f, SCMP_SYS(writev), 1, (struct scmp_arg_cmp[]){ SCMP_A0(SCMP_CMP_EQ, 2) });
	/* fstat() as glibc makes it: newfstatat(fd, "", AT_EMPTY_PATH), no path looked up. */
	if (r == 0)
		r = allow(f, SCMP_SYS(newfstatat), 1,
			  (struct scmp_arg_cmp[]){ SCMP_A3(SCMP_CMP_EQ, AT_EMPTY_PATH) });
	/* Memory, never executable. */
	if (r == 0)
		r = allow(f, SCMP_SYS(mmap), 1,
			  (struct scmp_arg_cmp[]){ SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) });
	if (r == 0)
		r = allow(f, SCMP_SYS(mprotect), 1,
			  (struct scmp_arg_cmp[]){ SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0) });
	/* isatty(2) for the log's colours. */
	if (r == 0)
		r = allow(f, SCMP_SYS(ioctl), 2,
			  (struct scmp_arg_cmp[]){ SCMP_A0(SCMP_CMP_EQ, 2), SCMP_A1(SCMP_CMP_EQ, TCGETS) });
	if (r == 0)
		r = seccomp_load(f);
	seccomp_release(f);
	return r;
}

/* In the child: everything but computing taken away. Returns 0 or -errno. */
static int confine_self(int keep_fd, int out_fd)
{
	struct rlimit as = { AS_LIMIT, AS_LIMIT }, cpu = { CPU_LIMIT, CPU_LIMIT }, none = { 0, 0 };
	int lo = keep_fd < out_fd ? keep_fd : out_fd, hi = keep_fd < out_fd ? out_fd : keep_fd;

	/* Only the fds it was given: no socket to a daemon, no directory to start from. */
	if (lo < 0)
		lo = hi;
	if ((lo > 3 && close_range(3, (unsigned)lo - 1, 0) < 0) ||
	    (hi > lo + 1 && close_range((unsigned)lo + 1, (unsigned)hi - 1, 0) < 0) ||
	    close_range((unsigned)hi + 1, ~0U, 0) < 0)
		return -errno;
	if (setrlimit(RLIMIT_AS, &as) < 0 || setrlimit(RLIMIT_CPU, &cpu) < 0 ||
	    setrlimit(RLIMIT_CORE, &none) < 0)
		return -errno;
	if (geteuid() == 0 &&
	    (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
	     setresuid(NOBODY, NOBODY, NOBODY) < 0))
		return -errno;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return -errno;
	return load_filter(out_fd);
}

int confine_run(int (*fn)(void *userdata, int out_fd), void *userdata, int keep_fd, size_t max,
		char **ret, size_t *ret_len, int *ret_signal)
{
	_cleanup_free_ char *buf = malloc(max + 1);
	size_t len = 0;
	int p[2], status, r = 0;
	bool too_long = false;
	pid_t pid;

	*ret = NULL;
	*ret_len = 0;
	*ret_signal = 0;
	if (!buf)
		return log_error_errno(ENOMEM, "out of memory");
	if (pipe2(p, O_CLOEXEC) < 0)
		return log_error_errno(errno, "cannot make a pipe: %m");
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		r = -errno;
		close(p[0]);
		close(p[1]);
		return log_error_errno(r, "cannot fork: %m");
	}
	if (pid == 0) {
		close(p[0]);
		signal(SIGPIPE, SIG_DFL);
		r = confine_self(keep_fd, p[1]);
		if (r < 0) {
			log_error_errno(r, "cannot confine the reader: %m");
			_exit(127);
		}
		r = fn(userdata, p[1]);
		_exit(r < 0 && -r < 127 ? -r : r < 0 ? 126 : 0);
	}
	close(p[1]);
	for (;;) {
		ssize_t n = read(p[0], buf + len, max - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == max) {
			char c;

			if (read(p[0], &c, 1) == 1) {
				too_long = true;
				kill(pid, SIGKILL);
			}
			break;
		}
	}
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return log_error_errno(errno, "cannot wait for the reader: %m");
	if (WIFSIGNALED(status) || too_long) {
		*ret_signal = too_long ? SIGKILL : WTERMSIG(status);
		return -ECHILD;
	}
	r = WEXITSTATUS(status);
	if (r == 127)
		return -EPERM; /* it said why */
	if (r != 0)
		return -r;
	buf[len] = '\0';
	*ret = TAKE_PTR(buf);
	*ret_len = len;
	return 0;
}
