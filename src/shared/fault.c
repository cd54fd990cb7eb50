/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection for the tests: CVM_IMAGE_FAULT=POINT. Never logs. */
#include <stdlib.h>
#include <string.h>

#include "fault.h"

bool fault_requested(const char *point)
{
	const char *f = getenv("CVM_IMAGE_FAULT");

	return f && strcmp(f, point) == 0;
}
