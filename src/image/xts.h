/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AES-XTS with 512-byte sectors and plain64 IVs, as dm-crypt's aes-xts-plain64. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define XTS_SECTOR_SIZE 512

struct xts;

/* key is 64 bytes for AES-256-XTS (32 for AES-128-XTS). */
int xts_new(const unsigned char *key, size_t key_len, struct xts **ret);
/* A copy with the same key, for another thread: one struct xts is not to be shared. */
int xts_dup(const struct xts *x, struct xts **ret);
void xts_free(struct xts *x);
static inline void xts_freep(struct xts **x)
{
	if (*x)
		xts_free(*x);
}

/* In place; len must be a multiple of 512; sector is the plain64 number of buf's first sector
 * counted from the start of the LUKS payload. Return 0 or -EIO. */
int xts_encrypt(struct xts *x, unsigned char *buf, size_t len, uint64_t sector);
int xts_decrypt(struct xts *x, unsigned char *buf, size_t len, uint64_t sector);
