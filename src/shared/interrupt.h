/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SIGINT/SIGTERM set a flag; long loops and the stage runner check it and unwind. */
#pragma once

#include <signal.h>
#include <stdbool.h>

extern volatile sig_atomic_t cvm_interrupted;

/* Install handlers without SA_RESTART, so blocking calls return EINTR. */
int interrupt_install(void);
static inline bool interrupt_pending(void)
{
	return cvm_interrupted != 0;
}
