/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* LUKS1 headers through libcryptsetup, on a header file (no device-mapper, no loop device). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shared/cleanup.h"

#define LUKS_CIPHER "aes"
#define LUKS_CIPHER_MODE "xts-plain64"
#define LUKS_VOLUME_KEY_BYTES 64 /* AES-256-XTS */
#define LUKS_HASH "sha256"
#define LUKS_FAST_ITERATIONS 1000 /* PBKDF2 minimum: one fast unlock in grub */
#define LUKS_KEY_SLOT 0
#define LUKS_RECOVERY_SLOT 1
/* The most PBKDF2 iterations a key is tried against (a slot's, or the volume key digest's):
 * about 5 s here. The header is the image's to write, and 2^31 costs 20 minutes a try. */
#define LUKS_MAX_TRY_ITERATIONS (1u << 23)
#define LUKS_PIN_LEN (32 + 1 + 15 + 1 + 3 + 1 + 64 + 1)

struct luks_slot_info {
	int slot;
	uint32_t iterations;
};

struct luks_header {
	uint64_t payload_offset; /* bytes from the start of the partition */
	struct secret volume_key;
	struct luks_slot_info slots[2];
	unsigned n_slots;
};

void luks_header_done(struct luks_header *h);

/*
 * Format a LUKS1 header (aes-xts-plain64, 512-bit volume key, sha256) into header_path,
 * an existing file, with the given UUID. Slot 0 gets key at 1000 PBKDF2 iterations; slot 1
 * gets recovery (may be NULL) with iterations benchmarked for recovery_iter_ms on this host.
 * Returns the volume key and payload offset in ret. Logs.
 */
int luks_format(const char *header_path, const char *uuid, const struct secret *volume_key,
		const struct secret *key, const struct secret *recovery, uint32_t recovery_iter_ms,
		struct luks_header *ret);

/* The pin of a volume key, as the initramfs checks the opened root (templates/cvm-pin-check):
 * "UUID-WITHOUT-DASHES aes-xts-plain64 512 SHA256(hex of the key)\n", into out. */
int luks_pin(const char *uuid, const struct secret *volume_key, char out[LUKS_PIN_LEN + 1]);

/* An existing LUKS1 header, in a file holding a copy of the header region. */
struct crypt_device;

/* Read the payload offset (bytes) from the LUKS1 header at off in fd: -EMEDIUMTYPE if it is
 * no LUKS1 header. Never logs. */
int luks_header_size(int fd, uint64_t off, uint64_t *ret);

/* Load the header copy at path. Logs. */
int luks_load(const char *path, struct crypt_device **ret);
void luks_free(struct crypt_device *cd);

/* The volume key that pass opens, and the slot it opened: -EPERM if it opens none. Slots (and
 * a volume key digest) asking for more than LUKS_MAX_TRY_ITERATIONS are not tried: said once
 * per header, as a warning (the digest: an error, -E2BIG). Logs nothing for a wrong key, the
 * caller says what was wrong. The slots are opened by luks1-open.c in confine.c's child (the
 * header is the image's): -ECHILD, logged, if that child was killed. */
int luks_unlock(struct crypt_device *cd, const struct secret *pass, struct secret *ret_vk,
		int *ret_slot);

/* Add key (PBKDF2, 1000 iterations) to slot (or the first free one with -1). Returns the slot.
 * Logs. */
int luks_add_fast_key(struct crypt_device *cd, const struct secret *vk, const struct secret *key,
		      int slot);
/* Destroy a key slot. Logs. */
int luks_kill_slot(struct crypt_device *cd, int slot);
/* The LUKS UUID. */
const char *luks_uuid(struct crypt_device *cd);
/* The key slots in use, as a bit mask (bit N: slot N). */
unsigned luks_active_slots(struct crypt_device *cd);

/* A LUKS1 header as its bytes say (the on-disk format, big-endian), for inspection. */
struct luks_desc {
	unsigned version;
	char cipher[33], mode[33], hash[33], uuid[41];
	uint64_t payload_offset; /* bytes */
	unsigned key_bits;
	uint32_t digest_iterations;
	struct {
		bool active;
		uint32_t iterations;
	} slots[8];
};

/* Parse the header at the start of hdr (len bytes): -EMEDIUMTYPE if it is no LUKS1 header.
 * Never logs. */
int luks_describe(const unsigned char *hdr, size_t len, struct luks_desc *ret);
