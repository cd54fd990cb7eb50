/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AES-XTS with 512-byte sectors and plain64 IVs, as dm-crypt's aes-xts-plain64. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "xts.h"

struct xts {
	EVP_CIPHER_CTX *enc;
	EVP_CIPHER_CTX *dec;
};

int xts_new(const unsigned char *key, size_t key_len, struct xts **ret)
{
	const EVP_CIPHER *cipher;
	struct xts *x;

	if (key_len == 64)
		cipher = EVP_aes_256_xts();
	else if (key_len == 32)
		cipher = EVP_aes_128_xts();
	else
		return -EINVAL;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->enc = EVP_CIPHER_CTX_new();
	x->dec = EVP_CIPHER_CTX_new();
	if (!x->enc || !x->dec || EVP_EncryptInit_ex2(x->enc, cipher, key, NULL, NULL) <= 0 ||
	    EVP_DecryptInit_ex2(x->dec, cipher, key, NULL, NULL) <= 0) {
		xts_free(x);
		return -EIO;
	}
	*ret = x;
	return 0;
}

int xts_dup(const struct xts *x, struct xts **ret)
{
	struct xts *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->enc = EVP_CIPHER_CTX_new();
	d->dec = EVP_CIPHER_CTX_new();
	if (!d->enc || !d->dec || EVP_CIPHER_CTX_copy(d->enc, x->enc) <= 0 ||
	    EVP_CIPHER_CTX_copy(d->dec, x->dec) <= 0) {
		xts_free(d);
		return -EIO;
	}
	*ret = d;
	return 0;
}

void xts_free(struct xts *x)
{
	/* EVP_CIPHER_CTX_free cleanses the expanded key schedule. */
	EVP_CIPHER_CTX_free(x->enc);
	EVP_CIPHER_CTX_free(x->dec);
	free(x);
}

static int xts_run(EVP_CIPHER_CTX *ctx, int enc, unsigned char *buf, size_t len, uint64_t sector)
{
	unsigned char iv[16];

	if (len % XTS_SECTOR_SIZE)
		return -EINVAL;
	memset(iv, 0, sizeof(iv));
	for (size_t off = 0; off < len; off += XTS_SECTOR_SIZE, sector++) {
		int outl;

		/* plain64: the sector number, 64-bit little endian, zero padded to 16 bytes. */
		for (int i = 0; i < 8; i++)
			iv[i] = (unsigned char)(sector >> (8 * i));
		if (EVP_CipherInit_ex2(ctx, NULL, NULL, iv, enc, NULL) <= 0 ||
		    EVP_CipherUpdate(ctx, buf + off, &outl, buf + off, XTS_SECTOR_SIZE) <= 0 ||
		    outl != XTS_SECTOR_SIZE)
			return -EIO;
	}
	return 0;
}

int xts_encrypt(struct xts *x, unsigned char *buf, size_t len, uint64_t sector)
{
	return xts_run(x->enc, 1, buf, len, sector);
}

int xts_decrypt(struct xts *x, unsigned char *buf, size_t len, uint64_t sector)
{
	return xts_run(x->dec, 0, buf, len, sector);
}
