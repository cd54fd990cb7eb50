/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What a killed cvm-image left behind (work directories, temporary outputs), found by the
 * process id in its name and removed by the next run. */
#pragma once

/*
 * In dir, remove the entries named PREFIX<pid>SEP... for each prefix of prefixes (e.g.
 * "cvm-image." with '.', or "." ... TMPFILE_MARK with '-') whose process is gone (no such
 * process, or one that is not cvm-image): mounts below a directory are detached first, the
 * removal stays on one filesystem; with leftovers_outputs also the lock files (".NAME.lock")
 * nobody holds whose process is gone. Each removal is said (notice); what cannot be removed
 * is named (warning). Returns the number removed.
 */
int leftovers_sweep(const char *dir, const char *const prefixes[]);

/* The prefixes of cvm-image's work directories in $TMPDIR / --workdir, and of its temporary
 * files beside an output (".NAME" TMPFILE_MARK), NULL-terminated. */
extern const char *const leftovers_workdirs[];
extern const char *const leftovers_outputs[];
