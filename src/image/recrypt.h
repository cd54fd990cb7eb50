/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Re-encryption of byte ranges of a LUKS payload from one file into another: decrypted with
 * the old volume key, encrypted with the new one, on every core. */
#pragma once

#include <stdint.h>

#include "xts.h"

struct recrypt;

/* The payload starts at base in both in and out. old and new are used by the thread that
 * calls recrypt_run() (the others get copies): they must outlive it. */
int recrypt_new(int in, int out, uint64_t base, struct xts *old, struct xts *new,
		struct recrypt **ret);
void recrypt_free(struct recrypt *r);
static inline void recrypt_freep(struct recrypt **r)
{
	if (*r)
		recrypt_free(*r);
}

/* Queue [off, off + len) of the payload (sector aligned); a cryptfs_for_each_allocated()
 * callback with the struct recrypt as userdata. Returns 0 or -ENOMEM (logged). */
int recrypt_add(uint64_t off, uint64_t len, void *userdata);

/* Do it, in threads (one per online CPU, at most 8). Returns 0 or -errno (logged once);
 * *ret_bytes: the bytes re-encrypted. */
int recrypt_run(struct recrypt *r, uint64_t *ret_bytes);
