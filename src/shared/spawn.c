/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Run a program from an argv array (never a shell), capturing its output. Never logs. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cleanup.h"
#include "interrupt.h"
#include "spawn.h"

extern char **environ;

#define OUTPUT_MAX (256 * 1024)

void spawn_result_free(struct spawn_result *r)
{
	free(r->output);
	r->output = NULL;
}

static char **env_merge(char *const extra[])
{
	size_t n = 0, m = 0, k = 0;
	char **env;

	while (environ[n])
		n++;
	while (extra && extra[m])
		m++;
	env = calloc(n + m + 1, sizeof(char *));
	if (!env)
		return NULL;
	for (size_t i = 0; i < m; i++)
		env[k++] = extra[i];
	for (size_t i = 0; i < n; i++) {
		bool shadowed = false;
		const char *eq = strchr(environ[i], '=');
		size_t len = eq ? (size_t)(eq - environ[i]) + 1 : strlen(environ[i]);

		for (size_t j = 0; j < m; j++)
			if (strncmp(environ[i], extra[j], len) == 0)
				shadowed = true;
		if (!shadowed)
			env[k++] = environ[i];
	}
	return env;
}

static void append_output(char **buf, size_t *len, const char *data, size_t n)
{
	char *p;

	if (n >= OUTPUT_MAX) {
		data += n - OUTPUT_MAX;
		n = OUTPUT_MAX;
	}
	if (*len + n > OUTPUT_MAX) {
		size_t drop = *len + n - OUTPUT_MAX;

		memmove(*buf, *buf + drop, *len - drop);
		*len -= drop;
	}
	p = realloc(*buf, *len + n + 1);
	if (!p)
		return; /* keep what we have: output is diagnostics only */
	memcpy(p + *len, data, n);
	*len += n;
	p[*len] = '\0';
	*buf = p;
}

/* Read the child's output until EOF, an interrupt or the deadline (interrupt_deadline()), then
 * reap it. An interrupt or the deadline sends sig to the child (to its process group with
 * group); the deadline makes it -ETIME. */
static int collect(pid_t pid, int fd, bool group, int sig, struct spawn_result *ret)
{
	_cleanup_free_ char *out = NULL;
	size_t len = 0;
	int status;

	for (;;) {
		char chunk[8192];
		ssize_t n;

		if (interrupt_pending() || interrupt_deadline_passed())
			break;
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		append_output(&out, &len, chunk, (size_t)n);
	}
	close(fd);

	if (interrupt_pending() || interrupt_deadline_passed())
		kill(group ? -pid : pid, sig);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR)
			return -errno;
		kill(group ? -pid : pid, sig);
	}
	if (interrupt_pending())
		return -EINTR;
	if (interrupt_deadline_passed())
		return -ETIME;

	ret->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	ret->output = out ? TAKE_PTR(out) : strdup("");
	return 0;
}

int spawn_capture(char *const argv[], char *const env_extra[], struct spawn_result *ret)
{
	_cleanup_free_ char **env = env_merge(env_extra);
	posix_spawn_file_actions_t fa;
	int pipefd[2], r;
	pid_t pid;

	ret->output = NULL;
	ret->status = -1;
	if (!env)
		return -ENOMEM;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, env);
	posix_spawn_file_actions_destroy(&fa);
	close(pipefd[1]);
	if (r != 0) {
		close(pipefd[0]);
		return -r;
	}
	return collect(pid, pipefd[0], false, SIGTERM, ret);
}

int spawn_capture_isolated(char *const argv[], const struct spawn_options *opts,
			   struct spawn_result *ret)
{
	int pipefd[2], errpipe[2], child_errno = 0;
	ssize_t n;
	pid_t pid;

	ret->output = NULL;
	ret->status = -1;
	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	/* The child reports a failed exec through this pipe (closed by exec). */
	if (pipe2(errpipe, O_CLOEXEC) < 0) {
		close(pipefd[0]);
		close(pipefd[1]);
		return -errno;
	}
	pid = fork();
	if (pid < 0) {
		int e = errno;

		close(pipefd[0]);
		close(pipefd[1]);
		close(errpipe[0]);
		close(errpipe[1]);
		return -e;
	}
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int e;

		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		setpgid(0, 0);
		if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(pipefd[1], 1) < 0 ||
		    dup2(pipefd[1], 2) < 0 || chdir("/") < 0) {
			e = errno;
			(void)!write(errpipe[1], &e, sizeof(e));
			_exit(127);
		}
		umask(opts->umask);
		execve(argv[0], argv, opts->env);
		e = errno;
		(void)!write(errpipe[1], &e, sizeof(e));
		_exit(127);
	}
	setpgid(pid, pid); /* as the child does: whichever runs first */
	close(pipefd[1]);
	close(errpipe[1]);
	do
		n = read(errpipe[0], &child_errno, sizeof(child_errno));
	while (n < 0 && errno == EINTR);
	close(errpipe[0]);
	if (n == sizeof(child_errno)) {
		close(pipefd[0]);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return -child_errno;
	}
	return collect(pid, pipefd[0], true, opts->kill_signal ?: SIGTERM, ret);
}

const char *last_lines(const char *text, unsigned n)
{
	const char *p;

	if (!text)
		return "";
	p = text + strlen(text);
	while (p > text && (p[-1] == '\n' || p[-1] == ' '))
		p--;
	while (p > text) {
		if (p[-1] == '\n' && --n == 0)
			break;
		p--;
	}
	return p;
}
