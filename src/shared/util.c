/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Small helpers that never log: sizes, paths, files, time, strings. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "util.h"

int parse_size(const char *s, uint64_t *ret)
{
	char *end;
	double v;
	uint64_t mult = 1;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case '\0':
		break;
	case 'K':
		mult = KiB;
		end++;
		break;
	case 'M':
		mult = MiB;
		end++;
		break;
	case 'G':
		mult = GiB;
		end++;
		break;
	case 'T':
		mult = 1024 * GiB;
		end++;
		break;
	default:
		return -EINVAL;
	}
	if (mult > 1) {
		if (end[0] == 'i' && (end[1] == 'B' || end[1] == 'b'))
			end += 2;
		else if (end[0] == 'B' || end[0] == 'b')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (v * (double)mult >= 18446744073709551615.0)
		return -ERANGE;
	*ret = (uint64_t)(v * (double)mult);
	if (*ret == 0)
		return -EINVAL;
	return 0;
}

int parse_1_to(const char *s, unsigned long max, unsigned long *ret)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || *s == '-' || v == 0 || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

int parse_iter_time(const char *s, uint32_t *ret)
{
	unsigned long v;
	int r = parse_1_to(s, 60000, &v);

	if (r == 0)
		*ret = (uint32_t)v;
	return r;
}

int parse_seconds(const char *s, unsigned *ret)
{
	unsigned long v;
	int r = parse_1_to(s, 86400, &v);

	if (r == 0)
		*ret = (unsigned)v;
	return r;
}

int fsync_dir_of(const char *path)
{
	_cleanup_free_ char *dir = path_dirname(path);
	_cleanup_close_ int fd = -1;

	if (!dir)
		return -ENOMEM;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

const char *format_size(uint64_t bytes, char *buf, size_t len)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)bytes;
	unsigned i = 0;

	while (v >= 1024 && i + 1 < ELEMENTSOF(units)) {
		v /= 1024;
		i++;
	}
	if (i == 0)
		snprintf(buf, len, "%" PRIu64 " B", bytes);
	else
		snprintf(buf, len, "%.1f %s", v, units[i]);
	return buf;
}

int greedy_realloc(void **p, size_t *cap, size_t need, size_t size)
{
	size_t n = *cap ? *cap : 16;
	void *q;

	if (need <= *cap)
		return 0;
	while (n < need) {
		if (n > SIZE_MAX / 2)
			return -ENOMEM;
		n *= 2;
	}
	if (n > SIZE_MAX / size)
		return -ENOMEM;
	q = realloc(*p, n * size);
	if (!q)
		return -ENOMEM;
	*p = q;
	*cap = n;
	return 0;
}

double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int pwrite_all(int fd, const void *buf, size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int pread_all(int fd, void *buf, size_t len, off_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static bool is_zero(const unsigned char *p, size_t len)
{
	/* memcmp against itself shifted: zero iff first byte is zero and all equal. */
	return len == 0 || (p[0] == 0 && memcmp(p, p + 1, len - 1) == 0);
}

int copy_range_sparse(int src, off_t src_off, int dst, off_t dst_off, uint64_t len)
{
	const size_t bufsz = 1 * MiB, blk = 4096;
	_cleanup_free_ unsigned char *buf = malloc(bufsz);
	const off_t end = src_off + (off_t)len;
	int r;

	if (!buf)
		return -ENOMEM;
	while (src_off < end) {
		off_t data = lseek(src, src_off, SEEK_DATA), hole;
		size_t n;

		/* Holes read as zeros: jump over them (ENXIO: only a hole is left). */
		if (data < 0 && errno == ENXIO)
			break;
		if (data >= 0 && data > src_off) {
			dst_off += data - src_off;
			src_off = data;
			if (src_off >= end)
				break;
		}
		hole = data >= 0 ? lseek(src, src_off, SEEK_HOLE) : end;
		if (hole < 0 || hole > end)
			hole = end;
		n = (size_t)(hole - src_off) < bufsz ? (size_t)(hole - src_off) : bufsz;

		r = pread_all(src, buf, n, src_off);
		if (r < 0)
			return r;
		for (size_t o = 0; o < n; o += blk) {
			size_t m = n - o < blk ? n - o : blk;

			if (is_zero(buf + o, m))
				continue;
			r = pwrite_all(dst, buf + o, m, dst_off + (off_t)o);
			if (r < 0)
				return r;
		}
		src_off += (off_t)n;
		dst_off += (off_t)n;
	}
	return 0;
}

char *path_dirname(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return NULL;
	return strdup(dirname(copy));
}

char *path_basename(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return NULL;
	return strdup(basename(copy));
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	int r = flag == FTW_DP || flag == FTW_DNR ? rmdir(path) : unlink(path);

	return r < 0 && errno != ENOENT ? -1 : 0;
}

static bool unlocked_one;

/* A directory its owner cannot list or change (a tree an ordinary user unpacked keeps the
 * tarball's modes: 0555, 0000): made u+rwx (pre-order, so that its children are reached on
 * the next walk). */
static int unlock_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)ftw;
	if ((flag == FTW_D || flag == FTW_DNR) && (st->st_mode & 0700) != 0700 &&
	    chmod(path, (st->st_mode & 07777) | 0700) == 0 && flag == FTW_DNR)
		unlocked_one = true;
	return 0;
}

