/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fault injection for the tests: CVM_IMAGE_FAULT=POINT. Never logs. */
#pragma once

#include <stdbool.h>

/* True when CVM_IMAGE_FAULT names this point. */
bool fault_requested(const char *point);
