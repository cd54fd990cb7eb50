/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What every command's option parsing shares. */
#include <getopt.h>

#include "cmd.h"
#include "common/log.h"

int cmd_one_operand(int argc, char *argv[], const char *cmd, const char *what, const char **ret)
{
	if (optind >= argc)
		return log_error_errno(EINVAL, "missing %s; see 'cvm-image %s --help'", what, cmd);
	if (optind + 1 < argc)
		return log_error_errno(EINVAL, "unexpected argument '%s'", argv[optind + 1]);
	*ret = argv[optind];
	return 0;
}
