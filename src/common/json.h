/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Just enough JSON output for --json summaries: escaped strings, no allocation. */
#pragma once

#include <stdio.h>

void json_string(FILE *f, const char *s);