int rm_rf(const char *path)
{
	/* nftw with FTW_DEPTH|FTW_PHYS: children first, never follows symlinks. */
	if (nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) == 0)
		return 0;
	if (errno != EACCES && errno != ENOTEMPTY && errno != EEXIST && errno != EPERM)
		return errno ? -errno : -EIO;
	/* Without root's powers: open what is closed to its owner, one level more per walk,
	 * and remove again. */
	for (unsigned i = 0; i < 4096; i++) {
		unlocked_one = false;
		nftw(path, unlock_one, 64, FTW_PHYS | FTW_MOUNT);
		if (!unlocked_one)
			break;
	}
	if (nftw(path, rm_one, 64, FTW_DEPTH | FTW_PHYS | FTW_MOUNT) < 0)
		return errno ? -errno : -EIO;
	return 0;
}

int uuid_random(char out[37])
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != sizeof(b))
		return -errno;
	b[6] = (b[6] & 0x0f) | 0x40; /* version 4 */
	b[8] = (b[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12],
		 b[13], b[14], b[15]);
	return 0;
}

unsigned uuid_replace_all(void *buf, size_t len, const char *a, const char *b)
{
	char an[33] = "", bn[33] = "";
	unsigned n = 0;

	/* The same UUIDs without dashes, as grub's cryptomount -u spells them. */
	for (size_t i = 0, j = 0; a[i] && j < 32; i++)
		if (a[i] != '-')
			an[j++] = a[i];
	for (size_t i = 0, j = 0; b[i] && j < 32; i++)
		if (b[i] != '-')
			bn[j++] = b[i];
	for (unsigned char *p = buf, *end = p + len; p < end;) {
		size_t left = (size_t)(end - p);

		if (left >= 36 && memcmp(p, a, 36) == 0) {
			memcpy(p, b, 36);
			p += 36;
			n++;
		} else if (left >= 32 && memcmp(p, an, 32) == 0) {
			memcpy(p, bn, 32);
			p += 32;
			n++;
		} else {
			p++;
		}
	}
	return n;
}

char *strdupf(const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return r < 0 ? NULL : s;
}

char *str_printable(const char *s, size_t max)
{
	size_t n;
	char *out;

	s = s ?: "(null)";
	n = strnlen(s, max + 1);
	out = malloc((n > max ? max : n) + 4);
	if (!out)
		return NULL;
	for (size_t i = 0; i < n && i < max; i++)
		out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	strcpy(out + (n > max ? max : n), n > max ? "..." : "");
	return out;
}

size_t utf8_sequence_len(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	uint32_t cp;

	if (n == 0)
		return 0;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

char *utf8_valid_copy(const char *s)
{
	size_t n = strlen(s), o = 0;
	/* Each invalid byte becomes three (EF BF BD). */
	char *out = malloc(n * 3 + 1);

	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t len = utf8_sequence_len((const unsigned char *)s + i, n - i);

		if (len == 0) {
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		}
	}
	out[o] = 0;
	return out;
}

bool str_ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && streq(s + a - b, suffix);
}

char *find_program_path(const char *name)
{
	const char *path = getenv("PATH");
	_cleanup_free_ char *copy = NULL;
	char *save = NULL;

	if (strchr(name, '/'))
		return access(name, X_OK) == 0 ? strdup(name) : NULL;
	copy = strdup(path ? path : "/usr/bin:/bin:/usr/sbin:/sbin");
	if (!copy)
		return NULL;
	for (char *dir = strtok_r(copy, ":", &save); dir; dir = strtok_r(NULL, ":", &save)) {
		char *p = strdupf("%s/%s", dir, name);

		if (p && access(p, X_OK) == 0)
			return p;
		free(p);
	}
	return NULL;
}

bool find_program(const char *name)
{
	_cleanup_free_ char *p = find_program_path(name);

	return p != NULL;
}

int base64_decode(const char *in, uint8_t *out, size_t cap, size_t *ret_len)
{
	size_t len = strlen(in), pad = 0, n;
	uint8_t *tmp;
	int r;

	while (len > 0 && (in[len - 1] == '\n' || in[len - 1] == '\r' || in[len - 1] == ' '))
		len--;
	if (len == 0 || len % 4 != 0)
		return -EINVAL;
	if (in[len - 1] == '=')
		pad++;
	if (in[len - 2] == '=')
		pad++;
	/* EVP_DecodeBlock writes every 3 bytes of each 4 characters, the padding's too. */
	tmp = malloc(len / 4 * 3);
	if (!tmp)
		return -ENOMEM;
	r = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
	n = r >= (int)pad ? (size_t)r - pad : 0;
	if (r < (int)pad || n > cap) {
		r = -EINVAL;
	} else {
		memcpy(out, tmp, n);
		*ret_len = n;
		r = 0;
	}
	OPENSSL_cleanse(tmp, len / 4 * 3); /* it may be a key */
	free(tmp);
	return r;
}

char *base64_encode(const uint8_t *in, size_t len)
{
	char *out = malloc((len + 2) / 3 * 4 + 1);

	if (out)
		EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}
