/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AMD SEV launch secrets: the EFI secret table, the launch measurement, LAUNCH_SECRET. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "secret.h"
#include "shared/cleanup.h"
#include "shared/util.h"

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sev_guid_parse(const char *s, uint8_t out[SEV_GUID_LEN])
{
	uint8_t b[SEV_GUID_LEN];
	size_t j = 0;

	if (strlen(s) != 36)
		return -EINVAL;
	for (size_t i = 0; i < 36; i++) {
		int hi, lo;

		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				return -EINVAL;
			continue;
		}
		hi = hexval(s[i]);
		lo = hexval(s[++i]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		b[j++] = (uint8_t)(hi << 4 | lo);
	}
	/* EFI_GUID: Data1 (u32), Data2 (u16), Data3 (u16) little-endian, Data4 as is. */
	out[0] = b[3], out[1] = b[2], out[2] = b[1], out[3] = b[0];
	out[4] = b[5], out[5] = b[4];
	out[6] = b[7], out[7] = b[6];
	memcpy(out + 8, b + 8, 8);
	return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

static void put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8);
}

int sev_table_build(const struct sev_entry *entries, size_t n, uint8_t *out)
{
	size_t len = SEV_GUID_LEN + 4, padded;

	for (size_t i = 0; i < n; i++) {
		if (entries[i].len > SEV_SECRET_AREA_MAX)
			return -E2BIG;
		len += SEV_GUID_LEN + 4 + entries[i].len;
	}
	padded = round_up(len, 16);
	if (padded > SEV_SECRET_AREA_MAX)
		return -E2BIG;
	memset(out, 0, padded);
	if (sev_guid_parse(SEV_TABLE_GUID, out) < 0)
		return -EINVAL;
	put_u32(out + SEV_GUID_LEN, (uint32_t)len);
	for (size_t i = 0, off = SEV_GUID_LEN + 4; i < n; i++) {
		memcpy(out + off, entries[i].guid, SEV_GUID_LEN);
		put_u32(out + off + SEV_GUID_LEN, (uint32_t)(SEV_GUID_LEN + 4 + entries[i].len));
		memcpy(out + off + SEV_GUID_LEN + 4, entries[i].data, entries[i].len);
		off += SEV_GUID_LEN + 4 + entries[i].len;
	}
	return (int)padded;
}

static uint32_t get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int sev_table_check(const uint8_t *p, size_t size, bool *ret_disk)
{
	uint8_t table_guid[SEV_GUID_LEN], disk_guid[SEV_GUID_LEN];
	const size_t head = SEV_GUID_LEN + 4;
	bool disk = false;
	size_t len, off;

	if (sev_guid_parse(SEV_TABLE_GUID, table_guid) < 0 ||
	    sev_guid_parse(SEV_DISK_PASSPHRASE_GUID, disk_guid) < 0)
		return -EINVAL;
	if (size < head || size > SEV_SECRET_AREA_MAX || size % 16 ||
	    memcmp(p, table_guid, SEV_GUID_LEN) != 0)
		return -EINVAL;
	len = get_u32(p + SEV_GUID_LEN);
	if (len < head || len > size)
		return -EINVAL;
	for (off = head; off < len;) {
		uint32_t elen;

		if (len - off < head)
			return -EINVAL;
		elen = get_u32(p + off + SEV_GUID_LEN);
		if (elen < head || elen > len - off)
			return -EINVAL;
		disk = disk || memcmp(p + off, disk_guid, SEV_GUID_LEN) == 0;
		off += elen;
	}
	if (ret_disk)
		*ret_disk = disk;
	return 0;
}

/* Hash a whole file into ctx. */
static int digest_file(EVP_MD_CTX *ctx, const char *path)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t buf[65536];
	ssize_t n;

	if (fd < 0)
		return -errno;
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		if (EVP_DigestUpdate(ctx, buf, (size_t)n) != 1)
			return -EIO;
	return n < 0 ? -errno : 0;
}

static int sha256_file(const char *path, uint8_t out[SHA256_DIGEST_LENGTH])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = -EIO;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1) {
		r = digest_file(ctx, path);
		if (r == 0 && EVP_DigestFinal_ex(ctx, out, NULL) != 1)
			r = -EIO;
	}
	EVP_MD_CTX_free(ctx);
	return r;
}

/* QEMU's SevHashTable (target/i386/sev.c): GUID, u16 length, then the cmdline, initrd and
 * kernel entries (GUID, u16 length 50, SHA-256), padded to 16 bytes. */
#define SEV_HASH_TABLE_GUID "9438d606-4f22-4cc9-b479-a793d411fd21"
#define SEV_KERNEL_GUID "4de79437-abd2-427f-b835-d5b172d2045b"
#define SEV_INITRD_GUID "44baf731-3a2f-4bd7-9af1-41e29169781d"
#define SEV_CMDLINE_GUID "97d02dd8-bd20-4c94-aa78-e7714d36ab2a"
#define HASH_ENTRY_LEN (SEV_GUID_LEN + 2 + SHA256_DIGEST_LENGTH)

