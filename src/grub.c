/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* grub's lock: a superuser whose PBKDF2 hash guards the menu editor and the command line. */
#include <errno.h>
#include <stdio.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "grub.h"
#include "log.h"
#include "shared/util.h"

#define SALT_LEN 64
#define HASH_LEN 64

static void hex_upper(const unsigned char *b, size_t n, char *out)
{
	static const char digits[] = "0123456789ABCDEF";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

int grub_lock_config(const struct secret *password, char **ret)
{
	_cleanup_secret_ struct secret random_pw = {};
	unsigned char salt[SALT_LEN], hash[HASH_LEN];
	char salt_hex[2 * SALT_LEN + 1], hash_hex[2 * HASH_LEN + 1];
	const struct secret *pw = password;

	if (!pw) {
		if (secret_alloc(&random_pw, 32) < 0)
			return log_error_errno(ENOMEM, "out of memory");
		if (getrandom(random_pw.data, random_pw.size, 0) != (ssize_t)random_pw.size)
			return log_error_errno(errno, "cannot get random bytes: %m");
		pw = &random_pw;
	}
	if (getrandom(salt, sizeof(salt), 0) != sizeof(salt))
		return log_error_errno(errno, "cannot get random bytes: %m");
	/* As grub-mkpasswd-pbkdf2: PBKDF2-HMAC-SHA512, 64-byte salt and hash, upper-case hex. */
	if (PKCS5_PBKDF2_HMAC((const char *)pw->data, (int)pw->size, salt, sizeof(salt),
			      GRUB_PBKDF2_ITERATIONS, EVP_sha512(), sizeof(hash), hash) != 1)
		return log_error_errno(EIO, "cannot compute the grub password hash");
	hex_upper(salt, sizeof(salt), salt_hex);
	hex_upper(hash, sizeof(hash), hash_hex);
	OPENSSL_cleanse(hash, sizeof(hash));
	/* No comment lines: grub's parser of the embedded early config says "Unknown command
	 * `#'" for them. */
	*ret = strdupf("set superusers=\"" GRUB_SUPERUSER "\"\n"
		       "export superusers\n"
		       "password_pbkdf2 " GRUB_SUPERUSER " grub.pbkdf2.sha512.%d.%s.%s\n",
		       GRUB_PBKDF2_ITERATIONS, salt_hex, hash_hex);
	return *ret ? 0 : log_error_errno(ENOMEM, "out of memory");
}
