/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGINT/SIGTERM set a flag; long loops and the stage runner check it and unwind. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

extern volatile sig_atomic_t cvm_interrupted;

/* Install handlers without SA_RESTART, so blocking calls return EINTR. */
int interrupt_install(void);

/* Arm a deadline (seconds > 0; 0 arms none): when it passes, interrupt_deadline_passed() says
 * so, blocking calls return EINTR and the process of interrupt_kill_on_signal() is killed.
 * interrupt_deadline_end() disarms it and says whether it had passed. */
void interrupt_deadline(unsigned seconds);
bool interrupt_deadline_passed(void);
bool interrupt_deadline_end(void);

/* A process that the signal kills at once (SIGKILL), for a child that a blocking library call
 * waits on and that no flag would reach (the libguestfs appliance's qemu, which libguestfs
 * puts in a process group of its own); 0 for none. */
void interrupt_kill_on_signal(pid_t pid);
static inline bool interrupt_pending(void)
{
	return cvm_interrupted != 0;
}
