/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An image and its key file written under temporary names with a lock, committed together. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "shared/cleanup.h"
#include "shared/lockfile.h"
#include "shared/tmpfile.h"

struct output {
	struct tmpfile image, key;
	struct lockfile image_lock, key_lock;
	bool force;
};

#define OUTPUT_INIT                                                                     \
	{                                                                               \
		.image = TMPFILE_INIT, .key = TMPFILE_INIT, .image_lock = LOCKFILE_INIT, \
		.key_lock = LOCKFILE_INIT,                                              \
	}

/*
 * Lock image and key (a second build or re-encryption to either fails at once, naming the
 * process that holds it), refuse existing files unless force, and create both under
 * temporary names: 0600 until committed (image_mode then). Logs.
 */
int output_begin(struct output *o, const char *image, const char *key, bool force,
		 mode_t image_mode);

/*
 * Write key into the key file, then put the key file and the image in place. The previous
 * pair (with force) stays until the new one is in place: the new key file takes the old
 * one's name by an atomic exchange, and if the image cannot be renamed the old key file is
 * exchanged back. Logs what is true afterwards.
 */
int output_commit(struct output *o, const struct secret *key);

/*
 * A work directory PARENT/PREFIX.<pid>.XXXXXX (mode 0700, absolute path): the process id in
 * its name lets a later run remove it if this one is killed (leftovers_sweep()). Logs.
 */
int output_workdir(const char *parent, const char *prefix, char **ret);

/* The raw disk image at raw written into o's image as qcow2 (qemu-img convert), then raw
 * removed. Logs. */
int output_convert_qcow2(struct output *o, const char *raw);

/* Remove what was not committed and drop the locks. Safe to call twice. */
void output_discard(struct output *o);
