/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGINT/SIGTERM set a flag; long loops and the stage runner check it and unwind. */
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "interrupt.h"

volatile sig_atomic_t cvm_interrupted;
static volatile sig_atomic_t kill_pid;
static volatile sig_atomic_t deadline_passed;

static void on_signal(int sig)
{
	cvm_interrupted = sig;
	if (kill_pid > 0)
		kill((pid_t)kill_pid, SIGKILL); /* async-signal-safe */
}

static void on_alarm(int sig)
{
	(void)sig;
	deadline_passed = 1;
	if (kill_pid > 0)
		kill((pid_t)kill_pid, SIGKILL);
}

void interrupt_deadline(unsigned seconds)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: a blocking read returns EINTR */
	sigemptyset(&sa.sa_mask);
	deadline_passed = 0;
	if (seconds)
		sigaction(SIGALRM, &sa, NULL);
	alarm(seconds);
}

bool interrupt_deadline_passed(void)
{
	return deadline_passed != 0;
}

bool interrupt_deadline_end(void)
{
	bool passed;

	alarm(0);
	passed = deadline_passed != 0;
	deadline_passed = 0;
	return passed;
}

void interrupt_kill_on_signal(pid_t pid)
{
	kill_pid = pid;
	if (pid > 0 && cvm_interrupted)
		kill(pid, SIGKILL);
}

int interrupt_install(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGHUP, &sa, NULL) < 0)
		return -errno;
	return 0;
}
