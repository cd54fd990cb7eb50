/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest owner's side of an AMD SEV launch: the verbs of cvm-image secret. table (the disk
 * key as grub's efisecret secret table), measure (check a launch measurement against the
 * firmware, kernel, initrd and command line expected), build (the LAUNCH_SECRET header and
 * payload) and inject (all of it over QEMU's QMP socket, the host's report checked first).
 * The formats are in secret.h, the QMP client in qmp.h; cli/cmd-secret.c parses the options.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SECRET_ENTRIES_MAX 16

struct secret_options {
	const char *verb;
	const char *key_file, *image, *output, *tik, *tek, *blob, *firmware, *kernel, *initrd,
		*cmdline, *launch_digest, *table, *iv, *qmp_json, *qmp, *header, *payload;
	const char *entries[SECRET_ENTRIES_MAX];
	size_t n_entries;
	long api_major, api_minor, build_id;
	int64_t policy;
	long min_api_major, min_api_minor, min_build;  /* inject: -1, none required */
	unsigned timeout;                               /* inject: seconds in all */
	bool force, no_cont, json;
};

/* Each verb: 0, -EBADMSG when a measurement does not match, another -errno; logs. */
int secret_verb_table(const struct secret_options *o);
int secret_verb_measure(const struct secret_options *o);
int secret_verb_build(const struct secret_options *o);
int secret_verb_inject(const struct secret_options *o);

/* Whether o gives what a launch digest is computed from (--firmware or --launch-digest). */
bool secret_have_measure_options(const struct secret_options *o);
/* -EINVAL, logged, when the platform's --api-major, --api-minor, --build-id, --policy are
 * not all given (measure, and build with a measurement to check). */
int secret_need_platform(const struct secret_options *o);
