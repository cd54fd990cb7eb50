/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every libFuzzer target here shares: the entry point, and logging cut down to errors (a
 * parser's messages about bad input are expected; make fuzz also closes the targets' stderr
 * with -close_fd_mask=2, libFuzzer's own reports stay). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "common/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void fuzz_quiet(void)
{
	static int done;

	if (!done) {
		log_set_max_level(LOG_LEVEL_ERR);
		done = 1;
	}
}
