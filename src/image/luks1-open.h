/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A LUKS1 key slot opened by our own code, from the header region's bytes (luks1-open.c says
 * why): what luks_unlock() runs in a confined child. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "luks.h"
#include "shared/cleanup.h"

/* The hash the header names (sha256, sha1 or sha512), or NULL. */
const EVP_MD *luks1_hash(const unsigned char *hdr, size_t len);

/*
 * hdr: the header region (len bytes, from the "LUKS" magic to the payload at least: the key
 * material is in it). Tries pass against each active slot, in order, that asks for at most
 * max_iterations PBKDF2 iterations. Returns 0 with the volume key in vk and its slot, -EPERM if
 * pass opens none, -EMEDIUMTYPE if this is no LUKS1 aes-xts-plain64 header with a 512-bit key
 * and a hash named above, -E2BIG if its volume key digest asks for more than max_iterations,
 * or -errno. Never logs; allocates only secrets, and no file or socket: for a confined child.
 */
int luks1_open(const unsigned char *hdr, size_t len, const struct secret *pass, uint32_t max_iterations,
	       unsigned char vk[LUKS_VOLUME_KEY_BYTES], int *ret_slot);
