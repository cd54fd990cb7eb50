/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGINT/SIGTERM set a flag; long loops and the stage runner check it and unwind. */
#include <errno.h>
#include <signal.h>
#include <string.h>

#include "interrupt.h"

volatile sig_atomic_t cvm_interrupted;

static void on_signal(int sig)
{
	cvm_interrupted = sig;
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
