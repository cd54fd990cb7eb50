/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Run a helper program: output into the debug log, its last lines in the error on failure. */
#pragma once

/* Returns 0 on exit status 0; logs and returns -EIO (or -ENOENT, -EINTR) otherwise. */
int run_program(char *const argv[], char *const env_extra[]);

/* The Debian package that provides a helper program, for error messages. */
const char *program_package(const char *prog);

/* Check that each named helper is in $PATH; logs what to install. -ENOPKG if not. */
int require_programs(const char *const progs[]);
