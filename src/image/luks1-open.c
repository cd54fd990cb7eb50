/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A LUKS1 key slot opened by our own code, from the header region's bytes in memory.
 *
 * Why not libcryptsetup's crypt_volume_key_get(): the header is the image's, written by a guest
 * that knew the disk key, and the unlock is the one place where its bytes drive loops,
 * offsets and a decryption. It belongs in confine.c's child, which may open no file and no
 * socket; libcryptsetup opens the header by its path for every read and decrypts key material
 * through the kernel's AF_ALG sockets. The format is small and fixed (LUKS1, "LUKS1 On-Disk
 * Format Specification" 1.2.3): PBKDF2 of the passphrase with the slot's salt, the slot's
 * 4000 stripes of key material decrypted with that key (aes-xts-plain64, sectors counted from
 * the slot's start), merged by the anti-forensic splitter (XOR and a hash diffusion), and the
 * result checked against the volume key digest (PBKDF2, 20 bytes). Everything else (format,
 * adding and removing slots) stays libcryptsetup's; unit tests compare the two.
 */
#include <errno.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "luks1-open.h"
#include "luks.h"
#include "xts.h"
#include "shared/cleanup.h"

#define HDR_LEN (208 + 8 * 48)
#define SLOT_ACTIVE 0x00AC71F3u
#define STRIPES 4000u
#define DIGEST_LEN 20

static uint32_t be32(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A fixed-size field as a string (the format pads with NULs, a hostile one may not). */
static bool field_is(const unsigned char *f, size_t len, const char *want)
{
	size_t n = strlen(want);

	return n < len && memcmp(f, want, n) == 0 && f[n] == '\0';
}

const EVP_MD *luks1_hash(const unsigned char *hdr, size_t len)
{
	if (len < HDR_LEN)
		return NULL;
	/* The hashes LUKS1 headers name (cryptsetup's default was sha1 before 1.7). */
	if (field_is(hdr + 72, 32, "sha256"))
		return EVP_sha256();
	if (field_is(hdr + 72, 32, "sha1"))
		return EVP_sha1();
	if (field_is(hdr + 72, 32, "sha512"))
		return EVP_sha512();
	return NULL;
}

/* The anti-forensic splitter's diffusion: each digest-sized block of buf replaced by
 * H(be32(block index) || block), the last one cut to what is left. */
static int diffuse(const EVP_MD *md, unsigned char *buf, size_t len)
{
	unsigned char out[EVP_MAX_MD_SIZE];
	size_t ds = (size_t)EVP_MD_get_size(md);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = ctx ? 0 : -ENOMEM;

	for (size_t off = 0, i = 0; r == 0 && off < len; off += ds, i++) {
		unsigned char iv[4] = { (unsigned char)(i >> 24), (unsigned char)(i >> 16),
					(unsigned char)(i >> 8), (unsigned char)i };
		size_t n = len - off < ds ? len - off : ds;

		if (EVP_DigestInit_ex(ctx, md, NULL) <= 0 || EVP_DigestUpdate(ctx, iv, 4) <= 0 ||
		    EVP_DigestUpdate(ctx, buf + off, n) <= 0 || EVP_DigestFinal_ex(ctx, out, NULL) <= 0)
			r = -EIO;
		else
			memcpy(buf + off, out, n);
	}
	OPENSSL_cleanse(out, sizeof(out));
	EVP_MD_CTX_free(ctx);
	return r;
}

/* One slot (s: its 48 bytes) tried with pass: 0 and the volume key in vk (vk_len bytes), or
 * -EPERM (pass does not open it), -EMEDIUMTYPE (it cannot be a LUKS1 aes-xts slot), -errno. */
static int try_slot(const unsigned char *hdr, size_t len, const unsigned char *s, const EVP_MD *md,
		    const struct secret *pass, unsigned char *vk, size_t vk_len)
{
	_cleanup_secret_ struct secret derived = {}, material = {};
	_cleanup_(xts_freep) struct xts *x = NULL;
	unsigned char digest[DIGEST_LEN];
	uint64_t off = (uint64_t)be32(s + 40) * 512;
	size_t size = vk_len * STRIPES;
	int r;

	if (be32(s + 44) != STRIPES || off < HDR_LEN || off > len || len - off < size)
		return -EMEDIUMTYPE;
	if (secret_alloc(&derived, vk_len) < 0 || secret_alloc(&material, size) < 0)
		return -ENOMEM;
	if (PKCS5_PBKDF2_HMAC((const char *)pass->data, (int)pass->size, s + 8, 32, (int)be32(s + 4), md,
			      (int)vk_len, derived.data) <= 0)
		return -EIO;
	r = xts_new(derived.data, vk_len, &x);
	if (r < 0)
		return r;
	memcpy(material.data, hdr + off, size);
	/* size is a whole number of sectors: 64 * 4000 = 500 * 512. */
	r = xts_decrypt(x, material.data, size, 0);
	if (r < 0)
		return r;
	memset(vk, 0, vk_len);
	for (unsigned i = 0; i < STRIPES - 1; i++) {
		for (size_t j = 0; j < vk_len; j++)
			vk[j] ^= material.data[i * vk_len + j];
		r = diffuse(md, vk, vk_len);
		if (r < 0)
			return r;
	}
	for (size_t j = 0; j < vk_len; j++)
		vk[j] ^= material.data[(STRIPES - 1) * vk_len + j];
	if (PKCS5_PBKDF2_HMAC((const char *)vk, (int)vk_len, hdr + 132, 32, (int)be32(hdr + 164), md,
			      DIGEST_LEN, digest) <= 0)
		return -EIO;
	return CRYPTO_memcmp(digest, hdr + 112, DIGEST_LEN) == 0 ? 0 : -EPERM;
}

int luks1_open(const unsigned char *hdr, size_t len, const struct secret *pass, uint32_t max_iterations,
	       unsigned char vk[LUKS_VOLUME_KEY_BYTES], int *ret_slot)
{
	const EVP_MD *md = luks1_hash(hdr, len);
	int r = -EPERM;

	if (!md || memcmp(hdr, "LUKS\xba\xbe", 6) != 0 || hdr[6] != 0 || hdr[7] != 1 ||
	    !field_is(hdr + 8, 32, LUKS_CIPHER) || !field_is(hdr + 40, 32, LUKS_CIPHER_MODE) ||
	    be32(hdr + 108) != LUKS_VOLUME_KEY_BYTES)
		return -EMEDIUMTYPE;
	if (be32(hdr + 164) == 0 || be32(hdr + 164) > max_iterations)
		return -E2BIG;
	if (pass->size > INT32_MAX)
		return -EINVAL;
	for (int slot = 0; slot < 8; slot++) {
		const unsigned char *s = hdr + 208 + 48 * slot;

		if (be32(s) != SLOT_ACTIVE || be32(s + 4) == 0 || be32(s + 4) > max_iterations)
			continue;
		r = try_slot(hdr, len, s, md, pass, vk, LUKS_VOLUME_KEY_BYTES);
		if (r == 0) {
			*ret_slot = slot;
			return 0;
		}
		if (r != -EPERM && r != -EMEDIUMTYPE)
			break;
		r = -EPERM;
	}
	OPENSSL_cleanse(vk, LUKS_VOLUME_KEY_BYTES);
	return r;
}
