/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Generated keys: length, alphabet, no newline, distinct; passphrase file reading. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "image/keys.h"
#include "common/log.h"
#include <errno.h>

#include "tap.h"

static bool base64_alphabet(const unsigned char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
			    s[i]))
			return false;
	return true;
}

static char *write_tmp(const char *content, size_t len)
{
	static char path[64];
	int fd;

	strcpy(path, "/tmp/cvm-test-keys.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0 || write(fd, content, len) != (ssize_t)len)
		return NULL;
	close(fd);
	return path;
}

int main(void)
{
	struct secret a = {}, b = {}, p = {};
	unsigned char raw[64];
	char *path;

	log_set_max_level(LOG_LEVEL_ERR);
	ok(keys_generate(&a) == 0 && keys_generate(&b) == 0, "two keys generated");
	ok(a.size == 44, "key is 44 characters (base64 of 33 bytes)");
	ok(base64_alphabet(a.data, a.size), "key uses only the base64 alphabet, no padding");
	ok(!memchr(a.data, '\n', a.size) && !memchr(a.data, '=', a.size), "no newline, no '='");
	ok(EVP_DecodeBlock(raw, a.data, (int)a.size) == 33, "key decodes to 33 bytes");
	ok(memcmp(a.data, b.data, a.size) != 0, "two keys differ");
	secret_free(&a);
	ok(a.data == NULL && a.size == 0, "secret_free clears the handle");

	path = write_tmp("hunter2 recovery\n", 17);
	ok(path && keys_read_passphrase_file(path, &p) == 0 && p.size == 16 &&
		   memcmp(p.data, "hunter2 recovery", 16) == 0,
	   "passphrase file: one trailing newline stripped");
	secret_free(&p);
	unlink(path);
	path = write_tmp("\n", 1);
	ok(path && keys_read_passphrase_file(path, &p) == -EINVAL, "empty passphrase refused");
	unlink(path);
	path = write_tmp("a\0b", 3);
	ok(path && keys_read_passphrase_file(path, &p) == -EINVAL, "NUL byte refused");
	unlink(path);
	ok(keys_read_passphrase_file("/nonexistent/x", &p) == -ENOENT, "missing file: -ENOENT");
	path = write_tmp("key\n", 4);
	ok(path && keys_read_key_file(path, &p) == 0 && p.size == 4,
	   "key file read byte for byte, newline kept");
	secret_free(&p);
	unlink(path);
	secret_free(&b);
	return tap_done();
}
