/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Run a helper program: output into the debug log, its last lines in the error on failure. */
#include <errno.h>
#include <string.h>

#include "log.h"
#include "run.h"
#include "shared/cleanup.h"
#include "shared/spawn.h"
#include "shared/util.h"

static const struct {
	const char *prog;
	const char *package;
} packages[] = {
	{ "mke2fs", "e2fsprogs" },   { "mkfs.fat", "dosfstools" }, { "mmd", "mtools" },
	{ "mcopy", "mtools" },       { "qemu-img", "qemu-utils" },
};

const char *program_package(const char *prog)
{
	for (size_t i = 0; i < ELEMENTSOF(packages); i++)
		if (streq(packages[i].prog, prog))
			return packages[i].package;
	return NULL;
}

int require_programs(const char *const progs[])
{
	int r = 0;

	for (size_t i = 0; progs[i]; i++) {
		const char *pkg = program_package(progs[i]);

		if (find_program(progs[i]))
			continue;
		r = log_error_errno(ENOPKG, "required program '%s' not found in $PATH%s%s%s",
				    progs[i], pkg ? " (install the Debian package '" : "",
				    pkg ? pkg : "", pkg ? "')" : "");
	}
	return r;
}

int run_program(char *const argv[], char *const env_extra[])
{
	struct spawn_result res;
	int r;

	if (log_get_max_level() >= LOG_LEVEL_DEBUG) {
		char line[1024] = "";

		for (size_t i = 0; argv[i]; i++) {
			strncat(line, i ? " " : "", sizeof(line) - strlen(line) - 1);
			strncat(line, argv[i], sizeof(line) - strlen(line) - 1);
		}
		log_debug("running: %s", line);
	}
	r = spawn_capture(argv, env_extra, &res);
	if (r == -EINTR)
		return log_error_errno(r, "interrupted while running '%s'", argv[0]);
	if (r < 0)
		return log_error_errno(r, "cannot run '%s': %m", argv[0]);
	log_child_output(argv[0], res.output);
	if (res.status != 0) {
		log_error("'%s' failed with exit status %d:\n%s", argv[0], res.status,
			  last_lines(res.output, 8));
		r = res.status == 1 && strstr(res.output, "No space left") ? -ENOSPC : -EIO;
	}
	spawn_result_free(&res);
	return r;
}
