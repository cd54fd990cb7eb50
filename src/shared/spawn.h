/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Run a program from an argv array (never a shell), capturing its output. Never logs. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

struct spawn_result {
	int status;   /* exit code, or 128 + signal number */
	char *output; /* stdout and stderr interleaved, at most the last 256 KiB, NUL-terminated */
};

void spawn_result_free(struct spawn_result *r);

/*
 * Run argv[0] (looked up in $PATH) with argv, stdin from /dev/null, extra environment
 * entries ("NAME=value", NULL-terminated, may be NULL) added to ours.
 * Returns 0 when the program ran (whatever its exit status), -errno when it could not be
 * started, -EINTR when SIGINT/SIGTERM arrived: the child is then terminated and reaped.
 */
int spawn_capture(char *const argv[], char *const env_extra[], struct spawn_result *ret);

struct spawn_options {
	char *const *env; /* the whole environment (not added to ours) */
	mode_t umask;
	int kill_signal;  /* sent to the process group on SIGINT/SIGTERM; 0: SIGTERM */
};

/* As spawn_capture, with argv[0] an absolute path, in a process group of its own (all of it
 * gets kill_signal on SIGINT/SIGTERM), with the given umask and only the given environment. */
int spawn_capture_isolated(char *const argv[], const struct spawn_options *opts,
			   struct spawn_result *ret);

/* The last n lines of text, pointing into it. */
const char *last_lines(const char *text, unsigned n);