static int hash_table(const char *kernel, const char *initrd, const char *cmdline, uint8_t *out,
		      size_t *ret_len)
{
	static const char *const guids[] = { SEV_CMDLINE_GUID, SEV_INITRD_GUID, SEV_KERNEL_GUID };
	size_t len = SEV_GUID_LEN + 2 + 3 * HASH_ENTRY_LEN;
	uint8_t *p = out + SEV_GUID_LEN + 2;
	int r;

	memset(out, 0, round_up(len, 16));
	r = sev_guid_parse(SEV_HASH_TABLE_GUID, out);
	put_u16(out + SEV_GUID_LEN, (uint16_t)len);
	for (size_t i = 0; i < 3 && r == 0; i++, p += HASH_ENTRY_LEN) {
		r = sev_guid_parse(guids[i], p);
		put_u16(p + SEV_GUID_LEN, HASH_ENTRY_LEN);
		if (r == 0 && i == 0) /* the command line with its NUL */
			r = SHA256((const uint8_t *)cmdline, strlen(cmdline) + 1, p + SEV_GUID_LEN + 2) ?
				    0 : -EIO;
		else if (r == 0)
			r = sha256_file(i == 1 ? initrd : kernel, p + SEV_GUID_LEN + 2);
	}
	*ret_len = round_up(len, 16);
	return r;
}

int sev_launch_digest(const char *firmware, const char *kernel, const char *initrd,
		      const char *cmdline, uint8_t out[SEV_DIGEST_LEN])
{
	uint8_t table[256];
	size_t table_len = 0;
	EVP_MD_CTX *ctx;
	int r;

	if (kernel) {
		if (!initrd || !cmdline)
			return -EINVAL;
		r = hash_table(kernel, initrd, cmdline, table, &table_len);
		if (r < 0)
			return r;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	r = EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
	if (r == 0)
		r = digest_file(ctx, firmware);
	if (r == 0 && table_len && EVP_DigestUpdate(ctx, table, table_len) != 1)
		r = -EIO;
	if (r == 0 && EVP_DigestFinal_ex(ctx, out, NULL) != 1)
		r = -EIO;
	EVP_MD_CTX_free(ctx);
	return r;
}

static int hmac_sha256(const uint8_t key[SEV_KEY_LEN], const uint8_t *msg, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	return HMAC(EVP_sha256(), key, SEV_KEY_LEN, msg, len, out, &n) && n == 32 ? 0 : -EIO;
}

int sev_measurement(const uint8_t tik[SEV_KEY_LEN], uint8_t api_major, uint8_t api_minor,
		    uint8_t build_id, uint32_t policy, const uint8_t digest[SEV_DIGEST_LEN],
		    const uint8_t nonce[SEV_NONCE_LEN], uint8_t out[SEV_MEASUREMENT_LEN])
{
	uint8_t msg[1 + 3 + 4 + SEV_DIGEST_LEN + SEV_NONCE_LEN];

	msg[0] = 0x04; /* the MEASURE context of the SEV API's LAUNCH_MEASURE */
	msg[1] = api_major, msg[2] = api_minor, msg[3] = build_id;
	put_u32(msg + 4, policy);
	memcpy(msg + 8, digest, SEV_DIGEST_LEN);
	memcpy(msg + 8 + SEV_DIGEST_LEN, nonce, SEV_NONCE_LEN);
	return hmac_sha256(tik, msg, sizeof(msg), out);
}

int sev_packet(const uint8_t tek[SEV_KEY_LEN], const uint8_t tik[SEV_KEY_LEN],
	       const uint8_t iv[SEV_IV_LEN], const uint8_t *table, size_t len,
	       const uint8_t measurement[SEV_MEASUREMENT_LEN],
	       uint8_t header[SEV_PACKET_HEADER_LEN], uint8_t *payload)
{
	size_t mlen = 1 + 4 + SEV_IV_LEN + 4 + 4 + len + SEV_MEASUREMENT_LEN;
	_cleanup_free_ uint8_t *msg = NULL;
	EVP_CIPHER_CTX *ctx;
	int n = 0, fin = 0, r = -EIO;

	if (len > SEV_SECRET_AREA_MAX || len % 16)
		return -EINVAL;
	/* AES-128-CTR(TEK, IV): the secret as the SEV firmware decrypts it into the guest. */
	ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_128_ctr(), NULL, tek, iv) == 1 &&
	    EVP_EncryptUpdate(ctx, payload, &n, table, (int)len) == 1 &&
	    EVP_EncryptFinal_ex(ctx, payload + n, &fin) == 1 && (size_t)(n + fin) == len)
		r = 0;
	EVP_CIPHER_CTX_free(ctx);
	if (r < 0)
		return r;

	msg = malloc(mlen);
	if (!msg)
		return -ENOMEM;
	/* AMD SEV API, LAUNCH_SECRET: 0x01 || FLAGS || IV || GUEST_LENGTH || TRANS_LENGTH ||
	 * TRANS || MEASURE, the HMAC under TIK; the header is FLAGS || IV || that HMAC. */
	msg[0] = 0x01;
	put_u32(msg + 1, 0);
	memcpy(msg + 5, iv, SEV_IV_LEN);
	put_u32(msg + 5 + SEV_IV_LEN, (uint32_t)len);
	put_u32(msg + 9 + SEV_IV_LEN, (uint32_t)len);
	memcpy(msg + 13 + SEV_IV_LEN, payload, len);
	memcpy(msg + 13 + SEV_IV_LEN + len, measurement, SEV_MEASUREMENT_LEN);
	put_u32(header, 0);
	memcpy(header + 4, iv, SEV_IV_LEN);
	return hmac_sha256(tik, msg, mlen, header + 4 + SEV_IV_LEN);
}

bool sev_measurement_equal(const uint8_t a[SEV_MEASUREMENT_LEN], const uint8_t b[SEV_MEASUREMENT_LEN])
{
	return CRYPTO_memcmp(a, b, SEV_MEASUREMENT_LEN) == 0;
}
