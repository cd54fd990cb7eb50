/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key material: the generated slot-0 key and passphrase files supplied by the user. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "keys.h"
#include "common/log.h"
#include "shared/util.h"

int keys_generate(struct secret *ret)
{
	_cleanup_secret_ struct secret raw = {}, text = {};
	int r;

	r = secret_alloc(&raw, KEY_RANDOM_BYTES);
	if (r < 0)
		return log_error_errno(r, "cannot allocate key: %m");
	if (getrandom(raw.data, raw.size, 0) != (ssize_t)raw.size)
		return log_error_errno(errno, "cannot get random bytes: %m");
	r = secret_alloc(&text, KEY_TEXT_LEN + 1);
	if (r < 0)
		return log_error_errno(r, "cannot allocate key: %m");
	/* OpenSSL's encoder: 33 bytes give exactly 44 characters and a NUL, no newline. */
	if (EVP_EncodeBlock(text.data, raw.data, (int)raw.size) != KEY_TEXT_LEN)
		return log_error_errno(EIO, "cannot encode key: %m");
	text.size = KEY_TEXT_LEN;
	*ret = text;
	text.data = NULL;
	return 0;
}

static int read_secret_file(const char *path, struct secret *ret, size_t max)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0)
		return log_error_errno(errno, "cannot open '%s': %m", path);
	r = secret_read_fd(fd, max, ret);
	if (r == -EFBIG)
		return log_error_errno(EFBIG, "'%s' is longer than %zu bytes", path, max);
	if (r == -ENOMEM)
		return log_error_errno(r, "cannot allocate memory: %m");
	if (r < 0)
		return log_error_errno(r, "cannot read '%s': %m", path);
	return 0;
}

int keys_read_passphrase_file(const char *path, struct secret *ret)
{
	_cleanup_secret_ struct secret s = {};
	int r;

	r = read_secret_file(path, &s, PASSPHRASE_MAX);
	if (r < 0)
		return r;
	if (s.size > 0 && s.data[s.size - 1] == '\n')
		s.data[--s.size] = '\0';
	if (s.size > 0 && s.data[s.size - 1] == '\r')
		s.data[--s.size] = '\0';
	if (s.size == 0)
		return log_error_errno(EINVAL, "passphrase file '%s' is empty", path);
	if (memchr(s.data, '\0', s.size))
		return log_error_errno(EINVAL, "passphrase file '%s' contains a NUL byte", path);
	*ret = s;
	s.data = NULL;
	return 0;
}

int keys_check_private_file(const char *path, const char *what)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : log_error_errno(errno, "cannot stat %s '%s': %m", what, path);
	if (!S_ISREG(st.st_mode))
		return log_error_errno(EPERM, "%s '%s' is not a regular file: nothing changed", what, path);
	if (st.st_mode & 0077)
		return log_error_errno(EPERM, "%s '%s' has mode %04o, open to others: nothing changed "
				       "('chmod 0600 %s' first)", what, path, (unsigned)(st.st_mode & 07777),
				       path);
	if (st.st_nlink != 1)
		return log_error_errno(EPERM, "%s '%s' has %lu names (hard links), which would keep or "
				       "show the key: nothing changed (remove the others first)", what, path,
				       (unsigned long)st.st_nlink);
	if (st.st_uid != geteuid())
		return log_error_errno(EPERM, "%s '%s' belongs to uid %u, not to us: nothing changed",
				       what, path, (unsigned)st.st_uid);
	return 0;
}

int keys_read_key_file(const char *path, struct secret *ret)
{
	_cleanup_secret_ struct secret s = {};
	int r;

	r = read_secret_file(path, &s, 8192);
	if (r < 0)
		return r;
	if (s.size == 0)
		return log_error_errno(EINVAL, "key file '%s' is empty", path);
	*ret = s;
	s.data = NULL;
	return 0;
}
