/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AMD SEV launch secrets: the EFI secret table, the launch measurement, LAUNCH_SECRET. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SEV_GUID_LEN 16
#define SEV_KEY_LEN 16        /* TEK and TIK: AES-128 and HMAC-SHA256 keys */
#define SEV_IV_LEN 16
#define SEV_MEASUREMENT_LEN 32
#define SEV_NONCE_LEN 16
#define SEV_BLOB_LEN (SEV_MEASUREMENT_LEN + SEV_NONCE_LEN) /* query-sev-launch-measure */
#define SEV_DIGEST_LEN 32
#define SEV_PACKET_HEADER_LEN (4 + SEV_IV_LEN + 32)    /* flags, IV, HMAC */
#define SEV_SECRET_AREA_MAX 4096                       /* OVMF's secret page */
#define SEV_POLICY_NODBG 0x01 /* no SEV debugging commands */
#define SEV_POLICY_NOKS 0x02  /* no key sharing with other guests */
#define SEV_POLICY_ES 0x04

/* The secret table's own GUID, and the disk passphrase entry grub's efisecret reads. */
#define SEV_TABLE_GUID "1e74f542-71dd-4d66-963e-ef4287ff173b"
#define SEV_DISK_PASSPHRASE_GUID "736869e5-84f0-4973-92ec-06879ce3da0b"

/* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" into EFI byte order (the first three fields
 * little-endian). Returns 0 or -EINVAL. */
int sev_guid_parse(const char *s, uint8_t out[SEV_GUID_LEN]);

struct sev_entry {
	uint8_t guid[SEV_GUID_LEN];
	const uint8_t *data;
	size_t len;
};

/*
 * The secret table: header GUID, u32 length (20 + the entries, without padding), then each
 * entry as GUID, u32 length (20 + data), data; zero-padded to a multiple of 16. Into out
 * (SEV_SECRET_AREA_MAX bytes). Returns its length, or -E2BIG when it does not fit the 4 KiB
 * secret area. Never logs.
 */
int sev_table_build(const struct sev_entry *entries, size_t n, uint8_t *out);

/*
 * Whether p (size bytes) is such a table, read as Linux's efi_secret and grub's efisecret
 * walk one: the header GUID, a length within size, size a multiple of 16 and at most the
 * secret area, and entries that each fit (length at least 20, within the table's length)
 * and fill it exactly. *ret_disk (may be NULL): whether an entry carries the disk
 * passphrase GUID. Returns 0 or -EINVAL. Never logs.
 */
int sev_table_check(const uint8_t *p, size_t size, bool *ret_disk);

/*
 * The launch digest: SHA-256 of the firmware file's bytes, followed (with kernel set) by
 * QEMU's SEV hash table of the kernel, initrd and command line (its NUL included), padded
 * to 16, as QEMU appends it for -kernel with kernel-hashes=on. Returns 0 or -errno. Never
 * logs.
 */
int sev_launch_digest(const char *firmware, const char *kernel, const char *initrd,
		      const char *cmdline, uint8_t out[SEV_DIGEST_LEN]);

/* HMAC-SHA256(TIK, 0x04 || api_major || api_minor || build_id || policy (u32 LE) || digest ||
 * nonce): the measurement an honest launch of that firmware reports. Returns 0 or -EIO. */
int sev_measurement(const uint8_t tik[SEV_KEY_LEN], uint8_t api_major, uint8_t api_minor,
		    uint8_t build_id, uint32_t policy, const uint8_t digest[SEV_DIGEST_LEN],
		    const uint8_t nonce[SEV_NONCE_LEN], uint8_t out[SEV_MEASUREMENT_LEN]);

/*
 * The LAUNCH_SECRET packet for table (len bytes, a multiple of 16): payload =
 * AES-128-CTR(TEK, IV, table); header = flags (0) || IV || HMAC-SHA256(TIK, 0x01 || flags ||
 * IV || len || len || payload || measurement). Returns 0 or -EIO.
 */
int sev_packet(const uint8_t tek[SEV_KEY_LEN], const uint8_t tik[SEV_KEY_LEN],
	       const uint8_t iv[SEV_IV_LEN], const uint8_t *table, size_t len,
	       const uint8_t measurement[SEV_MEASUREMENT_LEN],
	       uint8_t header[SEV_PACKET_HEADER_LEN], uint8_t *payload);

/* Constant-time comparison of two measurements. */
bool sev_measurement_equal(const uint8_t a[SEV_MEASUREMENT_LEN], const uint8_t b[SEV_MEASUREMENT_LEN]);
