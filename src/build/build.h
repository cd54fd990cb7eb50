/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The build pipeline: a table of stages over one context that owns every resource. */
#pragma once

#include "sandbox.h"
#include "shared/cleanup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum image_format {
	IMAGE_FORMAT_AUTO,
	IMAGE_FORMAT_RAW,
	IMAGE_FORMAT_QCOW2,
};

struct build_options {
	const char *rootfs;
	const char *output;
	uint64_t size; /* 0: computed */
	enum image_format format;
	bool force;
	const char *key_out; /* NULL: OUTPUT.key */
	const char *mapper_name;
	const char *workdir_parent; /* NULL: $TMPDIR or /var/tmp */
	bool keep_workdir;
	const char *recovery_passphrase_file;
	uint32_t recovery_iter_ms;
	bool json;
	enum sandbox_kind sandbox; /* --sandbox: where the tarball is unpacked, the hooks run */
	unsigned hook_timeout;     /* --hook-timeout: seconds one hook may run */

	/* Making it boot (distro hooks) */
	const char *distro;          /* NULL: detect from os-release; "none": no hooks */
	char **hooks_dirs;           /* site hook directories, NULL-terminated, may be NULL */
	bool serial_console;
	const char *kernel_cmdline;  /* extra arguments */
	const char *root_password_file;
	const struct secret *grub_password; /* --grub-password-file, read by the command */
	const char *ssh_keys_file;
	const char *hostname;
};

/* "raw"/"qcow2" from a name, or IMAGE_FORMAT_AUTO if unknown. */
enum image_format image_format_from_string(const char *s);
/* Default format for an output path: qcow2 for *.qcow2, raw otherwise. */
enum image_format image_format_for_path(const char *path);

/* The name the i-th stage is known by (from the stage table), NULL past the last: for --help. */
const char *build_stage_name(size_t i);

/* Run the whole pipeline. The output and key file exist afterwards only on success.
 * Returns 0 or -errno; everything has been logged. */
int build_run(const struct build_options *opt);
