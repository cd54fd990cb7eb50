/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The command table: each command parses its own options and returns an exit status. */
#pragma once

struct cvm_cmd {
	const char *name;
	int (*cmd)(int argc, char *argv[]);
	const char *help;
};

extern const struct cvm_cmd cvm_cmd_boot;
extern const struct cvm_cmd cvm_cmd_build;
extern const struct cvm_cmd cvm_cmd_hooks;
extern const struct cvm_cmd cvm_cmd_inspect;
extern const struct cvm_cmd cvm_cmd_rekey;
extern const struct cvm_cmd cvm_cmd_secret;

/* After getopt_long: exactly one operand (what, e.g. "IMAGE", for the message) into *ret.
 * Logs and returns -EINVAL otherwise: the caller exits with EXIT_USAGE. */
int cmd_one_operand(int argc, char *argv[], const char *cmd, const char *what, const char **ret);
