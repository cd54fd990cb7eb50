/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key material: the generated slot-0 key and passphrase files supplied by the user. */
#pragma once

#include <stdbool.h>

#include "shared/cleanup.h"
#include "shared/tmpfile.h"

#define KEY_RANDOM_BYTES 33
#define KEY_TEXT_LEN 44 /* base64 of 33 bytes, no padding needed, no newline */
#define PASSPHRASE_MAX 512

/* A new high-entropy key: base64 of 33 random bytes, no newline. */
int keys_generate(struct secret *ret);

/* Read a passphrase file (one trailing newline stripped, as typed at grub's prompt).
 * Refuses empty files, NUL bytes, and files longer than PASSPHRASE_MAX. Logs. */
int keys_read_passphrase_file(const char *path, struct secret *ret);

/* Read a key file byte for byte (no newline stripping: as cryptsetup --key-file). Logs. */
int keys_read_key_file(const char *path, struct secret *ret);

/*
 * A file a key is read from or written to must be the key's alone: a regular file, no access
 * for group or others, one link (another name would keep or show the key), owned by us.
 * Missing is fine (what == NULL: not said). Logs, naming what it is for.
 */
int keys_check_private_file(const char *path, const char *what);

