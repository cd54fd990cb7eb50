/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The hook runner: the hooks that hooks_resolve() chose, phase by phase, each in a fresh
 * sandbox over the target, with the files and the CVM_* environment of cvm-image-hooks(7).
 * The build pipeline (build.c) says when; this module says how.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "hooks.h"
#include "sandbox.h"
#include "shared/secretbuf.h"

/* What the hooks are told, as CVM_* variables (cvm-image-hooks(7)), and the grub lock. */
struct hook_values {
	const char *distro;           /* CVM_DISTRO */
	const char *initramfs_tool;   /* CVM_INITRAMFS */
	const char *luks_uuid;        /* CVM_LUKS_UUID */
	const char *mapper_name;      /* CVM_MAPPER_NAME */
	const char *key_file;         /* CVM_KEY_FILE: its path in the target */
	const char *esp_uuid;         /* CVM_ESP_UUID */
	const char *root_fs_uuid;     /* CVM_ROOT_FS_UUID */
	char *const *kernels;         /* CVM_KERNEL_VERSIONS, space-separated */
	const char *cmdline;          /* CVM_KERNEL_CMDLINE */
	const char *extra_cmdline;    /* CVM_EXTRA_CMDLINE */
	bool serial_console;          /* CVM_SERIAL_CONSOLE */
	const char *grub_dir;         /* CVM_GRUB_DIR */
	const char *grub_tool_prefix; /* CVM_GRUB_TOOL_PREFIX */
	const struct secret *grub_password; /* the lock in grub.cfg; NULL: a discarded one */
	unsigned hook_timeout;        /* seconds a hook may run (0: no limit) */
};

struct hook_runner {
	const struct hook_set *hooks;
	struct sandbox sandbox;
	int rundirfd;      /* the hooks' files: SANDBOX_RUNDIR in the sandbox */
	const char *rundir;
	char **env;
	unsigned n_run;    /* hooks run (not masked) */
	char **warnings;   /* what hooks said in $CVM_STATE/warnings, made printable */
	size_t n_warnings;
};

/*
 * Fill rundir (an empty host directory, 0700): the hooks, the hook library, the templates,
 * the grub locks ($CVM_STATE/grub-lock.cfg and grub-lock-early.cfg); then make the sandbox
 * over root, or in the appliance vm when not NULL (sandbox.h). Logs.
 */
int hook_runner_init(struct hook_runner *hr, const struct hook_set *hooks, const char *root,
		     const char *rundir, struct appliance *vm, const struct hook_values *v);
/* Run the hooks of phase in order: a hook that exits 77 is "not applicable", any other
 * non-zero status fails the phase (its last lines of output in the message). Logs. */
int hook_runner_phase(struct hook_runner *hr, const char *phase);
void hook_runner_done(struct hook_runner *hr);
