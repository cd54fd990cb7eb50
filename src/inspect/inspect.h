/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* inspect: prove what an image is, as named checks (ok, warning, fail) with a one-line detail:
 * offline without a key (GPT, ESP, grub's early config, the LUKS header and its slots), with a
 * key (the root filesystem, its key file, pin, crypttab, initramfs settings, grub, every
 * initramfs), and with --deep the same tree again through the appliance's dm-crypt. Never
 * writes to the image. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct inspect_options {
	const char *image;
	const char *key_file;      /* or */
	const char *recovery_file; /* or neither: the checks that need no key */
	bool deep, json;
};

/* Run the checks and print them (text, or one JSON object with --json) on stdout.
 * Returns 0 when every check passed (warnings allowed), -EUCLEAN when one failed, another
 * -errno when the image could not be inspected at all (logged). */
int inspect_run(const struct inspect_options *o);
